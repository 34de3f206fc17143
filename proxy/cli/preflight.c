/* preflight.c - `pgwarden --check --connect`: the config against the live targets (see preflight.h). */
#include "proxy/cli/preflight.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "conf/config.h"
#include "proxy/full_config.h"
#include "conf/core/log.h"

/* What one run found. */
typedef struct preflight {
	const pgw_config *cfg;
	int errors;   /* problems that would break logins: exit 1 */
	int warnings; /* risks the operator should look at */
} preflight;

static void report(preflight *pf, bool error, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void report(preflight *pf, bool error, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: %s", file, line, error ? "" : "warning: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (error)
		pf->errors++;
	else
		pf->warnings++;
}

/* Warn about the login role's attributes: each one defeats part of what pgwarden enforces. */
static void check_login_role(preflight *pf, PGconn *conn, const pgw_target *t)
{
	PGresult *r = PQexec(conn, "SELECT current_user, rolsuper, rolbypassrls, rolcreaterole "
				   "FROM pg_catalog.pg_roles WHERE rolname = current_user");
	char buf[512];

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		report(pf, true, pf->cfg->path, t->line, "target.%s: cannot read the login role: %s", t->name,
		       log_one_line(PQerrorMessage(conn), buf, sizeof(buf)));
	} else {
		static const char *const why[] = {
			NULL, "superuser: it can undo every pin and read every row",
			"BYPASSRLS: row-level security does not apply to the roles it can become",
			"CREATEROLE: it can create roles and grant memberships to itself"
		};

		for (int col = 1; col <= 3; col++)
			if (strcmp(PQgetvalue(r, 0, col), "t") == 0)
				report(pf, false, pf->cfg->path, t->line, "target.%s: login role \"%s\" is %s", t->name,
				       PQgetvalue(r, 0, 0), why[col]);
	}
	PQclear(r);
}

/* Whether a token record can be used on this target at all (targets=). */
static bool token_for_target(const pgw_token *tok, const char *target)
{
	if (tok->n_targets == 0)
		return true;
	for (size_t i = 0; i < tok->n_targets; i++)
		if (strcmp(tok->targets[i], target) == 0)
			return true;
	return false;
}

/* The record's role exists here and the login role is a member of it (what SET ROLE needs). */
static void check_token_role(preflight *pf, PGconn *conn, const pgw_target *t, const pgw_token *tok)
{
	const char *params[1] = { tok->role };
	PGresult *r = PQexecParams(conn,
				   "SELECT pg_catalog.pg_has_role(session_user, oid, 'MEMBER') "
				   "FROM pg_catalog.pg_roles WHERE rolname = $1",
				   1, NULL, params, NULL, NULL, 0);
	const char *tokens = pf->cfg->tokens->path ? pf->cfg->tokens->path : pf->cfg->tokens_file;
	char buf[512];

	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		report(pf, true, tokens, tok->line, "cannot check role \"%s\" on target \"%s\": %s", tok->role, t->name,
		       log_one_line(PQerrorMessage(conn), buf, sizeof(buf)));
	else if (PQntuples(r) == 0)
		report(pf, true, tokens, tok->line, "role \"%s\" of actor \"%s\" does not exist on target \"%s\"",
		       tok->role, tok->actor, t->name);
	else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
		report(pf, true, tokens, tok->line,
		       "the login role cannot SET ROLE to \"%s\" (actor \"%s\") on "
		       "target \"%s\": it is not a member of that role",
		       tok->role, tok->actor, t->name);
	PQclear(r);
}

static void check_target(preflight *pf, const pgw_target *t)
{
	const char *kw[] = { "connect_timeout", "dbname", "fallback_application_name", NULL };
	const char *val[] = { "10", t->conninfo, "pgwarden-check", NULL };
	PGconn *conn = PQconnectdbParams(kw, val, 1);
	const pgw_token_table *tt = pf->cfg->tokens;
	char buf[512];

	if (PQstatus(conn) != CONNECTION_OK) {
		report(pf, true, pf->cfg->path, t->line, "target.%s: cannot connect: %s", t->name,
		       log_one_line(PQerrorMessage(conn), buf, sizeof(buf)));
		PQfinish(conn);
		return;
	}
	check_login_role(pf, conn, t);
	for (size_t i = 0; tt && i < tt->n; i++)
		if (token_for_target(&tt->v[i], t->name))
			check_token_role(pf, conn, t, &tt->v[i]);
	PQfinish(conn);
}

/* Windows that can never open again, and window actors no token record names. */
static void check_windows(preflight *pf, time_t now)
{
	const pgw_config *c = pf->cfg;
	size_t count;

	for (size_t i = 0; i < c->n_windows; i++) {
		const pgw_window *w = &c->windows[i];

		if (!w->weekly && w->end_utc <= now) {
			char when[32];
			struct tm tm;

			gmtime_r(&w->end_utc, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			report(pf, false, c->path, w->line, "window.%s is over: it ended %s", w->name, when);
		}
		for (size_t a = 0; a < w->n_actors; a++)
			if (!c->tokens || !tokens_find_actor(c->tokens, w->actors[a], &count) || count == 0)
				report(pf, false, c->path, w->line, "window.%s: actor \"%s\" has no token record",
				       w->name, w->actors[a]);
	}
}

int preflight_main(const char *config_path)
{
	pgw_errors e = { 0 };
	pgw_config *c = full_config_load(config_path, &e);
	preflight pf = { 0 };

	for (size_t i = 0; i < e.n; i++)
		fprintf(stderr, "%s\n", e.msgs[i]);
	errors_free(&e);
	if (!c)
		return 1;
	pf.cfg = c;
	check_windows(&pf, time(NULL));
	for (size_t i = 0; i < c->n_targets; i++)
		check_target(&pf, &c->targets[i]);
	config_unref(c);
	if (pf.errors)
		return 1;
	printf("ok\n");
	return 0;
}
