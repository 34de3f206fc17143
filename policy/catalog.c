/* catalog.c - the function catalog: building from rows, classifying bodies, resolving calls, judging. */
#include "policy/catalog.h"

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

/* ---- allocation and the name index ---- */

fn_catalog *catalog_new(void)
{
	fn_catalog *c = calloc(1, sizeof(*c));

	if (c)
		c->refcount = 1;
	return c;
}

/* The entry for name[0..len) in index head (fn_catalog.names or .views), or NULL. */
static cat_name *index_find(cat_name *head, const char *name, size_t len)
{
	cat_name *e = NULL;

	HASH_FIND(hh, head, name, len, e);
	return e;
}

static cat_name *name_find(const fn_catalog *c, const char *name, size_t len)
{
	return index_find(c->names, name, len);
}

/* The entry for name in index *head, created if missing; NULL when out of memory. */
static cat_name *index_get(cat_name **head, const char *name)
{
	size_t len = strlen(name);
	cat_name *e = index_find(*head, name, len);

	if (e)
		return e;
	if (!(e = calloc(1, sizeof(*e))) || !(e->name = strdup(name))) {
		free(e);
		return NULL;
	}
	HASH_ADD_KEYPTR(hh, *head, e->name, len, e);
	if (e->oom) {
		free(e->name);
		free(e);
		return NULL;
	}
	return e;
}

static cat_name *name_get(fn_catalog *c, const char *name)
{
	return index_get(&c->names, name);
}

/* Static reasons for built-in bits, by bit. */
static const char *const why_builtin[CJ_NBITS] = {
	[0] = "a volatile built-in function pgwarden does not know to be read-only",
	[1] = "a built-in function that runs SQL given as text or accesses server files",
	[2] = "a built-in function that sets settings (set_config)",
};

/*
 * What one built-in overload can do: the reviewed table first (dangerous ones
 * keep their judgement whatever pg_proc says: query_to_xml is stable and runs
 * SQL), then pg_proc's own facts: an immutable or stable built-in cannot write
 * (PostgreSQL's read-only and parallel checks rely on that marking).
 */
static uint32_t builtin_bits(const char *name, char volatility, unsigned nmin, unsigned nmax)
{
	switch (builtin_lookup(name)) {
	case BF_READ:
		return 0;
	case BF_WRITE:
		return CJ_WRITE;
	case BF_OPAQUE_SQL:
	case BF_SERVER_FILE:
		return CJ_OPAQUE;
	case BF_SET_CONFIG:
		return CJ_IDENTITY;
	case BF_TS_REWRITE:
		return nmin <= 2 && 2 <= nmax ? CJ_OPAQUE : 0;
	case BF_UNKNOWN:
		break;
	}
	return volatility == 'i' || volatility == 's' ? 0 : CJ_WRITE;
}

int catalog_add_builtin(fn_catalog *c, const char *schema, const char *name, char volatility, unsigned nargs_min,
			unsigned nargs_max)
{
	cat_name *e = name_get(c, name);
	uint32_t bits = builtin_bits(name, volatility, nargs_min, nargs_max);

	if (!e)
		return -1;
	e->sys |= strcmp(schema, "information_schema") == 0 ? SYS_INFORMATION_SCHEMA : SYS_PG_CATALOG;
	e->sys_bits |= bits;
	if (nargs_min <= 1 && 1 <= nargs_max)
		e->sys_bits1 |= bits;
	for (int b = 0; b < CJ_NBITS; b++) {
		if (bits & (1u << b))
			e->sys_why[b] = why_builtin[b] ? why_builtin[b] : why_builtin[0];
	}
	return 0;
}

int catalog_add_system(fn_catalog *c, const char *schema, const char *name)
{
	return catalog_add_builtin(c, schema, name, 'v', 0, NARGS_ANY);
}

int catalog_add_type(fn_catalog *c, const char *name)
{
	cat_name *e = name_get(c, name);

	if (!e)
		return -1;
	e->sys |= SYS_TYPE;
	return 0;
}

static bool name_add_fn(cat_name *e, uint32_t idx)
{
	if (!ARR_RESERVE(e->fns, e->cap, e->n + 1, 2))
		return false;
	e->fns[e->n++] = idx;
	return true;
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	if (!(d = strdup(s)))
		*oom = true;
	return d;
}

/* Copy a row into fns and index its name in *head. */
static int add_entry(fn_catalog *c, const catalog_row *r, cat_name **head)
{
	cat_name *e;
	cat_fn *fn;
	bool oom = false;

	if (!ARR_RESERVE(c->fns, c->cap, c->n + 1, 64))
		return -1;
	fn = &c->fns[c->n];
	memset(fn, 0, sizeof(*fn));
	fn->oid = r->oid;
	fn->kind = r->kind;
	fn->volatility = r->volatility;
	fn->secdef = r->secdef;
	fn->atomic = r->atomic;
	fn->nargs_min = (uint16_t)(r->nargs_min < NARGS_ANY ? r->nargs_min : NARGS_ANY);
	fn->nargs_max = (uint16_t)(r->nargs_max < NARGS_ANY ? r->nargs_max : NARGS_ANY);
	fn->schema = dup_or_null(r->schema ? r->schema : "", &oom);
	fn->name = dup_or_null(r->name ? r->name : "", &oom);
	fn->args = dup_or_null(r->args ? r->args : "", &oom);
	fn->lang = dup_or_null(r->lang ? r->lang : "", &oom);
	fn->config = dup_or_null(r->config, &oom);
	fn->src = dup_or_null(r->src, &oom);
	fn->def = dup_or_null(r->def, &oom);
	fn->defaults = dup_or_null(r->defaults, &oom);
	c->n++; /* counted now so that catalog_unref frees what was copied */
	if (oom || !(e = index_get(head, fn->name)) || !name_add_fn(e, (uint32_t)(c->n - 1)))
		return -1;
	return 0;
}

int catalog_add_row(fn_catalog *c, const catalog_row *r)
{
	return add_entry(c, r, &c->names);
}

int catalog_add_view(fn_catalog *c, const char *schema, const char *name, const char *definition)
{
	/* Why: a view's SELECT is classified like a LANGUAGE sql body (its statements, its calls). */
	catalog_row r = { .oid = 0,
			  .schema = schema,
			  .name = name,
			  .lang = "sql",
			  .kind = 'v',
			  .volatility = 'v',
			  .src = definition ? definition : "" };

	return add_entry(c, &r, &c->views);
}

/* The kind letter of a hook entry (cat_fn.kind). */
static const char hook_kind[CATALOG_NHOOKS] = { 'O', 'Y', 'W', 'R', 'D' };

int catalog_add_hook(fn_catalog *c, int kind, const char *schema, const char *name, const char *body)
{
	catalog_row r = { .schema = schema, .name = name, .lang = "sql", .volatility = 'v', .src = body ? body : "" };

	if (kind < 0 || kind >= CATALOG_NHOOKS)
		return -1;
	r.kind = hook_kind[kind];
	return add_entry(c, &r, &c->hooks[kind]);
}

int catalog_add_agg_support(fn_catalog *c, uint32_t agg_oid, uint32_t support_oid, const char *schema, const char *name,
			    char volatility)
{
	cat_agg *a;

	if (!ARR_RESERVE(c->agg, c->cap_agg, c->n_agg + 1, 16))
		return -1;
	a = &c->agg[c->n_agg];
	a->agg_oid = agg_oid;
	a->support_oid = support_oid;
	a->volatility = volatility;
	a->schema = strdup(schema ? schema : "");
	a->name = strdup(name ? name : "");
	c->n_agg++;
	return a->schema && a->name ? 0 : -1;
}

/* ---- reference counting ---- */

void cat_fn_free_inputs(cat_fn *fn)
{
	free(fn->config);
	free(fn->src);
	free(fn->def);
	free(fn->defaults);
	fn->config = fn->src = fn->def = fn->defaults = NULL;
	policy_facts_unref(fn->facts);
	fn->facts = NULL;
}

static void index_free(cat_name **head)
{
	cat_name *e, *tmp;

	HASH_ITER(hh, *head, e, tmp)
	{
		HASH_DEL(*head, e);
		free(e->name);
		free(e->fns);
		free(e);
	}
}

static void catalog_destroy(fn_catalog *c)
{
	for (size_t i = 0; i < c->n; i++) {
		cat_fn *fn = &c->fns[i];

		cat_fn_free_inputs(fn);
		free(fn->callees); /* kept after the build: staleness follows them (catalog_stale_hit) */
		free(fn->schema);
		free(fn->name);
		free(fn->args);
		free(fn->lang);
		for (int b = 0; b < CJ_NBITS; b++)
			free(fn->why[b]);
	}
	free(c->fns);
	for (size_t i = 0; i < c->n_agg; i++) {
		free(c->agg[i].schema);
		free(c->agg[i].name);
	}
	free(c->agg);
	index_free(&c->names);
	index_free(&c->views);
	for (int k = 0; k < CATALOG_NHOOKS; k++)
		index_free(&c->hooks[k]);
	free(c);
}

void catalog_ref(const fn_catalog *c)
{
	if (c)
		__atomic_fetch_add(&((fn_catalog *)c)->refcount, 1, __ATOMIC_RELAXED);
}

void catalog_unref(const fn_catalog *c)
{
	if (c && __atomic_sub_fetch(&((fn_catalog *)c)->refcount, 1, __ATOMIC_ACQ_REL) == 0)
		catalog_destroy((fn_catalog *)c);
}

/* ---- candidates of a called name ---- */

static bool schema_is(const char *s, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(s, want, len) == 0;
}

/*
 * Call cb for every user function 'called' may resolve to (see catalog.h).
 * Identifiers may contain dots, so "a.b.c" is tried as the bare name "a.b.c",
 * as schema "a" + name "b.c", and as schema "a.b" + name "c". Returns
 * CAND_USER if a user function matched, | CAND_SYSTEM if a built-in may.
 */
static bool takes(const cat_fn *fn, int nargs)
{
	return nargs < 0 || (fn->nargs_min <= nargs && nargs <= fn->nargs_max);
}

static void add_sys(const cat_name *e, int nargs, uint32_t *sys)
{
	if (sys)
		*sys |= nargs == 1 ? e->sys_bits1 : e->sys_bits;
}

const cat_name *catalog_name(const fn_catalog *c, const char *name)
{
	return name_find(c, name, strlen(name));
}

int catalog_candidates(const fn_catalog *c, const char *called, bool builtin_named, int nargs, cand_cb cb, void *arg,
		       uint32_t *sys)
{
	const cat_name *e = name_find(c, called, strlen(called));
	const uint8_t fn_sys = SYS_PG_CATALOG | SYS_INFORMATION_SCHEMA;
	int found = 0;

	for (size_t i = 0; e && i < e->n; i++) {
		if (takes(&c->fns[e->fns[i]], nargs)) {
			cb(arg, &c->fns[e->fns[i]]);
			found |= CAND_USER;
		}
	}
	if (e && (e->sys & fn_sys)) {
		found |= CAND_SYSTEM;
		add_sys(e, nargs, sys);
	}
	for (const char *dot = strchr(called, '.'); dot && !builtin_named; dot = strchr(dot + 1, '.')) {
		size_t slen = (size_t)(dot - called);

		if (!(e = name_find(c, dot + 1, strlen(dot + 1))))
			continue;
		for (size_t i = 0; i < e->n; i++) {
			const cat_fn *fn = &c->fns[e->fns[i]];

			if (schema_is(called, slen, fn->schema) && takes(fn, nargs)) {
				cb(arg, fn);
				found |= CAND_USER;
			}
		}
		if (((e->sys & SYS_PG_CATALOG) && schema_is(called, slen, "pg_catalog")) ||
		    ((e->sys & SYS_INFORMATION_SCHEMA) && schema_is(called, slen, "information_schema"))) {
			found |= CAND_SYSTEM;
			add_sys(e, nargs, sys);
		}
	}
	return found;
}

/* ---- candidates of a relation or hook name ---- */

/*
 * Views by relation name: the bare name, or for "a.b.c" schema "a" + name "b.c"
 * and schema "a.b" + name "c" (identifiers may hold dots), like functions.
 */
int catalog_view_candidates(const fn_catalog *c, const char *rel, cand_cb cb, void *arg)
{
	const cat_name *e = index_find(c->views, rel, strlen(rel));
	int found = 0;

	for (size_t i = 0; e && i < e->n; i++) {
		cb(arg, &c->fns[e->fns[i]]);
		found = CAND_USER;
	}
	for (const char *dot = strchr(rel, '.'); dot; dot = strchr(dot + 1, '.')) {
		size_t slen = (size_t)(dot - rel);

		if (!(e = index_find(c->views, dot + 1, strlen(dot + 1))))
			continue;
		for (size_t i = 0; i < e->n; i++) {
			const cat_fn *v = &c->fns[e->fns[i]];

			if (schema_is(rel, slen, v->schema)) {
				cb(arg, v);
				found = CAND_USER;
			}
		}
	}
	return found;
}

/* Hook entries of one kind by object name: bare, or "a.b" with a schema that must match (dots as above). */
int catalog_hook_candidates(const fn_catalog *c, int kind, const char *name, cand_cb cb, void *arg)
{
	const cat_name *e = index_find(c->hooks[kind], name, strlen(name));
	int found = 0;

	for (size_t i = 0; e && i < e->n; i++) {
		cb(arg, &c->fns[e->fns[i]]);
		found = CAND_USER;
	}
	for (const char *dot = strchr(name, '.'); dot; dot = strchr(dot + 1, '.')) {
		size_t slen = (size_t)(dot - name);

		if (!(e = index_find(c->hooks[kind], dot + 1, strlen(dot + 1))))
			continue;
		for (size_t i = 0; i < e->n; i++) {
			const cat_fn *h = &c->fns[e->fns[i]];

			if (schema_is(name, slen, h->schema)) {
				cb(arg, h);
				found = CAND_USER;
			}
		}
	}
	return found;
}

/* ---- counts and explain ---- */

void catalog_counts_get(const fn_catalog *c, catalog_counts *out)
{
	*out = c->counts;
}

/* Append to buf like snprintf, never past bufsz; *at is the length so far. */
static void put(char *buf, size_t bufsz, size_t *at, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void put(char *buf, size_t bufsz, size_t *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (bufsz == 0 || *at >= bufsz - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *at, bufsz - *at, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at += (size_t)n < bufsz - *at ? (size_t)n : bufsz - 1 - *at;
}

static const char *volatility_name(char v)
{
	return v == 'i' ? "immutable" : v == 's' ? "stable" : "volatile";
}

static const char *kind_name(char k)
{
	switch (k) {
	case 'p':
		return "procedure";
	case 'a':
		return "aggregate";
	case 'w':
		return "window function";
	case 'v':
		return "view";
	case 'O':
		return "operator";
	case 'Y':
		return "cast or domain";
	case 'W':
		return "write hook of table";
	case 'R':
		return "policy of table";
	case 'D':
		return "event triggers";
	default:
		return "function";
	}
}

/* The verdict words of a bit, in the order decide.c checks them. */
static const struct {
	uint32_t bit;
	const char *word;
} bit_words[] = {
	{ CJ_LEXING, "unparsable (changes lexing)" },
	{ CJ_IDENTITY, "identity-change" },
	{ CJ_GRANT, "grant-to-protected-role" },
	{ CJ_OPAQUE, "opaque-sql" },
	{ CJ_WRITE, "write" },
	{ CJ_FUNC_DDL, "changes function definitions" },
};

static int bit_index(uint32_t bit)
{
	return __builtin_ctz(bit);
}

typedef struct explain_ctx {
	char *buf;
	size_t bufsz, at;
} explain_ctx;

static void explain_cb(void *arg, const cat_fn *fn)
{
	explain_ctx *x = arg;

	put(x->buf, x->bufsz, &x->at, "%s.%s(%s) %s %s %s%s%s:", fn->schema, fn->name, fn->args, fn->lang,
	    volatility_name(fn->volatility), kind_name(fn->kind), fn->secdef ? " security definer" : "",
	    fn->trusted ? " trusted" : "");
	if (fn->bits == 0)
		put(x->buf, x->bufsz, &x->at, " read-only");
	for (size_t i = 0; i < sizeof(bit_words) / sizeof(bit_words[0]); i++) {
		if (fn->bits & bit_words[i].bit)
			put(x->buf, x->bufsz, &x->at, " %s: %s;", bit_words[i].word,
			    fn->why[bit_index(bit_words[i].bit)]);
	}
	put(x->buf, x->bufsz, &x->at, "\n");
}

size_t catalog_explain(const fn_catalog *c, const char *name, char *buf, size_t bufsz)
{
	explain_ctx x = { .buf = buf, .bufsz = bufsz };
	int found;

	if (bufsz == 0)
		return 0;
	buf[0] = '\0';
	found = catalog_candidates(c, name, false, -1, explain_cb, &x, NULL);
	if (found & CAND_SYSTEM)
		put(buf, bufsz, &x.at,
		    "%s: built-in function: write unless pgwarden's built-in table knows "
		    "it\n",
		    name);
	else if (found == 0)
		put(buf, bufsz, &x.at, "%s: not in the catalog: calls are denied (opaque-sql)\n", name);
	return x.at;
}
