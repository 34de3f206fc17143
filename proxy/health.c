/* health.c - target reachability probes, reload results and build info (see health.h). */
#include "proxy/health.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <libpq-fe.h>

#include "conf/core/json_writer.h"
#include "conf/core/log.h"
#include "proxy/server.h"

/* What pgwarden knows about one target's upstream. */
typedef struct target_health {
	struct pgw_server *srv;
	char *name;                /* target name (key; carried over a reload by name) */
	char *conninfo;            /* copy of the target's conninfo, for the probe */
	target_reach reach;        /* result of the last connect, probe or session */
	time_t checked;            /* wall-clock time of that result (0: none) */
	char error[256];           /* the last failure, folded to one line ("" when none) */
	uint64_t connect_failures; /* session upstream connects that failed */
	PGconn *probe;             /* probe in flight, NULL between rounds */
	struct event *probe_ev;    /* the probe's socket readiness */
	struct event *timeout_ev;  /* gives up on a probe after HEALTH_PROBE_TIMEOUT_SECONDS */
} target_health;

static void probe_cb(evutil_socket_t fd, short what, void *arg);

static void set_result(target_health *th, bool ok, const char *err)
{
	if (!ok && th->reach != TARGET_UNREACHABLE)
		log_warn("target %s is unreachable: %s", th->name, err ? err : "?");
	else if (ok && th->reach == TARGET_UNREACHABLE)
		log_info("target %s is reachable again", th->name);
	th->reach = ok ? TARGET_REACHABLE : TARGET_UNREACHABLE;
	th->checked = time(NULL);
	if (ok)
		th->error[0] = '\0';
	else
		log_one_line(err ? err : "?", th->error, sizeof(th->error));
}

static void probe_stop(target_health *th)
{
	if (th->probe_ev)
		event_free(th->probe_ev);
	th->probe_ev = NULL;
	if (th->timeout_ev)
		evtimer_del(th->timeout_ev);
	if (th->probe)
		PQfinish(th->probe);
	th->probe = NULL;
}

static void probe_end(target_health *th, bool ok, const char *err)
{
	set_result(th, ok, err);
	probe_stop(th);
}

/* Wait for the probe's socket; it can change while connecting (host lists, SSL retry). */
static bool probe_wait(target_health *th, short what)
{
	if (th->probe_ev)
		event_free(th->probe_ev);
	th->probe_ev = event_new(th->srv->base, PQsocket(th->probe), what, probe_cb, th);
	return th->probe_ev && event_add(th->probe_ev, NULL) == 0;
}

static void probe_cb(evutil_socket_t fd, short what, void *arg)
{
	target_health *th = arg;

	switch (PQconnectPoll(th->probe)) {
	case PGRES_POLLING_READING:
		if (!probe_wait(th, EV_READ))
			probe_end(th, false, "out of memory");
		break;
	case PGRES_POLLING_WRITING:
		if (!probe_wait(th, EV_WRITE))
			probe_end(th, false, "out of memory");
		break;
	case PGRES_POLLING_OK:
		probe_end(th, true, NULL);
		break;
	default:
		probe_end(th, false, PQerrorMessage(th->probe));
		break;
	}
}

static void probe_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	probe_end(arg, false, "no answer within the probe timeout");
}

/* Connect with the target's conninfo, as a session would (authentication included), without blocking. */
static void probe_start(target_health *th)
{
	const char *kw[] = { "dbname", "fallback_application_name", NULL };
	const char *val[] = { th->conninfo, "pgwarden-health", NULL };
	struct timeval tv = { HEALTH_PROBE_TIMEOUT_SECONDS, 0 };

	if (th->probe)
		return;
	th->probe = PQconnectStartParams(kw, val, 1);
	if (!th->probe || PQstatus(th->probe) == CONNECTION_BAD) {
		probe_end(th, false, th->probe ? PQerrorMessage(th->probe) : "out of memory");
		return;
	}
	PQsetnonblocking(th->probe, 1);
	if (!probe_wait(th, EV_WRITE) || evtimer_add(th->timeout_ev, &tv) != 0)
		probe_end(th, false, "out of memory");
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	pgw_server *srv = arg;

	if (srv->shutting_down)
		return;
	for (size_t i = 0; i < srv->health.n_targets; i++)
		probe_start(&srv->health.targets[i]);
}

static void free_targets(target_health *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		probe_stop(&v[i]);
		if (v[i].timeout_ev)
			event_free(v[i].timeout_ev);
		free(v[i].name);
		free(v[i].conninfo);
	}
	free(v);
}

/* A target list for the current config, keeping what is known about targets of the same name. */
static int build_targets(pgw_server *srv)
{
	const pgw_config *c = srv->cfg;
	health_state *h = &srv->health;
	target_health *v = calloc(c->n_targets ? c->n_targets : 1, sizeof(*v));

	if (!v)
		return -1;
	for (size_t i = 0; i < c->n_targets; i++) {
		v[i].srv = srv;
		v[i].name = strdup(c->targets[i].name);
		v[i].conninfo = strdup(c->targets[i].conninfo);
		v[i].timeout_ev = evtimer_new(srv->base, probe_timeout_cb, &v[i]);
		if (!v[i].name || !v[i].conninfo || !v[i].timeout_ev) {
			free_targets(v, i + 1);
			return -1;
		}
		for (size_t j = 0; j < h->n_targets; j++)
			if (strcmp(h->targets[j].name, v[i].name) == 0 &&
			    strcmp(h->targets[j].conninfo, v[i].conninfo) == 0) {
				v[i].reach = h->targets[j].reach;
				v[i].checked = h->targets[j].checked;
				memcpy(v[i].error, h->targets[j].error, sizeof(v[i].error));
				v[i].connect_failures = h->targets[j].connect_failures;
			}
	}
	free_targets(h->targets, h->n_targets);
	h->targets = v;
	h->n_targets = c->n_targets;
	return 0;
}

int health_init(pgw_server *srv)
{
	struct timeval tv = { HEALTH_PROBE_SECONDS, 0 };

	if (build_targets(srv) != 0)
		return -1;
	srv->health.tick_ev = event_new(srv->base, -1, EV_PERSIST, tick_cb, srv);
	if (!srv->health.tick_ev || event_add(srv->health.tick_ev, &tv) != 0)
		return -1;
	tick_cb(-1, 0, srv);
	return 0;
}

void health_on_reload(pgw_server *srv, bool accepted)
{
	health_state *h = &srv->health;

	h->last_reload = time(NULL);
	h->last_reload_ok = accepted;
	if (accepted)
		h->reloads_ok++;
	else
		h->reloads_failed++;
	if (accepted && build_targets(srv) == 0)
		tick_cb(-1, 0, srv);
}

void health_free(pgw_server *srv)
{
	free_targets(srv->health.targets, srv->health.n_targets);
	srv->health.targets = NULL;
	srv->health.n_targets = 0;
	if (srv->health.tick_ev)
		event_free(srv->health.tick_ev);
	srv->health.tick_ev = NULL;
}

void health_note_connect(pgw_server *srv, const char *target, bool ok, const char *err)
{
	for (size_t i = 0; i < srv->health.n_targets; i++) {
		target_health *th = &srv->health.targets[i];

		if (strcmp(th->name, target) != 0)
			continue;
		if (!ok)
			th->connect_failures++;
		set_result(th, ok, err);
	}
}

size_t health_reachable_count(const pgw_server *srv)
{
	size_t n = 0;

	for (size_t i = 0; i < srv->health.n_targets; i++)
		n += srv->health.targets[i].reach != TARGET_UNREACHABLE;
	return n;
}

bool health_can_serve(const pgw_server *srv)
{
	return health_reachable_count(srv) > 0;
}

static const char *reach_name(target_reach r)
{
	return r == TARGET_REACHABLE ? "reachable" : r == TARGET_UNREACHABLE ? "unreachable" : "unknown";
}

void health_render_text(const pgw_server *srv, struct evbuffer *out)
{
	for (size_t i = 0; i < srv->health.n_targets; i++) {
		const target_health *th = &srv->health.targets[i];

		evbuffer_add_printf(out, "target %s %s%s%s\n", th->name, reach_name(th->reach),
				    th->error[0] ? ": " : "", th->error);
	}
}

void health_render_json(const pgw_server *srv, struct evbuffer *out)
{
	jbuf j;

	jbuf_init(&j);
	/* jbuf_put_lit takes sizeof: string literals only, no conditional expressions. */
	if (health_can_serve(srv) && !srv->shutting_down)
		jbuf_put_lit(&j, "{\"ok\":true,\"targets\":[");
	else
		jbuf_put_lit(&j, "{\"ok\":false,\"targets\":[");
	for (size_t i = 0; i < srv->health.n_targets; i++) {
		const target_health *th = &srv->health.targets[i];

		if (i)
			jbuf_putc(&j, ',');
		jbuf_put_lit(&j, "{\"target\":");
		json_put_cstr(&j, th->name);
		jbuf_put_lit(&j, ",\"state\":");
		json_put_cstr(&j, reach_name(th->reach));
		jbuf_put_lit(&j, ",\"checked\":");
		jbuf_put_i64(&j, (int64_t)th->checked);
		jbuf_put_lit(&j, ",\"error\":");
		json_put_cstr(&j, th->error);
		jbuf_putc(&j, '}');
	}
	jbuf_put_lit(&j, "]}\n");
	if (!j.failed)
		evbuffer_add(out, j.data, j.len);
	jbuf_free(&j);
}

void health_render_metrics(const pgw_server *srv, struct evbuffer *out)
{
	const health_state *h = &srv->health;

	evbuffer_add_printf(out, "# TYPE pgwarden_build_info gauge\npgwarden_build_info{version=\"%s\"} 1\n",
			    PGWARDEN_VERSION);
	evbuffer_add_printf(out, "# HELP pgwarden_target_up 1 when the last upstream connect to the target "
				 "succeeded (probe or session), 0 when it failed.\n# TYPE pgwarden_target_up gauge\n");
	for (size_t i = 0; i < h->n_targets; i++)
		evbuffer_add_printf(out, "pgwarden_target_up{target=\"%s\"} %d\n", h->targets[i].name,
				    h->targets[i].reach == TARGET_UNREACHABLE ? 0 : 1);
	evbuffer_add_printf(out, "# TYPE pgwarden_upstream_connect_failures_total counter\n");
	for (size_t i = 0; i < h->n_targets; i++)
		evbuffer_add_printf(out, "pgwarden_upstream_connect_failures_total{target=\"%s\"} %llu\n",
				    h->targets[i].name, (unsigned long long)h->targets[i].connect_failures);
	evbuffer_add_printf(out,
			    "# TYPE pgwarden_reloads_total counter\npgwarden_reloads_total{result=\"accepted\"} "
			    "%llu\npgwarden_reloads_total{result=\"rejected\"} %llu\n",
			    (unsigned long long)h->reloads_ok, (unsigned long long)h->reloads_failed);
	evbuffer_add_printf(out,
			    "# TYPE pgwarden_last_reload_timestamp_seconds gauge\n"
			    "pgwarden_last_reload_timestamp_seconds %lld\n",
			    (long long)h->last_reload);
	evbuffer_add_printf(out, "# TYPE pgwarden_last_reload_success gauge\npgwarden_last_reload_success %d\n",
			    h->last_reload == 0 || h->last_reload_ok ? 1 : 0);
}
