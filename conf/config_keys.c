/* config_keys.c - the key table of each section kind, and the parsers that store a value by its key's type. */
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

#include <libpq-fe.h>

#include "conf/core/arr.h"
#include "conf/config.h"
#include "conf/config_int.h"
#include "conf/rfc3339.h"

static const char *const fsync_names[] = { "always", "batch", "never", NULL };
static const char *const client_tls_names[] = { "disable", "allow", "require", NULL };
static const char *const environment_names[] = { "production", "staging", "development", NULL };
static const char *const action_names[] = { "deny", "log", NULL };
static const char *const pool_mode_names[] = { "session", "transaction", NULL };
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
static const key_def target_keys[] = {
	[TK_CONNINFO] = { "conninfo", KV_CONNINFO, T_(conninfo), 0, 0, 0, NULL, KF_REQUIRED },
	[TK_ENVIRONMENT] = { "environment", KV_ENUM, T_(environment), 0, 0, 0, environment_names, KF_REQUIRED },
	/* database walls (deploy/walls.sql) */
	[TK_WALLS] = { "walls", KV_ENUM, T_(walls), 0, 0, 0, walls_names, 0 },
	[TK_WALL_KEY_FILE] = { "wall_key_file", KV_PATH, T_(wall_key_file), 0, 0, 0, NULL, KF_EMPTY_OK },
	/* pooling (CONTRACT §7) */
	[TK_POOL_MODE] = { "pool_mode", KV_ENUM, T_(pool_mode), 0, 0, 0, pool_mode_names, 0 },
	[TK_POOL_SIZE] = { "pool_size", KV_INT, T_(pool_size), 0, 1, 10000, NULL, 0 },
	[TK_POOL_MIN_IDLE] = { "pool_min_idle", KV_INT, T_(pool_min_idle), 0, 0, 10000, NULL, 0 },
	{ "pool_wait_timeout", KV_INT, T_(pool_wait_timeout), 0, 1, 86400, NULL, 0 },
	{ "server_idle_timeout", KV_INT, T_(server_idle_timeout), 0, 1, 86400 * 365, NULL, 0 },
	{ "server_lifetime", KV_INT, T_(server_lifetime), 0, 1, 86400 * 365, NULL, 0 },
	{ "server_check_delay", KV_INT, T_(server_check_delay), 0, 0, 86400, NULL, 0 },
};
#undef T_

#define W_(f) offsetof(pgw_window, f)
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
static const key_def rule_keys[] = {
	[RK_MATCH] = { "match", KV_STRING, R_(match), 0, 0, 0, NULL, KF_REQUIRED },
	[RK_ACTION] = { "action", KV_ENUM, R_(action), 0, 0, 0, action_names, KF_REQUIRED },
	[RK_TARGETS] = { "targets", KV_LIST, R_(targets), R_(n_targets), 0, 0, NULL, 0 },
	{ "message", KV_STRING, R_(message), 0, 0, 0, NULL, KF_EMPTY_OK },
};
#undef R_

/* ---- small shared parsers ---- */

bool take_digits(const char **p, int n, int *v)
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
		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		if (a == b || !ARR_EXTEND(v, cnt))
			goto fail;
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
void set_value(load_ctx *lc, const key_def *k, char *base, const char *v)
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

const key_def *section_keys(section_kind kind, size_t *n)
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

const char *environment_name(pgw_environment env)
{
	if ((int)env >= 0 && (size_t)env < sizeof(environment_names) / sizeof(environment_names[0]) - 1)
		return environment_names[env];
	return "unknown";
}
