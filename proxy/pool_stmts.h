/*
 * pool_stmts.h - transaction pooling: a client's protocol-level named
 * prepared statements follow it to whichever connection it borrows.
 */
#ifndef PGW_POOL_STMTS_H
#define PGW_POOL_STMTS_H

#include <stdint.h>

#include "proxy/relay.h"
#include "proxy/session.h"

/*
 * frontend.c, before a client message is judged and forwarded (transaction
 * mode only; msg is the whole message): a Parse of a named statement is
 * remembered; a Bind or Describe naming one that the connection held now
 * does not have is preceded by that Parse, sent again as pgwarden's own
 * (its answer swallowed); a Close forgets it.
 */
relay_status pool_stmts_before(session *s, char type, const uint8_t *msg, uint32_t len);

/*
 * pool_txn.c, an allowed SQL statement about to be sent: EXECUTE or
 * DEALLOCATE naming a protocol-level statement that this connection lacks
 * gets its Parse in front too (on a connection of its own it would exist).
 */
void pool_stmts_sql(session *s, const char *name);

/* The client borrowed a connection it did not leave itself: none of its statements is prepared there. */
void pool_stmts_moved(session *s);

/* How many of the client's confirmed named statements can follow it (the rest are SQL PREPAREs: they hold). */
unsigned pool_stmts_movable(session *s);

/* session_free. */
void pool_stmts_free(session *s);

#endif
