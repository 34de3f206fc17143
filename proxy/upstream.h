/*
 * upstream.h - one upstream connection: a libpq connection driven without
 * blocking by the event loop (PQconnectStartParams/PQconnectPoll), then raw
 * protocol relay on its socket; lent by the pool (pool.h), which pins the
 * borrowing client's identity through the relay (relay_repin).
 *
 * Phases: NONE -> CONNECTING -> READY -> CLOSED (or back to NONE when returned to the pool).
 */
#ifndef PGW_UPSTREAM_H
#define PGW_UPSTREAM_H

#include "proxy/pin.h"
#include "proxy/session.h"

/* The single writer of up.phase. */
void upstream_set_phase(session *s, upstream_phase phase);

/* Open a new pool connection for the session (target conninfo only); pool_connected() follows. */
void upstream_start(session *s);

/* Bind the session's (borrowed) connection to the relay: io with the session's handlers, phase READY. 0 or -1. */
int upstream_attach(session *s);

/* Production outside an open window for this actor: the pin sets default_transaction_read_only. */
bool upstream_wants_read_only(session *s);

/* The socket and TLS object of a connection (libpq's, or our own plain duplicate). */
int upstream_conn_fd(const upstream_conn *up);
SSL *upstream_conn_ssl(const upstream_conn *up);

/*
 * libpq has just finished connecting 'up' (PQconnectPoll said OK, idle):
 * note its backend pid, cancel key and standard_conforming_strings, and
 * take a plain socket from libpq (its buffers were most of an idle
 * connection's memory). up->pg is NULL afterwards unless TLS keeps it.
 */
void upstream_conn_connected(upstream_conn *up);

/* Forget a connection handed elsewhere: nothing owned, phase NONE. */
void upstream_conn_clear(upstream_conn *up);

/* Close a connection wherever it lives; goodbye: send Terminate when nothing is half sent. */
void upstream_conn_close(upstream_conn *up, bool goodbye);

/* Stop all upstream callbacks (session failing); the connection is freed with the session. */
void upstream_stop(session *s);

/* Drop the upstream connection now (session ending); safe to call in any phase, twice. */
void upstream_close(session *s);

/*
 * What a re-pin of this session must sign for the database walls (walls =
 * required): its target, its backend, and a write grant for the window open
 * now or opening next (wall_write_window). Every re-pin
 * (after RESET ALL / DISCARD ALL, a splice, a pool borrow, a window opening)
 * should build its SQL with pin_sql_build_walled(cfg, who, read_only, &w):
 * RESET ALL clears pgwarden.pin, and an unsigned pin leaves the session with
 * no verified tenant (it sees no tenant rows) until the next signed one.
 */
pin_wall upstream_pin_wall(const session *s);

#endif
