/*
 * auth.h - authenticating an actor at connect time (CONTRACT §3).
 *
 * The proxy's client state machine owns the socket; this module owns the
 * exchange. auth_begin() writes the first AuthenticationXXX request; each
 * PasswordMessage/SASLInitialResponse/SASLResponse ('p') body the client
 * sends goes to auth_on_message(), which writes the next request (or
 * AuthenticationSASLFinal) into 'out' and says whether to go on.
 * AuthenticationOk itself is sent by the caller on AUTH_OK.
 *
 * Every failure cause (unknown actor, wrong secret, expired record, target
 * not allowed, cleartext refused) ends in AUTH_FAIL after the same work;
 * the caller answers FATAL 28P01 "authentication failed" and nothing else.
 *
 * Which request auth_begin() sends (nothing in it depends on whether the
 * actor exists beyond what an actor of the same kind shows):
 *  - actor with a SCRAM record: AuthenticationSASL (SCRAM-SHA-256-PLUS
 *    first when tls and a cert hash are given, then SCRAM-SHA-256). An
 *    expired / not-for-this-target record runs the whole exchange with its
 *    real salt and fails at the end.
 *  - actor with sha256 records only: AuthenticationCleartextPassword when
 *    tls or plaintext_auth; otherwise a doomed SCRAM exchange (mock salt),
 *    so the token is never asked for in clear and the answer is the same
 *    28P01 a wrong token gets.
 *  - unknown actor: treated as an actor of the kind most actors in the
 *    token file have (ties go to SCRAM): a doomed SCRAM exchange with a mock
 *    salt, stable per actor name (HMAC of the name under a key derived from
 *    the token file's secrets, like PostgreSQL's mock salt), or a cleartext
 *    request whose answer is hashed and compared like a real one.
 * Cost: auth_begin() reads the whole token table once (O(records)) for every
 * actor, known or not, so the work does not tell them apart.
 */
#ifndef PGW_AUTH_H
#define PGW_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf/tokens.h"
#include "protocol/pktbuf.h"

typedef enum {
	AUTH_CONTINUE,  /* 'out' holds the next request; wait for the client's answer */
	AUTH_OK,        /* authenticated: *who is the matching token record; 'out' may hold SASLFinal */
	AUTH_FAIL,      /* answer 28P01 authentication failed */
	AUTH_MALFORMED, /* the client's message breaks the protocol: 08P01 */
} auth_status;

typedef struct auth_params {
	const pgw_token_table *tokens;
	const char *actor;            /* startup parameter "user" */
	const char *target;           /* startup parameter "database" (an existing target) */
	bool tls;                     /* client connection is TLS */
	bool plaintext_auth;          /* config: cleartext token allowed without TLS */
	const uint8_t *tls_cert_hash; /* tls-server-end-point hash of our cert, when tls */
	size_t tls_cert_hash_len;
	time_t now;
} auth_params;

typedef struct pgw_auth pgw_auth;

/* Start an exchange; writes the first 'R' request into out. Never NULL unless out of memory. */
pgw_auth *auth_begin(const auth_params *p, pktbuf *out);

/* Feed the body (after type and length) of one 'p' message. */
auth_status auth_on_message(pgw_auth *a, const uint8_t *body, size_t len, pktbuf *out, const pgw_token **who);

void auth_free(pgw_auth *a);

/*
 * For the server log and the audit log's auth_fail only (never sent to the
 * client): why the exchange failed, e.g. "unknown actor", "wrong token",
 * "token expired", "target not allowed for this token", "cleartext token
 * refused without TLS". Static string;
 * "none" while nothing has failed.
 */
const char *auth_fail_reason(const pgw_auth *a);

/* Constant-time comparison of two equal-length secrets. */
bool secret_equal(const void *a, const void *b, size_t n);

#endif
