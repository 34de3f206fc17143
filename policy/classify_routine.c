/* classify_routine.c - a user function's or procedure's body as facts: SQL, BEGIN ATOMIC, PL/pgSQL. */
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classify_int.h"

/*
 * The same walk as client SQL, over what the server stores for a routine:
 *  - LANGUAGE sql with a string body: pg_proc.prosrc, one or more statements.
 *  - LANGUAGE sql with BEGIN ATOMIC / RETURN (PG14+): prosrc is empty and the
 *    parsed body is in prosqlbody; pg_get_functiondef() deparses it into a
 *    CREATE FUNCTION text whose sql_body we walk.
 *  - LANGUAGE plpgsql: pg_query_parse_plpgsql() needs the whole CREATE
 *    FUNCTION text (argument names become variables): pg_get_functiondef().
 *  - argument defaults run at the call site: "SELECT <defaults>".
 * Any other language, or a body the parser rejects, is opaque. Calls to other
 * user functions are only listed here (facts->funcs); the catalog resolves them.
 */

/* libpg_query's copy of the GUC (thread-local there). */
extern __thread bool standard_conforming_strings;

static void mark_opaque_f(policy_facts *f, const char *fmt, const char *arg) __attribute__((format(printf, 2, 0)));

static void mark_opaque_f(policy_facts *f, const char *fmt, const char *arg)
{
	f->flags |= PF_OPAQUE;
	facts_set_why(f, &f->why_opaque, fmt, arg ? arg : "");
}

/* Parse a SQL text and merge every statement in it. False: the parser rejected it. */
static bool merge_sql(policy_facts *f, const char *sql, const char *what)
{
	PgQueryParseResult r = pg_query_parse(sql);
	pc_rawstmt *v = NULL;
	int n;

	if (r.error) {
		pg_query_free_parse_result(r);
		return false;
	}
	n = walk_parse_tree_nested(r.parse_tree, strlen(r.parse_tree), 1, 0, &v);
	pg_query_free_parse_result(r);
	if (n == -1) {
		f->oom = true;
		return true;
	}
	if (n == -2) {
		mark_opaque_f(f, "%s nested too deeply to verify", what);
		return true;
	}
	for (int i = 0; i < n; i++) {
		merge_embedded_facts(f, v[i].facts, what);
		policy_facts_unref(v[i].facts);
	}
	free(v);
	return true;
}

/* The sql_body of the (only) CreateFunctionStmt in a parse tree, or 0. */
static uint32_t find_sql_body(const jdoc *d)
{
	uint32_t stmts = jobj_get(d, 0, "stmts"), s, b;

	if (!stmts || d->t[stmts].type != J_ARR || d->t[stmts].end == stmts + 1)
		return 0;
	if (!(s = jobj_get(d, stmts + 1, "stmt")) || !(b = node_body(d, s, "CreateFunctionStmt")))
		return 0;
	return jobj_get(d, b, "sql_body");
}

/* BEGIN ATOMIC ... END or RETURN expr, from pg_get_functiondef's text. */
static void classify_atomic(policy_facts *f, const char *def)
{
	PgQueryParseResult r = pg_query_parse(def);
	jdoc d = { 0 };
	uint32_t body;

	if (r.error) {
		mark_opaque_f(f, "SQL body pgwarden cannot parse: %s", r.error->message);
	} else if (json_parse(&d, r.parse_tree, strlen(r.parse_tree)) != 0 || !(body = find_sql_body(&d))) {
		mark_opaque_f(f, "SQL body pgwarden cannot read%s", NULL);
	} else {
		pc_walk w = { .d = &d, .f = f, .nest = 1 };

		/* The body's statements are walked as one: each one's writes show as PF_INT_WRITE. */
		walk_value(&w, body);
		if (w.too_deep)
			mark_opaque_f(f, "SQL body nested too deeply to verify%s", NULL);
	}
	json_free(&d);
	pg_query_free_parse_result(r);
}

static void classify_defaults(policy_facts *f, const char *defaults)
{
	size_t len = strlen(defaults);
	char *sql = malloc(len + 8);

	if (!sql) {
		f->oom = true;
		return;
	}
	memcpy(sql, "SELECT ", 7);
	memcpy(sql + 7, defaults, len + 1);
	if (!merge_sql(f, sql, "argument default"))
		mark_opaque_f(f, "argument defaults pgwarden cannot parse%s", NULL);
	free(sql);
}

static void classify_body(policy_facts *f, const pc_routine *r)
{
	const char *lang = r->lang ? r->lang : "";

	if (strcmp(lang, "sql") == 0 && r->atomic) {
		if (r->def)
			classify_atomic(f, r->def);
		else
			mark_opaque_f(f, "SQL body pgwarden could not read%s", NULL);
	} else if (strcmp(lang, "sql") == 0) {
		if (!merge_sql(f, r->src ? r->src : "", "SQL body"))
			mark_opaque_f(f, "SQL body pgwarden cannot parse%s", NULL);
	} else if (strcmp(lang, "plpgsql") == 0) {
		if (r->def)
			walk_plpgsql_source(f, r->def, "PL/pgSQL body", 1, 0);
		else
			mark_opaque_f(f, "PL/pgSQL body without its definition%s", NULL);
	} else {
		mark_opaque_f(f, "written in language %s, which pgwarden cannot read", lang);
	}
}

static size_t len_or_0(const char *s)
{
	return s ? strlen(s) : 0;
}

policy_facts *classify_routine(const pc_routine *r)
{
	policy_facts *f = facts_new();

	if (!f)
		return NULL;
	/* pg_get_functiondef and prosrc are server texts: lexed with standard strings. */
	standard_conforming_strings = true;
	if (len_or_0(r->src) > PC_MAX_ROUTINE_BODY || len_or_0(r->def) > PC_MAX_ROUTINE_BODY ||
	    len_or_0(r->defaults) > PC_MAX_ROUTINE_BODY)
		mark_opaque_f(f, "body too large to verify%s", NULL);
	else
		classify_body(f, r);
	if (r->defaults && *r->defaults && len_or_0(r->defaults) <= PC_MAX_ROUTINE_BODY)
		classify_defaults(f, r->defaults);
	facts_finalize(f);
	if (f->oom) {
		policy_facts_unref(f);
		return NULL;
	}
	return f;
}
