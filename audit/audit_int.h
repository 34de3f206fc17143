/*
 * audit_int.h - what the audit module's files share with each other and with
 * its unit tests: the SHA-256 line hasher, RFC 3339 parsing, and the verify
 * and show commands as library calls.
 */
#ifndef PGW_AUDIT_INT_H
#define PGW_AUDIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "audit/audit.h"

#define AUDIT_HASH_HEX 64 /* lowercase hex digits of a SHA-256 */

/* 64 zeros: the prev of the very first record of a log. */
extern const char audit_zero_prev[AUDIT_HASH_HEX + 1];

/* A SHA-256 context reused across lines (audit_hash.c says why it is not EVP's). */
typedef struct audit_hasher {
	void *ctx; /* SHA256_CTX *, allocated once, re-initialised per line */
} audit_hasher;

int audit_hasher_init(audit_hasher *h);
void audit_hasher_free(audit_hasher *h);
/* Start, feed, finish one hash; the result is AUDIT_HASH_HEX lowercase hex digits plus a NUL. */
int audit_hash_begin(audit_hasher *h);
int audit_hash_update(audit_hasher *h, const void *p, size_t n);
int audit_hash_end(audit_hasher *h, char out[AUDIT_HASH_HEX + 1]);
/* All three at once. 0 on success. */
int audit_hash_line(audit_hasher *h, const void *p, size_t n, char out[AUDIT_HASH_HEX + 1]);

/*
 * Parse an RFC 3339 timestamp with any offset ("2026-11-22T01:02:03.123456Z",
 * "2026-11-22T03:02:03+02:00"; 't'/'z' and a space separator accepted, at
 * most 9 fractional digits) into microseconds since the epoch, UTC. The whole
 * string must be used. 0 on success, -1 if it is not one.
 */
int audit_parse_rfc3339(const char *s, int64_t *us_out);

/*
 * A time on the command line: RFC 3339, or a span back from now: a whole
 * number and s, m, h or d ("30m", "2h", "1d"). 0 on success, -1 if neither.
 */
int audit_parse_when(const char *s, int64_t *us_out);

/* Hex digits of the longest signature (Ed25519: 64 bytes). */
#define AUDIT_SIG_HEX_MAX 128

/*
 * Sign / check a checkpoint: the record after the line (seq, hash). 'sig' is
 * lowercase hex. 0 on success / a good signature, -1 otherwise.
 */
int audit_sign_checkpoint(const audit_signer *k, uint64_t seq, const char *hash, char *sig, size_t sigsz);
int audit_check_checkpoint(const audit_signer *k, const char *alg, uint64_t seq, const char *hash, const char *sig);

/* How the first record of a checked set is anchored. */
typedef enum {
	VERIFY_START_NONE,       /* no records */
	VERIFY_START_SEQ1,       /* seq 1 with a prev of 64 zeros: the log's very beginning */
	VERIFY_START_CHECKPOINT, /* a checkpoint record (signature checked when a key was given) */
	VERIFY_START_ELSEWHERE,  /* anything else: records before it are not part of the check */
} verify_start;

/* The outcome of checking a set of audit files. */
typedef struct audit_verify_result {
	uint64_t records;              /* complete, valid records checked before the first fault */
	uint64_t first_seq;            /* seq of the first record (0: none) */
	uint64_t last_seq;             /* seq of the last good record */
	char head[AUDIT_HASH_HEX + 1]; /* SHA-256 of the last good record's line ("" when none) */
	verify_start start;            /* how the set begins */
	uint64_t checkpoints;          /* checkpoint records seen (signatures checked when a key was given) */
	uint64_t last_checkpoint;      /* seq of the last one (0: none) */
	const char *bad_file;          /* file of the first bad line; NULL when intact */
	uint64_t bad_line;             /* 1-based line number in bad_file; 0 when intact or not line-specific */
	char why[320];                 /* what is wrong with it */
} audit_verify_result;

/* What else verify checks. */
typedef struct audit_verify_opts {
	const audit_signer *key;            /* --key: check every checkpoint's signature; a set must start anchored */
	bool has_head;                      /* --expect-head given */
	uint64_t head_seq;                  /* ... the record with this seq must be there */
	char head_hash[AUDIT_HASH_HEX + 1]; /* ... and its line must hash to this */
} audit_verify_opts;

/*
 * Check the chain across 'files' taken in order (rotated files oldest first).
 * Returns 0 if intact, 1 if broken or unreadable; 'res' says where and why.
 */
int audit_verify_files(const char *const *files, size_t n, audit_verify_result *res);
/* The same with a key and/or an expected head ('opts' may be NULL). */
int audit_verify_files_opts(const char *const *files, size_t n, const audit_verify_opts *opts,
			    audit_verify_result *res);

/* Parse "SEQ:HASH" (64 hex digits, either case) for --expect-head. 0 ok, -1 not one. */
int audit_parse_head(const char *s, uint64_t *seq, char hash[AUDIT_HASH_HEX + 1]);

/* How often verify reads an unterminated last line again, 100 ms apart (3; the fuzzer sets 0). */
extern int audit_verify_reread_tries;

/* Record filters of `audit show`; NULL / has_* false means "any". */
typedef struct audit_show_filter {
	const char *actor;    /* --actor: exact match */
	const char *decision; /* --decision: allow or deny (the CLI refuses anything else) */
	const char *target;   /* --target: exact match */
	const char *window;   /* --window: exact match */
	const char *event;    /* --event: one of CONTRACT §5's events (checked by the CLI) */
	const char *rule;     /* --rule: exact match */
	bool has_session;     /* --session given */
	uint64_t session;     /* --session: this session id */
	bool has_since;       /* --since given */
	int64_t since_us;     /* --since: ts >= since */
	bool has_until;       /* --until given */
	int64_t until_us;     /* --until: ts < until */
	bool json;            /* --json: print matching lines as they are */
	bool wide;            /* --wide: the statement column is never shortened */
	int width;            /* total width of a human-readable line */
} audit_show_filter;

/* A result record, summarised for the line of its statement. */
typedef struct audit_result_entry {
	uint64_t ref;  /* seq of the statement */
	char text[64]; /* "INSERT 0 1 1.2ms", "ERROR 22012 800us" */
} audit_result_entry;

/* The results of a set of files, by ref (audit_results.c). */
typedef struct audit_result_index {
	audit_result_entry *v; /* sorted by ref */
	size_t n;              /* entries */
	size_t cap;            /* allocated */
} audit_result_index;

void audit_result_index_load(audit_result_index *ix, const char *const *files, size_t n);
/* The summary of the result of statement 'ref', or NULL. */
const char *audit_result_index_find(const audit_result_index *ix, uint64_t ref);
void audit_result_index_free(audit_result_index *ix);

/* Print the records of 'files' matching 'f' to 'out'; problems go to 'errout'. Returns the exit status. */
int audit_show_files(const char *const *files, size_t n, const audit_show_filter *f, FILE *out, FILE *errout);

#endif
