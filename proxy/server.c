/*
 * server.c - the process around the sessions: event loop, listeners,
 * signals (reload, graceful and immediate stop), the audit flush that runs
 * after every batch of callbacks, and the reaper that frees sessions only
 * after the callback that closed them has returned.
 */
#include "proxy/wall_check.h"
#include "proxy/server.h"
#include "proxy/pool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <openssl/ssl.h>

#include "audit/audit.h"
#include "policy/policy.h"
#include "proxy/admin.h"
#include "proxy/audit_events.h"
#include "proxy/fd_limit.h"
#include "proxy/catalogs.h"
#include "proxy/client.h"
#include "proxy/full_config.h"
#include "conf/core/log.h"
#include "proxy/relay.h"
#include "proxy/tls.h"

#define SHUTDOWN_GRACE_SECONDS 30
#define FACTS_CACHE_ENTRIES 4096
/* A unix listen without a port uses PgBouncer's default port in the socket name. */
#define DEFAULT_UNIX_PORT 6432

/* ---- deferred work: audit flush and reaping --------------------------------------------------------- */

/*
 * flush_ev is made active from inside I/O callbacks. libevent appends it to
 * the active queue behind the callbacks already due in this loop iteration,
 * so it runs once after all of them: one audit write per iteration, before
 * any of the statements it covers is released upstream. (A lower priority
 * would starve under load: libevent runs lower queues only when higher
 * ones are empty.)
 */

void server_request_flush(pgw_server *srv, session *s)
{
	if (!s) {
		/*
		 * Records that no statement waits on (results, connects): written
		 * with the next statement's batch, or within 10 ms, not one write each.
		 */
		static const struct timeval lazy = { 0, 10000 };
		if (!evtimer_pending(srv->lazy_flush_ev, NULL))
			evtimer_add(srv->lazy_flush_ev, &lazy);
		return;
	}
	if (!s->awaiting_flush) {
		s->awaiting_flush = true;
		TAILQ_INSERT_TAIL(&srv->flush_list, s, flush_link);
	}
	event_active(srv->flush_ev, EV_TIMEOUT, 1);
}

/* Write the audit batch, then release (or refuse) what it covered. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	pgw_server *srv = arg;
	bool ok = true;
	session *s;

	if (srv->audit && audit_pending(srv->audit))
		ok = audit_flush(srv->audit) == 0;
	while ((s = TAILQ_FIRST(&srv->flush_list)) != NULL) {
		TAILQ_REMOVE(&srv->flush_list, s, flush_link);
		relay_release_held(s, ok);
	}
}

void session_close_later(session *s, const char *reason)
{
	if (s->closing)
		return;
	s->closing = true;
	session_set_close_reason(s, reason);
	/* Stop callbacks now; the reaper frees after the current callback returns. */
	io_stop(&s->client.io);
	io_stop(&s->up.io);
	TAILQ_INSERT_TAIL(&s->srv->reap_list, s, reap_link);
	event_active(s->srv->reap_ev, EV_TIMEOUT, 1);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	pgw_server *srv = arg;
	session *s;

	while ((s = TAILQ_FIRST(&srv->reap_list)) != NULL) {
		TAILQ_REMOVE(&srv->reap_list, s, reap_link);
		session_free(s);
	}
	if (srv->shutting_down && TAILQ_EMPTY(&srv->sessions))
		event_base_loopexit(srv->base, NULL);
}

/* ---- listeners ------------------------------------------------------------------------------------ */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg)
{
	client_accept(arg, fd, sa, socklen);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: keep running; the listener retries on the next readiness. */
	log_error("accept failed: %s", evutil_socket_error_to_string(err));
}

static int listen_unix(pgw_server *srv, const char *dir)
{
	struct sockaddr_un sun;
	struct evconnlistener *l;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", dir, DEFAULT_UNIX_PORT) >=
	    sizeof(sun.sun_path)) {
		log_error("listen: unix socket path too long: %s", dir);
		return -1;
	}
	unlink(sun.sun_path); /* a stale socket from a previous run */
	l = evconnlistener_new_bind(srv->base, accept_cb, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128,
				    (struct sockaddr *)&sun, sizeof(sun));
	if (!l) {
		log_error("listen: cannot bind %s: %s", sun.sun_path, strerror(errno));
		return -1;
	}
	chmod(sun.sun_path, 0777); /* like PostgreSQL's default unix_socket_permissions */
	srv->unix_socket_path = strdup(sun.sun_path);
	srv->listeners[srv->n_listeners++] = l;
	log_info("listening on %s", sun.sun_path);
	return 0;
}

static int listen_tcp(pgw_server *srv, const char *spec)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct evconnlistener *l;

	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) != 0) {
		log_error("listen: cannot parse \"%s\"", spec);
		return -1;
	}
	l = evconnlistener_new_bind(srv->base, accept_cb, srv,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
				    (struct sockaddr *)&ss, sslen);
	if (!l) {
		log_error("listen: cannot bind %s: %s", spec, strerror(errno));
		return -1;
	}
	srv->listeners[srv->n_listeners++] = l;
	log_info("listening on %s", spec);
	return 0;
}

static int open_listeners(pgw_server *srv)
{
	int i, rc;

	rc = strncmp(srv->cfg->listen, "unix:", 5) == 0 ? listen_unix(srv, srv->cfg->listen + 5)
							: listen_tcp(srv, srv->cfg->listen);
	for (i = 0; rc == 0 && i < srv->n_listeners; i++)
		evconnlistener_set_error_cb(srv->listeners[i], accept_error_cb);
	return rc;
}

static void close_listeners(pgw_server *srv)
{
	int i;

	for (i = 0; i < srv->n_listeners; i++)
		evconnlistener_free(srv->listeners[i]);
	srv->n_listeners = 0;
	if (srv->unix_socket_path) {
		unlink(srv->unix_socket_path);
		free(srv->unix_socket_path);
		srv->unix_socket_path = NULL;
	}
}

/* ---- signals ------------------------------------------------------------------------------------- */

/*
 * The client TLS context of a config: a new SSL_CTX from its cert and key
 * (NULL in *ctx when it has none). Returns -1 (logged) when they cannot be
 * loaded. Why a fresh context on reload: each live connection's SSL object
 * holds a reference to the context and certificate it was made with, so
 * swapping srv->ssl_ctx changes only new handshakes (certificate rotation
 * without dropping sessions).
 */
static int load_tls(pgw_server *srv, const pgw_config *cfg, SSL_CTX **ctx)
{
	char err[512];
	uint8_t hash[sizeof(srv->cert_hash)];
	unsigned hash_len = sizeof(hash);

	*ctx = NULL;
	if (!cfg->tls_cert_file)
		return 0;
	*ctx = tls_server_ctx_new(cfg->tls_cert_file, cfg->tls_key_file, hash, &hash_len, err, sizeof(err));
	if (!*ctx) {
		log_error("%s", err);
		return -1;
	}
	memcpy(srv->cert_hash, hash, sizeof(hash));
	srv->cert_hash_len = hash_len;
	return 0;
}

/* Swap in a new config that loaded without errors. */
/* Take a loaded config; false (and why in errs, for the audit record) if its TLS files cannot be used. */
static bool reload_accept(pgw_server *srv, pgw_config *ncfg, pgw_errors *errs)
{
	size_t nt = ncfg->tokens ? ncfg->tokens->n : 0;

	SSL_CTX *ctx;

	if (load_tls(srv, ncfg, &ctx) != 0) {
		log_error("reload rejected: the TLS certificate or key cannot be used; the previous configuration "
			  "and certificate stay in force");
		errors_add(errs, srv->config_path, 0,
			   "tls_cert_file/tls_key_file: the certificate or key cannot be used");
		config_unref(ncfg);
		health_on_reload(srv, false);
		return false;
	}
	if (srv->ssl_ctx)
		SSL_CTX_free(srv->ssl_ctx); /* live TLS sessions keep their own reference */
	srv->ssl_ctx = ctx;
	if (strcmp(ncfg->listen, srv->cfg->listen) != 0)
		log_warn("listen changed: takes effect only after a restart");
	if ((ncfg->audit_log == NULL) != (srv->cfg->audit_log == NULL) ||
	    (ncfg->audit_log && strcmp(ncfg->audit_log, srv->cfg->audit_log) != 0))
		log_warn("audit_log changed: takes effect only after a restart");
	config_unref(srv->cfg);
	srv->cfg = ncfg;
	pgw_log_json = ncfg->log_format == LOG_FORMAT_JSON;
	catalogs_reload_all(srv);
	pool_config_changed(srv);       /* a target whose conninfo changed drains its pool */
	wall_check_targets_async(ncfg); /* logs; sessions check on their own connection too */
	health_on_reload(srv, true);
	log_info("reload done: %zu %s, %zu %s, %zu %s, %zu token %s", ncfg->n_targets,
		 PLURAL(ncfg->n_targets, "target", "targets"), ncfg->n_windows,
		 PLURAL(ncfg->n_windows, "window", "windows"), ncfg->n_rules, PLURAL(ncfg->n_rules, "rule", "rules"),
		 nt, PLURAL(nt, "record", "records"));
	return true;
}

/* SIGHUP: all-or-nothing reload of config and tokens, and reopen the audit log (rotation). */
static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
	pgw_server *srv = arg;
	pgw_errors errs = { 0 };
	pgw_config *ncfg;
	char *err = NULL;
	bool accepted = false;
	size_t i;

	log_info("SIGHUP: reloading %s", srv->config_path);
	ncfg = full_config_load(srv->config_path, &errs);
	if (!ncfg) {
		for (i = 0; i < errs.n; i++)
			log_error("%s", errs.msgs[i]);
		log_error("reload rejected: the previous configuration stays in force");
		health_on_reload(srv, false);
	} else
		accepted = reload_accept(srv, ncfg, &errs);
	if (srv->audit) {
		if (audit_reopen(srv->audit, &err) != 0) {
			log_error("audit log reopen failed: %s", err ? err : "?");
			free(err);
		}
	}
	audit_events_reload(srv, accepted, &errs);
	errors_free(&errs);
}

static void shutdown_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	pgw_server *srv = arg;
	session *s, *next;

	log_info("shutdown grace period over: closing %s sessions", TAILQ_EMPTY(&srv->sessions) ? "no" : "remaining");
	for (s = TAILQ_FIRST(&srv->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		client_fail(s, "57P01", "terminating connection due to administrator command", NULL);
	}
	event_base_loopexit(srv->base, NULL);
}

void server_close_if_idle(session *s)
{
	if (!s->srv->shutting_down || s->closing || s->client.phase == CLIENT_CLOSING)
		return;
	/* Not yet logged in, or between transactions with nothing in flight: nothing to finish. */
	if (s->client.phase != CLIENT_READY || (s->up.txn_status == 'I' && s->tl.count == 0 && !s->awaiting_flush))
		client_fail(s, "57P01", "terminating connection due to administrator command", NULL);
}

/*
 * SIGTERM: stop accepting; idle sessions end now, busy ones when their
 * transaction ends, all after 30 s at most. SIGINT: stop now.
 */
static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	pgw_server *srv = arg;
	struct timeval tv = { sig == SIGTERM ? SHUTDOWN_GRACE_SECONDS : 0, 0 };
	session *s, *next;

	if (srv->shutting_down && sig == SIGTERM)
		return;
	log_info("%s: shutting down%s", sig == SIGTERM ? "SIGTERM" : "SIGINT",
		 sig == SIGTERM ? " after sessions finish (30 s at most)" : " now");
	srv->shutting_down = true;
	close_listeners(srv);
	if (TAILQ_EMPTY(&srv->sessions)) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	if (sig == SIGTERM)
		for (s = TAILQ_FIRST(&srv->sessions); s; s = next) {
			next = TAILQ_NEXT(s, link);
			server_close_if_idle(s);
		}
	evtimer_del(srv->shutdown_timer);
	evtimer_add(srv->shutdown_timer, &tv);
}

/* ---- life cycle ----------------------------------------------------------------------------------- */

static int setup_tls(pgw_server *srv)
{
	return load_tls(srv, srv->cfg, &srv->ssl_ctx);
}

static int setup_events(pgw_server *srv)
{
	srv->flush_ev = event_new(srv->base, -1, 0, flush_cb, srv);
	srv->lazy_flush_ev = evtimer_new(srv->base, flush_cb, srv);
	srv->reap_ev = event_new(srv->base, -1, 0, reap_cb, srv);
	srv->shutdown_timer = evtimer_new(srv->base, shutdown_timer_cb, srv);
	srv->sig_hup = evsignal_new(srv->base, SIGHUP, reload_cb, srv);
	srv->sig_term = evsignal_new(srv->base, SIGTERM, stop_cb, srv);
	srv->sig_int = evsignal_new(srv->base, SIGINT, stop_cb, srv);
	if (!srv->flush_ev || !srv->lazy_flush_ev || !srv->reap_ev || !srv->shutdown_timer || !srv->sig_hup ||
	    !srv->sig_term || !srv->sig_int)
		return -1;
	event_add(srv->sig_hup, NULL);
	event_add(srv->sig_term, NULL);
	event_add(srv->sig_int, NULL);
	return pool_init(srv);
}

/*
 * Before accepting clients, give each target's first catalog load a few
 * seconds to land: a call of a user function is denied while its target has
 * no catalog, and clients connecting in the first moments should not see
 * that. A target that cannot be reached does not hold up the start.
 */
#define CATALOG_STARTUP_WAIT_SECONDS 10

static void wake_noop_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void wait_for_catalogs(pgw_server *srv)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (!catalogs_all_settled(srv)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= CATALOG_STARTUP_WAIT_SECONDS) {
			log_warn("starting before every function catalog is loaded: calls of user functions are "
				 "denied on those targets until theirs is");
			return;
		}
		/* wake at least once a second to look at the clock */
		event_base_once(srv->base, -1, EV_TIMEOUT, wake_noop_cb, NULL, &(struct timeval){ 1, 0 });
		event_base_loop(srv->base, EVLOOP_ONCE);
	}
}

int server_init(pgw_server *srv, pgw_config *cfg, const char *config_path)
{
	char *err = NULL;

	memset(srv, 0, sizeof(*srv));
	TAILQ_INIT(&srv->sessions);
	TAILQ_INIT(&srv->flush_list);
	TAILQ_INIT(&srv->reap_list);
	srv->cfg = cfg;
	srv->config_path = strdup(config_path);
	if (!throttle_init(&srv->throttle)) {
		log_error("no random bytes for the login throttle's hash seed");
		return -1;
	}
	/* Session ids stay unique across restarts of one audit log: start from the clock (2^20 a second). */
	srv->next_session_id = (uint64_t)time(NULL) << 20;
	signal(SIGPIPE, SIG_IGN);
	srv->base = event_base_new();
	if (!srv->base)
		return -1;
	if (!cfg->audit_log)
		log_warn("audit_log is not set: statements are NOT written to an audit log");
	fd_limit_raise(cfg); /* one descriptor per client and per upstream connection */
	if (cfg->audit_log) {
		srv->audit = audit_open(cfg->audit_log, cfg->audit_fsync, &err);
		if (!srv->audit) {
			log_error("audit log: %s", err ? err : "cannot open");
			free(err);
			return -1;
		}
	}
	srv->classifier = policy_classifier_new(FACTS_CACHE_ENTRIES);
	if (!srv->classifier || setup_tls(srv) != 0 || setup_events(srv) != 0 || limits_init(srv) != 0 ||
	    health_init(srv) != 0)
		return -1;
	if (catalogs_init(srv) != 0)
		return -1;
	wait_for_catalogs(srv);
	wall_check_targets(cfg); /* before listening: a missing wall or a wrong key is logged at start */
	if (open_listeners(srv) != 0)
		return -1;
	if (admin_start(srv) != 0)
		return -1;
	return audit_events_start(srv);
}

int server_run(pgw_server *srv)
{
	log_info("pgwarden %s ready: %zu %s", PGWARDEN_VERSION, srv->cfg->n_targets,
		 PLURAL(srv->cfg->n_targets, "target", "targets"));
	event_base_dispatch(srv->base);
	audit_events_stop(srv);
	log_info("stopped");
	return 0;
}

void server_free(pgw_server *srv)
{
	session *s;

	while ((s = TAILQ_FIRST(&srv->sessions)) != NULL) {
		if (!s->closing) {
			s->closing = true;
			TAILQ_INSERT_TAIL(&srv->reap_list, s, reap_link);
		}
		TAILQ_REMOVE(&srv->reap_list, s, reap_link);
		session_free(s);
	}
	pool_free_all(srv); /* after the sessions: the connections they returned */
	close_listeners(srv);
	admin_stop(srv);
	limits_free(srv);
	console_free(srv);
	health_free(srv);
	wall_check_wait();
	catalogs_free(srv);
	audit_events_free(srv);
	if (srv->audit)
		audit_close(srv->audit);
	if (srv->classifier)
		policy_classifier_free(srv->classifier);
	if (srv->ssl_ctx)
		SSL_CTX_free(srv->ssl_ctx);
#define FREE_EV(e) \
	if (e)     \
	event_free(e)
	FREE_EV(srv->flush_ev);
	FREE_EV(srv->lazy_flush_ev);
	FREE_EV(srv->reap_ev);
	FREE_EV(srv->shutdown_timer);
	FREE_EV(srv->sig_hup);
	FREE_EV(srv->sig_term);
	FREE_EV(srv->sig_int);
#undef FREE_EV
	if (srv->base)
		event_base_free(srv->base);
	metrics_free(&srv->metrics);
	throttle_free(&srv->throttle);
	config_unref(srv->cfg);
	free(srv->config_path);
}
