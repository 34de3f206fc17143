/* classify_walk.c - the parse-tree walk: node dispatch, statement kinds, function calls. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classify_int.h"

/*
 * Default deny: every node type is either handled below, or listed as a
 * harmless query/expression part, or it makes the statement "not read-only"
 * (why: its node type). A statement is read-only only if nothing in its whole
 * tree said otherwise.
 */

#define MARK_BODY(slot, flag)                                \
	do {                                                 \
		va_list ap;                                  \
		char buf[200];                               \
		va_start(ap, fmt);                           \
		vsnprintf(buf, sizeof(buf), fmt, ap);        \
		va_end(ap);                                  \
		w->f->flags |= (flag);                       \
		facts_set_why(w->f, &w->f->slot, "%s", buf); \
	} while (0)

void mark_write(pc_walk *w, const char *fmt, ...)
{
	/* EXPLAIN without ANALYZE plans but does not execute: a planned write is not a write. */
	if (w->plan_only > 0)
		return;
	MARK_BODY(why_write, PF_INT_WRITE);
}

void mark_identity(pc_walk *w, const char *fmt, ...)
{
	MARK_BODY(why_identity, PF_IDENTITY);
}

void mark_opaque(pc_walk *w, const char *fmt, ...)
{
	MARK_BODY(why_opaque, PF_OPAQUE);
}

void mark_rw(pc_walk *w, const char *fmt, ...)
{
	MARK_BODY(why_rw, PF_RW_OVERRIDE);
}

void mark_lexing(pc_walk *w, const char *fmt, ...)
{
	MARK_BODY(why_lexing, PF_LEXING_CHANGE);
}

/* A wrapped node is an object with one key naming its type (upper-case first letter). */
static bool is_wrapped(const jdoc *d, uint32_t i)
{
	const jtok *t = &d->t[i];
	char c;

	if (t->type != J_OBJ || t->end <= i + 2 || d->t[i + 2].end != t->end || d->t[i + 1].type != J_STR ||
	    d->t[i + 1].len == 0)
		return false;
	c = d->text[d->t[i + 1].start];
	return c >= 'A' && c <= 'Z';
}

uint32_t node_body(const jdoc *d, uint32_t i, const char *type)
{
	if (i == 0 || !is_wrapped(d, i) || !jstr_eq(d, i + 1, type))
		return 0;
	return i + 2;
}

char *const_text(pc_walk *w, uint32_t i)
{
	const jdoc *d = w->d;
	uint32_t b = node_body(d, i, "A_Const"), v, inner;
	char buf[32];

	if (!b)
		return NULL;
	/* Why: the literal's value now decides facts, so the cache must not share them. */
	w->f->flags |= PF_LITERAL_DEP;
	if ((v = jobj_get(d, b, "sval")) && (inner = jobj_get(d, v, "sval")))
		return jstr_dup(d, inner);
	if ((v = jobj_get(d, b, "boolval")))
		return strdup(jobj_get(d, v, "boolval") ? "true" : "false");
	if ((v = jobj_get(d, b, "ival"))) {
		inner = jobj_get(d, v, "ival");
		snprintf(buf, sizeof(buf), "%ld", inner ? jnum(d, inner) : 0L);
		return strdup(buf);
	}
	if ((v = jobj_get(d, b, "fval")) && (inner = jobj_get(d, v, "fval")))
		return jstr_dup(d, inner);
	return NULL;
}

static bool bool_field(const jdoc *d, uint32_t obj, const char *key)
{
	uint32_t v = jobj_get(d, obj, key);

	return v && d->t[v].type == J_LIT && d->text[d->t[v].start] == 't';
}

static bool is_pg_settings(const jdoc *d, uint32_t rel)
{
	uint32_t schema;

	if (!rel || !jstr_eq(d, jobj_get(d, rel, "relname"), "pg_settings"))
		return false;
	schema = jobj_get(d, rel, "schemaname");
	return !schema || jstr_eq(d, schema, "pg_catalog");
}

/*
 * Record a relation a statement names (an unwrapped RangeVar body): "schema.name"
 * or "name", folded as the parser gave them (catalogname is the database: dropped).
 * The catalog judges the names that are views (policy_decide); tables are nothing.
 */
static void add_relation_to(pc_walk *w, uint32_t rv, pc_strlist *list)
{
	const jdoc *d = w->d;
	char *schema, *name, qual[300];

	if (!rv || d->t[rv].type != J_OBJ)
		return;
	schema = jobj_get(d, rv, "schemaname") ? jstr_dup(d, jobj_get(d, rv, "schemaname")) : NULL;
	name = jobj_get(d, rv, "relname") ? jstr_dup(d, jobj_get(d, rv, "relname")) : NULL;
	if (name && (schema || !jobj_get(d, rv, "schemaname"))) {
		snprintf(qual, sizeof(qual), "%s%s%s", schema ? schema : "", schema ? "." : "", name);
		facts_add(w->f, list, qual, strlen(qual), false);
	} else if (jobj_get(d, rv, "relname")) {
		w->f->oom = true; /* a name we could not copy: the facts are discarded */
	}
	free(schema);
	free(name);
}

static void add_relation(pc_walk *w, uint32_t rv)
{
	add_relation_to(w, rv, &w->f->rels);
}

/* A relation written: named like any other, and its write hooks (triggers, defaults...) are judged. */
void add_written_relation(pc_walk *w, uint32_t rv)
{
	add_relation_to(w, rv, &w->f->rels);
	add_relation_to(w, rv, &w->f->wrels);
}

/* A RangeVar in FROM (and other Node lists): a relation read. */
static void on_rangevar(pc_walk *w, uint32_t body)
{
	add_relation(w, body);
	walk_fields(w, body);
}

/* INSERT/UPDATE/DELETE/MERGE: writes; on pg_settings they can set any setting, role included. */
static void on_dml(pc_walk *w, uint32_t body, const char *what)
{
	if (is_pg_settings(w->d, jobj_get(w->d, body, "relation")))
		mark_identity(w, "%s pg_settings", what);
	/* Why: the target is an unwrapped RangeVar; UPDATE/DELETE through a view evaluate its quals. */
	add_written_relation(w, jobj_get(w->d, body, "relation"));
	mark_write(w, "%s", what);
	walk_fields(w, body);
}

static void on_insert(pc_walk *w, uint32_t b)
{
	on_dml(w, b, "INSERT");
}
static void on_update(pc_walk *w, uint32_t b)
{
	on_dml(w, b, "UPDATE");
}
static void on_delete(pc_walk *w, uint32_t b)
{
	on_dml(w, b, "DELETE");
}
static void on_merge(pc_walk *w, uint32_t b)
{
	on_dml(w, b, "MERGE");
}

static void on_select(pc_walk *w, uint32_t body)
{
	if (jobj_get(w->d, body, "intoClause"))
		mark_write(w, "SELECT INTO");
	if (jobj_get(w->d, body, "lockingClause"))
		mark_write(w, "SELECT with a locking clause (FOR UPDATE/SHARE)");
	walk_select_body(w, body);
}

/* EXPLAIN: without ANALYZE nothing runs (but planning may fold user functions: still recorded). */
static void on_explain(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t opts = jobj_get(d, body, "options"), c, de;
	bool analyze = false;

	if (opts && d->t[opts].type == J_ARR) {
		for (c = opts + 1; c < d->t[opts].end; c = d->t[c].end) {
			/* Any ANALYZE option counts, even "ANALYZE false": conservative. */
			if ((de = node_body(d, c, "DefElem")) && jstr_eq(d, jobj_get(d, de, "defname"), "analyze"))
				analyze = true;
		}
	}
	if (!analyze)
		w->plan_only++;
	walk_fields(w, body);
	if (!analyze)
		w->plan_only--;
}

static void on_transaction(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t kind = jobj_get(d, body, "kind");

	w->f->flags |= PF_TXN_CONTROL;
	if (jstr_eq(d, kind, "TRANS_STMT_ROLLBACK") || jstr_eq(d, kind, "TRANS_STMT_ROLLBACK_TO") ||
	    jstr_eq(d, kind, "TRANS_STMT_PREPARE"))
		w->f->flags |= PF_TXN_UNDO;
	/*
	 * Two-phase commit can commit writes prepared earlier (even inside a
	 * window), and is refused on every target: a prepared transaction
	 * outlives the client and the pooled connection it ran on (DISCARD ALL
	 * does not touch it), keeps its locks and holds back vacuum, and any
	 * session of the same role, another actor or tenant, may COMMIT or
	 * ROLLBACK PREPARED it (README, "What a pooled connection's reset covers").
	 */
	if (jstr_eq(d, kind, "TRANS_STMT_PREPARE") || jstr_eq(d, kind, "TRANS_STMT_COMMIT_PREPARED") ||
	    jstr_eq(d, kind, "TRANS_STMT_ROLLBACK_PREPARED")) {
		mark_write(w, "two-phase commit");
		mark_opaque(w, "two-phase commit: a prepared transaction outlives the session and its connection");
	}
	check_txn_options(w, jobj_get(d, body, "options"));
}

static void on_copy(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;

	if (bool_field(d, body, "is_program"))
		mark_opaque(w, "COPY ... PROGRAM runs a server command");
	else if (jobj_get(d, body, "filename"))
		mark_opaque(w, "COPY to or from a server file");
	if (bool_field(d, body, "is_from")) {
		mark_write(w, "COPY FROM");
		add_written_relation(w, jobj_get(d, body, "relation"));
	}
	walk_fields(w, body);
}

static void on_discard(pc_walk *w, uint32_t body)
{
	/* DISCARD ALL = RESET ALL + SET SESSION AUTHORIZATION DEFAULT + ...: relay re-pins. */
	if (jstr_eq(w->d, jobj_get(w->d, body, "target"), "DISCARD_ALL"))
		w->f->flags |= PF_SESSION_RESET | PF_DISCARD_ALL;
	else if (jstr_eq(w->d, jobj_get(w->d, body, "target"), "DISCARD_TEMP"))
		w->f->flags |= PF_DISCARD_TEMP;
}

static void on_notify(pc_walk *w, uint32_t body)
{
	mark_write(w, "NOTIFY");
}

static void on_locking(pc_walk *w, uint32_t body)
{
	mark_write(w, "SELECT with a locking clause (FOR UPDATE/SHARE)");
}

static void on_read_leaf(pc_walk *w, uint32_t body)
{
	/* SHOW, FETCH, MOVE, CLOSE, LISTEN, UNLISTEN: read-only, nothing below matters. */
}

static void on_do(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t args = jobj_get(d, body, "args"), c, de, arg, s;
	char *lang = NULL, *code = NULL;
	size_t code_len = 0;

	/* Why: the body is a string literal; its value decides these facts. */
	w->f->flags |= PF_LITERAL_DEP;
	for (c = args ? args + 1 : 0; args && c < d->t[args].end; c = d->t[c].end) {
		if (!(de = node_body(d, c, "DefElem")) || !(arg = jobj_get(d, de, "arg")))
			continue;
		if (!(s = node_body(d, arg, "String")) || !(s = jobj_get(d, s, "sval")))
			continue;
		if (jstr_eq(d, jobj_get(d, de, "defname"), "language")) {
			free(lang);
			lang = jstr_dup(d, s);
		} else if (jstr_eq(d, jobj_get(d, de, "defname"), "as")) {
			free(code);
			code = jstr_dup(d, s);
			code_len = code ? strlen(code) : 0;
		}
	}
	if (lang && strcmp(lang, "plpgsql") != 0)
		mark_opaque(w, "DO block in language %s", lang);
	else if (!code)
		mark_opaque(w, "DO block without a body");
	else
		walk_do_block(w->f, code, code_len, w->nest + 1, w->depth_base + w->depth);
	free(lang);
	free(code);
}

/* Function name parts from a funcname list: schema (or NULL) and name, decoded. */
static bool func_name(const jdoc *d, uint32_t list, char **schema, char **name)
{
	uint32_t parts[3], np = 0, c, s;

	*schema = *name = NULL;
	if (!list || d->t[list].type != J_ARR)
		return false;
	for (c = list + 1; c < d->t[list].end; c = d->t[c].end) {
		if (np == 3 || !(s = node_body(d, c, "String")) || !(s = jobj_get(d, s, "sval")))
			return false;
		parts[np++] = s;
	}
	if (np == 0)
		return false;
	*name = jstr_dup(d, parts[np - 1]);
	if (np >= 2)
		*schema = jstr_dup(d, parts[np - 2]);
	return *name && (np == 1 || *schema);
}

static uint32_t count_args(const jdoc *d, uint32_t fbody)
{
	uint32_t args = jobj_get(d, fbody, "args"), n = 0;

	for (uint32_t c = args ? args + 1 : 0; args && c < d->t[args].end; c = d->t[c].end)
		n++;
	return n;
}

static void judge_function(pc_walk *w, uint32_t body, const char *schema, const char *name)
{
	pc_builtin_class bc = BF_UNKNOWN;
	char qual[300];

	bc = builtin_lookup(name);
	/* Read-only and special built-ins only where PostgreSQL's own live; SQL runners anywhere. */
	if (schema && strcmp(schema, "pg_catalog") != 0 && bc != BF_OPAQUE_SQL && bc != BF_SERVER_FILE)
		bc = BF_UNKNOWN;
	/* Why: public.lower(integer) is what PostgreSQL picks for lower(1); the catalog judges those. */
	if (!schema && bc != BF_UNKNOWN)
		facts_add(w->f, &w->f->builtins, name, strlen(name), false);
	/* Named without arguments (CREATE TRIGGER): what depends on them counts as the worst. */
	if (!body && (bc == BF_SET_CONFIG || bc == BF_TS_REWRITE))
		bc = BF_OPAQUE_SQL;
	if (bc == BF_WRITE && strncmp(name, "pg_", 3) == 0 && strstr(name, "advisory_lock") && !strstr(name, "xact"))
		w->f->flags |= PF_HOLD_LOCK; /* a session-level advisory lock outlives the transaction */
	if (strcmp(name, "pg_advisory_unlock_all") == 0)
		w->f->flags |= PF_UNLOCK_ALL;
	switch (bc) {
	case BF_READ:
		break;
	case BF_WRITE:
		mark_write(w, "function %s", name);
		break;
	case BF_OPAQUE_SQL:
		mark_opaque(w, "function %s runs SQL given as text", name);
		break;
	case BF_SERVER_FILE:
		mark_opaque(w, "function %s accesses server files", name);
		break;
	case BF_SET_CONFIG:
		on_set_config(w, body);
		break;
	case BF_TS_REWRITE:
		if (count_args(w->d, body) == 2)
			mark_opaque(w, "function ts_rewrite runs SQL given as text");
		break;
	case BF_UNKNOWN:
		snprintf(qual, sizeof(qual), "%s%s%s", schema ? schema : "", schema ? "." : "", name);
		facts_add(w->f, &w->f->funcs, qual, strlen(qual), false);
		w->f->flags |= PF_USER_FUNC;
		break;
	}
}

/* A function named by a list (FuncCall.funcname, CREATE TRIGGER's funcname): judged as a call of it. */
void judge_named_call(pc_walk *w, uint32_t list)
{
	char *schema, *name;

	if (!func_name(w->d, list, &schema, &name))
		mark_identity(w, "function call pgwarden cannot name");
	else
		judge_function(w, 0, schema, name);
	free(schema);
	free(name);
}

/* A function call: built-ins by table; anything else is recorded as a user function. */
static void on_funccall(pc_walk *w, uint32_t body)
{
	char *schema, *name;

	if (!func_name(w->d, jobj_get(w->d, body, "funcname"), &schema, &name))
		mark_identity(w, "function call pgwarden cannot name");
	else
		judge_function(w, body, schema, name);
	free(schema);
	free(name);
	walk_fields(w, body);
}

/*
 * CALL: judged by the procedure's body, like a function call (the catalog
 * classifies procedures too; without one, an untrusted name is a write on
 * production). Why not on_funccall: there are no built-in procedures, so the
 * name never means the built-in table's function (CALL lower('x') runs a user
 * procedure named lower). Its FuncCall is not wrapped.
 */
static void on_call(pc_walk *w, uint32_t body)
{
	uint32_t fc = jobj_get(w->d, body, "funccall");
	char *schema = NULL, *name = NULL, qual[300];

	if (!fc || w->d->t[fc].type != J_OBJ || !func_name(w->d, jobj_get(w->d, fc, "funcname"), &schema, &name)) {
		mark_identity(w, "CALL of a procedure pgwarden cannot name");
	} else {
		snprintf(qual, sizeof(qual), "%s%s%s", schema ? schema : "", schema ? "." : "", name);
		facts_add(w->f, &w->f->funcs, qual, strlen(qual), false);
		w->f->flags |= PF_USER_FUNC;
		walk_fields(w, fc);
	}
	free(schema);
	free(name);
}

static void on_set(pc_walk *w, uint32_t b)
{
	on_variable_set(w, b, false);
}

/*
 * Statements that can change which functions exist or what they do (the relay
 * re-reads the function catalog after them). All are writes. A function
 * created in pg_temp is invisible to the catalog's own connection, so calling
 * it could never be verified: refused outright.
 */
static void mark_func_ddl(pc_walk *w, const char *what)
{
	w->f->flags |= PF_FUNC_DDL;
	mark_write(w, "%s", what);
}

static bool names_pg_temp(const jdoc *d, uint32_t list)
{
	uint32_t c, s;

	if (!list || d->t[list].type != J_ARR || d->t[list].end <= list + 2)
		return false; /* unqualified (one element) or absent */
	c = list + 1;
	return (s = node_body(d, c, "String")) && jstr_eq(d, jobj_get(d, s, "sval"), "pg_temp");
}

static void on_create_function(pc_walk *w, uint32_t body)
{
	if (names_pg_temp(w->d, jobj_get(w->d, body, "funcname")))
		mark_opaque(w, "temporary functions cannot be verified by pgwarden");
	mark_func_ddl(w, bool_field(w->d, body, "is_procedure") ? "CREATE PROCEDURE" : "CREATE FUNCTION");
	walk_fields(w, body);
}

/* The statement's command tag for messages ("ALTER EXTENSION"), or 'fallback'. */
static const char *tag_or(pc_walk *w, uint32_t body, char *buf, size_t bufsz, const char *fallback)
{
	const char *tag = stmt_command_tag(w->d, body, buf, bufsz);

	return tag ? tag : fallback;
}

static void on_func_ddl(pc_walk *w, uint32_t body)
{
	char buf[80];

	mark_func_ddl(w, tag_or(w, body, buf, sizeof(buf), "function definition change"));
	walk_fields(w, body);
}

/* DDL that changes what an operator, cast, type or table runs (the catalog's hooks): a write, and the
 * catalog is read again after it. */
void on_hook_ddl(pc_walk *w, uint32_t body)
{
	char buf[80];

	mark_func_ddl(w, tag_or(w, body, buf, sizeof(buf), "definition change of a table, type, operator or cast"));
	walk_fields(w, body);
}

/* CREATE [OR REPLACE] VIEW, CREATE RULE: what reading a relation runs changes (the catalog holds views). */
static void on_view_ddl(pc_walk *w, uint32_t body)
{
	char buf[80];

	mark_func_ddl(w, tag_or(w, body, buf, sizeof(buf), "view definition change"));
	walk_fields(w, body);
}

/* Object types whose DROP, RENAME or SET SCHEMA changes the function catalog. */
static bool objtype_is_func_ddl(const jdoc *d, uint32_t t)
{
	/* Functions and views, and every object whose hooks the catalog reads (catalog_hooks.c): tables,
	 * triggers, policies, types, domains, casts, operators, operator classes, event triggers. */
	static const char *const kinds[] = {
		"OBJECT_FUNCTION",      "OBJECT_PROCEDURE",     "OBJECT_ROUTINE",       "OBJECT_AGGREGATE",
		"OBJECT_SCHEMA",        "OBJECT_EXTENSION",     "OBJECT_LANGUAGE",      "OBJECT_VIEW",
		"OBJECT_RULE",          "OBJECT_TABLE",         "OBJECT_FOREIGN_TABLE", "OBJECT_COLUMN",
		"OBJECT_TRIGGER",       "OBJECT_POLICY",        "OBJECT_TYPE",          "OBJECT_DOMAIN",
		"OBJECT_DOMCONSTRAINT", "OBJECT_TABCONSTRAINT", "OBJECT_CAST",          "OBJECT_OPERATOR",
		"OBJECT_OPCLASS",       "OBJECT_OPFAMILY",      "OBJECT_EVENT_TRIGGER", "OBJECT_INDEX",
		"OBJECT_MATVIEW",       "OBJECT_ATTRIBUTE",
	};

	return jstr_in(d, t, kinds, sizeof(kinds) / sizeof(kinds[0]));
}

static void on_objtype_stmt(pc_walk *w, uint32_t body, const char *key, const char *what)
{
	char buf[80];

	if (objtype_is_func_ddl(w->d, jobj_get(w->d, body, key)))
		w->f->flags |= PF_FUNC_DDL;
	mark_write(w, "%s", tag_or(w, body, buf, sizeof(buf), what));
	walk_fields(w, body);
}

static void on_drop(pc_walk *w, uint32_t body)
{
	on_objtype_stmt(w, body, "removeType", "DropStmt");
}

static void on_rename(pc_walk *w, uint32_t body)
{
	note_role_rename(w, body);
	on_objtype_stmt(w, body, "renameType", "RenameStmt");
}

static void on_alter_schema_of(pc_walk *w, uint32_t body)
{
	on_objtype_stmt(w, body, "objectType", "AlterObjectSchemaStmt");
}

static void on_define(pc_walk *w, uint32_t body)
{
	on_objtype_stmt(w, body, "kind", "DefineStmt"); /* CREATE AGGREGATE */
}

/* ALTER DEFAULT PRIVILEGES ... GRANT: its GrantStmt is not wrapped. */
static void on_alter_default_privs(pc_walk *w, uint32_t body)
{
	uint32_t a = jobj_get(w->d, body, "action");

	mark_write(w, "ALTER DEFAULT PRIVILEGES");
	if (a && w->d->t[a].type == J_OBJ)
		on_grant(w, a);
}

/* Statements that can only run at top level; nested (e.g. inside a DO block) we refuse to follow. */
static void on_prepared_nested(pc_walk *w, uint32_t body)
{
	mark_opaque(w, "prepared statement outside the top level");
	walk_fields(w, body);
}

typedef void (*node_handler)(pc_walk *w, uint32_t body);

typedef struct node_kind {
	const char *name; /* libpg_query node type */
	node_handler on;  /* NULL: harmless part of a query, walk its fields */
} node_kind;

/* Sorted by name (strcmp): bsearch. */
static const node_kind node_kinds[] = {
	{ "A_ArrayExpr", NULL },
	{ "A_Const", NULL },
	{ "A_Expr", on_aexpr },
	{ "A_Indices", NULL },
	{ "A_Indirection", on_indirection },
	{ "A_Star", NULL },
	{ "Alias", NULL },
	{ "AlterDefaultPrivilegesStmt", on_alter_default_privs },
	{ "AlterDomainStmt", on_ddl_self_judged },
	{ "AlterEventTrigStmt", on_hook_ddl },
	{ "AlterExtensionContentsStmt", on_func_ddl },
	{ "AlterExtensionStmt", on_func_ddl },
	{ "AlterFunctionStmt", on_func_ddl },
	{ "AlterObjectSchemaStmt", on_alter_schema_of },
	{ "AlterOpFamilyStmt", on_hook_ddl },
	{ "AlterOperatorStmt", on_hook_ddl },
	{ "AlterPolicyStmt", on_policy_ddl },
	{ "AlterRoleSetStmt", on_alter_role_set },
	{ "AlterRoleStmt", on_alter_role },
	{ "AlterTableStmt", on_alter_table },
	{ "AlterTypeStmt", on_hook_ddl },
	{ "AlterUserMappingStmt", on_user_mapping },
	{ "BitString", NULL },
	{ "BoolExpr", NULL },
	{ "Boolean", NULL },
	{ "BooleanTest", NULL },
	{ "CTECycleClause", NULL },
	{ "CTESearchClause", NULL },
	{ "CallStmt", on_call },
	{ "CaseExpr", NULL },
	{ "CaseWhen", NULL },
	{ "ClosePortalStmt", on_read_leaf },
	{ "CoalesceExpr", NULL },
	{ "CollateClause", NULL },
	{ "ColumnDef", NULL },
	{ "ColumnRef", on_columnref },
	{ "CommonTableExpr", NULL },
	{ "CompositeTypeStmt", on_ddl_self_judged },
	{ "ConstraintsSetStmt", on_read_leaf }, /* SET CONSTRAINTS: this transaction's checks only */
	{ "CopyStmt", on_copy },
	{ "CreateCastStmt", on_hook_ddl },
	{ "CreateDomainStmt", on_ddl_self_judged },
	{ "CreateEventTrigStmt", on_create_trigger },
	{ "CreateExtensionStmt", on_func_ddl },
	{ "CreateForeignTableStmt", on_ddl_self_judged },
	{ "CreateFunctionStmt", on_create_function },
	{ "CreateOpClassStmt", on_hook_ddl },
	{ "CreateOpFamilyStmt", on_hook_ddl },
	{ "CreatePLangStmt", on_func_ddl },
	{ "CreatePolicyStmt", on_policy_ddl },
	{ "CreateRangeStmt", on_ddl_self_judged },
	{ "CreateRoleStmt", on_create_role },
	{ "CreateSchemaStmt", on_ddl_self_judged },
	{ "CreateStmt", on_ddl_self_judged },
	{ "CreateTrigStmt", on_create_trigger },
	{ "CreateUserMappingStmt", on_user_mapping },
	{ "CreatedbStmt", on_createdb },
	{ "CurrentOfExpr", NULL },
	{ "DeallocateStmt", on_prepared_nested },
	{ "DeclareCursorStmt", NULL },
	{ "DefElem", NULL },
	{ "DefineStmt", on_define },
	{ "DeleteStmt", on_delete },
	{ "DiscardStmt", on_discard },
	{ "DoStmt", on_do },
	{ "DropOwnedStmt", on_owned_by },
	{ "DropRoleStmt", on_drop_role },
	{ "DropStmt", on_drop },
	{ "ExecuteStmt", on_prepared_nested },
	{ "ExplainStmt", on_explain },
	{ "FetchStmt", on_read_leaf },
	{ "Float", NULL },
	{ "FuncCall", on_funccall },
	{ "GrantRoleStmt", on_grant_role },
	{ "GrantStmt", on_grant },
	{ "GroupingFunc", NULL },
	{ "GroupingSet", NULL },
	{ "IndexStmt", on_ddl_self_judged },
	{ "InsertStmt", on_insert },
	{ "Integer", NULL },
	{ "JoinExpr", NULL },
	{ "List", NULL },
	{ "ListenStmt", on_read_leaf },
	{ "LoadStmt", on_load },
	{ "LockStmt", on_lock },
	{ "LockingClause", on_locking },
	{ "MergeStmt", on_merge },
	{ "MinMaxExpr", NULL },
	{ "MultiAssignRef", NULL },
	{ "NamedArgExpr", NULL },
	{ "NotifyStmt", on_notify },
	{ "NullTest", NULL },
	{ "ParamRef", NULL },
	{ "PrepareStmt", on_prepared_nested },
	{ "RangeFunction", NULL },
	{ "RangeSubselect", NULL },
	{ "RangeTableFunc", NULL },
	{ "RangeTableFuncCol", NULL },
	{ "RangeTableSample", NULL },
	{ "RangeVar", on_rangevar },
	{ "ReassignOwnedStmt", on_owned_by },
	{ "RenameStmt", on_rename },
	{ "ResTarget", NULL },
	{ "ReturnStmt", NULL },
	{ "RowExpr", NULL },
	{ "RuleStmt", on_view_ddl },
	{ "SQLValueFunction", NULL },
	{ "SelectStmt", on_select },
	{ "SetToDefault", NULL },
	{ "SortBy", NULL },
	{ "String", NULL },
	{ "SubLink", on_sublink },
	{ "TransactionStmt", on_transaction },
	{ "TruncateStmt", on_truncate },
	{ "TypeCast", on_typecast },
	{ "TypeName", on_typename },
	{ "UnlistenStmt", on_read_leaf },
	{ "UpdateStmt", on_update },
	{ "VariableSetStmt", on_set },
	{ "VariableShowStmt", on_read_leaf },
	{ "ViewStmt", on_view_ddl },
	{ "WindowDef", NULL },
	{ "WithClause", NULL },
	{ "XmlExpr", NULL },
	{ "XmlSerialize", NULL },
};

static const node_kind *find_kind(const char *p, size_t len)
{
	size_t lo = 0, hi = sizeof(node_kinds) / sizeof(node_kinds[0]);

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const char *n = node_kinds[mid].name;
		size_t nl = strlen(n);
		int c = memcmp(n, p, nl < len ? nl : len);

		if (c == 0)
			c = (nl > len) - (nl < len);
		if (c == 0)
			return &node_kinds[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void walk_node(pc_walk *w, uint32_t typetok, uint32_t body)
{
	const jtok *t = &w->d->t[typetok];
	const node_kind *k = find_kind(w->d->text + t->start, t->len);

	if (k && k->on) {
		k->on(w, body);
		return;
	}
	if (!k) {
		char buf[80];
		const char *tag = stmt_command_tag(w->d, body, buf, sizeof(buf));

		/* Messages speak SQL ("CREATE TABLE"); a non-statement node can only be named by its type. */
		if (tag)
			mark_write(w, "%s", tag);
		else
			mark_write(w, "%.*s", (int)(t->len < 64 ? t->len : 64), w->d->text + t->start);
	}
	walk_fields(w, body);
}

/*
 * DDL: every identifier it mentions may be what it changes (a function, a table whose triggers or defaults
 * it changes, a type, an operator): the catalog is stale for those names only. Longer strings are bodies.
 */
static void add_ddl_name(pc_walk *w, uint32_t key, uint32_t val)
{
	const jdoc *d = w->d;
	char *v;

	if (!(jstr_eq(d, key, "sval") || jstr_eq(d, key, "relname") || jstr_eq(d, key, "newname")) ||
	    d->t[val].len == 0 || d->t[val].len > 4 * 63)
		return;
	if (!(v = jstr_dup(d, val))) {
		w->f->oom = true;
		return;
	}
	if (strlen(v) <= 63)
		facts_add(w->f, &w->f->ddl_names, v, strlen(v), false);
	free(v);
}

/* Field names whose (unwrapped) value is a RoleSpec receiving ownership. */
static bool is_owner_field(const jdoc *d, uint32_t key)
{
	return jstr_eq(d, key, "newowner") || jstr_eq(d, key, "authrole") || jstr_eq(d, key, "newrole") ||
	       jstr_eq(d, key, "owner"); /* CREATE TABLESPACE ... OWNER */
}

void walk_fields(pc_walk *w, uint32_t obj)
{
	const jdoc *d = w->d;

	if (d->t[obj].type != J_OBJ)
		return;
	for (uint32_t c = obj + 1; c + 1 < d->t[obj].end; c = d->t[c + 1].end) {
		if (d->t[c + 1].type == J_STR && (w->f->flags & PF_FUNC_DDL))
			add_ddl_name(w, c, c + 1);
		if (d->t[c + 1].type != J_OBJ && d->t[c + 1].type != J_ARR)
			continue;
		if (is_owner_field(d, c))
			add_rolespec(w, c + 1);
		else if (jstr_eq(d, c, "setstmt"))
			on_variable_set(w, c + 1, true); /* ALTER ROLE/DATABASE/SYSTEM ... SET */
		else if (jstr_eq(d, c, "relation") || jstr_eq(d, c, "view") || jstr_eq(d, c, "rel"))
			note_named_relation(w, c + 1), walk_value(w, c + 1);
		else
			walk_value(w, c + 1);
	}
}

void walk_value(pc_walk *w, uint32_t i)
{
	const jdoc *d = w->d;

	if (w->depth + w->depth_base >= PC_MAX_WALK_DEPTH) {
		w->too_deep = true;
		return;
	}
	w->depth++;
	if (d->t[i].type == J_ARR) {
		for (uint32_t c = i + 1; c < d->t[i].end; c = d->t[c].end)
			walk_value(w, c);
	} else if (is_wrapped(d, i)) {
		walk_node(w, i + 1, i + 2);
	} else if (d->t[i].type == J_OBJ) {
		walk_fields(w, i);
	}
	w->depth--;
}
