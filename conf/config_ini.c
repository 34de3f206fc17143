/* config_ini.c - pgwarden.ini through libinih: every line checked, sections opened, keys sent to their tables. */
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

#include "conf/core/arr.h"
#include "conf/config.h"
#include "conf/config_int.h"

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
		if (!ARR_EXTEND(c->targets, c->n_targets))
			return -1;
		idx = (long)c->n_targets++;
		c->targets[idx].line = lc->line;
		c->targets[idx].pool_mode = POOL_MODE_SESSION;
		c->targets[idx].pool_size = 20;
		c->targets[idx].pool_wait_timeout = 30;
		c->targets[idx].server_idle_timeout = 600;
		c->targets[idx].server_lifetime = 3600;
		c->targets[idx].server_check_delay = 30;
		name_field = &c->targets[idx].name;
		break;
	case SEC_WINDOW:
		if (!ARR_EXTEND(c->windows, c->n_windows))
			return -1;
		idx = (long)c->n_windows++;
		c->windows[idx].line = lc->line;
		name_field = &c->windows[idx].name;
		break;
	case SEC_RULE:
		if (!ARR_EXTEND(c->rules, c->n_rules))
			return -1;
		idx = (long)c->n_rules++;
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
	if (idx < 0 || !ARR_EXTEND(lc->secs, lc->n_secs)) {
		cerr_at(lc, lc->line, "out of memory");
		return;
	}
	grown = lc->secs;
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

int config_ini_parse(load_ctx *lc)
{
	return ini_parse_stream(ini_reader_fn, lc, ini_handler_fn, lc);
}
