/* catalog_int.h - internals shared by the function catalog's files (not for the relay). */
#ifndef PGW_CATALOG_INT_H
#define PGW_CATALOG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/catalog.h"

/* uthash (Debian uthash-dev): never exit() on out of memory; mark the element instead. */
#define HASH_NONFATAL_OOM 1
#define uthash_nonfatal_oom(elt) ((elt)->oom = true)
#include <uthash.h>

/* One user function or procedure, or a view (kind 'v': its body is its SELECT, named in fn_catalog.views). */
typedef struct cat_fn {
	uint32_t oid;        /* pg_proc.oid; 0 for a view (pg_class oids may repeat pg_proc's) */
	char *schema;        /* nspname */
	char *name;          /* proname */
	char *args;          /* identity arguments, for explain */
	char *lang;          /* lanname */
	char kind;           /* prokind: f, p, a, w; v view; or a hook (CATALOG_HOOK_*): what an object runs */
	char volatility;     /* provolatile: i, s, v */
	bool secdef;         /* SECURITY DEFINER */
	bool trusted;        /* listed in trusted_functions: opacity is waived */
	bool atomic;         /* BEGIN ATOMIC / RETURN body (prosqlbody) */
	bool queued;         /* on the resolution worklist */
	bool calls_user;     /* can run a user-defined function (directly or through views and hooks) */
	uint16_t nargs_min;  /* arguments a call must pass (pronargs - pronargdefaults) */
	uint16_t nargs_max;  /* arguments a call may pass (pronargs; NARGS_ANY when variadic) */
	uint32_t bits;       /* CJ_*: own, then (after resolution) over everything reachable */
	char *why[CJ_NBITS]; /* per bit set: the first reason found */
	/* Build inputs, freed by catalog_finish(): */
	char *config;        /* proconfig entries joined by '\n' */
	char *src;           /* prosrc */
	char *def;           /* pg_get_functiondef() */
	char *defaults;      /* argument defaults */
	policy_facts *facts; /* the body's facts */
	uint32_t *callees;   /* indexes of entries this one may run (kept: staleness follows them) */
	size_t n_callees, cap_callees;
} cat_fn;

#define NARGS_ANY 0xffffu /* a variadic function takes any number of arguments */

enum {
	SYS_PG_CATALOG = 1,         /* a function of this name exists in pg_catalog */
	SYS_INFORMATION_SCHEMA = 2, /* ... in information_schema */
	SYS_TYPE = 4,               /* a type of this name exists (any schema): name(x) may be a cast */
};

/* The name index: every function of one proname, in any schema. */
typedef struct cat_name {
	char *name;    /* proname (the hash key) */
	uint32_t *fns; /* indexes into fn_catalog.fns */
	size_t n, cap;
	uint8_t sys;                   /* SYS_* */
	uint32_t sys_bits;             /* CJ_* over the built-in overloads of this name (their pg_proc facts) */
	uint32_t sys_bits1;            /* CJ_* over the built-in overloads callable with one argument */
	const char *sys_why[CJ_NBITS]; /* per sys bit: why (static) */
	bool oom;                      /* uthash could not add it */
	UT_hash_handle hh;             /* uthash */
} cat_name;

/* A support function of a user aggregate (what its calls run). */
typedef struct cat_agg {
	uint32_t agg_oid;     /* the aggregate */
	uint32_t support_oid; /* aggtransfn, aggfinalfn, ... */
	char *schema, *name;  /* the support function's */
	char volatility;      /* the support function's provolatile */
} cat_agg;

struct fn_catalog {
	int refcount; /* atomic */
	cat_fn *fns;  /* every user function, by index */
	size_t n, cap;
	cat_name *names; /* uthash head: name -> functions */
	cat_name *views; /* uthash head: relname -> views (entries of fns; never candidates of a call) */
	cat_name *hooks[CATALOG_NHOOKS]; /* per CATALOG_HOOK_*: name -> hook entries of fns */
	cat_agg *agg;                    /* aggregate support functions (build input) */
	size_t n_agg, cap_agg;
	catalog_counts counts; /* computed by catalog_finish() */
	bool trust_walls; /* the target runs deploy/walls.sql (walls = required, verified): its schema is vouched for */
};

enum {
	CAND_USER = 1,   /* a user function matched */
	CAND_SYSTEM = 2, /* a built-in (pg_catalog, information_schema) may be the one called */
};

/* Free a function's build inputs (bodies, facts; edges stay); safe to call twice. */
void cat_fn_free_inputs(cat_fn *fn);

typedef void (*cand_cb)(void *arg, const cat_fn *fn);
/* Candidates of a call with nargs arguments (-1: any). *sys (may be NULL) gets the name's built-in bits. */
int catalog_candidates(const fn_catalog *c, const char *called, bool builtin_named, int nargs, cand_cb cb, void *arg,
		       uint32_t *sys);
/* The name's index entry, or NULL. */
const cat_name *catalog_name(const fn_catalog *c, const char *name);
/* Every hook entry of one kind and name (bare, or "schema.name": the schema must match). */
int catalog_hook_candidates(const fn_catalog *c, int kind, const char *name, cand_cb cb, void *arg);

/*
 * What one set of facts makes PostgreSQL run, from the catalog: every entry
 * (function, view, hook) is passed to sink->fn; what resolves to built-ins or
 * to nothing known is passed to sink->bits with its reason. Used for client
 * statements (policy_decide) and for bodies (call edges) alike.
 */
typedef struct cand_sink {
	void (*fn)(void *arg, const char *what, const cat_fn *fn);                 /* an entry it runs */
	void (*bits)(void *arg, const char *what, uint32_t bits, const char *why); /* direct bits */
	void *arg;                                                                 /* for both */
	bool ddl_hooks; /* judge event triggers for DDL (not inside hooks: their SQL is pgwarden's own text) */
} cand_sink;
void catalog_facts_candidates(const fn_catalog *c, const policy_facts *f, const cand_sink *sink);
/* Every view a relation name may be ("schema.name" or "name", any schema); CAND_USER if one matched. */
int catalog_view_candidates(const fn_catalog *c, const char *rel, cand_cb cb, void *arg);

/* catalog_sql.c: run one statement over the loader's connection; NULL and *err (malloc'd) on failure. */
PGresult *catalog_run(PGconn *conn, const char *sql, ExecStatusType want, char **err);
/* catalog_hooks.c: read what operators, casts, domains, tables and event triggers run (CATALOG_HOOK_*). */
bool catalog_load_hooks(PGconn *conn, fn_catalog *c, char **err);

#endif
