/* pool_upkeep.c - keeping a pool ready: min_idle sizing, the idle sweep's verdict, health checks, background connects. */
#include "proxy/pool_upkeep.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include "proxy/health.h"
#include "conf/core/log.h"
#include "proxy/server.h"
#include "proxy/upstream.h"

/* One connection being opened for the pool, with no session behind it. */
struct upkeep_opener {
	upkeep_state *u;            /* the pool's upkeep, whose list holds it */
	struct pgw_server *srv;     /* event base, metrics, health */
	char *target;               /* target name, for logs, metrics and health */
	upstream_conn up;           /* pg, poll_ev and connect_start while connecting; generation */
	upkeep_opened_fn done;      /* told the outcome, once */
	void *arg;                  /* done's argument (the pool) */
	struct upkeep_opener *next; /* u->openers */
};

static time_t mono_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

int upkeep_deficit(const upkeep_state *u, const pgw_target *t, int n_open, int n_idle_or_resetting, time_t now)
{
	int want = t->pool_min_idle - n_idle_or_resetting - u->n_opening;
	int room = t->pool_size - n_open;

	if (want <= 0 || room <= 0 || now < u->retry_at)
		return 0;
	return want < room ? want : room;
}

bool upkeep_idle_expired(const pgw_target *t, time_t idle_since, time_t born, time_t now, int *keep)
{
	/* server_lifetime is not idleness: an old connection goes even if it is one of the min_idle (refilled after). */
	if (now - born >= t->server_lifetime)
		return true;
	if (*keep > 0) {
		(*keep)--;
		return false;
	}
	return now - idle_since >= t->server_idle_timeout;
}

bool upkeep_check_due(const pgw_target *t, time_t idle_since, time_t checked_at, time_t now)
{
	/* Checked this very second (for the waiter it is now lent to): once is enough, even with server_check_delay = 0. */
	if (checked_at == now)
		return false;
	return now - idle_since >= t->server_check_delay;
}

/*
 * Why peek: an idle pooled connection has nothing to say. Bytes waiting on
 * its socket (a FATAL from pg_terminate_backend, TLS alert) or end of file
 * mean the server spoke since, though the loop has not read it yet; one
 * MSG_PEEK costs no round trip and consumes nothing.
 */
bool upkeep_idle_spoke(int fd)
{
	char byte;
	ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

	return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/*
 * Why an empty Query: the server answers EmptyQueryResponse and
 * ReadyForQuery without parsing or planning anything (protocol-flow.html,
 * "Simple Query"), and a backend that is gone answers nothing, a FATAL, or
 * a closed socket. It changes no state, so the connection stays "nobody".
 */
int upkeep_queue_check(struct evbuffer *out)
{
	static const uint8_t empty_query[6] = { 'Q', 0, 0, 0, 5, '\0' };

	return evbuffer_add(out, empty_query, sizeof(empty_query));
}

/* ---- background connects ------------------------------------------------------------------ */

static void opener_poll_cb(evutil_socket_t fd, short what, void *arg);

static void opener_unlink(upkeep_opener *o)
{
	upkeep_opener **pp;

	for (pp = &o->u->openers; *pp && *pp != o; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = o->next;
	o->u->n_opening--;
}

static void opener_free(upkeep_opener *o)
{
	if (o->up.poll_ev)
		event_free(o->up.poll_ev);
	if (o->up.pg)
		PQfinish(o->up.pg);
	free(o->target);
	free(o);
}

/* The connect failed: log it (libpq's text may name hosts: log only), back off, tell the pool. */
static void opener_failed(upkeep_opener *o, const char *what)
{
	char folded[512];
	upkeep_opened_fn done = o->done;
	void *arg = o->arg;

	log_one_line(o->up.pg ? PQerrorMessage(o->up.pg) : "", folded, sizeof(folded));
	log_warn("pool %s: background connection (pool_min_idle) %s failed: %s", o->target, what, folded);
	health_note_connect(o->srv, o->target, false, folded);
	o->u->retry_at = mono_secs() + UPKEEP_RETRY_DELAY;
	opener_unlink(o);
	opener_free(o);
	done(arg, NULL);
}

static void opener_succeeded(upkeep_opener *o)
{
	struct timespec now;
	upstream_conn up = o->up;
	upkeep_opened_fn done = o->done;
	void *arg = o->arg;

	clock_gettime(CLOCK_MONOTONIC, &now);
	o->srv->metrics.upstream_connects++;
	o->srv->metrics.upstream_connect_us_total += (uint64_t)((now.tv_sec - up.connect_start.tv_sec) * 1000000 +
								(now.tv_nsec - up.connect_start.tv_nsec) / 1000);
	health_note_connect(o->srv, o->target, true, NULL);
	event_free(o->up.poll_ev);
	up.poll_ev = NULL;
	up.born = now.tv_sec;
	o->up.pg = NULL; /* handed over in 'up' */
	o->up.poll_ev = NULL;
	o->u->opened++;
	opener_unlink(o);
	opener_free(o);
	done(arg, &up);
}

/* Wait for libpq's socket; it can change while connecting (multi-host conninfo, SSL retry). */
static bool opener_wait(upkeep_opener *o, short what)
{
	if (o->up.poll_ev)
		event_free(o->up.poll_ev);
	o->up.poll_ev = event_new(o->srv->base, PQsocket(o->up.pg), what, opener_poll_cb, o);
	return o->up.poll_ev && event_add(o->up.poll_ev, NULL) == 0;
}

static void opener_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	upkeep_opener *o = arg;

	(void)fd, (void)what;
	switch (PQconnectPoll(o->up.pg)) {
	case PGRES_POLLING_READING:
		if (!opener_wait(o, EV_READ))
			opener_failed(o, "event setup");
		break;
	case PGRES_POLLING_WRITING:
		if (!opener_wait(o, EV_WRITE))
			opener_failed(o, "event setup");
		break;
	case PGRES_POLLING_OK:
		if (PQtransactionStatus(o->up.pg) != PQTRANS_IDLE)
			opener_failed(o, "connection (not idle)");
		else
			opener_succeeded(o);
		break;
	default:
		opener_failed(o, "connection");
		break;
	}
}

int upkeep_open(upkeep_state *u, pgw_server *srv, const char *target, const char *conninfo, unsigned generation,
		upkeep_opened_fn done, void *arg)
{
	/* As upstream.c's connect_start: the conninfo alone; clients' settings are SET on each borrow. */
	const char *kw[] = { "dbname", "fallback_application_name", NULL };
	const char *val[] = { conninfo, "pgwarden", NULL };
	upkeep_opener *o = calloc(1, sizeof(*o));

	if (!o || !(o->target = strdup(target))) {
		free(o);
		return -1;
	}
	o->u = u, o->srv = srv, o->done = done, o->arg = arg;
	upstream_conn_clear(&o->up);
	o->up.generation = generation;
	clock_gettime(CLOCK_MONOTONIC, &o->up.connect_start);
	o->next = u->openers;
	u->openers = o;
	u->n_opening++;
	o->up.pg = PQconnectStartParams(kw, val, 1);
	if (!o->up.pg || PQstatus(o->up.pg) == CONNECTION_BAD || PQsetnonblocking(o->up.pg, 1) != 0 ||
	    !opener_wait(o, EV_WRITE)) {
		/* Not through done(): the caller has not counted it yet. */
		u->retry_at = mono_secs() + UPKEEP_RETRY_DELAY;
		opener_unlink(o);
		opener_free(o);
		return -1;
	}
	return 0;
}

int upkeep_cancel_all(upkeep_state *u)
{
	int n = 0;
	upkeep_opener *o;

	while ((o = u->openers) != NULL) {
		u->openers = o->next;
		opener_free(o);
		n++;
	}
	u->n_opening = 0;
	return n;
}
