/* classify_plfix.c - rewrite valid PL/pgSQL that libpg_query's catalog-less reader rejects into text it reads, running the same SQL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/core/arr.h"
#include "policy/classify_int.h"

/*
 * libpg_query parses PL/pgSQL without a catalog: every declared type is a
 * placeholder (type OID 0, no collation). So the grammar rejects what needs a
 * type: OPEN/FETCH/MOVE/CLOSE of a cursor variable ("must be of type cursor or
 * refcursor"), FOR r IN cursor(args) LOOP, and COLLATE in a declaration
 * ("collations are not supported by type"). PostgreSQL runs those bodies.
 *
 * For classification only, the body is rewritten so that it still contains
 * every SQL text that can run, and only those:
 *   OPEN c [[NO] SCROLL] FOR query      ->  query        (the query runs)
 *   OPEN c [[NO] SCROLL] FOR EXECUTE x  ->  EXECUTE x    (dynamic: opaque-sql)
 *   OPEN c(args) / OPEN c               ->  PERFORM ROW(args) / NULL
 *                                            (a bound cursor's query is in its
 *                                            DECLARE, which the reader keeps)
 *   FETCH/MOVE ... c [INTO x]           ->  NULL (the portal's query was judged
 *                                            where it was opened); only when the
 *                                            direction holds no expression
 *   CLOSE c                             ->  NULL
 *   FOR r IN c(args) LOOP               ->  PERFORM ROW(args); LOOP
 *   COLLATE name in a declaration       ->  removed (collations pick no function)
 * Anything else is left alone; if the result still does not parse, the body
 * stays opaque-sql as before. The rewrite is tried only after a failed parse.
 */

typedef struct edit {
	size_t start, end;  /* byte range of the body replaced */
	const char *with;   /* replacement text (static), or NULL: keep [keep_from, end) after 'prefix' */
	char prefix[16];    /* "PERFORM ROW", "SELECT ROW": put before the kept range */
	size_t keep_from;   /* with NULL: the kept range starts here */
	const char *suffix; /* after the kept range (may be "") */
} edit;

typedef struct fixer {
	const char *src; /* the body */
	pc_scan s;       /* its significant tokens */
	edit *e;         /* edits, in order */
	size_t n, cap;
	bool oom;
} fixer;

static bool tok_is(const fixer *x, size_t i, const char *word)
{
	const pc_token *t = &x->s.v[i];
	size_t n = strlen(word);

	return i < x->s.n && t->end - t->start == n && strncasecmp(x->src + t->start, word, n) == 0;
}

static bool tok_char(const fixer *x, size_t i, char c)
{
	return i < x->s.n && x->s.v[i].token == (uint32_t)(unsigned char)c;
}

static void add_edit(fixer *x, edit e)
{
	/* Why the helper: this used to double x->cap before realloc, so after one failure the next edit wrote past e. */
	if (!ARR_RESERVE(x->e, x->cap, x->n + 1, 8)) {
		x->oom = true;
		return;
	}
	x->e[x->n++] = e;
}

/* Whether token i starts a PL/pgSQL statement (after ';', BEGIN, THEN, ELSE, LOOP or a <<label>>). */
static bool stmt_start(const fixer *x, size_t i)
{
	if (i == 0)
		return true;
	return tok_char(x, i - 1, ';') || tok_is(x, i - 1, "begin") || tok_is(x, i - 1, "then") ||
	       tok_is(x, i - 1, "else") || tok_is(x, i - 1, "loop") || tok_is(x, i - 1, ">>");
}

/* Index of the ';' ending the statement at i (parentheses balanced), or x->s.n. */
static size_t stmt_end(const fixer *x, size_t i)
{
	int depth = 0;

	for (; i < x->s.n; i++) {
		if (tok_char(x, i, '('))
			depth++;
		else if (tok_char(x, i, ')'))
			depth--;
		else if (depth == 0 && tok_char(x, i, ';'))
			return i;
	}
	return x->s.n;
}

/* Index just after the ')' matching the '(' at i, or 0 when unbalanced. */
static size_t after_parens(const fixer *x, size_t i)
{
	int depth = 0;

	for (; i < x->s.n; i++) {
		if (tok_char(x, i, '('))
			depth++;
		else if (tok_char(x, i, ')') && --depth == 0)
			return i + 1;
	}
	return 0;
}

/* Replace tokens [a, b) (b: the ';' or LOOP kept) by 'with'. */
static void replace(fixer *x, size_t a, size_t b, const char *with)
{
	add_edit(x, (edit){ .start = x->s.v[a].start, .end = x->s.v[b].start, .with = with });
}

static void fix_open(fixer *x, size_t i, size_t end)
{
	size_t k = i + 2, close;

	if (tok_is(x, k, "no"))
		k++;
	if (tok_is(x, k, "scroll"))
		k++;
	if (tok_is(x, k, "for") && k + 1 < end) {
		replace(x, i, k + 1, ""); /* "query;" or "EXECUTE ...;" stays */
		return;
	}
	if (tok_char(x, k, '(') && (close = after_parens(x, k)) == end) {
		edit e = {
			.start = x->s.v[i].start, .end = x->s.v[end].start, .keep_from = x->s.v[k].start, .suffix = ""
		};

		snprintf(e.prefix, sizeof(e.prefix), "%s", "PERFORM ROW");
		add_edit(x, e);
		return;
	}
	if (k == end)
		replace(x, i, end, "NULL");
}

/* FETCH/MOVE: only a direction of keywords, names and integer counts (no expression to judge). */
static void fix_fetch(fixer *x, size_t i, size_t end)
{
	for (size_t k = i + 1; k < end && !tok_is(x, k, "into"); k++) {
		const pc_token *t = &x->s.v[k];

		if (!(t->kw != 0 || t->token == TK_IDENT || t->token == TK_ICONST || tok_char(x, k, '-') ||
		      tok_char(x, k, '+')))
			return;
	}
	replace(x, i, end, "NULL");
}

/*
 * FOR r IN c [(args)] LOOP: a loop over a bound cursor (a query would start
 * with a keyword, an integer range has ".."). r is declared by the loop itself,
 * so the header becomes "PERFORM ROW(args); LOOP" (or plain "LOOP"); a
 * labelled loop with arguments is left alone (the label must stay on LOOP).
 */
static void fix_for_cursor(fixer *x, size_t i)
{
	size_t c = i + 3, k = i + 4;
	bool labelled = i > 0 && tok_is(x, i - 1, ">>");

	if (!tok_is(x, i + 2, "in") || c >= x->s.n || x->s.v[c].token != TK_IDENT || x->s.v[c].kw != 0)
		return;
	if (tok_char(x, k, '(') && (k = after_parens(x, k)) == 0)
		return;
	if (!tok_is(x, k, "loop") || (labelled && k != c + 1))
		return;
	if (k == c + 1) {
		replace(x, i, k, "");
	} else {
		edit e = { .start = x->s.v[i].start,
			   .end = x->s.v[k].start,
			   .keep_from = x->s.v[c + 1].start,
			   .suffix = "; " };

		snprintf(e.prefix, sizeof(e.prefix), "%s", "PERFORM ROW");
		add_edit(x, e);
	}
}

/* COLLATE name[.name] before ';', NOT, :=, = or DEFAULT: a declaration's collation. */
static void fix_collate(fixer *x, size_t i)
{
	size_t k = i + 2;

	if (i + 1 >= x->s.n)
		return;
	if (tok_char(x, k, '.'))
		k += 2;
	if (tok_char(x, k, ';') || tok_is(x, k, "not") || tok_is(x, k, "default") || tok_char(x, k, '=') ||
	    (k < x->s.n && x->s.v[k].token == TK_COLON_EQUALS))
		replace(x, i, k, "");
}

static void find_edits(fixer *x)
{
	for (size_t i = 0; i < x->s.n && !x->oom; i++) {
		if (tok_is(x, i, "collate")) {
			fix_collate(x, i);
			continue;
		}
		if (!stmt_start(x, i))
			continue;
		if (tok_is(x, i, "open") && i + 1 < x->s.n)
			fix_open(x, i, stmt_end(x, i));
		else if (tok_is(x, i, "fetch") || tok_is(x, i, "move"))
			fix_fetch(x, i, stmt_end(x, i));
		else if (tok_is(x, i, "close") && stmt_end(x, i) == i + 2)
			replace(x, i, i + 2, "NULL");
		else if (tok_is(x, i, "for"))
			fix_for_cursor(x, i);
	}
}

/* Apply the edits (non-overlapping, in order); NULL when none apply or out of memory. */
static char *apply_edits(const fixer *x, size_t len)
{
	size_t cap = len + 1, at = 0, o = 0;
	char *out;

	for (size_t k = 0; k < x->n; k++)
		cap += 24 + (x->e[k].with ? strlen(x->e[k].with) : 0);
	if (x->n == 0 || !(out = malloc(cap)))
		return NULL;
	for (size_t k = 0; k < x->n; k++) {
		const edit *e = &x->e[k];

		if (e->start < at)
			continue; /* overlapping: keep the first */
		memcpy(out + o, x->src + at, e->start - at);
		o += e->start - at;
		if (e->with) {
			o += (size_t)sprintf(out + o, "%s", e->with);
		} else {
			o += (size_t)sprintf(out + o, "%s", e->prefix);
			memcpy(out + o, x->src + e->keep_from, e->end - e->keep_from);
			o += e->end - e->keep_from;
			o += (size_t)sprintf(out + o, "%s", e->suffix);
		}
		at = e->end;
	}
	memcpy(out + o, x->src + at, len - at);
	out[o + len - at] = '\0';
	return out;
}

char *plpgsql_fix_body(const char *body)
{
	fixer x = { .src = body };
	char *out = NULL;

	if (scan_text(&x.s, body) == 0) {
		find_edits(&x);
		if (!x.oom)
			out = apply_edits(&x, strlen(body));
	}
	scan_free(&x.s);
	free(x.e);
	return out;
}
