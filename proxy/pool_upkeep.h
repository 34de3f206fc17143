/*
 * pool_upkeep.h - keeping a pool ready (CONTRACT §7): pool_min_idle
 * connections opened in the background and spared by the idle sweep, and
 * the health check of a connection idle longer than server_check_delay
 * before it is lent. pool.c owns the lists; this owns the decisions and the
 * background connects.
 */
#ifndef PGW_POOL_UPKEEP_H
#define PGW_POOL_UPKEEP_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conf/config.h"
#include "proxy/session.h"

struct pgw_server;
struct evbuffer;
typedef struct upkeep_opener upkeep_opener;

/* Seconds a health check or a reset may take before the connection is given up as hung. */
#define UPKEEP_ANSWER_TIMEOUT 5
/* Seconds between attempts after a background connect failed (the target may be down). */
#define UPKEEP_RETRY_DELAY 5

/* A pool's upkeep state (a field of pgw_pool). */
typedef struct upkeep_state {
	upkeep_opener *openers; /* background connects in flight, a list */
	int n_opening;          /* their count (each also counted in the pool's n_open) */
	int n_checking;         /* idle connections whose health check is in flight */
	time_t retry_at;        /* after a failed background connect: no new one before this (monotonic s) */
	uint64_t opened;        /* background connects that joined the pool */
	uint64_t checks_failed; /* connections closed because their check failed or hung */
} upkeep_state;

/*
 * A background connect finished: 'up' is connected and idle with libpq
 * still attached (the pool learns the server's parameters from it, then
 * calls upstream_conn_connected), its generation and born set; or 'up' is
 * NULL when the connect failed. The opener is gone either way.
 */
typedef void (*upkeep_opened_fn)(void *arg, upstream_conn *up);

/* How many connections to open now: pool_min_idle minus what is idle or on its way, within pool_size. */
int upkeep_deficit(const upkeep_state *u, const pgw_target *t, int n_open, int n_idle_or_resetting, time_t now);

/*
 * The idle sweep, walked from the most recently idle connection back: true
 * when this one is to be closed (past server_lifetime, or past
 * server_idle_timeout once *keep, the pool_min_idle still to spare, is 0).
 */
bool upkeep_idle_expired(const pgw_target *t, time_t idle_since, time_t born, time_t now, int *keep);

/* True when a connection idle since 'idle_since' (last checked at 'checked_at', 0: never) must pass a health check before it is lent. */
bool upkeep_check_due(const pgw_target *t, time_t idle_since, time_t checked_at, time_t now);

/* True when an idle connection's socket has bytes or end of file waiting (it must be checked, not lent blind). */
bool upkeep_idle_spoke(int fd);

/* Queue the health check on an idle connection: an empty Query (EmptyQueryResponse, then ReadyForQuery). 0 or -1. */
int upkeep_queue_check(struct evbuffer *out);

/*
 * Open one connection with 'conninfo' in the background for target
 * 'target' (metrics and health are noted under its name). 0, or -1 (no
 * memory, or libpq refused to start: counted as a failure, retry later).
 */
int upkeep_open(upkeep_state *u, struct pgw_server *srv, const char *target, const char *conninfo, unsigned generation,
		upkeep_opened_fn done, void *arg);

/* Abandon every background connect in flight (reload changed the conninfo, or exit); returns how many. */
int upkeep_cancel_all(upkeep_state *u);

#endif
