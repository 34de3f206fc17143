/* test_scram.c - SCRAM-SHA-256: RFC 7677 vector, libpq-built verifiers, full exchanges, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>
#include <openssl/sha.h>

#include "conf/core/random.h"
#include "protocol/saslprep.h"
#include "protocol/scram.h"

/* RFC 7677 section 3. */
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_CFIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SFIRST "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CFINAL "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static const uint8_t test_cbind[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				       17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* The verifier for a password with the RFC salt, parsed. */
static void make_secret(const char *password, scram_secret *sec)
{
	uint8_t *salt;
	size_t salt_len;
	char *text;

	assert_true(pgw_b64_decode(RFC_SALT, strlen(RFC_SALT), &salt, &salt_len));
	text = scram_build_secret(password, salt, salt_len, 4096);
	assert_non_null(text);
	assert_true(scram_parse_secret(text, sec));
	free(text);
	free(salt);
}

static scram_server *new_server(const scram_secret *sec, bool doomed, bool offered, bool selected,
				const uint8_t *cb, size_t cblen)
{
	scram_server_params p = {
		.iterations = sec->iterations,
		.salt = sec->salt,
		.salt_len = sec->salt_len,
		.stored_key = sec->stored_key,
		.server_key = sec->server_key,
		.doomed = doomed,
		.plus_offered = offered,
		.plus_selected = selected,
		.cbind_data = cb,
		.cbind_len = cblen,
	};
	scram_server *s = scram_server_new(&p);

	assert_non_null(s);
	return s;
}

static scram_result feed(scram_server *s, const char *msg, char **out)
{
	size_t len;

	return scram_server_exchange(s, (const uint8_t *)msg, strlen(msg), out, &len);
}

/* RFC 7677: keys from "pencil", then the whole exchange with the RFC's nonces. */
static void test_rfc7677_vector(void **state)
{
	scram_secret sec;
	scram_server *s;
	char *out;

	(void)state;
	make_secret("pencil", &sec);
	assert_int_equal(sec.iterations, 4096);
	s = new_server(&sec, false, false, false, NULL, 0);
	assert_true(scram_server_set_nonce(s, RFC_SNONCE));
	assert_int_equal(feed(s, RFC_CFIRST, &out), SCRAM_CONTINUE);
	assert_string_equal(out, RFC_SFIRST);
	free(out);
	assert_int_equal(feed(s, RFC_CFINAL, &out), SCRAM_OK);
	assert_string_equal(out, RFC_SFINAL);
	free(out);
	/* Anything after the end is a protocol violation. */
	assert_int_equal(feed(s, RFC_CFINAL, &out), SCRAM_MALFORMED);
	assert_null(out);
	scram_server_free(s);
	scram_secret_clear(&sec);
}

/* A wrong proof (other password) fails; a doomed exchange fails even with the right proof. */
static void test_rfc_vector_wrong_and_doomed(void **state)
{
	scram_secret good, bad;
	scram_server *s;
	char *out;

	(void)state;
	make_secret("pencil", &good);
	make_secret("pencil2", &bad);
	s = new_server(&bad, false, false, false, NULL, 0);
	assert_true(scram_server_set_nonce(s, RFC_SNONCE));
	assert_int_equal(feed(s, RFC_CFIRST, &out), SCRAM_CONTINUE);
	free(out);
	assert_int_equal(feed(s, RFC_CFINAL, &out), SCRAM_FAIL);
	assert_null(out);
	scram_server_free(s);

	s = new_server(&good, true, false, false, NULL, 0);
	assert_true(scram_server_set_nonce(s, RFC_SNONCE));
	assert_int_equal(feed(s, RFC_CFIRST, &out), SCRAM_CONTINUE);
	free(out);
	assert_int_equal(feed(s, RFC_CFINAL, &out), SCRAM_FAIL);
	scram_server_free(s);
	scram_secret_clear(&good);
	scram_secret_clear(&bad);
}

/*
 * libpq builds verifiers with PostgreSQL's own code (random salt); ours,
 * given the same salt and iterations, must be byte-identical, SASLprep
 * cases included. PQencryptPasswordConn needs a PGconn but does not talk
 * to the server when the algorithm is given, so a failed one serves.
 */
static void test_libpq_verifiers_match(void **state)
{
	static const char *const passwords[] = {
		"pencil",
		"pgw_abcdefghijklmnopqrstuvwxyz0123456789-_ABC",
		"\xe2\x85\xa8",                 /* U+2168 ROMAN NUMERAL NINE: NFKC gives "IX" */
		"a\xc2\xa0\x62",                /* U+00A0 no-break space: mapped to " " */
		"I\xc2\xad\x58",                /* U+00AD soft hyphen: mapped to nothing */
		"\xff\xfe not utf8",           /* invalid UTF-8: raw bytes */
		"caf\xc3\xa9\x07",             /* prohibited control char: raw bytes */
		"\xc2\xad",                     /* maps to empty: raw bytes */
		"\xd7\x90\x61\x62\x63",               /* RandAL then L: bidi failure, raw bytes */
	};
	PGconn *conn = PQconnectdb("host=/nonexistent-pgwarden-test port=1 connect_timeout=1");
	size_t i;

	(void)state;
	assert_non_null(conn);
	for (i = 0; i < sizeof(passwords) / sizeof(passwords[0]); i++) {
		char *pg = PQencryptPasswordConn(conn, passwords[i], "someone", "scram-sha-256");
		scram_secret sec;
		char *ours;

		assert_non_null(pg);
		assert_true(scram_parse_secret(pg, &sec));
		ours = scram_build_secret(passwords[i], sec.salt, sec.salt_len, sec.iterations);
		assert_non_null(ours);
		if (strcmp(ours, pg) != 0)
			fail_msg("password #%zu: libpq %s, ours %s", i, pg, ours);
		free(ours);
		scram_secret_clear(&sec);
		PQfreemem(pg);
	}
	PQfinish(conn);
}

typedef struct prep_case {
	const char *in;
	pgw_saslprep_rc rc;
	const char *out; /* when SASLPREP_SUCCESS */
} prep_case;

static void test_saslprep_table(void **state)
{
	static const prep_case cases[] = {
		{"plain ascii \x07", SASLPREP_SUCCESS, "plain ascii \x07"},
		{"\xe2\x85\xa8", SASLPREP_SUCCESS, "IX"},
		{"a\xc2\xa0\x62", SASLPREP_SUCCESS, "a b"},
		{"I\xc2\xad\x58", SASLPREP_SUCCESS, "IX"},
		{"\xc2\xaa", SASLPREP_SUCCESS, "a"},
		{"\xff", SASLPREP_INVALID_UTF8, NULL},
		{"\xc0\xaf", SASLPREP_INVALID_UTF8, NULL},
		{"x\xc2\x80", SASLPREP_PROHIBITED, NULL},
		{"\xc2\xad", SASLPREP_PROHIBITED, NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		pgw_saslprep_rc rc = pgw_saslprep(cases[i].in, &out);

		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d, want %d", i, rc, cases[i].rc);
		if (rc == SASLPREP_SUCCESS)
			assert_string_equal(out, cases[i].out);
		else
			assert_null(out);
		free(out);
	}
}

typedef struct b64_case {
	const char *in;
	bool ok;
	size_t len;
} b64_case;

static void test_b64_strict(void **state)
{
	static const b64_case cases[] = {
		{"", true, 0},          {"Zg==", true, 1},     {"Zm8=", true, 2},   {"Zm9v", true, 3},
		{"Zg=", false, 0},      {"Z===", false, 0},    {"Zm 9", false, 0},  {" Zm9v", false, 0},
		{"Zm9v\n", false, 0},   {"Zm-v", false, 0},    {"=Zm9", false, 0},  {"Zm=v", false, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *out;
		size_t n;
		bool ok = pgw_b64_decode(cases[i].in, strlen(cases[i].in), &out, &n);

		if (ok != cases[i].ok)
			fail_msg("case %zu (\"%s\"): got %d", i, cases[i].in, ok);
		if (ok)
			assert_int_equal(n, cases[i].len);
		free(out);
	}
}

static void test_parse_secret_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"md5abcdef",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-256$4096:" RFC_SALT,
		"SCRAM-SHA-256$0:" RFC_SALT "$AAAA:AAAA",
		"SCRAM-SHA-256$-1:" RFC_SALT "$AAAA:AAAA",
		"SCRAM-SHA-256$99999999999:" RFC_SALT "$AAAA:AAAA",
		"SCRAM-SHA-256$4096:" RFC_SALT "$AAAA:AAAA",
		"SCRAM-SHA-256$4096:$WhlOBvBlbGRzSkR3pnEvOqdzmuFc/LfSZaEC9WG/eO8=:"
		"WhlOBvBlbGRzSkR3pnEvOqdzmuFc/LfSZaEC9WG/eO8=",
		"SCRAM-SHA-256$4096:" RFC_SALT "$WhlOBvBlbGRzSkR3pnEvOqdzmuFc/LfSZaEC9WG/eO8=:"
		"WhlOBvBlbGRzSkR3pnEvOqdzmuFc/LfSZaEC9WG/eO8=x",
		"SCRAM-SHA-256$4x96:" RFC_SALT "$WhlOBvBlbGRzSkR3pnEvOqdzmuFc/LfSZaEC9WG/eO8=:"
		"WhlOBvBlbGRzSkR3pnEvOqdzmuFc/LfSZaEC9WG/eO8=",
	};
	static const char good[] = "SCRAM-SHA-256$4096:" RFC_SALT
				   "$WhlOBvBlbGRzSkR3pnEvOqdzmuFc/LfSZaEC9WG/eO8=:"
				   "WhlOBvBlbGRzSkR3pnEvOqdzmuFc/LfSZaEC9WG/eO8=";
	scram_secret sec;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (scram_parse_secret(bad[i], &sec))
			fail_msg("accepted bad verifier #%zu", i);
	assert_true(scram_parse_secret(good, &sec));
	assert_int_equal(sec.salt_len, 16);
	scram_secret_clear(&sec);
}

/* ---- a test client, computed here with OpenSSL ---- */

/* The client's side of one exchange. */
typedef struct test_client {
	const char *password;
	const char *gs2;      /* "n,,", "y,," or "p=tls-server-end-point,," */
	const uint8_t *cb;    /* cbind data the client believes in, for p= */
	size_t cblen;
	char first_bare[256];
	char final_msg[1024];
	uint8_t server_sig[SCRAM_KEY_LEN];
} test_client;

static void client_first(test_client *c, char *buf, size_t sz)
{
	snprintf(c->first_bare, sizeof(c->first_bare), "n=,r=clientnonce123");
	snprintf(buf, sz, "%s%s", c->gs2, c->first_bare);
}

/* Build client-final from server-first; remembers the expected server signature. */
static void client_final(test_client *c, const char *server_first)
{
	uint8_t salted[SCRAM_KEY_LEN], ckey[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN], skey[SCRAM_KEY_LEN];
	uint8_t sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN], cbin[128], *salt;
	char without[700], am[1500], *cb64, *proof64;
	const char *r = strstr(server_first, "r="), *s = strstr(server_first, ",s=");
	const char *i = strstr(server_first, ",i=");
	size_t salt_len, gl = strlen(c->gs2), k;
	unsigned int len;

	assert_non_null(r);
	assert_non_null(s);
	assert_non_null(i);
	assert_true(pgw_b64_decode(s + 3, (size_t)(i - s - 3), &salt, &salt_len));
	assert_true(scram_salted_password(c->password, salt, salt_len, atoi(i + 3), salted));
	free(salt);
	HMAC(EVP_sha256(), salted, SCRAM_KEY_LEN, (const unsigned char *)"Client Key", 10, ckey, &len);
	SHA256(ckey, SCRAM_KEY_LEN, stored);
	HMAC(EVP_sha256(), salted, SCRAM_KEY_LEN, (const unsigned char *)"Server Key", 10, skey, &len);
	memcpy(cbin, c->gs2, gl);
	if (c->cblen)
		memcpy(cbin + gl, c->cb, c->cblen);
	cb64 = pgw_b64_encode(cbin, gl + c->cblen);
	snprintf(without, sizeof(without), "c=%s,%.*s", cb64, (int)(s - r), r);
	free(cb64);
	snprintf(am, sizeof(am), "%s,%s,%s", c->first_bare, server_first, without);
	HMAC(EVP_sha256(), stored, SCRAM_KEY_LEN, (const unsigned char *)am, strlen(am), sig, &len);
	for (k = 0; k < SCRAM_KEY_LEN; k++)
		proof[k] = ckey[k] ^ sig[k];
	HMAC(EVP_sha256(), skey, SCRAM_KEY_LEN, (const unsigned char *)am, strlen(am), c->server_sig, &len);
	proof64 = pgw_b64_encode(proof, SCRAM_KEY_LEN);
	snprintf(c->final_msg, sizeof(c->final_msg), "%s,p=%s", without, proof64);
	free(proof64);
}

typedef struct exchange_case {
	const char *name;
	const char *client_password;
	const char *gs2;
	bool client_cb_wrong;  /* client computes binding over other data (MITM) */
	bool offered;          /* server listed -PLUS */
	bool selected;         /* client chose -PLUS */
	scram_result first;    /* expected after client-first */
	scram_result final;    /* expected after client-final */
} exchange_case;

static void test_full_exchanges(void **state)
{
	static const exchange_case cases[] = {
		{"plain n", "secret", "n,,", false, false, false, SCRAM_CONTINUE, SCRAM_OK},
		{"plain n, PLUS offered", "secret", "n,,", false, true, false, SCRAM_CONTINUE, SCRAM_OK},
		{"y, PLUS not offered", "secret", "y,,", false, false, false, SCRAM_CONTINUE, SCRAM_OK},
		{"y, PLUS offered: downgrade", "secret", "y,,", false, true, false, SCRAM_MALFORMED, 0},
		{"PLUS, binding matches", "secret", "p=tls-server-end-point,,", false, true, true,
		 SCRAM_CONTINUE, SCRAM_OK},
		{"PLUS, binding mismatch", "secret", "p=tls-server-end-point,,", true, true, true,
		 SCRAM_CONTINUE, SCRAM_FAIL},
		{"PLUS chosen but n flag", "secret", "n,,", false, true, true, SCRAM_MALFORMED, 0},
		{"p flag without PLUS", "secret", "p=tls-server-end-point,,", false, true, false,
		 SCRAM_MALFORMED, 0},
		{"p=tls-unique", "secret", "p=tls-unique,,", false, true, true, SCRAM_MALFORMED, 0},
		{"wrong password", "Secret", "n,,", false, false, false, SCRAM_CONTINUE, SCRAM_FAIL},
		{"wrong password PLUS", "Secret", "p=tls-server-end-point,,", false, true, true,
		 SCRAM_CONTINUE, SCRAM_FAIL},
	};
	static const uint8_t other_cb[32] = {9};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const exchange_case *tc = &cases[i];
		test_client c = {.password = tc->client_password, .gs2 = tc->gs2};
		char first[300], *out, *want;
		scram_secret sec;
		scram_server *s;
		scram_result r;

		if (strncmp(tc->gs2, "p=", 2) == 0) {
			c.cb = tc->client_cb_wrong ? other_cb : test_cbind;
			c.cblen = 32;
		}
		make_secret("secret", &sec);
		s = new_server(&sec, false, tc->offered, tc->selected, tc->offered ? test_cbind : NULL,
			       tc->offered ? 32 : 0);
		client_first(&c, first, sizeof(first));
		r = feed(s, first, &out);
		if (r != tc->first)
			fail_msg("%s: first %d", tc->name, r);
		if (r == SCRAM_CONTINUE) {
			client_final(&c, out);
			free(out);
			r = feed(s, c.final_msg, &out);
			if (r != tc->final)
				fail_msg("%s: final %d", tc->name, r);
			if (r == SCRAM_OK) {
				want = pgw_b64_encode(c.server_sig, SCRAM_KEY_LEN);
				assert_string_equal(out + 2, want);
				free(want);
			}
		}
		free(out);
		scram_server_free(s);
		scram_secret_clear(&sec);
	}
}

/* Client-first messages that must be refused as malformed, never crash. */
static void test_malformed_client_first(void **state)
{
	static const char *const bad[] = {
		"",
		"n",
		"n,",
		"x,,n=,r=abc",
		"n,a=bob,n=,r=abc",
		"n,,m=ext,n=,r=abc",
		"n,,r=abc",
		"n,,n=",
		"n,,n=,",
		"n,,n=,r=",
		"n,,n=,r=a\x01\x62",
		"n,,n=,r=abc,1=x",
		"n,,n=,r=abc,x",
		"n,,n=,r=abc,,",
		"n,n=,r=abc",
		"nn,,n=,r=abc",
		"p=,,n=,r=abc",
		"=,,n=,r=abc",
	};
	scram_secret sec;
	size_t i;

	(void)state;
	make_secret("secret", &sec);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		scram_server *s = new_server(&sec, false, false, false, NULL, 0);
		char *out;
		scram_result r = feed(s, bad[i], &out);

		if (r != SCRAM_MALFORMED)
			fail_msg("client-first #%zu \"%s\": %d", i, bad[i], r);
		assert_null(out);
		scram_server_free(s);
	}
	scram_secret_clear(&sec);
}

/* An embedded NUL and an oversized message are malformed too. */
static void test_malformed_bytes(void **state)
{
	static const uint8_t with_nul[] = "n,,n=\0,r=abc";
	scram_secret sec;
	scram_server *s;
	char *out, *huge;
	size_t len;

	(void)state;
	make_secret("secret", &sec);
	s = new_server(&sec, false, false, false, NULL, 0);
	assert_int_equal(scram_server_exchange(s, with_nul, sizeof(with_nul) - 1, &out, &len),
			 SCRAM_MALFORMED);
	scram_server_free(s);

	huge = malloc(1 << 20);
	assert_non_null(huge);
	memset(huge, 'a', 1 << 20);
	memcpy(huge, "n,,n=,r=", 8);
	s = new_server(&sec, false, false, false, NULL, 0);
	assert_int_equal(scram_server_exchange(s, (uint8_t *)huge, 1 << 20, &out, &len), SCRAM_MALFORMED);
	scram_server_free(s);
	/* Just under the limit is fine: a long but printable nonce. */
	huge[SCRAM_MAX_MESSAGE - 100] = '\0';
	s = new_server(&sec, false, false, false, NULL, 0);
	assert_int_equal(feed(s, huge, &out), SCRAM_CONTINUE);
	free(out);
	scram_server_free(s);
	free(huge);
	scram_secret_clear(&sec);
}

/* Client-final variants after a valid client-first (RFC nonces, so messages are fixed strings). */
static void test_malformed_client_final(void **state)
{
#define NONCE "r=" RFC_CNONCE RFC_SNONCE
#define PROOF "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	static const struct {
		const char *msg;
		scram_result want;
	} cases[] = {
		{"", SCRAM_MALFORMED},
		{"c=biws", SCRAM_MALFORMED},
		{"c=biws," NONCE, SCRAM_MALFORMED},
		{NONCE "," PROOF, SCRAM_MALFORMED},
		{"c=biws," PROOF, SCRAM_MALFORMED},
		{"c=eSws," NONCE "," PROOF, SCRAM_MALFORMED},           /* y header after n */
		{"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws," NONCE "," PROOF, SCRAM_MALFORMED},
		{"c=biws,r=" RFC_CNONCE "," PROOF, SCRAM_MALFORMED},     /* our half missing */
		{"c=biws," NONCE "x," PROOF, SCRAM_MALFORMED},           /* wrong nonce */
		{"c=biws,r=x" RFC_SNONCE "," PROOF, SCRAM_MALFORMED},
		{"c=biws," NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ", SCRAM_MALFORMED},
		{"c=biws," NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=AAAA", SCRAM_MALFORMED},
		{"c=biws," NONCE ",p=!!!!", SCRAM_MALFORMED},
		{"c=biws," NONCE ",p=", SCRAM_MALFORMED},
		{"c=biws," NONCE "," PROOF ",", SCRAM_MALFORMED},        /* garbage after proof */
		{"c=biws," NONCE "," PROOF ",x=y", SCRAM_MALFORMED},
		{"c=biws," NONCE ",x,", SCRAM_MALFORMED},
		{"c=biws," NONCE ",x=1," PROOF, SCRAM_FAIL},            /* extension: proof no longer fits */
		{"c=biws," NONCE ",p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", SCRAM_FAIL},
		{"c=biws," NONCE "," PROOF, SCRAM_OK},
	};
	scram_secret sec;
	size_t i;

	(void)state;
	make_secret("pencil", &sec);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scram_server *s = new_server(&sec, false, false, false, NULL, 0);
		char *out;
		scram_result r;

		assert_true(scram_server_set_nonce(s, RFC_SNONCE));
		assert_int_equal(feed(s, RFC_CFIRST, &out), SCRAM_CONTINUE);
		free(out);
		r = feed(s, cases[i].msg, &out);
		if (r != cases[i].want)
			fail_msg("client-final #%zu \"%s\": %d, want %d", i, cases[i].msg, r, cases[i].want);
		if (r != SCRAM_OK)
			assert_null(out);
		free(out);
		scram_server_free(s);
	}
	scram_secret_clear(&sec);
#undef NONCE
#undef PROOF
}

/* Server nonces are random, printable and differ between exchanges. */
static void test_random_nonce(void **state)
{
	scram_secret sec;
	char *a, *b;
	scram_server *s1, *s2;

	(void)state;
	make_secret("secret", &sec);
	s1 = new_server(&sec, false, false, false, NULL, 0);
	s2 = new_server(&sec, false, false, false, NULL, 0);
	assert_int_equal(feed(s1, "n,,n=,r=abc", &a), SCRAM_CONTINUE);
	assert_int_equal(feed(s2, "n,,n=,r=abc", &b), SCRAM_CONTINUE);
	assert_string_not_equal(a, b);
	assert_int_equal(strncmp(a, "r=abc", 5), 0);
	assert_int_equal(strcspn(a, ","), 2 + 3 + 24);
	free(a);
	free(b);
	scram_server_free(s1);
	scram_server_free(s2);
	scram_secret_clear(&sec);
}

/* Without random bytes there is no s-nonce: the exchange fails, never with a fixed nonce. */
static bool no_random(void *buf, size_t n)
{
	(void)buf, (void)n;
	return false;
}

static void test_nonce_needs_random(void **state)
{
	scram_secret sec;
	char *a = NULL;
	scram_server *s;

	(void)state;
	make_secret("secret", &sec);
	s = new_server(&sec, false, false, false, NULL, 0);
	pgw_random_set_source(no_random);
	assert_int_equal(feed(s, "n,,n=,r=abc", &a), SCRAM_FAIL);
	pgw_random_set_source(NULL);
	assert_null(a);
	scram_server_free(s);
	scram_secret_clear(&sec);
}

/* A throwaway self-signed EC certificate signed with digest md. */
static X509 *make_cert(EVP_PKEY *key, const EVP_MD *md)
{
	X509 *x = X509_new();

	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"t",
				   -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, key, md) > 0);
	return x;
}

/* RFC 5929: the certificate's own digest, except MD5/SHA-1 become SHA-256. */
static void test_cert_end_point_hash(void **state)
{
	static const struct {
		const char *md;
		size_t len;
		const char *want_md;
	} cases[] = {{"SHA256", 32, "SHA256"}, {"SHA384", 48, "SHA384"}, {"SHA512", 64, "SHA512"},
		     {"SHA1", 32, "SHA256"}};
	EVP_PKEY *key = EVP_EC_gen("P-256");
	size_t i;

	(void)state;
	assert_non_null(key);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		X509 *x = make_cert(key, EVP_get_digestbyname(cases[i].md));
		uint8_t got[SCRAM_MAX_CBIND_DATA], want[EVP_MAX_MD_SIZE];
		unsigned int wl = 0;
		size_t gl = 0;

		assert_true(scram_cert_end_point_hash(x, got, &gl));
		assert_int_equal(gl, cases[i].len);
		assert_true(X509_digest(x, EVP_get_digestbyname(cases[i].want_md), want, &wl));
		assert_memory_equal(got, want, gl);
		X509_free(x);
	}
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7677_vector),
		cmocka_unit_test(test_rfc_vector_wrong_and_doomed),
		cmocka_unit_test(test_libpq_verifiers_match),
		cmocka_unit_test(test_saslprep_table),
		cmocka_unit_test(test_b64_strict),
		cmocka_unit_test(test_parse_secret_rejects),
		cmocka_unit_test(test_full_exchanges),
		cmocka_unit_test(test_malformed_client_first),
		cmocka_unit_test(test_malformed_bytes),
		cmocka_unit_test(test_malformed_client_final),
		cmocka_unit_test(test_random_nonce),
		cmocka_unit_test(test_nonce_needs_random),
		cmocka_unit_test(test_cert_end_point_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
