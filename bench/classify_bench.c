/*
 * classify_bench.c - policy_analyze() on pgbench's statements with a new literal each time (cache-key path).
 *
 * Counts instructions per policy_analyze under callgrind (only inside policy_analyze):
 *   make && cc -std=c11 -D_GNU_SOURCE -O2 -g -I. -o build/classify_bench bench/classify_bench.c \
 *     build/libpgwarden.a $(pkg-config --libs libpcre2-8 inih openssl libpq libevent) -lpg_query \
 *     -lpthread -lm -lidn -ljansson
 *   valgrind --tool=callgrind --toggle-collect=policy_analyze --callgrind-out-file=/tmp/cg.out \
 *     build/classify_bench select 2000
 *   callgrind_annotate /tmp/cg.out | head    # "PROGRAM TOTALS" / (2000 * statements per round)
 * Workloads: "select" (pgbench -S: 1 statement per round), "tpcb" (tpcb-like: 7 per round).
 * Without valgrind it prints wall-clock nanoseconds per call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"

/* One round's texts for a workload, literals drawn from seed. */
static int round_texts(const char *workload, unsigned seed, char texts[7][256])
{
	unsigned aid = 1 + seed * 7919 % 1000000, tid = 1 + seed % 100, bid = 1 + seed % 10;
	int delta = (int)(seed * 31 % 10001) - 5000;

	if (strcmp(workload, "select") == 0) {
		snprintf(texts[0], 256, "SELECT abalance FROM pgbench_accounts WHERE aid = %u;", aid);
		return 1;
	}
	snprintf(texts[0], 256, "BEGIN;");
	snprintf(texts[1], 256, "UPDATE pgbench_accounts SET abalance = abalance + %d WHERE aid = %u;", delta, aid);
	snprintf(texts[2], 256, "SELECT abalance FROM pgbench_accounts WHERE aid = %u;", aid);
	snprintf(texts[3], 256, "UPDATE pgbench_tellers SET tbalance = tbalance + %d WHERE tid = %u;", delta, tid);
	snprintf(texts[4], 256, "UPDATE pgbench_branches SET bbalance = bbalance + %d WHERE bid = %u;", delta, bid);
	snprintf(texts[5], 256,
		 "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (%u, %u, %u, %d, "
		 "CURRENT_TIMESTAMP);",
		 tid, bid, aid, delta);
	snprintf(texts[6], 256, "END;");
	return 7;
}

int main(int argc, char **argv)
{
	const char *workload = argc > 1 ? argv[1] : "select";
	int rounds = argc > 2 ? atoi(argv[2]) : 2000;
	policy_classifier *pc = policy_classifier_new(4096);
	policy_lexctx lx = { .standard_conforming_strings = true };
	char texts[7][256];
	struct timespec a, b;
	long calls = 0;

	if (!pc)
		return 1;
	for (int r = -10; r < rounds; r++) { /* 10 warm-up rounds fill the cache */
		int n = round_texts(workload, (unsigned)(r + 100), texts);

		if (r == 0)
			clock_gettime(CLOCK_MONOTONIC, &a);
		for (int i = 0; i < n; i++) {
			policy_analysis out;

			if (policy_analyze(pc, texts[i], strlen(texts[i]), &lx, &out) != 0)
				return 1;
			policy_analysis_clear(&out);
			calls += r >= 0;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%s: %ld calls, %.0f ns per policy_analyze\n", workload, calls,
	       ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)calls);
	policy_classifier_free(pc);
	return 0;
}
