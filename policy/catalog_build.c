/* catalog_build.c - catalog_finish(): classify every body on a big-stack thread, then resolve calls. */
#include <pg_query.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/core/arr.h"
#include "policy/catalog_int.h"
#include "policy/classify_int.h"

/*
 * Resolution: each function starts with its own bits (body facts, proconfig,
 * language) and an edge to every function each of its calls may resolve to.
 * Bits then flow from callee to caller over reverse edges with a worklist:
 * a function is re-queued only when it gains a bit, and bits only grow, so
 * the work is O(CJ_NBITS * edges) whatever the cycles. A trusted function
 * never gains CJ_OPAQUE, so it does not pass opacity on to its callers either.
 */

#define WHY_MAX 200 /* reasons are cut here: "calls a.b: calls c.d: ..." */

static int bit_index(uint32_t bit)
{
	return __builtin_ctz(bit);
}

/* Give fn one bit with its first reason (unless it has it, or trust waives it). */
static void set_bit(cat_fn *fn, uint32_t bit, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_bit(cat_fn *fn, uint32_t bit, const char *fmt, ...)
{
	char buf[WHY_MAX];
	va_list ap;

	if ((fn->bits & bit) || (fn->trusted && bit == CJ_OPAQUE))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fn->bits |= bit;
	fn->why[bit_index(bit)] = strdup(buf); /* NULL on no memory: the bit, which is what matters, stays */
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* trusted_functions holds "schema.name" folded like identifiers: compare exactly. */
static bool is_trusted(const pgw_config *cfg, const cat_fn *fn)
{
	size_t sl = strlen(fn->schema);

	for (size_t k = 0; k < cfg->n_trusted_functions; k++) {
		const char *t = cfg->trusted_functions[k];

		if (strncmp(t, fn->schema, sl) == 0 && t[sl] == '.' && strcmp(t + sl + 1, fn->name) == 0)
			return true;
	}
	return false;
}

/* The body's facts as bits, with decide.c's config-dependent checks. */
static void bits_from_facts(cat_fn *fn, const policy_facts *f, const pgw_config *cfg)
{
	const char *x;
	char why[200];

	if (f->flags & PF_UNPARSABLE)
		set_bit(fn, CJ_OPAQUE, "%s", nz(f->error));
	if (f->flags & PF_LEXING_CHANGE)
		set_bit(fn, CJ_LEXING, "%s", nz(f->why_lexing));
	if (f->flags & PF_IDENTITY)
		set_bit(fn, CJ_IDENTITY, "%s", nz(f->why_identity));
	if ((x = policy_pinned_setting_written(cfg, f)))
		set_bit(fn, CJ_IDENTITY, "sets %s", x);
	if (f->flags & PF_SESSION_RESET)
		set_bit(fn, CJ_IDENTITY, "RESET ALL resets the pinned role and settings");
	if (policy_login_role_altered(cfg, f, why, sizeof(why)))
		set_bit(fn, CJ_IDENTITY, "%s", why);
	if ((x = policy_protected_grantee(cfg, f)))
		set_bit(fn, CJ_GRANT, "grants to protected role \"%s\"", x);
	if ((x = policy_protected_role_altered(cfg, f)))
		set_bit(fn, CJ_GRANT, "changes protected role \"%s\"", x);
	if (policy_actor_role_altered(cfg, f, why, sizeof(why)))
		set_bit(fn, CJ_IDENTITY, "%s", why);
	if (f->flags & PF_OPAQUE)
		set_bit(fn, CJ_OPAQUE, "%s", nz(f->why_opaque));
	if (!(f->flags & PF_READ_ONLY))
		set_bit(fn, CJ_WRITE, "%s", f->why_write ? f->why_write : "not known to be read-only");
	if (f->flags & PF_RW_OVERRIDE)
		set_bit(fn, CJ_WRITE, "%s", nz(f->why_rw));
	if (f->flags & PF_FUNC_DDL)
		set_bit(fn, CJ_FUNC_DDL, "changes function definitions");
}

/*
 * proconfig: "name=value" lines (SET clauses of CREATE FUNCTION). They hold
 * only while the function runs, but that is enough: a SECURITY DEFINER
 * function with SET app.tenant_id = 'globex' reads another tenant's rows.
 */
static void bits_from_config(cat_fn *fn, const pgw_config *cfg)
{
	char name[128];

	for (const char *p = fn->config; p && *p;) {
		const char *eq = strchr(p, '='), *nl = strchr(p, '\n');
		size_t n = (size_t)((eq && (!nl || eq < nl)) ? eq - p : (nl ? nl - p : (ptrdiff_t)strlen(p)));

		snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) ? n : sizeof(name) - 1), p);
		for (char *q = name; *q; q++)
			*q = (char)((*q >= 'A' && *q <= 'Z') ? *q + 32 : *q);
		if (policy_setting_is_pinned(cfg, name))
			set_bit(fn, CJ_IDENTITY, "SET %s in its definition", name);
		else if (!setting_is_harmless(name) || strstr(name, "read_only"))
			set_bit(fn, CJ_WRITE, "SET %s in its definition", name);
		p = nl ? nl + 1 : p + strlen(p);
	}
}

/* Own bits of one function: body, definition-time settings. */
static bool classify_fn(cat_fn *fn, const pgw_config *cfg, bool trust_walls)
{
	/* Why: trusted_functions names functions; a view of the same name is not vouched for. */
	/* Why: deploy/walls.sql's functions (the database's own walls, installed by the operator into a schema
	 * only its owner role can change) run on every write and DDL of a walled target: vouched for there.
	 * Only there: on a target without walls, anyone with CREATE on the database could make that schema. */
	fn->trusted = strchr("fpaw", fn->kind) &&
		      (is_trusted(cfg, fn) || (trust_walls && strcmp(fn->schema, "pgwarden_wall") == 0));
	/* Aggregates run their support functions: resolved as calls later. */
	if (fn->kind != 'a') {
		pc_routine r = {
			.lang = fn->lang, .src = fn->src, .def = fn->def, .defaults = fn->defaults, .atomic = fn->atomic
		};

		if (!(fn->facts = classify_routine(&r)))
			return false;
		bits_from_facts(fn, fn->facts, cfg);
		/* A hook's SQL is built by pgwarden (a rule is deparsed as CREATE RULE): not function DDL. */
		if (fn->kind >= 'A' && fn->kind <= 'Z')
			fn->bits &= ~(uint32_t)CJ_FUNC_DDL;
	}
	bits_from_config(fn, cfg);
	return true;
}

typedef struct build_job {
	fn_catalog *c;
	const pgw_config *cfg;
	bool oom; /* a body's facts could not be built */
} build_job;

static void *classify_all(void *arg)
{
	build_job *job = arg;

	for (size_t i = 0; i < job->c->n && !job->oom; i++) {
		if (!classify_fn(&job->c->fns[i], job->cfg, job->c->trust_walls))
			job->oom = true;
	}
	/* No pg_query_exit(): libpg_query frees its per-thread memory in a TSD destructor (double free). */
	return NULL;
}

/* Classify on a thread whose stack fits any body up to PC_MAX_ROUTINE_BODY (see classify.c). */
static int classify_on_thread(build_job *job, char **err)
{
	pthread_attr_t attr;
	pthread_t th;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, PC_ROUTINE_STACK);
	rc = pthread_create(&th, &attr, classify_all, job);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		*err = strdup("catalog: cannot start the classification thread");
		return -1;
	}
	pthread_join(th, NULL);
	if (job->oom) {
		*err = strdup("catalog: out of memory while classifying function bodies");
		return -1;
	}
	return 0;
}

/* ---- call edges ---- */

static bool add_callee(cat_fn *fn, uint32_t idx)
{
	for (size_t i = 0; i < fn->n_callees; i++) {
		if (fn->callees[i] == idx)
			return true;
	}
	if (!ARR_RESERVE(fn->callees, fn->cap_callees, fn->n_callees + 1, 4))
		return false;
	fn->callees[fn->n_callees++] = idx;
	return true;
}

typedef struct edge_ctx {
	fn_catalog *c;
	cat_fn *from;
	bool oom;
} edge_ctx;

static void edge_cb(void *arg, const char *what, const cat_fn *to)
{
	edge_ctx *e = arg;

	if (to != e->from && !add_callee(e->from, (uint32_t)(to - e->c->fns)))
		e->oom = true;
}

static void direct_cb(void *arg, const char *what, uint32_t bits, const char *why)
{
	edge_ctx *e = arg;

	for (int b = 0; b < CJ_NBITS; b++) {
		if (bits & (1u << b))
			set_bit(e->from, 1u << b, "calls %s: %s", what, why);
	}
}

/*
 * Edges for everything fn's body (a view's SELECT, a hook's SQL) makes
 * PostgreSQL run: calls, attribute notation, operators, casts, views read,
 * tables written (their triggers...). What resolves to built-ins or to nothing
 * known gives bits directly.
 */
static bool resolve_calls(fn_catalog *c, cat_fn *fn)
{
	edge_ctx e = { .c = c, .from = fn };
	cand_sink sink = {
		.fn = edge_cb, .bits = direct_cb, .arg = &e, .ddl_hooks = !(fn->kind >= 'A' && fn->kind <= 'Z')
	};

	if (fn->facts)
		catalog_facts_candidates(c, fn->facts, &sink);
	return !e.oom;
}

typedef struct oid_idx {
	uint32_t oid, idx;
} oid_idx;

static int cmp_oid(const void *a, const void *b)
{
	uint32_t x = ((const oid_idx *)a)->oid, y = ((const oid_idx *)b)->oid;

	return (x > y) - (x < y);
}

static cat_fn *fn_by_oid(fn_catalog *c, const oid_idx *map, uint32_t oid)
{
	oid_idx key = { .oid = oid };
	const oid_idx *m = bsearch(&key, map, c->n, sizeof(*map), cmp_oid);

	return m ? &c->fns[m->idx] : NULL;
}

/* A built-in support function: the table, else its volatility (built-ins mark it truthfully). */
static void builtin_support_bits(cat_fn *agg, const cat_agg *a)
{
	switch (builtin_lookup(a->name)) {
	case BF_READ:
		return;
	case BF_SET_CONFIG:
		set_bit(agg, CJ_IDENTITY, "aggregate support function %s", a->name);
		return;
	case BF_OPAQUE_SQL:
	case BF_SERVER_FILE:
	case BF_TS_REWRITE:
		set_bit(agg, CJ_OPAQUE, "aggregate support function %s", a->name);
		return;
	case BF_WRITE:
		set_bit(agg, CJ_WRITE, "aggregate support function %s", a->name);
		return;
	case BF_UNKNOWN:
		break;
	}
	if (a->volatility != 'i' && a->volatility != 's')
		set_bit(agg, CJ_WRITE, "aggregate support function %s.%s is volatile", a->schema, a->name);
}

/* Aggregates call their support functions: user ones are edges, built-in ones give bits. */
static bool resolve_aggregates(fn_catalog *c)
{
	oid_idx *map = c->n ? malloc(c->n * sizeof(*map)) : NULL;
	bool ok = true;

	if (c->n && !map)
		return false;
	for (size_t i = 0; i < c->n; i++)
		map[i] = (oid_idx){ .oid = c->fns[i].oid, .idx = (uint32_t)i };
	if (c->n)
		qsort(map, c->n, sizeof(*map), cmp_oid);
	for (size_t i = 0; i < c->n_agg && ok; i++) {
		cat_fn *agg = fn_by_oid(c, map, c->agg[i].agg_oid), *sup;

		if (!agg)
			continue;
		if ((sup = fn_by_oid(c, map, c->agg[i].support_oid)))
			ok = add_callee(agg, (uint32_t)(sup - c->fns));
		else
			builtin_support_bits(agg, &c->agg[i]);
	}
	free(map);
	return ok;
}

/* ---- propagation ---- */

/* Callers of each function, as offsets into one array (CSR). */
typedef struct rev_edges {
	size_t *off; /* callers of g are at[off[g] .. off[g+1]) */
	uint32_t *at;
} rev_edges;

static bool build_reverse(const fn_catalog *c, rev_edges *r)
{
	size_t total = 0;

	r->off = calloc(c->n + 1, sizeof(*r->off));
	for (size_t f = 0; r->off && f < c->n; f++) {
		for (size_t k = 0; k < c->fns[f].n_callees; k++)
			r->off[c->fns[f].callees[k] + 1]++;
		total += c->fns[f].n_callees;
	}
	r->at = malloc((total ? total : 1) * sizeof(*r->at));
	if (!r->off || !r->at)
		return false;
	for (size_t g = 0; g < c->n; g++)
		r->off[g + 1] += r->off[g];
	{
		size_t *fill = malloc((c->n ? c->n : 1) * sizeof(*fill));

		if (!fill)
			return false;
		memcpy(fill, r->off, c->n * sizeof(*fill));
		for (size_t f = 0; f < c->n; f++) {
			for (size_t k = 0; k < c->fns[f].n_callees; k++)
				r->at[fill[c->fns[f].callees[k]]++] = (uint32_t)f;
		}
		free(fill);
	}
	return true;
}

/* Caller f gains what callee g has. True if f gained anything. */
static bool inherit(cat_fn *f, const cat_fn *g)
{
	uint32_t add = g->bits & ~f->bits;

	if (f->trusted)
		add &= ~(uint32_t)CJ_OPAQUE;
	for (int b = 0; b < CJ_NBITS; b++) {
		if (add & (1u << b))
			set_bit(f, 1u << b, "%s %s.%s: %s", g->kind == 'v' ? "reads view" : "calls", g->schema, g->name,
				nz(g->why[b]));
	}
	return add != 0;
}

static bool propagate(fn_catalog *c)
{
	rev_edges r = { 0 };
	uint32_t *stack = malloc((c->n ? c->n : 1) * sizeof(*stack));
	size_t top = 0;
	bool ok = stack && build_reverse(c, &r);

	for (size_t i = 0; ok && i < c->n; i++) {
		if (c->fns[i].bits) {
			c->fns[i].queued = true;
			stack[top++] = (uint32_t)i;
		}
	}
	while (ok && top > 0) {
		const cat_fn *g = &c->fns[stack[--top]];

		c->fns[stack[top]].queued = false;
		for (size_t k = r.off[g - c->fns]; k < r.off[g - c->fns + 1]; k++) {
			cat_fn *f = &c->fns[r.at[k]];

			if (inherit(f, g) && !f->queued) {
				f->queued = true;
				stack[top++] = r.at[k];
			}
		}
	}
	free(stack);
	free(r.off);
	free(r.at);
	return ok;
}

static bool is_function(const cat_fn *fn)
{
	return fn->kind == 'f' || fn->kind == 'p' || fn->kind == 'a' || fn->kind == 'w';
}

/* calls_user to a fixpoint over the edges (a stale catalog still judges entries that run no user code). */
static void mark_calls_user(fn_catalog *c)
{
	bool changed = true;

	while (changed) {
		changed = false;
		for (size_t f = 0; f < c->n; f++) {
			cat_fn *fn = &c->fns[f];

			for (size_t k = 0; !fn->calls_user && k < fn->n_callees; k++) {
				const cat_fn *g = &c->fns[fn->callees[k]];

				if (is_function(g) || g->calls_user)
					fn->calls_user = changed = true;
			}
		}
	}
}

static void compute_counts(fn_catalog *c)
{
	catalog_counts *k = &c->counts;

	memset(k, 0, sizeof(*k));
	for (size_t i = 0; i < c->n; i++) {
		uint32_t b = c->fns[i].bits;

		if (c->fns[i].kind >= 'A' && c->fns[i].kind <= 'Z')
			continue; /* hooks are not functions */
		if (c->fns[i].kind == 'v') {
			k->views++;
			k->views_denied += b != 0;
			continue;
		}
		k->analysed++;
		k->trusted += c->fns[i].trusted;
		if (b & (CJ_IDENTITY | CJ_LEXING | CJ_GRANT))
			k->identity++;
		else if (b & CJ_OPAQUE)
			k->opaque++;
		else if (b & CJ_WRITE)
			k->writes++;
		else
			k->read_only++;
	}
}

int catalog_finish(fn_catalog *c, const pgw_config *cfg, char **err)
{
	build_job job = { .c = c, .cfg = cfg };
	bool ok = true;

	*err = NULL;
	if (classify_on_thread(&job, err) < 0)
		return -1;
	for (size_t i = 0; i < c->n && ok; i++)
		ok = resolve_calls(c, &c->fns[i]);
	ok = ok && resolve_aggregates(c) && propagate(c);
	if (ok)
		mark_calls_user(c);
	for (size_t i = 0; i < c->n; i++)
		cat_fn_free_inputs(&c->fns[i]);
	if (!ok) {
		*err = strdup("catalog: out of memory while resolving calls");
		return -1;
	}
	compute_counts(c);
	return 0;
}
