/* limits.c - max_client_conn, max_actor_conn and the three session timeouts (see limits.h). */
#include "proxy/limits.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <uthash.h>

#include "proxy/cancel.h"
#include "proxy/client.h"
#include "conf/core/log.h"
#include "proxy/server.h"
#include "proxy/session.h"

/* How often the timeouts are looked at: each may act up to this late, never early. */
#define SWEEP_INTERVAL_MS 250

/* Logged-in sessions of one actor. */
typedef struct actor_count {
	char *actor;       /* actor id (key), owned */
	int n;             /* live logged-in sessions */
	UT_hash_handle hh; /* limits_state.actors */
} actor_count;

static const char *const limit_names[LIMIT_N] = {
	[LIMIT_MAX_CLIENT_CONN] = "max_client_conn",
	[LIMIT_MAX_ACTOR_CONN] = "max_actor_conn",
	[LIMIT_CLIENT_IDLE_TIMEOUT] = "client_idle_timeout",
	[LIMIT_IDLE_TRANSACTION_TIMEOUT] = "idle_transaction_timeout",
	[LIMIT_QUERY_TIMEOUT] = "query_timeout",
	[LIMIT_UNAUTH_SHED] = "unauthenticated_per_address",
};

void limits_count(pgw_server *srv, limit_kind k)
{
	srv->limits.events[k]++;
}

/* ---- connection counts ---------------------------------------------------------------------- */

void limits_on_accept(session *s)
{
	limits_state *l = &s->srv->limits;

	if (l->admitted >= s->cfg->max_client_conn) {
		s->lim.over_client_limit = true;
		return;
	}
	l->admitted++;
	s->lim.admitted = true;
}

/*
 * Why after the StartupMessage, not at accept: PostgreSQL answers "too many
 * clients" only once it has read the startup packet, and a client that
 * began with SSLRequest expects one byte, not an ErrorResponse.
 */
bool limits_admit_startup(session *s)
{
	char msg[160];

	if (!s->lim.over_client_limit)
		return true;
	limits_count(s->srv, LIMIT_MAX_CLIENT_CONN);
	snprintf(msg, sizeof(msg), "pgwarden: too many client connections (max_client_conn is %d)",
		 s->cfg->max_client_conn);
	client_fail(s, "53300", msg, NULL);
	return false;
}

bool limits_admit_actor(session *s)
{
	limits_state *l = &s->srv->limits;
	const char *actor = s->who->actor;
	actor_count *ac;
	char msg[256];

	HASH_FIND_STR(l->actors, actor, ac);
	if (s->cfg->max_actor_conn > 0 && ac && ac->n >= s->cfg->max_actor_conn) {
		limits_count(s->srv, LIMIT_MAX_ACTOR_CONN);
		snprintf(msg, sizeof(msg), "pgwarden: too many connections for actor \"%.100s\" (max_actor_conn is %d)",
			 actor, s->cfg->max_actor_conn);
		client_fail(s, "53300", msg, NULL);
		return false;
	}
	if (!ac) {
		ac = calloc(1, sizeof(*ac));
		if (!ac || !(ac->actor = strdup(actor))) {
			free(ac);
			session_close_later(s, "out of memory");
			return false;
		}
		HASH_ADD_KEYPTR(hh, l->actors, ac->actor, strlen(ac->actor), ac);
	}
	ac->n++;
	s->lim.actor_counted = true;
	/* The idle clock starts at login. */
	s->lim.activity = LIMITS_IDLE;
	clock_gettime(CLOCK_MONOTONIC, &s->lim.since);
	return true;
}

void limits_on_free(session *s)
{
	limits_state *l = &s->srv->limits;
	actor_count *ac;

	if (s->lim.admitted)
		l->admitted--;
	s->lim.admitted = false;
	if (!s->lim.actor_counted || !s->who)
		return;
	s->lim.actor_counted = false;
	HASH_FIND_STR(l->actors, s->who->actor, ac);
	if (ac && --ac->n <= 0) {
		HASH_DEL(l->actors, ac);
		free(ac->actor);
		free(ac);
	}
}

void limits_client_input(session *s)
{
	s->lim.input_seen = true;
}

/* ---- the timeouts --------------------------------------------------------------------------- */

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/*
 * Track what the session does. A statement counts as running from the time
 * its request was sent (the oldest timeline entry); when a pipeline moves on
 * to its next request, from now, so a long pipeline of quick statements is
 * never taken for one slow statement.
 */
uint32_t limits_requests_owed(const session *s)
{
	return s->tl.count;
}

static bool later(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

static void observe(session *s, const struct timespec *now, const struct timespec *prev_sweep)
{
	session_limits *lim = &s->lim;
	limits_activity a = limits_requests_owed(s) > 0 ? LIMITS_BUSY
			    : s->up.txn_status == 'I'   ? LIMITS_IDLE
							: LIMITS_IDLE_TXN;

	if (a == LIMITS_BUSY) {
		const tl_entry *head = tl_head(&s->tl);
		bool new_head = lim->activity != LIMITS_BUSY || head->start.tv_sec != lim->busy_head.tv_sec ||
				head->start.tv_nsec != lim->busy_head.tv_nsec;

		if (new_head) {
			/*
			 * Sent since the last sweep, or first seen busy: it runs from its send
			 * time. Else it waited in a pipeline behind the one just answered and
			 * runs from no earlier than that answer: count from now (late, never early).
			 */
			lim->since =
				lim->activity != LIMITS_BUSY || later(&head->start, prev_sweep) ? head->start : *now;
			lim->busy_head = head->start;
			lim->cancel_sent = false;
		}
	} else if (a != lim->activity || lim->input_seen) {
		lim->since = *now;
	}
	lim->activity = a;
	lim->input_seen = false;
}

static void close_for(session *s, limit_kind k, const char *sqlstate, int seconds)
{
	char msg[160];

	limits_count(s->srv, k);
	snprintf(msg, sizeof(msg), "pgwarden: terminating connection due to %s (%d s)", limit_names[k], seconds);
	client_fail(s, sqlstate, msg, NULL);
}

static void sweep_session(session *s, const pgw_config *c, const struct timespec *now,
			  const struct timespec *prev_sweep)
{
	double t;

	if (s->closing || s->client.phase != CLIENT_READY)
		return;
	observe(s, now, prev_sweep);
	if (s->console.paused) { /* held by PAUSE: waiting is not the client's idleness */
		s->lim.since = *now;
		return;
	}
	t = seconds_between(&s->lim.since, now);
	switch (s->lim.activity) {
	case LIMITS_IDLE:
		/* 57P05: PostgreSQL's idle_session_timeout */
		if (c->client_idle_timeout > 0 && t >= c->client_idle_timeout)
			close_for(s, LIMIT_CLIENT_IDLE_TIMEOUT, "57P05", c->client_idle_timeout);
		break;
	case LIMITS_IDLE_TXN:
		/* 25P03: PostgreSQL's idle_in_transaction_session_timeout */
		if (c->idle_transaction_timeout > 0 && t >= c->idle_transaction_timeout)
			close_for(s, LIMIT_IDLE_TRANSACTION_TIMEOUT, "25P03", c->idle_transaction_timeout);
		break;
	case LIMITS_BUSY:
		/* The server answers the cancel with its own 57014 to the client; the session goes on. */
		if (c->query_timeout > 0 && t >= c->query_timeout && !s->lim.cancel_sent) {
			s->lim.cancel_sent = true;
			limits_count(s->srv, LIMIT_QUERY_TIMEOUT);
			session_log(LOG_LVL_WARN, s, "statement ran past query_timeout (%d s): cancelling it",
				    c->query_timeout);
			cancel_upstream(s);
		}
		break;
	}
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	pgw_server *srv = arg;
	const pgw_config *c = srv->cfg;
	struct timespec now;
	session *s, *next;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (s = TAILQ_FIRST(&srv->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		sweep_session(s, c, &now, &srv->limits.last_sweep);
	}
	srv->limits.last_sweep = now;
}

int limits_init(pgw_server *srv)
{
	struct timeval tv = { 0, SWEEP_INTERVAL_MS * 1000 };

	srv->limits.sweep_ev = event_new(srv->base, -1, EV_PERSIST, sweep_cb, srv);
	if (!srv->limits.sweep_ev || event_add(srv->limits.sweep_ev, &tv) != 0)
		return -1;
	return 0;
}

void limits_free(pgw_server *srv)
{
	actor_count *ac, *tmp;

	if (srv->limits.sweep_ev)
		event_free(srv->limits.sweep_ev);
	srv->limits.sweep_ev = NULL;
	HASH_ITER(hh, srv->limits.actors, ac, tmp)
	{
		HASH_DEL(srv->limits.actors, ac);
		free(ac->actor);
		free(ac);
	}
}

void limits_render_metrics(pgw_server *srv, struct evbuffer *out)
{
	const pgw_config *c = srv->cfg;

	evbuffer_add_printf(out, "# HELP pgwarden_limit_events_total Connections refused, sessions closed and "
				 "statements cancelled by a limit.\n# TYPE pgwarden_limit_events_total counter\n");
	for (int k = 0; k < LIMIT_N; k++)
		evbuffer_add_printf(out, "pgwarden_limit_events_total{limit=\"%s\"} %llu\n", limit_names[k],
				    (unsigned long long)srv->limits.events[k]);
	evbuffer_add_printf(out, "# TYPE pgwarden_max_client_conn gauge\npgwarden_max_client_conn %d\n",
			    c->max_client_conn);
	evbuffer_add_printf(out,
			    "# TYPE pgwarden_admitted_client_connections gauge\n"
			    "pgwarden_admitted_client_connections %d\n",
			    srv->limits.admitted);
}
