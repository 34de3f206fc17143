/* catalog_hooks.c - reading what PostgreSQL runs without a call in the statement (CATALOG_HOOK_*). */
#include <stdlib.h>
#include <string.h>

#include "policy/catalog_int.h"

/*
 * Each hook is SQL text built here from the catalog, in the loader's
 * transaction (search_path is empty, so pg_get_expr() and format('%I.%I')
 * qualify every name outside pg_catalog): a call of each function the object
 * binds, with NULL for each argument ("SELECT s.f(NULL, NULL)"), the
 * expressions it evaluates, and statements for what it cascades to
 * ("DELETE FROM s.child"). It is then classified like a function body and
 * resolved like one, so the functions it names count with everything they
 * can do, and a hook reaching another table's hook (a cascade, a rule)
 * follows it to a fixpoint.
 *
 * Only what can run user-defined code, or built-ins by a user's choice, is
 * read: operators and casts whose function lives outside pg_catalog, every
 * domain CHECK, and every table's triggers, defaults, generated columns,
 * index expressions and predicates, CHECK constraints, non-SELECT rules,
 * policies, user-typed columns, FK cascades and inheritance children.
 */

#define SYS_NS "('pg_catalog', 'information_schema')"
/* "SELECT s.f(NULL, ...)" for pg_proc row p in namespace pn. */
#define CALL_P                                                                       \
	"pg_catalog.format('SELECT %I.%I(%s)', pn.nspname, p.proname, "              \
	"pg_catalog.array_to_string(pg_catalog.array_fill('NULL'::pg_catalog.text, " \
	"ARRAY[p.pronargs::pg_catalog.int4]), ','))"
#define JOIN_P(col) \
	" JOIN pg_catalog.pg_proc p ON p.oid = " col " JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace "

/* Operators by name; opclass support functions (sorting, hashing) under "=". */
static const char q_operators[] =
	"SELECT '', o.oprname, pg_catalog.string_agg(DISTINCT " CALL_P ", '; ') "
	"FROM pg_catalog.pg_operator o" JOIN_P(
		"o.oprcode") "JOIN pg_catalog.pg_namespace opn ON opn.oid = o.oprnamespace "
			     "WHERE pn.nspname NOT IN " SYS_NS " OR opn.nspname NOT IN " SYS_NS " GROUP BY o.oprname "
			     "UNION ALL SELECT '', '=', pg_catalog.string_agg(DISTINCT " CALL_P ", '; ') "
			     "FROM pg_catalog.pg_amproc a" JOIN_P("a.amproc") "WHERE pn.nspname NOT IN " SYS_NS
									      " HAVING pg_catalog.count(*) > 0";

/* Types: casts into them by a user function, domain CHECKs, the domain a domain is based on. */
static const char q_types[] =
	"SELECT tn.nspname, t.typname, pg_catalog.string_agg(x.body, '; ') FROM ("
	"SELECT c.casttarget AS typ, " CALL_P " AS body FROM pg_catalog.pg_cast c" JOIN_P(
		"c.castfunc") "WHERE pn.nspname NOT IN " SYS_NS
			      " UNION ALL SELECT con.contypid, 'SELECT ' || pg_catalog.pg_get_expr(con.conbin, 0) "
			      "FROM pg_catalog.pg_constraint con WHERE con.contypid <> 0 AND con.conbin IS NOT NULL "
			      "UNION ALL SELECT d.oid, pg_catalog.format('SELECT NULL::%I.%I', bn.nspname, b.typname) "
			      "FROM pg_catalog.pg_type d JOIN pg_catalog.pg_type b ON b.oid = d.typbasetype "
			      "JOIN pg_catalog.pg_namespace bn ON bn.oid = b.typnamespace WHERE d.typtype = 'd' AND "
			      "b.typtype = 'd'"
			      ") x JOIN pg_catalog.pg_type t ON t.oid = x.typ "
			      "JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace GROUP BY tn.nspname, "
			      "t.typname";

/* A column type worth naming in a write hook: a user type, or one a user function casts into. */
#define USER_TYPE(typ)                                                                                       \
	"(EXISTS (SELECT 1 FROM pg_catalog.pg_type ut JOIN pg_catalog.pg_namespace un ON un.oid = "          \
	"ut.typnamespace WHERE ut.oid = " typ " AND un.nspname NOT IN " SYS_NS ") OR EXISTS (SELECT 1 FROM " \
	"pg_catalog.pg_cast uc JOIN pg_catalog.pg_proc up ON up.oid = uc.castfunc JOIN "                     \
	"pg_catalog.pg_namespace upn ON upn.oid = up.pronamespace WHERE uc.casttarget = " typ                \
	" AND upn.nspname NOT IN " SYS_NS "))"

/* Tables: 'W' what a write runs, 'R' what a read runs (policies' USING). */
static const char q_tables[] =
	"SELECT n.nspname, c.relname, x.k, pg_catalog.string_agg(x.body, '; ') FROM ("
	"SELECT tg.tgrelid AS rel, 'W' AS k, pg_catalog.pg_get_triggerdef(tg.oid) || '; ' || " CALL_P " AS body "
	"FROM pg_catalog.pg_trigger tg" JOIN_P(
		"tg.tgfoid") "WHERE NOT tg.tgisinternal "
			     "UNION ALL SELECT ad.adrelid, 'W', 'SELECT ' || pg_catalog.pg_get_expr(ad.adbin, "
			     "ad.adrelid) "
			     "FROM pg_catalog.pg_attrdef ad "
			     "UNION ALL SELECT i.indrelid, 'W', 'SELECT ' || pg_catalog.pg_get_expr(i.indexprs, "
			     "i.indrelid) "
			     "FROM pg_catalog.pg_index i WHERE i.indexprs IS NOT NULL "
			     "UNION ALL SELECT i.indrelid, 'W', 'SELECT ' || pg_catalog.pg_get_expr(i.indpred, "
			     "i.indrelid) "
			     "FROM pg_catalog.pg_index i WHERE i.indpred IS NOT NULL "
			     "UNION ALL SELECT con.conrelid, 'W', 'SELECT ' || pg_catalog.pg_get_expr(con.conbin, "
			     "con.conrelid) "
			     "FROM pg_catalog.pg_constraint con WHERE con.conrelid <> 0 AND con.contype = 'c' "
			     "UNION ALL SELECT r.ev_class, 'W', pg_catalog.pg_get_ruledef(r.oid) FROM "
			     "pg_catalog.pg_rewrite r "
			     "WHERE r.ev_type <> '1' "
			     "UNION ALL SELECT po.polrelid, k.k, 'SELECT ' || pg_catalog.pg_get_expr(po.polqual, "
			     "po.polrelid) "
			     "FROM pg_catalog.pg_policy po, (VALUES ('W'), ('R')) k(k) WHERE po.polqual IS NOT NULL "
			     "UNION ALL SELECT po.polrelid, 'W', 'SELECT ' || pg_catalog.pg_get_expr(po.polwithcheck, "
			     "po.polrelid) "
			     "FROM pg_catalog.pg_policy po WHERE po.polwithcheck IS NOT NULL "
			     "UNION ALL SELECT a.attrelid, 'W', pg_catalog.format('SELECT NULL::%I.%I', tn.nspname, "
			     "t.typname) "
			     "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
			     "JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace "
			     "JOIN pg_catalog.pg_class ac ON ac.oid = a.attrelid AND ac.relkind IN ('r', 'p', 'f', "
			     "'v') "
			     "WHERE a.attnum > 0 AND NOT a.attisdropped AND " USER_TYPE(
				     "a.atttypid") " UNION ALL SELECT fk.confrelid, 'W', pg_catalog.format('DELETE "
						   "FROM %I.%I', fn.nspname, fc.relname) "
						   "FROM pg_catalog.pg_constraint fk JOIN pg_catalog.pg_class fc ON "
						   "fc.oid = fk.conrelid "
						   "JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace WHERE "
						   "fk.contype = 'f' "
						   "AND (fk.confdeltype IN ('c', 'n', 'd') OR fk.confupdtype IN ('c', "
						   "'n', 'd')) "
						   "UNION ALL SELECT ih.inhparent, 'W', pg_catalog.format('DELETE FROM "
						   "%I.%I', hn.nspname, hc.relname) "
						   "FROM pg_catalog.pg_inherits ih JOIN pg_catalog.pg_class hc ON "
						   "hc.oid = ih.inhrelid "
						   "JOIN pg_catalog.pg_namespace hn ON hn.oid = hc.relnamespace"
						   ") x JOIN pg_catalog.pg_class c ON c.oid = x.rel "
						   "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace GROUP BY "
						   "n.nspname, c.relname, x.k";

/* Event triggers: they run on DDL (any statement that is not read-only is judged with them). */
static const char q_events[] =
	"SELECT '', '', pg_catalog.string_agg(" CALL_P ", '; ') "
	"FROM pg_catalog.pg_event_trigger e" JOIN_P("e.evtfoid") "HAVING pg_catalog.count(*) > 0";

/* Rows (schema, name, [kind,] body) into hooks of one kind (or of the kind letter in column 2). */
static bool load(PGconn *conn, fn_catalog *c, const char *sql, int kind, char **err)
{
	PGresult *r = catalog_run(conn, sql, PGRES_TUPLES_OK, err);
	int body = kind < 0 ? 3 : 2;
	bool ok = r != NULL;

	for (int i = 0; ok && i < PQntuples(r); i++) {
		int k = kind;

		if (PQgetisnull(r, i, body))
			continue;
		if (kind < 0)
			k = *PQgetvalue(r, i, 2) == 'R' ? CATALOG_HOOK_READ : CATALOG_HOOK_WRITE;
		ok = catalog_add_hook(c, k, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, body)) == 0;
	}
	if (r && !ok)
		*err = strdup("catalog: out of memory");
	PQclear(r);
	return ok;
}

bool catalog_load_hooks(PGconn *conn, fn_catalog *c, char **err)
{
	return load(conn, c, q_operators, CATALOG_HOOK_OPERATOR, err) &&
	       load(conn, c, q_types, CATALOG_HOOK_TYPE, err) && load(conn, c, q_tables, -1, err) &&
	       load(conn, c, q_events, CATALOG_HOOK_DDL, err);
}
