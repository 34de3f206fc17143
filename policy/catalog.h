/*
 * catalog.h - the user-defined functions and procedures of one target's
 * database, read from its catalog (pg_proc) and classified like client SQL.
 *
 * A catalog is built whole (catalog_load, blocking: run it on a thread), then
 * never changed: the loop reads it while another thread builds the next one,
 * and the relay swaps the pointer. Reference counts are atomic.
 *
 * Each function's class is the union of what its own body can do (the
 * classifier's facts, its proconfig SET clauses) and what every function it
 * can reach does (calls resolved by name, to a fixpoint, cycles included).
 * Calls are resolved by NAME only: an unqualified call, or one PostgreSQL
 * could resolve to several overloads, counts as every function of that name
 * (any schema, any argument types) - the most restrictive candidate wins. That
 * is safe whatever the search_path or argument types are, and simple; its
 * cost is that an overloaded name is only as permissive as its worst overload.
 *
 * The catalog depends on the config snapshot it was built with (pinned
 * setting names, protected roles, trusted_functions): rebuild it on reload.
 */
#ifndef PGW_CATALOG_H
#define PGW_CATALOG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "policy/policy.h"

/* What a function can do: bits, a function may have several. */
enum {
	CJ_WRITE = 1u << 0,    /* not read-only (writes, nextval, locks...): production needs a window */
	CJ_OPAQUE = 1u << 1,   /* runs code pgwarden cannot read (C, dynamic EXECUTE, unknown function) */
	CJ_IDENTITY = 1u << 2, /* can set a pinned setting or the role (body, or proconfig SET clause) */
	CJ_LEXING = 1u << 3,   /* changes how the session's SQL is lexed (SET standard_conforming_strings) */
	CJ_GRANT = 1u << 4,    /* grants to a protected role */
	CJ_FUNC_DDL = 1u << 5, /* changes function definitions: the catalog must be re-read after a call */
};
#define CJ_NBITS 6

/*
 * Blocking: read pg_proc over an open libpq connection (CONNECTION_OK, idle),
 * classify every function and procedure outside pg_catalog and
 * information_schema, and every view there (pg_get_viewdef), resolve calls
 * and view reads between them to a fixpoint. Runs its own
 * READ ONLY transaction on conn. cfg supplies trusted_functions, the pinned
 * setting names and protected roles. Returns NULL and *err (malloc'd) on
 * failure.
 */
fn_catalog *catalog_load(PGconn *conn, const pgw_config *cfg, char **err);
/* The same for a target whose database carries deploy/walls.sql (walls = required): the functions of
 * schema pgwarden_wall are vouched for, as the walls run them on every write and DDL. */
fn_catalog *catalog_load_walled(PGconn *conn, const pgw_config *cfg, bool trust_walls, char **err);
void catalog_ref(const fn_catalog *c);
void catalog_unref(const fn_catalog *c);

/* Per-class counts, for logs and /metrics. Each function is counted in the first class that fits: identity
 * (also lexing and grant-to-protected), opaque, writes, read_only. trusted overlaps. */
typedef struct catalog_counts {
	size_t analysed;     /* functions and procedures read */
	size_t read_only;    /* neither writes nor anything denied */
	size_t writes;       /* can write (and nothing worse) */
	size_t identity;     /* can change identity or lexing, or grant to a protected role */
	size_t opaque;       /* cannot be verified and are not trusted */
	size_t trusted;      /* listed in trusted_functions */
	size_t views;        /* views read (not counted above) */
	size_t views_denied; /* views whose reading can do more than read (any CJ_* bit) */
} catalog_counts;
void catalog_counts_get(const fn_catalog *c, catalog_counts *out);

/*
 * Explain a name for --explain and logs: one human line per candidate
 * ("public.app_set_tenant(t text) plpgsql volatile: identity-change: sets
 * app.tenant_id"), or one line saying it is built-in or unknown. Writes at most
 * bufsz bytes, NUL-terminated; returns the length written.
 */
size_t catalog_explain(const fn_catalog *c, const char *name, char *buf, size_t bufsz);

/* The judgement of the calls of one statement, accumulated by catalog_judge_facts(). Zero it first. */
typedef struct catalog_judgement {
	uint32_t bits;              /* CJ_* over all calls judged */
	const char *fn[CJ_NBITS];   /* per bit: the name as called (borrowed from the facts) */
	const char *why[CJ_NBITS];  /* per bit: why (borrowed from the catalog, or static) */
	bool view[CJ_NBITS];        /* per bit: fn[] is a view the statement reads, not a function */
	bool user;                  /* a user-defined function may run (called, or through a view or hook) */
	const char *kind[CJ_NBITS]; /* per bit: what fn[] is ("function", "view", "operator", ...; static) */
} catalog_judgement;

/*
 * Judge one call "schema.name" or "name", OR-ing into j (see catalog_judge_facts). builtin_named: an
 * unqualified call the built-in table already judged; only user functions of that name count.
 */
void catalog_judge(const fn_catalog *c, const char *called, bool builtin_named, catalog_judgement *j);

/* Judge reading one relation: the views it may be (their definitions) and its RLS policies, OR-ing into j. */
void catalog_judge_relation(const fn_catalog *c, const char *rel, catalog_judgement *j);

/*
 * The names whose definitions changed since the catalog was read (catalog_stale.c), kept by the relay
 * per target; "global" when a change's names are unknown. Marks are the relay's counter.
 */
typedef struct catalog_stale catalog_stale;
catalog_stale *catalog_stale_new(void);
void catalog_stale_free(catalog_stale *st);
/* name NULL: everything is stale. */
void catalog_stale_add(catalog_stale *st, const char *name, uint64_t mark);
/* A catalog loaded after mark 'covered' landed: forget what it covers. */
void catalog_stale_covered(catalog_stale *st, uint64_t covered);
bool catalog_stale_global(const catalog_stale *st);
bool catalog_stale_any(const catalog_stale *st);
bool catalog_stale_has(const catalog_stale *st, const char *name);
/*
 * The first name a statement uses, or a function a judged entry can reach, that is stale; NULL if none.
 * Only names count here: a global staleness is policy_subject.catalog_stale.
 */
const char *catalog_stale_hit(const fn_catalog *c, const policy_facts *f, const catalog_stale *st);

/* ---- building: catalog_load uses these; unit tests feed rows directly ---- */

/* One row of pg_proc, as catalog_load reads it. Strings are copied. */
typedef struct catalog_row {
	uint32_t oid;         /* pg_proc.oid */
	const char *schema;   /* pg_namespace.nspname */
	const char *name;     /* pg_proc.proname */
	const char *args;     /* pg_get_function_identity_arguments(), for explain; may be NULL */
	const char *lang;     /* pg_language.lanname */
	char kind;            /* prokind: f function, p procedure, a aggregate, w window */
	char volatility;      /* provolatile: i, s, v */
	bool secdef;          /* prosecdef: SECURITY DEFINER */
	const char *config;   /* proconfig entries "name=value" joined by '\n', or NULL */
	const char *src;      /* prosrc */
	const char *def;      /* pg_get_functiondef() for plpgsql and BEGIN ATOMIC bodies, or NULL */
	const char *defaults; /* pg_get_expr(proargdefaults, 0), or NULL */
	bool atomic;          /* LANGUAGE sql body stored parsed (prosqlbody is not null) */
	unsigned nargs_min;   /* pronargs - pronargdefaults */
	unsigned nargs_max;   /* pronargs, or 0xffff when variadic; both 0: unknown (any number) */
} catalog_row;

/*
 * Hooks: what an object makes PostgreSQL run without a call in the statement,
 * as a body of SQL text (calls of the functions involved, expressions,
 * statements a cascade runs), classified like a function body and judged when
 * a statement uses the object.
 */
enum {
	CATALOG_HOOK_OPERATOR = 0, /* operator name: its functions (oprcode), opclass support functions under "=" */
	CATALOG_HOOK_TYPE,         /* type name: casts into it (castfunc), domain CHECKs, base domains */
	CATALOG_HOOK_WRITE,        /* table name: triggers, defaults, generated columns, index expressions,
				    * CHECKs, rules, policies' WITH CHECK, column types, FK cascades, partitions */
	CATALOG_HOOK_READ,         /* table name: RLS policies' USING expressions */
	CATALOG_HOOK_DDL,          /* "" : event triggers (any statement that is not read-only) */
	CATALOG_NHOOKS
};
/* A hook of kind CATALOG_HOOK_* for object schema.name ("" for DDL); body: SQL text. 0, or -1. */
int catalog_add_hook(fn_catalog *c, int kind, const char *schema, const char *name, const char *body);
/* A built-in function (pg_catalog, information_schema) with its pg_proc facts; volatility 'v' and
 * nargs 0..NARGS_ANY when unknown. 0, or -1 out of memory. */
int catalog_add_builtin(fn_catalog *c, const char *schema, const char *name, char volatility, unsigned nargs_min,
			unsigned nargs_max);
/* A type name (pg_type.typname, any schema): a call of that name may be a function-style cast. */
int catalog_add_type(fn_catalog *c, const char *name);
/* Judge a whole statement's facts (calls, attribute notation, operators, casts, relations read and
 * written, DDL), OR-ing into j. */
void catalog_judge_facts(const fn_catalog *c, const policy_facts *f, catalog_judgement *j);

/* An empty catalog to fill; NULL when out of memory. */
fn_catalog *catalog_new(void);
/* A function name that exists in pg_catalog or information_schema (built-ins). 0, or -1 out of memory. */
int catalog_add_system(fn_catalog *c, const char *schema, const char *name);
/* A user function or procedure. 0, or -1 out of memory. */
int catalog_add_row(fn_catalog *c, const catalog_row *r);
/*
 * A view (pg_class relkind 'v'): definition is pg_get_viewdef()'s SELECT. It is
 * judged like a function whose body is that SELECT: what it calls and the views
 * it reads. Materialized views are not added: their definition runs only on
 * REFRESH (a write), reading one runs nothing. 0, or -1 out of memory.
 */
int catalog_add_view(fn_catalog *c, const char *schema, const char *name, const char *definition);
/* A support function (transition, final...) of user aggregate agg_oid, with its schema, name and provolatile
 * (built-in support functions not in pgwarden's table count as read-only only when immutable or stable). 0,
 * or -1 out of memory. */
int catalog_add_agg_support(fn_catalog *c, uint32_t agg_oid, uint32_t support_oid, const char *schema, const char *name,
			    char volatility);
/*
 * Classify every row (on a thread with a stack big enough for any body) and
 * resolve calls. After it the catalog is immutable. 0, or -1 with *err.
 */
int catalog_finish(fn_catalog *c, const pgw_config *cfg, char **err);

#endif
