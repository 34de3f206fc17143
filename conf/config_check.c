/* config_check.c - checks once the whole file is read: required keys, paths, walls, windows, rules, tokens. */
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

#include <openssl/crypto.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "conf/config.h"
#include "conf/config_int.h"

#define RULE_MATCH_LIMIT 1000000 /* PCRE2 backtracking budget per statement */
#define RULE_DEPTH_LIMIT 10000
#define RULE_HEAP_LIMIT_KB 20480

static const section *find_section(const load_ctx *lc, section_kind kind, size_t index)
{
	for (size_t i = 0; i < lc->n_secs; i++)
		if (lc->secs[i].kind == kind && lc->secs[i].index == index)
			return &lc->secs[i];
	return NULL;
}

void check_required(load_ctx *lc, const section *s)
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

	size_t n;
	const key_def *keys = section_keys(SEC_MAIN, &n);

	for (size_t k = 0; s != NULL && k < n; k++)
		if (strcmp(keys[k].name, name) == 0)
			return s->key_line[k];
	return 0;
}

static void check_readable(load_ctx *lc, const char *key, const char *path)
{
	if (path != NULL && access(path, R_OK) != 0)
		cerr_at(lc, main_key_line(lc, key), "%s: cannot read %s: %s", key, path, strerror(errno));
}

/* audit_checkpoint_key: resolved, and needs audit_log (that it loads as a key is the audit layer's file check). */
static void check_checkpoint_key(load_ctx *lc)
{
	pgw_config *c = lc->c;

	resolve_path(lc, &c->audit_checkpoint_key, "");
	if (c->audit_checkpoint_key != NULL && c->audit_log == NULL)
		cerr_at(lc, main_key_line(lc, "audit_checkpoint_key"), "audit_checkpoint_key needs audit_log");
}

/* The file checks the layers above added (config_load_checked), on each key's resolved path. */
static void run_file_checks(load_ctx *lc)
{
	size_t n;
	const key_def *keys = section_keys(SEC_MAIN, &n);
	char why[512];

	for (size_t i = 0; i < lc->n_checks; i++)
		for (size_t k = 0; k < n; k++) {
			const char *path;

			if (keys[k].type != KV_PATH || strcmp(keys[k].name, lc->checks[i].key) != 0)
				continue;
			path = *(char **)((char *)lc->c + keys[k].off);
			if (path != NULL && !lc->checks[i].usable(path, why, sizeof(why)))
				cerr_at(lc, main_key_line(lc, keys[k].name), "%s: %s", keys[k].name, why);
		}
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
	run_file_checks(lc);
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

/* pool_min_idle idle connections must fit in pool_size (the pool never opens beyond it). */
static void check_target_pool(load_ctx *lc, const pgw_target *t, const section *s)
{
	if (t->pool_min_idle > t->pool_size)
		cerr_at(lc, s->key_line[TK_POOL_MIN_IDLE],
			"[%s]: pool_min_idle (%d) is larger than pool_size (%d): at most pool_size connections are "
			"open",
			s->label, t->pool_min_idle, t->pool_size);
}

static void check_targets(load_ctx *lc)
{
	if (lc->c->n_targets == 0)
		cerr_at(lc, 0, "no [target.NAME] section: at least one target is required");
	for (size_t i = 0; i < lc->c->n_targets; i++) {
		const section *s = find_section(lc, SEC_TARGET, i);

		check_required(lc, s);
		check_target_walls(lc, &lc->c->targets[i], s);
		check_target_pool(lc, &lc->c->targets[i], s);
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

void validate(load_ctx *lc)
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
