/*
 * relay.h - the message relay between a ready client and its upstream.
 *
 * Framing is kept apart from meaning (PgBouncer's sbuf): the loops here know
 * lengths only. At each client message boundary the whole message goes to
 * frontend.c, which forwards, rewrites or denies it; at each server message
 * boundary backend.c updates the timeline (pipeline.h). DataRow and CopyData
 * bodies are streamed through without being buffered whole.
 */
#ifndef PGW_RELAY_H
#define PGW_RELAY_H

#include <stdbool.h>
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

/* What a handler tells its caller: go on, or stop (the session is ending). */
typedef enum {
	RELAY_GO,   /* carry on with the next message */
	RELAY_WAIT, /* the message stays at the front of the input until the session is woken */
	RELAY_STOP, /* the session is closing: touch nothing more */
} relay_status;

/*
 * The one answer to "should the client be read now": the session is
 * relaying, the client has not sent Terminate, no catalog reload and no
 * off-loop parse is awaited, and the upstream backlog is not too large. (One more condition would go
 * here, e.g. an operator's PAUSE of the target.)
 */
bool relay_client_readable(const session *s);

/* Apply relay_client_readable() to the client's socket; when readable, relay what is buffered. */
void relay_client_wake(session *s);

/*
 * The one consumer of the re-pin flag (s->tl.repin): re-apply the pinned
 * identity now, if the server will run it (predicted mode normal), as a
 * simple Query between batches or as one swallowed Parse/Bind/Execute/Close
 * inside an extended batch (so it runs in the batch's transaction, before
 * the batch's next message). Otherwise the flag waits for the next call.
 */
relay_status relay_repin(session *s);

/*
 * Send one message of pgwarden's own upstream (msg: type byte, length,
 * body), owing the swallowed answer of one 'kind' entry: e.g. the Parse that
 * prepares a client's statement again on another pooled connection.
 */
relay_status relay_send_own_message(session *s, const uint8_t *msg, size_t len, tl_kind kind);

/*
 * Refuse the client message at the front of the client input (type and
 * total length given) with a prepared ErrorResponse ('err', taken over):
 * a poison that fails harmlessly upstream takes its place ('query' when
 * given: a Query to send instead, e.g. the statements before a denied one
 * followed by a poison), so the server's transaction and extended-protocol
 * state match what the client sees.
 */
relay_status relay_refuse(session *s, char type, size_t total_len, uint8_t *err, size_t err_len, const uint8_t *query,
			  size_t query_len, tl_entry **entry);

/* After Terminate: close the session once nothing is owed or held and the client has its bytes. */
void relay_close_if_terminated(session *s);

#endif
