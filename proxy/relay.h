/*
 * relay.h - the message relay between a ready client and its upstream.
 *
 * Framing is kept apart from meaning (PgBouncer's sbuf): the loops here know
 * lengths only. At each client message boundary the whole message goes to
 * frontend.c, which forwards, rewrites or denies it; at each server message
 * boundary backend.c updates the owed-response FIFO. DataRow and CopyData
 * bodies are streamed through without being buffered whole.
 */
#ifndef PGW_RELAY_H
#define PGW_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "proxy/session.h"

/* Bytes queued towards one side before we stop reading from the other. */
#define RELAY_HIGH_WATER (1024 * 1024)
#define RELAY_LOW_WATER (256 * 1024)

/* Client bytes are buffered: relay whole messages to the upstream. */
void relay_client_input(session *s);
/* Upstream bytes are buffered: relay them to the client. */
void relay_upstream_input(session *s);
/* The client's output drained: resume reading from the upstream. */
void relay_client_drained(session *s);
/* The upstream's output drained: resume reading from the client. */
void relay_upstream_drained(session *s);

/*
 * Where upstream-bound bytes go now: straight to the upstream, or into the
 * session's hold buffer while its audit records wait to be written.
 */
struct evbuffer *relay_upstream_out(session *s);

/* The audit batch holding this session's records was written (ok) or lost. */
void relay_release_held(session *s, bool audit_ok);

/*
 * Send pgwarden's own simple Query upstream (re-pin, read-only switch); its
 * responses are swallowed. Only call when the client is between requests
 * (after a Query or Sync has been forwarded).
 */
void relay_inject_internal(session *s, const char *sql);

/* The same inside an extended-protocol batch (one statement, swallowed answers). */
void relay_inject_internal_ext(session *s, const char *sql);

/*
 * Deny the client message at the front of the client input (type and total
 * length given) with a prepared ErrorResponse: the message is dropped and a
 * poison that fails harmlessly upstream takes its place, so the server's
 * transaction and extended-protocol state match what the client sees.
 */
void relay_deny(session *s, char type, size_t total_len, const char *message, const char *detail,
		const char *hint);

/* After Terminate: close the session once nothing is owed or held and the client has its bytes. */
void relay_close_if_terminated(session *s);

#endif
