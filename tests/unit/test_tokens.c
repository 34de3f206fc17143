/* test_tokens.c - the token file: good records, every bad field, protected roles, SCRAM, lookup, expiry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/config.h"
#include "conf/tokens.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0..31 */
#define KEY_B "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=" /* bytes 100..131 */
#define KEY_31 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==" /* 31 bytes */
#define SALT "c2FsdHNhbHRzYWx0c2FsdA=="                     /* "saltsaltsaltsalt" */
#define SCRAM_OK "SCRAM-SHA-256$4096:" SALT "$" KEY_A ":" KEY_B

static char *const protected_roles[] = { "anon", "guest", "public" };

static char tmp_path[64];

/* Write 'text' to a fresh temp file; returns its path (static buffer). */
static const char *write_tmp(const char *text)
{
	int fd;
	FILE *f;

	strcpy(tmp_path, "/tmp/pgw_tokens_XXXXXX");
	fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return tmp_path;
}

static pgw_token_table *load_text(const char *text, pgw_errors *e)
{
	const char *path = write_tmp(text);
	pgw_token_table *t = tokens_load(path, protected_roles, 3, e);

	unlink(path);
	return t;
}

static void test_good_records(void **state)
{
	pgw_errors e = { 0 };
	pgw_token_table *t = load_text("# secret actor role tenant\n"
				       "\n"
				       "sha256:" HEX64 "  user:jimmie  bookkeeper  acme  expires=2026-12-31T00:00:00Z\n"
				       "   " SCRAM_OK "\tagent:tally agent_rw acme targets=staging,dev   # trailing\r\n"
				       "sha256:" HEX64 " user:nobody reader -\n",
				       &e);
	const pgw_token *tok;
	size_t n;

	(void)state;
	assert_int_equal(e.n, 0);
	assert_non_null(t);
	assert_int_equal(t->n, 3);

	tok = tokens_find_actor(t, "user:jimmie", &n);
	assert_int_equal(n, 1);
	assert_int_equal(tok->kind, TOKEN_SHA256);
	assert_int_equal(tok->sha256[0], 0x01);
	assert_int_equal(tok->sha256[31], 0xef);
	assert_string_equal(tok->role, "bookkeeper");
	assert_string_equal(tok->tenant, "acme");
	assert_int_equal(tok->line, 3);
	assert_true(tok->expires > 0);

	tok = tokens_find_actor(t, "agent:tally", &n);
	assert_int_equal(n, 1);
	assert_int_equal(tok->kind, TOKEN_SCRAM);
	assert_int_equal(tok->scram_iterations, 4096);
	assert_int_equal(tok->scram_salt_len, 16);
	assert_memory_equal(tok->scram_salt, "saltsaltsaltsalt", 16);
	for (int i = 0; i < 32; i++) {
		assert_int_equal(tok->stored_key[i], i);
		assert_int_equal(tok->server_key[i], 100 + i);
	}
	assert_int_equal(tok->n_targets, 2);
	assert_string_equal(tok->targets[1], "dev");
	assert_int_equal(tok->expires, 0);

	tok = tokens_find_actor(t, "user:nobody", &n);
	assert_int_equal(n, 1);
	assert_null(tok->tenant);
	tokens_free(t);
}

/* One bad line and the exact message it must give (after "FILE:1: "). */
typedef struct bad_case {
	const char *line;
	const char *msg;
} bad_case;

static const bad_case bad_cases[] = {
	{ "sha256:abcdef a r t", "sha256 secret must be 64 lowercase hex digits (found 6 characters)" },
	{ "sha256:" HEX64 "00 a r t", "sha256 secret must be 64 lowercase hex digits (found 66 characters)" },
	{ "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef a r t",
	  "sha256 secret must be 64 lowercase hex digits" },
	{ "md5:0123456789abcdef0123456789abcdef a r t",
		"secret must start with \"sha256:\" or \"SCRAM-SHA-256$\"" },
	{ "plaintextsecret123 a r t", "secret must start with \"sha256:\" or \"SCRAM-SHA-256$\"" },
	{ "SCRAM-SHA-256$0:" SALT "$" KEY_A ":" KEY_B " a r t",
	  "SCRAM iteration count must be an integer from 1 to 100000000" },
	{ "SCRAM-SHA-256$-5:" SALT "$" KEY_A ":" KEY_B " a r t",
	  "SCRAM iteration count must be an integer from 1 to 100000000" },
	{ "SCRAM-SHA-256$999999999999:" SALT "$" KEY_A ":" KEY_B " a r t",
	  "SCRAM iteration count must be an integer from 1 to 100000000" },
	{ "SCRAM-SHA-256$4096:c2Fs!HNhbHQ=$" KEY_A ":" KEY_B " a r t",
	  "SCRAM salt is not valid base64 of 1 to 1024 bytes" },
	{ "SCRAM-SHA-256$4096:$" KEY_A ":" KEY_B " a r t",
		"SCRAM salt is not valid base64 of 1 to 1024 bytes" },
	{ "SCRAM-SHA-256$4096:" SALT "$" KEY_31 ":" KEY_B " a r t",
	  "SCRAM StoredKey is not valid base64 of exactly 32 bytes" },
	{ "SCRAM-SHA-256$4096:" SALT "$" KEY_A ":" KEY_A "AAAA a r t",
	  "SCRAM ServerKey is not valid base64 of exactly 32 bytes" },
	{ "SCRAM-SHA-256$4096:" SALT "$" KEY_A " a r t",
	  "SCRAM secret must be SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" },
	{ "SCRAM-SHA-256$4096:" SALT "$" KEY_A ":" KEY_B ":x a r t",
	  "SCRAM secret must be SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" },
	{ "sha256:" HEX64 " user:x reader", "expected: secret actor role tenant [key=value...]" },
	{ "sha256:" HEX64 " user:x anon acme", "role \"anon\" of actor \"user:x\" is a protected role" },
	{ "sha256:" HEX64 " user:x Guest acme", "role \"Guest\" of actor \"user:x\" is a protected role" },
	{ "sha256:" HEX64 " user:x r t expires=tomorrow",
	  "expires: \"tomorrow\" is not an RFC 3339 time such as 2026-12-31T00:00:00Z" },
	{ "sha256:" HEX64 " user:x r t expires=2026-02-30T00:00:00Z",
	  "expires: \"2026-02-30T00:00:00Z\" is not an RFC 3339 time such as 2026-12-31T00:00:00Z" },
	{ "sha256:" HEX64 " user:x r t expires=2026-12-31T00:00:00Z expires=2027-12-31T00:00:00Z",
	  "duplicate key \"expires\"" },
	{ "sha256:" HEX64 " user:x r t targets=", "targets: expected a comma list of target names" },
	{ "sha256:" HEX64 " user:x r t targets=a,,b", "targets: expected a comma list of target names" },
	{ "sha256:" HEX64 " user:x r t color=blue", "unknown key \"color\" (expected expires= or targets=)" },
	{ "sha256:" HEX64 " user:x r t blue", "field 5: expected key=value after the tenant" },
	{ "user:x sha256:" HEX64 " r t", "secret must start with \"sha256:\" or \"SCRAM-SHA-256$\"" },
	{ "sha256:" HEX64 " user:x r t " SCRAM_OK, "field 5: unknown key (expected expires= or targets=)" },
};

static void test_bad_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		pgw_errors e = { 0 };
		char text[512], want[512];
		pgw_token_table *t;

		snprintf(text, sizeof(text), "%s\n", bad_cases[i].line);
		t = load_text(text, &e);
		snprintf(want, sizeof(want), "%s:1: %s", tmp_path, bad_cases[i].msg);
		if (t != NULL || e.n != 1 || strcmp(e.msgs[0], want) != 0)
			fail_msg("case %zu: got %zu errors, first \"%s\", want \"%s\"", i, e.n,
				e.n ? e.msgs[0] : "",
				 want);
		/* No message ever quotes a secret or the key material in it. */
		assert_null(strstr(e.msgs[0], HEX64));
		assert_null(strstr(e.msgs[0], KEY_A));
		assert_null(strstr(e.msgs[0], "plaintextsecret"));
		errors_free(&e);
	}
}

static void test_every_error_reported(void **state)
{
	pgw_errors e = { 0 };
	char want[3][256];
	pgw_token_table *t = load_text("sha256:" HEX64 " user:a r t\n"   /* 1: fine */
				       "sha256:zz user:b r t\n"          /* 2: bad hex */
				       "sha256:" HEX64 " user:c anon t\n" /* 3: protected */
				       "\n"
				       "sha256:" HEX64 " user:d r t bogus=1\n", /* 5: unknown key */
				       &e);

	(void)state;
	assert_null(t);
	assert_int_equal(e.n, 3);
	snprintf(want[0], sizeof(want[0]),
		"%s:2: sha256 secret must be 64 lowercase hex digits (found 2 characters)",
		 tmp_path);
	snprintf(want[1], sizeof(want[1]), "%s:3: role \"anon\" of actor \"user:c\" is a protected role",
		tmp_path);
	snprintf(want[2], sizeof(want[2]), "%s:5: unknown key \"bogus\" (expected expires= or targets=)",
		tmp_path);
	for (int i = 0; i < 3; i++)
		assert_string_equal(e.msgs[i], want[i]);
	errors_free(&e);
}

static void test_one_scram_per_actor(void **state)
{
	pgw_errors e = { 0 };
	char want[256];
	pgw_token_table *t = load_text(SCRAM_OK " agent:x r t\n"
				       "sha256:" HEX64 " agent:x r t\n"
				       "sha256:" HEX64 " agent:x r t\n"
				       SCRAM_OK " agent:y r t\n"
				       SCRAM_OK " agent:x r2 t\n",
				       &e);

	(void)state;
	assert_null(t);
	assert_int_equal(e.n, 1);
	snprintf(want, sizeof(want), "%s:5: actor \"agent:x\" already has a SCRAM record at line 1",
		tmp_path);
	assert_string_equal(e.msgs[0], want);
	errors_free(&e);
}

static void test_sorted_lookup(void **state)
{
	pgw_errors e = { 0 };
	pgw_token_table *t = load_text("sha256:" HEX64 " c r t\n"
				       "sha256:" HEX64 " a r1 t\n"
				       "sha256:" HEX64 " b r t\n"
				       "sha256:" HEX64 " a r2 t\n"
				       "sha256:" HEX64 " aa r t\n"
				       "sha256:" HEX64 " a r3 t\n",
				       &e);
	const pgw_token *tok;
	size_t n;

	(void)state;
	assert_non_null(t);
	for (size_t i = 1; i < t->n; i++)
		assert_true(strcmp(t->v[i - 1].actor, t->v[i].actor) <= 0);
	tok = tokens_find_actor(t, "a", &n);
	assert_int_equal(n, 3);
	/* Stable: file order within one actor. */
	assert_string_equal(tok[0].role, "r1");
	assert_string_equal(tok[1].role, "r2");
	assert_string_equal(tok[2].role, "r3");
	tok = tokens_find_actor(t, "aa", &n);
	assert_int_equal(n, 1);
	assert_int_equal(tok->line, 5);
	assert_non_null(tokens_find_actor(t, "c", &n));
	assert_int_equal(n, 1);
	assert_null(tokens_find_actor(t, "zz", &n));
	assert_int_equal(n, 0);
	assert_null(tokens_find_actor(t, "", &n));
	assert_null(tokens_find_actor(t, "0", &n));
	tokens_free(t);
}

static void test_usable(void **state)
{
	pgw_errors e = { 0 };
	pgw_token_table *t = load_text("sha256:" HEX64 " u r t expires=2026-12-31T00:00:00+01:00 targets=staging,dev\n"
				       "sha256:" HEX64 " v r t\n",
				       &e);
	const pgw_token *u, *v;
	time_t exp;
	size_t n;

	(void)state;
	assert_non_null(t);
	assert_true(parse_rfc3339("2026-12-30T23:00:00Z", &exp));
	u = tokens_find_actor(t, "u", &n);
	v = tokens_find_actor(t, "v", &n);
	assert_int_equal(u->expires, exp);
	assert_true(token_usable(u, "staging", exp - 1));
	assert_false(token_usable(u, "staging", exp));
	assert_true(token_usable(u, "dev", exp - 1));
	assert_false(token_usable(u, "prod", exp - 1));
	assert_false(token_usable(u, NULL, exp - 1));
	assert_true(token_usable(v, "prod", exp + 1000000));
	tokens_free(t);
}

static void test_missing_file(void **state)
{
	pgw_errors e = { 0 };

	(void)state;
	assert_null(tokens_load("/nonexistent/tokens.txt", protected_roles, 3, &e));
	assert_int_equal(e.n, 1);
	assert_string_equal(e.msgs[0],
		"/nonexistent/tokens.txt: cannot read token file: No such file or directory");
	errors_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_records),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_every_error_reported),
		cmocka_unit_test(test_one_scram_per_actor),
		cmocka_unit_test(test_sorted_lookup),
		cmocka_unit_test(test_usable),
		cmocka_unit_test(test_missing_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
