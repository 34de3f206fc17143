/*
 * limits.h - operator limits on client sessions (CONTRACT §2): max_client_conn,
 * the per-actor max_actor_conn (an extension), client_idle_timeout,
 * idle_transaction_timeout and query_timeout, with their metrics.
 *
 * The timeouts are judged by a sweep over the sessions 4 times a second (it
 * also keeps the "since" that the admin console shows); each
 * reads only this of relay state: s->client.phase, the session timeline's
 * entry count and its head's send time (s->tl.count, tl_head(&s->tl)->start:
 * answers the upstream still owes, i.e. a statement is running) and
 * s->up.txn_status (inside a transaction block). The client read path tells
 * the sweep about input with limits_client_input().
 */
#ifndef PGW_LIMITS_H
#define PGW_LIMITS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct pgw_server;
struct session;
struct evbuffer;
struct actor_count;
struct event;

/* What the sweep last saw a logged-in session doing. */
typedef enum {
	LIMITS_IDLE,     /* nothing owed, no transaction: client_idle_timeout runs */
	LIMITS_IDLE_TXN, /* nothing owed, inside a transaction block: idle_transaction_timeout runs */
	LIMITS_BUSY,     /* a statement is running (responses owed): query_timeout runs */
} limits_activity;

/* Per-session bookkeeping, owned by limits.c (a field of session). */
typedef struct session_limits {
	bool admitted;             /* counted against max_client_conn */
	bool over_client_limit;    /* accepted past max_client_conn: refused with 53300 after its startup */
	bool actor_counted;        /* counted in the per-actor table (logged in) */
	bool input_seen;           /* the client sent bytes since the last sweep */
	bool cancel_sent;          /* query_timeout already cancelled the current busy period */
	limits_activity activity;  /* state seen by the last sweep */
	struct timespec busy_head; /* BUSY: send time of the oldest owed request, to see a pipeline move on */
	struct timespec since;     /* when that state (or the last input) began, CLOCK_MONOTONIC */
} session_limits;

/* Which limit acted, for pgwarden_limit_events_total{limit}. */
typedef enum {
	LIMIT_MAX_CLIENT_CONN,          /* a connection refused past max_client_conn */
	LIMIT_MAX_ACTOR_CONN,           /* a login refused past max_actor_conn */
	LIMIT_CLIENT_IDLE_TIMEOUT,      /* an idle session closed */
	LIMIT_IDLE_TRANSACTION_TIMEOUT, /* a session idle in a transaction closed */
	LIMIT_QUERY_TIMEOUT,            /* a running statement cancelled */
	LIMIT_UNAUTH_SHED,              /* an unfinished startup closed to admit a newer one (per address) */
	LIMIT_N,
} limit_kind;

/* Server-wide state of the limits. */
typedef struct limits_state {
	int admitted;               /* client connections counted against max_client_conn */
	struct actor_count *actors; /* logged-in sessions per actor (uthash), only while > 0 */
	struct event *sweep_ev;     /* 4 times a second: the timeouts */
	struct timespec last_sweep; /* CLOCK_MONOTONIC time of the previous sweep */
	uint64_t events[LIMIT_N];   /* counters behind pgwarden_limit_events_total */
} limits_state;

/* Start the sweep timer. Returns 0 or -1. */
int limits_init(struct pgw_server *srv);
void limits_free(struct pgw_server *srv);

/* A connection was accepted: count it, or mark it to be refused after its startup. */
void limits_on_accept(struct session *s);
/* After the StartupMessage: false (and the session failed with 53300) when over max_client_conn. */
bool limits_admit_startup(struct session *s);
/* After authentication: false (and the session failed with 53300) when over max_actor_conn. */
bool limits_admit_actor(struct session *s);
/* The client sent bytes (one-line hook on the client read path). */
void limits_client_input(struct session *s);
/* The session is being freed: release what it counted. */
void limits_on_free(struct session *s);
/* Count an event of a limit. */
void limits_count(struct pgw_server *srv, limit_kind k);

/* Requests the upstream has still to answer (the timeline's entries): > 0 while a statement runs. */
uint32_t limits_requests_owed(const struct session *s);

/* Prometheus text of pgwarden_limit_events_total{limit} and the configured maxima. */
void limits_render_metrics(struct pgw_server *srv, struct evbuffer *out);

#endif
