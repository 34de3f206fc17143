/* classify_stmt.c - from a parse tree's RawStmt list to one policy_facts per statement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/core/arr.h"
#include "policy/classify_int.h"

/* Turn the building flag into the public one: read-only unless something said otherwise. */
void facts_finalize(policy_facts *f)
{
	if (!(f->flags & PF_INT_WRITE))
		f->flags |= PF_READ_ONLY;
	f->flags &= ~PF_INT_WRITE;
}

/*
 * LOCK: ACCESS SHARE (lockdefs.h AccessShareLock = 1) conflicts only with
 * ACCESS EXCLUSIVE, which DROP/ALTER/VACUUM FULL take: it holds off schema
 * changes exactly as a SELECT of the table does (pg_dump locks every table so).
 * Stronger modes block other sessions' writes or reads: shared state, writes.
 * Nothing is executed (a view's lock reaches its tables, its query is not run).
 */
void on_lock(pc_walk *w, uint32_t body)
{
	uint32_t mode = jobj_get(w->d, body, "mode");

	if (!mode || jnum(w->d, mode) != 1)
		mark_write(w, "LOCK TABLE");
}

/* LOAD 'plpgsql' (psql scripts and dumps send it; the language is always loaded): nothing new runs.
 * Any other library runs its _PG_init in this backend: not known to be harmless. */
void on_load(pc_walk *w, uint32_t body)
{
	uint32_t file = jobj_get(w->d, body, "filename");

	w->f->flags |= PF_LITERAL_DEP; /* why: the file name is a literal; the cache must not share it */
	if (!jstr_eq(w->d, file, "plpgsql") && !jstr_eq(w->d, file, "$libdir/plpgsql"))
		mark_write(w, "LOAD");
}

static void set_name(pc_walk *w, uint32_t body)
{
	uint32_t n = jobj_get(w->d, body, "name");

	if (n && !(w->f->name = jstr_dup(w->d, n)))
		w->f->oom = true;
}

/* PREPARE name AS body: the body's facts are the inner facts; outer flags = body's + PF_PREPARE. */
static void on_top_prepare(pc_walk *w, uint32_t body)
{
	policy_facts *outer = w->f, *inner = facts_new();
	uint32_t q = jobj_get(w->d, body, "query");

	if (!inner) {
		outer->oom = true;
		return;
	}
	set_name(w, body);
	w->f = inner;
	if (q)
		walk_value(w, q);
	else
		mark_write(w, "PREPARE without a body");
	facts_finalize(inner);
	w->f = outer;
	outer->inner = inner;
	outer->flags |= (inner->flags & ~PF_INT_WRITE) | PF_PREPARE;
	if (inner->oom)
		outer->oom = true;
}

/* EXECUTE name(params): the relay decides the stored PREPARE facts; here only the parameters. */
static void on_top_execute(pc_walk *w, uint32_t exec)
{
	uint32_t params = jobj_get(w->d, exec, "params");

	w->f->flags |= PF_EXECUTE;
	set_name(w, exec);
	if (params)
		walk_value(w, params);
}

/*
 * EXPLAIN [ANALYZE] EXECUTE name and CREATE TABLE ... AS EXECUTE name run a
 * prepared statement too: facts carry PF_EXECUTE and its name, so the relay
 * judges the stored statement as for a plain EXECUTE (even without ANALYZE,
 * where it is only planned: conservative). Returns false for other shapes.
 */
static bool on_wrapped_execute(pc_walk *w, uint32_t stmt)
{
	const jdoc *d = w->d;
	uint32_t b, exec, into;

	if ((b = node_body(d, stmt, "ExplainStmt")) && (exec = node_body(d, jobj_get(d, b, "query"), "ExecuteStmt"))) {
		on_top_execute(w, exec);
		return true;
	}
	if ((b = node_body(d, stmt, "CreateTableAsStmt")) &&
	    (exec = node_body(d, jobj_get(d, b, "query"), "ExecuteStmt"))) {
		mark_write(w, "CREATE TABLE AS");
		on_top_execute(w, exec);
		if ((into = jobj_get(d, b, "into")))
			walk_fields(w, into);
		return true;
	}
	return false;
}

/*
 * A schema name "pg_temp" or "pg_temp_N" (identifiers are already
 * case-folded): a RangeVar's schemaname, or a String of a qualified name
 * list ({"String":{"sval":...}}), never a string constant ({"A_Const":
 * {"sval":{"sval":...}}}, as in SET search_path = pg_temp).
 */
static bool temp_schema_name(const jdoc *d, uint32_t i)
{
	const jtok *t = &d->t[i];
	const char *p = d->text + t->start;

	if (t->type != J_STR || t->esc || t->len < 7 || memcmp(p, "pg_temp", 7) != 0 || i < 3)
		return false;
	if (!jstr_eq(d, i - 1, "schemaname") &&
	    !(jstr_eq(d, i - 1, "sval") && d->t[i - 2].type == J_OBJ && jstr_eq(d, i - 3, "String")))
		return false;
	if (t->len == 7)
		return true;
	if (t->len == 8 || p[7] != '_')
		return false;
	for (uint32_t k = 8; k < t->len; k++)
		if (p[k] < '0' || p[k] > '9')
			return false;
	return true;
}

/*
 * State a transaction-mode pool cannot move to another connection. A
 * temporary relation is any RangeVar the parser marked relpersistence 't'
 * (CREATE TEMP TABLE/VIEW/SEQUENCE, CREATE TABLE AS and SELECT INTO TEMP):
 * read from the tree's own field, never from the text. Why any pg_temp
 * name too: CREATE SEQUENCE pg_temp.s, SELECT INTO pg_temp.t, CREATE
 * TABLE pg_temp.t AS, CREATE FUNCTION/TYPE pg_temp.x carry 'p' (the server
 * makes them temporary later, in RangeVarAdjustRelationPersistence), and a
 * reference to pg_temp.x only exists where one was made: holding is exact.
 */
static void note_session_state(pc_walk *w, uint32_t stmt)
{
	const jdoc *d = w->d;
	uint32_t b;

	for (uint32_t i = stmt; i + 1 < d->t[stmt].end; i++)
		if ((d->t[i].type == J_STR && jstr_eq(d, i, "relpersistence") && jstr_eq(d, i + 1, "t")) ||
		    temp_schema_name(d, i))
			w->f->flags |= PF_HOLD_TEMP;
	if (node_body(d, stmt, "ListenStmt"))
		w->f->flags |= PF_HOLD_LISTEN;
	if ((b = node_body(d, stmt, "UnlistenStmt")) && !jobj_get(d, b, "conditionname"))
		w->f->flags |= PF_UNLISTEN_ALL;
	if ((b = node_body(d, stmt, "VariableSetStmt")) && jobj_get(d, b, "is_local"))
		w->f->flags |= PF_SET_LOCAL;
}

/* One top-level statement: the three prepared-statement commands are special here only. */
static void walk_statement(pc_walk *w, uint32_t stmt)
{
	const jdoc *d = w->d;
	uint32_t b;

	if ((b = node_body(d, stmt, "PrepareStmt"))) {
		on_top_prepare(w, b);
		return;
	}
	if ((b = node_body(d, stmt, "ExecuteStmt"))) {
		/* The stored facts are the relay's; here only the parameters (they are evaluated). */
		on_top_execute(w, b);
		facts_finalize(w->f);
		return;
	}
	if (w->nest == 0 && on_wrapped_execute(w, stmt)) {
		facts_finalize(w->f);
		return;
	}
	if ((b = node_body(d, stmt, "DeallocateStmt"))) {
		w->f->flags |= PF_DEALLOCATE;
		set_name(w, b);
		facts_finalize(w->f);
		return;
	}
	if ((b = node_body(d, stmt, "DeclareCursorStmt"))) {
		/* A portal of that name, one namespace with protocol portals upstream; 0x20 is CURSOR_OPT_HOLD. */
		uint32_t n = jobj_get(d, b, "portalname"), o = jobj_get(d, b, "options");

		w->f->flags |= PF_DECLARE;
		if (n && !(w->f->name = jstr_dup(d, n)))
			w->f->oom = true;
		if (o && (jnum(d, o) & 0x20))
			w->f->flags |= PF_CURSOR_HOLD;
	}
	if ((b = node_body(d, stmt, "ClosePortalStmt"))) {
		uint32_t n = jobj_get(d, b, "portalname"); /* absent: CLOSE ALL */

		w->f->flags |= PF_CLOSE_CURSOR;
		if (n && !(w->f->name = jstr_dup(d, n)))
			w->f->oom = true;
	}
	if ((b = node_body(d, stmt, "FetchStmt")) && !jobj_get(d, b, "ismove")) {
		/* The relay refuses Describe of a prepared FETCH (proxy/gate.c, gate_describe_statement). */
		uint32_t n = jobj_get(d, b, "portalname");

		w->f->flags |= PF_FETCH;
		if (n && !(w->f->name = jstr_dup(d, n)))
			w->f->oom = true;
	}
	if (w->nest == 0 && node_body(d, stmt, "CopyStmt"))
		w->f->flags |= PF_COPY;
	note_session_state(w, stmt);
	walk_value(w, stmt);
	if (!(w->f->flags & PF_PREPARE))
		facts_finalize(w->f);
}

static int fail(pc_rawstmt *v, size_t n, int rc)
{
	for (size_t i = 0; i < n; i++)
		policy_facts_unref(v[i].facts);
	free(v);
	return rc;
}

/* Walk every RawStmt of a parsed tree. See classify_int.h. */
static int walk_stmts(const jdoc *d, int nest, int depth_base, pc_rawstmt **out, char *err, size_t errsz)
{
	uint32_t stmts = jobj_get(d, 0, "stmts"), c, s;
	pc_rawstmt *v = NULL;
	size_t n = 0, cap = 0;

	for (c = stmts ? stmts + 1 : 0; stmts && c < d->t[stmts].end; c = d->t[c].end) {
		pc_walk w = { .d = d, .nest = nest, .depth_base = depth_base };
		uint32_t loc, len;

		if (!ARR_RESERVE(v, cap, n + 1, 4))
			return fail(v, n, -1);
		if (!(w.f = facts_new()))
			return fail(v, n, -1);
		v[n++] = (pc_rawstmt){ .facts = w.f };
		loc = jobj_get(d, c, "stmt_location");
		len = jobj_get(d, c, "stmt_len");
		v[n - 1].location = loc ? (int)jnum(d, loc) : 0;
		v[n - 1].len = len ? (int)jnum(d, len) : 0;
		if (!(s = jobj_get(d, c, "stmt")))
			return fail(v, n, -1);
		walk_statement(&w, s);
		if (w.too_deep) {
			snprintf(err, errsz, "statement is nested too deeply to verify (limit %d levels)",
				 PC_MAX_WALK_DEPTH);
			return fail(v, n, -2);
		}
		if (w.f->oom)
			return fail(v, n, -1);
	}
	*out = v;
	return (int)n;
}

int walk_parse_tree(const char *json, size_t jlen, pc_rawstmt **out, char *err, size_t errsz)
{
	jdoc d = { 0 };
	int rc = json_parse(&d, json, jlen);

	*out = NULL;
	if (rc == -2) {
		rc = -1;
	} else if (rc < 0) {
		snprintf(err, errsz, "parse tree could not be read");
		rc = -2;
	} else {
		rc = walk_stmts(&d, 0, 0, out, err, errsz);
	}
	json_free(&d);
	return rc;
}

/* Embedded statements (DO bodies): same walk, nesting carried on. */
int walk_parse_tree_nested(const char *json, size_t jlen, int nest, int depth_base, pc_rawstmt **out)
{
	jdoc d = { 0 };
	char err[8];
	int rc = json_parse(&d, json, jlen);

	*out = NULL;
	if (rc == 0)
		rc = walk_stmts(&d, nest, depth_base, out, err, sizeof(err));
	else
		rc = rc == -2 ? -1 : -2;
	json_free(&d);
	return rc;
}
