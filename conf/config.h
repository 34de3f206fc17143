/*
 * config.h - the configuration snapshot: everything pgwarden.ini and the token
 * file say, parsed and validated into one immutable, reference-counted object.
 *
 * A snapshot is built whole by config_load() and never changed afterwards.
 * Reload builds a new one and swaps the pointer; sessions hold a reference to
 * the snapshot current at their last statement, so nothing reads half a config.
 */
#ifndef PGW_CONFIG_H
#define PGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf/tokens.h"

/* PostgreSQL 15's largest frontend message length word (MaxAllocSize - 1, libpq.h): the relay's cap. */
#define PGW_MAX_MESSAGE_SIZE 0x3ffffffeu

typedef enum {
	ENV_PRODUCTION,  /* writes only inside approved windows, read-only upstream otherwise */
	ENV_STAGING,     /* writes allowed; grants and identity rules still apply */
	ENV_DEVELOPMENT, /* as staging */
} pgw_environment;

typedef enum {
	CLIENT_TLS_DISABLE, /* SSLRequest answered 'N' */
	CLIENT_TLS_ALLOW,   /* SSLRequest answered 'S' when a cert is configured */
	CLIENT_TLS_REQUIRE, /* plaintext startups are refused */
} pgw_client_tls;

typedef enum {
	LOG_FORMAT_TEXT, /* "2026-11-22 01:48:41.489 UTC LOG: s=17 user:jimmie prod 10.0.0.9:5123 ..." */
	LOG_FORMAT_JSON, /* one JSON object a line: ts, level, session, actor, target, client, msg */
} pgw_log_format;

typedef enum {
	AUDIT_FSYNC_ALWAYS, /* fsync before the statement is sent upstream */
	AUDIT_FSYNC_BATCH,  /* fsync at least every 100 ms */
	AUDIT_FSYNC_NEVER,  /* leave it to the OS */
} pgw_audit_fsync;

/* pool_mode (CONTRACT §7): how long a client keeps a pooled upstream connection. */
typedef enum {
	POOL_MODE_SESSION,     /* a client keeps one upstream connection from its first message to disconnect */
	POOL_MODE_TRANSACTION, /* a client borrows a connection for one transaction (or while it is held) */
} pgw_pool_mode;

/* walls = ...: whether the target's database carries deploy/walls.sql and pgwarden feeds it. */
typedef enum {
	WALLS_OFF,      /* no signature is pinned and nothing is checked */
	WALLS_REQUIRED, /* pins are signed with the wall key; a session whose database does not verify
	                   the signature (walls missing, other key) is refused */
} pgw_walls;

#define WALL_KEY_LEN 32 /* bytes of a wall key (64 hex digits in wall_key_file) */

/* [target.NAME]: an upstream database; the client's dbname selects it. */
typedef struct pgw_target {
	char *name;                  /* NAME from the section header */
	char *conninfo;              /* libpq connection string */
	pgw_environment environment; /* production | staging | development */
	pgw_pool_mode pool_mode;     /* how long a client keeps a pooled upstream connection (CONTRACT §7) */
	int pool_size;               /* most upstream connections to this target at once */
	int pool_min_idle;       /* idle connections kept open and ready, opened in the background (pool_upkeep.c) */
	int pool_wait_timeout;   /* seconds a client waits for a connection before 53300 */
	int server_idle_timeout; /* seconds an idle pooled connection stays open */
	int server_lifetime;     /* seconds after which a connection is closed when it next goes idle */
	int server_check_delay;  /* a connection idle this long is checked (empty query) before it is lent; 0: always */
	int line;                /* line of the section header, for messages */
	/* database walls (deploy/walls.sql), one block */
	pgw_walls walls;                      /* walls = off (default) | required */
	char *wall_key_file;                  /* wall_key_file: the key shared with the database; required with walls */
	unsigned char wall_key[WALL_KEY_LEN]; /* the key read from wall_key_file at load (all zero when off) */
} pgw_target;

struct pgw_zone; /* a parsed IANA time zone (conf/windows.c), opaque here */

/* One time a window is open: [open, close) in UTC seconds. */
typedef struct pgw_interval {
	time_t open;  /* first second the window is open */
	time_t close; /* first second it is closed again */
} pgw_interval;

/* [window.NAME]: an approved change window for one production target. */
typedef struct pgw_window {
	char *name;        /* NAME from the section header */
	char *target;      /* target name; validated to exist */
	bool weekly;       /* false: one-off [start_utc, end_utc) */
	time_t start_utc;  /* one-off only */
	time_t end_utc;    /* one-off only */
	uint8_t days;      /* weekly only: bit d set for weekday d (0 = Sunday, as tm_wday) */
	int start_minute;  /* weekly only: local minutes after midnight, 0..1439 */
	int end_minute;    /* weekly only: local end; end <= start means it ends the next day */
	char *timezone;    /* weekly only: IANA zone name, validated at load */
	char *approved_by; /* who approved it, as written */
	char *reason;      /* why, as written */
	char **actors;     /* optional: only these actors may write in it */
	size_t n_actors;   /* 0: any actor */
	int line;          /* line of the section header, for messages */
	/* Filled by windows_prepare() at load (weekly only), read-only afterwards: */
	struct pgw_zone *zone; /* the parsed TZif data of 'timezone', owned */
	pgw_interval *iv;      /* open intervals in UTC, sorted, adjacent ones merged */
	size_t n_iv;
	time_t iv_from; /* iv answers queries for instants in [iv_from, iv_to) */
	time_t iv_to;
} pgw_window;

typedef enum {
	RULE_ACTION_DENY, /* statement denied with rule id rule:NAME */
	RULE_ACTION_LOG,  /* statement allowed, audit record carries rule:NAME */
} pgw_rule_action;

/* [rule.NAME]: an operator's extra PCRE2 rule on each statement's text. */
typedef struct pgw_rule {
	char *name;  /* NAME from the section header; the rule id is rule:NAME */
	char *match; /* the pattern as written */
	void *re;    /* compiled pcre2_code *, owned by the snapshot */
	pgw_rule_action action;
	char **targets; /* optional target names; n_targets == 0 means all */
	size_t n_targets;
	char *message; /* shown to the client on deny; may be NULL */
	int line;      /* line of the section header */
	void *mctx;    /* pcre2_match_context * with match/depth limits, owned */
} pgw_rule;

typedef struct pgw_config {
	int refcount;    /* config_ref / config_unref; single-threaded event loop */
	char *path;      /* the config file as given */
	char *dir;       /* its directory, base of relative paths */
	char sha256[65]; /* lowercase hex SHA-256 of the file's bytes as parsed (audit start/reload) */

	/* [pgwarden] */
	char *listen;       /* "host:port" or "unix:/dir" */
	char *admin_listen; /* NULL or "" = off */
	char *tokens_file;  /* resolved against dir */
	char *audit_log;    /* resolved against dir; NULL = no audit log */
	bool audit_params;
	pgw_audit_fsync audit_fsync;
	char *audit_checkpoint_key;    /* resolved against dir; NULL = no checkpoint records */
	int audit_checkpoint_interval; /* seconds between checkpoints while records are written, default 60 */
	char *tls_cert_file;           /* resolved against dir; NULL = no client TLS */
	char *tls_key_file;
	pgw_client_tls client_tls;
	bool plaintext_auth;
	char *actor_setting;    /* default "app.actor_id" */
	char *tenant_setting;   /* default "app.tenant_id" */
	char *claims_setting;   /* NULL or "" = off */
	char **protected_roles; /* folded like PostgreSQL identifiers; default anon, guest, public */
	size_t n_protected_roles;
	char **trusted_functions; /* "schema.name", each part folded like a PostgreSQL identifier */
	size_t n_trusted_functions;
	int workers; /* default 1 */
	/* Extensions beyond CONTRACT §2 (documented in README): */
	size_t max_message_size; /* max client message length, default and most PGW_MAX_MESSAGE_SIZE */
	int auth_timeout;        /* seconds a client has to finish startup+auth, default 60 */
	int max_startup_conns;   /* concurrent unauthenticated connections, default 256 */
	/* Operator limits (CONTRACT §2; max_actor_conn is an extension); 0 = off unless noted: */
	int max_client_conn;          /* client connections at once, default 10000; past it 53300 */
	int client_idle_timeout;      /* seconds a client may sit idle outside a transaction */
	int idle_transaction_timeout; /* seconds a client may sit idle inside a transaction */
	int query_timeout;            /* seconds a statement may run before pgwarden cancels it */
	int max_actor_conn;           /* logged-in sessions per actor id at once */
	pgw_log_format log_format;    /* the process log's format, default text */
	char *admin_token;            /* bearer token for the admin console's actions; NULL = actions off */

	pgw_target *targets;
	size_t n_targets;
	pgw_window *windows;
	size_t n_windows;
	pgw_rule *rules;
	size_t n_rules;

	pgw_token_table *tokens; /* loaded from tokens_file */
} pgw_config;

/* Accumulated "FILE:LINE: message" errors from a load. */
typedef struct pgw_errors {
	char **msgs; /* each "FILE:LINE: message" (or "FILE: message"), malloc'd */
	size_t n;    /* how many */
} pgw_errors;

void errors_add(pgw_errors *e, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void errors_free(pgw_errors *e);

/*
 * Parse and validate the config file at 'path' and the token file it names.
 * On success returns a snapshot with refcount 1 and e->n == 0. On any error
 * returns NULL and fills 'e' with every problem found (not just the first).
 */
pgw_config *config_load(const char *path, pgw_errors *e);

/*
 * A check of a file-valued [pgwarden] key that a layer above conf adds to the
 * load (conf may not call up into it): the audit layer's "the checkpoint key
 * loads as a signing key" (audit_config_load).
 */
typedef struct config_file_check {
	const char *key; /* a path key of [pgwarden], e.g. "audit_checkpoint_key" */
	bool (*usable)(const char *path, char *why,
		       size_t whysz); /* false, with a reason, when the file cannot serve */
} config_file_check;

/* config_load, and checks[0..n) on their keys' resolved paths; a failure is "FILE:LINE: key: why". */
pgw_config *config_load_checked(const char *path, pgw_errors *e, const config_file_check *checks, size_t n);

pgw_config *config_ref(pgw_config *c);
void config_unref(pgw_config *c);

/* The target whose name equals dbname exactly, or NULL. */
const pgw_target *config_find_target(const pgw_config *c, const char *dbname);

/* Whether a role name (already case-folded per PostgreSQL rules) is protected. */
bool config_is_protected_role(const pgw_config *c, const char *role);

const char *environment_name(pgw_environment env);

/*
 * Whether the rule's pattern matches text[0..len) (need not be NUL-terminated;
 * invalid UTF-8 is fine). A match that hits PCRE2's match or depth limit counts
 * as a match: an operator's rule fails closed rather than being skipped.
 */
bool rule_matches(const pgw_rule *r, const char *text, size_t len);

/* Whether the rule applies to the target (no targets= means every target). */
bool rule_applies_to(const pgw_rule *r, const char *target);

/* Helpers shared by the config and token parsers. */

/* Parse an RFC 3339 timestamp (any offset, optional fraction, which is dropped). */
bool parse_rfc3339(const char *s, time_t *out);

/*
 * Split a comma list into trimmed, non-empty, malloc'd items. Returns false
 * (and nothing allocated) on an empty item such as "a,,b" or on no memory.
 */
bool split_list(const char *s, char ***items, size_t *n);

void free_list(char **items, size_t n);

#endif
