/* audit_verify.c - `pgwarden audit verify`: check the hash chain and seq across audit files in order. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "audit/audit_int.h"

/*
 * The checker walks every line of every file once, remembering the last good
 * record. What each fault looks like, and how it is named:
 *   truncated  the last line has no newline (a write cut short); it is
 *              re-read for a moment first, since a live log's writer may be
 *              in the middle of that very write
 *   not JSON   the line does not parse, or lacks an integer seq / a hex prev
 *   edited     a line's hash differs from the prev of the line after it: the
 *              earlier line is reported (the last line of a set can be edited
 *              undetected: nothing after it commits to its hash)
 *   deleted    seq jumps forward, and the line after keeps going forward
 *   reordered  seq goes backwards, or jumps forward and the next line comes
 *              back (a swap): the first line out of place is reported
 * A set whose first record has seq > 1 (older files not given) is checked
 * from that record on; the start is "anchored" when it is seq 1 or a
 * checkpoint. With a key (--key), every checkpoint's signature is checked
 * (bad checkpoint) and an unanchored start is a fault (a dropped first
 * file); without one it is a warning. With --expect-head SEQ:HASH the record
 * SEQ must be there and hash to HASH (a cut tail, a dropped last file).
 */

/* Where the walk stands. */
typedef struct verify_state {
	audit_verify_result *res;           /* the caller's result, filled as we go */
	const audit_verify_opts *opts;      /* key and expected head (never NULL here) */
	bool head_seen;                     /* the expected head's seq was reached */
	audit_hasher hasher;                /* hashes each good line */
	bool have_last;                     /* a good record has been seen */
	uint64_t last_seq;                  /* its seq */
	char last_hash[AUDIT_HASH_HEX + 1]; /* its line's hash */
	const char *last_file;              /* where it is */
	uint64_t last_line;
	bool gap;             /* a forward seq jump waits for the next line to be named */
	const char *gap_file; /* the line with the jump */
	uint64_t gap_line;
	uint64_t gap_seq; /* the seq found there */
} verify_state;

/* One parsed line: the fields the chain needs. */
typedef struct chain_fields {
	uint64_t seq;                    /* the record's seq */
	char prev[AUDIT_HASH_HEX + 1];   /* its prev */
	bool checkpoint;                 /* event is "checkpoint" */
	char alg[16];                    /* checkpoint: its "alg" ("" if absent or odd) */
	char sig[AUDIT_SIG_HEX_MAX + 1]; /* checkpoint: its "sig" ("" if absent or odd) */
} chain_fields;

/* A checkpoint's alg and sig, when they are short strings ("" otherwise: the check then fails). */
static void take_checkpoint(json_t *root, chain_fields *cf)
{
	json_t *ev = json_object_get(root, "event"), *alg = json_object_get(root, "alg"),
	       *sig = json_object_get(root, "sig");

	cf->checkpoint = json_is_string(ev) && strcmp(json_string_value(ev), "checkpoint") == 0;
	cf->alg[0] = cf->sig[0] = '\0';
	if (json_is_string(alg) && json_string_length(alg) < sizeof(cf->alg))
		memcpy(cf->alg, json_string_value(alg), json_string_length(alg) + 1);
	if (json_is_string(sig) && json_string_length(sig) < sizeof(cf->sig))
		memcpy(cf->sig, json_string_value(sig), json_string_length(sig) + 1);
}

static int fail(verify_state *st, const char *file, uint64_t line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record the first fault; returns 1 (broken) for the caller to pass up. */
static int fail(verify_state *st, const char *file, uint64_t line, const char *fmt, ...)
{
	va_list ap;

	st->res->bad_file = file;
	st->res->bad_line = line;
	va_start(ap, fmt);
	vsnprintf(st->res->why, sizeof(st->res->why), fmt, ap);
	va_end(ap);
	return 1;
}

static bool is_lower_hex64(const char *s, size_t len)
{
	size_t i;

	if (len != AUDIT_HASH_HEX)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Parse a line into its seq and prev; on failure writes why into 'why'. */
static int parse_chain_fields(const char *line, size_t len, chain_fields *cf, char *why, size_t whysz)
{
	json_error_t jerr;
	json_t *root, *seq, *prev;
	int rc = -1;

	/* JSON_ALLOW_NUL: the writer escapes NUL bytes in sql as \u0000. */
	root = json_loadb(line, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		snprintf(why, whysz, "not JSON: %s (column %d)", jerr.text, jerr.column);
		return -1;
	}
	seq = json_object_get(root, "seq");
	prev = json_object_get(root, "prev");
	if (!json_is_object(root))
		snprintf(why, whysz, "not JSON: not an object");
	else if (!json_is_integer(seq) || json_integer_value(seq) < 1)
		snprintf(why, whysz, "not JSON: not an audit record (no positive integer \"seq\")");
	else if (!json_is_string(prev) || !is_lower_hex64(json_string_value(prev), json_string_length(prev)))
		snprintf(why, whysz, "not JSON: not an audit record (\"prev\" is not 64 lowercase hex)");
	else {
		cf->seq = (uint64_t)json_integer_value(seq);
		memcpy(cf->prev, json_string_value(prev), sizeof(cf->prev));
		take_checkpoint(root, cf);
		rc = 0;
	}
	json_decref(root);
	return rc;
}

/* A forward jump was seen; this next line (or the end, line == NULL) says which fault it was. */
static int name_gap(verify_state *st, const char *line, size_t len)
{
	chain_fields cf;
	char why[64];

	if (line != NULL && parse_chain_fields(line, len, &cf, why, sizeof(why)) == 0 && cf.seq < st->gap_seq)
		return fail(st, st->gap_file, st->gap_line, "reordered: seq %llu is out of place (expected %llu)",
			    (unsigned long long)st->gap_seq, (unsigned long long)st->last_seq + 1);
	return fail(st, st->gap_file, st->gap_line, "deleted: seq %llu follows seq %llu (records %llu..%llu missing)",
		    (unsigned long long)st->gap_seq, (unsigned long long)st->last_seq,
		    (unsigned long long)st->last_seq + 1, (unsigned long long)st->gap_seq - 1);
}

/* Check the chain link of a parsed line against the last good record. 0 ok, 1 broken, 2 gap pending. */
static int check_link(verify_state *st, const chain_fields *cf, const char *file, uint64_t lineno)
{
	if (!st->have_last) {
		if (cf->seq == 1 && strcmp(cf->prev, audit_zero_prev) != 0)
			return fail(st, file, lineno, "edited: the first record (seq 1) must have a prev of 64 zeros");
		return 0;
	}
	if (cf->seq <= st->last_seq) {
		if (cf->seq == 1 && strcmp(cf->prev, audit_zero_prev) == 0)
			return fail(st, file, lineno,
				    "reordered: a new chain starts at seq 1 after seq %llu (log started "
				    "afresh? verify the files before and after separately)",
				    (unsigned long long)st->last_seq);
		return fail(st, file, lineno, "reordered: seq %llu follows seq %llu", (unsigned long long)cf->seq,
			    (unsigned long long)st->last_seq);
	}
	if (cf->seq > st->last_seq + 1) {
		st->gap = true;
		st->gap_file = file;
		st->gap_line = lineno;
		st->gap_seq = cf->seq;
		return 2;
	}
	if (strcmp(cf->prev, st->last_hash) != 0)
		return fail(st, st->last_file, st->last_line, "edited: its hash does not match the prev of %s:%llu",
			    file, (unsigned long long)lineno);
	return 0;
}

/* A checkpoint: counted; with a key, its signature over (seq - 1, prev) must verify. */
static int check_checkpoint(verify_state *st, const chain_fields *cf, const char *file, uint64_t lineno)
{
	st->res->checkpoints++;
	st->res->last_checkpoint = cf->seq;
	if (st->opts->key != NULL &&
	    audit_check_checkpoint(st->opts->key, cf->alg, cf->seq - 1, cf->prev, cf->sig) != 0)
		return fail(st, file, lineno,
			    "bad checkpoint: seq %llu's %s signature does not verify with the given key (wrong key, "
			    "or a forged or edited checkpoint)",
			    (unsigned long long)cf->seq, cf->alg[0] ? cf->alg : "(no alg)");
	return 0;
}

/*
 * The first record of the set: seq 1 (the log's beginning) or a checkpoint
 * anchor it; anything else means earlier records are missing from the set,
 * which a key makes a fault (the warning is printed by the CLI).
 */
static int check_start(verify_state *st, const chain_fields *cf, const char *file, uint64_t lineno)
{
	audit_verify_result *res = st->res;

	if (cf->seq == 1 && strcmp(cf->prev, audit_zero_prev) == 0)
		res->start = VERIFY_START_SEQ1;
	else if (cf->checkpoint)
		res->start = VERIFY_START_CHECKPOINT;
	else
		res->start = VERIFY_START_ELSEWHERE;
	if (res->start == VERIFY_START_ELSEWHERE && st->opts->key != NULL)
		return fail(st, file, lineno,
			    "unanchored start: the set begins at seq %llu, which is neither seq 1 nor a "
			    "checkpoint (is its first file missing?)",
			    (unsigned long long)cf->seq);
	return 0;
}

/* Check one line ('has_nl': it ended with a newline, which is not in 'len'). 0 ok, 1 broken. */
static int check_line(verify_state *st, const char *file, uint64_t lineno, const char *line, size_t len, bool has_nl)
{
	audit_verify_result *res = st->res;
	chain_fields cf;
	char why[sizeof(res->why)];
	int rc;

	if (st->gap)
		return name_gap(st, line, len);
	if (!has_nl)
		return fail(st, file, lineno, "truncated: incomplete last line (%zu bytes, no newline)", len);
	if (parse_chain_fields(line, len, &cf, why, sizeof(why)) < 0)
		return fail(st, file, lineno, "%s", why);
	rc = check_link(st, &cf, file, lineno);
	if (rc != 0)
		return rc == 2 ? 0 : rc;
	if (cf.checkpoint && check_checkpoint(st, &cf, file, lineno) != 0)
		return 1;
	if (!st->have_last && check_start(st, &cf, file, lineno) != 0)
		return 1;
	if (audit_hash_line(&st->hasher, line, len, st->last_hash) < 0)
		return fail(st, file, lineno, "cannot hash: OpenSSL failed");
	if (st->opts->has_head && cf.seq == st->opts->head_seq) {
		if (strcmp(st->last_hash, st->opts->head_hash) != 0)
			return fail(st, file, lineno, "head mismatch: seq %llu hashes to %s, not to the expected %s",
				    (unsigned long long)cf.seq, st->last_hash, st->opts->head_hash);
		st->head_seen = true;
	}
	if (!st->have_last)
		res->first_seq = cf.seq;
	st->have_last = true;
	st->last_seq = cf.seq;
	st->last_file = file;
	st->last_line = lineno;
	res->records++;
	res->last_seq = cf.seq;
	return 0;
}

/*
 * A line without its newline is the file's last. pgwarden may be writing it
 * right now (verify run on the live log): read it again from its start a few
 * times, 100 ms apart, before calling it truncated. Returns the new length.
 */
int audit_verify_reread_tries = 3;

static ssize_t reread_last_line(FILE *f, off_t start, char **line, size_t *cap, ssize_t n)
{
	const struct timespec pause = { 0, 100 * 1000 * 1000 };
	int i;

	for (i = 0; i < audit_verify_reread_tries && (n <= 0 || (*line)[n - 1] != '\n'); i++) {
		nanosleep(&pause, NULL);
		clearerr(f);
		if (fseeko(f, start, SEEK_SET) != 0)
			break;
		n = getline(line, cap, f);
	}
	return n;
}

static int verify_file(verify_state *st, const char *file)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	off_t start;
	uint64_t lineno = 0;
	int rc = 0;
	bool has_nl;

	f = fopen(file, "r");
	if (f == NULL)
		return fail(st, file, 0, "cannot open: %s", strerror(errno));
	while (rc == 0 && (start = ftello(f), n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[n - 1] != '\n' && start >= 0) /* start < 0: not seekable (a pipe) */
			n = reread_last_line(f, start, &line, &cap, n);
		if (n <= 0) {
			rc = fail(st, file, lineno, "cannot read: the line shrank while being read");
			break;
		}
		has_nl = line[n - 1] == '\n';
		rc = check_line(st, file, lineno, line, has_nl ? (size_t)n - 1 : (size_t)n, has_nl);
	}
	if (rc == 0 && ferror(f))
		rc = fail(st, file, lineno + 1, "cannot read: %s", strerror(errno));
	free(line);
	fclose(f);
	return rc;
}

/* After the last line: was the expected head reached? */
static int check_head_reached(verify_state *st)
{
	const audit_verify_opts *o = st->opts;

	if (!o->has_head || st->head_seen)
		return 0;
	if (st->have_last && st->res->first_seq > o->head_seq)
		return fail(st, st->last_file, 0,
			    "head not found: the set begins at seq %llu, after the expected "
			    "head seq %llu",
			    (unsigned long long)st->res->first_seq, (unsigned long long)o->head_seq);
	return fail(st, st->have_last ? st->last_file : NULL, 0,
		    "truncated: the log ends at seq %llu, before the expected head seq %llu (records removed "
		    "from its end, or its last file missing)",
		    (unsigned long long)st->res->last_seq, (unsigned long long)o->head_seq);
}

int audit_verify_files_opts(const char *const *files, size_t n, const audit_verify_opts *opts, audit_verify_result *res)
{
	static const audit_verify_opts none;
	verify_state st;
	size_t i;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	memset(&st, 0, sizeof(st));
	st.res = res;
	st.opts = opts ? opts : &none;
	if (audit_hasher_init(&st.hasher) < 0) {
		snprintf(res->why, sizeof(res->why), "OpenSSL has no SHA-256");
		return 1;
	}
	for (i = 0; i < n && rc == 0; i++)
		rc = verify_file(&st, files[i]);
	if (rc == 0 && st.gap)
		rc = name_gap(&st, NULL, 0);
	if (rc == 0)
		rc = check_head_reached(&st);
	if (st.have_last)
		memcpy(res->head, st.last_hash, sizeof(res->head));
	audit_hasher_free(&st.hasher);
	return rc;
}

int audit_verify_files(const char *const *files, size_t n, audit_verify_result *res)
{
	return audit_verify_files_opts(files, n, NULL, res);
}

int audit_parse_head(const char *s, uint64_t *seq, char hash[AUDIT_HASH_HEX + 1])
{
	const char *colon = strchr(s, ':');
	uint64_t v = 0;
	const char *p;
	size_t i;

	if (colon == NULL || colon == s || strlen(colon + 1) != AUDIT_HASH_HEX)
		return -1;
	for (p = s; p < colon; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	for (i = 0; i < AUDIT_HASH_HEX; i++) {
		char c = colon[1 + i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -1;
		hash[i] = c;
	}
	hash[AUDIT_HASH_HEX] = '\0';
	if (v == 0)
		return -1;
	*seq = v;
	return 0;
}
