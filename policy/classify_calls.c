/* classify_calls.c - calls a statement makes without a FuncCall: attribute notation, operators, casts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classify_int.h"

/*
 * PostgreSQL decides during parse analysis, from its catalog, which
 * functions these run; the parse tree only names them. The walk records the
 * names and the catalog judges them (policy_decide, catalog_judge_*):
 *  - attribute notation: "t.name", "(expr).name" and "(row).name" are
 *    name(t) when no column "name" exists (ParseFuncOrColumn, transformColumnRef,
 *    transformIndirection). The LAST field of a ColumnRef with two or more
 *    fields, and every field name of an A_Indirection, may be such a call.
 *  - operators: every A_Expr names an operator (IN means "=", LIKE "~~",
 *    BETWEEN ">=" and "<="); ANY/ALL sublinks without an operator mean "=".
 *  - casts: "x::t", CAST(x AS t) and the column types of a written table run
 *    the cast function into t, and a domain's CHECK constraints.
 */

/* "schema.name" or "name" from a list of String nodes (the last two, decoded); false if it is not one. */
static bool name_list(const jdoc *d, uint32_t list, char *out, size_t outsz)
{
	uint32_t parts[4], np = 0, c, s;
	char *a = NULL, *b;

	if (!list || d->t[list].type != J_ARR)
		return false;
	for (c = list + 1; c < d->t[list].end; c = d->t[c].end) {
		if (np == 4 || !(s = node_body(d, c, "String")) || !(s = jobj_get(d, s, "sval")))
			return false;
		parts[np++] = s;
	}
	if (np == 0 || (np >= 2 && !(a = jstr_dup(d, parts[np - 2]))) || !(b = jstr_dup(d, parts[np - 1]))) {
		free(a);
		return false;
	}
	snprintf(out, outsz, "%s%s%s", a ? a : "", a ? "." : "", b);
	free(a);
	free(b);
	return true;
}

/* A field name PostgreSQL may resolve to a one-argument function (decoded: JSON escapes undone). */
static void add_attr(pc_walk *w, uint32_t string_node)
{
	uint32_t s = node_body(w->d, string_node, "String");
	char *name;

	if (!s || !(s = jobj_get(w->d, s, "sval")))
		return;
	if (!(name = jstr_dup(w->d, s))) {
		w->f->oom = true;
		return;
	}
	facts_add(w->f, &w->f->attrs, name, strlen(name), false);
	free(name);
}

void on_columnref(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t fields = jobj_get(d, body, "fields"), c, last = 0, n = 0;

	for (c = fields ? fields + 1 : 0; fields && d->t[fields].type == J_ARR && c < d->t[fields].end;
	     c = d->t[c].end) {
		last = c;
		n++;
	}
	/* Why: a one-field reference is a column or an error; "a.b" may be b(a), "a.b.c" c(a.b). */
	if (n >= 2)
		add_attr(w, last);
	walk_fields(w, body);
}

void on_indirection(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t ind = jobj_get(d, body, "indirection"), c;

	for (c = ind ? ind + 1 : 0; ind && d->t[ind].type == J_ARR && c < d->t[ind].end; c = d->t[c].end)
		add_attr(w, c);
	walk_fields(w, body);
}

static void add_oper(pc_walk *w, const char *op)
{
	facts_add(w->f, &w->f->opers, op, strlen(op), false);
}

void on_aexpr(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t kind = jobj_get(d, body, "kind");
	char op[200];

	if (kind && d->t[kind].len >= 13 && memcmp(d->text + d->t[kind].start, "AEXPR_BETWEEN", 13) == 0) {
		add_oper(w, ">="); /* BETWEEN and its variants expand to >= and <= (transformAExprBetween) */
		add_oper(w, "<=");
	} else if (kind && d->t[kind].len >= 11 && memcmp(d->text + d->t[kind].start, "AEXPR_NOT_B", 11) == 0) {
		add_oper(w, "<");
		add_oper(w, ">");
	} else if (name_list(d, jobj_get(d, body, "name"), op, sizeof(op))) {
		add_oper(w, op);
	} else {
		add_oper(w, "="); /* an operator we cannot name: judged as the most common one, and any */
		add_oper(w, "*");
	}
	walk_fields(w, body);
}

void on_sublink(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t t = jobj_get(d, body, "subLinkType");
	char op[200];

	if (name_list(d, jobj_get(d, body, "operName"), op, sizeof(op)))
		add_oper(w, op);
	else if (jstr_eq(d, t, "ANY_SUBLINK") || jstr_eq(d, t, "ALL_SUBLINK"))
		add_oper(w, "="); /* x IN (SELECT ...): operName is empty, "=" is meant */
	walk_fields(w, body);
}

/* A type named by a cast: casts into it and its domain checks run. tn: a TypeName body. */
static void add_type(pc_walk *w, uint32_t tn)
{
	char t[200];

	if (tn && w->d->t[tn].type == J_OBJ && name_list(w->d, jobj_get(w->d, tn, "names"), t, sizeof(t))) {
		/* Why: "pg_catalog.int4" and "int4" are one type; the catalog indexes bare names. */
		const char *bare = strncmp(t, "pg_catalog.", 11) == 0 ? t + 11 : t;

		facts_add(w->f, &w->f->types, bare, strlen(bare), false);
	}
}

void on_typename(pc_walk *w, uint32_t body)
{
	add_type(w, body);
	walk_fields(w, body);
}

/* x::t and CAST(x AS t): the TypeName is not wrapped. */
void on_typecast(pc_walk *w, uint32_t body)
{
	add_type(w, jobj_get(w->d, body, "typeName"));
	walk_fields(w, body);
}

/* TRUNCATE: a write; its tables' TRUNCATE triggers run. */
void on_truncate(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t rels = jobj_get(d, body, "relations"), c, rv;

	mark_write(w, "TRUNCATE TABLE"); /* PostgreSQL's command tag */
	for (c = rels ? rels + 1 : 0; rels && d->t[rels].type == J_ARR && c < d->t[rels].end; c = d->t[c].end) {
		if ((rv = node_body(d, c, "RangeVar")))
			add_written_relation(w, rv);
	}
	walk_fields(w, body);
}

/*
 * DDL whose every expression is in its own text (defaults, CHECKs, generated
 * columns, index expressions, policy quals, domain CHECKs) is judged like
 * the calls it binds, so what it makes the object run is what this statement
 * was judged for. The catalog is read again after it (to know the object
 * later), but nothing existing becomes stale: the same transaction may go on
 * using the new table (CREATE TABLE t; COPY t FROM STDIN in pg_dump output).
 * The empty name marks "names known, none stale" (no name is empty).
 */
void on_ddl_self_judged(pc_walk *w, uint32_t body)
{
	char buf[80];
	const char *tag = stmt_command_tag(w->d, body, buf, sizeof(buf));

	/* Messages speak SQL ("CREATE TABLE"). */
	mark_write(w, "%s", tag ? tag : "definition of a table, index, type, domain or policy");
	walk_fields(w, body); /* before PF_FUNC_DDL: its identifiers are not collected as stale names */
	w->f->flags |= PF_FUNC_DDL;
	facts_add(w->f, &w->f->ddl_names, "", 0, false);
}

/* CREATE [EVENT] TRIGGER: the function it binds is judged as called here; a later CREATE OR REPLACE of
 * that function makes its name stale. */
void on_create_trigger(pc_walk *w, uint32_t body)
{
	judge_named_call(w, jobj_get(w->d, body, "funcname"));
	on_ddl_self_judged(w, body);
}

/* ALTER TABLE subcommands whose effect is in the statement's own text (or removes what runs). */
static bool subcommand_self_judged(const jdoc *d, uint32_t t)
{
	static const char *const ok[] = {
		"AT_AddColumn",      "AT_ColumnDefault",      "AT_AddConstraint",      "AT_DropColumn",
		"AT_DropConstraint", "AT_DropNotNull",        "AT_SetNotNull",         "AT_SetStatistics",
		"AT_SetStorage",     "AT_ValidateConstraint", "AT_SetRelOptions",      "AT_ResetRelOptions",
		"AT_ClusterOn",      "AT_DropCluster",        "AT_SetCompression",     "AT_AddIdentity",
		"AT_SetIdentity",    "AT_DropIdentity",       "AT_ReplicaIdentity",    "AT_SetLogged",
		"AT_SetUnLogged",    "AT_DisableTrig",        "AT_DisableTrigAll",     "AT_DisableTrigUser",
		"AT_DisableRule",    "AT_DisableRowSecurity", "AT_NoForceRowSecurity", "AT_ChangeOwner",
	};

	return jstr_in(d, t, ok, sizeof(ok) / sizeof(ok[0]));
}

/* ALTER TABLE: self-judged unless a subcommand turns on what exists (ENABLE TRIGGER, row security,
 * ATTACH PARTITION, INHERIT, a column type change): then the table's name is stale. */
void on_alter_table(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t cmds = jobj_get(d, body, "cmds"), c, cmd;

	for (c = cmds ? cmds + 1 : 0; cmds && d->t[cmds].type == J_ARR && c < d->t[cmds].end; c = d->t[c].end) {
		if (!(cmd = node_body(d, c, "AlterTableCmd")) ||
		    !subcommand_self_judged(d, jobj_get(d, cmd, "subtype"))) {
			on_hook_ddl(w, body);
			return;
		}
	}
	on_ddl_self_judged(w, body);
}

/* CREATE/ALTER POLICY: the roles it applies to (grants), its expressions judged as calls, and self-judged DDL. */
void on_policy_ddl(pc_walk *w, uint32_t body)
{
	on_policy(w, body);
	w->f->flags |= PF_FUNC_DDL;
	facts_add(w->f, &w->f->ddl_names, "", 0, false);
}
