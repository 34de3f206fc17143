/*
 * audit_bench.c - native nanoseconds per audit record: a statement and its result, as the proxy writes them.
 *
 * Appends ROUNDS statement + result pairs (pgbench -S's text, a session's identity, rendered once
 * with audit_render_ident as the proxy does, or per record with "raw"), flushing every 8 records
 * (a loop iteration's batch) to a file in /tmp, and prints ns per record for formatting + hashing
 * and for the whole (with the write() calls):
 *   make && cc -std=c11 -D_GNU_SOURCE -O2 -g -I. -o build/audit_bench bench/audit_bench.c \
 *     build/libpgwarden.a $(pkg-config --libs libpcre2-8 inih openssl libpq libevent) -lpg_query \
 *     -lpthread -lm -lidn -ljansson
 *   build/audit_bench 200000            # OpenSSL picks SHA-NI when the CPU has it
 *   OPENSSL_ia32cap=":~0x20000000" build/audit_bench 200000   # the same with SHA-NI masked off
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* The identity every record of the session carries. */
static void fill_ident(audit_record *r)
{
	r->session = 1234;
	r->actor = "user:bench";
	r->role = "bookkeeper";
	r->tenant = "acme";
	r->client = "127.0.0.1:51234";
	r->target = "bench";
	r->environment = "staging";
}

/* Append one statement and its result; returns the time spent, in ns. */
static double one_pair(audit_log *log, unsigned i, const char *ident, size_t ident_len)
{
	char sql[128];
	audit_record r;
	uint64_t seq;
	double t0 = now_ns();

	snprintf(sql, sizeof(sql), "SELECT abalance FROM pgbench_accounts WHERE aid = %u;", 1 + i * 7919 % 1000000);
	audit_record_init(&r);
	fill_ident(&r);
	r.ident = ident;
	r.ident_len = ident_len;
	r.event = "statement";
	r.protocol = "simple";
	r.sql = sql;
	r.sql_len = strlen(sql);
	r.decision = "allow";
	r.backend_pid = 4242;
	seq = audit_append(log, &r);
	audit_record_init(&r);
	fill_ident(&r);
	r.ident = ident;
	r.ident_len = ident_len;
	r.event = "result";
	r.ref = seq;
	r.tag = "SELECT 1";
	r.duration_us = 57;
	audit_append(log, &r);
	return now_ns() - t0;
}

int main(int argc, char **argv)
{
	unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100000, i;
	bool raw = argc > 2 && strcmp(argv[2], "raw") == 0;
	char path[] = "/tmp/pgwarden-audit-bench.XXXXXX", *err = NULL, *ident = NULL;
	size_t ident_len = 0;
	double append_ns = 0, t0;
	audit_record r;
	audit_log *log;
	int fd = mkstemp(path);

	if (fd < 0)
		return 1;
	close(fd);
	log = audit_open(path, AUDIT_FSYNC_NEVER, &err);
	if (!log) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	audit_record_init(&r);
	fill_ident(&r);
	if (!raw)
		ident = audit_render_ident(&r, &ident_len);
	t0 = now_ns();
	for (i = 0; i < rounds; i++) {
		append_ns += one_pair(log, i, ident, ident_len);
		if (i % 4 == 3)
			audit_flush(log);
	}
	audit_flush(log);
	printf("%s identity: %.0f ns per record appended (format + SHA-256), %.0f ns with the writes\n",
	       raw ? "per-record" : "rendered", append_ns / rounds / 2, (now_ns() - t0) / rounds / 2);
	audit_close(log);
	free(ident);
	unlink(path);
	return 0;
}
