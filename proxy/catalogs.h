/*
 * catalogs.h - each target's function catalog (policy/catalog.h), loaded
 * on a thread over its own libpq connection, swapped in on the loop.
 *
 * A catalog is "stale" from the moment a session sends a statement that can
 * change function definitions until a load that started after it lands.
 * While a target's catalog is missing or stale, calls to user functions are
 * denied (nothing is judged on an old view), and the session that ran the
 * DDL waits for the new catalog before it sends anything more.
 */
#ifndef PGW_CATALOGS_H
#define PGW_CATALOGS_H

#include <stdbool.h>
#include <stdint.h>

struct pgw_server;
struct session;
struct fn_catalog;

/* Set up the loader (event + lock) and start loading every target of srv->cfg. */
int catalogs_init(struct pgw_server *srv);
void catalogs_free(struct pgw_server *srv);

/* Whether every target's first load has landed or failed (startup waits for this, briefly). */
bool catalogs_all_settled(struct pgw_server *srv);

/* Config reloaded: every catalog depends on it (trusted_functions, pinned names): reload all. */
void catalogs_reload_all(struct pgw_server *srv);

/*
 * The target's newest catalog (NULL before the first load) and whether it is
 * stale: missing, or older than function DDL a session sent since.
 */
const struct fn_catalog *catalogs_get(struct pgw_server *srv, const char *target, bool *stale);

/* Bump the target's stale mark (a DDL transaction ended: loads started before it do not cover it). */
void catalogs_mark_stale(struct pgw_server *srv, const char *target);

/*
 * A session is sending DDL f (allowed, verdict refresh_catalog): the names it
 * mentions are stale from now on (names_known: verdict refresh_names_known;
 * otherwise everything is), and are marked again when its transaction ends.
 */
struct policy_facts;
void catalogs_mark_stale_for(struct session *s, const struct policy_facts *f, bool names_known);

/* The target's stale names, for policy_subject.stale_names (NULL when none). */
struct catalog_stale;
const struct catalog_stale *catalogs_stale_names(struct pgw_server *srv, const char *target);

/*
 * The session's DDL is over (its transaction ended): load the target again
 * and pause the session's client until that load lands (or fails).
 */
void catalogs_refresh_and_wait(struct session *s);

/* Counts per target for /metrics: appended as Prometheus text. */
struct evbuffer;
void catalogs_render_metrics(struct pgw_server *srv, struct evbuffer *out);

#endif
