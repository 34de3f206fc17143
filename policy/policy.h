/*
 * policy.h - the policy engine: what a statement IS (its facts, from
 * libpg_query's parse tree) and whether this actor may run it here and now
 * (the verdict, a cheap function of facts, config snapshot, target and clock).
 *
 * Facts never depend on config (protected roles, pinned setting names, rules,
 * windows are applied at decide time), so facts can be cached across reloads
 * and verdicts need no invalidation. The classifier is a pure library: no
 * sockets, no globals; one policy_classifier per thread.
 */
#ifndef PGW_POLICY_H
#define PGW_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf/config.h"
#include "conf/tokens.h"

/* How the server lexes SQL right now; part of the cache key. */
typedef struct policy_lexctx {
	bool standard_conforming_strings; /* the relay keeps it on; off is lexed as the server would */
} policy_lexctx;

/* Fact flags of one statement. */
enum {
	PF_SESSION_RESET = 1u << 0, /* RESET ALL / DISCARD ALL: allowed, relay re-pins role and settings */
	PF_PREPARE = 1u << 1,       /* PREPARE name AS stmt: name + inner facts; flags include the body's */
	PF_EXECUTE = 1u << 2,       /* EXECUTE name: relay must also decide on the stored PREPARE facts */
	PF_DEALLOCATE = 1u << 3,    /* DEALLOCATE name (name NULL for ALL) */
	PF_LEXING_CHANGE = 1u << 4, /* would change standard_conforming_strings/backslash_quote/client_encoding */
	PF_READ_ONLY = 1u << 5,     /* known read-only, apart from the user functions listed (PF_USER_FUNC) */
	PF_UNPARSABLE = 1u << 6,    /* parser rejected it, or too large/deep to verify: policy_facts_error() */
	PF_IDENTITY = 1u << 7,      /* changes role/session authorization, or could change any setting */
	PF_OPAQUE = 1u << 8,        /* runs SQL pgwarden cannot see (dynamic EXECUTE, dblink, COPY PROGRAM...) */
	PF_RW_OVERRIDE = 1u << 9,   /* asks for a read-write transaction or touches *_transaction_read_only */
	PF_GRANT = 1u << 10,        /* grants privileges/membership/ownership: see policy_facts_grantees() */
	PF_USER_FUNC = 1u << 11,    /* calls non-built-in functions: see policy_facts_functions() */
	PF_LITERAL_DEP = 1u << 12,  /* facts depend on a literal's value (cached under a literal-exact key) */
	PF_TXN_CONTROL = 1u << 13,  /* BEGIN/COMMIT/ROLLBACK/SAVEPOINT... */
	PF_FUNC_DDL = 1u << 14,     /* can change function definitions: the relay re-reads the catalog after it */
	PF_COPY = 1u << 15,         /* a COPY statement (top level): audited with protocol "copy" */
	PF_DECLARE = 1u << 16,      /* DECLARE name CURSOR: creates a portal of that name (policy_facts_name) */
	PF_CURSOR_HOLD = 1u << 17,  /* with PF_DECLARE: WITH HOLD, the cursor outlives its transaction */
	PF_CLOSE_CURSOR = 1u << 18, /* CLOSE name (name NULL for CLOSE ALL): drops portals */
	PF_FETCH = 1u << 19,        /* FETCH (not MOVE) from cursor policy_facts_name: returns its rows */
	/* Session state that cannot follow a client to another pooled connection (CONTRACT §7 "held"): */
	PF_HOLD_TEMP = 1u << 20,   /* creates a temporary table, view or sequence (relpersistence 't') */
	PF_HOLD_LISTEN = 1u << 21, /* LISTEN: a registration of this backend */
	PF_HOLD_LOCK = 1u << 22,   /* takes a session-level advisory lock (pg_[try_]advisory_lock[_shared]) */
	PF_SET_LOCAL = 1u << 23,   /* SET LOCAL: its settings end with the transaction */
	/* What ends such state (a held client may be released once the transaction that ran it ends): */
	PF_DISCARD_ALL = 1u << 24,  /* DISCARD ALL (PF_SESSION_RESET too): no session state, statement or portal left */
	PF_DISCARD_TEMP = 1u << 25, /* DISCARD TEMP: every temporary relation is gone */
	PF_UNLISTEN_ALL = 1u << 26, /* UNLISTEN *: no LISTEN registration is left */
	PF_UNLOCK_ALL = 1u << 27,   /* pg_advisory_unlock_all(): no session advisory lock is left */
	PF_TXN_UNDO = 1u << 28,     /* ROLLBACK, ROLLBACK TO SAVEPOINT, PREPARE TRANSACTION: the block's work undone */
};

/* The user functions of one target's database, classified (policy/catalog.h). */
typedef struct fn_catalog fn_catalog;

/* What one statement is. Immutable once built; reference-counted (atomically). */
typedef struct policy_facts policy_facts;

uint32_t policy_facts_flags(const policy_facts *f);
/* PREPARE/EXECUTE/DEALLOCATE statement name, DECLARE/CLOSE/FETCH cursor name, or NULL (DEALLOCATE ALL, CLOSE ALL). */
const char *policy_facts_name(const policy_facts *f);
/* PREPARE: facts of the body (borrowed from f); NULL otherwise. */
const policy_facts *policy_facts_inner(const policy_facts *f);
/*
 * PREPARE statement text: the byte offset of its body (what EXECUTE, or a
 * protocol Bind of the name, runs) in sql[0, len). false when not found
 * (not a PREPARE, or out of memory).
 */
bool policy_prepare_body(const char *sql, size_t len, size_t *offset);
/* PF_UNPARSABLE: why ("syntax error at or near ..."); NULL otherwise. */
const char *policy_facts_error(const policy_facts *f);
/*
 * Whether PostgreSQL's own parser (or scanner) rejected the text, as the
 * server would: then *position is the parser's 1-based character position
 * in the whole text (0 if it gave none). false for what parses but is too
 * large or deep to verify.
 */
bool policy_facts_syntax_error(const policy_facts *f, int *position);
/* Settings written by SET/RESET/set_config/ALTER ... SET, lower-cased. */
char *const *policy_facts_settings(const policy_facts *f, size_t *n);
/* Grantees, as the parser folded them ("public" for PUBLIC, "current_user"... for specials). */
char *const *policy_facts_grantees(const policy_facts *f, size_t *n);
/* Non-built-in functions called, "schema.name" or "name" as written (folded). */
char *const *policy_facts_functions(const policy_facts *f, size_t *n);
/* Relations named (RangeVar: FROM items, DML targets), "schema.name" or "name" as written (folded); a CTE
 * name is listed too. Tables and views alike: the catalog tells views apart (policy_decide). */
char *const *policy_facts_relations(const policy_facts *f, size_t *n);
/* PF_FUNC_DDL: the names (bare) the DDL mentions, so the catalog is stale for those only; n 0: unknown. */
char *const *policy_facts_ddl_names(const policy_facts *f, size_t *n);
/* Roles whose definition, attributes, name or memberships the statement changes (folded; "*": every
 * role; "current_user"/"current_role"/"session_user" for the specials). */
char *const *policy_facts_roles(const policy_facts *f, size_t *n);
/* A short human description of why it is not read-only / identity / opaque ("INSERT", ...), or NULL. */
const char *policy_facts_why_write(const policy_facts *f);
const char *policy_facts_why_identity(const policy_facts *f);
const char *policy_facts_why_opaque(const policy_facts *f);
void policy_facts_ref(const policy_facts *f);
void policy_facts_unref(const policy_facts *f);

/* Per-thread classifier: scratch buffers and the facts cache. */
typedef struct policy_classifier policy_classifier;

/* max_cache_entries 0 disables the cache. Returns NULL on out of memory. */
policy_classifier *policy_classifier_new(size_t max_cache_entries);
void policy_classifier_free(policy_classifier *pc);

/* Cache counters, for /metrics and tests. */
typedef struct policy_cache_stats {
	uint64_t hits;    /* texts answered from the cache */
	uint64_t misses;  /* texts parsed */
	uint64_t entries; /* entries held now */
	uint64_t bytes;   /* key bytes held now */
} policy_cache_stats;
void policy_classifier_stats(const policy_classifier *pc, policy_cache_stats *out);

/* One statement of a text: [offset, offset+len) excludes surrounding blanks, comments and ';'. */
typedef struct policy_stmt {
	size_t offset, len;
	const policy_facts *facts; /* one reference owned by the analysis */
} policy_stmt;

typedef struct policy_analysis {
	policy_stmt *v;
	size_t n;
} policy_analysis;

/*
 * Split a Query/Parse text (not NUL-terminated, may contain NUL -> unparsable)
 * into statements and give each one's facts. An empty (or comment-only) text
 * gives n == 0. An unparsable text gives ONE statement covering the whole text
 * with unparsable facts. Returns 0, or -1 only when out of memory (out is then
 * empty). Free with policy_analysis_clear().
 */
int policy_analyze(policy_classifier *pc, const char *sql, size_t len, const policy_lexctx *lx, policy_analysis *out);
void policy_analysis_clear(policy_analysis *a);

/* Who runs it where and when. */
typedef struct policy_subject {
	const pgw_config *cfg; /* snapshot current for this statement */
	const pgw_target *target;
	const pgw_token *who; /* the authenticated token record (actor) */
	time_t now;
	bool in_transaction; /* inside a transaction block (informational) */
	/* The target's function catalog (borrowed), or NULL: no catalog yet, calls of user functions
	 * are judged as before (writes on production; trusted_functions allowed). */
	const fn_catalog *catalog;
	/* Function definitions changed and the catalog is being re-read: statements that call user
	 * functions are denied (opaque-sql) until the new catalog is in place. */
	bool catalog_stale;
	/* Names whose definitions changed since the catalog was read (borrowed; NULL: none): statements that
	 * use one, or reach one through a function, view or hook, are denied (opaque-sql) until it is read. */
	const struct catalog_stale *stale_names;
} policy_subject;

/* The rule ids of CONTRACT §4; each has a name and properties (policy_rule_*). */
typedef enum {
	RULE_NONE = 0,             /* allowed, no rule involved */
	RULE_GRANT_TO_PROTECTED,   /* grant-to-protected-role */
	RULE_WRITE_OUTSIDE_WINDOW, /* write-outside-window: judged when the statement runs */
	RULE_IDENTITY_CHANGE,      /* identity-change */
	RULE_READ_WRITE_OVERRIDE,  /* read-write-override: judged when the statement runs */
	RULE_OPAQUE_SQL,           /* opaque-sql */
	RULE_FASTPATH,             /* fastpath */
	RULE_UNPARSABLE,           /* unparsable */
	RULE_CONFIG,               /* rule:<name>, an operator's [rule.*] (the name is in rule_buf) */
} policy_rule;

/* The contract's id of a rule ("write-outside-window"); "rule" for RULE_CONFIG, NULL for RULE_NONE. */
const char *policy_rule_name(policy_rule r);
/*
 * Whether a denial under this rule depends on the moment the statement runs
 * (a window may open between Parse and Execute): such a Parse is accepted and
 * the rule is judged again at each Execute. Every other denial is final at Parse.
 */
bool policy_rule_judged_at_execute(policy_rule r);

typedef struct policy_verdict {
	bool deny;                /* deny the statement */
	policy_rule rule_id;      /* which rule denied or logged it (RULE_NONE when none) */
	const char *rule;         /* its id as text when denied or logged, else NULL; static, or points at rule_buf */
	char message[256];        /* primary message, starts with "pgwarden: " */
	char detail[256];         /* names the rule id: "rule: write-outside-window" */
	char hint[256];           /* "" or "next approved window: sec-42 opens 2026-11-24T22:00:00Z" */
	const char *window;       /* name of the window that allowed a production write (config-owned), or NULL */
	char rule_buf[128];       /* storage for "rule:NAME"; if you copy a verdict, re-point rule (see below) */
	bool refresh_catalog;     /* allowed, and may change function definitions: re-read the catalog after it */
	bool refresh_names_known; /* refresh_catalog, and only the facts' ddl_names can have changed */
} policy_verdict;

/*
 * Decide one statement. text/len: this statement's text, for [rule.*] PCRE
 * matching. PF_PREPARE facts are decided on their body; PF_EXECUTE facts only
 * cover the EXECUTE's own parameters: the relay must also decide on the facts
 * stored by the PREPARE.
 */
void policy_decide(const policy_subject *s, const policy_facts *f, const char *text, size_t len, policy_verdict *out);

/*
 * Whether "-c name=value" in a client's startup options is allowed under the
 * config snapshot cfg (a const pgw_config *, as void * for startup_options_check):
 * exactly the settings a session could SET without a denial on any target -
 * never role, session authorization, pinned settings, read-only settings,
 * lexing settings (client_encoding is judged by its value elsewhere) or
 * anything that counts as a write.
 */
bool policy_startup_setting_ok(const char *name, const char *value, void *cfg);

/* A fact-free denial for FunctionCall messages (rule fastpath). */
void policy_deny_fastpath(policy_verdict *out);

/* A denial under a built-in rule with this primary message (the relay's own: unknown statement names). */
void policy_verdict_deny(policy_verdict *out, policy_rule rule, const char *message);

/* Copy a verdict, keeping rule valid (it may point into the source's rule_buf). */
void policy_verdict_copy(policy_verdict *dst, const policy_verdict *src);

#endif
