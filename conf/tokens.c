/* tokens.c - parses and validates the actor token file (CONTRACT §3) and looks records up. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "conf/core/arr.h"
#include "conf/config.h"
#include "conf/tokens.h"

#define TOKEN_FILE_MAX (64 * 1024 * 1024) /* a token file larger than this is refused */
#define TOKEN_FIELDS_MAX 32               /* fields on one line, key=value ones included */
#define SCRAM_ITER_MAX 100000000          /* "sane": far above any real setting */
#define SCRAM_SALT_MAX 1024               /* decoded salt bytes */

/* What one line parse needs: where we are and where errors go. */
typedef struct token_ctx {
	const char *path; /* for messages */
	int line;         /* current line */
	char *const *protected_roles;
	size_t n_protected;
	pgw_errors *e;
	int errors; /* errors added by this load (e->n may hold older ones) */
} token_ctx;

static void tok_error(token_ctx *tc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tok_error(token_ctx *tc, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errors_add(tc->e, tc->path, tc->line, "%s", msg);
	tc->errors++;
}

static void token_clear(pgw_token *t)
{
	free(t->scram_salt);
	free(t->actor);
	free(t->role);
	free(t->tenant);
	free_list(t->targets, t->n_targets);
	memset(t, 0, sizeof(*t));
}

void tokens_free(pgw_token_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		token_clear(&t->v[i]);
	free(t->v);
	free(t->path);
	free(t);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* upper case is refused: the contract says lowercase hex */
}

/* "sha256:" + exactly 64 lowercase hex digits. Never quotes the secret in errors. */
static bool parse_sha256(token_ctx *tc, const char *s, pgw_token *t)
{
	const char *hex = s + strlen("sha256:");

	if (strlen(hex) != 64) {
		tok_error(tc, "sha256 secret must be 64 lowercase hex digits (found %zu characters)", strlen(hex));
		return false;
	}
	for (int i = 0; i < 32; i++) {
		int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			tok_error(tc, "sha256 secret must be 64 lowercase hex digits");
			return false;
		}
		t->sha256[i] = (uint8_t)(hi << 4 | lo);
	}
	t->kind = TOKEN_SHA256;
	return true;
}

/*
 * Strict base64 of s[0..len): alphabet only, length a multiple of 4, '=' only
 * as 1-2 trailing pad characters. Returns a malloc'd buffer and its length, or
 * NULL. EVP_DecodeBlock alone would accept whitespace and count pad bytes.
 */
static uint8_t *b64_decode(const char *s, size_t len, size_t *outlen)
{
	size_t pad = 0;
	uint8_t *out;
	int n;

	if (len == 0 || len % 4 != 0 || len > INT_MAX)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '=') {
			if (i < len - 2 || (i == len - 2 && s[len - 1] != '='))
				return NULL;
			pad++;
		} else if (!isalnum(c) && c != '+' && c != '/') {
			return NULL;
		}
	}
	out = malloc(len / 4 * 3 + 1);
	if (out == NULL)
		return NULL;
	n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)n - pad;
	return out;
}

/* Decode a base64 field that must give exactly 32 bytes into 'dst'. */
static bool b64_key32(const char *s, size_t len, uint8_t dst[32])
{
	size_t n = 0;
	uint8_t *raw = b64_decode(s, len, &n);
	bool ok = raw != NULL && n == 32;

	if (ok)
		memcpy(dst, raw, 32);
	free(raw);
	return ok;
}

/* SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>, as PostgreSQL stores it. */
static bool parse_scram(token_ctx *tc, const char *s, pgw_token *t)
{
	const char *p = s + strlen("SCRAM-SHA-256$");
	const char *colon1, *dollar, *colon2;
	char *end;
	long iter;

	colon1 = strchr(p, ':');
	dollar = colon1 ? strchr(colon1 + 1, '$') : NULL;
	colon2 = dollar ? strchr(dollar + 1, ':') : NULL;
	if (colon2 == NULL || strchr(colon2 + 1, ':') != NULL || strchr(dollar + 1, '$') != NULL) {
		tok_error(tc, "SCRAM secret must be SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>");
		return false;
	}
	errno = 0;
	iter = strtol(p, &end, 10);
	if (!isdigit((unsigned char)*p) || end != colon1 || errno != 0 || iter < 1 || iter > SCRAM_ITER_MAX) {
		tok_error(tc, "SCRAM iteration count must be an integer from 1 to %d", SCRAM_ITER_MAX);
		return false;
	}
	t->scram_salt = b64_decode(colon1 + 1, (size_t)(dollar - colon1 - 1), &t->scram_salt_len);
	if (t->scram_salt == NULL || t->scram_salt_len == 0 || t->scram_salt_len > SCRAM_SALT_MAX) {
		tok_error(tc, "SCRAM salt is not valid base64 of 1 to %d bytes", SCRAM_SALT_MAX);
		return false;
	}
	if (!b64_key32(dollar + 1, (size_t)(colon2 - dollar - 1), t->stored_key)) {
		tok_error(tc, "SCRAM StoredKey is not valid base64 of exactly 32 bytes");
		return false;
	}
	if (!b64_key32(colon2 + 1, strlen(colon2 + 1), t->server_key)) {
		tok_error(tc, "SCRAM ServerKey is not valid base64 of exactly 32 bytes");
		return false;
	}
	t->scram_iterations = (int)iter;
	t->kind = TOKEN_SCRAM;
	return true;
}

static bool parse_secret(token_ctx *tc, const char *s, pgw_token *t)
{
	if (strncmp(s, "sha256:", 7) == 0)
		return parse_sha256(tc, s, t);
	if (strncmp(s, "SCRAM-SHA-256$", 14) == 0)
		return parse_scram(tc, s, t);
	tok_error(tc, "secret must start with \"sha256:\" or \"SCRAM-SHA-256$\"");
	return false;
}

/* Why case-insensitive: a record for "Anon" is at best a typo and at worst an attempt around the rule. */
static bool role_is_protected(const token_ctx *tc, const char *role)
{
	for (size_t i = 0; i < tc->n_protected; i++)
		if (strcasecmp(tc->protected_roles[i], role) == 0)
			return true;
	return false;
}

/* Whether a key is short lower-case letters, so it is safe to quote (it cannot be a secret). */
static bool plain_key(const char *k, size_t len)
{
	if (len == 0 || len > 20)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(k[i] >= 'a' && k[i] <= 'z') && k[i] != '_')
			return false;
	return true;
}

/* One optional key=value field after the tenant (field_no counts from 1, for messages). */
static bool parse_option(token_ctx *tc, const char *field, size_t field_no, pgw_token *t, bool *seen_expires,
			 bool *seen_targets)
{
	const char *eq = strchr(field, '=');

	/* Why no quoting of the field: a shifted line could put a secret here. */
	if (eq == NULL || eq == field) {
		tok_error(tc, "field %zu: expected key=value after the tenant", field_no);
		return false;
	}
	if ((size_t)(eq - field) == 7 && strncmp(field, "expires", 7) == 0) {
		if (*seen_expires) {
			tok_error(tc, "duplicate key \"expires\"");
			return false;
		}
		*seen_expires = true;
		if (!parse_rfc3339(eq + 1, &t->expires)) {
			tok_error(tc, "expires: \"%.40s\" is not an RFC 3339 time such as 2026-12-31T00:00:00Z",
				  eq + 1);
			return false;
		}
		return true;
	}
	if ((size_t)(eq - field) == 7 && strncmp(field, "targets", 7) == 0) {
		if (*seen_targets) {
			tok_error(tc, "duplicate key \"targets\"");
			return false;
		}
		*seen_targets = true;
		if (!split_list(eq + 1, &t->targets, &t->n_targets) || t->n_targets == 0) {
			tok_error(tc, "targets: expected a comma list of target names");
			return false;
		}
		return true;
	}
	if (plain_key(field, (size_t)(eq - field)))
		tok_error(tc, "unknown key \"%.*s\" (expected expires= or targets=)", (int)(eq - field), field);
	else
		tok_error(tc, "field %zu: unknown key (expected expires= or targets=)", field_no);
	return false;
}

/* Split a line in place into whitespace-separated fields; a field starting with '#' ends the line. */
static size_t split_fields(char *line, char **fields, size_t max, bool *too_many)
{
	size_t n = 0;
	char *p = line;

	*too_many = false;
	for (;;) {
		while (*p && isspace((unsigned char)*p))
			p++;
		if (*p == '\0' || *p == '#')
			break;
		if (n == max) {
			*too_many = true;
			break;
		}
		fields[n++] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

/* Parse one non-blank line into 't'. Returns false (after reporting) if anything is wrong. */
static bool parse_record(token_ctx *tc, char *line, pgw_token *t)
{
	char *f[TOKEN_FIELDS_MAX];
	bool too_many, seen_expires = false, seen_targets = false, ok = true;
	size_t n = split_fields(line, f, TOKEN_FIELDS_MAX, &too_many);

	if (n == 0)
		return true; /* caller skips blank lines; nothing to do */
	if (too_many) {
		tok_error(tc, "too many fields");
		return false;
	}
	if (n < 4) {
		tok_error(tc, "expected: secret actor role tenant [key=value...]");
		return false;
	}
	t->line = tc->line;
	if (!parse_secret(tc, f[0], t))
		ok = false;
	t->actor = strdup(f[1]);
	t->role = strdup(f[2]);
	t->tenant = strcmp(f[3], "-") == 0 ? NULL : strdup(f[3]);
	if (t->actor == NULL || t->role == NULL || (t->tenant == NULL && strcmp(f[3], "-") != 0)) {
		tok_error(tc, "out of memory");
		return false;
	}
	if (role_is_protected(tc, t->role)) {
		tok_error(tc, "role \"%s\" of actor \"%s\" is a protected role", t->role, t->actor);
		ok = false;
	}
	for (size_t i = 4; i < n; i++)
		if (!parse_option(tc, f[i], i + 1, t, &seen_expires, &seen_targets))
			ok = false;
	return ok;
}

/* Sort by actor; equal actors keep file order (line numbers are unique), so the sort is stable. */
static int token_cmp(const void *a, const void *b)
{
	const pgw_token *x = a, *y = b;
	int c = strcmp(x->actor, y->actor);

	if (c != 0)
		return c;
	return (x->line > y->line) - (x->line < y->line);
}

/* After sorting: at most one SCRAM record per actor. */
static void check_one_scram(token_ctx *tc, const pgw_token_table *t)
{
	for (size_t i = 0; i < t->n;) {
		size_t j = i;
		const pgw_token *first_scram = NULL;

		for (; j < t->n && strcmp(t->v[j].actor, t->v[i].actor) == 0; j++) {
			if (t->v[j].kind != TOKEN_SCRAM)
				continue;
			if (first_scram == NULL) {
				first_scram = &t->v[j];
				continue;
			}
			tc->line = t->v[j].line;
			tok_error(tc, "actor \"%s\" already has a SCRAM record at line %d", t->v[j].actor,
				  first_scram->line);
		}
		i = j;
	}
}

static char *read_whole_file(const char *path, size_t *len, int *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (f == NULL) {
		*err = errno;
		return NULL;
	}
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *grown;

			cap = cap ? cap * 2 : 8192;
			if (cap > TOKEN_FILE_MAX + 8192 || (grown = realloc(buf, cap)) == NULL) {
				*err = cap > TOKEN_FILE_MAX + 8192 ? EFBIG : ENOMEM;
				goto fail;
			}
			buf = grown;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);

		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		*err = EIO;
		goto fail;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

/* Append the record to the table; on no memory the record is dropped with an error. */
static void table_push(token_ctx *tc, pgw_token_table *t, size_t *cap, pgw_token *rec)
{
	if (!pgw_arr_reserve(&t->v, cap, t->n + 1, sizeof(*t->v), 16)) {
		tok_error(tc, "out of memory");
		token_clear(rec);
		return;
	}
	t->v[t->n++] = *rec;
}

pgw_token_table *tokens_load(const char *path, char *const *protected_roles, size_t n_protected, struct pgw_errors *e)
{
	token_ctx tc = { .path = path, .protected_roles = protected_roles, .n_protected = n_protected, .e = e };
	pgw_token_table *t = calloc(1, sizeof(*t));
	size_t len = 0, cap = 0;
	int err = 0;
	char *buf = read_whole_file(path, &len, &err), *line, *next;

	if (t == NULL || (t->path = strdup(path)) == NULL) {
		tok_error(&tc, "out of memory");
		goto fail;
	}
	if (buf == NULL) {
		tok_error(&tc, "cannot read token file: %s", strerror(err));
		goto fail;
	}
	if (memchr(buf, '\0', len) != NULL) {
		tok_error(&tc, "token file contains a NUL byte");
		goto fail;
	}
	for (line = buf; line != NULL && line < buf + len; line = next) {
		pgw_token rec = { 0 };

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		tc.line++;
		if (parse_record(&tc, line, &rec) && rec.actor != NULL)
			table_push(&tc, t, &cap, &rec);
		else
			token_clear(&rec);
	}
	if (t->n > 1)
		qsort(t->v, t->n, sizeof(*t->v), token_cmp);
	check_one_scram(&tc, t);
	if (tc.errors > 0)
		goto fail;
	free(buf);
	return t;
fail:
	free(buf);
	tokens_free(t);
	return NULL;
}

const pgw_token *tokens_find_actor(const pgw_token_table *t, const char *actor, size_t *count)
{
	size_t lo = 0, hi, end;

	*count = 0;
	if (t == NULL || actor == NULL)
		return NULL;
	hi = t->n;
	while (lo < hi) { /* lower bound */
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(t->v[mid].actor, actor) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (end = lo; end < t->n && strcmp(t->v[end].actor, actor) == 0; end++)
		;
	*count = end - lo;
	return *count ? &t->v[lo] : NULL;
}

bool token_usable(const pgw_token *tok, const char *target, time_t now)
{
	if (tok->expires != 0 && now >= tok->expires)
		return false;
	if (tok->n_targets == 0)
		return true;
	if (target == NULL)
		return false;
	for (size_t i = 0; i < tok->n_targets; i++)
		if (strcmp(tok->targets[i], target) == 0)
			return true;
	return false;
}
