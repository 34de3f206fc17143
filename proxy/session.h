/*
 * session.h - one client session: the client connection, its upstream
 * connection, and what binds them (identity, the responses still owed).
 *
 * Client and upstream are separate structs with their own phase enums; each
 * phase has one writer (client_set_phase / upstream_set_phase), so the log
 * shows every transition.
 */
#ifndef PGW_SESSION_H
#define PGW_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <openssl/ssl.h>

#include "conf/config.h"
#include "protocol/startup.h"
#include "proxy/console.h"
#include "proxy/io.h"
#include "proxy/limits.h"
#include "conf/core/log.h"
#include "proxy/pipeline.h"

struct pgw_server;
struct pgw_auth;
struct policy_facts;
struct pool_stmt;
struct pool_conn;

typedef enum {
	CLIENT_STARTUP,       /* waiting for SSLRequest / GSSENCRequest / CancelRequest / StartupMessage */
	CLIENT_AUTH,          /* authentication requested; waiting for 'p' messages */
	CLIENT_WAIT_UPSTREAM, /* authenticated; a cold pool connects to learn the server's parameters, client input paused */
	CLIENT_READY,         /* relaying */
	CLIENT_CLOSING,       /* a final error is queued; close once it is written */
} client_phase;

typedef enum {
	UPSTREAM_NONE,       /* no connection: before the first message, or waiting for the pool */
	UPSTREAM_CONNECTING, /* PQconnectPoll in progress (a new pool connection for this session) */
	UPSTREAM_READY,      /* borrowed: raw protocol relay through our own io on the socket */
	UPSTREAM_CLOSED,     /* gone; the session is ending */
} upstream_phase;

/* The client side of a session. */
typedef struct client_conn {
	client_phase phase;
	int fd;                      /* accepted socket */
	pgw_io io;                   /* transport: plain or TLS on fd */
	SSL *ssl;                    /* non-NULL once TLS is negotiated (owned here) */
	bool tls_refused;            /* SSLRequest answered 'N' already (only one allowed) */
	bool gss_refused;            /* GSSENCRequest answered 'N' already */
	char peer[64];               /* "ip:port" or "unix", for logs and audit */
	char addr[48];               /* peer address without port: the throttle's key */
	struct event *fail_timer;    /* answers a failed login after the back-off */
	struct event *closing_timer; /* CLOSING: gives up on a client that does not read its error */
	struct event *startup_timer; /* auth_timeout: fires if startup/auth does not finish */
	struct pgw_auth *auth;       /* exchange in progress during CLIENT_AUTH */
	uint8_t *startup_pkt;        /* copy of the StartupMessage (params point into it) */
	startup_params *params;      /* the parsed StartupMessage (1 kB: freed once upstream has it) */
	const char *actor;           /* startup "user" = actor id (in startup_pkt) */
	const char *database;        /* startup "database" = target name (in startup_pkt) */
	uint32_t copy_passthru;      /* bytes of a CopyData message still to stream upstream */
	bool counted_unauth;         /* counted in server's unauthenticated connections */
	bool terminated;             /* sent Terminate: close once owed responses are delivered */
	bool backpressured;          /* reading paused because too much waits for the upstream */
} client_conn;

/* The upstream side of a session. */
typedef struct upstream_conn {
	upstream_phase phase;
	PGconn *pg;                       /* while connecting and pinning, and for good with TLS (libpq
	                                  owns the SSL object); NULL once a plain socket is ours */
	int own_fd;                       /* the plain socket once libpq is let go (-1 until then) */
	struct cancel_handle *cancel;     /* for CancelRequests, taken at READY */
	struct event *poll_ev;            /* socket readiness while libpq drives (connect, pin) */
	pgw_io io;                        /* raw relay once READY (io never closes fd or SSL) */
	uint32_t passthru;                /* bytes of a DataRow/CopyData still to stream to the client */
	char txn_status;                  /* last ReadyForQuery status: 'I', 'T' or 'E' */
	bool read_only;                   /* what default_transaction_read_only is set to upstream */
	bool standard_conforming_strings; /* tracked from ParameterStatus */
	uint32_t backend_pid;             /* the upstream backend's pid (PQbackendPID): what wall signatures bind */
	struct timespec connect_start;    /* for the connect-latency metric */
	unsigned generation;              /* the pool's conninfo generation it was opened under */
	time_t born;                      /* monotonic seconds at connect: server_lifetime */
	bool counted;                     /* counted in its pool's open connections */
	bool broken;                      /* a read or write failed, or the server closed it: never lent again */
} upstream_conn;

/*
 * A session's identity fields as rendered in its audit records (audit_hooks.c),
 * made once per identity instead of escaped again in every record. Valid while
 * cfg, who and target are the session's: cfg is referenced, so a later config
 * can never take its address and pass for it.
 */
typedef struct audit_ident_cache {
	char *text;               /* ,"session":N,"actor":...,"environment":"..." (malloc'd), or NULL */
	size_t len;               /* bytes of text */
	pgw_config *cfg;          /* the snapshot it was made from (ref held), or NULL */
	const pgw_token *who;     /* the token record it was made from, in cfg */
	const pgw_target *target; /* the target it was made from, in cfg */
} audit_ident_cache;

/* One session: a client, its upstream, identity and the relay's bookkeeping. */
typedef struct session {
	uint64_t id; /* unique per client connection, for logs and audit */
	struct pgw_server *srv;
	client_conn client;
	upstream_conn up;

	pgw_config *cfg;          /* snapshot this session uses (ref held) */
	const pgw_target *target; /* in cfg */
	const pgw_token *who;     /* matched token record, in cfg */
	uint8_t secret_id[32];    /* sha256 or StoredKey of the matched record: finds it after reload */

	struct pgw_pool *pool; /* the target's pool (pool.c), set at login */
	char *settings_sql;    /* the client's startup settings as one SELECT set_config(...), "" if none (every pin) */
	bool pool_waiting;     /* in the pool's queue for a connection */
	bool borrow_pin_due;   /* the next pin is a borrow's: its ParameterStatus repeat the login's, swallowed */
	bool wall_check_due;   /* the next pin also asks a walled target's database to verify it (each borrow) */
	bool pool_skip_to_sync;         /* a wait timed out inside an extended batch: drop client messages up to Sync */
	uint32_t pool_holds;            /* transaction mode: 1 << pool_hold_reason bits keeping it on its connection */
	uint32_t pool_release_due;      /* hold bits the current transaction's statements end (pool_txn.c) */
	uint32_t pool_name_holds;       /* hold bits from names the server confirmed, as last counted */
	bool pool_release_void;         /* the transaction failed or was (partly) rolled back: release nothing */
	bool pool_parked;               /* transaction mode: between transactions, its connection free for others */
	TAILQ_ENTRY(session) park_link; /* pool->parked, oldest first */
	struct pool_stmt *pool_stmts;   /* its named protocol statements, to prepare again (pool_stmts.c) */
	char *pool_settings_sql;        /* its own settings as read back last, replayed on another connection */
	bool pool_settings_changed;     /* the current transaction may have changed its settings: read them back */
	struct pool_conn *pool_snapshot; /* the connection reading them back now (pool.c), or NULL */
	struct timespec wait_start;      /* when the wait began (pgwarden_pool_wait_seconds) */
	struct event *wait_timer;        /* pool_wait_timeout */
	TAILQ_ENTRY(session) wait_link;  /* pool->waiting */

	uint32_t cancel_pid; /* our BackendKeyData */
	uint32_t cancel_key;

	timeline tl;                 /* what the server will do: answers owed, names, mode, re-pin (pipeline.h) */
	struct evbuffer *hold;       /* upstream-bound bytes held until their audit records are written */
	bool awaiting_flush;         /* on srv->flush_list */
	bool catalog_refresh_needed; /* sent function DDL: reload the catalog when its transaction ends */
	bool catalog_waiting;        /* client paused until the target's catalog covers catalog_wait_mark */
	uint64_t catalog_wait_mark;  /* the catalog load that must land before the client is read again */
	struct parse_job *parse_job; /* a large statement parsed off the loop (parse_async.c), or NULL */
	bool parse_waiting;          /* client paused until parse_job lands */

	bool closing;                  /* on the reap list; callbacks must do nothing more */
	session_console console;       /* accept time, last statement, PAUSE hold (console.c) */
	session_limits lim;            /* max_client_conn / max_actor_conn counts and timeouts (limits.c) */
	audit_ident_cache audit_ident; /* the identity fields of its audit records, rendered (audit_hooks.c) */
	bool audited_connect;          /* the connect record is written (once per session) */
	bool audited_disconnect;       /* the disconnect record is written (once per session) */
	char close_reason
		[160]; /* for the disconnect log line ("" until known); a copy: callers' text may be on their stack */
	TAILQ_ENTRY(session) link;       /* srv->sessions */
	TAILQ_ENTRY(session) flush_link; /* srv->flush_list */
	TAILQ_ENTRY(session) reap_link;  /* srv->reap_list */
} session;

TAILQ_HEAD(session_list, session);

/* Log a line prefixed with the session's identity: "s=17 user:jimmie prod 10.0.0.9:5123 ...". */
void session_log(pgw_log_level lvl, const session *s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A new session registered with the server (client side not yet set up); NULL on out of memory. */
session *session_new(struct pgw_server *srv);

/* Remember why the session ends (the first reason given wins; the text is copied). */
void session_set_close_reason(session *s, const char *reason);

/* Free everything a session owns; called by the reaper only. */
void session_free(session *s);

#endif
