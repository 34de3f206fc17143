/* classify_int.h - internals shared by the classifier's files (not for the relay). */
#ifndef PGW_CLASSIFY_INT_H
#define PGW_CLASSIFY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

/*
 * Limits, found by experiment with libpg_query 15-4.0.0 (see classify.c):
 * a left-deep chain "1+1+...+1" needs about 128 bytes of stack per level (2
 * tokens) while the tree is turned into JSON; nesting that grows bison's stack
 * ((((, NOT NOT, ARRAY[ARRAY[) stops at 10000 levels with "memory exhausted".
 */
#define PC_INLINE_MAX_WEIGHT 4096u    /* parse on the caller's stack up to this weight */
#define PC_MAX_WEIGHT 1000000u        /* beyond: "too large to verify" */
#define PC_STACK_PER_WEIGHT 256u      /* bytes of parse stack budgeted per weight unit (2x measured) */
#define PC_STACK_BASE (4u << 20)      /* plus this for our own walk and the parser's fixed frames */
#define PC_MAX_WALK_DEPTH 3000        /* JSON nesting our walk follows; deeper is "too deep" */
#define PC_MAX_NESTED_DO 8            /* DO inside DO inside ... */
#define PC_MAX_CACHED_KEY (32u << 10) /* texts with longer cache keys are not cached */

/* ---- string lists ---- */
typedef struct pc_strlist {
	char **v; /* NUL-terminated strings, owned */
	size_t n;
} pc_strlist;

/* The facts of one statement (see policy.h). */
struct policy_facts {
	int refcount;        /* atomic; the builder starts it at 1 */
	uint32_t flags;      /* PF_* */
	char *name;          /* PREPARE/EXECUTE/DEALLOCATE name, NULL for DEALLOCATE ALL */
	policy_facts *inner; /* PREPARE: the body's facts (owned reference) */
	char *error;         /* PF_UNPARSABLE: the reason */
	bool syntax;         /* PF_UNPARSABLE: PostgreSQL's parser or scanner rejected it (a syntax error) */
	int error_pos;       /* syntax: the parser's 1-based character position, 0 if none */
	char *why_write;     /* first reason it is not read-only, e.g. "INSERT" */
	char *why_identity;  /* first identity-change reason, e.g. "SET ROLE" */
	char *why_opaque;    /* first opaque-sql reason, e.g. "function dblink runs SQL given as text" */
	char *why_rw;        /* first read-write-override reason */
	char *why_lexing;    /* first lexing-change reason */
	pc_strlist settings; /* settings written, lower-cased */
	pc_strlist grantees; /* roles receiving privileges, membership or ownership */
	pc_strlist funcs;    /* non-built-in functions called */
	pc_strlist builtins; /* unqualified calls the built-in table judged: a user function of that name
			      * may be the one PostgreSQL picks (other argument types, search_path) */
	pc_strlist rels;     /* relations read or written, "schema.name" or "name" as written (folded) */
	pc_strlist wrels;    /* relations written (DML, COPY FROM, TRUNCATE targets): their triggers, defaults... run */
	pc_strlist attrs; /* attribute names ("(x).name", "t.name"): PostgreSQL may run name(x) (ParseFuncOrColumn) */
	pc_strlist types; /* type names cast to or declared ("schema.name" or bare; pg_catalog dropped) */
	pc_strlist ddl_names; /* PF_FUNC_DDL: every name the DDL mentions (bare): what it can change */
	pc_strlist opers;     /* operator names used, "schema.op" or "op" (A_Expr, ANY/ALL sublinks, BETWEEN's >= <=) */
	pc_strlist roles;     /* roles whose definition, attributes, name or memberships change (folded);
			      * "*" for every role (ALTER ROLE ALL), "current_user", "current_role",
			      * "session_user" for the specials: judged against config in decide (roles.c) */
	bool oom;             /* an allocation failed while building: the caller discards it */
};

policy_facts *facts_new(void);
policy_facts *facts_unparsable(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Facts of a text PostgreSQL's parser rejects: unparsable, with the parser's message and position. */
policy_facts *facts_syntax_error(const char *message, int position);
void facts_set_why(policy_facts *f, char **slot, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void facts_add(policy_facts *f, pc_strlist *l, const char *s, size_t len, bool lower);
/* Fold everything in src into dst (DO bodies, EXPLAIN targets): flags, reasons, lists. */
void facts_merge(policy_facts *dst, const policy_facts *src, uint32_t flag_mask);

/* ---- JSON reader over libpg_query's output ---- */
enum {
	J_OBJ = 1, /* object: children are key, value, key, value... */
	J_ARR,     /* array */
	J_STR,     /* string: [start, start+len) is the raw content between the quotes */
	J_NUM,     /* number */
	J_LIT,     /* true, false, null */
};

typedef struct jtok {
	uint8_t type;   /* J_* */
	uint8_t esc;    /* J_STR: contains backslash escapes */
	uint32_t start; /* byte offset of the content */
	uint32_t len;   /* byte length of the content */
	uint32_t end;   /* index of the first token after this subtree */
} jtok;

typedef struct jdoc {
	const char *text; /* the JSON text (borrowed) */
	jtok *t;          /* tokens in document order; t[0] is the root */
	uint32_t n, cap;
	int max_depth; /* deepest nesting seen */
} jdoc;

/* Parse JSON text; returns 0, -1 malformed, -2 out of memory. d->t reused across calls. */
int json_parse(jdoc *d, const char *text, size_t len);
void json_free(jdoc *d);
bool jstr_eq(const jdoc *d, uint32_t i, const char *s);
/* Whether string token i (0: absent) equals one of set[0..n). */
bool jstr_in(const jdoc *d, uint32_t i, const char *const *set, size_t n);
/* Decoded copy of string token i; NULL if i is not a string or out of memory. */
char *jstr_dup(const jdoc *d, uint32_t i);
/* Value of key in object obj, or 0 if absent (0 is the root, never a value). */
uint32_t jobj_get(const jdoc *d, uint32_t obj, const char *key);
/* Integer value of a number token (0 when not a number). */
long jnum(const jdoc *d, uint32_t i);

/* ---- the walk ---- */
/* Internal flag while building: something not read-only was seen (becomes !PF_READ_ONLY). */
#define PF_INT_WRITE (1u << 31)

/* State of one walk over one parse tree (one statement's facts at a time). */
typedef struct pc_walk {
	const jdoc *d;   /* the parse tree */
	policy_facts *f; /* facts being built for the current statement */
	int depth;       /* current JSON nesting below the statement */
	int depth_base;  /* nesting already used by enclosing walks (DO bodies) */
	int plan_only;   /* > 0 inside EXPLAIN without ANALYZE: nothing is executed */
	int nest;        /* DO nesting level */
	bool too_deep;   /* depth limit hit: the statement is unverifiable */
	/* Inside the target list of SELECT ... FROM pg_settings WHERE name = 'x': the one value the
	 * name column can hold there (classify_set.c walk_select_body), else NULL. Owned by that call. */
	const char *settings_name;
	const char *settings_qual; /* with settings_name: the name that qualifies its column ("s" in s.name) */
} pc_walk;

void walk_value(pc_walk *w, uint32_t i);
void walk_fields(pc_walk *w, uint32_t obj);
/* A relation a statement writes (an unwrapped RangeVar body): recorded in rels and wrels. */
void add_written_relation(pc_walk *w, uint32_t rv);
/* classify_calls.c: calls without a FuncCall (attribute notation, operators, casts), node handlers. */
void on_columnref(pc_walk *w, uint32_t body);
void on_indirection(pc_walk *w, uint32_t body);
void on_aexpr(pc_walk *w, uint32_t body);
void on_sublink(pc_walk *w, uint32_t body);
void on_typename(pc_walk *w, uint32_t body);
void on_typecast(pc_walk *w, uint32_t body);
void on_truncate(pc_walk *w, uint32_t body);
void on_ddl_self_judged(pc_walk *w, uint32_t body);
void on_create_trigger(pc_walk *w, uint32_t body);
void on_alter_table(pc_walk *w, uint32_t body);
void on_policy_ddl(pc_walk *w, uint32_t body);
/* classify_walk.c: DDL changing hooks, stale by the names it mentions; a function named by a list, as a call. */
void on_hook_ddl(pc_walk *w, uint32_t body);
void judge_named_call(pc_walk *w, uint32_t list);
void mark_write(pc_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mark_identity(pc_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mark_opaque(pc_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mark_rw(pc_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mark_lexing(pc_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Body of a wrapped node {"Type": body} at i, if its type is 'type'; else 0. */
uint32_t node_body(const jdoc *d, uint32_t i, const char *type);
/* Decoded value of an A_Const at i as text (sval, ival, fval, boolval); NULL if not a constant.
 * Marks PF_LITERAL_DEP. */
char *const_text(pc_walk *w, uint32_t i);

/* classify_set.c: SET/RESET/SET TRANSACTION, set_config, ALTER ... SET.
 * persist: ALTER ROLE/DATABASE/SYSTEM ... SET (future sessions). */
void on_variable_set(pc_walk *w, uint32_t body, bool persist);
void on_set_config(pc_walk *w, uint32_t funcbody);
/* A SelectStmt's fields; knows which setting names reach set_config(name, ...) FROM pg_settings. */
void walk_select_body(pc_walk *w, uint32_t body);
/* A relation named by a statement's "relation"/"view"/"rel" field: one named pg_settings could
 * shadow pg_catalog.pg_settings (pg_temp comes first) and feed set_config any name. */
void note_named_relation(pc_walk *w, uint32_t rv);
/* BEGIN/START/SET TRANSACTION options: transaction_read_only = false is a read-write override. */
void check_txn_options(pc_walk *w, uint32_t options);

/* classify_grant.c */
void on_grant(pc_walk *w, uint32_t body);
void on_grant_role(pc_walk *w, uint32_t body);
/* Record a RoleSpec (wrapped or not) as a grantee. */
void add_rolespec(pc_walk *w, uint32_t i);
/* Role statements (classify_grant.c), registered in classify_walk.c's node table. */
void on_create_role(pc_walk *w, uint32_t body);
void on_alter_role(pc_walk *w, uint32_t body);
void on_alter_role_set(pc_walk *w, uint32_t body);
void on_drop_role(pc_walk *w, uint32_t body);
void on_owned_by(pc_walk *w, uint32_t body);
void on_policy(pc_walk *w, uint32_t body);
void on_user_mapping(pc_walk *w, uint32_t body);
void on_createdb(pc_walk *w, uint32_t body);
/* RenameStmt of a role: both names are altered roles (no-op for other object types). */
void note_role_rename(pc_walk *w, uint32_t body);

/* ---- roles.c: decide-time judgement of facts' altered roles ---- */
/* The first altered role of f that is protected, or NULL. */
const char *policy_protected_role_altered(const pgw_config *cfg, const policy_facts *f);
/* Whether f alters a role that is (or may be) a target's upstream login role; why filled then. */
bool policy_login_role_altered(const pgw_config *cfg, const policy_facts *f, char *why, size_t whysz);
/* Whether f alters the role of a token record (an actor's upstream role); why filled then. */
bool policy_actor_role_altered(const pgw_config *cfg, const policy_facts *f, char *why, size_t whysz);

/*
 * Classify every statement of a parse tree. Called on a stack big enough for
 * the text (see classify.c). facts[i] receives a new reference per RawStmt;
 * locs[i] the statement's location and length as the parser gave them.
 * Returns the number of statements, -1 out of memory, -2 too deep/large (err filled).
 */
typedef struct pc_rawstmt {
	policy_facts *facts;
	int location; /* stmt_location */
	int len;      /* stmt_len, 0 = to the end */
} pc_rawstmt;

int walk_parse_tree(const char *json, size_t jlen, pc_rawstmt **out, char *err, size_t errsz);
/* The same for statements embedded in a DO block: -1 out of memory, -2 unreadable or too deep. */
int walk_parse_tree_nested(const char *json, size_t jlen, int nest, int depth_base, pc_rawstmt **out);
/* Classify one SQL text embedded in a DO block; merges into f. depth: the DO nesting. */
void walk_embedded_sql(policy_facts *f, const char *sql, int nest, int walk_depth);
/* Classify a DO block body (language already known to be plpgsql); merges into f. */
void walk_do_block(policy_facts *f, const char *body, size_t len, int nest, int walk_depth);
/* Classify a whole CREATE FUNCTION ... LANGUAGE plpgsql text; merges into f. what: "DO block" or
 * "PL/pgSQL body", for the reasons given. */
void walk_plpgsql_source(policy_facts *f, const char *create_text, const char *what, int nest, int walk_depth);
/* classify_plfix.c: a PL/pgSQL body rewritten so libpg_query's catalog-less reader accepts cursor
 * statements and declaration collations (same SQL runs); NULL when nothing to rewrite. Caller frees. */
char *plpgsql_fix_body(const char *body);
/* Merge the facts of one statement embedded in a body (DO, function) into f; what names the body. */
void merge_embedded_facts(policy_facts *f, const policy_facts *s, const char *what);
/* Session commands (classify_stmt.c), registered in classify_walk.c's node table. */
void on_lock(pc_walk *w, uint32_t body);
void on_load(pc_walk *w, uint32_t body);
/* cmdtag.c: PostgreSQL's command tag ("CREATE TABLE", "DROP VIEW") for the statement node whose
 * body is at body (walk_node's handlers get it), or NULL when the node is not a statement. */
const char *stmt_command_tag(const jdoc *d, uint32_t body, char *buf, size_t bufsz);
/* For the unit test: the node table must stay sorted for bsearch. */
bool cmdtag_table_sorted(void);
/* Turn the building flag PF_INT_WRITE into the public PF_READ_ONLY. */
void facts_finalize(policy_facts *f);

/* ---- decide.c helpers the catalog shares ---- */
/* Whether a setting is pinned for sessions under cfg: role, session_authorization, actor/tenant/claims. */
bool policy_setting_is_pinned(const pgw_config *cfg, const char *name);
/* The first setting f writes that is pinned, or NULL. */
const char *policy_pinned_setting_written(const pgw_config *cfg, const policy_facts *f);
/* The first grantee of f that is a protected role, or NULL. */
const char *policy_protected_grantee(const pgw_config *cfg, const policy_facts *f);

/* ---- user routines (classify_routine.c): a function's body as facts ---- */
#define PC_MAX_ROUTINE_BODY (256u << 10) /* longer bodies are opaque ("too large to verify") */
/* Stack a thread needs to classify any routine body up to PC_MAX_ROUTINE_BODY (bytes bound tokens). */
#define PC_ROUTINE_STACK (PC_STACK_BASE + PC_MAX_ROUTINE_BODY * PC_STACK_PER_WEIGHT)

typedef struct pc_routine {
	const char *lang;     /* pg_language.lanname: "sql" and "plpgsql" are read, others are opaque */
	const char *src;      /* pg_proc.prosrc (the body as written), or NULL */
	const char *def;      /* pg_get_functiondef(): needed for plpgsql and BEGIN ATOMIC bodies, or NULL */
	const char *defaults; /* pg_get_expr(proargdefaults, 0): "expr, expr", or NULL */
	bool atomic;          /* SQL body stored parsed (prosqlbody, PG14+): classify def's sql_body */
} pc_routine;

/*
 * Facts of a routine's body (finalized: PF_READ_ONLY unless something writes),
 * merged over every statement and expression it contains and its argument
 * defaults. Must run on a stack of PC_ROUTINE_STACK bytes. NULL: out of memory.
 */
policy_facts *classify_routine(const pc_routine *r);

/* ---- built-in functions ---- */
typedef enum {
	BF_UNKNOWN = 0, /* not a known built-in: treated as a user function */
	BF_READ,        /* read-only, identity-safe */
	BF_WRITE,       /* has side effects (nextval, lo_*, pg_advisory_*, pg_notify...) */
	BF_OPAQUE_SQL,  /* runs SQL given as text (query_to_xml, ts_stat, dblink...) */
	BF_SERVER_FILE, /* reads or writes server files (pg_read_file, lo_import...) */
	BF_SET_CONFIG,  /* set_config: judged by its first argument */
	BF_TS_REWRITE,  /* ts_rewrite: opaque in its 2-argument (query text) form */
} pc_builtin_class;

pc_builtin_class builtin_lookup(const char *name);
/* For the unit test: the table must stay sorted, or bsearch silently misses entries. */
bool builtin_table_sorted(void);

/* ---- scanner tokens (pg_query_scan, decoded from its protobuf by hand) ---- */
enum {
	TK_IDENT = 258,
	TK_UIDENT = 259,
	TK_FCONST = 260,
	TK_SCONST = 261,
	TK_USCONST = 262,
	TK_BCONST = 263,
	TK_XCONST = 264,
	TK_OP = 265,
	TK_ICONST = 266,
	TK_PARAM = 267,
	TK_COLON_EQUALS = 270,
	TK_SQL_COMMENT = 275,
	TK_C_COMMENT = 276,
	TK_DO = 391,
	TK_UESCAPE = 685,
};

typedef struct pc_token {
	uint32_t start, end; /* byte range in the text */
	uint32_t token;      /* libpg_query Token enum (ASCII code for single characters) */
	uint32_t kw;         /* KeywordKind: 0 = not a keyword */
} pc_token;

typedef struct pc_scan {
	pc_token *v; /* significant tokens (comments dropped) */
	size_t n, cap;
	char err[256]; /* scanner error, when scan_text returns -2 */
	int err_pos;   /* -2: the scanner's 1-based character position (0: none); -1: not the scanner's own error */
} pc_scan;

/* Scan a NUL-terminated text. 0 ok, -1 out of memory, -2 scanner error (s->err). */
int scan_text(pc_scan *s, const char *sql);
void scan_free(pc_scan *s);
/* Whether a token's text is a literal value (ignored by the literal-free cache key). */
bool token_is_literal(uint32_t token);

/* ---- settings ---- */
/* A setting any client may change on a read-only production session. */
bool setting_is_harmless(const char *name);

/* ---- cache ---- */
typedef struct pc_cache pc_cache;

/* A cached analysis of a whole text: statement token ranges and their facts. */
typedef struct pc_entry_stmt {
	uint32_t first_tok, last_tok; /* indexes into the text's significant tokens */
	policy_facts *facts;          /* reference held by the entry */
} pc_entry_stmt;

pc_cache *cache_new(size_t max_entries);
void cache_free(pc_cache *c);
/*
 * Look up key. Returns false on a miss; *v (valid until the next cache_put) and *n
 * otherwise. *literal_marker is set when the entry says "this token shape depends on
 * literals: look up the literal-exact key".
 */
bool cache_get(pc_cache *c, const uint8_t *key, size_t klen, uint64_t hash, const pc_entry_stmt **v, size_t *n,
	       bool *literal_marker);
/* Insert (takes new references on facts). marker: a literal-dependence marker entry. */
void cache_put(pc_cache *c, const uint8_t *key, size_t klen, uint64_t hash, const pc_entry_stmt *v, size_t n,
	       bool marker);
void cache_stats(const pc_cache *c, uint64_t *entries, uint64_t *bytes);
uint64_t cache_hash(const uint8_t *p, size_t n);

#endif
