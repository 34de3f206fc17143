/*
 * admin.c - admin HTTP with libevent's evhttp. Never shows tokens or
 * statement text: only counters, health and window schedules.
 */
#include "proxy/admin.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "audit/audit.h"
#include "conf/core/json_writer.h"
#include "conf/windows.h"
#include "proxy/catalogs.h"
#include "proxy/pool.h"
#include "proxy/console.h"
#include "conf/core/log.h"
#include "proxy/server.h"

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype, struct evbuffer *b)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evhttp_send_reply(req, code, reason, b);
}

/* Whether the request's query string holds key=value (e.g. format=json). */
static bool query_has(struct evhttp_request *req, const char *key, const char *value)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq kv;
	const char *v;
	bool yes;

	if (!q || evhttp_parse_query_str(q, &kv) != 0)
		return false;
	v = evhttp_find_header(&kv, key);
	yes = v && strcmp(v, value) == 0;
	evhttp_clear_headers(&kv);
	return yes;
}

/*
 * 200 "ok" only while pgwarden can serve: not stopping, the audit log
 * writable, and at least one target reachable (or not yet probed). An
 * unreachable target is listed after "ok" (degraded); ?format=json gives
 * every target's state.
 */
static void healthz_cb(struct evhttp_request *req, void *arg)
{
	pgw_server *srv = arg;
	struct evbuffer *b = evbuffer_new();
	const char *why = NULL;
	bool json = query_has(req, "format", "json");

	if (!b)
		return;
	if (srv->shutting_down)
		why = "shutting down";
	else if (srv->audit && !audit_healthy(srv->audit))
		why = "audit log unavailable"; /* statements are refused while the audit log cannot be written */
	else if (!health_can_serve(srv))
		why = "no target reachable";
	if (json)
		health_render_json(srv, b);
	else {
		evbuffer_add_printf(b, "%s\n", why ? why : "ok");
		if (why || srv->health.n_targets != health_reachable_count(srv))
			health_render_text(srv, b);
	}
	if (why)
		reply(req, 503, "Service Unavailable", json ? "application/json" : "text/plain", b);
	else
		reply(req, 200, "OK", json ? "application/json" : "text/plain", b);
	evbuffer_free(b);
}

/* Gauges computed at scrape time: sessions per target and window state. */
static void render_live_gauges(pgw_server *srv, struct evbuffer *b)
{
	const pgw_config *c = srv->cfg;
	time_t now = time(NULL);
	size_t i;

	evbuffer_add_printf(b, "# TYPE pgwarden_target_sessions gauge\n");
	for (i = 0; i < c->n_targets; i++) {
		const session *s;
		unsigned n = 0;

		TAILQ_FOREACH(s, &srv->sessions, link)
		if (s->target && strcmp(s->target->name, c->targets[i].name) == 0 && !s->closing)
			n++;
		evbuffer_add_printf(b, "pgwarden_target_sessions{target=\"%s\"} %u\n", c->targets[i].name, n);
	}
	evbuffer_add_printf(b, "# TYPE pgwarden_window_open gauge\n");
	for (i = 0; i < c->n_windows; i++) {
		bool open;
		time_t next_open, next_close;

		window_state(&c->windows[i], now, &open, &next_open, &next_close);
		evbuffer_add_printf(b, "pgwarden_window_open{window=\"%s\",target=\"%s\"} %d\n", c->windows[i].name,
				    c->windows[i].target, open ? 1 : 0);
	}
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
	pgw_server *srv = arg;
	struct evbuffer *b = evbuffer_new();

	if (!b)
		return;
	metrics_render(&srv->metrics, srv->audit ? audit_write_errors(srv->audit) : 0, b);
	render_live_gauges(srv, b);
	catalogs_render_metrics(srv, b);
	pool_metrics_render(srv, b);
	limits_render_metrics(srv, b);
	health_render_metrics(srv, b);
	evbuffer_add_printf(b, "# TYPE pgwarden_auth_delayed_total counter\npgwarden_auth_delayed_total %llu\n",
			    (unsigned long long)srv->throttle.delayed);
	reply(req, 200, "OK", "text/plain; version=0.0.4", b);
	evbuffer_free(b);
}

static void put_time(jbuf *j, time_t t)
{
	char buf[32];
	struct tm tm;

	if (!t) {
		jbuf_put_lit(j, "null");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_put_cstr(j, buf);
}

static void windows_cb(struct evhttp_request *req, void *arg)
{
	pgw_server *srv = arg;
	const pgw_config *c = srv->cfg;
	struct evbuffer *b = evbuffer_new();
	time_t now = time(NULL);
	jbuf j;
	size_t i;

	if (!b)
		return;
	jbuf_init(&j);
	jbuf_putc(&j, '[');
	for (i = 0; i < c->n_windows; i++) {
		const pgw_window *w = &c->windows[i];
		bool open;
		time_t next_open, next_close;

		window_state(w, now, &open, &next_open, &next_close);
		if (i)
			jbuf_putc(&j, ',');
		jbuf_put_lit(&j, "{\"name\":");
		json_put_cstr(&j, w->name);
		jbuf_put_lit(&j, ",\"target\":");
		json_put_cstr(&j, w->target);
		jbuf_put_lit(&j, ",\"open\":");
		if (open)
			jbuf_put_lit(&j, "true");
		else
			jbuf_put_lit(&j, "false");
		jbuf_put_lit(&j, ",\"next_open\":");
		put_time(&j, next_open);
		jbuf_put_lit(&j, ",\"next_close\":");
		put_time(&j, next_close);
		jbuf_put_lit(&j, ",\"approved_by\":");
		json_put_cstr(&j, w->approved_by);
		jbuf_put_lit(&j, ",\"reason\":");
		json_put_cstr(&j, w->reason);
		jbuf_putc(&j, '}');
	}
	jbuf_put_lit(&j, "]\n");
	if (j.failed) {
		reply(req, 500, "Internal Server Error", "text/plain", b);
	} else {
		evbuffer_add(b, j.data, j.len);
		reply(req, 200, "OK", "application/json", b);
	}
	jbuf_free(&j);
	evbuffer_free(b);
}

int admin_start(pgw_server *srv)
{
	const char *spec = srv->cfg->admin_listen;
	char host[256];
	const char *colon;
	unsigned port;

	if (!spec || !spec[0])
		return 0;
	colon = strrchr(spec, ':');
	if (!colon || (size_t)(colon - spec) >= sizeof(host) || sscanf(colon + 1, "%u", &port) != 1) {
		log_error("admin_listen: cannot parse \"%s\"", spec);
		return -1;
	}
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	if (host[0] == '[') { /* [v6]:port */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	srv->admin = evhttp_new(srv->base);
	if (!srv->admin || evhttp_bind_socket(srv->admin, host, (uint16_t)port) != 0) {
		log_error("admin_listen: cannot bind %s", spec);
		return -1;
	}
	evhttp_set_allowed_methods(srv->admin, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_cb(srv->admin, "/healthz", healthz_cb, srv);
	evhttp_set_cb(srv->admin, "/metrics", metrics_cb, srv);
	evhttp_set_cb(srv->admin, "/windows", windows_cb, srv);
	console_register(srv, srv->admin);
	log_info("admin HTTP on %s", spec);
	return 0;
}

void admin_stop(pgw_server *srv)
{
	if (srv->admin) {
		evhttp_free(srv->admin);
		srv->admin = NULL;
	}
}
