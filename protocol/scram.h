/*
 * scram.h - SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL implements it:
 * verifier building and parsing, and the server side of the exchange,
 * including tls-server-end-point channel binding (SCRAM-SHA-256-PLUS).
 *
 * This module knows only SCRAM text messages; protocol/auth.c wraps them in
 * AuthenticationSASLContinue/Final and reads SASLInitialResponse/SASLResponse.
 */
#ifndef PGW_SCRAM_H
#define PGW_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_LEN 32              /* SHA-256 digest length: keys, proofs, signatures */
#define SCRAM_DEFAULT_ITERATIONS 4096 /* PostgreSQL's default scram_iterations */
#define SCRAM_DEFAULT_SALT_LEN 16     /* PostgreSQL's SCRAM_DEFAULT_SALT_LEN */
#define SCRAM_RAW_NONCE_LEN 18        /* random bytes in our nonce, as PostgreSQL */
#define SCRAM_MAX_MESSAGE 8192        /* longer client messages are malformed */
#define SCRAM_MAX_CBIND_DATA 64       /* largest tls-server-end-point hash (SHA-512) */

#define SCRAM_MECH "SCRAM-SHA-256"
#define SCRAM_MECH_PLUS "SCRAM-SHA-256-PLUS"

/* A parsed verifier: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>. */
typedef struct scram_secret {
	int iterations; /* PBKDF2 iteration count, > 0 */
	uint8_t *salt;  /* decoded salt, malloc'd */
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN]; /* H(HMAC(SaltedPassword, "Client Key")) */
	uint8_t server_key[SCRAM_KEY_LEN]; /* HMAC(SaltedPassword, "Server Key") */
} scram_secret;

/* Base64 (standard alphabet, padded). Encode returns a malloc'd string or NULL. */
char *pgw_b64_encode(const uint8_t *data, size_t len);
/* Strict decode of exactly 'len' chars: alphabet, padding and length checked. */
bool pgw_b64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen);

/* SaltedPassword = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, iterations). */
bool scram_salted_password(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
			   uint8_t out[SCRAM_KEY_LEN]);
/* StoredKey and ServerKey from a SaltedPassword. */
bool scram_keys_from_salted(const uint8_t salted[SCRAM_KEY_LEN], uint8_t stored_key[SCRAM_KEY_LEN],
			    uint8_t server_key[SCRAM_KEY_LEN]);

/*
 * The verifier PostgreSQL would store for this password, salt and iteration
 * count (password SASLprep'd with PostgreSQL's fallbacks). malloc'd; NULL on failure.
 */
char *scram_build_secret(const char *password, const uint8_t *salt, size_t salt_len, int iterations);

/* Parse a verifier string; false if it is not exactly the format above. Free with scram_secret_clear. */
bool scram_parse_secret(const char *text, scram_secret *out);
void scram_secret_clear(scram_secret *s);

typedef enum {
	SCRAM_CONTINUE,  /* *out holds server-first-message; wait for client-final */
	SCRAM_OK,        /* proof verified; *out holds server-final-message (v=...) */
	SCRAM_FAIL,      /* wrong proof, channel binding mismatch, or a doomed exchange */
	SCRAM_MALFORMED, /* the client broke the SCRAM syntax or rules: protocol violation */
} scram_result;

/* What the server side of one exchange needs; everything is copied by scram_server_new. */
typedef struct scram_server_params {
	int iterations;      /* from the verifier (or the mock one) */
	const uint8_t *salt; /* from the verifier (or the mock one) */
	size_t salt_len;
	const uint8_t *stored_key; /* SCRAM_KEY_LEN bytes */
	const uint8_t *server_key; /* SCRAM_KEY_LEN bytes */
	bool doomed;               /* run the whole exchange but fail at the end (mock/unusable) */
	bool plus_offered;         /* we listed SCRAM-SHA-256-PLUS: a 'y' client is a downgrade */
	bool plus_selected;        /* the client chose SCRAM-SHA-256-PLUS */
	const uint8_t *cbind_data; /* tls-server-end-point hash of our certificate, when plus_selected */
	size_t cbind_len;          /* <= SCRAM_MAX_CBIND_DATA */
} scram_server_params;

typedef struct scram_server scram_server;

/* NULL when out of memory or the parameters are unusable. */
scram_server *scram_server_new(const scram_server_params *p);
/*
 * Feed one client message (client-first, then client-final). 'in' is the raw
 * SASL data, not NUL-terminated. On CONTINUE and OK, *out (malloc'd, caller
 * frees) and *outlen hold the server's answer; otherwise *out is NULL.
 */
scram_result scram_server_exchange(scram_server *s, const uint8_t *in, size_t inlen, char **out, size_t *outlen);
void scram_server_free(scram_server *s);

/*
 * tls-server-end-point channel binding data (RFC 5929 §4.1) of our
 * certificate (an X509 *): its hash with the certificate's signature digest,
 * SHA-256 when that is MD5 or SHA-1. Writes up to SCRAM_MAX_CBIND_DATA bytes.
 * False when the digest is unknown (e.g. Ed25519 certificates): then do not
 * offer SCRAM-SHA-256-PLUS (PostgreSQL fails such connections instead).
 */
bool scram_cert_end_point_hash(const void *x509, uint8_t *out, size_t *outlen);

/* Test hook: use this printable server nonce instead of a random one (RFC 7677 vector). */
bool scram_server_set_nonce(scram_server *s, const char *nonce);

#endif
