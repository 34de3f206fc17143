/* config.c - pgwarden.ini (CONTRACT §2) into an immutable, validated snapshot (config.h): load, errors, lifecycle. */
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
#include <openssl/evp.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "conf/config.h"
#include "conf/config_int.h"
#include "conf/windows.h"

#define CONFIG_FILE_MAX (16 * 1024 * 1024) /* a config larger than this is refused */

/* Record one error at 'line' (0: the file as a whole). */
void cerr_at(load_ctx *lc, int line, const char *fmt, ...)
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
	return config_load_checked(path, e, NULL, 0);
}

pgw_config *config_load_checked(const char *path, pgw_errors *e, const config_file_check *checks, size_t n)
{
	load_ctx lc = { .e = e, .path = path, .cur = -1, .checks = checks, .n_checks = n };
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
	rc = config_ini_parse(&lc);
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
