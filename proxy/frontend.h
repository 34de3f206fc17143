/*
 * frontend.h - what each client message means once the session is ready:
 * bookkeeping of prepared statements and portals, the statement gate
 * (policy and audit), the timeline, and forwarding.
 */
#ifndef PGW_FRONTEND_H
#define PGW_FRONTEND_H

#include <stdint.h>

#include "proxy/relay.h"
#include "proxy/session.h"

/*
 * One whole client message (msg points at its type byte, body_len bytes of
 * body follow the 5-byte header) at the front of the client input. It is
 * consumed: forwarded, denied or dropped.
 */
relay_status frontend_message(session *s, char type, const uint8_t *msg, uint32_t body_len);

/* The upstream sent ReadyForQuery: a transaction boundary may allow pending switches. */
void frontend_ready_for_query(session *s);

#endif
