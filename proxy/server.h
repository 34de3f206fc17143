/*
 * server.h - the process: event loop, listeners, the current config
 * snapshot, the session list, the audit log, and deferred work (audit flush
 * before upstream sends, reaping closed sessions after callbacks return).
 */
#ifndef PGW_SERVER_H
#define PGW_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "conf/config.h"
#include "proxy/console.h"
#include "proxy/health.h"
#include "proxy/limits.h"
#include "proxy/metrics.h"
#include "proxy/session.h"
#include "proxy/throttle.h"

struct audit_log;
struct audit_events;
struct policy_classifier;

#define SERVER_MAX_LISTENERS 8

typedef struct pgw_server {
	struct event_base *base;
	pgw_config *cfg; /* current snapshot; sessions hold their own refs */
	char *config_path;

	struct evconnlistener *listeners[SERVER_MAX_LISTENERS];
	int n_listeners;
	char *unix_socket_path; /* to unlink at exit */
	SSL_CTX *ssl_ctx;       /* client-facing TLS, NULL when not configured */
	uint8_t cert_hash[64];  /* tls-server-end-point hash of the current certificate (sessions bind to their own) */
	unsigned cert_hash_len;

	struct audit_log *audit;           /* NULL when audit_log is not set */
	struct audit_events *audit_events; /* window and checkpoint timers, what was recorded (audit_events.c) */
	struct event *flush_ev; /* after this loop iteration's callbacks: write the audit batch, release held bytes */
	struct event *lazy_flush_ev;          /* within 10 ms: write records no statement waits on */
	struct policy_classifier *classifier; /* shared statement classifier and its cache */
	struct catalog_loader *catalogs;      /* each target's function catalog (catalogs.c) */
	struct pgw_pool *pools;               /* each target's upstream connection pool (pool.c), a list */
	struct event *pool_sweep;             /* closes pooled connections past their idle time or lifetime */

	struct session_list sessions;   /* every live session */
	struct session_list flush_list; /* sessions with bytes held for the audit flush */
	struct session_list reap_list;  /* sessions to free after the current callback */
	struct event *reap_ev;          /* runs the reaper */
	uint64_t next_session_id;
	int n_unauthenticated; /* sessions still in startup/auth */

	struct event *sig_hup, *sig_term, *sig_int;
	bool shutting_down;           /* SIGTERM: no new connections, sessions finishing */
	struct event *shutdown_timer; /* SIGTERM grace period */

	throttle throttle; /* login failure back-off and per-address startup counts */
	pgw_metrics metrics;
	console_state console; /* paused targets (console.c) */
	health_state health;   /* target reachability, reload results (health.c) */
	limits_state limits;   /* client and actor counts, timeouts sweep (limits.c) */
	struct evhttp *admin;  /* admin HTTP, NULL when off */
} pgw_server;

/* Start listening and serving with 'cfg' (takes the reference). Returns 0 or -1 (logged). */
int server_init(pgw_server *srv, pgw_config *cfg, const char *config_path);
/* Run until stopped; returns the process exit status. */
int server_run(pgw_server *srv);
void server_free(pgw_server *srv);

/*
 * Ask the loop to write the audit batch: at the end of this iteration when
 * session s holds statement bytes for it (released after the write), or
 * within 10 ms when s is NULL (records nothing waits on).
 */
void server_request_flush(pgw_server *srv, session *s);

/* During a graceful shutdown, end the session if it is between transactions (else later). */
void server_close_if_idle(session *s);

/* Mark a session for freeing after the current callback (never free in place). */
void session_close_later(session *s, const char *reason);

#endif
