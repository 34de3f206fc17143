/*
 * health.h - each target's upstream reachability, behind /healthz and
 * pgwarden_target_up: a probe connects to every target with its conninfo
 * (without blocking the loop) every HEALTH_PROBE_SECONDS, and every session's
 * upstream connect reports its outcome too. Also the reload results and the
 * upstream connect failure counts for /metrics.
 */
#ifndef PGW_HEALTH_H
#define PGW_HEALTH_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct pgw_server;
struct evbuffer;
struct target_health;

/* How often each target is probed. */
#define HEALTH_PROBE_SECONDS 10
/* A probe that has not connected by then counts as a failure. */
#define HEALTH_PROBE_TIMEOUT_SECONDS 5

typedef enum {
	TARGET_UNKNOWN,     /* not probed yet: counted as able to serve */
	TARGET_REACHABLE,   /* the last connect (probe or session) succeeded */
	TARGET_UNREACHABLE, /* the last connect failed */
} target_reach;

/* Server-wide health state. */
typedef struct health_state {
	struct target_health *targets; /* one per target of the current config */
	size_t n_targets;
	struct event *tick_ev;   /* starts a probe round every HEALTH_PROBE_SECONDS */
	time_t last_reload;      /* time of the last SIGHUP reload (0: none yet) */
	bool last_reload_ok;     /* whether it was accepted */
	uint64_t reloads_ok;     /* reloads accepted */
	uint64_t reloads_failed; /* reloads rejected */
} health_state;

/* Start probing the targets of srv->cfg. Returns 0 or -1. */
int health_init(struct pgw_server *srv);
/* The config was swapped (or not): record the result, follow the new target list. */
void health_on_reload(struct pgw_server *srv, bool accepted);
void health_free(struct pgw_server *srv);

/* A session's upstream connect to 'target' ended; err is libpq's message on failure. */
void health_note_connect(struct pgw_server *srv, const char *target, bool ok, const char *err);

/* Whether at least one target can be served (reachable or not yet known). */
bool health_can_serve(const struct pgw_server *srv);
/* How many targets are reachable or not yet known. */
size_t health_reachable_count(const struct pgw_server *srv);
/* One line per target ("prod reachable", "staging unreachable: ..."), for /healthz. */
void health_render_text(const struct pgw_server *srv, struct evbuffer *out);
/* JSON list of {target, reachable, checked, error}, for /healthz?format=json. */
void health_render_json(const struct pgw_server *srv, struct evbuffer *out);
/* pgwarden_target_up, pgwarden_upstream_connect_failures_total, reload and build-info metrics. */
void health_render_metrics(const struct pgw_server *srv, struct evbuffer *out);

#endif
