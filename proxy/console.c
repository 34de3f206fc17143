/* console.c - the operator console: sessions, kill, pause/resume, stats, pools (see console.h). */
#include "proxy/console.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "conf/core/arr.h"
#include "conf/core/json_writer.h"
#include "proxy/client.h"
#include "conf/core/log.h"
#include "proxy/relay.h"
#include "proxy/pool.h"
#include "proxy/server.h"

/* ---- per-session bookkeeping ------------------------------------------------------------------- */

void console_on_accept(session *s)
{
	s->console.accepted = time(NULL);
}

void console_on_free(session *s)
{
	free(s->console.last_sql);
	s->console.last_sql = NULL;
}

void console_note_statement(session *s, const char *sql, size_t len)
{
	if (!sql)
		return;
	if (!s->console.last_sql && !(s->console.last_sql = malloc(CONSOLE_SQL_MAX + 1)))
		return;
	if (len > CONSOLE_SQL_MAX)
		len = CONSOLE_SQL_MAX;
	memcpy(s->console.last_sql, sql, len);
	s->console.last_sql[len] = '\0';
}

/* ---- pause / resume ---------------------------------------------------------------------------- */

static long paused_index(const console_state *c, const char *target)
{
	for (size_t i = 0; i < c->n_paused; i++)
		if (strcmp(c->paused[i], target) == 0)
			return (long)i;
	return -1;
}

bool console_should_hold(const session *s)
{
	if (s->console.paused)
		return true;
	if (!s->target || s->srv->console.n_paused == 0 || paused_index(&s->srv->console, s->target->name) < 0)
		return false;
	/* Only between transactions: a transaction under way must be able to finish (or maintenance waits on it). */
	return s->up.txn_status == 'I' && limits_requests_owed(s) == 0;
}

bool console_hold(session *s)
{
	if (!console_should_hold(s))
		return false;
	if (s->console.paused) {
		client_pause(s); /* someone else (backpressure, catalog wait) may have resumed reading */
		return true;
	}
	s->console.paused = true;
	client_pause(s);
	session_log(LOG_LVL_INFO, s, "paused: target %s is paused; the next statement waits for RESUME",
		    s->target->name);
	return true;
}

static int pause_target(pgw_server *srv, const char *target)
{
	console_state *c = &srv->console;

	if (paused_index(c, target) >= 0)
		return 0;
	if (!ARR_EXTEND(c->paused, c->n_paused))
		return -1;
	if (!(c->paused[c->n_paused] = strdup(target)))
		return -1;
	c->n_paused++;
	log_info("admin: target %s paused", target);
	return 0;
}

/* Clear the flag and wake the sessions it held; input they sent meanwhile is read now. */
static void resume_target(pgw_server *srv, const char *target)
{
	console_state *c = &srv->console;
	long i = paused_index(c, target);
	session *s, *next;

	if (i < 0)
		return;
	free(c->paused[i]);
	c->paused[i] = c->paused[--c->n_paused];
	log_info("admin: target %s resumed", target);
	for (s = TAILQ_FIRST(&srv->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		if (!s->console.paused || s->closing || !s->target || strcmp(s->target->name, target) != 0)
			continue;
		s->console.paused = false;
		relay_client_wake(s); /* resumes reading unless the relay has its own reason to wait */
		client_flush(s);
	}
}

void console_free(pgw_server *srv)
{
	for (size_t i = 0; i < srv->console.n_paused; i++)
		free(srv->console.paused[i]);
	free(srv->console.paused);
	srv->console.paused = NULL;
	srv->console.n_paused = 0;
}

/* ---- HTTP plumbing ----------------------------------------------------------------------------- */

static void reply_json(struct evhttp_request *req, int code, const char *reason, jbuf *j)
{
	struct evbuffer *b = evbuffer_new();

	if (!b)
		return;
	if (j->failed) {
		code = 500;
		reason = "Internal Server Error";
		evbuffer_add_printf(b, "{\"error\":\"out of memory\"}\n");
	} else
		evbuffer_add(b, j->data, j->len);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static void reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	jbuf j;

	jbuf_init(&j);
	jbuf_put_lit(&j, "{\"error\":");
	json_put_cstr(&j, msg);
	jbuf_put_lit(&j, "}\n");
	reply_json(req, code, reason, &j);
	jbuf_free(&j);
}

static bool peer_is_loopback(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port;
	struct in6_addr a6;

	if (!conn)
		return false;
	evhttp_connection_get_peer(conn, &addr, &port);
	if (!addr)
		return false;
	if (strncmp(addr, "127.", 4) == 0)
		return true;
	return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Constant-time check of "Authorization: Bearer <admin_token>" (hashed first: lengths may differ). */
static bool bearer_ok(struct evhttp_request *req, const char *token)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	uint8_t want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];

	if (!h || strncmp(h, "Bearer ", 7) != 0)
		return false;
	SHA256((const unsigned char *)token, strlen(token), want);
	SHA256((const unsigned char *)h + 7, strlen(h + 7), got);
	return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}

/*
 * Whether the request may go on (else it is answered). Mutating requests
 * need admin_token; reading sessions needs it when set, else a loopback peer.
 */
static bool authorized(pgw_server *srv, struct evhttp_request *req, bool mutating)
{
	const char *token = srv->cfg->admin_token;

	if (token && token[0]) {
		if (bearer_ok(req, token))
			return true;
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
		reply_error(req, 401, "Unauthorized", "admin_token required: Authorization: Bearer <admin_token>");
		return false;
	}
	if (!mutating && peer_is_loopback(req))
		return true;
	reply_error(req, 403, "Forbidden",
		    mutating ? "admin actions are off: set admin_token in the config"
			     : "sessions are shown to loopback clients only unless admin_token is set");
	return false;
}

/* ---- GET /sessions ----------------------------------------------------------------------------- */

static const char *session_state(const session *s)
{
	switch (s->client.phase) {
	case CLIENT_STARTUP:
		return "startup";
	case CLIENT_AUTH:
		return "auth";
	case CLIENT_WAIT_UPSTREAM:
		return "connecting";
	case CLIENT_CLOSING:
		return "closing";
	case CLIENT_READY:
		break;
	}
	if (s->console.paused)
		return "paused";
	if (limits_requests_owed(s) > 0)
		return "active";
	return s->up.txn_status == 'T'   ? "idle in transaction"
	       : s->up.txn_status == 'E' ? "idle in transaction (aborted)"
					 : "idle";
}

static void put_time(jbuf *j, time_t t)
{
	char buf[32];
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_put_cstr(j, buf);
}

/* Wall-clock time of the current state: the limits sweep's monotonic 'since' for logged-in sessions. */
static time_t state_since(const session *s)
{
	struct timespec now;

	if (s->client.phase != CLIENT_READY || s->lim.since.tv_sec == 0)
		return s->console.accepted;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return time(NULL) - (now.tv_sec - s->lim.since.tv_sec);
}

static void put_str_field(jbuf *j, const char *name, const char *v)
{
	jbuf_putc(j, ',');
	json_put_cstr(j, name);
	jbuf_putc(j, ':');
	if (v)
		json_put_cstr(j, v);
	else
		jbuf_put_lit(j, "null");
}

static void put_session(jbuf *j, const session *s)
{
	jbuf_put_lit(j, "{\"id\":");
	jbuf_put_u64(j, s->id);
	put_str_field(j, "actor", s->who ? s->who->actor : s->client.actor);
	put_str_field(j, "role", s->who ? s->who->role : NULL);
	put_str_field(j, "tenant", s->who ? s->who->tenant : NULL);
	put_str_field(j, "target", s->target ? s->target->name : NULL);
	put_str_field(j, "client", s->client.peer);
	put_str_field(j, "state", session_state(s));
	jbuf_put_lit(j, ",\"connected\":");
	put_time(j, s->console.accepted);
	jbuf_put_lit(j, ",\"since\":");
	put_time(j, state_since(s));
	put_str_field(j, "statement", s->console.last_sql);
	jbuf_putc(j, '}');
}

static void sessions_cb(struct evhttp_request *req, void *arg)
{
	pgw_server *srv = arg;
	const session *s;
	bool first = true;
	jbuf j;

	if (!authorized(srv, req, false))
		return;
	jbuf_init(&j);
	jbuf_putc(&j, '[');
	TAILQ_FOREACH(s, &srv->sessions, link)
	{
		if (s->closing)
			continue;
		if (!first)
			jbuf_putc(&j, ',');
		first = false;
		put_session(&j, s);
	}
	jbuf_put_lit(&j, "]\n");
	reply_json(req, 200, "OK", &j);
	jbuf_free(&j);
}

/* ---- POST /sessions/ID/kill, /targets/NAME/pause|resume ---------------------------------------- */

static void kill_session(pgw_server *srv, struct evhttp_request *req, const char *id_text)
{
	char *end;
	unsigned long long id = strtoull(id_text, &end, 10);
	session *s;
	jbuf j;

	TAILQ_FOREACH(s, &srv->sessions, link)
	if (s->id == id && *end == '\0' && !s->closing)
		break;
	if (!s) {
		reply_error(req, 404, "Not Found", "no such session");
		return;
	}
	session_log(LOG_LVL_INFO, s, "killed from the admin console");
	client_fail(s, "57P01", "terminating connection due to administrator command",
		    "pgwarden: the session was ended from the admin console.");
	jbuf_init(&j);
	jbuf_put_lit(&j, "{\"killed\":");
	jbuf_put_u64(&j, id);
	jbuf_put_lit(&j, "}\n");
	reply_json(req, 200, "OK", &j);
	jbuf_free(&j);
}

static void pause_or_resume(pgw_server *srv, struct evhttp_request *req, const char *target, bool pause)
{
	jbuf j;

	if (!config_find_target(srv->cfg, target)) {
		reply_error(req, 404, "Not Found", "no such target");
		return;
	}
	if (pause && pause_target(srv, target) != 0) {
		reply_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	if (!pause)
		resume_target(srv, target);
	jbuf_init(&j);
	jbuf_put_lit(&j, "{\"target\":");
	json_put_cstr(&j, target);
	if (pause)
		jbuf_put_lit(&j, ",\"paused\":true}\n");
	else
		jbuf_put_lit(&j, ",\"paused\":false}\n");
	reply_json(req, 200, "OK", &j);
	jbuf_free(&j);
}

/* "/a/B/c" -> B (into buf) when the path is prefix + B + suffix exactly. */
static bool path_arg(const char *path, const char *prefix, const char *suffix, char *buf, size_t size)
{
	size_t pl = strlen(prefix), sl = strlen(suffix), n;

	if (strncmp(path, prefix, pl) != 0)
		return false;
	n = strlen(path + pl);
	if (n <= sl || strcmp(path + pl + n - sl, suffix) != 0 || n - sl >= size)
		return false;
	memcpy(buf, path + pl, n - sl);
	buf[n - sl] = '\0';
	return strchr(buf, '/') == NULL;
}

/* Everything not registered by path: the POST actions, else 404. */
static void actions_cb(struct evhttp_request *req, void *arg)
{
	pgw_server *srv = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	char name[256];
	bool pause;

	if (!path || evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		reply_error(req, 404, "Not Found", "no such endpoint");
		return;
	}
	if (!authorized(srv, req, true))
		return;
	if (path_arg(path, "/sessions/", "/kill", name, sizeof(name)))
		kill_session(srv, req, name);
	else if ((pause = path_arg(path, "/targets/", "/pause", name, sizeof(name))) ||
		 path_arg(path, "/targets/", "/resume", name, sizeof(name)))
		pause_or_resume(srv, req, name, pause);
	else
		reply_error(req, 404, "Not Found", "no such endpoint");
}

/* ---- GET /stats, /pools ------------------------------------------------------------------------ */

static void stats_target(jbuf *j, pgw_server *srv, const char *target)
{
	uint64_t allow = 0, deny = 0;
	unsigned sessions = 0, busy = 0;
	const session *s;

	for (size_t i = 0; i < srv->metrics.n_series; i++) {
		const metrics_series *m = &srv->metrics.series[i];

		if (strcmp(m->target, target) == 0)
			*(strcmp(m->decision, "deny") == 0 ? &deny : &allow) += m->count;
	}
	TAILQ_FOREACH(s, &srv->sessions, link)
	{
		if (s->closing || !s->target || strcmp(s->target->name, target) != 0)
			continue;
		sessions++;
		/* busy: inside a transaction or running a statement (what a PAUSE waits for) */
		busy += s->client.phase == CLIENT_READY && (s->up.txn_status != 'I' || limits_requests_owed(s) > 0);
	}
	jbuf_put_lit(j, "{\"target\":");
	json_put_cstr(j, target);
	jbuf_put_lit(j, ",\"sessions\":");
	jbuf_put_u64(j, sessions);
	jbuf_put_lit(j, ",\"busy\":");
	jbuf_put_u64(j, busy);
	jbuf_put_lit(j, ",\"statements_allowed\":");
	jbuf_put_u64(j, allow);
	jbuf_put_lit(j, ",\"statements_denied\":");
	jbuf_put_u64(j, deny);
	if (paused_index(&srv->console, target) >= 0)
		jbuf_put_lit(j, ",\"paused\":true}");
	else
		jbuf_put_lit(j, ",\"paused\":false}");
}

static void stats_cb(struct evhttp_request *req, void *arg)
{
	pgw_server *srv = arg;
	const pgw_metrics *m = &srv->metrics;
	jbuf j;

	jbuf_init(&j);
	jbuf_put_lit(&j, "{\"client_connections\":");
	jbuf_put_u64(&j, m->client_connections);
	jbuf_put_lit(&j, ",\"auth_failures\":");
	jbuf_put_u64(&j, m->auth_failures_total);
	jbuf_put_lit(&j, ",\"upstream_connects\":");
	jbuf_put_u64(&j, m->upstream_connects);
	jbuf_put_lit(&j, ",\"bytes_from_clients\":");
	jbuf_put_u64(&j, m->bytes_from_clients);
	jbuf_put_lit(&j, ",\"bytes_to_clients\":");
	jbuf_put_u64(&j, m->bytes_to_clients);
	jbuf_put_lit(&j, ",\"targets\":[");
	for (size_t i = 0; i < srv->cfg->n_targets; i++) {
		if (i)
			jbuf_putc(&j, ',');
		stats_target(&j, srv, srv->cfg->targets[i].name);
	}
	jbuf_put_lit(&j, "]}\n");
	reply_json(req, 200, "OK", &j);
	jbuf_free(&j);
}

/* Each target's upstream pool (pool.c, CONTRACT §7), like PgBouncer's SHOW POOLS. */
static void pools_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	jbuf j;

	jbuf_init(&j);
	if (b) {
		pool_render_json(arg, b);
		jbuf_put(&j, evbuffer_pullup(b, -1), evbuffer_get_length(b));
		evbuffer_free(b);
	} else
		j.failed = true;
	reply_json(req, 200, "OK", &j);
	jbuf_free(&j);
}

void console_register(pgw_server *srv, struct evhttp *http)
{
	evhttp_set_cb(http, "/sessions", sessions_cb, srv);
	evhttp_set_cb(http, "/stats", stats_cb, srv);
	evhttp_set_cb(http, "/pools", pools_cb, srv);
	evhttp_set_gencb(http, actions_cb, srv);
}
