/* test_audit_log.c - audit log writer (chain, reopen, restart, flush failure, params), verify and show. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "proxy/cli/audit_cli.h"

#define MAX_LINES 64

static char tmpdir[256];

/* A path inside this run's temp dir. */
static const char *tpath(const char *name)
{
	static char buf[4][512];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
	return buf[k];
}

/* The file's content, split at newlines into lines[] (without '\n'); returns the count. */
typedef struct file_lines {
	char *data;              /* whole file, NUL-terminated */
	char *copy;              /* the copy split into lines */
	size_t size;
	char *line[MAX_LINES];   /* pointers into a second, split copy */
	size_t len[MAX_LINES];
	size_t n;
	bool last_has_nl;
} file_lines;

static void read_lines(const char *path, file_lines *fl)
{
	FILE *f = fopen(path, "r");
	char *copy, *p, *nl;
	long sz;

	memset(fl, 0, sizeof(*fl));
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	rewind(f);
	fl->data = malloc((size_t)sz + 1);
	copy = malloc((size_t)sz + 1);
	assert_true(fl->data && copy);
	assert_int_equal(fread(fl->data, 1, (size_t)sz, f), (size_t)sz);
	fclose(f);
	fl->data[sz] = '\0';
	fl->size = (size_t)sz;
	fl->copy = copy;
	memcpy(copy, fl->data, (size_t)sz + 1);
	for (p = copy; p < copy + sz && fl->n < MAX_LINES; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(copy + sz - p));
		fl->line[fl->n] = p;
		fl->len[fl->n] = nl ? (size_t)(nl - p) : (size_t)(copy + sz - p);
		fl->n++;
		if (nl == NULL)
			break;
		*nl = '\0';
		fl->last_has_nl = true;
	}
	if (fl->n > 0 && fl->line[fl->n - 1] + fl->len[fl->n - 1] == copy + sz)
		fl->last_has_nl = false;
}

static void free_lines(file_lines *fl)
{
	free(fl->data);
	free(fl->copy);
}

/* Write lines (each gets a '\n') to path. */
static void write_lines(const char *path, char *const *lines, const size_t *lens, size_t n)
{
	FILE *f = fopen(path, "w");
	size_t i;

	assert_non_null(f);
	for (i = 0; i < n; i++) {
		fwrite(lines[i], 1, lens[i], f);
		fputc('\n', f);
	}
	fclose(f);
}

static void sha256_hex(const char *p, size_t n, char out[65])
{
	unsigned char md[32];
	int i;

	SHA256((const unsigned char *)p, n, md);
	for (i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static json_t *parse_line(const char *p, size_t n)
{
	json_error_t err;
	json_t *v = json_loadb(p, n, JSON_ALLOW_NUL | JSON_PRESERVE_ORDER, &err);

	if (v == NULL)
		fail_msg("line is not JSON: %s: %.*s", err.text, (int)n, p);
	return v;
}

/* A typical statement record. */
static void statement_record(audit_record *r, const char *sql)
{
	audit_record_init(r);
	r->event = "statement";
	r->session = 17;
	r->actor = "user:jimmie";
	r->role = "bookkeeper";
	r->tenant = "acme";
	r->client = "10.0.0.9:5123";
	r->target = "prod";
	r->environment = "production";
	r->protocol = "simple";
	r->sql = sql;
	r->sql_len = strlen(sql);
	r->decision = "allow";
}

static audit_log *open_ok(const char *path, pgw_audit_fsync mode)
{
	char *err = NULL;
	audit_log *log = audit_open(path, mode, &err);

	if (log == NULL)
		fail_msg("audit_open(%s): %s", path, err ? err : "?");
	return log;
}

/* Append n statement records "SELECT <i>" and flush. */
static void append_n(audit_log *log, int n)
{
	audit_record r;
	char sql[64];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(sql, sizeof(sql), "SELECT %d, 'it''s \"q\"'", i);
		statement_record(&r, sql);
		assert_true(audit_append(log, &r) > 0);
	}
	assert_int_equal(audit_flush(log), 0);
}

static void make_log(const char *path, int n)
{
	audit_log *log;

	unlink(path);
	log = open_ok(path, AUDIT_FSYNC_NEVER);
	append_n(log, n);
	audit_close(log);
}

/* Run verify on the given files; returns the rc and fills res. */
static int verify(audit_verify_result *res, const char *a, const char *b)
{
	const char *files[2] = {a, b};

	return audit_verify_files(files, b ? 2 : 1, res);
}

static void assert_verify_ok(const char *a, const char *b, uint64_t first, uint64_t last)
{
	audit_verify_result res;

	if (verify(&res, a, b) != 0)
		fail_msg("verify failed: %s:%llu: %s", res.bad_file, (unsigned long long)res.bad_line,
			 res.why);
	assert_int_equal(res.first_seq, first);
	assert_int_equal(res.last_seq, last);
	assert_int_equal(res.records, last - first + 1);
}

static void assert_verify_bad(const char *a, const char *b, const char *file, uint64_t line, const char *kind)
{
	audit_verify_result res;

	assert_int_equal(verify(&res, a, b), 1);
	if (res.bad_file == NULL || strcmp(res.bad_file, file) != 0 || res.bad_line != line ||
	    strncmp(res.why, kind, strlen(kind)) != 0)
		fail_msg("want %s:%llu %s..., got %s:%llu: %s", file, (unsigned long long)line, kind,
			 res.bad_file ? res.bad_file : "(none)", (unsigned long long)res.bad_line, res.why);
}

/* --- the writer ----------------------------------------------------------------------------- */

static void test_chain_and_fields(void **state)
{
	const char *path = tpath("chain.jsonl");
	static const char *const keys[] = {
		"ts", "seq", "event", "session", "actor", "role", "tenant", "client",
		"target", "environment", "protocol", "sql", "decision", "prev",
	};
	static const char *const result_keys[] = {
		"ts", "seq", "event", "session", "ref", "tag", "duration_us", "prev",
	};
	audit_record r;
	file_lines fl;
	char want_prev[65];
	json_t *v;
	size_t i, k;
	const char *key;
	audit_log *log;

	unlink(path);
	log = open_ok(path, AUDIT_FSYNC_ALWAYS);
	audit_record_init(&r);
	r.event = "start";
	assert_int_equal(audit_append(log, &r), 1);
	statement_record(&r, "SELECT 1");
	assert_int_equal(audit_append(log, &r), 2);
	assert_true(audit_pending(log));
	audit_record_init(&r);
	r.event = "result";
	r.session = 17;
	r.ref = 2;
	r.tag = "SELECT 1";
	r.duration_us = 0;
	assert_int_equal(audit_append(log, &r), 3);
	assert_int_equal(audit_flush(log), 0);
	assert_false(audit_pending(log));
	assert_int_equal(audit_last_seq(log), 3);
	assert_true(audit_healthy(log));
	audit_close(log);

	read_lines(path, &fl);
	assert_int_equal(fl.n, 3);
	assert_true(fl.last_has_nl);
	strcpy(want_prev, audit_zero_prev);
	for (i = 0; i < fl.n; i++) {
		v = parse_line(fl.line[i], fl.len[i]);
		assert_int_equal(json_integer_value(json_object_get(v, "seq")), i + 1);
		assert_string_equal(json_string_value(json_object_get(v, "prev")), want_prev);
		/* ts: 2026-11-22T01:02:03.123456Z */
		key = json_string_value(json_object_get(v, "ts"));
		assert_int_equal(strlen(key), 27);
		assert_true(key[4] == '-' && key[10] == 'T' && key[19] == '.' && key[26] == 'Z');
		sha256_hex(fl.line[i], fl.len[i], want_prev);
		json_decref(v);
	}
	/* Field order and omission of absent fields. */
	v = parse_line(fl.line[0], fl.len[0]);
	assert_int_equal(json_object_size(v), 4);
	json_decref(v);
	v = parse_line(fl.line[1], fl.len[1]);
	k = 0;
	{
		void *it;

		for (it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it), k++)
			assert_string_equal(json_object_iter_key(it), keys[k]);
		assert_int_equal(k, sizeof(keys) / sizeof(keys[0]));
		json_decref(v);
		v = parse_line(fl.line[2], fl.len[2]);
		k = 0;
		for (it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it), k++)
			assert_string_equal(json_object_iter_key(it), result_keys[k]);
		assert_int_equal(k, sizeof(result_keys) / sizeof(result_keys[0]));
	}
	json_decref(v);
	free_lines(&fl);
	assert_verify_ok(path, NULL, 1, 3);
}

static void test_restart_continues(void **state)
{
	const char *path = tpath("restart.jsonl");
	audit_log *log;
	file_lines fl;
	char h[65];
	json_t *v;

	make_log(path, 3);
	log = open_ok(path, AUDIT_FSYNC_BATCH);
	assert_int_equal(audit_last_seq(log), 3);
	append_n(log, 2);
	audit_sync_tick(log);
	audit_close(log);
	read_lines(path, &fl);
	assert_int_equal(fl.n, 5);
	v = parse_line(fl.line[3], fl.len[3]);
	sha256_hex(fl.line[2], fl.len[2], h);
	assert_int_equal(json_integer_value(json_object_get(v, "seq")), 4);
	assert_string_equal(json_string_value(json_object_get(v, "prev")), h);
	json_decref(v);
	free_lines(&fl);
	assert_verify_ok(path, NULL, 1, 5);
}

static void test_reopen_after_rotation(void **state)
{
	const char *path = tpath("rot.jsonl"), *old = tpath("rot.jsonl.1");
	audit_log *log;
	file_lines a, b;
	char h[65], *err = NULL;
	json_t *v;

	unlink(path);
	log = open_ok(path, AUDIT_FSYNC_NEVER);
	append_n(log, 3);
	assert_int_equal(rename(path, old), 0); /* logrotate */
	assert_int_equal(audit_reopen(log, &err), 0);
	append_n(log, 2);
	/* A reopen without rotation (plain SIGHUP) keeps going in the same file. */
	assert_int_equal(audit_reopen(log, &err), 0);
	append_n(log, 1);
	audit_close(log);

	read_lines(old, &a);
	read_lines(path, &b);
	assert_int_equal(a.n, 3);
	assert_int_equal(b.n, 3);
	v = parse_line(b.line[0], b.len[0]);
	sha256_hex(a.line[2], a.len[2], h);
	assert_int_equal(json_integer_value(json_object_get(v, "seq")), 4);
	assert_string_equal(json_string_value(json_object_get(v, "prev")), h);
	json_decref(v);
	free_lines(&a);
	free_lines(&b);
	assert_verify_ok(old, path, 1, 6);
	assert_verify_ok(path, NULL, 4, 6); /* alone: anchored at its first record */
	assert_verify_bad(path, old, old, 1, "reordered"); /* wrong order */
	/* A restart after rotation continues from the new file's tail. */
	log = open_ok(path, AUDIT_FSYNC_NEVER);
	assert_int_equal(audit_last_seq(log), 6);
	audit_close(log);
}

static void test_torn_last_line(void **state)
{
	const char *path = tpath("torn.jsonl");
	audit_log *log;
	int fd;

	make_log(path, 4);
	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"ts\":\"2026-11-22T0", 19), 19); /* a crash mid-write */
	close(fd);
	assert_verify_bad(path, NULL, path, 5, "truncated");
	log = open_ok(path, AUDIT_FSYNC_NEVER); /* cuts the fragment (with a warning) */
	assert_int_equal(audit_last_seq(log), 4);
	append_n(log, 1);
	audit_close(log);
	assert_verify_ok(path, NULL, 1, 5);
}

static void test_open_rejects_foreign_file(void **state)
{
	const char *path = tpath("foreign.txt");
	FILE *f = fopen(path, "w");
	char *err = NULL;

	fputs("hello world\n", f);
	fclose(f);
	assert_null(audit_open(path, AUDIT_FSYNC_NEVER, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, path));
	free(err);
	err = NULL;
	assert_null(audit_open("/nonexistent-dir/x.jsonl", AUDIT_FSYNC_NEVER, &err));
	assert_non_null(strstr(err, "/nonexistent-dir/x.jsonl"));
	free(err);
}

/* --- flush failure -------------------------------------------------------------------------- */

static void test_flush_failure_dev_full(void **state)
{
	audit_log *log = open_ok("/dev/full", AUDIT_FSYNC_NEVER);
	audit_record r;

	statement_record(&r, "SELECT 1");
	assert_int_equal(audit_append(log, &r), 1);
	assert_int_equal(audit_flush(log), -1);
	assert_false(audit_healthy(log));
	assert_int_equal(audit_write_errors(log), 1);
	assert_false(audit_pending(log));
	assert_int_equal(audit_append(log, &r), 1); /* the chain was rolled back */
	assert_int_equal(audit_flush(log), -1);
	assert_int_equal(audit_write_errors(log), 2);
	audit_close(log);
}

/* The file limit cuts a batch in the middle: the partial bytes go, the file verifies, seq continues. */
static void test_flush_failure_partial_write(void **state)
{
	const char *path = tpath("fsize.jsonl");
	struct rlimit old, lim;
	struct stat st;
	audit_log *log;
	off_t before;

	make_log(path, 3);
	assert_int_equal(stat(path, &st), 0);
	before = st.st_size;
	log = open_ok(path, AUDIT_FSYNC_NEVER);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)before + 300; /* room for one record and part of the next */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	{
		audit_record r;
		int i;

		for (i = 0; i < 4; i++) {
			statement_record(&r, "UPDATE accounts SET balance = balance - 100 WHERE id = 42");
			assert_int_equal(audit_append(log, &r), 4 + (uint64_t)i);
		}
	}
	assert_int_equal(audit_flush(log), -1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, before); /* the partial write was cut off */
	assert_int_equal(audit_write_errors(log), 1);
	assert_false(audit_healthy(log));
	assert_verify_ok(path, NULL, 1, 3);
	append_n(log, 2); /* recovers: seq 4, 5 */
	assert_true(audit_healthy(log));
	audit_close(log);
	assert_verify_ok(path, NULL, 1, 5);
	signal(SIGXFSZ, SIG_DFL);
}

/* --- params --------------------------------------------------------------------------------- */

static void test_params(void **state)
{
	const char *path = tpath("params.jsonl");
	char *big = malloc(5000), *bin = malloc(5000);
	audit_param p[6];
	audit_record r;
	audit_log *log;
	file_lines fl;
	json_t *v, *arr, *e;
	const char *s;

	memset(big, 'a', 5000);
	memcpy(big + 4094, "\xe2\x82\xac", 3); /* a euro sign across the 4096-byte cut */
	memset(bin, 0xab, 5000);
	p[0] = (audit_param){(const uint8_t *)"it's \"x\"\n", 9, 0};
	p[1] = (audit_param){NULL, -1, 0};
	p[2] = (audit_param){(const uint8_t *)"\x00\x01\xff", 3, 1};
	p[3] = (audit_param){(const uint8_t *)big, 5000, 0};
	p[4] = (audit_param){(const uint8_t *)bin, 5000, 1};
	p[5] = (audit_param){(const uint8_t *)"", 0, 0};
	unlink(path);
	log = open_ok(path, AUDIT_FSYNC_NEVER);
	statement_record(&r, "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6)");
	r.protocol = "extended";
	r.params = p;
	r.n_params = 6;
	audit_append(log, &r);
	statement_record(&r, "SELECT 1");
	r.params = p;
	r.n_params = 0;
	audit_append(log, &r);
	assert_int_equal(audit_flush(log), 0);
	audit_close(log);

	read_lines(path, &fl);
	v = parse_line(fl.line[0], fl.len[0]);
	arr = json_object_get(v, "params");
	assert_int_equal(json_array_size(arr), 6);
	assert_string_equal(json_string_value(json_array_get(arr, 0)), "it's \"x\"\n");
	assert_true(json_is_null(json_array_get(arr, 1)));
	assert_string_equal(json_string_value(json_array_get(arr, 2)), "\\x0001ff");
	e = json_array_get(arr, 3);
	assert_true(json_is_true(json_object_get(e, "truncated")));
	assert_int_equal(json_integer_value(json_object_get(e, "len")), 5000);
	s = json_string_value(json_object_get(e, "prefix"));
	assert_int_equal(strlen(s), 4094); /* cut back before the euro sign, not through it */
	e = json_array_get(arr, 4);
	assert_int_equal(json_integer_value(json_object_get(e, "len")), 5000);
	s = json_string_value(json_object_get(e, "prefix"));
	assert_int_equal(strlen(s), 2 + 2 * AUDIT_PARAM_MAX);
	assert_memory_equal(s, "\\xabab", 6);
	assert_string_equal(json_string_value(json_array_get(arr, 5)), "");
	json_decref(v);
	v = parse_line(fl.line[1], fl.len[1]);
	assert_int_equal(json_array_size(json_object_get(v, "params")), 0);
	json_decref(v);
	free_lines(&fl);
	free(big);
	free(bin);
}

/* Hostile statement text still gives a verifiable, parseable log. */
static void test_hostile_sql(void **state)
{
	static const char sql[] = "SELECT '\0\x01\x1b[2J\"\\\xff\xc0\xaf\xed\xa0\x80\xe2\x82'";
	const char *path = tpath("hostile.jsonl");
	audit_record r;
	audit_log *log;
	file_lines fl;
	json_t *v;

	unlink(path);
	log = open_ok(path, AUDIT_FSYNC_NEVER);
	statement_record(&r, sql);
	r.sql_len = sizeof(sql) - 1;
	r.actor = "user:\"evil\"\n";
	audit_append(log, &r);
	assert_int_equal(audit_flush(log), 0);
	audit_close(log);
	read_lines(path, &fl);
	assert_int_equal(fl.n, 1);
	v = parse_line(fl.line[0], fl.len[0]);
	assert_string_equal(json_string_value(json_object_get(v, "actor")), "user:\"evil\"\n");
	assert_int_equal(json_string_length(json_object_get(v, "sql")), sizeof(sql) - 1 + 8);
	json_decref(v);
	free_lines(&fl);
	assert_verify_ok(path, NULL, 1, 1);
}

/* --- verify --------------------------------------------------------------------------------- */

/* Build a 6-record log, mutate it with 'mut', and expect verify to name 'line' as 'kind'. */
static void mutate_and_check(const char *name, void (*mut)(file_lines *, char **, size_t *, size_t *),
			     uint64_t line, const char *kind)
{
	const char *path = tpath(name);
	file_lines fl;
	char *lines[MAX_LINES];
	size_t lens[MAX_LINES], n, i;

	make_log(path, 6);
	read_lines(path, &fl);
	for (i = 0; i < fl.n; i++) {
		lines[i] = fl.line[i];
		lens[i] = fl.len[i];
	}
	n = fl.n;
	mut(&fl, lines, lens, &n);
	write_lines(path, lines, lens, n);
	free_lines(&fl);
	assert_verify_bad(path, NULL, path, line, kind);
}

static void mut_edit(file_lines *fl, char **l, size_t *len, size_t *n)
{
	char *p = strstr(l[2], "SELECT 2");

	p[7] = '9'; /* still valid JSON, same seq and prev */
}

static void mut_delete(file_lines *fl, char **l, size_t *len, size_t *n)
{
	memmove(l + 2, l + 3, (*n - 3) * sizeof(*l));
	memmove(len + 2, len + 3, (*n - 3) * sizeof(*len));
	(*n)--;
}

static void mut_swap(file_lines *fl, char **l, size_t *len, size_t *n)
{
	char *t = l[1];
	size_t tl = len[1];

	l[1] = l[2];
	len[1] = len[2];
	l[2] = t;
	len[2] = tl;
}

static void mut_not_json(file_lines *fl, char **l, size_t *len, size_t *n)
{
	l[3] = "hello";
	len[3] = 5;
}

static void mut_delete_last(file_lines *fl, char **l, size_t *len, size_t *n)
{
	/* Deleting the last line is undetectable by a chain; deleting the one before is not. */
	l[4] = l[5];
	len[4] = len[5];
	(*n)--;
}

static void test_verify_detects(void **state)
{
	const char *path = tpath("trunc.jsonl");
	struct stat st;

	mutate_and_check("edit.jsonl", mut_edit, 3, "edited");
	mutate_and_check("delete.jsonl", mut_delete, 3, "deleted");
	mutate_and_check("swap.jsonl", mut_swap, 2, "reordered");
	mutate_and_check("notjson.jsonl", mut_not_json, 4, "not JSON");
	mutate_and_check("dellast.jsonl", mut_delete_last, 5, "deleted");
	/* truncated: the last line loses its end */
	make_log(path, 6);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 10), 0);
	assert_verify_bad(path, NULL, path, 6, "truncated");
	/* unreadable */
	{
		audit_verify_result res;

		assert_int_equal(verify(&res, tpath("missing.jsonl"), NULL), 1);
		assert_int_equal(res.bad_line, 0);
		assert_non_null(strstr(res.why, "cannot open"));
	}
}

static void test_verify_first_record_prev(void **state)
{
	const char *path = tpath("first.jsonl");
	file_lines fl;
	char *lines[MAX_LINES];
	size_t lens[MAX_LINES], i;

	make_log(path, 2);
	read_lines(path, &fl);
	for (i = 0; i < fl.n; i++) {
		lines[i] = fl.line[i];
		lens[i] = fl.len[i];
	}
	lines[0][fl.len[0] - 3] = '1'; /* last hex digit of the first prev */
	write_lines(path, lines, lens, fl.n);
	free_lines(&fl);
	assert_verify_bad(path, NULL, path, 1, "edited");
}

static void test_verify_empty(void **state)
{
	const char *path = tpath("empty.jsonl");
	audit_verify_result res;
	FILE *f = fopen(path, "w");

	fclose(f);
	assert_int_equal(verify(&res, path, NULL), 0);
	assert_int_equal(res.records, 0);
}

/* --- show ----------------------------------------------------------------------------------- */

static char *show(const audit_show_filter *f, const char *file, int *rc)
{
	const char *files[1] = {file};
	char *buf = NULL;
	size_t sz = 0;
	FILE *out = open_memstream(&buf, &sz);
	FILE *err = fopen("/dev/null", "w");

	*rc = audit_show_files(files, 1, f, out, err);
	fclose(out);
	fclose(err);
	return buf;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static const char show_fixture[] =
	"{\"ts\":\"2026-11-22T01:00:00.000000Z\",\"seq\":1,\"event\":\"start\",\"prev\":\"0\"}\n"
	"{\"ts\":\"2026-11-22T01:00:01.000000Z\",\"seq\":2,\"event\":\"statement\",\"actor\":\"user:jimmie\","
	"\"target\":\"prod\",\"sql\":\"SELECT\\n  1\\u001b[2J\",\"decision\":\"allow\",\"prev\":\"0\"}\n"
	"{\"ts\":\"2026-11-22T01:00:02.000000Z\",\"seq\":3,\"event\":\"statement\",\"actor\":\"user:brent\","
	"\"target\":\"prod\",\"sql\":\"DELETE FROM t\",\"decision\":\"deny\","
	"\"rule\":\"write-outside-window\",\"prev\":\"0\"}\n"
	"not json\n"
	"{\"ts\":\"2026-11-22T03:00:03.000000+02:00\",\"seq\":4,\"event\":\"result\","
	"\"actor\":\"user:jimmie\",\"ref\":2,\"tag\":\"SELECT 1\",\"duration_us\":120,\"prev\":\"0\"}\n";

static void test_show(void **state)
{
	const char *path = tpath("show.jsonl");
	audit_show_filter f;
	FILE *fx = fopen(path, "w");
	char *out;
	int rc;

	fputs(show_fixture, fx);
	fclose(fx);
	memset(&f, 0, sizeof(f));
	f.width = 250;
	out = show(&f, path, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(count_lines(out), 1 + 3); /* header + 3 records: the result is on its statement's line */
	assert_non_null(strstr(out, "SELECT 1\\x1b[2J")); /* newline folded, ESC shown safely */
	assert_null(strchr(out, '\x1b'));
	assert_non_null(strstr(out, "SELECT 1 120us"));
	assert_null(strstr(out, "[result"));
	assert_int_equal(strncmp(out, "SEQ ", 4), 0);
	free(out);

	/* Asked for explicitly, results are lines of their own. */
	f.event = "result";
	out = show(&f, path, &rc);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "[result ref=2 tag=SELECT 1 120us]"));
	free(out);
	f.event = NULL;

	/* target, rule, session filters */
	f.rule = "write-outside-window";
	out = show(&f, path, &rc);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "DELETE FROM t"));
	free(out);
	f.rule = NULL;
	f.target = "staging";
	out = show(&f, path, &rc);
	assert_int_equal(count_lines(out), 1);
	free(out);
	f.target = NULL;

	f.decision = "deny";
	out = show(&f, path, &rc);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "write-outside-window"));
	free(out);

	f.decision = NULL;
	f.actor = "user:jimmie";
	f.json = true;
	out = show(&f, path, &rc);
	assert_int_equal(count_lines(out), 2);
	assert_int_equal(strncmp(out, "{\"ts\":\"2026-11-22T01:00:01.000000Z\",\"seq\":2,", 44), 0);
	free(out);

	/* 03:00:03+02:00 is 01:00:03Z; since is inclusive, until exclusive */
	f.actor = NULL;
	assert_int_equal(audit_parse_rfc3339("2026-11-22T01:00:01Z", &f.since_us), 0);
	assert_int_equal(audit_parse_rfc3339("2026-11-22T01:00:03Z", &f.until_us), 0);
	f.has_since = f.has_until = true;
	out = show(&f, path, &rc);
	assert_int_equal(count_lines(out), 2); /* seq 2 and 3 */
	free(out);

	/* a long statement is shortened to the width, unless --wide */
	memset(&f, 0, sizeof(f));
	f.width = 20;
	out = show(&f, path, &rc);
	assert_non_null(strstr(out, "DELETE FROM t"));
	free(out);
	f.wide = true;
	out = show(&f, path, &rc);
	assert_non_null(strstr(out, "SELECT 1\\x1b[2J"));
	free(out);
}

typedef struct time_case {
	const char *s;
	int ok;
	int64_t us;
} time_case;

static void test_rfc3339(void **state)
{
	static const time_case t[] = {
		{"1970-01-01T00:00:00Z", 0, 0},
		{"2026-11-22T01:02:03.123456Z", 0, 1795309323123456LL},
		{"2026-11-22T03:02:03.123456+02:00", 0, 1795309323123456LL},
		{"2026-11-21t20:02:03.1234569-05:00", 0, 1795309323123456LL},
		{"2026-11-22 01:02:03z", 0, 1795309323000000LL},
		{"2024-02-29T00:00:00Z", 0, 1709164800000000LL},
		{"2026-02-29T00:00:00Z", -1, 0},
		{"2026-11-22T01:02:03", -1, 0},
		{"2026-11-22T24:00:00Z", -1, 0},
		{"2026-11-22T01:02:03.Z", -1, 0},
		{"2026-11-22T01:02:03Zx", -1, 0},
		{"2026-13-01T00:00:00Z", -1, 0},
		{"", -1, 0},
	};
	int64_t us;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		us = 0;
		if (audit_parse_rfc3339(t[i].s, &us) != t[i].ok || (t[i].ok == 0 && us != t[i].us))
			fail_msg("%s: got %lld", t[i].s, (long long)us);
	}
}

static void test_cli_usage(void **state)
{
	char *a1[] = {"audit", NULL};
	char *a2[] = {"audit", "frob", NULL};
	char *a3[] = {"audit", "verify", NULL};
	char *a4[] = {"audit", "show", "--since", "yesterday", "x", NULL};
	char *a5[] = {"audit", "show", "--bogus", "x", NULL};
	char *a6[] = {"audit", "show", "--actor", NULL};
	char *a7[] = {"audit", "verify", (char *)tpath("chain.jsonl"), NULL};
	char *a8[] = {"audit", "verify", (char *)tpath("edit.jsonl"), NULL};
	char *a9[] = {"audit", "show", "--decision", "allowed", "x", NULL};
	char *a10[] = {"audit", "show", "--event", "statements", "x", NULL};
	char *a11[] = {"audit", "show", "--session", "12x", "x", NULL};
	char *a12[] = {"audit", "verify", "--expect-head", "1:xyz", "x", NULL};
	char *a13[] = {"audit", "report", "--format", "pdf", "x", NULL};
	char *a14[] = {"audit", "report", "--help", NULL};

	assert_int_equal(audit_cli_main(1, a1), 2);
	assert_int_equal(audit_cli_main(2, a2), 2);
	assert_int_equal(audit_cli_main(2, a3), 2);
	assert_int_equal(audit_cli_main(5, a4), 2);
	assert_int_equal(audit_cli_main(4, a5), 2);
	assert_int_equal(audit_cli_main(3, a6), 2);
	assert_int_equal(audit_cli_main(3, a7), 0);
	assert_int_equal(audit_cli_main(3, a8), 1);
	assert_int_equal(audit_cli_main(5, a9), 2);
	assert_int_equal(audit_cli_main(5, a10), 2);
	assert_int_equal(audit_cli_main(5, a11), 2);
	assert_int_equal(audit_cli_main(5, a12), 2);
	assert_int_equal(audit_cli_main(5, a13), 2);
	assert_int_equal(audit_cli_main(3, a14), 0);
}


/* --- evidence fields, checkpoints, heads -------------------------------------------------- */

/* The fields of process and login records, in the writer's order, as valid JSON. */
static void test_evidence_fields(void **state)
{
	const char *path = tpath("evidence.jsonl");
	audit_record r;
	audit_log *log;
	file_lines fl;
	json_t *rec;

	unlink(path);
	log = open_ok(path, AUDIT_FSYNC_NEVER);
	audit_record_init(&r);
	r.event = "reload";
	r.config = "ab";
	r.windows = "[{\"name\":\"w\",\"actors\":[]}]";
	r.accepted = 0;
	r.error = "x.ini:3: bad \"value\"";
	assert_int_equal(audit_append(log, &r), 1);
	audit_record_init(&r);
	r.event = "connect";
	r.application_name = "psql\n";
	audit_append(log, &r);
	audit_record_init(&r);
	r.event = "statement";
	r.decision = "deny";
	r.reason = "pgwarden: no";
	audit_append(log, &r);
	assert_int_equal(audit_flush(log), 0);
	audit_close(log);
	read_lines(path, &fl);
	assert_int_equal(fl.n, 3);
	assert_non_null(strstr(fl.line[0], ",\"config\":\"ab\",\"windows\":[{\"name\":\"w\",\"actors\":[]}],"
					   "\"accepted\":false,\"error\":\"x.ini:3: bad \\\"value\\\"\",\"prev\":"));
	assert_non_null(strstr(fl.line[1], ",\"application_name\":\"psql\\n\","));
	assert_non_null(strstr(fl.line[2], ",\"decision\":\"deny\",\"reason\":\"pgwarden: no\","));
	rec = json_loadb(fl.line[0], fl.len[0], 0, NULL);
	assert_true(json_is_false(json_object_get(rec, "accepted")));
	json_decref(rec);
	free_lines(&fl);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A log of a few records with checkpoints signed by 'key_path'; returns its last seq. */
static uint64_t signed_log(const char *path, const char *key_path)
{
	char err[512];
	audit_signer *k = audit_signer_load(key_path, true, err, sizeof(err));
	audit_record r;
	audit_log *log;
	uint64_t last;

	if (k == NULL)
		fail_msg("%s", err);
	unlink(path);
	log = open_ok(path, AUDIT_FSYNC_NEVER);
	audit_set_signer(log, k);
	assert_int_equal(audit_append_checkpoint(log), 1); /* over seq 0 and the zero hash */
	statement_record(&r, "SELECT 1");
	audit_append(log, &r);
	audit_append(log, &r);
	assert_int_equal(audit_append_checkpoint(log), 4);
	audit_append(log, &r);
	last = audit_append_checkpoint(log);
	assert_int_equal(audit_flush(log), 0);
	audit_close(log);
	return last;
}

static int verify_key(const char *file, const char *key_path, audit_verify_result *res)
{
	const char *files[1] = {file};
	audit_verify_opts o;
	char err[512];
	int rc;

	memset(&o, 0, sizeof(o));
	o.key = key_path ? audit_signer_load(key_path, false, err, sizeof(err)) : NULL;
	if (key_path && o.key == NULL)
		fail_msg("%s", err);
	rc = audit_verify_files_opts(files, 1, &o, res);
	audit_signer_free((audit_signer *)o.key);
	return rc;
}

/* Change the first hex digit of the first checkpoint's signature. */
static void flip_first_sig(const char *path)
{
	file_lines fl;
	char *p;

	read_lines(path, &fl);
	p = strstr(fl.data, "\"sig\":\"");
	assert_non_null(p);
	p += 7;
	*p = *p == '0' ? '1' : '0';
	write_file(path, fl.data);
	free_lines(&fl);
}

static void test_checkpoints_hmac(void **state)
{
	const char *key = tpath("hmac.key"), *other = tpath("other.key"), *path = tpath("hmac.jsonl");
	audit_verify_result res;
	char err[512];

	write_file(key, "0123456789abcdef0123456789abcdef\n");
	write_file(other, "0123456789abcdef0123456789abcdeF\n");
	assert_int_equal(signed_log(path, key), 6);
	assert_int_equal(verify_key(path, key, &res), 0);
	assert_int_equal(res.checkpoints, 3);
	assert_int_equal(res.last_checkpoint, 6);
	assert_int_equal(res.start, VERIFY_START_SEQ1);
	assert_int_equal(verify_key(path, other, &res), 1);
	assert_non_null(strstr(res.why, "bad checkpoint"));
	assert_int_equal(res.bad_line, 1);
	/* Without a key, checkpoints are counted, not checked. */
	assert_int_equal(verify_key(path, NULL, &res), 0);
	assert_int_equal(res.checkpoints, 3);
	/* A forged signature fails with the right key. */
	flip_first_sig(path);
	assert_int_equal(verify_key(path, key, &res), 1);
	assert_non_null(strstr(res.why, "bad checkpoint"));
	/* A short secret is refused. */
	write_file(other, "short\n");
	assert_null(audit_signer_load(other, true, err, sizeof(err)));
	assert_non_null(strstr(err, "at least"));
}

static void test_checkpoints_ed25519(void **state)
{
	const char *priv = tpath("ed.pem"), *pub = tpath("ed.pub"), *path = tpath("ed.jsonl");
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	audit_verify_result res;
	char err[512];
	FILE *f;

	assert_non_null(k);
	f = fopen(priv, "w");
	assert_true(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
	fclose(f);
	f = fopen(pub, "w");
	assert_true(PEM_write_PUBKEY(f, k));
	fclose(f);
	EVP_PKEY_free(k);
	signed_log(path, priv);
	assert_int_equal(verify_key(path, pub, &res), 0);
	assert_int_equal(res.checkpoints, 3);
	assert_int_equal(verify_key(path, priv, &res), 0);
	/* The public key cannot sign. */
	assert_null(audit_signer_load(pub, true, err, sizeof(err)));
	assert_non_null(strstr(err, "Ed25519"));
	/* A changed signature fails; so does an algorithm swapped to HMAC. */
	flip_first_sig(path);
	assert_int_equal(verify_key(path, pub, &res), 1);
	assert_non_null(strstr(res.why, "bad checkpoint"));
}

static void test_expect_head_and_start(void **state)
{
	const char *path = tpath("head.jsonl"), *key = tpath("head.key"), *cut = tpath("cut.jsonl");
	const char *files[1] = {path};
	audit_verify_result res;
	audit_verify_opts o;
	file_lines fl;
	uint64_t seq;
	char hash[AUDIT_HASH_HEX + 1], text[4096];
	size_t i;

	assert_int_equal(audit_parse_head("3:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789", &seq, hash), 0);
	assert_int_equal(seq, 3);
	assert_string_equal(hash, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	assert_int_equal(audit_parse_head("0:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", &seq, hash), -1);
	assert_int_equal(audit_parse_head("3:abc", &seq, hash), -1);
	assert_int_equal(audit_parse_head(":abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789", &seq, hash), -1);
	assert_int_equal(audit_parse_head("3", &seq, hash), -1);

	write_file(key, "0123456789abcdef0123456789abcdef");
	signed_log(path, key);
	assert_int_equal(audit_verify_files(files, 1, &res), 0);
	memset(&o, 0, sizeof(o));
	o.has_head = true;
	o.head_seq = res.last_seq;
	memcpy(o.head_hash, res.head, sizeof(o.head_hash));
	assert_int_equal(audit_verify_files_opts(files, 1, &o, &res), 0);
	/* Cut the last two lines: the head is gone. */
	read_lines(path, &fl);
	text[0] = '\0';
	for (i = 0; i + 2 < fl.n; i++) {
		strncat(text, fl.line[i], sizeof(text) - strlen(text) - 2);
		strcat(text, "\n");
	}
	write_file(cut, text);
	files[0] = cut;
	assert_int_equal(audit_verify_files_opts(files, 1, &o, &res), 1);
	assert_non_null(strstr(res.why, "truncated"));
	/* The same file without its first two lines starts at seq 3, not a checkpoint. */
	text[0] = '\0';
	for (i = 2; i < fl.n; i++) {
		strncat(text, fl.line[i], sizeof(text) - strlen(text) - 2);
		strcat(text, "\n");
	}
	write_file(cut, text);
	assert_int_equal(audit_verify_files(files, 1, &res), 0);
	assert_int_equal(res.start, VERIFY_START_ELSEWHERE);
	assert_int_equal(verify_key(cut, key, &res), 1);
	assert_non_null(strstr(res.why, "unanchored start"));
	/* Without its first three it starts at the checkpoint of seq 4: anchored. */
	text[0] = '\0';
	for (i = 3; i < fl.n; i++) {
		strncat(text, fl.line[i], sizeof(text) - strlen(text) - 2);
		strcat(text, "\n");
	}
	write_file(cut, text);
	assert_int_equal(verify_key(cut, key, &res), 0);
	assert_int_equal(res.start, VERIFY_START_CHECKPOINT);
	free_lines(&fl);
}

static void test_parse_when(void **state)
{
	int64_t us, now = (int64_t)time(NULL) * 1000000;

	assert_int_equal(audit_parse_when("30m", &us), 0);
	assert_true(us <= now - 1800LL * 1000000 + 2000000 && us >= now - 1800LL * 1000000 - 2000000);
	assert_int_equal(audit_parse_when("2h", &us), 0);
	assert_true(us <= now - 7200LL * 1000000 + 2000000);
	assert_int_equal(audit_parse_when("1d", &us), 0);
	assert_int_equal(audit_parse_when("45s", &us), 0);
	assert_int_equal(audit_parse_when("2026-11-22T01:02:03Z", &us), 0);
	assert_int_equal(us, 1795309323000000LL);
	assert_int_equal(audit_parse_when("2w", &us), -1);
	assert_int_equal(audit_parse_when("h", &us), -1);
	assert_int_equal(audit_parse_when("-2h", &us), -1);
	assert_int_equal(audit_parse_when("2hh", &us), -1);
	assert_int_equal(audit_parse_when("99999999999999h", &us), -1);
	assert_int_equal(audit_parse_when("", &us), -1);
}

/* Not an assertion: the cost of one typical statement record, append + flush (fsync never). */
static void test_bench_append_flush(void **state)
{
	const char *path = tpath("bench.jsonl");
	struct timespec t0, t1;
	audit_record r;
	audit_log *log;
	int i, n = 20000;
	double us;

	unlink(path);
	log = open_ok(path, AUDIT_FSYNC_NEVER);
	statement_record(&r, "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		audit_append(log, &r);
		assert_int_equal(audit_flush(log), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / n;
	print_message("audit_append+audit_flush: %.2f us per statement record\n", us);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		audit_append(log, &r);
	assert_int_equal(audit_flush(log), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / n;
	print_message("audit_append alone (one flush per %d): %.2f us per record\n", n, us);
	audit_close(log);
	assert_verify_ok(path, NULL, 1, 2 * (uint64_t)n);
}

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/pgw-audit-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_and_fields),
		cmocka_unit_test(test_restart_continues),
		cmocka_unit_test(test_reopen_after_rotation),
		cmocka_unit_test(test_torn_last_line),
		cmocka_unit_test(test_open_rejects_foreign_file),
		cmocka_unit_test(test_flush_failure_dev_full),
		cmocka_unit_test(test_flush_failure_partial_write),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_hostile_sql),
		cmocka_unit_test(test_verify_detects),
		cmocka_unit_test(test_verify_first_record_prev),
		cmocka_unit_test(test_verify_empty),
		cmocka_unit_test(test_show),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_cli_usage),
		cmocka_unit_test(test_evidence_fields),
		cmocka_unit_test(test_checkpoints_hmac),
		cmocka_unit_test(test_checkpoints_ed25519),
		cmocka_unit_test(test_expect_head_and_start),
		cmocka_unit_test(test_parse_when),
		cmocka_unit_test(test_bench_append_flush),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
