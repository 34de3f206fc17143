/*
 * fuzz_classify.c - libFuzzer target for the classifier and the verdict.
 *
 * Build and run (from the repository root; 30 s, 2 MB inputs):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_classify.c policy/classify.c policy/classify_scan.c policy/classify_json.c \
 *     policy/classify_stmt.c policy/classify_walk.c policy/classify_set.c policy/classify_grant.c \
 *     policy/classify_plpgsql.c policy/classify_facts.c policy/builtin_funcs.c policy/cache.c \
 *     policy/decide.c conf/windows.c conf/config.c conf/errors.c conf/tokens.c conf/core/log.c \
 *     $(pkg-config --cflags --libs libpcre2-8 inih openssl libpq) -lpg_query -lpthread -lm \
 *     -o build-fuzz/fuzz_classify
 *   build-fuzz/fuzz_classify -max_total_time=30 -max_len=2000000 -rss_limit_mb=4096
 *
 * The first input byte picks the lexing context and cache size (exercising
 * hits, the literal-dependence marker and eviction); the rest is one Query
 * text. Every statement is decided on production and staging. Seeds worth
 * adding: deep "1+1+..." chains, nested parentheses, DO blocks, U& strings.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *protected_roles[] = { "anon", "guest", "public" };
static char *trusted[] = { "public.safe_fn" };

static void decide_all(const policy_analysis *a, const char *sql)
{
	pgw_config cfg = { .actor_setting = "app.actor_id",
			   .tenant_setting = "app.tenant_id",
			   .claims_setting = "request.jwt.claims",
			   .protected_roles = protected_roles,
			   .n_protected_roles = 3,
			   .trusted_functions = trusted,
			   .n_trusted_functions = 1 };
	pgw_target prod = { .name = "prod", .environment = ENV_PRODUCTION };
	pgw_target staging = { .name = "staging", .environment = ENV_STAGING };
	pgw_token who = { .actor = "user:fuzz", .role = "app_rw" };
	policy_subject s = { .cfg = &cfg, .who = &who, .now = 1800000000 };

	for (size_t i = 0; i < a->n; i++) {
		policy_verdict v;

		s.target = &prod;
		policy_decide(&s, a->v[i].facts, sql + a->v[i].offset, a->v[i].len, &v);
		s.target = &staging;
		policy_decide(&s, a->v[i].facts, sql + a->v[i].offset, a->v[i].len, &v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static policy_classifier *pcs[2];
	policy_lexctx lx;
	policy_analysis a;
	policy_classifier *pc;

	if (size < 1)
		return 0;
	if (!pcs[0]) {
		pcs[0] = policy_classifier_new(8);
		pcs[1] = policy_classifier_new(0);
	}
	lx.standard_conforming_strings = !(data[0] & 1);
	pc = pcs[(data[0] >> 1) & 1];
	if (policy_analyze(pc, (const char *)data + 1, size - 1, &lx, &a) == 0) {
		for (size_t i = 0; i < a.n; i++) {
			if (a.v[i].offset + a.v[i].len > size - 1)
				__builtin_trap(); /* a statement range outside the text */
		}
		decide_all(&a, (const char *)data + 1);
		policy_analysis_clear(&a);
	}
	return 0;
}
