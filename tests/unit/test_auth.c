/* test_auth.c - the authentication exchange over real token files, and `pgwarden token new`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "conf/config.h"
#include "conf/core/random.h"
#include "proxy/cli/token_new.h"
#include "conf/tokens.h"
#include "protocol/auth.h"
#include "protocol/scram.h"

#define NOW 1700000000             /* 2023-11-14: after the "expired" records, before the others */
#define CERT_HASH_LEN 32

static const uint8_t cert_hash[CERT_HASH_LEN] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3};

/* ---- fixtures ---- */

static char *write_temp(const char *content)
{
	char *path = strdup("/tmp/pgw_test_auth_XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	return path;
}

static pgw_token_table *load_tokens(const char *content)
{
	pgw_errors e = {0};
	char *path = write_temp(content);
	pgw_token_table *t = tokens_load(path, NULL, 0, &e);

	if (!t)
		fail_msg("tokens_load: %s", e.n ? e.msgs[0] : "?");
	errors_free(&e);
	unlink(path);
	free(path);
	return t;
}

static void sha_line(char *buf, size_t sz, const char *token, const char *rest)
{
	uint8_t h[32];
	int i, n;

	SHA256((const unsigned char *)token, strlen(token), h);
	n = snprintf(buf, sz, "sha256:");
	for (i = 0; i < 32; i++)
		n += snprintf(buf + n, sz - (size_t)n, "%02x", h[i]);
	snprintf(buf + n, sz - (size_t)n, " %s\n", rest);
}

static void scram_line(char *buf, size_t sz, const char *token, const char *rest)
{
	static const uint8_t salt[16] = "0123456789abcdef";
	char *v = scram_build_secret(token, salt, sizeof(salt), 4096);

	assert_non_null(v);
	snprintf(buf, sz, "%s %s\n", v, rest);
	free(v);
}

/*
 * The table most tests use: mostly sha256 actors (so unknown actors get
 * cleartext over TLS), one SCRAM actor and one expired SCRAM actor.
 */
static pgw_token_table *standard_table(void)
{
	char file[4096] = "", line[512];
	pgw_token_table *t;

	sha_line(line, sizeof(line), "old-token", "user:multi clerk acme");
	strcat(file, line);
	sha_line(line, sizeof(line), "new-token", "user:multi clerk acme");
	strcat(file, line);
	sha_line(line, sizeof(line), "exp-token", "user:expired clerk - expires=2000-01-01T00:00:00Z");
	strcat(file, line);
	sha_line(line, sizeof(line), "stg-token", "user:staging clerk - targets=staging");
	strcat(file, line);
	sha_line(line, sizeof(line), "a-token", "user:a clerk -");
	strcat(file, line);
	sha_line(line, sizeof(line), "b-token", "user:b clerk -");
	strcat(file, line);
	scram_line(line, sizeof(line), "scram-token", "agent:scram agent_rw acme");
	strcat(file, line);
	scram_line(line, sizeof(line), "scram-old", "agent:old agent_rw - expires=2000-01-01T00:00:00Z");
	strcat(file, line);
	t = load_tokens(file);
	assert_non_null(t);
	return t;
}

static auth_params params(const pgw_token_table *t, const char *actor, bool tls)
{
	auth_params p = {
		.tokens = t,
		.actor = actor,
		.target = "prod",
		.tls = tls,
		.plaintext_auth = false,
		.tls_cert_hash = tls ? cert_hash : NULL,
		.tls_cert_hash_len = tls ? CERT_HASH_LEN : 0,
		.now = NOW,
	};

	return p;
}

/* Check 'b' holds exactly one 'R' message with this code; return its payload and length. */
static const uint8_t *expect_auth_msg(const pktbuf *b, uint32_t code, size_t *plen)
{
	uint32_t len, got;

	assert_false(b->failed);
	assert_true(b->len >= 9);
	assert_int_equal(b->data[0], 'R');
	len = (uint32_t)b->data[1] << 24 | (uint32_t)b->data[2] << 16 | (uint32_t)b->data[3] << 8 |
	      b->data[4];
	assert_int_equal(len + 1, b->len);
	got = (uint32_t)b->data[5] << 24 | (uint32_t)b->data[6] << 16 | (uint32_t)b->data[7] << 8 |
	      b->data[8];
	assert_int_equal(got, code);
	*plen = b->len - 9;
	return b->data + 9;
}

/* PasswordMessage body: the token with its NUL. */
static auth_status send_password(pgw_auth *a, const char *pw, pktbuf *out, const pgw_token **who)
{
	return auth_on_message(a, (const uint8_t *)pw, strlen(pw) + 1, out, who);
}

/* A whole cleartext attempt; checks the request was AuthenticationCleartextPassword. */
static auth_status cleartext_attempt(const pgw_token_table *t, const char *actor, const char *pw,
				     const char *target, const pgw_token **who)
{
	auth_params p = params(t, actor, true);
	pktbuf out;
	pgw_auth *a;
	auth_status st;
	size_t n;

	p.target = target;
	pktbuf_init(&out);
	a = auth_begin(&p, &out);
	assert_non_null(a);
	expect_auth_msg(&out, 3, &n);
	assert_int_equal(n, 0);
	pktbuf_reset(&out);
	st = send_password(a, pw, &out, who);
	assert_int_equal(out.len, 0);
	auth_free(a);
	pktbuf_free(&out);
	return st;
}

/* ---- a SCRAM client, computed with OpenSSL ---- */

typedef struct scram_client {
	const char *password;
	const char *mech;         /* SCRAM-SHA-256 or SCRAM-SHA-256-PLUS */
	const uint8_t *cb;        /* for -PLUS: the hash the client saw */
	char bare[64];            /* client-first-message-bare */
	char final_msg[512];
	uint8_t server_sig[SCRAM_KEY_LEN];
} scram_client;

static const char *gs2_of(const scram_client *c)
{
	return strcmp(c->mech, SCRAM_MECH_PLUS) == 0 ? "p=tls-server-end-point,," : "n,,";
}

/* SASLInitialResponse body: mechanism, Int32 length, client-first-message. */
static size_t initial_response(scram_client *c, uint8_t *buf, size_t sz)
{
	char first[128];
	size_t ml = strlen(c->mech) + 1, fl;

	snprintf(c->bare, sizeof(c->bare), "n=,r=testclientnonce");
	snprintf(first, sizeof(first), "%s%s", gs2_of(c), c->bare);
	fl = strlen(first);
	assert_true(ml + 4 + fl <= sz);
	memcpy(buf, c->mech, ml);
	buf[ml] = 0;
	buf[ml + 1] = 0;
	buf[ml + 2] = (uint8_t)(fl >> 8);
	buf[ml + 3] = (uint8_t)fl;
	memcpy(buf + ml + 4, first, fl);
	return ml + 4 + fl;
}

static void make_final(scram_client *c, const char *sfirst)
{
	uint8_t salted[32], ckey[32], stored[32], skey[32], sig[32], proof[32], cbin[64], *salt;
	char without[256], am[512], *cb64, *p64;
	const char *s = strstr(sfirst, ",s="), *i = strstr(sfirst, ",i=");
	const char *gs2 = gs2_of(c);
	size_t salt_len, gl = strlen(gs2), k, cbl = 0;
	unsigned int len;

	assert_non_null(s);
	assert_non_null(i);
	assert_true(pgw_b64_decode(s + 3, (size_t)(i - s - 3), &salt, &salt_len));
	assert_true(scram_salted_password(c->password, salt, salt_len, atoi(i + 3), salted));
	free(salt);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ckey, &len);
	SHA256(ckey, 32, stored);
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, skey, &len);
	memcpy(cbin, gs2, gl);
	if (c->cb) {
		memcpy(cbin + gl, c->cb, CERT_HASH_LEN);
		cbl = CERT_HASH_LEN;
	}
	cb64 = pgw_b64_encode(cbin, gl + cbl);
	snprintf(without, sizeof(without), "c=%s,%.*s", cb64, (int)(s - sfirst), sfirst);
	free(cb64);
	snprintf(am, sizeof(am), "%s,%s,%s", c->bare, sfirst, without);
	HMAC(EVP_sha256(), stored, 32, (const unsigned char *)am, strlen(am), sig, &len);
	for (k = 0; k < 32; k++)
		proof[k] = ckey[k] ^ sig[k];
	HMAC(EVP_sha256(), skey, 32, (const unsigned char *)am, strlen(am), c->server_sig, &len);
	p64 = pgw_b64_encode(proof, 32);
	snprintf(c->final_msg, sizeof(c->final_msg), "%s,p=%s", without, p64);
	free(p64);
}

/* Result of one SCRAM attempt, and what the server sent first (for comparing attempts). */
typedef struct scram_attempt {
	auth_status st;
	char server_first[256];
	bool plus_listed;
	const pgw_token *who;
} scram_attempt;

/* Run a whole SCRAM exchange through auth_*; the request must be AuthenticationSASL. */
static scram_attempt scram_run(const auth_params *p, scram_client *c)
{
	scram_attempt res = {0};
	uint8_t body[256];
	const uint8_t *pl;
	size_t n, bl;
	pktbuf out;
	pgw_auth *a;

	pktbuf_init(&out);
	a = auth_begin(p, &out);
	assert_non_null(a);
	pl = expect_auth_msg(&out, 10, &n);
	res.plus_listed = n > 0 && strcmp((const char *)pl, SCRAM_MECH_PLUS) == 0;
	assert_int_equal(pl[n - 1], 0);
	pktbuf_reset(&out);
	bl = initial_response(c, body, sizeof(body));
	res.st = auth_on_message(a, body, bl, &out, &res.who);
	if (res.st != AUTH_CONTINUE)
		goto done;
	pl = expect_auth_msg(&out, 11, &n);
	assert_true(n < sizeof(res.server_first));
	memcpy(res.server_first, pl, n);
	make_final(c, res.server_first);
	pktbuf_reset(&out);
	res.st = auth_on_message(a, (const uint8_t *)c->final_msg, strlen(c->final_msg), &out, &res.who);
	if (res.st == AUTH_OK) {
		char *want = pgw_b64_encode(c->server_sig, 32);

		pl = expect_auth_msg(&out, 12, &n);
		assert_int_equal(n, 2 + strlen(want));
		assert_memory_equal(pl + 2, want, n - 2);
		free(want);
	} else {
		assert_int_equal(out.len, 0);
	}
done:
	auth_free(a);
	pktbuf_free(&out);
	return res;
}

/* The salt the server offered in server-first. */
static void salt_of(const scram_attempt *r, char *buf, size_t sz)
{
	const char *s = strstr(r->server_first, ",s="), *i = strstr(r->server_first, ",i=");

	assert_non_null(s);
	snprintf(buf, sz, "%.*s", (int)(i - s - 3), s + 3);
}

/* ---- tests ---- */

/* Rotation: either of an actor's sha256 records works, and *who is the one that matched. */
static void test_cleartext_rotation(void **state)
{
	pgw_token_table *t = standard_table();
	const pgw_token *who = NULL;

	(void)state;
	assert_int_equal(cleartext_attempt(t, "user:multi", "old-token", "prod", &who), AUTH_OK);
	assert_non_null(who);
	assert_int_equal(who->line, 1);
	assert_int_equal(cleartext_attempt(t, "user:multi", "new-token", "prod", &who), AUTH_OK);
	assert_int_equal(who->line, 2);
	assert_string_equal(who->role, "clerk");
	assert_string_equal(who->tenant, "acme");
	tokens_free(t);
}

/* Every failure cause answers AUTH_FAIL, with no output and no hint. */
static void test_cleartext_failures_alike(void **state)
{
	static const struct {
		const char *actor, *pw, *target;
	} cases[] = {
		{"user:multi", "wrong", "prod"},
		{"user:multi", "", "prod"},
		{"user:multi", "new-token ", "prod"},
		{"user:multi", "a-token", "prod"},           /* another actor's token */
		{"user:expired", "exp-token", "prod"},       /* expired */
		{"user:staging", "stg-token", "prod"},       /* target not allowed */
		{"user:nobody", "new-token", "prod"},        /* unknown actor */
		{"", "new-token", "prod"},
	};
	pgw_token_table *t = standard_table();
	const pgw_token *who;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		who = (const pgw_token *)1;
		if (cleartext_attempt(t, cases[i].actor, cases[i].pw, cases[i].target, &who) != AUTH_FAIL)
			fail_msg("case %zu (%s) did not fail", i, cases[i].actor);
		assert_null(who);
	}
	/* ... while the staging token does work on staging. */
	assert_int_equal(cleartext_attempt(t, "user:staging", "stg-token", "staging", &who), AUTH_OK);
	tokens_free(t);
}

/* Reasons are for the log only, and say what happened. */
static void test_fail_reasons(void **state)
{
	pgw_token_table *t = standard_table();
	auth_params p = params(t, "user:nobody", true);
	const pgw_token *who;
	pktbuf out;
	pgw_auth *a;

	(void)state;
	pktbuf_init(&out);
	a = auth_begin(&p, &out);
	assert_int_equal(send_password(a, "x", &out, &who), AUTH_FAIL);
	assert_string_equal(auth_fail_reason(a), "unknown actor");
	auth_free(a);
	p.actor = "user:expired";
	a = auth_begin(&p, &out);
	assert_int_equal(send_password(a, "exp-token", &out, &who), AUTH_FAIL);
	assert_string_equal(auth_fail_reason(a), "token expired");
	auth_free(a);
	p.actor = "user:staging"; /* p.target is prod */
	a = auth_begin(&p, &out);
	assert_int_equal(send_password(a, "stg-token", &out, &who), AUTH_FAIL);
	assert_string_equal(auth_fail_reason(a), "target not allowed for this token");
	auth_free(a);
	p.actor = "user:multi";
	a = auth_begin(&p, &out);
	assert_string_equal(auth_fail_reason(a), "wrong token");
	assert_int_equal(send_password(a, "new-token", &out, &who), AUTH_OK);
	assert_string_equal(auth_fail_reason(a), "none");
	/* A message after the end is a protocol violation. */
	assert_int_equal(send_password(a, "new-token", &out, &who), AUTH_MALFORMED);
	auth_free(a);
	pktbuf_free(&out);
	tokens_free(t);
}

/*
 * Without TLS and plaintext_auth = no, a sha256 actor is never asked for
 * the token in clear: it gets a doomed SCRAM exchange that fails even with
 * the right token, exactly like an unknown actor.
 */
static void test_no_cleartext_without_tls(void **state)
{
	pgw_token_table *t = standard_table();
	auth_params p = params(t, "user:multi", false);
	scram_client c = {.password = "new-token", .mech = SCRAM_MECH};
	scram_attempt r1, r2;
	char s1[64], s2[64];
	pktbuf out;
	pgw_auth *a;
	size_t n;

	(void)state;
	r1 = scram_run(&p, &c);
	assert_int_equal(r1.st, AUTH_FAIL);
	assert_false(r1.plus_listed);
	assert_null(r1.who);
	/* The mock salt is stable per actor name, like a real record's salt. */
	r2 = scram_run(&p, &c);
	salt_of(&r1, s1, sizeof(s1));
	salt_of(&r2, s2, sizeof(s2));
	assert_string_equal(s1, s2);
	assert_non_null(strstr(r1.server_first, ",i=4096"));
	/* Unknown actor: the same shape of exchange, the same failure. */
	p.actor = "user:nobody";
	r2 = scram_run(&p, &c);
	assert_int_equal(r2.st, AUTH_FAIL);
	salt_of(&r2, s2, sizeof(s2));
	assert_string_not_equal(s1, s2);
	assert_int_equal(strlen(s1), strlen(s2));
	/* plaintext_auth = yes does ask for the cleartext token. */
	p.actor = "user:multi";
	p.plaintext_auth = true;
	pktbuf_init(&out);
	a = auth_begin(&p, &out);
	expect_auth_msg(&out, 3, &n);
	auth_free(a);
	pktbuf_free(&out);
	tokens_free(t);
}

/* SCRAM actor: plain and -PLUS exchanges succeed; a wrong channel binding or token fails. */
static void test_scram_actor(void **state)
{
	static const uint8_t other_hash[CERT_HASH_LEN] = {1};
	pgw_token_table *t = standard_table();
	auth_params p = params(t, "agent:scram", true);
	scram_client c = {.password = "scram-token", .mech = SCRAM_MECH_PLUS, .cb = cert_hash};
	scram_attempt r;

	(void)state;
	r = scram_run(&p, &c);
	assert_true(r.plus_listed);
	assert_int_equal(r.st, AUTH_OK);
	assert_non_null(r.who);
	assert_string_equal(r.who->actor, "agent:scram");
	assert_int_equal(r.who->kind, TOKEN_SCRAM);
	assert_non_null(strstr(r.server_first, ",s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096"));

	c.cb = other_hash; /* a MITM terminating TLS with another certificate */
	assert_int_equal(scram_run(&p, &c).st, AUTH_FAIL);

	c.mech = SCRAM_MECH;
	c.cb = NULL;
	assert_int_equal(scram_run(&p, &c).st, AUTH_OK);
	c.password = "scram-tokeN";
	assert_int_equal(scram_run(&p, &c).st, AUTH_FAIL);

	/* Without TLS: no -PLUS offered, and choosing it is a protocol violation. */
	p = params(t, "agent:scram", false);
	c.password = "scram-token";
	r = scram_run(&p, &c);
	assert_false(r.plus_listed);
	assert_int_equal(r.st, AUTH_OK);
	c.mech = SCRAM_MECH_PLUS;
	c.cb = cert_hash;
	assert_int_equal(scram_run(&p, &c).st, AUTH_MALFORMED);
	tokens_free(t);
}

/* Expired SCRAM record: the real salt, the whole exchange, then the same failure. */
static void test_scram_expired(void **state)
{
	pgw_token_table *t = standard_table();
	auth_params p = params(t, "agent:old", true);
	scram_client c = {.password = "scram-old", .mech = SCRAM_MECH};
	scram_attempt r;

	(void)state;
	r = scram_run(&p, &c);
	assert_int_equal(r.st, AUTH_FAIL);
	assert_null(r.who);
	assert_non_null(strstr(r.server_first, ",s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096"));
	tokens_free(t);
}

/* Unknown actors get the mechanism most actors in the file have. */
static void test_unknown_actor_policy(void **state)
{
	char file[2048] = "", line[512];
	pgw_token_table *t = standard_table(); /* 5 sha256 actors, 2 SCRAM */
	auth_params p = params(t, "user:ghost", true);
	scram_client c = {.password = "x", .mech = SCRAM_MECH};
	pktbuf out;
	pgw_auth *a;
	size_t n;

	(void)state;
	pktbuf_init(&out);
	a = auth_begin(&p, &out);
	expect_auth_msg(&out, 3, &n);
	auth_free(a);
	tokens_free(t);

	scram_line(line, sizeof(line), "s1", "agent:one r -");
	strcat(file, line);
	scram_line(line, sizeof(line), "s2", "agent:two r -");
	strcat(file, line);
	sha_line(line, sizeof(line), "h1", "user:three r -");
	strcat(file, line);
	t = load_tokens(file);
	p = params(t, "user:ghost", true);
	assert_int_equal(scram_run(&p, &c).st, AUTH_FAIL);
	/* -PLUS is listed for the unknown actor just as for a real SCRAM actor. */
	c.mech = SCRAM_MECH_PLUS;
	c.cb = cert_hash;
	assert_true(scram_run(&p, &c).plus_listed);
	pktbuf_free(&out);
	tokens_free(t);
}

/* Empty table and NULL table: never crash, always fail. */
static void test_empty_tables(void **state)
{
	pgw_token_table empty = {0};
	auth_params p = params(&empty, "user:x", true);
	const pgw_token *who;
	pktbuf out;
	pgw_auth *a;
	size_t n;

	(void)state;
	pktbuf_init(&out);
	a = auth_begin(&p, &out);
	expect_auth_msg(&out, 3, &n);
	assert_int_equal(send_password(a, "x", &out, &who), AUTH_FAIL);
	auth_free(a);
	p.tokens = NULL;
	p.actor = NULL;
	p.target = NULL;
	pktbuf_reset(&out);
	a = auth_begin(&p, &out);
	expect_auth_msg(&out, 3, &n);
	assert_int_equal(send_password(a, "x", &out, &who), AUTH_FAIL);
	auth_free(a);
	pktbuf_free(&out);
}

/* Broken 'p' bodies: AUTH_MALFORMED, never a crash. */
static void test_malformed_messages(void **state)
{
	static const struct {
		const char *actor;
		const char *body;
		size_t len;
	} cases[] = {
		{"user:multi", "no-nul", 6},
		{"user:multi", "two\0nuls\0", 9},
		{"user:multi", "", 0},
		{"agent:scram", "", 0},
		{"agent:scram", "SCRAM-SHA-256", 13},
		{"agent:scram", "SCRAM-SHA-256\0\0\0", 16},
		{"agent:scram", "SCRAM-SHA-1\0\xff\xff\xff\xff", 16},
		{"agent:scram", "SCRAM-SHA-256\0\xff\xff\xff\xfe", 18},
		{"agent:scram", "SCRAM-SHA-256\0\x00\x00\x00\x10n,,n=,r=x", 27},
		{"agent:scram", "SCRAM-SHA-256\0\x00\x00\x00\x03n,,xx", 23},
		{"agent:scram", "SCRAM-SHA-256\0\x00\x00\x00\x00", 18},
		{"agent:scram", "SCRAM-SHA-256\0\x00\x00\x00\x05x,,n=", 23},
		{"agent:scram", "SCRAM-SHA-256-PLUS\0\x00\x00\x00\x08n,,n=,r=", 31},
	};
	pgw_token_table *t = standard_table();
	const pgw_token *who;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		auth_params p = params(t, cases[i].actor, false);
		pktbuf out;
		pgw_auth *a;
		auth_status st;

		p.plaintext_auth = true;
		pktbuf_init(&out);
		a = auth_begin(&p, &out);
		pktbuf_reset(&out);
		st = auth_on_message(a, (const uint8_t *)cases[i].body, cases[i].len, &out, &who);
		if (st != AUTH_MALFORMED)
			fail_msg("case %zu: %d", i, st);
		assert_int_equal(out.len, 0);
		auth_free(a);
		pktbuf_free(&out);
	}
	tokens_free(t);
}

/* SASLInitialResponse without initial data (-1): empty SASLContinue, then client-first. */
static void test_sasl_no_initial_response(void **state)
{
	static const uint8_t init[] = "SCRAM-SHA-256\0\xff\xff\xff\xff";
	pgw_token_table *t = standard_table();
	auth_params p = params(t, "agent:scram", false);
	scram_client c = {.password = "scram-token", .mech = SCRAM_MECH};
	const pgw_token *who;
	char first[128], sfirst[256];
	const uint8_t *pl;
	pktbuf out;
	pgw_auth *a;
	size_t n;

	(void)state;
	pktbuf_init(&out);
	a = auth_begin(&p, &out);
	pktbuf_reset(&out);
	assert_int_equal(auth_on_message(a, init, sizeof(init) - 1, &out, &who), AUTH_CONTINUE);
	expect_auth_msg(&out, 11, &n);
	assert_int_equal(n, 0);
	snprintf(c.bare, sizeof(c.bare), "n=,r=abc");
	snprintf(first, sizeof(first), "n,,%s", c.bare);
	pktbuf_reset(&out);
	assert_int_equal(auth_on_message(a, (uint8_t *)first, strlen(first), &out, &who), AUTH_CONTINUE);
	pl = expect_auth_msg(&out, 11, &n);
	memcpy(sfirst, pl, n);
	sfirst[n] = '\0';
	make_final(&c, sfirst);
	pktbuf_reset(&out);
	assert_int_equal(auth_on_message(a, (uint8_t *)c.final_msg, strlen(c.final_msg), &out, &who),
			 AUTH_OK);
	expect_auth_msg(&out, 12, &n);
	auth_free(a);
	pktbuf_free(&out);
	tokens_free(t);
}

/* ---- pgwarden token new ---- */

/* Run the CLI; return its status and its stdout in buf. */
static int run_cli(char **argv, int argc, char *buf, size_t sz)
{
	FILE *out = tmpfile(), *err = tmpfile();
	size_t n;
	int rc;

	assert_non_null(out);
	assert_non_null(err);
	rc = token_cli_run(argc, argv, out, err);
	rewind(out);
	n = fread(buf, 1, sz - 1, out);
	buf[n] = '\0';
	fclose(out);
	fclose(err);
	return rc;
}

static void test_token_new_sha256(void **state)
{
	char *argv[] = {"token", "new", "--actor", "user:jimmie", "--role=bookkeeper", "--tenant", "acme"};
	char buf[1024], tok[128], *nl, expect[256];
	pgw_token_table *t;
	const pgw_token *who;

	(void)state;
	assert_int_equal(run_cli(argv, 7, buf, sizeof(buf)), 0);
	nl = strchr(buf, '\n');
	assert_non_null(nl);
	snprintf(tok, sizeof(tok), "%.*s", (int)(nl - buf), buf);
	assert_int_equal(strlen(tok), 4 + 43);
	assert_int_equal(strncmp(tok, "pgw_", 4), 0);
	assert_int_equal(strspn(tok + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					 "0123456789-_"), 43);
	sha_line(expect, sizeof(expect), tok, "user:jimmie bookkeeper acme");
	assert_string_equal(nl + 1, expect);
	t = load_tokens(nl + 1);
	assert_int_equal(t->n, 1);
	assert_int_equal(cleartext_attempt(t, "user:jimmie", tok, "prod", &who), AUTH_OK);
	assert_string_equal(who->tenant, "acme");
	tokens_free(t);
}

static void test_token_new_scram(void **state)
{
	char *argv[] = {"token", "new", "--scram", "--actor", "agent:tally", "--role", "agent_rw"};
	char buf[1024], tok[128], *nl;
	pgw_token_table *t;
	auth_params p;
	scram_client c = {.password = tok, .mech = SCRAM_MECH};
	scram_attempt r;

	(void)state;
	assert_int_equal(run_cli(argv, 7, buf, sizeof(buf)), 0);
	nl = strchr(buf, '\n');
	snprintf(tok, sizeof(tok), "%.*s", (int)(nl - buf), buf);
	assert_int_equal(strncmp(nl + 1, "SCRAM-SHA-256$4096:", 19), 0);
	assert_non_null(strstr(nl + 1, "= agent:tally agent_rw -\n"));
	t = load_tokens(nl + 1);
	assert_int_equal(t->v[0].kind, TOKEN_SCRAM);
	assert_int_equal(t->v[0].scram_salt_len, 16);
	assert_null(t->v[0].tenant);
	p = params(t, "agent:tally", false);
	r = scram_run(&p, &c);
	assert_int_equal(r.st, AUTH_OK);
	tokens_free(t);
}

static void test_token_new_usage(void **state)
{
	static char *cases[][8] = {
		{"token", "new"},
		{"token", "new", "--actor", "a"},
		{"token", "new", "--role", "r"},
		{"token", "new", "--actor", "a b", "--role", "r"},
		{"token", "new", "--actor", "a", "--role", "r\t"},
		{"token", "new", "--actor", "a", "--role", "r", "--tenant"},
		{"token", "new", "--actor", "a", "--role", "r", "--tenant", ""},
		{"token", "new", "--actor", "#a", "--role", "r"},
		{"token", "new", "--actor", "a", "--role", "r", "--bogus"},
		{"token", "old", "--actor", "a", "--role", "r"},
		{"token", "new", "--actor=", "--role", "r"},
		{"token", "new", "--actorx", "a", "--role", "r"},
	};
	char buf[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int argc = 0;

		while (argc < 8 && cases[i][argc])
			argc++;
		if (run_cli(cases[i], argc, buf, sizeof(buf)) != 2)
			fail_msg("case %zu accepted", i);
		assert_string_equal(buf, "");
	}
}

/* Two runs never print the same token. */
static void test_token_new_random(void **state)
{
	char *argv[] = {"token", "new", "--actor", "a", "--role", "r"};
	char b1[512], b2[512];

	(void)state;
	assert_int_equal(run_cli(argv, 6, b1, sizeof(b1)), 0);
	assert_int_equal(run_cli(argv, 6, b2, sizeof(b2)), 0);
	assert_string_not_equal(b1, b2);
}

/* A random source that gives 'random_left' draws, then fails. */
static int random_left;

static bool few_random(void *buf, size_t n)
{
	if (random_left-- <= 0)
		return false;
	memset(buf, 0x5a, n);
	return true;
}

/* No random bytes for the token (or, with --scram, for its salt): exit 1 and nothing on stdout, never a fixed token. */
static void test_token_new_no_random(void **state)
{
	char *plain[] = {"token", "new", "--actor", "a", "--role", "r"};
	char *scram[] = {"token", "new", "--actor", "a", "--role", "r", "--scram"};
	char buf[512];

	(void)state;
	pgw_random_set_source(few_random);
	random_left = 0;
	assert_int_equal(run_cli(plain, 6, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "");
	random_left = 1; /* the token's bytes, not the salt's */
	assert_int_equal(run_cli(scram, 7, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "");
	random_left = 2;
	assert_int_equal(run_cli(scram, 7, buf, sizeof(buf)), 0);
	pgw_random_set_source(NULL);
	assert_non_null(strstr(buf, "SCRAM-SHA-256$"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cleartext_rotation),
		cmocka_unit_test(test_cleartext_failures_alike),
		cmocka_unit_test(test_fail_reasons),
		cmocka_unit_test(test_no_cleartext_without_tls),
		cmocka_unit_test(test_scram_actor),
		cmocka_unit_test(test_scram_expired),
		cmocka_unit_test(test_unknown_actor_policy),
		cmocka_unit_test(test_empty_tables),
		cmocka_unit_test(test_malformed_messages),
		cmocka_unit_test(test_sasl_no_initial_response),
		cmocka_unit_test(test_token_new_sha256),
		cmocka_unit_test(test_token_new_scram),
		cmocka_unit_test(test_token_new_usage),
		cmocka_unit_test(test_token_new_random),
		cmocka_unit_test(test_token_new_no_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
