/* catalog_sql.c - catalog_load(): read pg_proc (and friends) over libpq into a fresh catalog. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/catalog_int.h"

/*
 * One READ ONLY, REPEATABLE READ transaction, so the queries see one
 * snapshot. search_path is emptied for it: pg_get_functiondef() and
 * pg_get_expr() then qualify every name outside pg_catalog ("public.g()"), so
 * deparsed BEGIN ATOMIC bodies and argument defaults name the exact schema.
 * proconfig is joined with newlines: a value holding a newline can only add
 * entries that make the function look MORE restricted, never hide one.
 * pg_temp_N schemas belong to other sessions: their functions are not
 * callable from ours and are left out.
 */

#define USER_SCHEMAS                                                               \
	"n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT " \
	"LIKE 'pg\\_temp\\_%' "                                                    \
	"AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'"

/* Built-ins with their own facts: volatility and how many arguments a call passes (attribute notation
 * calls with one). */
static const char q_system[] = "SELECT n.nspname, p.proname, p.provolatile, p.pronargs - p.pronargdefaults, "
			       "CASE WHEN p.provariadic <> 0 THEN 65535 ELSE p.pronargs END "
			       "FROM pg_catalog.pg_proc p "
			       "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
			       "WHERE n.nspname IN ('pg_catalog', 'information_schema')";

/* Every type name: a call of that name may be a function-style cast (jsonb('{}'), inet('...')). */
static const char q_types[] = "SELECT DISTINCT t.typname FROM pg_catalog.pg_type t";

/* SQLBODY: whether the body is stored parsed (prosqlbody, PG14+), or false before 14. */
#define Q_FUNCTIONS(SQLBODY)                                                                           \
	"SELECT p.oid, n.nspname, p.proname, "                                                         \
	"pg_catalog.pg_get_function_identity_arguments(p.oid), "                                       \
	"l.lanname, p.prokind, p.provolatile, p.prosecdef, "                                           \
	"pg_catalog.array_to_string(p.proconfig, E'\\n'), p.prosrc, "                                  \
	"CASE WHEN p.prokind <> 'a' AND (l.lanname = 'plpgsql' OR (l.lanname = "                       \
	"'sql' AND " SQLBODY "))"                                                                      \
	" THEN pg_catalog.pg_get_functiondef(p.oid) END, "                                             \
	"pg_catalog.pg_get_expr(p.proargdefaults, 0), " SQLBODY ", "                                   \
	"p.pronargs - p.pronargdefaults, CASE WHEN p.provariadic <> 0 THEN 65535 ELSE p.pronargs END " \
	"FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = "                         \
	"p.pronamespace "                                                                              \
	"JOIN pg_catalog.pg_language l ON l.oid = p.prolang WHERE " USER_SCHEMAS

static const char q_functions_14[] = Q_FUNCTIONS("p.prosqlbody IS NOT NULL");
static const char q_functions_11[] = Q_FUNCTIONS("false");

static const char q_aggregates[] = "SELECT a.aggfnoid::pg_catalog.oid, s.oid, sn.nspname, s.proname, "
				   "s.provolatile "
				   "FROM pg_catalog.pg_aggregate a "
				   "JOIN pg_catalog.pg_proc p ON p.oid = a.aggfnoid "
				   "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
				   "JOIN pg_catalog.pg_proc s ON s.oid IN (a.aggtransfn, a.aggfinalfn, "
				   "a.aggcombinefn, a.aggserialfn, "
				   "a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn) "
				   "JOIN pg_catalog.pg_namespace sn ON sn.oid = s.pronamespace "
				   "WHERE " USER_SCHEMAS;

/*
 * Views (relkind 'v') with their definitions, deparsed under the empty
 * search_path (names outside pg_catalog qualified). Materialized views ('m')
 * are left out on purpose: their query runs only on REFRESH, which is a write
 * already; reading one runs nothing, like a table.
 */
static const char q_views[] = "SELECT n.nspname, c.relname, pg_catalog.pg_get_viewdef(c.oid) "
			      "FROM pg_catalog.pg_class c "
			      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
			      "WHERE c.relkind = 'v' AND " USER_SCHEMAS;

static char *errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *errorf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	/* libpq messages end in a newline: not in ours. */
	for (size_t n = strlen(buf); n > 0 && buf[n - 1] == '\n'; n--)
		buf[n - 1] = '\0';
	return strdup(buf);
}

/* Run one statement; NULL and *err on failure. */
PGresult *catalog_run(PGconn *conn, const char *sql, ExecStatusType want, char **err)
{
	PGresult *r = PQexec(conn, sql);

	if (PQresultStatus(r) == want)
		return r;
	*err = errorf("catalog: reading the function catalog failed: %s",
		      r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
	PQclear(r);
	return NULL;
}

static PGresult *run(PGconn *conn, const char *sql, ExecStatusType want, char **err)
{
	return catalog_run(conn, sql, want, err);
}

static bool run_cmd(PGconn *conn, const char *sql, char **err)
{
	PGresult *r = run(conn, sql, PGRES_COMMAND_OK, err);

	PQclear(r);
	return r != NULL;
}

static const char *val(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static uint32_t oid_val(const PGresult *r, int row, int col)
{
	return (uint32_t)strtoul(PQgetvalue(r, row, col), NULL, 10);
}

static bool load_system(PGconn *conn, fn_catalog *c, char **err)
{
	PGresult *r = run(conn, q_system, PGRES_TUPLES_OK, err);
	bool ok = r != NULL;

	for (int i = 0; ok && i < PQntuples(r); i++)
		ok = catalog_add_builtin(c, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), *PQgetvalue(r, i, 2),
					 oid_val(r, i, 3), oid_val(r, i, 4)) == 0;
	PQclear(r);
	r = NULL;
	if (ok && !(r = run(conn, q_types, PGRES_TUPLES_OK, err)))
		return false;
	for (int i = 0; ok && i < PQntuples(r); i++)
		ok = catalog_add_type(c, PQgetvalue(r, i, 0)) == 0;
	if (r && !ok)
		*err = strdup("catalog: out of memory");
	PQclear(r);
	return ok;
}

static bool load_functions(PGconn *conn, fn_catalog *c, char **err)
{
	const char *sql = PQserverVersion(conn) >= 140000 ? q_functions_14 : q_functions_11;
	PGresult *r;
	bool ok;

	if (!(r = run(conn, sql, PGRES_TUPLES_OK, err)))
		return false;
	ok = true;
	for (int i = 0; ok && i < PQntuples(r); i++) {
		catalog_row row = { .oid = oid_val(r, i, 0),
				    .schema = val(r, i, 1),
				    .name = val(r, i, 2),
				    .args = val(r, i, 3),
				    .lang = val(r, i, 4),
				    .kind = *PQgetvalue(r, i, 5),
				    .volatility = *PQgetvalue(r, i, 6),
				    .secdef = *PQgetvalue(r, i, 7) == 't',
				    .config = val(r, i, 8),
				    .src = val(r, i, 9),
				    .def = val(r, i, 10),
				    .defaults = val(r, i, 11),
				    .atomic = *PQgetvalue(r, i, 12) == 't',
				    .nargs_min = oid_val(r, i, 13),
				    .nargs_max = oid_val(r, i, 14) };

		ok = catalog_add_row(c, &row) == 0;
	}
	if (!ok)
		*err = strdup("catalog: out of memory");
	PQclear(r);
	return ok;
}

static bool load_aggregates(PGconn *conn, fn_catalog *c, char **err)
{
	PGresult *r = run(conn, q_aggregates, PGRES_TUPLES_OK, err);
	bool ok = r != NULL;

	for (int i = 0; ok && i < PQntuples(r); i++)
		ok = catalog_add_agg_support(c, oid_val(r, i, 0), oid_val(r, i, 1), PQgetvalue(r, i, 2),
					     PQgetvalue(r, i, 3), *PQgetvalue(r, i, 4)) == 0;
	if (r && !ok)
		*err = strdup("catalog: out of memory");
	PQclear(r);
	return ok;
}

static bool load_views(PGconn *conn, fn_catalog *c, char **err)
{
	PGresult *r = run(conn, q_views, PGRES_TUPLES_OK, err);
	bool ok = r != NULL;

	for (int i = 0; ok && i < PQntuples(r); i++)
		ok = catalog_add_view(c, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), val(r, i, 2)) == 0;
	if (r && !ok)
		*err = strdup("catalog: out of memory");
	PQclear(r);
	return ok;
}

fn_catalog *catalog_load(PGconn *conn, const pgw_config *cfg, char **err)
{
	return catalog_load_walled(conn, cfg, false, err);
}

fn_catalog *catalog_load_walled(PGconn *conn, const pgw_config *cfg, bool trust_walls, char **err)
{
	fn_catalog *c = NULL;
	bool in_txn = false;

	*err = NULL;
	if (!conn || PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
		*err = strdup("catalog: the connection is not open and idle");
		return NULL;
	}
	if (PQserverVersion(conn) < 110000) {
		*err = errorf("catalog: PostgreSQL %d is too old (11 or later is needed)", PQserverVersion(conn));
		return NULL;
	}
	if (!(c = catalog_new())) {
		*err = strdup("catalog: out of memory");
		return NULL;
	}
	if (!(in_txn = run_cmd(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err)) ||
	    !run_cmd(conn, "SET LOCAL search_path = ''", err) || !load_system(conn, c, err) ||
	    !load_functions(conn, c, err) || !load_aggregates(conn, c, err) || !load_views(conn, c, err) ||
	    !catalog_load_hooks(conn, c, err) || !run_cmd(conn, "COMMIT", err))
		goto fail;
	in_txn = false;
	/* Classification needs no connection: it runs after the transaction is over. */
	c->trust_walls = trust_walls;
	if (catalog_finish(c, cfg, err) < 0)
		goto fail;
	return c;
fail:
	if (in_txn)
		PQclear(PQexec(conn, "ROLLBACK"));
	catalog_unref(c);
	if (!*err)
		*err = strdup("catalog: out of memory");
	return NULL;
}
