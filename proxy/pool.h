/*
 * pool.h - one pool of upstream connections per target, lent to sessions
 * (CONTRACT §7, session mode): login answered without a backend, a
 * connection borrowed at the client's first message and reset and returned
 * (or closed) at disconnect; FIFO waiting, timeouts, drain on reload.
 */
#ifndef PGW_POOL_H
#define PGW_POOL_H

#include <stdbool.h>

#include "proxy/session.h"

struct pgw_server;
struct evbuffer;
typedef struct pgw_pool pgw_pool;

/* The settings PostgreSQL reports at startup (GUC_REPORT), learnt once per pool for every login. */
#define POOL_N_REPORTED 13
extern const char *const pool_reported[POOL_N_REPORTED];

/*
 * After authentication: answer the login from the target server's known
 * parameters (client_login_complete), or, on a cold pool, first open one
 * connection to learn them (it goes to the pool idle, unborrowed).
 */
void pool_login(session *s);

/*
 * The client sent its first message and holds no connection: lend an idle
 * one, open a new one, or queue the session (first come, first served).
 * The client stays paused until relay_client_wake() follows the lending.
 */
void pool_borrow(session *s);

/* upstream.c: the session's new connection is up (libpq still there, for the parameters). */
void pool_learn(session *s);
/* upstream.c: the session's new connection is ready for the relay. */
void pool_connected(session *s);

/*
 * The session ends: a clean connection (idle, nothing owed or queued, no
 * cancel in flight, current conninfo, not past server_lifetime) is reset
 * and returned; anything else is closed. Leaves s->up empty. Also leaves the
 * wait queue.
 */
void pool_release(session *s);

/*
 * Transaction mode (pool_txn.c): the client's transaction is over and
 * nothing holds it: its connection goes back to the pool (or is closed when
 * unfit). Leaves s->up empty; the client's next message borrows again.
 */
void pool_give_back(session *s);

/*
 * Transaction mode (pool_txn.c): the client is between transactions and
 * nothing holds it: its connection stays attached but the pool may take it
 * back (pool_give_back) for a waiter. pool_unpark: the client goes on.
 */
void pool_park(session *s);
void pool_unpark(session *s);

/* pool_txn.c: a client became held for this reason (a pool_hold_reason): pgwarden_pool_holds_total. */
void pool_count_hold(pgw_pool *p, int reason);

/* A client message stream that waits after a wait timeout: drop up to Sync. True when the client may be relayed again. */
bool pool_skip_input(session *s);

/* Reload: a target whose conninfo changed drains (idle connections close, lent ones close when returned). */
void pool_config_changed(struct pgw_server *srv);

/* Start the sweep timer (server_idle_timeout, server_lifetime). 0, or -1 on no memory. */
int pool_init(struct pgw_server *srv);
/* Close every pooled connection (process exit). */
void pool_free_all(struct pgw_server *srv);

/* The conninfo new connections of this pool are opened with (its current generation's). */
const char *pool_conninfo(const pgw_pool *p);

/* The value of a reported setting learnt from the target's server, or NULL. */
const char *pool_param(const pgw_pool *p, const char *name);

/* Prometheus text of the pgwarden_pool_* metrics. */
void pool_metrics_render(struct pgw_server *srv, struct evbuffer *out);
/* /pools: a JSON list of the pools. */
void pool_render_json(struct pgw_server *srv, struct evbuffer *out);

#endif
