/* auth.c - the actor authentication exchange: cleartext token or SCRAM-SHA-256, failing alike. */
#include "protocol/auth.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "protocol/pktread.h"
#include "protocol/scram.h"

/* AuthenticationXXX request codes (PostgreSQL protocol, "Message Formats"). */
enum {
	AUTH_REQ_PASSWORD = 3,   /* AuthenticationCleartextPassword */
	AUTH_REQ_SASL = 10,      /* AuthenticationSASL: mechanism list */
	AUTH_REQ_SASL_CONT = 11, /* AuthenticationSASLContinue: server-first-message */
	AUTH_REQ_SASL_FIN = 12,  /* AuthenticationSASLFinal: server-final-message */
};

/* What the exchange waits for. */
typedef enum {
	AUTH_PHASE_PASSWORD,  /* AuthenticationCleartextPassword sent; expecting PasswordMessage */
	AUTH_PHASE_SASL_INIT, /* AuthenticationSASL sent; expecting SASLInitialResponse */
	AUTH_PHASE_SASL,      /* AuthenticationSASLContinue sent; expecting SASLResponse */
	AUTH_PHASE_DONE,      /* finished, well or not; any further message is a protocol violation */
} auth_phase;

struct pgw_auth {
	auth_phase phase;      /* the only writer is set_phase() */
	const pgw_token *recs; /* the actor's records, adjacent in the table; NULL if unknown */
	size_t n_recs;
	const pgw_token *scram_rec;          /* the actor's SCRAM record, or NULL */
	bool doomed;                         /* SASL: run the exchange, then fail whatever the proof */
	bool plus_offered;                   /* SCRAM-SHA-256-PLUS was in the mechanism list */
	uint8_t cbind[SCRAM_MAX_CBIND_DATA]; /* tls-server-end-point hash of our certificate */
	size_t cbind_len;
	uint8_t mock_salt[SCRAM_DEFAULT_SALT_LEN]; /* salt of a doomed exchange without a real record */
	char *target;                              /* copy of the target name, for token_usable() */
	time_t now;                                /* the clock of this exchange, for token_usable() */
	scram_server *scram;                       /* the SCRAM exchange, once the client chose a mechanism */
	const char *fail_reason;                   /* for the server log; "none" until something fails */
};

static const char reason_none[] = "none";
static const char reason_unknown[] = "unknown actor";
static const char reason_wrong[] = "wrong token";
static const char reason_expired[] = "token expired";
static const char reason_target[] = "target not allowed for this token";
static const char reason_cleartext[] = "cleartext token refused without TLS";
static const char reason_scram[] = "SCRAM proof or channel binding rejected";
static const char reason_protocol[] = "protocol violation in the authentication exchange";

static void set_phase(pgw_auth *a, auth_phase ph)
{
	a->phase = ph;
}

bool secret_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

const char *auth_fail_reason(const pgw_auth *a)
{
	return a ? a->fail_reason : reason_none;
}

/*
 * One pass over the whole table: is SCRAM the kind most actors use (ties
 * to SCRAM), and a key for mock salts hashed from every record's secret
 * material, so it is stable while the token file is and unguessable
 * without it. Done for every actor so known and unknown ones cost the same.
 */
static bool survey_tokens(const pgw_token_table *t, bool *most_scram, uint8_t key[SCRAM_KEY_LEN])
{
	static const char label[] = "pgwarden mock salt key v1";
	size_t i, scram_actors = 0, other_actors = 0;
	bool has_scram = false, ok;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) && EVP_DigestUpdate(md, label, sizeof(label));
	for (i = 0; ok && t && i < t->n; i++) {
		const pgw_token *tok = &t->v[i];

		has_scram |= tok->kind == TOKEN_SCRAM;
		if (i + 1 == t->n || strcmp(tok->actor, t->v[i + 1].actor) != 0) {
			scram_actors += has_scram;
			other_actors += !has_scram;
			has_scram = false;
		}
		if (tok->kind == TOKEN_SCRAM)
			ok = EVP_DigestUpdate(md, tok->stored_key, SCRAM_KEY_LEN) &&
			     EVP_DigestUpdate(md, tok->server_key, SCRAM_KEY_LEN);
		else
			ok = EVP_DigestUpdate(md, tok->sha256, sizeof(tok->sha256));
	}
	ok = ok && EVP_DigestFinal_ex(md, key, NULL);
	EVP_MD_CTX_free(md);
	*most_scram = scram_actors > 0 && scram_actors >= other_actors;
	return ok;
}

/* Mock salt = HMAC(key, actor) cut to the default salt length, as PostgreSQL's scram_mock_salt. */
static bool make_mock_salt(const uint8_t key[SCRAM_KEY_LEN], const char *actor, uint8_t *salt)
{
	uint8_t mac[SCRAM_KEY_LEN];
	unsigned int len = 0;

	if (!HMAC(EVP_sha256(), key, SCRAM_KEY_LEN, (const unsigned char *)actor, strlen(actor), mac, &len))
		return false;
	memcpy(salt, mac, SCRAM_DEFAULT_SALT_LEN);
	return true;
}

static const pgw_token *find_scram_record(const pgw_token *recs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (recs[i].kind == TOKEN_SCRAM)
			return &recs[i];
	return NULL;
}

/* AuthenticationSASL: the mechanism list, -PLUS first like PostgreSQL, ending with an empty name. */
static void send_sasl_request(pgw_auth *a, pktbuf *out)
{
	static const char plus[] = SCRAM_MECH_PLUS;
	static const char plain[] = SCRAM_MECH;
	uint8_t list[sizeof(plus) + sizeof(plain) + 1];
	size_t n = 0;

	if (a->plus_offered) {
		memcpy(list, plus, sizeof(plus));
		n += sizeof(plus);
	}
	memcpy(list + n, plain, sizeof(plain));
	n += sizeof(plain);
	list[n++] = '\0';
	pkt_auth(out, AUTH_REQ_SASL, list, n);
	set_phase(a, AUTH_PHASE_SASL_INIT);
}

/* Why a matching record cannot be used (for the log and audit only; the client sees 28P01). */
static const char *unusable_reason(const pgw_token *t, time_t now)
{
	return t->expires != 0 && now >= t->expires ? reason_expired : reason_target;
}

/* Decide the mechanism (see auth.h) and whether a SASL exchange is doomed. */
static bool choose_sasl(pgw_auth *a, const auth_params *p, bool unknown_most_scram)
{
	bool cleartext_ok = p->tls || p->plaintext_auth;

	if (a->scram_rec) {
		a->doomed = !token_usable(a->scram_rec, a->target, a->now);
		a->fail_reason = a->doomed ? unusable_reason(a->scram_rec, a->now) : reason_scram;
		return true;
	}
	if (a->n_recs) {
		a->doomed = !cleartext_ok;
		a->fail_reason = cleartext_ok ? reason_wrong : reason_cleartext;
		return !cleartext_ok;
	}
	a->doomed = true;
	a->fail_reason = reason_unknown;
	return unknown_most_scram || !cleartext_ok;
}

pgw_auth *auth_begin(const auth_params *p, pktbuf *out)
{
	uint8_t key[SCRAM_KEY_LEN];
	const char *actor = p->actor ? p->actor : "";
	bool most_scram = false;
	pgw_auth *a;

	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->target = strdup(p->target ? p->target : "");
	if (!a->target)
		goto fail;
	a->now = p->now;
	if (p->tokens)
		a->recs = tokens_find_actor(p->tokens, actor, &a->n_recs);
	if (!a->recs)
		a->n_recs = 0;
	a->scram_rec = find_scram_record(a->recs, a->n_recs);
	if (!survey_tokens(p->tokens, &most_scram, key) || !make_mock_salt(key, actor, a->mock_salt))
		goto fail;
	OPENSSL_cleanse(key, sizeof(key));
	if (choose_sasl(a, p, most_scram)) {
		if (p->tls && p->tls_cert_hash && p->tls_cert_hash_len > 0 &&
		    p->tls_cert_hash_len <= SCRAM_MAX_CBIND_DATA) {
			a->plus_offered = true;
			memcpy(a->cbind, p->tls_cert_hash, p->tls_cert_hash_len);
			a->cbind_len = p->tls_cert_hash_len;
		}
		send_sasl_request(a, out);
	} else {
		pkt_auth(out, AUTH_REQ_PASSWORD, NULL, 0);
		set_phase(a, AUTH_PHASE_PASSWORD);
	}
	return a;
fail:
	OPENSSL_cleanse(key, sizeof(key));
	auth_free(a);
	return NULL;
}

/*
 * PasswordMessage: SHA-256 of the token compared with EVERY record of the
 * actor (a dummy for an unknown one) in constant time, usability checked
 * for each too, no early exit: the time does not depend on which matched.
 */
static auth_status on_password(pgw_auth *a, const uint8_t *body, size_t len, const pgw_token **who)
{
	static const uint8_t dummy[SHA256_DIGEST_LENGTH];
	uint8_t h[SHA256_DIGEST_LENGTH];
	const pgw_token *match = NULL;
	const char *pw;
	size_t pwlen, i;
	pktread r;

	pktread_init(&r, body, len);
	if (!rd_cstr(&r, &pw, &pwlen) || !pktread_done(&r))
		return AUTH_MALFORMED;
	if (!SHA256((const unsigned char *)pw, pwlen, h))
		return AUTH_FAIL;
	if (a->n_recs == 0)
		(void)secret_equal(h, dummy, sizeof(h));
	for (i = 0; i < a->n_recs; i++) {
		const pgw_token *t = &a->recs[i];
		bool same = secret_equal(h, t->sha256, sizeof(h));
		bool usable = token_usable(t, a->target, a->now);

		if ((same & usable & (t->kind == TOKEN_SHA256)) && !match)
			match = t;
		else if (same && t->kind == TOKEN_SHA256)
			a->fail_reason = unusable_reason(t, a->now);
	}
	OPENSSL_cleanse(h, sizeof(h));
	/* PostgreSQL refuses an empty password outright; the hash work is done anyway. */
	if (!match || pwlen == 0)
		return AUTH_FAIL;
	*who = match;
	return AUTH_OK;
}

/* Hand SASL data to the SCRAM exchange and wrap its answer in the right 'R' message. */
static auth_status feed_scram(pgw_auth *a, const uint8_t *data, size_t len, pktbuf *out, const pgw_token **who)
{
	char *msg = NULL;
	size_t msglen = 0;
	scram_result res;

	res = scram_server_exchange(a->scram, data, len, &msg, &msglen);
	switch (res) {
	case SCRAM_CONTINUE:
		pkt_auth(out, AUTH_REQ_SASL_CONT, msg, msglen);
		set_phase(a, AUTH_PHASE_SASL);
		break;
	case SCRAM_OK:
		pkt_auth(out, AUTH_REQ_SASL_FIN, msg, msglen);
		*who = a->scram_rec;
		break;
	case SCRAM_FAIL:
	case SCRAM_MALFORMED:
		break;
	}
	free(msg);
	if (res == SCRAM_CONTINUE)
		return AUTH_CONTINUE;
	if (res == SCRAM_OK && a->scram_rec && !a->doomed)
		return AUTH_OK;
	return res == SCRAM_MALFORMED ? AUTH_MALFORMED : AUTH_FAIL;
}

/* Start the SCRAM exchange for the chosen mechanism, with the real or the mock verifier. */
static bool start_scram(pgw_auth *a, bool plus)
{
	static const uint8_t zero_key[SCRAM_KEY_LEN];
	scram_server_params sp = {
		.iterations = SCRAM_DEFAULT_ITERATIONS,
		.salt = a->mock_salt,
		.salt_len = sizeof(a->mock_salt),
		.stored_key = zero_key,
		.server_key = zero_key,
		.doomed = a->doomed,
		.plus_offered = a->plus_offered,
		.plus_selected = plus,
		.cbind_data = a->cbind,
		.cbind_len = a->cbind_len,
	};

	if (a->scram_rec) {
		sp.iterations = a->scram_rec->scram_iterations;
		sp.salt = a->scram_rec->scram_salt;
		sp.salt_len = a->scram_rec->scram_salt_len;
		sp.stored_key = a->scram_rec->stored_key;
		sp.server_key = a->scram_rec->server_key;
	}
	a->scram = scram_server_new(&sp);
	return a->scram != NULL;
}

/*
 * SASLInitialResponse: mechanism name, Int32 length of the initial
 * response (-1 = none) and its bytes. Without an initial response the
 * client gets an empty SASLContinue and sends client-first in a
 * SASLResponse (PostgreSQL's CheckSASLAuth does the same).
 */
static auth_status on_sasl_initial(pgw_auth *a, const uint8_t *body, size_t len, pktbuf *out, const pgw_token **who)
{
	const char *mech;
	const uint8_t *data = NULL;
	size_t mlen;
	int32_t dlen;
	pktread r;
	bool plus;

	pktread_init(&r, body, len);
	if (!rd_cstr(&r, &mech, &mlen) || !rd_i32(&r, &dlen) || dlen < -1)
		return AUTH_MALFORMED;
	if (dlen >= 0 && !rd_bytes(&r, (size_t)dlen, &data))
		return AUTH_MALFORMED;
	if (!pktread_done(&r))
		return AUTH_MALFORMED;
	plus = strcmp(mech, SCRAM_MECH_PLUS) == 0;
	if (!(plus && a->plus_offered) && strcmp(mech, SCRAM_MECH) != 0)
		return AUTH_MALFORMED;
	if (!start_scram(a, plus))
		return AUTH_FAIL;
	if (dlen == -1) {
		pkt_auth(out, AUTH_REQ_SASL_CONT, NULL, 0);
		set_phase(a, AUTH_PHASE_SASL);
		return AUTH_CONTINUE;
	}
	return feed_scram(a, data, (size_t)dlen, out, who);
}

auth_status auth_on_message(pgw_auth *a, const uint8_t *body, size_t len, pktbuf *out, const pgw_token **who)
{
	auth_status st = AUTH_MALFORMED;

	*who = NULL;
	switch (a->phase) {
	case AUTH_PHASE_PASSWORD:
		st = on_password(a, body, len, who);
		break;
	case AUTH_PHASE_SASL_INIT:
		st = on_sasl_initial(a, body, len, out, who);
		break;
	case AUTH_PHASE_SASL:
		st = feed_scram(a, body, len, out, who);
		break;
	case AUTH_PHASE_DONE:
		st = AUTH_MALFORMED;
		break;
	}
	if (st == AUTH_MALFORMED)
		a->fail_reason = reason_protocol;
	if (st != AUTH_CONTINUE)
		set_phase(a, AUTH_PHASE_DONE);
	if (st == AUTH_OK)
		a->fail_reason = reason_none;
	return st;
}

void auth_free(pgw_auth *a)
{
	if (!a)
		return;
	scram_server_free(a->scram);
	free(a->target);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
}
