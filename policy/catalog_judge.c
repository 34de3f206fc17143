/* catalog_judge.c - what a statement (or a body) makes PostgreSQL run, judged from the catalog. */
#include <stdlib.h>
#include <string.h>

#include "policy/catalog_int.h"
#include "policy/classify_int.h"

/*
 * PostgreSQL decides during parse analysis which functions a statement runs;
 * the facts only name things. Each name is resolved here to every catalog
 * entry it may mean, most restrictive wins:
 *  - a call "name(...)": every function of that name (any schema when
 *    unqualified), the built-in overloads' pg_proc facts, and, when a type has
 *    that name, the cast into it (a function-style cast: jsonb('{}')); a name
 *    that is neither is opaque (created since the catalog was read);
 *  - attribute notation "x.name": every function of that name callable with
 *    ONE argument, user or built-in, and casts into a type of that name; a name
 *    with none of these can only be a column;
 *  - an operator: its hook (the functions of every operator of that name);
 *    the comparison operators sorting, grouping, DISTINCT, joins, CASE and
 *    IN use implicitly are judged for every statement;
 *  - a cast "::t": t's hook (cast functions into t, domain CHECKs);
 *  - a relation read: its view definition, its RLS policies;
 *  - a relation written: its write hook (triggers, defaults, rules, ...);
 *  - a statement that is not read-only: event triggers.
 */

static const char *const why_unknown = "not in the catalog pgwarden read (created since, or temporary): it "
				       "cannot be verified";

/* Operators PostgreSQL may call without one in the text (sort, group, distinct, join, CASE, IN, min/max). */
static const char *const implicit_opers[] = { "=", "<>", "<", ">", "<=", ">=" };

/* Enumeration context: the sink, and the name as the statement used it (for messages). */
typedef struct walk_ctx {
	const cand_sink *sink;
	const char *what;
} walk_ctx;

static void entry_cb(void *arg, const cat_fn *fn)
{
	const walk_ctx *w = arg;

	w->sink->fn(w->sink->arg, w->what, fn);
}

static void sys_bits(const walk_ctx *w, const fn_catalog *c, const char *name, uint32_t bits)
{
	const char *bare = strrchr(name, '.');
	const cat_name *e = catalog_name(c, bare ? bare + 1 : name);

	for (int b = 0; b < CJ_NBITS; b++) {
		if (bits & (1u << b))
			w->sink->bits(w->sink->arg, name, 1u << b, e && e->sys_why[b] ? e->sys_why[b] : "built-in");
	}
}

/* A name that is also a type: name(x) and x.name may be casts into it. */
static bool cast_candidates(const fn_catalog *c, const char *name, walk_ctx *w)
{
	const char *bare = strrchr(name, '.');
	const cat_name *e = catalog_name(c, bare ? bare + 1 : name);

	if (!e || !(e->sys & SYS_TYPE))
		return false;
	catalog_hook_candidates(c, CATALOG_HOOK_TYPE, name, entry_cb, w);
	return true;
}

static void call_candidates(const fn_catalog *c, const char *name, walk_ctx *w)
{
	uint32_t sys = 0;
	int found = catalog_candidates(c, name, false, -1, entry_cb, w, &sys);
	bool cast = cast_candidates(c, name, w);

	if (found == 0 && !cast)
		w->sink->bits(w->sink->arg, name, CJ_OPAQUE, why_unknown);
	sys_bits(w, c, name, sys);
}

static void attr_candidates(const fn_catalog *c, const char *name, walk_ctx *w)
{
	uint32_t sys = 0;

	catalog_candidates(c, name, false, 1, entry_cb, w, &sys);
	cast_candidates(c, name, w);
	sys_bits(w, c, name, sys);
}

static void hook_list(const fn_catalog *c, int kind, const pc_strlist *l, walk_ctx *w)
{
	for (size_t i = 0; i < l->n; i++) {
		w->what = l->v[i];
		catalog_hook_candidates(c, kind, l->v[i], entry_cb, w);
	}
}

void catalog_facts_candidates(const fn_catalog *c, const policy_facts *f, const cand_sink *sink)
{
	walk_ctx w = { .sink = sink };

	for (size_t i = 0; i < f->funcs.n; i++) {
		w.what = f->funcs.v[i];
		call_candidates(c, f->funcs.v[i], &w);
	}
	/* Why: public.lower(integer) is what PostgreSQL picks for lower(1): user functions of the name count. */
	for (size_t i = 0; i < f->builtins.n; i++) {
		w.what = f->builtins.v[i];
		catalog_candidates(c, f->builtins.v[i], true, -1, entry_cb, &w, NULL);
	}
	for (size_t i = 0; i < f->attrs.n; i++) {
		w.what = f->attrs.v[i];
		attr_candidates(c, f->attrs.v[i], &w);
	}
	for (size_t i = 0; i < f->rels.n; i++) {
		w.what = f->rels.v[i];
		catalog_view_candidates(c, f->rels.v[i], entry_cb, &w);
	}
	hook_list(c, CATALOG_HOOK_READ, &f->rels, &w);
	hook_list(c, CATALOG_HOOK_WRITE, &f->wrels, &w);
	hook_list(c, CATALOG_HOOK_TYPE, &f->types, &w);
	/* Why: operators are indexed by name only ("OPERATOR(s.===)" counts every "===", any schema). */
	for (size_t i = 0; i < f->opers.n; i++) {
		const char *dot = strrchr(f->opers.v[i], '.');

		w.what = f->opers.v[i];
		catalog_hook_candidates(c, CATALOG_HOOK_OPERATOR, dot ? dot + 1 : f->opers.v[i], entry_cb, &w);
	}
	for (size_t i = 0; i < sizeof(implicit_opers) / sizeof(implicit_opers[0]); i++) {
		w.what = implicit_opers[i];
		catalog_hook_candidates(c, CATALOG_HOOK_OPERATOR, implicit_opers[i], entry_cb, &w);
	}
	/* Event triggers fire on DDL; DML (a written table) and read-only statements fire none. */
	if (sink->ddl_hooks && !(f->flags & PF_READ_ONLY) && f->wrels.n == 0) {
		w.what = "event trigger";
		catalog_hook_candidates(c, CATALOG_HOOK_DDL, "", entry_cb, &w);
	}
}

/* ---- judging a client statement ---- */

/* What an entry is, for messages: "function", "view", "trigger or default of table"... */
static const char *kind_word(char kind)
{
	switch (kind) {
	case 'v':
		return "view";
	case 'O':
		return "operator";
	case 'Y':
		return "cast or domain";
	case 'W':
		return "trigger, default, rule or constraint of table";
	case 'R':
		return "row-level security policy of table";
	case 'D':
		return "event trigger";
	default:
		return "function";
	}
}

static void judge_add(catalog_judgement *j, const char *what, uint32_t bits, char *const *why, const char *static_why,
		      char kind)
{
	uint32_t add = bits & ~j->bits;

	for (int b = 0; b < CJ_NBITS; b++) {
		if (add & (1u << b)) {
			j->fn[b] = what;
			j->why[b] = why && why[b] ? why[b] : static_why;
			j->view[b] = kind == 'v';
			j->kind[b] = kind_word(kind);
		}
	}
	j->bits |= add;
}

static void judge_entry(void *arg, const char *what, const cat_fn *fn)
{
	/* Why: functions are named as called; a view or hook by its object (the table of a trigger). */
	bool fn_kind = fn->kind == 'f' || fn->kind == 'p' || fn->kind == 'a' || fn->kind == 'w';

	judge_add(arg, fn_kind || fn->kind == 'v' ? what : fn->name, fn->bits, fn->why, "", fn->kind);
	if (fn_kind || fn->calls_user)
		((catalog_judgement *)arg)->user = true;
}

static void judge_direct(void *arg, const char *what, uint32_t bits, const char *why)
{
	judge_add(arg, what, bits, NULL, why, 'f');
}

void catalog_judge_facts(const fn_catalog *c, const policy_facts *f, catalog_judgement *j)
{
	cand_sink sink = { .fn = judge_entry, .bits = judge_direct, .arg = j, .ddl_hooks = true };

	catalog_facts_candidates(c, f, &sink);
}

void catalog_judge(const fn_catalog *c, const char *called, bool builtin_named, catalog_judgement *j)
{
	cand_sink sink = { .fn = judge_entry, .bits = judge_direct, .arg = j, .ddl_hooks = true };
	walk_ctx w = { .sink = &sink, .what = called };

	if (builtin_named)
		catalog_candidates(c, called, true, -1, entry_cb, &w, NULL);
	else
		call_candidates(c, called, &w);
}

void catalog_judge_relation(const fn_catalog *c, const char *rel, catalog_judgement *j)
{
	cand_sink sink = { .fn = judge_entry, .bits = judge_direct, .arg = j, .ddl_hooks = true };
	walk_ctx w = { .sink = &sink, .what = rel };

	catalog_view_candidates(c, rel, entry_cb, &w);
	catalog_hook_candidates(c, CATALOG_HOOK_READ, rel, entry_cb, &w);
}

/* ---- staleness: what a statement uses whose definition changed since the catalog was read ---- */

typedef struct stale_ctx {
	const fn_catalog *c;
	const catalog_stale *st;
	uint8_t *seen; /* one byte per entry; NULL when out of memory (then every entry counts as hit) */
	const char *hit;
} stale_ctx;

/* Depth-first over the entry's edges: an entry is stale when its name, or a reachable entry's, is. */
static void stale_visit(stale_ctx *x, const cat_fn *fn)
{
	size_t i = (size_t)(fn - x->c->fns);

	if (x->hit || (x->seen && x->seen[i]))
		return;
	if (!x->seen || catalog_stale_has(x->st, fn->name)) {
		x->hit = fn->name;
		return;
	}
	x->seen[i] = 1;
	for (size_t k = 0; k < fn->n_callees && !x->hit; k++)
		stale_visit(x, &x->c->fns[fn->callees[k]]);
}

static void stale_entry(void *arg, const char *what, const cat_fn *fn)
{
	stale_visit(arg, fn);
}

static void stale_direct(void *arg, const char *what, uint32_t bits, const char *why)
{
}

static const char *stale_list(const catalog_stale *st, const pc_strlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		if (catalog_stale_has(st, l->v[i]))
			return l->v[i];
	}
	return NULL;
}

const char *catalog_stale_hit(const fn_catalog *c, const policy_facts *f, const catalog_stale *st)
{
	const pc_strlist *lists[] = { &f->funcs, &f->builtins, &f->attrs, &f->rels, &f->wrels, &f->types, &f->opers };
	stale_ctx x = { .c = c, .st = st };
	cand_sink sink = { .fn = stale_entry, .bits = stale_direct, .arg = &x, .ddl_hooks = true };
	const char *hit;

	if (!catalog_stale_any(st))
		return NULL;
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		if ((hit = stale_list(st, lists[i])))
			return hit;
	}
	if (!c)
		return NULL;
	x.seen = calloc(c->n ? c->n : 1, 1);
	catalog_facts_candidates(c, f, &sink);
	free(x.seen);
	return x.hit;
}
