/* config.c - loads pgwarden.ini (CONTRACT §2) into an immutable, validated snapshot; see config.h. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>
#include <libpq-fe.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <openssl/evp.h>

#include "audit/audit.h"
#include "conf/config.h"
#include "conf/rfc3339.h"
#include "conf/windows.h"

#define CONFIG_FILE_MAX (16 * 1024 * 1024) /* a config larger than this is refused */
#define MAX_KEYS 48                        /* keys in the largest section table (checked below) */
#define ECHO "%.60s"                       /* how much of a bad value an error quotes */
#define RULE_MATCH_LIMIT 1000000           /* PCRE2 backtracking budget per statement */
#define RULE_DEPTH_LIMIT 10000
#define RULE_HEAP_LIMIT_KB 20480

/* The kind of section the parser is in. */
typedef enum {
	SEC_MAIN,   /* [pgwarden] */
	SEC_TARGET, /* [target.NAME] */
	SEC_WINDOW, /* [window.NAME] */
	SEC_RULE,   /* [rule.NAME] */
} section_kind;

/* How a value is parsed and stored. */
typedef enum {
	KV_STRING,   /* text as written (char *) */
	KV_PATH,     /* file path (char *), resolved against the config's directory after parsing */
	KV_LISTEN,   /* host:port or unix:/dir (char *) */
	KV_BOOL,     /* yes/no/on/off/true/false/1/0 (bool) */
	KV_INT,      /* decimal integer in [min, max] (int) */
	KV_SIZE,     /* decimal byte count in [min, max] (size_t) */
	KV_ENUM,     /* one of enum_names; the index is the value (an enum, int-sized) */
	KV_SETTING,  /* a custom setting name such as app.actor_id (char *) */
	KV_ROLES,    /* comma list of role names, folded like identifiers (char **, count at off_n) */
	KV_FUNCS,    /* comma list of schema.name, folded (char **, count at off_n) */
	KV_LIST,     /* comma list kept as written (char **, count at off_n) */
	KV_TIME,     /* RFC 3339 timestamp (time_t) */
	KV_WEEKLY,   /* "tue,thu 22:00-23:30" into a pgw_window's days/minutes */
	KV_CONNINFO, /* libpq connection string (char *), checked with PQconninfoParse */
} kv_type;

#define KF_REQUIRED 1 /* the key must be given */
#define KF_EMPTY_OK 2 /* an empty value is allowed and means "off" (NULL / empty list) */

/* One key of a section table. */
typedef struct key_def {
	const char *name; /* as written in the file */
	kv_type type;
	size_t off;                    /* field in the section's struct */
	size_t off_n;                  /* lists: the size_t count field */
	long long min, max;            /* KV_INT, KV_SIZE */
	const char *const *enum_names; /* KV_ENUM: NULL-terminated */
	int flags;                     /* KF_* */
} key_def;

static const char *const fsync_names[] = { "always", "batch", "never", NULL };
static const char *const client_tls_names[] = { "disable", "allow", "require", NULL };
static const char *const environment_names[] = { "production", "staging", "development", NULL };
static const char *const action_names[] = { "deny", "log", NULL };
static const char *const pool_mode_names[] = { "session", NULL }; /* "transaction": not yet (issue 11) */
static const char *const log_format_names[] = { "text", "json", NULL };
static const char *const walls_names[] = { "off", "required", NULL };

#define C_(f) offsetof(pgw_config, f)
static const key_def main_keys[] = {
	{ "listen", KV_LISTEN, C_(listen), 0, 0, 0, NULL, KF_REQUIRED },
	{ "admin_listen", KV_LISTEN, C_(admin_listen), 0, 0, 0, NULL, KF_EMPTY_OK },
	{ "tokens_file", KV_PATH, C_(tokens_file), 0, 0, 0, NULL, KF_REQUIRED },
	{ "audit_log", KV_PATH, C_(audit_log), 0, 0, 0, NULL, KF_EMPTY_OK },
	{ "audit_params", KV_BOOL, C_(audit_params), 0, 0, 0, NULL, 0 },
	{ "audit_fsync", KV_ENUM, C_(audit_fsync), 0, 0, 0, fsync_names, 0 },
	/* audit checkpoints (audit/audit_sign.c) */
	{ "audit_checkpoint_key", KV_PATH, C_(audit_checkpoint_key), 0, 0, 0, NULL, KF_EMPTY_OK },
	{ "audit_checkpoint_interval", KV_INT, C_(audit_checkpoint_interval), 0, 1, 86400, NULL, 0 },
	{ "tls_cert_file", KV_PATH, C_(tls_cert_file), 0, 0, 0, NULL, KF_EMPTY_OK },
	{ "tls_key_file", KV_PATH, C_(tls_key_file), 0, 0, 0, NULL, KF_EMPTY_OK },
	{ "client_tls", KV_ENUM, C_(client_tls), 0, 0, 0, client_tls_names, 0 },
	{ "plaintext_auth", KV_BOOL, C_(plaintext_auth), 0, 0, 0, NULL, 0 },
	{ "actor_setting", KV_SETTING, C_(actor_setting), 0, 0, 0, NULL, 0 },
	{ "tenant_setting", KV_SETTING, C_(tenant_setting), 0, 0, 0, NULL, 0 },
	{ "claims_setting", KV_SETTING, C_(claims_setting), 0, 0, 0, NULL, KF_EMPTY_OK },
	{ "protected_roles", KV_ROLES, C_(protected_roles), C_(n_protected_roles), 0, 0, NULL, KF_EMPTY_OK },
	{ "trusted_functions", KV_FUNCS, C_(trusted_functions), C_(n_trusted_functions), 0, 0, NULL, KF_EMPTY_OK },
	{ "workers", KV_INT, C_(workers), 0, 1, 64, NULL, 0 },
	{ "max_message_size", KV_SIZE, C_(max_message_size), 0, 1024, PGW_MAX_MESSAGE_SIZE, NULL, 0 },
	{ "auth_timeout", KV_INT, C_(auth_timeout), 0, 1, 3600, NULL, 0 },
	{ "max_startup_conns", KV_INT, C_(max_startup_conns), 0, 1, 1000000, NULL, 0 },
	/* Operator limits (CONTRACT §2; max_actor_conn is an extension). */
	{ "max_client_conn", KV_INT, C_(max_client_conn), 0, 1, 1000000, NULL, 0 },
	{ "client_idle_timeout", KV_INT, C_(client_idle_timeout), 0, 0, 31536000, NULL, 0 },
	{ "idle_transaction_timeout", KV_INT, C_(idle_transaction_timeout), 0, 0, 31536000, NULL, 0 },
	{ "query_timeout", KV_INT, C_(query_timeout), 0, 0, 31536000, NULL, 0 },
	{ "max_actor_conn", KV_INT, C_(max_actor_conn), 0, 0, 1000000, NULL, 0 },
	{ "log_format", KV_ENUM, C_(log_format), 0, 0, 0, log_format_names, 0 },
	{ "admin_token", KV_STRING, C_(admin_token), 0, 0, 0, NULL, KF_EMPTY_OK },
};
#undef C_
/* Why: section.key_line is indexed by a key's position in its table; a table longer than MAX_KEYS overflows it. */
_Static_assert(sizeof(main_keys) / sizeof(main_keys[0]) <= MAX_KEYS, "raise MAX_KEYS");

#define T_(f) offsetof(pgw_target, f)
enum { TK_CONNINFO, TK_ENVIRONMENT, TK_WALLS, TK_WALL_KEY_FILE }; /* indexes into target_keys */
static const key_def target_keys[] = {
	[TK_CONNINFO] = { "conninfo", KV_CONNINFO, T_(conninfo), 0, 0, 0, NULL, KF_REQUIRED },
	[TK_ENVIRONMENT] = { "environment", KV_ENUM, T_(environment), 0, 0, 0, environment_names, KF_REQUIRED },
	/* database walls (deploy/walls.sql) */
	[TK_WALLS] = { "walls", KV_ENUM, T_(walls), 0, 0, 0, walls_names, 0 },
	[TK_WALL_KEY_FILE] = { "wall_key_file", KV_PATH, T_(wall_key_file), 0, 0, 0, NULL, KF_EMPTY_OK },
	/* pooling (CONTRACT §7) */
	{ "pool_mode", KV_ENUM, T_(pool_mode), 0, 0, 0, pool_mode_names, 0 },
	{ "pool_size", KV_INT, T_(pool_size), 0, 1, 10000, NULL, 0 },
	{ "pool_min_idle", KV_INT, T_(pool_min_idle), 0, 0, 0, NULL, 0 },
	{ "pool_wait_timeout", KV_INT, T_(pool_wait_timeout), 0, 1, 86400, NULL, 0 },
	{ "server_idle_timeout", KV_INT, T_(server_idle_timeout), 0, 1, 86400 * 365, NULL, 0 },
	{ "server_lifetime", KV_INT, T_(server_lifetime), 0, 1, 86400 * 365, NULL, 0 },
};
#undef T_

#define W_(f) offsetof(pgw_window, f)
enum { WK_TARGET, WK_START, WK_END, WK_WEEKLY, WK_TIMEZONE }; /* indexes into window_keys */
static const key_def window_keys[] = {
	[WK_TARGET] = { "target", KV_STRING, W_(target), 0, 0, 0, NULL, KF_REQUIRED },
	[WK_START] = { "start", KV_TIME, W_(start_utc), 0, 0, 0, NULL, 0 },
	[WK_END] = { "end", KV_TIME, W_(end_utc), 0, 0, 0, NULL, 0 },
	[WK_WEEKLY] = { "weekly", KV_WEEKLY, 0, 0, 0, 0, NULL, 0 },
	[WK_TIMEZONE] = { "timezone", KV_STRING, W_(timezone), 0, 0, 0, NULL, 0 },
	{ "approved_by", KV_STRING, W_(approved_by), 0, 0, 0, NULL, KF_REQUIRED },
	{ "reason", KV_STRING, W_(reason), 0, 0, 0, NULL, KF_REQUIRED },
	{ "actors", KV_LIST, W_(actors), W_(n_actors), 0, 0, NULL, 0 },
};
#undef W_

#define R_(f) offsetof(pgw_rule, f)
enum { RK_MATCH, RK_ACTION, RK_TARGETS }; /* indexes into rule_keys */
static const key_def rule_keys[] = {
	[RK_MATCH] = { "match", KV_STRING, R_(match), 0, 0, 0, NULL, KF_REQUIRED },
	[RK_ACTION] = { "action", KV_ENUM, R_(action), 0, 0, 0, action_names, KF_REQUIRED },
	[RK_TARGETS] = { "targets", KV_LIST, R_(targets), R_(n_targets), 0, 0, NULL, 0 },
	{ "message", KV_STRING, R_(message), 0, 0, 0, NULL, KF_EMPTY_OK },
};
#undef R_

/* A section seen in the file, kept until validation at the end. */
typedef struct section {
	section_kind kind;
	size_t index;           /* into c->targets / windows / rules; 0 for [pgwarden] */
	int line;               /* line of the header */
	char label[128];        /* "pgwarden", "target.prod", ... for messages */
	int key_line[MAX_KEYS]; /* line each table key was set on; 0 = not set */
} section;

/* Everything one load needs; the reader and the handler share it. */
typedef struct load_ctx {
	pgw_config *c;
	pgw_errors *e;
	const char *path;  /* the file as given, for messages */
	int errors;        /* errors added by this load */
	const char *buf;   /* the whole file */
	size_t len, pos;   /* reader position */
	int line;          /* line the reader handed out last (= the one the handler sees) */
	bool *line_failed; /* per line: an error was already reported there */
	size_t n_lines;
	section *secs; /* every accepted section, in file order */
	size_t n_secs;
	long cur;         /* index into secs of the current section; -1 none or skipped */
	bool seen_header; /* a [section] line was seen (keys before it are an error) */
} load_ctx;

static void cerr_at(load_ctx *lc, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Record one error at 'line' (0: the file as a whole). */
static void cerr_at(load_ctx *lc, int line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errors_add(lc->e, lc->path, line, "%s", msg);
	lc->errors++;
	if (line > 0 && (size_t)line <= lc->n_lines)
		lc->line_failed[line - 1] = true;
}

/* ---- small shared parsers ---- */

static bool take_digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return false;
		*v = *v * 10 + (**p - '0');
	}
	return true;
}

bool parse_rfc3339(const char *s, time_t *out)
{
	int64_t us;

	if (!rfc3339_parse(s, &us))
		return false;
	*out = (time_t)(us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000)); /* whole seconds, rounded down */
	return true;
}

void free_list(char **items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

bool split_list(const char *s, char ***items, size_t *n)
{
	char **v = NULL;
	size_t cnt = 0;
	const char *p = s;

	*items = NULL;
	*n = 0;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0')
		return true;
	for (;;) {
		const char *end = strchr(p, ','), *stop = end ? end : p + strlen(p), *a = p, *b = stop;
		char **grown;

		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		if (a == b || (grown = realloc(v, (cnt + 1) * sizeof(*v))) == NULL)
			goto fail;
		v = grown;
		if ((v[cnt] = strndup(a, (size_t)(b - a))) == NULL)
			goto fail;
		cnt++;
		if (end == NULL)
			break;
		p = end + 1;
	}
	*items = v;
	*n = cnt;
	return true;
fail:
	free_list(v, cnt);
	return false;
}

/*
 * Fold a dotted name the way PostgreSQL folds identifiers: unquoted parts are
 * ASCII-lower-cased, "Quoted" parts kept as written ("" stands for "). Returns
 * the parts joined by '.', malloc'd, and their number; NULL with *why if bad.
 */
static char *fold_name(const char *s, int *parts, const char **why)
{
	char *out = malloc(strlen(s) + 1), *o = out;
	const char *p = s;

	*parts = 0;
	*why = "out of memory";
	if (out == NULL)
		return NULL;
	for (;;) {
		const char *part = o;

		if (*p == '"') {
			for (p++;; p++) {
				if (*p == '\0') {
					*why = "unterminated quoted identifier";
					goto fail;
				}
				if (*p == '"' && p[1] != '"')
					break;
				if (*p == '"')
					p++;
				*o++ = *p;
			}
			p++;
			*why = "zero-length quoted identifier";
		} else {
			for (; *p && *p != '.'; p++) {
				unsigned char ch = (unsigned char)*p;

				*why = "unexpected character in name";
				if (!isalnum(ch) && ch != '_' && ch != '$' && ch < 0x80)
					goto fail;
				*o++ = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
			}
			*why = "empty name";
			if (o > part && (isdigit((unsigned char)*part) || *part == '$')) {
				*why = "a name cannot start with a digit or $ unless quoted";
				goto fail;
			}
		}
		if (o == part)
			goto fail;
		(*parts)++;
		if (*p == '\0')
			break;
		*why = "unexpected character after a quoted name";
		if (*p != '.')
			goto fail;
		*o++ = *p++;
	}
	*o = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

/* host:port (host may be [v6]) or unix:/dir. */
static bool listen_valid(const char *v)
{
	const char *colon;
	char *end;
	long port;

	if (strncmp(v, "unix:", 5) == 0)
		return v[5] != '\0';
	colon = strrchr(v, ':');
	if (colon == NULL || colon == v)
		return false;
	if (v[0] == '[') {
		if (colon[-1] != ']' || colon - v < 3)
			return false;
	} else if (memchr(v, ':', (size_t)(colon - v)) != NULL) {
		return false; /* bare IPv6 needs brackets */
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	return isdigit((unsigned char)colon[1]) && *end == '\0' && errno == 0 && port >= 1 && port <= 65535;
}

/* A custom setting name as PostgreSQL accepts for SET: two or more identifier parts. */
static bool setting_valid(const char *v)
{
	bool dot = false, part_start = true;

	for (const char *p = v; *p; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '.') {
			if (part_start)
				return false;
			dot = part_start = true;
			continue;
		}
		if (!isalnum(ch) && ch != '_')
			return false;
		if (part_start && isdigit(ch))
			return false;
		part_start = false;
	}
	return dot && !part_start;
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "on", "true", "1" }, *const no[] = { "no", "off", "false", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, true;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, true;
	}
	return false;
}

static bool parse_ll(const char *v, long long min, long long max, long long *out)
{
	char *end;

	if (!isdigit((unsigned char)v[0]))
		return false;
	errno = 0;
	*out = strtoll(v, &end, 10);
	return *end == '\0' && errno == 0 && *out >= min && *out <= max;
}

/* ---- weekly ---- */

static int day_index(const char *s, size_t len)
{
	static const char *const names[7] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

	for (int i = 0; i < 7; i++)
		if (len == 3 && strncasecmp(s, names[i], 3) == 0)
			return i;
	return -1;
}

/* "mon", "mon-fri" (wrapping like "fri-mon" allowed) into the days bitmask. */
static bool parse_day_item(const char *item, uint8_t *days)
{
	const char *dash = strchr(item, '-');
	int a, b;

	if (dash == NULL) {
		a = b = day_index(item, strlen(item));
	} else {
		a = day_index(item, (size_t)(dash - item));
		b = day_index(dash + 1, strlen(dash + 1));
	}
	if (a < 0 || b < 0)
		return false;
	for (int d = a;; d = (d + 1) % 7) {
		*days |= (uint8_t)(1u << d);
		if (d == b)
			break;
	}
	return true;
}

static bool parse_hhmm(const char **p, bool allow_24, int *minutes)
{
	int h, m;

	if (!take_digits(p, 2, &h) || *(*p)++ != ':' || !take_digits(p, 2, &m) || m > 59)
		return false;
	if (h == 24 && m == 0 && allow_24) {
		*minutes = 0; /* 24:00 ends at the next midnight, which "end <= start" already means */
		return true;
	}
	if (h > 23)
		return false;
	*minutes = h * 60 + m;
	return true;
}

/* "tue,thu 22:00-23:30": days (mon..sun, ranges), then HH:MM-HH:MM local. */
static bool parse_weekly(const char *v, pgw_window *w)
{
	const char *t = v;
	char daybuf[128], timebuf[32], *o = timebuf;
	char **items;
	size_t n;
	bool ok = true;

	while (*t && !isdigit((unsigned char)*t))
		t++;
	if (t == v || (size_t)(t - v) >= sizeof(daybuf))
		return false;
	memcpy(daybuf, v, (size_t)(t - v));
	daybuf[t - v] = '\0';
	for (; *t; t++) /* the time range, spaces dropped: "22:00 - 23:30" is fine */
		if (!isspace((unsigned char)*t)) {
			if (o == timebuf + sizeof(timebuf) - 1)
				return false;
			*o++ = *t;
		}
	*o = '\0';
	if (!split_list(daybuf, &items, &n) || n == 0)
		return false;
	w->days = 0;
	for (size_t i = 0; i < n && ok; i++)
		ok = parse_day_item(items[i], &w->days);
	free_list(items, n);
	t = timebuf;
	if (!ok || !parse_hhmm(&t, false, &w->start_minute) || *t++ != '-' || !parse_hhmm(&t, true, &w->end_minute) ||
	    *t != '\0')
		return false;
	w->weekly = true;
	return true;
}

/* ---- setting one value ---- */

static bool set_string(load_ctx *lc, char **field, const char *v)
{
	char *dup = strdup(v);

	if (dup == NULL) {
		cerr_at(lc, lc->line, "out of memory");
		return false;
	}
	free(*field);
	*field = dup;
	return true;
}

/* Comma lists: folded (KV_ROLES, KV_FUNCS) or kept (KV_LIST). */
static void set_list(load_ctx *lc, const key_def *k, char *base, const char *v)
{
	char ***field = (char ***)(void *)(base + k->off);
	size_t *count = (size_t *)(void *)(base + k->off_n);
	char **items;
	size_t n;

	if (!split_list(v, &items, &n)) {
		cerr_at(lc, lc->line, "%s: empty item in comma list \"" ECHO "\"", k->name, v);
		return;
	}
	for (size_t i = 0; i < n && k->type != KV_LIST; i++) {
		const char *why;
		int parts;
		char *folded = fold_name(items[i], &parts, &why);

		if (folded != NULL && k->type == KV_FUNCS && parts != 2) {
			why = "expected schema.name";
			free(folded);
			folded = NULL;
		} else if (folded != NULL && k->type == KV_ROLES && parts != 1) {
			why = "a role name has no schema";
			free(folded);
			folded = NULL;
		}
		if (folded == NULL) {
			cerr_at(lc, lc->line, "%s: \"" ECHO "\": %s", k->name, items[i], why);
			free_list(items, n);
			return;
		}
		free(items[i]);
		items[i] = folded;
	}
	free_list(*field, *count);
	*field = items;
	*count = n;
}

/* Parse value v for key k into the struct at base; reports its own errors. */
static void set_value(load_ctx *lc, const key_def *k, char *base, const char *v)
{
	void *field = base + k->off;
	long long ll;
	bool b;

	if (*v == '\0' && !(k->flags & KF_EMPTY_OK)) {
		cerr_at(lc, lc->line, "%s: empty value", k->name);
		return;
	}
	if (*v == '\0' && k->type != KV_ROLES && k->type != KV_FUNCS) {
		free(*(char **)field);
		*(char **)field = NULL;
		return;
	}
	switch (k->type) {
	case KV_STRING:
	case KV_PATH:
		set_string(lc, field, v);
		break;
	case KV_LISTEN:
		if (listen_valid(v))
			set_string(lc, field, v);
		else
			cerr_at(lc, lc->line, "%s: \"" ECHO "\" is not host:port or unix:/directory", k->name, v);
		break;
	case KV_SETTING:
		if (setting_valid(v))
			set_string(lc, field, v);
		else
			cerr_at(lc, lc->line, "%s: \"" ECHO "\" is not a custom setting name such as app.actor_id",
				k->name, v);
		break;
	case KV_CONNINFO: {
		char *errmsg = NULL;
		PQconninfoOption *opts = PQconninfoParse(v, &errmsg);

		if (opts != NULL)
			set_string(lc, field, v);
		else
			cerr_at(lc, lc->line, "%s: %s", k->name, errmsg ? strtok(errmsg, "\n") : "out of memory");
		PQconninfoFree(opts);
		PQfreemem(errmsg);
		break;
	}
	case KV_BOOL:
		if (parse_bool(v, &b))
			*(bool *)field = b;
		else
			cerr_at(lc, lc->line, "%s: \"" ECHO "\" is not a boolean (yes/no, on/off, true/false, 1/0)",
				k->name, v);
		break;
	case KV_INT:
	case KV_SIZE:
		if (!parse_ll(v, k->min, k->max, &ll))
			cerr_at(lc, lc->line, "%s: \"" ECHO "\" is not an integer from %lld to %lld", k->name, v,
				k->min, k->max);
		else if (k->type == KV_INT)
			*(int *)field = (int)ll;
		else
			*(size_t *)field = (size_t)ll;
		break;
	case KV_ENUM: {
		char allowed[128] = "";
		int i;

		for (i = 0; k->enum_names[i] != NULL && strcmp(k->enum_names[i], v) != 0; i++)
			;
		if (k->enum_names[i] != NULL) {
			memcpy(field, &i, sizeof(int)); /* every enum here is int-sized,
				see the static asserts */
			break;
		}
		for (i = 0; k->enum_names[i] != NULL; i++)
			snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed), "%s%s", i ? ", " : "",
				 k->enum_names[i]);
		cerr_at(lc, lc->line, "%s: \"" ECHO "\" is not one of %s", k->name, v, allowed);
		break;
	}
	case KV_ROLES:
	case KV_FUNCS:
	case KV_LIST:
		set_list(lc, k, base, v);
		break;
	case KV_TIME:
		if (!parse_rfc3339(v, (time_t *)field))
			cerr_at(lc, lc->line, "%s: \"" ECHO "\" is not an RFC 3339 time such as 2026-11-24T22:00:00Z",
				k->name, v);
		break;
	case KV_WEEKLY:
		if (!parse_weekly(v, (pgw_window *)(void *)base))
			cerr_at(lc, lc->line,
				"%s: \"" ECHO "\" is not days and a time range"
				" such as \"tue,thu 22:00-23:30\"",
				k->name, v);
		break;
	}
}

_Static_assert(sizeof(pgw_environment) == sizeof(int), "KV_ENUM stores an int");
_Static_assert(sizeof(pgw_audit_fsync) == sizeof(int), "KV_ENUM stores an int");
_Static_assert(sizeof(pgw_client_tls) == sizeof(int), "KV_ENUM stores an int");
_Static_assert(sizeof(pgw_rule_action) == sizeof(int), "KV_ENUM stores an int");
_Static_assert(sizeof(pgw_pool_mode) == sizeof(int), "KV_ENUM stores an int");
_Static_assert(sizeof(pgw_log_format) == sizeof(int), "KV_ENUM stores an int");

/* ---- sections ---- */

static const key_def *section_keys(section_kind kind, size_t *n)
{
	switch (kind) {
	case SEC_MAIN:
		*n = sizeof(main_keys) / sizeof(main_keys[0]);
		return main_keys;
	case SEC_TARGET:
		*n = sizeof(target_keys) / sizeof(target_keys[0]);
		return target_keys;
	case SEC_WINDOW:
		*n = sizeof(window_keys) / sizeof(window_keys[0]);
		return window_keys;
	case SEC_RULE:
		*n = sizeof(rule_keys) / sizeof(rule_keys[0]);
		return rule_keys;
	}
	*n = 0;
	return NULL;
}

/* The struct a section's keys are stored in (recomputed: arrays move when they grow). */
static char *section_base(load_ctx *lc, const section *s)
{
	switch (s->kind) {
	case SEC_MAIN:
		return (char *)lc->c;
	case SEC_TARGET:
		return (char *)&lc->c->targets[s->index];
	case SEC_WINDOW:
		return (char *)&lc->c->windows[s->index];
	case SEC_RULE:
		return (char *)&lc->c->rules[s->index];
	}
	return NULL;
}

/* Grow one of the snapshot's arrays by a zeroed element; returns its index or -1. */
static long grow_array(void **arr, size_t *n, size_t elem)
{
	char *grown = realloc(*arr, (*n + 1) * elem);

	if (grown == NULL)
		return -1;
	memset(grown + *n * elem, 0, elem);
	*arr = grown;
	return (long)(*n)++;
}

/* A section NAME (after "target." etc.): printable, no spaces, quotes, brackets or commas. */
static bool section_name_valid(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isgraph((unsigned char)*s) || strchr("[]\",;#", *s) != NULL)
			return false;
	return true;
}

/* Allocate the object for a new section of 'kind' named 'name'; its index, or -1 on no memory. */
static long section_object(load_ctx *lc, section_kind kind, const char *name)
{
	pgw_config *c = lc->c;
	char **name_field;
	long idx;

	switch (kind) {
	case SEC_MAIN:
		return 0;
	case SEC_TARGET:
		if ((idx = grow_array((void **)&c->targets, &c->n_targets, sizeof(pgw_target))) < 0)
			return -1;
		c->targets[idx].line = lc->line;
		c->targets[idx].pool_mode = POOL_MODE_SESSION;
		c->targets[idx].pool_size = 20;
		c->targets[idx].pool_wait_timeout = 30;
		c->targets[idx].server_idle_timeout = 600;
		c->targets[idx].server_lifetime = 3600;
		name_field = &c->targets[idx].name;
		break;
	case SEC_WINDOW:
		if ((idx = grow_array((void **)&c->windows, &c->n_windows, sizeof(pgw_window))) < 0)
			return -1;
		c->windows[idx].line = lc->line;
		name_field = &c->windows[idx].name;
		break;
	case SEC_RULE:
		if ((idx = grow_array((void **)&c->rules, &c->n_rules, sizeof(pgw_rule))) < 0)
			return -1;
		c->rules[idx].line = lc->line;
		name_field = &c->rules[idx].name;
		break;
	default:
		return -1;
	}
	*name_field = strdup(name);
	return *name_field ? idx : -1;
}

/* Called by the reader at each "[...]" line: check the header and make it current. */
static void section_begin(load_ctx *lc, const char *label)
{
	static const struct {
		const char *prefix;
		section_kind kind;
	} kinds[] = { { "target.", SEC_TARGET }, { "window.", SEC_WINDOW }, { "rule.", SEC_RULE } };
	section_kind kind = SEC_MAIN;
	const char *name = NULL;
	section *grown;
	long idx;

	lc->cur = -1; /* keys of a bad section are skipped: its header error is enough */
	lc->seen_header = true;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]) && strcmp(label, "pgwarden") != 0; i++)
		if (strncmp(label, kinds[i].prefix, strlen(kinds[i].prefix)) == 0)
			kind = kinds[i].kind, name = label + strlen(kinds[i].prefix);
	if (strcmp(label, "pgwarden") != 0 && name == NULL) {
		cerr_at(lc, lc->line, "unknown section [" ECHO "]", label);
		return;
	}
	if (name != NULL && !section_name_valid(name)) {
		cerr_at(lc, lc->line, "[" ECHO "]: invalid name after \"%.*s\"", label, (int)(name - label), label);
		return;
	}
	for (size_t i = 0; i < lc->n_secs; i++)
		if (strcmp(lc->secs[i].label, label) == 0) {
			cerr_at(lc, lc->line, "duplicate section [" ECHO "] (first at line %d)", label,
				lc->secs[i].line);
			return;
		}
	if (strlen(label) >= sizeof(grown->label)) {
		cerr_at(lc, lc->line, "section name too long");
		return;
	}
	idx = section_object(lc, kind, name);
	grown = idx < 0 ? NULL : realloc(lc->secs, (lc->n_secs + 1) * sizeof(*grown));
	if (grown == NULL) {
		cerr_at(lc, lc->line, "out of memory");
		return;
	}
	lc->secs = grown;
	memset(&grown[lc->n_secs], 0, sizeof(*grown));
	grown[lc->n_secs] = (section){ .kind = kind, .index = (size_t)idx, .line = lc->line };
	strcpy(grown[lc->n_secs].label, label);
	lc->cur = (long)lc->n_secs++;
}

/* ---- the libinih glue ---- */

/*
 * Check one line before inih sees it, so every syntax error is reported with
 * its line (inih only returns the first) and section headers are seen even
 * when a section has no keys. Returns false if the line must not reach inih.
 */
static bool precheck_line(load_ctx *lc, const char *s, size_t n)
{
	const char *eq, *colon, *close;
	char label[256];
	size_t llen;

	if (n == 0 || s[0] == ';' || s[0] == '#')
		return true;
	if (s[0] == '[') {
		close = memchr(s, ']', n);
		if (close == NULL) {
			cerr_at(lc, lc->line, "section header without \"]\"");
			return false;
		}
		for (const char *p = close + 1; p < s + n && *p != ';' && *p != '#'; p++)
			if (!isspace((unsigned char)*p)) {
				cerr_at(lc, lc->line, "unexpected text after section header");
				return false;
			}
		while (s + 1 < close && isspace((unsigned char)s[1]))
			s++;
		while (close > s + 1 && isspace((unsigned char)close[-1]))
			close--;
		llen = (size_t)(close - s - 1);
		if (llen >= sizeof(label)) {
			cerr_at(lc, lc->line, "section name too long");
			return false;
		}
		memcpy(label, s + 1, llen);
		label[llen] = '\0';
		section_begin(lc, label);
		return true;
	}
	eq = memchr(s, '=', n);
	colon = memchr(s, ':', n);
	if (eq == NULL || eq == s || (colon != NULL && colon < eq)) {
		cerr_at(lc, lc->line, "expected \"name = value\", a [section] or a comment");
		return false;
	}
	return true;
}

/*
 * Length of s[0..n) without an inline comment: ';' or '#' after a blank starts
 * one (CONTRACT §2: both start comments). Done here rather than by inih, whose
 * build only knows ';', so both behave the same and a long comment does not
 * count against the line length. Trailing blanks are dropped too.
 */
static size_t strip_inline_comment(const char *s, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if ((s[i] == ';' || s[i] == '#') && (s[i - 1] == ' ' || s[i - 1] == '\t')) {
			n = i;
			break;
		}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n;
}

/*
 * inih's reader: hands out one line per call, so lc->line is the line the
 * handler is called for. Leading blanks are dropped (inih would take an
 * indented line as the continuation of the previous value). A line longer
 * than inih's buffer (ini_max_line: 200 in Debian's build) is reported and
 * replaced by an empty line rather than split.
 */
static char *ini_reader_fn(char *str, int num, void *stream)
{
	load_ctx *lc = stream;
	const char *start, *nl;
	size_t len, content;

	if (lc->pos >= lc->len || num < 2)
		return NULL;
	start = lc->buf + lc->pos;
	nl = memchr(start, '\n', lc->len - lc->pos);
	len = nl ? (size_t)(nl - start) + 1 : lc->len - lc->pos;
	lc->pos += len;
	lc->line++;
	content = len - (nl != NULL);
	if (content > 0 && start[content - 1] == '\r')
		content--;
	if (lc->line == 1 && content >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3, content -= 3;
	while (content > 0 && (*start == ' ' || *start == '\t'))
		start++, content--;
	content = strip_inline_comment(start, content);
	strcpy(str, "\n");
	if (content + 2 > (size_t)num) {
		cerr_at(lc, lc->line, "line too long (%zu characters, at most %d)", content, num - 2);
		return str;
	}
	if (!precheck_line(lc, start, content))
		return str;
	memcpy(str, start, content);
	str[content] = '\n';
	str[content + 1] = '\0';
	return str;
}

static int ini_handler_fn(void *user, const char *section_name, const char *name, const char *value)
{
	load_ctx *lc = user;
	const key_def *keys;
	section *s;
	size_t n, k;

	(void)section_name; /* we track sections ourselves (see precheck_line) */
	if (lc->cur < 0) {
		if (!lc->seen_header)
			cerr_at(lc, lc->line, "\"" ECHO "\" is outside any [section]", name);
		return 1;
	}
	s = &lc->secs[lc->cur];
	keys = section_keys(s->kind, &n);
	for (k = 0; k < n && strcmp(keys[k].name, name) != 0; k++)
		;
	if (k == n) {
		cerr_at(lc, lc->line, "unknown key \"" ECHO "\" in [%s]", name, s->label);
		return 1;
	}
	if (s->key_line[k] != 0) {
		cerr_at(lc, lc->line, "duplicate key \"%s\" in [%s] (first at line %d)", name, s->label,
			s->key_line[k]);
		return 1;
	}
	s->key_line[k] = lc->line;
	set_value(lc, &keys[k], section_base(lc, s), value);
	return 1; /* errors are collected in lc, never by stopping inih */
}

/* ---- validation after the whole file is read ---- */

static const section *find_section(const load_ctx *lc, section_kind kind, size_t index)
{
	for (size_t i = 0; i < lc->n_secs; i++)
		if (lc->secs[i].kind == kind && lc->secs[i].index == index)
			return &lc->secs[i];
	return NULL;
}

static void check_required(load_ctx *lc, const section *s)
{
	size_t n;
	const key_def *keys = section_keys(s->kind, &n);

	for (size_t k = 0; k < n; k++)
		if ((keys[k].flags & KF_REQUIRED) && s->key_line[k] == 0)
			cerr_at(lc, s->line, "[%s]: missing required key \"%s\"", s->label, keys[k].name);
}

/* Make a relative path absolute against the config's directory. */
static void resolve_path(load_ctx *lc, char **p, const char *prefix)
{
	size_t plen = strlen(prefix);
	char *abs;

	if (*p == NULL || strncmp(*p, prefix, plen) != 0 || (*p)[plen] == '/')
		return;
	if (asprintf(&abs, "%s%s/%s", prefix, lc->c->dir, *p + plen) < 0) {
		cerr_at(lc, 0, "out of memory");
		return;
	}
	free(*p);
	*p = abs;
}

static int main_key_line(const load_ctx *lc, const char *name)
{
	const section *s = find_section(lc, SEC_MAIN, 0);

	for (size_t k = 0; s != NULL && k < sizeof(main_keys) / sizeof(main_keys[0]); k++)
		if (strcmp(main_keys[k].name, name) == 0)
			return s->key_line[k];
	return 0;
}

static void check_readable(load_ctx *lc, const char *key, const char *path)
{
	if (path != NULL && access(path, R_OK) != 0)
		cerr_at(lc, main_key_line(lc, key), "%s: cannot read %s: %s", key, path, strerror(errno));
}

/* audit_checkpoint_key: resolved, and loadable as a signing key (the server loads it again at start/reload). */
static void check_checkpoint_key(load_ctx *lc)
{
	pgw_config *c = lc->c;
	audit_signer *k;
	char why[512];

	resolve_path(lc, &c->audit_checkpoint_key, "");
	if (c->audit_checkpoint_key == NULL)
		return;
	if (c->audit_log == NULL)
		cerr_at(lc, main_key_line(lc, "audit_checkpoint_key"), "audit_checkpoint_key needs audit_log");
	k = audit_signer_load(c->audit_checkpoint_key, true, why, sizeof(why));
	if (k == NULL)
		cerr_at(lc, main_key_line(lc, "audit_checkpoint_key"), "audit_checkpoint_key: %s", why);
	audit_signer_free(k);
}

static void check_main(load_ctx *lc)
{
	pgw_config *c = lc->c;
	const section *s = find_section(lc, SEC_MAIN, 0);

	if (s == NULL) {
		cerr_at(lc, 0, "missing [pgwarden] section");
		return;
	}
	check_required(lc, s);
	resolve_path(lc, &c->tokens_file, "");
	resolve_path(lc, &c->audit_log, "");
	resolve_path(lc, &c->tls_cert_file, "");
	resolve_path(lc, &c->tls_key_file, "");
	resolve_path(lc, &c->listen, "unix:");
	resolve_path(lc, &c->admin_listen, "unix:");
	if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL))
		cerr_at(lc, main_key_line(lc, c->tls_cert_file ? "tls_cert_file" : "tls_key_file"),
			"tls_cert_file and tls_key_file must be given together");
	if (c->client_tls == CLIENT_TLS_REQUIRE && c->tls_cert_file == NULL)
		cerr_at(lc, main_key_line(lc, "client_tls"),
			"client_tls: require needs tls_cert_file and tls_key_file");
	check_readable(lc, "tls_cert_file", c->tls_cert_file);
	check_readable(lc, "tls_key_file", c->tls_key_file);
	check_checkpoint_key(lc);
	if (c->admin_token && c->admin_token[0] && strlen(c->admin_token) < 16)
		cerr_at(lc, main_key_line(lc, "admin_token"),
			"admin_token: at least 16 characters (it guards kill and pause)");
	/* Why: a parsed-but-ignored key misleads operators; one event loop is all this version runs. */
	if (c->workers != 1)
		cerr_at(lc, main_key_line(lc, "workers"),
			"workers: only 1 is supported in this version (it runs one event-loop thread)");
}

/* A wall key file: 64 hex digits, blanks around them allowed; not readable by others. */
static bool read_wall_key(const char *path, unsigned char key[WALL_KEY_LEN], char *why, size_t whysz)
{
	char text[256], *p;
	size_t n = 0;
	struct stat st;
	FILE *f = fopen(path, "r");

	if (f == NULL || fstat(fileno(f), &st) != 0) {
		snprintf(why, whysz, "cannot read %s: %s", path, strerror(errno));
		if (f)
			fclose(f);
		return false;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(why, whysz, "%s is open to other users (chmod 600 it)", path);
		return false;
	}
	for (p = text; isspace((unsigned char)*p); p++)
		;
	for (n = 0; n < 2 * WALL_KEY_LEN && isxdigit((unsigned char)p[n]); n++)
		;
	if (n != 2 * WALL_KEY_LEN || (p[n] != '\0' && !isspace((unsigned char)p[n]))) {
		snprintf(why, whysz, "%s must hold 64 hex digits (openssl rand -hex 32)", path);
		return false;
	}
	for (n = 0; n < WALL_KEY_LEN; n++) {
		char byte[3] = { p[2 * n], p[2 * n + 1], '\0' };

		key[n] = (unsigned char)strtoul(byte, NULL, 16);
	}
	return true;
}

/* walls = required needs a readable key file; a key file without walls is a mistake. */
static void check_target_walls(load_ctx *lc, pgw_target *t, const section *s)
{
	char why[512];

	resolve_path(lc, &t->wall_key_file, "");
	if (t->walls == WALLS_REQUIRED && t->wall_key_file == NULL)
		cerr_at(lc, s->key_line[TK_WALLS] ? s->key_line[TK_WALLS] : s->line,
			"[%s]: walls = required needs wall_key_file", s->label);
	else if (t->walls == WALLS_OFF && t->wall_key_file != NULL)
		cerr_at(lc, s->key_line[TK_WALL_KEY_FILE], "[%s]: wall_key_file is set but walls is not required",
			s->label);
	else if (t->walls == WALLS_REQUIRED && !read_wall_key(t->wall_key_file, t->wall_key, why, sizeof(why)))
		cerr_at(lc, s->key_line[TK_WALL_KEY_FILE], "wall_key_file: %s", why);
}

static void check_targets(load_ctx *lc)
{
	if (lc->c->n_targets == 0)
		cerr_at(lc, 0, "no [target.NAME] section: at least one target is required");
	for (size_t i = 0; i < lc->c->n_targets; i++) {
		const section *s = find_section(lc, SEC_TARGET, i);

		check_required(lc, s);
		check_target_walls(lc, &lc->c->targets[i], s);
	}
}

static void check_window(load_ctx *lc, pgw_window *w, const section *s, time_t now)
{
	const int *kl = s->key_line;
	char why[512];

	check_required(lc, s);
	if (w->target != NULL && config_find_target(lc->c, w->target) == NULL)
		cerr_at(lc, kl[WK_TARGET], "[%s]: target \"" ECHO "\" is not a [target.NAME]", s->label, w->target);
	if (kl[WK_WEEKLY] && (kl[WK_START] || kl[WK_END])) {
		cerr_at(lc, kl[WK_WEEKLY], "[%s]: give either start and end, or weekly and timezone, not both",
			s->label);
	} else if (kl[WK_WEEKLY] || kl[WK_TIMEZONE]) {
		if (!kl[WK_WEEKLY] || !kl[WK_TIMEZONE])
			cerr_at(lc, s->line, "[%s]: weekly and timezone must be given together", s->label);
		else if (w->weekly && !window_load_zone(w, why, sizeof(why)))
			cerr_at(lc, kl[WK_TIMEZONE], "timezone: %s", why);
		else if (w->weekly && !window_prepare(w, now))
			cerr_at(lc, s->line, "[%s]: out of memory", s->label);
	} else if (!kl[WK_START] || !kl[WK_END]) {
		cerr_at(lc, s->line, "[%s]: needs start and end, or weekly and timezone", s->label);
	} else if (w->start_utc >= w->end_utc) {
		cerr_at(lc, kl[WK_END], "[%s]: end must be after start", s->label);
	}
}

static void check_rule_targets(load_ctx *lc, const pgw_rule *r, const section *s)
{
	for (size_t i = 0; i < r->n_targets; i++)
		if (config_find_target(lc->c, r->targets[i]) == NULL)
			cerr_at(lc, s->key_line[RK_TARGETS], "[%s]: target \"" ECHO "\" is not a [target.NAME]",
				s->label, r->targets[i]);
}

/*
 * Compile with PCRE2_UTF | PCRE2_MATCH_INVALID_UTF: UTF-8 semantics for
 * multibyte text, yet any byte string is a valid subject (statements arrive in
 * the client's bytes, not validated UTF-8). Limits keep a bad pattern from
 * spending unbounded time on a hostile statement.
 */
static void compile_rule(load_ctx *lc, pgw_rule *r, const section *s)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE erroff;
	int errcode;

	check_required(lc, s);
	check_rule_targets(lc, r, s);
	if (r->match == NULL)
		return;
	r->re = pcre2_compile((PCRE2_SPTR)r->match, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
			      &errcode, &erroff, NULL);
	if (r->re == NULL) {
		pcre2_get_error_message(errcode, msg, sizeof(msg));
		cerr_at(lc, s->key_line[RK_MATCH], "[%s]: match: %s at offset %zu", s->label, (char *)msg,
			(size_t)erroff);
		return;
	}
	(void)pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE); /* optional: the interpreter is the fallback */
	r->mctx = pcre2_match_context_create(NULL);
	if (r->mctx == NULL) {
		cerr_at(lc, s->line, "[%s]: out of memory", s->label);
		return;
	}
	pcre2_set_match_limit(r->mctx, RULE_MATCH_LIMIT);
	pcre2_set_depth_limit(r->mctx, RULE_DEPTH_LIMIT);
	pcre2_set_heap_limit(r->mctx, RULE_HEAP_LIMIT_KB);
}

/* The token file, and that every targets= in it names a target. */
static void load_tokens(load_ctx *lc)
{
	pgw_config *c = lc->c;
	size_t before = lc->e->n;

	if (c->tokens_file == NULL)
		return;
	c->tokens = tokens_load(c->tokens_file, c->protected_roles, c->n_protected_roles, lc->e);
	if (c->tokens == NULL) {
		lc->errors += lc->e->n > before ? (int)(lc->e->n - before) : 1;
		return;
	}
	for (size_t i = 0; i < c->tokens->n; i++) {
		const pgw_token *t = &c->tokens->v[i];

		for (size_t j = 0; j < t->n_targets; j++)
			if (config_find_target(c, t->targets[j]) == NULL) {
				errors_add(lc->e, c->tokens_file, t->line,
					   "targets: \"" ECHO "\" is not a [target.NAME]", t->targets[j]);
				lc->errors++;
			}
	}
}

static void validate(load_ctx *lc)
{
	pgw_config *c = lc->c;
	time_t now = time(NULL);

	check_main(lc);
	check_targets(lc);
	for (size_t i = 0; i < c->n_windows; i++)
		check_window(lc, &c->windows[i], find_section(lc, SEC_WINDOW, i), now);
	for (size_t i = 0; i < c->n_rules; i++)
		compile_rule(lc, &c->rules[i], find_section(lc, SEC_RULE, i));
	load_tokens(lc);
}

/* ---- lifecycle ---- */

static void config_free(pgw_config *c)
{
	for (size_t i = 0; i < c->n_targets; i++)
		free(c->targets[i].name), free(c->targets[i].conninfo), free(c->targets[i].wall_key_file);
	if (c->targets != NULL)
		OPENSSL_cleanse(c->targets, c->n_targets * sizeof(*c->targets)); /* the wall keys */
	for (size_t i = 0; i < c->n_windows; i++) {
		pgw_window *w = &c->windows[i];

		window_release(w);
		free(w->name), free(w->target), free(w->timezone), free(w->approved_by), free(w->reason);
		free_list(w->actors, w->n_actors);
	}
	for (size_t i = 0; i < c->n_rules; i++) {
		pgw_rule *r = &c->rules[i];

		pcre2_code_free(r->re);
		pcre2_match_context_free(r->mctx);
		free(r->name), free(r->match), free(r->message);
		free_list(r->targets, r->n_targets);
	}
	free(c->targets), free(c->windows), free(c->rules);
	tokens_free(c->tokens);
	free(c->path), free(c->dir), free(c->listen), free(c->admin_listen), free(c->tokens_file);
	free(c->audit_log), free(c->audit_checkpoint_key), free(c->tls_cert_file), free(c->tls_key_file),
		free(c->actor_setting);
	free(c->tenant_setting), free(c->claims_setting), free(c->admin_token);
	free_list(c->protected_roles, c->n_protected_roles);
	free_list(c->trusted_functions, c->n_trusted_functions);
	free(c);
}

/* A snapshot holding the defaults of CONTRACT §2 and our extensions; NULL on no memory. */
static pgw_config *config_new(const char *path)
{
	pgw_config *c = calloc(1, sizeof(*c));
	char *slash, *dir;

	if (c == NULL)
		return NULL;
	c->refcount = 1;
	c->audit_fsync = AUDIT_FSYNC_BATCH;
	c->client_tls = CLIENT_TLS_ALLOW;
	c->workers = 1;
	c->max_message_size = PGW_MAX_MESSAGE_SIZE;
	c->auth_timeout = 60;
	c->audit_checkpoint_interval = 60;
	c->max_startup_conns = 256;
	c->max_client_conn = 10000;
	c->path = strdup(path);
	dir = strdup(path);
	if (dir != NULL && (slash = strrchr(dir, '/')) != NULL)
		slash[slash == dir ? 1 : 0] = '\0';
	/* Why realpath: relative paths must keep working if the process changes directory later. */
	c->dir = dir == NULL ? NULL : realpath(slash ? dir : ".", NULL);
	if (c->dir == NULL && dir != NULL)
		c->dir = strdup(slash ? dir : ".");
	free(dir);
	c->actor_setting = strdup("app.actor_id");
	c->tenant_setting = strdup("app.tenant_id");
	if (c->path == NULL || c->dir == NULL || c->actor_setting == NULL || c->tenant_setting == NULL ||
	    !split_list("anon,guest,public", &c->protected_roles, &c->n_protected_roles)) {
		config_free(c);
		return NULL;
	}
	return c;
}

/* Read the whole config file; reports and returns NULL on failure. */
static char *read_config_file(load_ctx *lc, size_t *len)
{
	FILE *f = fopen(lc->path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		cerr_at(lc, 0, "cannot open config file: %s", strerror(errno));
		return NULL;
	}
	buf = malloc(CONFIG_FILE_MAX + 1);
	n = buf ? fread(buf, 1, CONFIG_FILE_MAX + 1, f) : 0;
	fclose(f);
	if (buf == NULL || n > CONFIG_FILE_MAX) {
		cerr_at(lc, 0, buf ? "config file is larger than %d bytes" : "out of memory", CONFIG_FILE_MAX);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* The SHA-256 of the bytes parsed, so the audit log names exactly this config. */
static void hash_config_bytes(const char *buf, size_t len, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	hex[0] = '\0';
	if (EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return;
	for (unsigned int i = 0; i < n; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

pgw_config *config_load(const char *path, pgw_errors *e)
{
	load_ctx lc = { .e = e, .path = path, .cur = -1 };
	char *buf = NULL;
	const char *nul;
	int rc;

	lc.c = config_new(path);
	if (lc.c == NULL) {
		cerr_at(&lc, 0, "out of memory");
		return NULL;
	}
	if ((buf = read_config_file(&lc, &lc.len)) == NULL)
		goto done;
	lc.buf = buf;
	hash_config_bytes(buf, lc.len, lc.c->sha256);
	for (size_t i = 0; i < lc.len; i++)
		lc.n_lines += buf[i] == '\n';
	lc.line_failed = calloc(lc.n_lines + 1, sizeof(bool));
	lc.n_lines++;
	if (lc.line_failed == NULL) {
		cerr_at(&lc, 0, "out of memory");
		goto done;
	}
	if ((nul = memchr(buf, '\0', lc.len)) != NULL) {
		int line = 1;

		for (const char *p = buf; p < nul; p++)
			line += *p == '\n';
		cerr_at(&lc, line, "NUL byte in config file");
		goto done;
	}
	rc = ini_parse_stream(ini_reader_fn, &lc, ini_handler_fn, &lc);
	if (rc > 0 && (size_t)rc <= lc.n_lines && !lc.line_failed[rc - 1])
		cerr_at(&lc, rc, "syntax error");
	else if (rc < 0)
		cerr_at(&lc, 0, "cannot parse config file");
	validate(&lc);
done:
	free(buf);
	free(lc.line_failed);
	free(lc.secs);
	if (lc.errors > 0) {
		config_free(lc.c);
		return NULL;
	}
	return lc.c;
}

pgw_config *config_ref(pgw_config *c)
{
	if (c != NULL)
		__atomic_add_fetch(&c->refcount, 1, __ATOMIC_RELAXED);
	return c;
}

void config_unref(pgw_config *c)
{
	if (c != NULL && __atomic_sub_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(c);
}

const pgw_target *config_find_target(const pgw_config *c, const char *dbname)
{
	if (dbname == NULL)
		return NULL;
	for (size_t i = 0; i < c->n_targets; i++)
		if (c->targets[i].name != NULL && strcmp(c->targets[i].name, dbname) == 0)
			return &c->targets[i];
	return NULL;
}

bool config_is_protected_role(const pgw_config *c, const char *role)
{
	if (role == NULL)
		return false;
	for (size_t i = 0; i < c->n_protected_roles; i++)
		if (strcmp(c->protected_roles[i], role) == 0)
			return true;
	return false;
}

const char *environment_name(pgw_environment env)
{
	if ((int)env >= 0 && (size_t)env < sizeof(environment_names) / sizeof(environment_names[0]) - 1)
		return environment_names[env];
	return "unknown";
}

bool rule_matches(const pgw_rule *r, const char *text, size_t len)
{
	pcre2_match_data *md;
	int rc;

	if (r->re == NULL)
		return false;
	md = pcre2_match_data_create(1, NULL);
	if (md == NULL)
		return true; /* fail closed */
	rc = pcre2_match(r->re, (PCRE2_SPTR)(text ? text : ""), text ? len : 0, 0, 0, md, r->mctx);
	pcre2_match_data_free(md);
	if (rc == PCRE2_ERROR_NOMATCH)
		return false;
	return true; /* a match, or a limit hit: fail closed */
}

bool rule_applies_to(const pgw_rule *r, const char *target)
{
	if (r->n_targets == 0)
		return true;
	for (size_t i = 0; target != NULL && i < r->n_targets; i++)
		if (strcmp(r->targets[i], target) == 0)
			return true;
	return false;
}

int config_check_main(const char *path)
{
	pgw_errors e = { 0 };
	pgw_config *c = config_load(path, &e);

	for (size_t i = 0; i < e.n; i++)
		fprintf(stderr, "%s\n", e.msgs[i]);
	errors_free(&e);
	if (c == NULL)
		return 1;
	config_unref(c);
	printf("ok\n");
	return 0;
}
