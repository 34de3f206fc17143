/*
 * client.h - the client side of a session: accept, TLS negotiation,
 * StartupMessage, authentication, and the messages pgwarden itself sends.
 */
#ifndef PGW_CLIENT_H
#define PGW_CLIENT_H

#include <sys/socket.h>

#include "proxy/server.h"
#include "proxy/session.h"

/* A new connection was accepted on a listener. */
void client_accept(pgw_server *srv, int fd, const struct sockaddr *sa, int socklen);

/* The single writer of client.phase. */
void client_set_phase(session *s, client_phase phase);

/*
 * Queue a FATAL (or ERROR) for the client and close the session once it is
 * written (or after a short grace period if the client does not read).
 */
void client_fail(session *s, const char *sqlstate, const char *message, const char *detail);

/* Close the session in a few seconds whatever happens (final error unread, Terminate unanswered). */
void client_close_after_grace(session *s);

/* Upstream is pinned: finish the login (AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery). */
void client_login_complete(session *s);

/* Queue raw bytes to the client. */
void client_send(session *s, const void *data, size_t len);

/* Write what is queued for the client now (closes the session on error). */
void client_flush(session *s);

/* Pause / resume reading from the client (backpressure, waiting for upstream). */
void client_pause(session *s);
void client_resume(session *s);

#endif
