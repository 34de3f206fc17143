/* scram.c - SCRAM-SHA-256 verifiers and the server side of the exchange, on OpenSSL primitives. */
#include "protocol/scram.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "protocol/saslprep.h"
#include "conf/core/random.h"

/* Where the server side of one exchange is. */
typedef enum {
	SCRAM_STATE_INIT,      /* waiting for client-first-message */
	SCRAM_STATE_SALT_SENT, /* server-first-message sent; waiting for client-final-message */
	SCRAM_STATE_FINISHED,  /* done, successfully or not; any further message is malformed */
} scram_state;

struct scram_server {
	scram_state state; /* the only writer is set_state() */
	int iterations;    /* sent as i= */
	uint8_t *salt;     /* sent as s= (base64) */
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];   /* checks the client proof */
	uint8_t server_key[SCRAM_KEY_LEN];   /* signs the server-final-message */
	bool doomed;                         /* fail at the end whatever the proof */
	bool plus_offered;                   /* we listed SCRAM-SHA-256-PLUS */
	bool plus_selected;                  /* the client chose SCRAM-SHA-256-PLUS */
	uint8_t cbind[SCRAM_MAX_CBIND_DATA]; /* tls-server-end-point hash, when plus_selected */
	size_t cbind_len;
	char cbind_flag;         /* gs2-cbind-flag the client sent: 'n', 'y' or 'p' */
	char *client_first_bare; /* client-first-message-bare, for AuthMessage */
	char *client_nonce;      /* c-nonce from client-first */
	char *server_nonce;      /* our s-nonce: base64 of random bytes, or the test hook's */
	char *server_first;      /* server-first-message, for AuthMessage */
};

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* gs2 header of a -PLUS client; authzid is always empty because we refuse any other. */
static const char cbind_header[] = "p=tls-server-end-point,,";

char *pgw_b64_encode(const uint8_t *data, size_t len)
{
	char *out;

	if (len > (size_t)INT_MAX / 2)
		return NULL;
	out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

bool pgw_b64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
	size_t pad = 0, i;
	uint8_t *buf;
	int n;

	*out = NULL;
	*outlen = 0;
	/* Why check first: EVP_DecodeBlock trims whitespace and counts padding as zero bytes. */
	if (len % 4 != 0 || len > (size_t)INT_MAX / 2)
		return false;
	if (len >= 1 && s[len - 1] == '=')
		pad++;
	if (len >= 2 && s[len - 2] == '=')
		pad++;
	for (i = 0; i < len - pad; i++)
		if (s[i] == '\0' || !strchr(b64_alphabet, s[i]))
			return false;
	buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return false;
	n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(buf);
		return false;
	}
	*out = buf;
	*outlen = (size_t)n - pad;
	return true;
}

bool scram_salted_password(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
			   uint8_t out[SCRAM_KEY_LEN])
{
	char *prep;
	int ok;

	if (iterations <= 0 || salt_len > INT_MAX)
		return false;
	prep = scram_prepare_password(password);
	if (!prep)
		return false;
	ok = PKCS5_PBKDF2_HMAC(prep, (int)strlen(prep), salt, (int)salt_len, iterations, EVP_sha256(), SCRAM_KEY_LEN,
			       out);
	OPENSSL_cleanse(prep, strlen(prep));
	free(prep);
	return ok == 1;
}

/* HMAC-SHA-256 of a string; false on an OpenSSL failure. */
static bool hmac_str(const uint8_t key[SCRAM_KEY_LEN], const char *msg, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int outlen = 0;

	if (!HMAC(EVP_sha256(), key, SCRAM_KEY_LEN, (const unsigned char *)msg, len, out, &outlen))
		return false;
	return outlen == SCRAM_KEY_LEN;
}

bool scram_keys_from_salted(const uint8_t salted[SCRAM_KEY_LEN], uint8_t stored_key[SCRAM_KEY_LEN],
			    uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t client_key[SCRAM_KEY_LEN];
	bool ok;

	ok = hmac_str(salted, "Client Key", 10, client_key) && SHA256(client_key, SCRAM_KEY_LEN, stored_key) &&
	     hmac_str(salted, "Server Key", 10, server_key);
	OPENSSL_cleanse(client_key, sizeof(client_key));
	return ok;
}

char *scram_build_secret(const char *password, const uint8_t *salt, size_t salt_len, int iterations)
{
	uint8_t salted[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN], server[SCRAM_KEY_LEN];
	char *salt64 = NULL, *stored64 = NULL, *server64 = NULL, *res = NULL;

	if (!scram_salted_password(password, salt, salt_len, iterations, salted))
		goto out;
	if (!scram_keys_from_salted(salted, stored, server))
		goto out;
	salt64 = pgw_b64_encode(salt, salt_len);
	stored64 = pgw_b64_encode(stored, SCRAM_KEY_LEN);
	server64 = pgw_b64_encode(server, SCRAM_KEY_LEN);
	if (!salt64 || !stored64 || !server64)
		goto out;
	if (asprintf(&res, "SCRAM-SHA-256$%d:%s$%s:%s", iterations, salt64, stored64, server64) < 0)
		res = NULL;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	free(salt64);
	free(stored64);
	free(server64);
	return res;
}

/* Decode the base64 in [s, end) into exactly want bytes of out. */
static bool decode_exact(const char *s, const char *end, uint8_t *out, size_t want)
{
	uint8_t *buf;
	size_t n;
	bool ok;

	if (!pgw_b64_decode(s, (size_t)(end - s), &buf, &n))
		return false;
	ok = n == want;
	if (ok)
		memcpy(out, buf, want);
	free(buf);
	return ok;
}

/* Digits only, 1..INT_MAX. */
static bool parse_iterations(const char *s, const char *end, int *out)
{
	long v = 0;

	if (s == end || end - s > 10)
		return false;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
	}
	if (v <= 0 || v > INT_MAX)
		return false;
	*out = (int)v;
	return true;
}

bool scram_parse_secret(const char *text, scram_secret *out)
{
	static const char prefix[] = "SCRAM-SHA-256$";
	const char *p, *colon1, *dollar, *colon2, *end;

	memset(out, 0, sizeof(*out));
	if (strncmp(text, prefix, sizeof(prefix) - 1) != 0)
		return false;
	p = text + sizeof(prefix) - 1;
	end = p + strlen(p);
	colon1 = strchr(p, ':');
	dollar = colon1 ? strchr(colon1, '$') : NULL;
	colon2 = dollar ? strchr(dollar, ':') : NULL;
	if (!colon2 || !parse_iterations(p, colon1, &out->iterations))
		return false;
	if (!pgw_b64_decode(colon1 + 1, (size_t)(dollar - colon1 - 1), &out->salt, &out->salt_len) ||
	    out->salt_len == 0)
		goto bad;
	if (!decode_exact(dollar + 1, colon2, out->stored_key, SCRAM_KEY_LEN) ||
	    !decode_exact(colon2 + 1, end, out->server_key, SCRAM_KEY_LEN))
		goto bad;
	return true;
bad:
	scram_secret_clear(out);
	return false;
}

void scram_secret_clear(scram_secret *s)
{
	free(s->salt);
	OPENSSL_cleanse(s, sizeof(*s));
}

bool scram_cert_end_point_hash(const void *x509, uint8_t *out, size_t *outlen)
{
	const X509 *cert = x509;
	const EVP_MD *md;
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int algo = NID_undef;

	if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo, NULL))
		return false;
	/* RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256. */
	if (algo == NID_md5 || algo == NID_sha1)
		algo = NID_sha256;
	md = EVP_get_digestbynid(algo);
	if (!md || !X509_digest(cert, md, buf, &len) || len == 0 || len > SCRAM_MAX_CBIND_DATA)
		return false;
	memcpy(out, buf, len);
	*outlen = len;
	return true;
}

/* ---- server side of the exchange ---- */

static void set_state(scram_server *s, scram_state st)
{
	s->state = st;
}

scram_server *scram_server_new(const scram_server_params *p)
{
	scram_server *s;

	if (p->iterations <= 0 || p->salt_len == 0 || p->cbind_len > SCRAM_MAX_CBIND_DATA)
		return NULL;
	if (p->plus_selected && (!p->plus_offered || p->cbind_len == 0))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->salt = malloc(p->salt_len);
	if (!s->salt) {
		free(s);
		return NULL;
	}
	memcpy(s->salt, p->salt, p->salt_len);
	s->salt_len = p->salt_len;
	s->iterations = p->iterations;
	memcpy(s->stored_key, p->stored_key, SCRAM_KEY_LEN);
	memcpy(s->server_key, p->server_key, SCRAM_KEY_LEN);
	s->doomed = p->doomed;
	s->plus_offered = p->plus_offered;
	s->plus_selected = p->plus_selected;
	if (p->cbind_len)
		memcpy(s->cbind, p->cbind_data, p->cbind_len);
	s->cbind_len = p->cbind_len;
	set_state(s, SCRAM_STATE_INIT);
	return s;
}

void scram_server_free(scram_server *s)
{
	if (!s)
		return;
	free(s->salt);
	free(s->client_first_bare);
	free(s->client_nonce);
	free(s->server_nonce);
	free(s->server_first);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

/* RFC 5802 printable: %x21-2B / %x2D-7E (no comma), and at least one. */
static bool is_printable(const char *v)
{
	if (!*v)
		return false;
	for (; *v; v++)
		if (*v < 0x21 || *v > 0x7E || *v == ',')
			return false;
	return true;
}

bool scram_server_set_nonce(scram_server *s, const char *nonce)
{
	char *copy;

	if (s->state != SCRAM_STATE_INIT || !is_printable(nonce))
		return false;
	copy = strdup(nonce);
	if (!copy)
		return false;
	free(s->server_nonce);
	s->server_nonce = copy;
	return true;
}

/*
 * Read "<attr>=<value>" at *in (a NUL-terminated, writable buffer): the
 * value is cut at the next ',' (overwritten with NUL) and *in moves past it.
 * attr 0 accepts any ASCII letter and stores it in *got. NULL if absent.
 */
static char *read_attr(char **in, char attr, char *got)
{
	char *p = *in, *v, *end;
	bool letter = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z');

	if (!letter || (attr && *p != attr) || p[1] != '=')
		return NULL;
	if (got)
		*got = *p;
	v = p + 2;
	end = strchr(v, ',');
	if (end) {
		*end = '\0';
		*in = end + 1;
	} else {
		*in = v + strlen(v);
	}
	return v;
}

/* Copy a client message into a NUL-terminated buffer; NULL if too long or it holds a NUL. */
static char *copy_message(const uint8_t *in, size_t len)
{
	char *buf;

	if (len == 0 || len > SCRAM_MAX_MESSAGE || memchr(in, '\0', len))
		return NULL;
	buf = malloc(len + 1);
	if (!buf)
		return NULL;
	memcpy(buf, in, len);
	buf[len] = '\0';
	return buf;
}

/*
 * The gs2 header: flag, optional channel binding name, empty authzid.
 * Why these rules (PostgreSQL auth-scram.c, RFC 5802 §6): the flag must
 * agree with the mechanism the client chose, and 'y' ("I support binding
 * but think you don't") while we offered -PLUS means someone stripped it
 * from the list in transit: a downgrade, refused.
 */
static bool read_gs2_header(scram_server *s, char **pp)
{
	static const char cb_prefix[] = "p=tls-server-end-point,";
	char *p = *pp;

	s->cbind_flag = *p;
	switch (*p) {
	case 'n':
	case 'y':
		if (s->plus_selected || (*p == 'y' && s->plus_offered) || p[1] != ',')
			return false;
		p += 2;
		break;
	case 'p':
		/* Any other binding type (tls-unique, tls-exporter) is unsupported. */
		if (!s->plus_selected || strncmp(p, cb_prefix, sizeof(cb_prefix) - 1) != 0)
			return false;
		p += sizeof(cb_prefix) - 1;
		break;
	default:
		return false;
	}
	/* authzid: PostgreSQL supports none, so it must be empty. */
	if (*p != ',')
		return false;
	*pp = p + 1;
	return true;
}

/* Attach a random (or test-set) s-nonce and build server-first-message. */
static bool build_server_first(scram_server *s)
{
	uint8_t raw[SCRAM_RAW_NONCE_LEN];
	char *salt64;
	int n;

	if (!s->server_nonce) {
		if (!pgw_random_bytes(raw, sizeof(raw)))
			return false;
		s->server_nonce = pgw_b64_encode(raw, sizeof(raw));
		if (!s->server_nonce)
			return false;
	}
	salt64 = pgw_b64_encode(s->salt, s->salt_len);
	if (!salt64)
		return false;
	n = asprintf(&s->server_first, "r=%s%s,s=%s,i=%d", s->client_nonce, s->server_nonce, salt64, s->iterations);
	free(salt64);
	if (n < 0) {
		s->server_first = NULL;
		return false;
	}
	return true;
}

/* client-first-message -> server-first-message. */
static scram_result on_client_first(scram_server *s, char *buf, char **out, size_t *outlen)
{
	char *p = buf, *nonce, attr;

	if (!read_gs2_header(s, &p))
		return SCRAM_MALFORMED;
	s->client_first_bare = strdup(p);
	if (!s->client_first_bare)
		return SCRAM_FAIL;
	/* m= would be a mandatory extension; we support none (RFC 5802 §5.1). */
	if (*p == 'm')
		return SCRAM_MALFORMED;
	/* n= is ignored: PostgreSQL takes the user from the startup packet, libpq sends it empty. */
	if (!read_attr(&p, 'n', NULL))
		return SCRAM_MALFORMED;
	nonce = read_attr(&p, 'r', NULL);
	if (!nonce || !is_printable(nonce))
		return SCRAM_MALFORMED;
	while (*p)
		if (!read_attr(&p, 0, &attr))
			return SCRAM_MALFORMED;
	s->client_nonce = strdup(nonce);
	if (!s->client_nonce || !build_server_first(s))
		return SCRAM_FAIL;
	*out = strdup(s->server_first);
	if (!*out)
		return SCRAM_FAIL;
	*outlen = strlen(*out);
	set_state(s, SCRAM_STATE_SALT_SENT);
	return SCRAM_CONTINUE;
}

/*
 * The c= attribute: base64 of the gs2 header plus, for -PLUS, our
 * certificate hash. A wrong hash is an authentication failure (a MITM),
 * a wrong header a protocol violation, as in PostgreSQL.
 */
static scram_result check_channel_binding(const scram_server *s, const char *c)
{
	uint8_t input[sizeof(cbind_header) - 1 + SCRAM_MAX_CBIND_DATA];
	size_t hlen = sizeof(cbind_header) - 1;
	char *want;
	bool same;

	if (!s->plus_selected) {
		if ((s->cbind_flag == 'n' && strcmp(c, "biws") == 0) ||
		    (s->cbind_flag == 'y' && strcmp(c, "eSws") == 0))
			return SCRAM_CONTINUE;
		return SCRAM_MALFORMED;
	}
	memcpy(input, cbind_header, hlen);
	memcpy(input + hlen, s->cbind, s->cbind_len);
	want = pgw_b64_encode(input, hlen + s->cbind_len);
	if (!want)
		return SCRAM_FAIL;
	same = strlen(c) == strlen(want) && CRYPTO_memcmp(c, want, strlen(want)) == 0;
	free(want);
	return same ? SCRAM_CONTINUE : SCRAM_FAIL;
}

/* r= in client-final must be exactly c-nonce followed by s-nonce. */
static bool final_nonce_ok(const scram_server *s, const char *r)
{
	size_t cl = strlen(s->client_nonce), sl = strlen(s->server_nonce);

	return strlen(r) == cl + sl && memcmp(r, s->client_nonce, cl) == 0 && memcmp(r + cl, s->server_nonce, sl) == 0;
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof. */
static char *auth_message(const scram_server *s, const char *final_wo_proof, size_t wo_len, size_t *len)
{
	char *m;
	int n;

	n = asprintf(&m, "%s,%s,%.*s", s->client_first_bare, s->server_first, (int)wo_len, final_wo_proof);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return m;
}

/*
 * Check the proof: ClientKey = proof XOR HMAC(StoredKey, AuthMessage) and
 * H(ClientKey) must equal StoredKey (constant time). Then sign for the
 * client: v= base64(HMAC(ServerKey, AuthMessage)). A doomed exchange does
 * the same work and fails.
 */
static scram_result verify_and_sign(scram_server *s, const char *am, size_t amlen, const uint8_t proof[SCRAM_KEY_LEN],
				    char **out, size_t *outlen)
{
	uint8_t sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	char *sig64;
	bool match;
	int i;

	if (!hmac_str(s->stored_key, am, amlen, sig))
		return SCRAM_FAIL;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	if (!SHA256(key, SCRAM_KEY_LEN, stored))
		return SCRAM_FAIL;
	match = CRYPTO_memcmp(stored, s->stored_key, SCRAM_KEY_LEN) == 0;
	OPENSSL_cleanse(key, sizeof(key));
	if (!match || s->doomed)
		return SCRAM_FAIL;
	if (!hmac_str(s->server_key, am, amlen, sig))
		return SCRAM_FAIL;
	sig64 = pgw_b64_encode(sig, SCRAM_KEY_LEN);
	if (!sig64 || asprintf(out, "v=%s", sig64) < 0) {
		free(sig64);
		*out = NULL;
		return SCRAM_FAIL;
	}
	free(sig64);
	*outlen = strlen(*out);
	return SCRAM_OK;
}

/* client-final-message -> server-final-message. 'orig' is the unmodified message. */
static scram_result on_client_final(scram_server *s, const char *orig, char *buf, char **out, size_t *outlen)
{
	uint8_t proof[SCRAM_KEY_LEN];
	char *p = buf, *c, *r, *v = NULL, *am, attr = 0;
	size_t proof_at = 0, amlen;
	scram_result res;

	c = read_attr(&p, 'c', NULL);
	r = c ? read_attr(&p, 'r', NULL) : NULL;
	if (!r)
		return SCRAM_MALFORMED;
	/* Extensions may come before p=; the proof is always last. */
	while (*p && attr != 'p') {
		proof_at = (size_t)(p - buf);
		v = read_attr(&p, 0, &attr);
		if (!v)
			return SCRAM_MALFORMED;
	}
	/* Nothing may follow the proof, not even a comma. */
	if (attr != 'p' || *p || v + strlen(v) != buf + strlen(orig))
		return SCRAM_MALFORMED;
	if (!decode_exact(v, v + strlen(v), proof, SCRAM_KEY_LEN))
		return SCRAM_MALFORMED;
	res = check_channel_binding(s, c);
	if (res != SCRAM_CONTINUE)
		return res;
	if (!final_nonce_ok(s, r))
		return SCRAM_MALFORMED;
	/* The proof's own comma is not part of client-final-message-without-proof. */
	am = auth_message(s, orig, proof_at - 1, &amlen);
	if (!am)
		return SCRAM_FAIL;
	res = verify_and_sign(s, am, amlen, proof, out, outlen);
	free(am);
	return res;
}

scram_result scram_server_exchange(scram_server *s, const uint8_t *in, size_t inlen, char **out, size_t *outlen)
{
	scram_result res = SCRAM_MALFORMED;
	char *buf, *orig = NULL;

	*out = NULL;
	*outlen = 0;
	buf = copy_message(in, inlen);
	if (!buf)
		goto done;
	switch (s->state) {
	case SCRAM_STATE_INIT:
		res = on_client_first(s, buf, out, outlen);
		break;
	case SCRAM_STATE_SALT_SENT:
		orig = copy_message(in, inlen);
		res = orig ? on_client_final(s, orig, buf, out, outlen) : SCRAM_FAIL;
		break;
	case SCRAM_STATE_FINISHED:
		res = SCRAM_MALFORMED;
		break;
	}
done:
	free(buf);
	free(orig);
	if (res != SCRAM_CONTINUE)
		set_state(s, SCRAM_STATE_FINISHED);
	if (res != SCRAM_CONTINUE && res != SCRAM_OK) {
		free(*out);
		*out = NULL;
		*outlen = 0;
	}
	return res;
}
