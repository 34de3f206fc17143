/* wall_check.c - at start and after reload: each walled target's database has its walls and verifies our key. */
#include "proxy/wall_check.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "conf/core/log.h"
#include "proxy/pin.h"
#include "proxy/wall.h"

#define CHECK_CONNECT_TIMEOUT "5" /* seconds a check waits for its connection, unless conninfo says */

/* The identity the check pins: no role (the login role's own 'none'), no tenant. */
static const pgw_token check_who = { .actor = "pgwarden:wall-check", .role = "none", .tenant = NULL };

/* One query's single value (malloc'd), or NULL with the server's message in why. */
static char *one_value(PGconn *pg, const char *sql, char *why, size_t whysz)
{
	PGresult *res = PQexec(pg, sql);
	char *v = NULL;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) >= 1)
		v = strdup(PQgetvalue(res, 0, PQnfields(res) - 1));
	else
		snprintf(why, whysz, "%s", PQresultErrorMessage(res));
	PQclear(res);
	return v;
}

/* Cut libpq's trailing newlines so the message fits one log line. */
static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

/*
 * Pin a signed check identity the way sessions are pinned (the same builder),
 * then ask the database what it thinks of it. Returns NULL when the walls
 * verify the pin, else why not.
 */
static const char *check_pin(const pgw_config *cfg, const pgw_target *t, PGconn *pg, char *why, size_t whysz)
{
	pin_wall w = { t, (uint32_t)PQbackendPID(pg), 0, 0 };
	char *sql = pin_sql_build_single_walled(cfg, &check_who, true, &w), *v;
	const char *verdict = NULL;

	/* Role "none" is what set_config('role', 'none') (RESET ROLE) leaves: the login role itself. */
	if (sql == NULL || (v = one_value(pg, "SELECT pgwarden_wall.version()", why, whysz)) == NULL) {
		free(sql);
		return sql ? "the walls are not installed (run deploy/walls.sql)" : "out of memory";
	}
	free(v);
	v = one_value(pg, sql, why, whysz);
	free(sql);
	if (v == NULL)
		return "pinning the check identity failed";
	free(v);
	v = one_value(pg, WALL_CHECK_SQL, why, whysz);
	if (v == NULL)
		verdict = "pgwarden_wall.pin_status() failed";
	else if (strcmp(v, "no key") == 0)
		verdict = "the database has no wall key (run walls.sql with -v wall_key=...)";
	else if (strcmp(v, "ok") != 0)
		verdict = "the database's wall key is not the one in wall_key_file";
	free(v);
	return verdict;
}

/* A production wall is only as good as its coverage: name the tables without the write guard. */
static void warn_unguarded(const pgw_target *t, PGconn *pg)
{
	char why[512];
	char *v =
		one_value(pg, "SELECT coalesce(string_agg(u::text, ', '), '') FROM pgwarden_wall.unguarded_tables() u",
			  why, sizeof(why));

	if (v != NULL && v[0] != '\0')
		log_warn("target %s: tables without the walls' write guard (re-run deploy/walls.sql): %.400s", t->name,
			 v);
	free(v);
}

/* Check one target; logs the outcome. True when its walls hold. */
static bool check_target(const pgw_config *cfg, const pgw_target *t)
{
	char why[512] = "", id[9];
	const char *verdict;
	/* connect_timeout first: the target's own conninfo (expanded after it) overrides it. */
	const char *const kw[] = { "connect_timeout", "dbname", "fallback_application_name", NULL };
	const char *const val[] = { CHECK_CONNECT_TIMEOUT, t->conninfo, "pgwarden wall check", NULL };
	PGconn *pg = PQconnectdbParams(kw, val, 1);

	wall_key_id(t, id);
	if (PQstatus(pg) != CONNECTION_OK) {
		snprintf(why, sizeof(why), "%s", PQerrorMessage(pg));
		verdict = "cannot connect to check them";
	} else {
		verdict = check_pin(cfg, t, pg, why, sizeof(why));
		if (verdict == NULL)
			warn_unguarded(t, pg);
	}
	PQfinish(pg);
	chomp(why);
	if (verdict == NULL) {
		log_info("target %s: walls verified (wall key %s)", t->name, id);
		return true;
	}
	log_error("target %s: walls = required but %s (wall key %s)%s%s; sessions to this target are refused until "
		  "their own check passes",
		  t->name, verdict, id, why[0] ? ": " : "", why);
	return false;
}

int wall_check_targets(const pgw_config *cfg)
{
	int failed = 0;

	for (size_t i = 0; i < cfg->n_targets; i++)
		if (wall_required(&cfg->targets[i]) && !check_target(cfg, &cfg->targets[i]))
			failed++;
	return failed;
}

/*
 * The one reload check that may be running. Joinable, not detached: stopping
 * waits for it (wall_check_wait), so exit handlers never tear OpenSSL down
 * under a libpq connect (issue 14 item 7 is that crash for catalog loaders).
 */
static struct {
	pthread_mutex_t lock;
	pthread_t th; /* valid while started */
	bool started; /* a thread was started and not joined yet */
	bool running; /* it has not finished its checks */
} checker = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *check_thread(void *arg)
{
	pgw_config *cfg = arg;

	wall_check_targets(cfg);
	config_unref(cfg);
	pthread_mutex_lock(&checker.lock);
	checker.running = false;
	pthread_mutex_unlock(&checker.lock);
	return NULL;
}

void wall_check_targets_async(pgw_config *cfg)
{
	bool any = false, ok;

	for (size_t i = 0; i < cfg->n_targets; i++)
		any = any || wall_required(&cfg->targets[i]);
	if (!any)
		return;
	pthread_mutex_lock(&checker.lock);
	if (checker.running) { /* reloads in a burst: the sessions' own checks cover the config skipped here */
		pthread_mutex_unlock(&checker.lock);
		log_info("walls: a check is still running; this reload's is skipped");
		return;
	}
	if (checker.started)
		pthread_join(checker.th, NULL); /* finished: only reaps it */
	config_ref(cfg);
	ok = pthread_create(&checker.th, NULL, check_thread, cfg) == 0;
	checker.started = checker.running = ok;
	pthread_mutex_unlock(&checker.lock);
	if (!ok) {
		log_warn("walls: cannot start the check thread; sessions still check on their own connection");
		config_unref(cfg);
	}
}

void wall_check_wait(void)
{
	pthread_mutex_lock(&checker.lock);
	if (checker.started)
		pthread_join(checker.th, NULL); /* bounded: each connect has a timeout (CHECK_CONNECT_TIMEOUT) */
	checker.started = checker.running = false;
	pthread_mutex_unlock(&checker.lock);
}
