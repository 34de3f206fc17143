/*
 * pool_txn.h - transaction pooling (CONTRACT §7, pool_mode = transaction):
 * when a client's transaction is over and its connection may go back to the
 * pool, and the session state that holds it on its connection instead.
 */
#ifndef PGW_POOL_TXN_H
#define PGW_POOL_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/session.h"

struct policy_facts;

/* Why a client is held on its connection between transactions (the reason label of pgwarden_pool_holds_total). */
typedef enum {
	POOL_HOLD_TEMP,     /* a temporary table, view or sequence exists */
	POOL_HOLD_LISTEN,   /* LISTEN registrations */
	POOL_HOLD_LOCK,     /* session-level advisory locks */
	POOL_HOLD_CURSOR,   /* a WITH HOLD cursor (a portal that outlives its transaction) */
	POOL_HOLD_PREPARED, /* named prepared statements (protocol Parse or SQL PREPARE) */
	POOL_HOLD_SETTINGS, /* a statement that could change any setting or the role ran (ordinary SETs follow the client) */
	POOL_HOLD_FUNCTION, /* a function or SQL pgwarden cannot see into ran: it may have left any of these */
	POOL_HOLD_N,        /* number of reasons */
} pool_hold_reason;

/* Metric label of each reason ("temp_table", "listen", ...). */
extern const char *const pool_hold_names[POOL_HOLD_N];

/* The session's target pools by transaction. */
bool pool_txn_mode(const session *s);

/*
 * gate.c: a statement of this client is sent upstream. Its facts add hold
 * reasons (kept even if it fails: default safe) and note what it ends (a
 * release that takes effect only when its transaction ends without error or
 * rollback).
 */
void pool_txn_note_statement(session *s, const struct policy_facts *f);

/* backend.c: the server answered an error: the current transaction's releases do not count. */
void pool_txn_note_error(session *s);

/*
 * relay.c, after each batch of server input: if the client's transaction is
 * over and nothing holds it, its connection is parked: still attached (so
 * the client's next transaction costs nothing when nobody else needed it),
 * but free for the pool to take back for a waiting client (pool.c).
 */
void pool_txn_after_input(session *s);

/* pool.c: the parked client may lose its connection now (between transactions, nothing holds it, no input). */
bool pool_txn_can_go(const session *s);

/* Whether the session is held between transactions now (pgwarden_pool_connections{state="held"}). */
bool pool_txn_held_now(const session *s);

#endif
