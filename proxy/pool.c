/* pool.c - per-target pools of upstream connections: lending, waiting, reset and return, sweep, metrics. */
#include "proxy/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conf/core/json_writer.h"
#include "conf/core/random.h"
#include "protocol/pktbuf.h"
#include "proxy/cancel.h"
#include "proxy/client.h"
#include "proxy/pool_upkeep.h"
#include "proxy/pool_settings.h"
#include "proxy/pool_stmts.h"
#include "proxy/pool_txn.h"
#include "proxy/relay.h"
#include "proxy/server.h"
#include "proxy/upstream.h"
#include "proxy/wall.h"

/* The settings PostgreSQL reports at startup (GUC_REPORT): learnt once per pool, told to every login. */
const char *const pool_reported[POOL_N_REPORTED] = {
	"server_version",
	"server_encoding",
	"client_encoding",
	"application_name",
	"default_transaction_read_only",
	"in_hot_standby",
	"is_superuser",
	"session_authorization",
	"DateStyle",
	"IntervalStyle",
	"TimeZone",
	"integer_datetimes",
	"standard_conforming_strings",
};

/* Upper bounds (seconds) of pgwarden_pool_wait_seconds. */
static const double wait_bounds[] = { 0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60 };
#define WAIT_BUCKETS (sizeof(wait_bounds) / sizeof(wait_bounds[0]))

/* A connection the pool owns: being reset, or idle and ready to lend. */
typedef struct pool_conn {
	upstream_conn up;            /* the connection; its io is bound to this pool_conn while owned */
	pgw_pool *pool;              /* owner */
	int resets_owed;             /* ReadyForQuery the reset still owes; 0 once idle */
	bool reset_failed;           /* the reset answered an error or did not end idle */
	bool checking;               /* the health check before lending is in flight, not a reset (pool_upkeep.h) */
	time_t asked_at;             /* monotonic seconds the reset or check was sent: a hung one is given up */
	time_t checked_at;           /* monotonic seconds it last passed a check (0: never) */
	uint64_t owner;              /* idle: the session whose identity and settings it still carries (transaction
	                                mode, lent back to that session only), or 0: reset, "nobody" */
	session *snapshot_for;       /* reading back this client's settings (pool_settings_query), or NULL */
	bool snapshot;               /* its "reset" is that query: on success it goes idle still the owner's */
	pool_settings_buf snap;      /* the replay being built from its rows */
	time_t idle_since;           /* monotonic seconds it became idle */
	TAILQ_ENTRY(pool_conn) link; /* pool->idle or pool->resetting */
} pool_conn;

TAILQ_HEAD(pool_conn_list, pool_conn);

struct pgw_pool {
	struct pgw_server *srv;
	char *target;                            /* target name */
	char *conninfo;                          /* the conninfo of the current generation */
	unsigned generation;                     /* bumped when the conninfo changes (reload) */
	int n_open;                              /* connections open or opening: idle, resetting, lent */
	int n_lent;                              /* lent to sessions */
	struct pool_conn_list idle;              /* ready to lend, most recently returned last */
	struct pool_conn_list resetting;         /* returned, reset in flight */
	struct session_list waiting;             /* sessions waiting for a connection, first come first served */
	struct session_list parked;              /* transaction mode: lent, between transactions, may be taken back */
	int n_parked;                            /* their number */
	char *params[POOL_N_REPORTED];           /* pool_reported values from the target's server */
	bool params_known;                       /* params[] filled from a connection */
	struct event *dispatch_ev;               /* hands connections to waiters, after the current callback */
	uint64_t wait_buckets[WAIT_BUCKETS + 1]; /* pgwarden_pool_wait_seconds, per bucket; last = +Inf */
	uint64_t wait_count;                     /* waits observed */
	double wait_sum;                         /* their total seconds */
	uint64_t wait_timeouts;                  /* waits that ended in 53300 */
	uint64_t resets_failed;                  /* returned connections closed because the reset failed */
	upkeep_state upkeep;                     /* pool_min_idle connects, health checks (pool_upkeep.c) */
	uint64_t holds[POOL_HOLD_N];             /* pgwarden_pool_holds_total, per reason */
	struct pgw_pool *next;                   /* the server's list */
};

static time_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The pool's target in the current config, or NULL when a reload removed it. */
static const pgw_target *pool_target(const pgw_pool *p)
{
	return config_find_target(p->srv->cfg, p->target);
}

static void dispatch_cb(evutil_socket_t fd, short what, void *arg);
static int count(const struct pool_conn_list *l);

static void pool_kick(pgw_pool *p)
{
	event_active(p->dispatch_ev, EV_TIMEOUT, 0);
}

static void start_reset(pool_conn *pc);

static pgw_pool *pool_for(pgw_server *srv, const pgw_target *t)
{
	pgw_pool *p;

	for (p = srv->pools; p; p = p->next)
		if (strcmp(p->target, t->name) == 0)
			return p;
	if (!(p = calloc(1, sizeof(*p))))
		return NULL;
	p->srv = srv;
	p->target = strdup(t->name);
	p->conninfo = strdup(t->conninfo);
	p->dispatch_ev = event_new(srv->base, -1, 0, dispatch_cb, p);
	if (!p->target || !p->conninfo || !p->dispatch_ev) {
		free(p->target), free(p->conninfo);
		if (p->dispatch_ev)
			event_free(p->dispatch_ev);
		free(p);
		return NULL;
	}
	TAILQ_INIT(&p->idle);
	TAILQ_INIT(&p->resetting);
	TAILQ_INIT(&p->waiting);
	TAILQ_INIT(&p->parked);
	p->next = srv->pools;
	srv->pools = p;
	return p;
}

const char *pool_param(const pgw_pool *p, const char *name)
{
	for (size_t i = 0; i < POOL_N_REPORTED; i++)
		if (strcmp(pool_reported[i], name) == 0)
			return p->params[i];
	return NULL;
}

/* ---- connections the pool owns --------------------------------------------------------------- */

/*
 * The settings read-back ended (ok: the connection answered it fully): the
 * client gets its replay, or, when it failed, cannot go on as if its
 * settings were still there. Whatever happens, the session stops waiting.
 */
static void snapshot_done(pool_conn *pc, bool ok)
{
	session *s = pc->snapshot_for;
	char *sql;

	if (!pc->snapshot)
		return;
	pc->snapshot = false;
	pc->snapshot_for = NULL;
	sql = pool_settings_finish(&pc->snap);
	if (!s) {
		free(sql);
		return;
	}
	s->pool_snapshot = NULL;
	if (!ok || !sql) {
		free(sql);
		client_fail(s, "08006", "pgwarden: could not save the session's settings", NULL);
		return;
	}
	free(s->pool_settings_sql);
	s->pool_settings_sql = sql;
	pool_kick(pc->pool);
}

static void pool_conn_free(pool_conn *pc, bool listed)
{
	pgw_pool *p = pc->pool;

	if (listed)
		TAILQ_REMOVE(pc->resets_owed ? &p->resetting : &p->idle, pc, link);
	if (pc->checking) { /* closed before its check passed: the check failed */
		p->upkeep.n_checking--;
		p->upkeep.checks_failed++;
		log_warn("pool %s: backend %u failed its health check: closed, the borrower gets another", p->target,
			 pc->up.backend_pid);
	}
	upstream_conn_close(&pc->up, true);
	p->n_open--;
	snapshot_done(pc, false);
	free(pc);
	pool_kick(p);
}

/* A whole server message at the front of 'in': its type and total length, or false. */
static bool next_message(struct evbuffer *in, char *type, size_t *total, bool *bad)
{
	uint8_t hdr[5];
	uint32_t len;

	*bad = false;
	if (evbuffer_copyout(in, hdr, 5) < 5)
		return false;
	len = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4];
	if (len < 4 || len > 1u << 20) {
		*bad = true; /* a reset's replies are tiny; anything else is not trusted */
		return false;
	}
	*type = (char)hdr[0];
	*total = 1 + (size_t)len;
	return evbuffer_get_length(in) >= *total;
}

/* A ReadyForQuery of the reset: the last one makes the connection idle, or closes it. */
static bool on_reset_ready(pool_conn *pc, char status)
{
	pgw_pool *p = pc->pool;
	bool checked = pc->checking;

	if (status != 'I')
		pc->reset_failed = true;
	if (--pc->resets_owed > 0)
		return true;
	TAILQ_REMOVE(&p->resetting, pc, link);
	if (checked && !pc->reset_failed) { /* passed: from here on it is an idle connection like any */
		pc->checking = false;
		pc->checked_at = mono_now();
		p->upkeep.n_checking--;
	} else if (pc->snapshot && !pc->reset_failed) {
		bool gone = pc->snapshot_for == NULL;
		snapshot_done(pc, true);
		if (gone) { /* the client left meanwhile: what it left behind is reset away */
			pc->owner = 0;
			start_reset(pc);
			return false;
		}
	}
	if (pc->reset_failed) {
		if (!checked) {
			p->resets_failed++;
			log_warn("pool %s: reset of backend %u failed: connection closed", p->target,
				 pc->up.backend_pid);
		}
		pool_conn_free(pc, false); /* a failed check is counted and logged there */
		return false;
	}
	if (pc->up.generation != p->generation) { /* the conninfo changed while it was being reset or checked */
		pool_conn_free(pc, false);
		return false;
	}
	pc->idle_since = mono_now();
	if (checked) /* checked for a waiter: lent next */
		TAILQ_INSERT_HEAD(&p->idle, pc, link);
	else
		TAILQ_INSERT_TAIL(&p->idle, pc, link);
	pool_kick(p);
	return true;
}

static void add_snapshot_row(pool_conn *pc, struct evbuffer *in, size_t total)
{
	const uint8_t *m = evbuffer_pullup(in, (ssize_t)total);

	if (!m)
		pc->snap.failed = true;
	else
		pool_settings_add_row(&pc->snap, m + 5, (uint32_t)(total - 5));
}

/* Replies to the reset; an idle connection should say nothing, and an error there (FATAL) closes it. */
static void pool_conn_read(void *arg)
{
	pool_conn *pc = arg;
	struct evbuffer *in = pc->up.io.in;
	char type, status = 0;
	size_t total;
	bool bad;

	while (next_message(in, &type, &total, &bad)) {
		uint8_t z[6] = { 0 };
		if (type == 'Z' && total == 6 && evbuffer_copyout(in, z, 6) == 6)
			status = (char)z[5];
		else
			status = 0;
		if (type == 'D' && pc->snapshot)
			add_snapshot_row(pc, in, total);
		evbuffer_drain(in, total);
		if (type == 'E' && pc->resets_owed == 0) {
			pool_conn_free(pc, true);
			return;
		}
		if (type == 'E')
			pc->reset_failed = true;
		if (type == 'Z' && pc->resets_owed > 0 && !on_reset_ready(pc, status))
			return;
	}
	if (bad)
		pool_conn_free(pc, true);
}

static void pool_conn_drained(void *arg)
{
	(void)arg;
}

static void pool_conn_closed(void *arg, const char *why)
{
	pool_conn *pc = arg;

	log_info("pool %s: backend %u closed while pooled (%s)", pc->pool->target, pc->up.backend_pid, why);
	pool_conn_free(pc, true);
}

static const io_handlers pool_conn_handlers = { pool_conn_read, pool_conn_drained, pool_conn_closed };

/* Take a connection (no io bound) into a new pool_conn watched by the pool; NULL on failure (closed, uncounted). */
static pool_conn *wrap(pgw_pool *p, upstream_conn *up)
{
	pool_conn *pc = calloc(1, sizeof(*pc));

	if (!pc) {
		upstream_conn_close(up, true);
		p->n_open--;
		return NULL;
	}
	pc->up = *up;
	pc->pool = p;
	if (io_init(&pc->up.io, p->srv->base, upstream_conn_fd(&pc->up), upstream_conn_ssl(&pc->up),
		    &pool_conn_handlers, pc) != 0) {
		upstream_conn_close(&pc->up, false);
		p->n_open--;
		free(pc);
		return NULL;
	}
	io_set_reading(&pc->up.io, true);
	return pc;
}

/* Take the session's connection into a new pool_conn (watched by the pool); NULL on failure (closed). */
static pool_conn *take_from(session *s)
{
	upstream_conn up;

	io_free(&s->up.io);
	up = s->up;
	upstream_conn_clear(&s->up);
	return wrap(s->pool, &up);
}

/*
 * What a client leaves behind is removed by DISCARD ALL (portals and
 * cursors, session authorization and with it the role, every setting,
 * prepared statements, LISTEN, session advisory locks, plans, temp tables
 * and pg_temp functions, sequence caches). It must run alone: it refuses a
 * transaction block, and a Query of several statements is one. What it
 * misses, the second Query covers: RESET ROLE explicitly (the role setting
 * is GUC_NO_RESET_ALL; DISCARD ALL only makes it read "none"), and a fresh
 * random seed so setseed() state cannot let the next client predict
 * random(). Prepared two-phase transactions belong to the server, not the
 * connection; dblink and LOAD are refused by policy (opaque-sql).
 */
static void start_reset(pool_conn *pc)
{
	pgw_pool *p = pc->pool;
	uint8_t r[4];
	char sql[128];
	pktbuf b;

	if (!pgw_random_bytes(r, sizeof(r))) {
		pool_conn_free(pc, false);
		return;
	}
	snprintf(sql, sizeof(sql), "RESET ROLE; SELECT pg_catalog.setseed(%.6f)",
		 ((double)((uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3]) / 4294967295.0) *
				 2 -
			 1);
	pktbuf_init(&b);
	pkt_begin(&b, 'Q');
	pkt_put_cstr(&b, "DISCARD ALL");
	pkt_end(&b);
	pkt_begin(&b, 'Q');
	pkt_put_cstr(&b, sql);
	pkt_end(&b);
	if (b.failed || evbuffer_add(pc->up.io.out, b.data, b.len) != 0 || io_flush(&pc->up.io) != 0) {
		pktbuf_free(&b);
		pool_conn_free(pc, false);
		return;
	}
	pktbuf_free(&b);
	pc->resets_owed = 2;
	pc->asked_at = mono_now();
	TAILQ_INSERT_TAIL(&p->resetting, pc, link);
}

/* Health check (server_check_delay): the idle connection answers an empty Query before it is lent. */
static void start_check(pool_conn *pc)
{
	pgw_pool *p = pc->pool;

	TAILQ_REMOVE(&p->idle, pc, link);
	pc->checking = true;
	p->upkeep.n_checking++;
	if (upkeep_queue_check(pc->up.io.out) != 0 || io_flush(&pc->up.io) != 0) {
		pool_conn_free(pc, false); /* counted as a failed check */
		return;
	}
	pc->resets_owed = 1; /* its ReadyForQuery goes through on_reset_ready, like a reset's */
	pc->asked_at = mono_now();
	TAILQ_INSERT_TAIL(&p->resetting, pc, link);
}

/* ---- lending ----------------------------------------------------------------------------------- */

static void leave_queue(session *s)
{
	if (!s->pool_waiting)
		return;
	TAILQ_REMOVE(&s->pool->waiting, s, wait_link);
	s->pool_waiting = false;
	if (s->wait_timer)
		event_del(s->wait_timer);
}

static void observe_wait(pgw_pool *p, const struct timespec *since)
{
	struct timespec now;
	double secs;
	size_t i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
	for (i = 0; i < WAIT_BUCKETS && secs > wait_bounds[i]; i++)
		;
	p->wait_buckets[i]++;
	p->wait_count++;
	p->wait_sum += secs;
}

/*
 * The session now holds a connection. Identity on every borrow: the pin
 * (role, actor, tenant, claims, read-only default as of now) and the
 * client's own startup settings are queued in front of its first message
 * by relay_repin(), swallowed, in the same write: no extra round trip.
 */
static void borrowed(session *s, bool own)
{
	pgw_pool *p = s->pool;
	bool ro = upstream_wants_read_only(s);

	leave_queue(s);
	observe_wait(p, &s->wait_start);
	p->n_lent++;
	/*
	 * Transaction mode, the connection this client left: it carries exactly
	 * the client's identity and settings still, so only what differs now is
	 * applied. The read-only default follows the windows (as of now); a
	 * walled target's pin signs a write grant for the current window, so it
	 * is always pinned anew.
	 */
	if (!own)
		pool_stmts_moved(s); /* a reset connection, or a new one: none of its statements is there */
	if (!own || s->up.read_only != ro || wall_required(s->target)) {
		s->up.read_only = ro;
		s->tl.repin = true;
		s->wall_check_due = true;
		s->borrow_pin_due = true;
	}
	session_log(LOG_LVL_DEBUG, s, "borrowed backend %u%s", s->up.backend_pid, own ? " (its own)" : "");
	relay_client_wake(s);
}

/*
 * An idle connection this session may have: the one it left (transaction
 * mode), else a reset one, or NULL. One idle past server_check_delay (or
 * whose socket spoke while idle) is sent to its check instead, and the
 * search starts again.
 */
static pool_conn *idle_for(pgw_pool *p, const session *s)
{
	const pgw_target *t = pool_target(p);
	time_t now = mono_now();

	for (;;) {
		pool_conn *pc, *pick = NULL;

		TAILQ_FOREACH(pc, &p->idle, link)
		{
			if (pc->owner == s->id) {
				pick = pc;
				break;
			}
			if (pc->owner == 0 && !pick)
				pick = pc;
		}
		if (!pick || !t ||
		    (!upkeep_check_due(t, pick->idle_since, pick->checked_at, now) &&
		     !upkeep_idle_spoke(upstream_conn_fd(&pick->up))))
			return pick;
		start_check(pick);
	}
}

static void lend(pgw_pool *p, session *s, pool_conn *pc)
{
	bool own = pc->owner == s->id;

	TAILQ_REMOVE(&p->idle, pc, link);
	io_free(&pc->up.io);
	s->up = pc->up;
	free(pc);
	if (upstream_attach(s) != 0) {
		p->n_open--;
		upstream_conn_clear(&s->up);
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return;
	}
	borrowed(s, own);
}

/* A new connection for this session (counted now, so pool_size holds while it connects). */
static void open_for(pgw_pool *p, session *s)
{
	p->n_open++;
	s->up.counted = true;
	s->up.generation = p->generation;
	upstream_start(s);
}

static int pool_size_now(const pgw_pool *p)
{
	const pgw_target *t = pool_target(p);

	return t ? t->pool_size : 0;
}

static int count(const struct pool_conn_list *l);

/*
 * Transaction mode, full pool: an idle connection still carrying another
 * (live) client's identity is reset to "nobody" for the waiter, unless
 * enough resets are already on their way. Oldest first.
 */
static bool reset_one_for_waiters(pgw_pool *p, int unserved)
{
	pool_conn *pc;

	if (count(&p->resetting) >= unserved || !(pc = TAILQ_FIRST(&p->idle)))
		return false;
	TAILQ_REMOVE(&p->idle, pc, link);
	pc->owner = 0;
	start_reset(pc);
	return true;
}

void pool_park(session *s)
{
	if (s->pool_parked)
		return;
	s->pool_parked = true;
	TAILQ_INSERT_TAIL(&s->pool->parked, s, park_link);
	s->pool->n_parked++;
	if (!TAILQ_EMPTY(&s->pool->waiting))
		pool_kick(s->pool); /* someone may need it */
}

void pool_unpark(session *s)
{
	if (!s->pool_parked)
		return;
	TAILQ_REMOVE(&s->pool->parked, s, park_link);
	s->pool->n_parked--;
	s->pool_parked = false;
}

/*
 * A full pool with waiters: take back the connection of the client parked
 * longest. Its next transaction borrows again like anyone's. A parked client
 * that has input or state meanwhile is not parked any more.
 */
static bool take_back_one(pgw_pool *p)
{
	session *v;

	while ((v = TAILQ_FIRST(&p->parked)) != NULL) {
		pool_unpark(v);
		if (pool_txn_can_go(v)) {
			pool_give_back(v);
			return true;
		}
	}
	return false;
}

/* Serve waiters in order while there is an idle connection for them or room for a new one. */
static void dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
	pgw_pool *p = arg;
	pool_conn *pc;
	session *s;
	int unserved = 0;

	(void)fd, (void)what;
	while ((s = TAILQ_FIRST(&p->waiting)) != NULL) {
		if (s->client.phase == CLIENT_WAIT_UPSTREAM && p->params_known) {
			leave_queue(s); /* a login that waited for the parameters */
			client_login_complete(s);
		} else if (s->pool_snapshot) {
			break; /* its settings are being read back on its own connection: that one comes next */
		} else if (s->client.phase == CLIENT_READY && (pc = idle_for(p, s)) != NULL) {
			lend(p, s, pc);
		} else if (s->client.phase == CLIENT_READY && p->upkeep.n_checking > 0) {
			break; /* a checked connection is lent in a moment, or its failure kicks again */
		} else if (p->n_open < pool_size_now(p)) {
			leave_queue(s);
			open_for(p, s);
		} else
			break;
	}
	/* First come, first served: the rest wait for the first; dirty idle ones are reset for them. */
	TAILQ_FOREACH(s, &p->waiting, wait_link)
	unserved += s->client.phase == CLIENT_READY;
	while (unserved > 0 &&
	       (reset_one_for_waiters(p, unserved) || (count(&p->resetting) < unserved && take_back_one(p))))
		;
}

static void wait_timeout_cb(evutil_socket_t fd, short what, void *arg);

static void enqueue(session *s)
{
	const pgw_target *t = pool_target(s->pool);
	struct timeval tv = { t ? t->pool_wait_timeout : 1, 0 };

	if (!s->wait_timer && !(s->wait_timer = evtimer_new(s->srv->base, wait_timeout_cb, s))) {
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return;
	}
	TAILQ_INSERT_TAIL(&s->pool->waiting, s, wait_link);
	s->pool_waiting = true;
	evtimer_add(s->wait_timer, &tv);
	pool_kick(s->pool);
}

void pool_login(session *s)
{
	s->pool = pool_for(s->srv, s->target);
	if (!s->pool) {
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &s->wait_start);
	if (s->pool->params_known)
		client_login_complete(s);
	else if (s->pool->n_open < pool_size_now(s->pool))
		open_for(s->pool, s); /* pool_learn / pool_connected follow */
	else
		enqueue(s);
}

void pool_borrow(session *s)
{
	uint8_t first;

	if (s->pool_waiting || s->up.phase != UPSTREAM_NONE)
		return;
	/* A client that only says goodbye costs no connection. */
	if (evbuffer_copyout(s->client.io.in, &first, 1) == 1 && first == 'X') {
		session_close_later(s, "client terminated");
		return;
	}
	client_pause(s);
	clock_gettime(CLOCK_MONOTONIC, &s->wait_start);
	enqueue(s); /* dispatch lends in order, after this callback */
}

/* The server's reported settings from a fresh connection, for logins answered without a backend. */
static void learn_from(pgw_pool *p, PGconn *pg)
{
	if (p->params_known || !pg)
		return;
	for (size_t i = 0; i < POOL_N_REPORTED; i++) {
		const char *v = PQparameterStatus(pg, pool_reported[i]);
		free(p->params[i]);
		p->params[i] = v ? strdup(v) : NULL;
	}
	p->params_known = true;
	pool_kick(p);
}

void pool_learn(session *s)
{
	learn_from(s->pool, s->up.pg);
}

const char *pool_conninfo(const pgw_pool *p)
{
	return p->conninfo;
}

void pool_connected(session *s)
{
	pool_conn *pc;

	if (s->client.phase != CLIENT_WAIT_UPSTREAM) {
		borrowed(s, false);
		return;
	}
	/* Opened to learn the parameters: fresh and nobody's, it goes straight to the idle list. */
	if ((pc = take_from(s)) != NULL) {
		pc->idle_since = mono_now();
		TAILQ_INSERT_TAIL(&s->pool->idle, pc, link);
		pool_kick(s->pool);
	}
	client_login_complete(s);
}

/* Why the session's connection may not be reset and lent again (CONTRACT §7), or NULL when it may. */
static const char *not_returnable(const session *s)
{
	const pgw_pool *p = s->pool;
	const pgw_target *t = pool_target(p);

	/* (io.failed alone means only that session_close_later stopped its callbacks) */
	if (s->up.phase != UPSTREAM_READY || !io_active(&s->up.io) || s->up.broken)
		return "broken";
	/* an extended batch without its Sync has a transaction open upstream, whatever the last 'Z' said */
	if (s->up.txn_status != 'I' || s->tl.count != 0 || s->tl.batch_open)
		return "inside a transaction or owing replies";
	if (io_pending(&s->up.io) || evbuffer_get_length(s->hold) || s->awaiting_flush || s->client.copy_passthru ||
	    s->up.passthru || evbuffer_get_length(s->up.io.in))
		return "bytes in flight";
	/* a cancel still on its way could hit the next borrower's query (pgbouncer#245) */
	if (cancel_handle_busy(s->up.cancel))
		return "cancel in flight";
	if (!t || s->up.generation != p->generation)
		return "target changed";
	if (mono_now() - s->up.born >= t->server_lifetime)
		return "server_lifetime";
	return s->srv->shutting_down ? "shutting down" : NULL;
}

/* Transaction mode: a client is gone; the idle connection that still carries its identity is reset to "nobody". */
static void forget_owner(pgw_pool *p, uint64_t id)
{
	pool_conn *pc;

	TAILQ_FOREACH(pc, &p->idle, link)
	if (pc->owner == id)
		break;
	if (!pc)
		return;
	TAILQ_REMOVE(&p->idle, pc, link);
	pc->owner = 0;
	start_reset(pc);
}

/*
 * The client changed its own settings in the transaction that just ended:
 * read them back from the server before anyone else could have the
 * connection (it stays the client's meanwhile), so the next borrow of
 * another connection replays exactly what PostgreSQL kept (a committed SET
 * stays, a rolled-back one is gone). The client's next message waits for it.
 */
static void start_snapshot(pool_conn *pc, session *s)
{
	pktbuf b;

	s->pool_settings_changed = false;
	pktbuf_init(&b);
	pkt_begin(&b, 'Q');
	pkt_put_cstr(&b, pool_settings_query);
	pkt_end(&b);
	if (b.failed || evbuffer_add(pc->up.io.out, b.data, b.len) != 0 || io_flush(&pc->up.io) != 0) {
		pktbuf_free(&b);
		pool_conn_free(pc, false);
		client_fail(s, "08006", "pgwarden: could not save the session's settings", NULL);
		return;
	}
	pktbuf_free(&b);
	pc->snapshot = true;
	pc->snapshot_for = s;
	s->pool_snapshot = pc;
	pc->resets_owed = 1;
	pc->asked_at = mono_now(); /* a read-back that never answers is given up like a hung reset */
	TAILQ_INSERT_TAIL(&pc->pool->resetting, pc, link);
}

/*
 * Transaction mode: the client's transaction is over and nothing holds it
 * (pool_txn.c). The connection goes back idle without a reset, still
 * carrying this client's identity and settings: only this client is lent it
 * as it is; anyone else gets it reset first (dispatch_cb). Whatever could
 * make it unfit for reuse closes it instead, and the client goes on without
 * one. A cancel still on its way could hit the next borrower's query
 * (pgbouncer#245): that connection is closed, not lent.
 */
void pool_give_back(session *s)
{
	pgw_pool *p = s->pool;
	const char *why = not_returnable(s);
	pool_conn *pc;

	p->n_lent--;
	/* The unnamed statement stays on that backend; the next borrow may be another. */
	stmt_table_del(&s->tl.confirmed, "");
	if (why) {
		session_log(LOG_LVL_INFO, s, "backend %u closed, not returned to the pool: %s", s->up.backend_pid, why);
		upstream_close(s);
		upstream_conn_clear(&s->up);
		p->n_open--;
	} else if ((pc = take_from(s)) != NULL) {
		pc->owner = s->id;
		if (s->pool_settings_changed)
			start_snapshot(pc, s);
		else {
			pc->idle_since = mono_now();
			TAILQ_INSERT_TAIL(&p->idle, pc, link);
		}
		session_log(LOG_LVL_DEBUG, s, "gave back backend %u", pc->up.backend_pid);
	}
	pool_kick(p);
	relay_client_wake(s); /* a message already waiting borrows again */
}

void pool_release(session *s)
{
	pgw_pool *p = s->pool;
	bool lent = s->up.phase == UPSTREAM_READY;
	const char *why;
	pool_conn *pc;

	if (!p) {
		upstream_close(s);
		return;
	}
	leave_queue(s);
	if (s->wait_timer) {
		event_free(s->wait_timer);
		s->wait_timer = NULL;
	}
	pool_unpark(s);
	forget_owner(p, s->id);
	if (s->pool_snapshot) {
		s->pool_snapshot->snapshot_for = NULL; /* reset away once the read-back is answered */
		s->pool_snapshot = NULL;
	}
	if (!s->up.counted) {
		upstream_close(s);
		return;
	}
	if (lent)
		p->n_lent--;
	if ((why = not_returnable(s)) == NULL) {
		if ((pc = take_from(s)) != NULL)
			start_reset(pc);
	} else {
		session_log(LOG_LVL_INFO, s, "backend %u closed, not returned to the pool: %s", s->up.backend_pid, why);
		upstream_close(s);
		p->n_open--;
	}
	pool_kick(p);
}

/* ---- the waiting statement that times out -------------------------------------------------- */

static void send_wait_error(session *s)
{
	pktbuf b;

	pktbuf_init(&b);
	pkt_error(&b, "ERROR", "53300", "pgwarden: no upstream connection available (pool_wait_timeout)", NULL,
		  "All of the target's pool_size connections are in use; try again.");
	pkt_ready_for_query(&b, 'I');
	client_send(s, b.data, b.len);
	pktbuf_free(&b);
	client_flush(s);
}

bool pool_skip_input(session *s)
{
	struct evbuffer *in = s->client.io.in;
	uint8_t hdr[5];
	uint32_t len;

	while (evbuffer_copyout(in, hdr, 5) == 5) {
		len = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4];
		if (len < 4 || len > (uint32_t)s->cfg->max_message_size) {
			client_fail(s, "08P01", "invalid message length", NULL);
			return false;
		}
		if (hdr[0] == 'X') {
			session_close_later(s, "client terminated");
			return false;
		}
		if (evbuffer_get_length(in) < 1 + (size_t)len)
			break;
		evbuffer_drain(in, 1 + (size_t)len);
		/* A simple Query, or the Sync that ends an extended batch: the waiting statement is answered. */
		if (hdr[0] == 'Q' || hdr[0] == 'S') {
			s->pool_skip_to_sync = false;
			send_wait_error(s);
			return true;
		}
	}
	client_resume(s); /* the rest is still on its way */
	return false;
}

static void wait_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	session *s = arg;

	(void)fd, (void)what;
	if (s->closing || !s->pool_waiting)
		return;
	leave_queue(s);
	s->pool->wait_timeouts++;
	observe_wait(s->pool, &s->wait_start);
	session_log(LOG_LVL_WARN, s, "no pooled connection within pool_wait_timeout");
	if (s->client.phase == CLIENT_WAIT_UPSTREAM) {
		client_fail(s, "53300", "pgwarden: no upstream connection available (pool_wait_timeout)", NULL);
		return;
	}
	s->pool_skip_to_sync = true;
	if (pool_skip_input(s))
		relay_client_wake(s); /* between statements again: the next one borrows anew */
}

/* ---- reload, sweep, exit ----------------------------------------------------------------------- */

static void close_idle_if(pgw_pool *p, bool (*doomed)(const pool_conn *, const pgw_target *, time_t))
{
	const pgw_target *t = pool_target(p);
	time_t now = mono_now();
	pool_conn *pc, *tmp;

	for (pc = TAILQ_FIRST(&p->idle); pc; pc = tmp) {
		tmp = TAILQ_NEXT(pc, link);
		if (!t || doomed(pc, t, now))
			pool_conn_free(pc, true);
	}
}

static bool old_generation(const pool_conn *pc, const pgw_target *t, time_t now)
{
	(void)t, (void)now;
	return pc->up.generation != pc->pool->generation;
}

/* ---- pool_min_idle (pool_upkeep.c decides; the lists are here) ---------------------------- */

/* A background connect finished: the connection joins the idle list, nobody's, or the count is given back. */
static void adopted(void *arg, upstream_conn *up)
{
	pgw_pool *p = arg;
	pool_conn *pc;

	if (!up) {
		p->n_open--;
		pool_kick(p);
		return;
	}
	learn_from(p, up->pg);
	upstream_conn_connected(up);
	if (up->generation != p->generation || !pool_target(p)) {
		upstream_conn_close(up, true);
		p->n_open--;
		return;
	}
	if ((pc = wrap(p, up)) != NULL) {
		pc->idle_since = mono_now();
		TAILQ_INSERT_TAIL(&p->idle, pc, link);
		log_debug("pool %s: backend %u opened for pool_min_idle", p->target, pc->up.backend_pid);
	}
	pool_kick(p);
}

/* Open in the background what pool_min_idle misses (never beyond pool_size; backs off after a failure). */
static void refill(pgw_pool *p)
{
	const pgw_target *t = pool_target(p);
	int n;

	if (!t || p->srv->shutting_down)
		return;
	n = upkeep_deficit(&p->upkeep, t, p->n_open, count(&p->idle) + count(&p->resetting), mono_now());
	while (n-- > 0 && upkeep_open(&p->upkeep, p->srv, p->target, p->conninfo, p->generation, adopted, p) == 0)
		p->n_open++;
}

/* Every target with pool_min_idle gets its pool now, not at its first login. */
static void create_min_idle_pools(pgw_server *srv)
{
	for (size_t i = 0; i < srv->cfg->n_targets; i++)
		if (srv->cfg->targets[i].pool_min_idle > 0 && !pool_for(srv, &srv->cfg->targets[i]))
			log_warn("pool %s: out of memory", srv->cfg->targets[i].name);
}

/* Idle connections past their time, sparing the pool_min_idle most recently used from the idle timeout. */
static void sweep_idle(pgw_pool *p, time_t now)
{
	const pgw_target *t = pool_target(p);
	int keep = t ? t->pool_min_idle : 0;
	pool_conn *pc, *prev;

	for (pc = TAILQ_LAST(&p->idle, pool_conn_list); pc; pc = prev) {
		prev = TAILQ_PREV(pc, pool_conn_list, link);
		if (!t || upkeep_idle_expired(t, pc->idle_since, pc->up.born, now, &keep))
			pool_conn_free(pc, true);
	}
}

/* A reset or health check that has not answered within UPKEEP_ANSWER_TIMEOUT: the backend hangs. */
static void sweep_hung(pgw_pool *p, time_t now)
{
	pool_conn *pc, *tmp;

	for (pc = TAILQ_FIRST(&p->resetting); pc; pc = tmp) {
		tmp = TAILQ_NEXT(pc, link);
		if (now - pc->asked_at < UPKEEP_ANSWER_TIMEOUT)
			continue;
		log_warn("pool %s: backend %u did not answer its %s within %d s: closed", p->target, pc->up.backend_pid,
			 pc->checking ? "health check" : "reset", UPKEEP_ANSWER_TIMEOUT);
		if (!pc->checking)
			p->resets_failed++;
		pool_conn_free(pc, true);
	}
}

void pool_config_changed(pgw_server *srv)
{
	for (pgw_pool *p = srv->pools; p; p = p->next) {
		const pgw_target *t = pool_target(p);
		char *ci;

		if (t && strcmp(t->conninfo, p->conninfo) == 0)
			continue;
		if (t && (ci = strdup(t->conninfo)) != NULL) {
			free(p->conninfo);
			p->conninfo = ci;
		}
		p->generation++;
		p->params_known = false; /* maybe another server now: learn again */
		log_info("pool %s: conninfo changed, draining", p->target);
		close_idle_if(p, old_generation);
		p->n_open -= upkeep_cancel_all(&p->upkeep); /* opening with the old conninfo */
		p->upkeep.retry_at = 0;
	}
	create_min_idle_pools(srv);
	for (pgw_pool *p = srv->pools; p; p = p->next)
		refill(p);
}

/*
 * Transaction mode: a parked connection opened under an old conninfo (a
 * reload drains the pool) or past server_lifetime is taken back between
 * its client's transactions, which closes it (not_returnable); the client
 * borrows a current one for its next transaction.
 */
static void take_back_outdated(pgw_pool *p)
{
	const pgw_target *t = pool_target(p);
	time_t now = mono_now();
	session *s, *tmp;

	for (s = TAILQ_FIRST(&p->parked); s; s = tmp) {
		tmp = TAILQ_NEXT(s, park_link);
		if (t && s->up.generation == p->generation && now - s->up.born < t->server_lifetime)
			continue;
		if (!pool_txn_can_go(s))
			continue; /* its next transaction is on its way: it is taken back after that one */
		pool_unpark(s);
		pool_give_back(s);
	}
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	pgw_server *srv = arg;
	time_t now = mono_now();

	(void)fd, (void)what;
	for (pgw_pool *p = srv->pools; p; p = p->next) {
		sweep_idle(p, now);
		sweep_hung(p, now);
		refill(p);
		take_back_outdated(p);
	}
}

int pool_init(pgw_server *srv)
{
	struct timeval second = { 1, 0 };

	srv->pool_sweep = event_new(srv->base, -1, EV_PERSIST, sweep_cb, srv);
	if (!srv->pool_sweep || event_add(srv->pool_sweep, &second) != 0)
		return -1;
	create_min_idle_pools(srv);
	for (pgw_pool *p = srv->pools; p; p = p->next)
		refill(p);
	return 0;
}

void pool_free_all(pgw_server *srv)
{
	pgw_pool *p, *next;
	pool_conn *pc;

	for (p = srv->pools; p; p = next) {
		next = p->next;
		upkeep_cancel_all(&p->upkeep);
		while ((pc = TAILQ_FIRST(&p->idle)) != NULL) {
			TAILQ_REMOVE(&p->idle, pc, link);
			upstream_conn_close(&pc->up, true);
			free(pc);
		}
		while ((pc = TAILQ_FIRST(&p->resetting)) != NULL) {
			TAILQ_REMOVE(&p->resetting, pc, link);
			upstream_conn_close(&pc->up, false);
			free(pc);
		}
		for (size_t i = 0; i < POOL_N_REPORTED; i++)
			free(p->params[i]);
		event_free(p->dispatch_ev);
		free(p->target), free(p->conninfo), free(p);
	}
	srv->pools = NULL;
	if (srv->pool_sweep)
		event_free(srv->pool_sweep);
	srv->pool_sweep = NULL;
}

/* ---- metrics and /pools ------------------------------------------------------------------------- */

static int count(const struct pool_conn_list *l)
{
	int n = 0;
	const pool_conn *pc;

	TAILQ_FOREACH(pc, l, link)
	n++;
	return n;
}

/* Lent connections whose (transaction-mode) client is held on them between its transactions. */
static int count_held(const pgw_pool *p)
{
	int n = 0;
	const session *s;

	TAILQ_FOREACH(s, &p->srv->sessions, link)
	n += s->pool == p && pool_txn_held_now(s);
	return n;
}

void pool_count_hold(pgw_pool *p, int reason)
{
	if (reason >= 0 && reason < POOL_HOLD_N)
		p->holds[reason]++;
}

static int count_waiting(const pgw_pool *p)
{
	int n = 0;
	const session *s;

	TAILQ_FOREACH(s, &p->waiting, wait_link)
	n++;
	return n;
}

void pool_metrics_render(pgw_server *srv, struct evbuffer *out)
{
	pgw_pool *p;

	evbuffer_add_printf(out, "# TYPE pgwarden_pool_connections gauge\n");
	for (p = srv->pools; p; p = p->next) {
		/* session mode: every lent connection is its client's, active; "held" is transaction mode's */
		/* transaction mode: a parked connection (still attached, free to take back) counts as idle */
		int held = count_held(p);
		evbuffer_add_printf(out, "pgwarden_pool_connections{target=\"%s\",state=\"idle\"} %d\n", p->target,
				    count(&p->idle) + p->n_parked);
		evbuffer_add_printf(out, "pgwarden_pool_connections{target=\"%s\",state=\"active\"} %d\n", p->target,
				    p->n_lent - held - p->n_parked);
		evbuffer_add_printf(out, "pgwarden_pool_connections{target=\"%s\",state=\"held\"} %d\n", p->target,
				    held);
	}
	evbuffer_add_printf(out, "# TYPE pgwarden_pool_waiting_clients gauge\n");
	for (p = srv->pools; p; p = p->next)
		evbuffer_add_printf(out, "pgwarden_pool_waiting_clients{target=\"%s\"} %d\n", p->target,
				    count_waiting(p));
	evbuffer_add_printf(out, "# TYPE pgwarden_pool_holds_total counter\n");
	for (p = srv->pools; p; p = p->next)
		for (size_t r = 0; r < POOL_HOLD_N; r++)
			evbuffer_add_printf(out, "pgwarden_pool_holds_total{target=\"%s\",reason=\"%s\"} %llu\n",
					    p->target, pool_hold_names[r], (unsigned long long)p->holds[r]);
	evbuffer_add_printf(out, "# TYPE pgwarden_pool_wait_seconds histogram\n");
	for (p = srv->pools; p; p = p->next) {
		uint64_t cum = 0;
		for (size_t i = 0; i < WAIT_BUCKETS; i++) {
			cum += p->wait_buckets[i];
			evbuffer_add_printf(out, "pgwarden_pool_wait_seconds_bucket{target=\"%s\",le=\"%g\"} %llu\n",
					    p->target, wait_bounds[i], (unsigned long long)cum);
		}
		evbuffer_add_printf(out, "pgwarden_pool_wait_seconds_bucket{target=\"%s\",le=\"+Inf\"} %llu\n",
				    p->target, (unsigned long long)p->wait_count);
		evbuffer_add_printf(out, "pgwarden_pool_wait_seconds_sum{target=\"%s\"} %.6f\n", p->target,
				    p->wait_sum);
		evbuffer_add_printf(out, "pgwarden_pool_wait_seconds_count{target=\"%s\"} %llu\n", p->target,
				    (unsigned long long)p->wait_count);
	}
}

void pool_render_json(pgw_server *srv, struct evbuffer *out)
{
	bool first = true;

	evbuffer_add_printf(out, "[");
	for (pgw_pool *p = srv->pools; p; p = p->next) {
		const pgw_target *t = pool_target(p);
		jbuf name;

		jbuf_init(&name);
		json_put_escaped(&name, p->target, strlen(p->target));
		jbuf_putc(&name, '\0');
		evbuffer_add_printf(out,
				    "%s{\"target\":\"%s\",\"mode\":\"%s\",\"pool_size\":%d,\"open\":%d,"
				    "\"idle\":%d,\"active\":%d,\"held\":%d,\"resetting\":%d,\"waiting\":%d,"
				    "\"wait_timeouts\":%llu,\"resets_failed\":%llu,\"min_idle\":%d,\"opening\":%d,"
				    "\"checks_failed\":%llu}",
				    first ? "" : ",", name.failed ? "" : name.data,
				    t && t->pool_mode == POOL_MODE_TRANSACTION ? "transaction" : "session",
				    t ? t->pool_size : 0, p->n_open, count(&p->idle) + p->n_parked,
				    p->n_lent - count_held(p) - p->n_parked, count_held(p), count(&p->resetting),
				    count_waiting(p), (unsigned long long)p->wait_timeouts,
				    (unsigned long long)p->resets_failed, t ? t->pool_min_idle : 0, p->upkeep.n_opening,
				    (unsigned long long)p->upkeep.checks_failed);
		jbuf_free(&name);
		first = false;
	}
	evbuffer_add_printf(out, "]\n");
}
