/* test_fastscan.c - the fast scanner: same tokens as pg_query_scan or a bail-out, and a cache that neither splits nor merges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/classify_int.h"
#include "policy/fastscan.h"
#include "policy/policy.h"

extern __thread bool standard_conforming_strings;

/* common/kwlookup.h's list, as fastscan.c reads it: here to walk every keyword. */
typedef struct kwlist {
	const char *kw_string;       /* keywords separated by NUL */
	const uint16_t *kw_offsets;  /* start of each */
	int (*hash)(const void *key, size_t keylen); /* perfect hash */
	int num_keywords;            /* count */
	int max_kw_len;              /* longest */
} kwlist;
extern const kwlist ScanKeywords;

enum {
	T_IDENT = 258, T_FCONST = 260, T_SCONST = 261, T_OP = 265, T_ICONST = 266, T_PARAM = 267,
	T_TYPECAST = 268, T_DOT_DOT = 269, T_COLON_EQUALS = 270, T_EQUALS_GREATER = 271,
	T_LESS_EQUALS = 272, T_GREATER_EQUALS = 273, T_NOT_EQUALS = 274,
};

/* Assert the fast scanner accepts text and agrees with pg_query_scan token for token. */
static void assert_same_as_full(const char *text)
{
	pc_scan fast = { 0 }, full = { 0 };

	if (fast_scan(&fast, text, strlen(text), true) != FAST_SCANNED)
		fail_msg("fast scanner bailed on: %s", text);
	standard_conforming_strings = true;
	assert_int_equal(scan_text(&full, text), 0);
	if (fast.n != full.n)
		fail_msg("%s: %zu tokens, pg_query_scan %zu", text, fast.n, full.n);
	for (size_t i = 0; i < fast.n; i++)
		if (memcmp(&fast.v[i], &full.v[i], sizeof(pc_token)) != 0)
			fail_msg("%s: token %zu: [%u,%u) %u/%u vs [%u,%u) %u/%u", text, i, fast.v[i].start,
				 fast.v[i].end, fast.v[i].token, fast.v[i].kw, full.v[i].start, full.v[i].end,
				 full.v[i].token, full.v[i].kw);
	scan_free(&fast);
	scan_free(&full);
}

static void test_keywords(void **state)
{
	char up[80];

	(void)state;
	assert_true(fast_scan_init());
	assert_true(ScanKeywords.num_keywords > 400);
	for (int i = 0; i < ScanKeywords.num_keywords; i++) {
		const char *kw = ScanKeywords.kw_string + ScanKeywords.kw_offsets[i];
		size_t n = strlen(kw);

		assert_true(n < sizeof(up));
		assert_same_as_full(kw);
		for (size_t k = 0; k <= n; k++) /* upper case, and mixed: the lookup folds ASCII */
			up[k] = (char)((k % 2 == 0 && kw[k] >= 'a' && kw[k] <= 'z') ? kw[k] - 32 : kw[k]);
		assert_same_as_full(up);
		snprintf(up, sizeof(up), "%sx", kw); /* a keyword prefix is an identifier */
		assert_same_as_full(up);
	}
}

static void test_accepts_as_postgres_does(void **state)
{
	static const char *texts[] = {
		"SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
		"UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 77;",
		"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 77, 12, CURRENT_TIMESTAMP);",
		"BEGIN;", "END;", "select\ta\ffrom\rt\n",
		"SELECT 1e5, .5, 5., 1.e5, 1 .e5, 1.5e-3, 1E+07, 0.0, 00000000000000001",
		"SELECT 2147483647, 2147483648, 99999999999999999999999",
		"SELECT a=-1, a=>b, a<=>b, a<=-b, a@-b, a!=b, a!=-b, a*-b, a+-+-b, a ~* b, a !~~ b",
		"SELECT a||b, a->>'k', a#>'{x}', a @> b, a <@ b, a && b, a ?| b, a <> b, a >= b, a <= b",
		"SELECT -1, +1, a-1, a+1, a=+1, a<-1, a>-1, a%-1, a^-1, a`-1, a/-1, a*/b",
		"SELECT \"select\", \"Mixed\"\"Case\", \"a b\" FROM \"t\"",
		"SELECT 'it''s', '', 'a' 'b', 'x'\t, 'multi\nline'",
		"SELECT x::numeric(10,2), arr[1:2], f(a := 1, b => 2), t.*, t.1",
		"select $1::int4, $2::text[] from t where a >= $3",
		"SeLeCt NoT nUlL, nulls first, with ordinality, current_timestamp, a$b, _x1",
		"", "   ", ";;;",
	};
	char longer[400], name[151];

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		assert_same_as_full(texts[i]);
	/* identifiers past NAMEDATALEN: PostgreSQL truncates them (a NOTICE), the token is whole */
	memset(name, 'a', 150);
	name[150] = '\0';
	snprintf(longer, sizeof(longer), "%s \"%s\" = 1", name, name);
	assert_same_as_full(longer);
}

static void test_bails(void **state)
{
	static const char *texts[] = {
		"SELECT 1 -- comment", "SELECT /* c */ 1", "SELECT a+/*c*/b", "SELECT a*--c\n1",
		"SELECT $$x$$", "SELECT $tag$x$tag$", "SELECT $ 1", "SELECT $1a", "SELECT $1.5",
		"SELECT E'x'", "SELECT e'x'", "SELECT B'101'", "SELECT X'1F'", "SELECT N'x'",
		"SELECT U&'x'", "SELECT U&\"x\"", "SELECT u&'x'",
		"SELECT 'a\\b'", "SELECT '\xc3\xa9'", "SELECT \xc3\xa9", "SELECT \"\xc3\xa9\"",
		"SELECT 'a'\n'b'", "SELECT 'a'  \r\n\t 'b'", "SELECT 'unterminated", "SELECT \"open",
		"SELECT \"\"", "SELECT 123abc", "SELECT 1e", "SELECT 1e+", "SELECT 1..2", "SELECT 1.2.3",
		"SELECT 1.x", "SELECT 0x1F", "SELECT 1_000", "SELECT {", "SELECT a\\b", "SELECT \v1",
		"SELECT 1\x01", "SELECT 1.e", "SELECT .5e",
		"SELECT a ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++~ b",
		/* valid (it lexes as 64 single '+'), but a run that long is not ours: see scan_operator */
		"SELECT 1 ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++ 1",
	};
	pc_scan s = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (fast_scan(&s, texts[i], strlen(texts[i]), true) != FAST_BAIL)
			fail_msg("fast scanner accepted: %s", texts[i]);
	/* standard_conforming_strings off: backslashes escape in '...'; never ours */
	assert_int_equal(fast_scan(&s, "SELECT 1", 8, false), FAST_BAIL);
	scan_free(&s);
}

/* Token ids of one text, terminated by 0. */
static void assert_tokens(const char *text, const uint32_t *want)
{
	pc_scan s = { 0 };
	size_t n = 0;

	assert_int_equal(fast_scan(&s, text, strlen(text), true), FAST_SCANNED);
	while (want[n])
		n++;
	if (s.n != n)
		fail_msg("%s: %zu tokens, want %zu", text, s.n, n);
	for (size_t i = 0; i < n; i++)
		if (s.v[i].token != want[i])
			fail_msg("%s: token %zu is %u, want %u", text, i, s.v[i].token, want[i]);
	scan_free(&s);
	assert_same_as_full(text);
}

static void test_tricky_tokens(void **state)
{
	(void)state;
	assert_tokens("a=-1", (const uint32_t[]){ T_IDENT, '=', '-', T_ICONST, 0 });
	assert_tokens("a@-1", (const uint32_t[]){ T_IDENT, T_OP, T_ICONST, 0 });
	assert_tokens("a+-+-1", (const uint32_t[]){ T_IDENT, '+', '-', '+', '-', T_ICONST, 0 });
	assert_tokens("a=>-1", (const uint32_t[]){ T_IDENT, T_EQUALS_GREATER, '-', T_ICONST, 0 });
	assert_tokens("a<>b!=c", (const uint32_t[]){ T_IDENT, T_NOT_EQUALS, T_IDENT, T_NOT_EQUALS, T_IDENT, 0 });
	assert_tokens("a<=b>=c", (const uint32_t[]){ T_IDENT, T_LESS_EQUALS, T_IDENT, T_GREATER_EQUALS, T_IDENT, 0 });
	assert_tokens("a<=>b", (const uint32_t[]){ T_IDENT, T_OP, T_IDENT, 0 });
	assert_tokens("1.e5", (const uint32_t[]){ T_FCONST, 0 });
	assert_tokens("1 .e5", (const uint32_t[]){ T_ICONST, '.', T_IDENT, 0 });
	assert_tokens("5.", (const uint32_t[]){ T_FCONST, 0 });
	assert_tokens(".5", (const uint32_t[]){ T_FCONST, 0 });
	assert_tokens("2147483648", (const uint32_t[]){ T_FCONST, 0 });
	assert_tokens("$1::t", (const uint32_t[]){ T_PARAM, T_TYPECAST, T_IDENT, 0 });
	assert_tokens("a:=b..c", (const uint32_t[]){ T_IDENT, T_COLON_EQUALS, T_IDENT, T_DOT_DOT, T_IDENT, 0 });
	assert_tokens("\"select\"", (const uint32_t[]){ T_IDENT, 0 });
	assert_tokens("'a' 'b'", (const uint32_t[]){ T_SCONST, T_SCONST, 0 });
}

/* Analyze text with pc; return its first statement's flags and add to *hits whether the cache answered. */
static uint32_t analyze(policy_classifier *pc, const char *sql, uint64_t *hits)
{
	policy_lexctx lx = { .standard_conforming_strings = true };
	policy_analysis a;
	policy_cache_stats before, after;
	uint32_t flags;

	policy_classifier_stats(pc, &before);
	assert_int_equal(policy_analyze(pc, sql, strlen(sql), &lx, &a), 0);
	policy_classifier_stats(pc, &after);
	assert_true(a.n >= 1);
	flags = policy_facts_flags(a.v[0].facts);
	policy_analysis_clear(&a);
	*hits += after.hits - before.hits;
	return flags;
}

/* The flags of sql on a classifier without a cache. */
static uint32_t uncached(const char *sql)
{
	policy_classifier *pc = policy_classifier_new(0);
	uint64_t hits = 0;
	uint32_t f = analyze(pc, sql, &hits);

	policy_classifier_free(pc);
	return f;
}

static void test_cache_no_merge(void **state)
{
	/* pairs the fast path must key apart: keyword vs quoted identifier, operator splits, numbers, $n */
	static const char *pairs[][2] = {
		{ "SELECT user FROM t", "SELECT \"user\" FROM t" },
		{ "SELECT a ?- b FROM t", "SELECT a ? -b FROM t" },
		{ "SELECT a =- b FROM t", "SELECT a =-- b\n FROM t" },
		{ "SELECT 1.e5 FROM t", "SELECT 1 .e5 FROM t" },
		{ "SELECT 1e5 FROM t", "SELECT 1 e5 FROM t" },
		{ "SELECT 2147483647 FROM t", "SELECT 2147483648 FROM t" },
		{ "SELECT $1 FROM t", "SELECT $ 1 FROM t" },
		{ "SELECT 'a' FROM t", "SELECT \"a\" FROM t" },
		{ "DELETE FROM t", "\"delete\" FROM t" },
		{ "SELECT set_config('search_path', 'x', false)", "SELECT set_config('app.tenant_id', 'x', false)" },
	};

	(void)state;
	for (int order = 0; order < 2; order++)
		for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
			const char *first = pairs[i][order], *second = pairs[i][!order];
			policy_classifier *pc = policy_classifier_new(64);
			uint64_t hits = 0;

			analyze(pc, first, &hits);
			assert_int_equal(analyze(pc, second, &hits), uncached(second));
			if (hits != 0)
				fail_msg("cache merged \"%s\" into \"%s\"", second, first);
			policy_classifier_free(pc);
		}
}

static void test_cache_no_split(void **state)
{
	/* the first is keyed by the fast path, the second by pg_query_scan: one key */
	static const char *pairs[][2] = {
		{ "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
		  "SELECT abalance FROM pgbench_accounts WHERE aid = 2 -- note" },
		{ "SELECT * FROM t WHERE name = 'x'", "SELECT * FROM t WHERE name = $$y$$" },
		{ "SELECT * FROM t WHERE name = 'x'", "SELECT * FROM t WHERE name = E'y\\n'" },
		{ "UPDATE t SET v = v + 1 WHERE k = 'a'", "UPDATE t SET v = v + 1 WHERE k = 'a'\n'b'" },
	};

	(void)state;
	for (int order = 0; order < 2; order++)
		for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
			policy_classifier *pc = policy_classifier_new(64);
			uint64_t hits = 0;

			analyze(pc, pairs[i][order], &hits);
			assert_int_equal(analyze(pc, pairs[i][!order], &hits), uncached(pairs[i][!order]));
			if (hits != 1)
				fail_msg("cache split \"%s\" from \"%s\"", pairs[i][!order], pairs[i][order]);
			policy_classifier_free(pc);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keywords),
		cmocka_unit_test(test_accepts_as_postgres_does),
		cmocka_unit_test(test_bails),
		cmocka_unit_test(test_tricky_tokens),
		cmocka_unit_test(test_cache_no_merge),
		cmocka_unit_test(test_cache_no_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
