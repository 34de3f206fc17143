/* classify_plpgsql.c - DO blocks and PL/pgSQL functions: parse the body, classify the SQL it embeds,
 * refuse dynamic SQL. */
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/classify_int.h"

/*
 * pg_query_parse_plpgsql() parses a CREATE FUNCTION text, so the body is
 * wrapped in one. Every SQL fragment in the result is a PLpgSQL_expr "query":
 * whole statements ("insert into t ..."), PERFORM ("SELECT f()"), bare
 * expressions ("x > 1") and assignments ("x := f(x)"). Each is parsed and
 * walked like client SQL and its facts merged into the DO's. Dynamic SQL
 * (EXECUTE, FOR ... IN EXECUTE, OPEN ... FOR EXECUTE, RETURN QUERY EXECUTE)
 * cannot be seen: opaque-sql. A body libpg_query cannot parse: opaque-sql too.
 */

typedef struct pl_walk {
	policy_facts *f;  /* the DO statement's (or function's) facts */
	const jdoc *d;    /* PL/pgSQL JSON */
	int nest;         /* DO nesting */
	int depth;        /* JSON nesting, including enclosing walks */
	const char *what; /* "DO block" or "PL/pgSQL body", for reasons */
} pl_walk;

static void pl_mark_opaque(policy_facts *f, const char *why)
{
	f->flags |= PF_OPAQUE;
	facts_set_why(f, &f->why_opaque, "%s", why);
}

void merge_embedded_facts(policy_facts *f, const policy_facts *s, const char *what)
{
	if (s->flags & (PF_PREPARE | PF_EXECUTE | PF_DEALLOCATE)) {
		char why[96];

		snprintf(why, sizeof(why), "prepared statements inside a %s", what);
		pl_mark_opaque(f, why);
		return;
	}
	/* PF_COPY describes a top-level statement's protocol, not what a body does. */
	facts_merge(f, s, ~(uint32_t)(PF_READ_ONLY | PF_TXN_CONTROL | PF_COPY));
	if (!(s->flags & PF_READ_ONLY))
		f->flags |= PF_INT_WRITE;
}

/* Parse sql; on success merge its statements and return true. */
static bool try_sql(policy_facts *f, const char *sql, int nest, int depth)
{
	PgQueryParseResult r = pg_query_parse(sql);
	pc_rawstmt *v = NULL;
	int n;

	if (r.error) {
		pg_query_free_parse_result(r);
		return false;
	}
	n = walk_parse_tree_nested(r.parse_tree, strlen(r.parse_tree), nest, depth, &v);
	pg_query_free_parse_result(r);
	if (n == -1) {
		f->oom = true;
		return true;
	}
	if (n == -2) {
		pl_mark_opaque(f, "DO block nested too deeply to verify");
		return true;
	}
	for (int i = 0; i < n; i++) {
		merge_embedded_facts(f, v[i].facts, "PL/pgSQL body");
		policy_facts_unref(v[i].facts);
	}
	free(v);
	return true;
}

static bool try_select(policy_facts *f, const char *expr, size_t len, int nest, int depth)
{
	char *s = malloc(len + 8);
	bool ok;

	if (!s) {
		f->oom = true;
		return true;
	}
	memcpy(s, "SELECT ", 7);
	memcpy(s + 7, expr, len);
	s[len + 7] = '\0';
	ok = try_sql(f, s, nest, depth);
	free(s);
	return ok;
}

/* Offset just after the first ":=" token of an assignment, or 0. */
static size_t assign_rhs(const char *sql)
{
	pc_scan s = { 0 };
	size_t at = 0;

	if (scan_text(&s, sql) == 0) {
		for (size_t i = 0; i < s.n; i++) {
			if (s.v[i].token == TK_COLON_EQUALS) {
				at = s.v[i].end;
				break;
			}
		}
	}
	scan_free(&s);
	return at;
}

void walk_embedded_sql(policy_facts *f, const char *sql, int nest, int depth)
{
	size_t rhs;

	if (try_sql(f, sql, nest, depth) || try_select(f, sql, strlen(sql), nest, depth))
		return;
	if ((rhs = assign_rhs(sql)) > 0 && try_select(f, sql + rhs, strlen(sql + rhs), nest, depth))
		return;
	pl_mark_opaque(f, "PL/pgSQL expression pgwarden cannot analyse");
}

static bool is_dynamic(const jdoc *d, uint32_t typetok)
{
	return jstr_eq(d, typetok, "PLpgSQL_stmt_dynexecute") || jstr_eq(d, typetok, "PLpgSQL_stmt_dynfors");
}

static void pl_value(pl_walk *w, uint32_t i);

static void pl_mark_dynamic(pl_walk *w)
{
	char why[96];

	snprintf(why, sizeof(why), "%s with dynamic EXECUTE", w->what);
	pl_mark_opaque(w->f, why);
}

static void pl_fields(pl_walk *w, uint32_t obj)
{
	const jdoc *d = w->d;

	for (uint32_t c = obj + 1; c + 1 < d->t[obj].end; c = d->t[c + 1].end) {
		if (jstr_eq(d, c, "dynquery"))
			pl_mark_dynamic(w);
		else
			pl_value(w, c + 1);
	}
}

static void pl_expr(pl_walk *w, uint32_t body)
{
	uint32_t q = jobj_get(w->d, body, "query");
	char *sql;

	if (!q)
		return;
	if (!(sql = jstr_dup(w->d, q))) {
		w->f->oom = true;
		return;
	}
	walk_embedded_sql(w->f, sql, w->nest, w->depth);
	free(sql);
}

static void pl_value(pl_walk *w, uint32_t i)
{
	const jdoc *d = w->d;

	if (w->depth >= PC_MAX_WALK_DEPTH) {
		char why[96];

		snprintf(why, sizeof(why), "%s nested too deeply to verify", w->what);
		pl_mark_opaque(w->f, why);
		return;
	}
	w->depth++;
	if (d->t[i].type == J_ARR) {
		for (uint32_t c = i + 1; c < d->t[i].end; c = d->t[c].end)
			pl_value(w, c);
	} else if (d->t[i].type == J_OBJ && d->t[i].end > i + 2 && d->t[i + 2].end == d->t[i].end &&
		   d->t[i + 1].type == J_STR && d->t[i + 1].len > 0 && d->text[d->t[i + 1].start] == 'P') {
		/* A wrapped PL/pgSQL node {"PLpgSQL_...": {...}} */
		if (is_dynamic(d, i + 1))
			pl_mark_dynamic(w);
		else if (jstr_eq(d, i + 1, "PLpgSQL_expr"))
			pl_expr(w, i + 2);
		else
			pl_value(w, i + 2);
	} else if (d->t[i].type == J_OBJ) {
		pl_fields(w, i);
	}
	w->depth--;
}

/* A dollar-quote tag that does not occur in the body. */
static bool pick_tag(const char *body, char *tag, size_t tagsz)
{
	for (int k = 0; k < 1000; k++) {
		snprintf(tag, tagsz, "$pgw%d$", k);
		if (!strstr(body, tag))
			return true;
	}
	return false;
}

/*
 * The dollar-quoted body after AS in a CREATE FUNCTION text: [*start, *end) is
 * the quoted token, *tl its tag's length. False when there is none.
 */
static bool find_body(const char *text, size_t *start, size_t *end, size_t *tl)
{
	pc_scan s = { 0 };
	bool found = false;

	if (scan_text(&s, text) == 0) {
		for (size_t i = 0; i + 1 < s.n && !found; i++) {
			const pc_token *t = &s.v[i + 1];
			const char *q = text + t->start, *close;

			if (s.v[i].end - s.v[i].start != 2 || strncasecmp(text + s.v[i].start, "as", 2) != 0 ||
			    t->token != TK_SCONST || *q != '$' || !(close = strchr(q + 1, '$')))
				continue;
			*tl = (size_t)(close - q) + 1;
			*start = t->start;
			*end = t->end;
			found = *end - *start >= 2 * *tl && strncmp(text + *end - *tl, q, *tl) == 0;
		}
	}
	scan_free(&s);
	return found;
}

/* The CREATE FUNCTION text with its body passed through plpgsql_fix_body, or NULL. */
static char *fixed_source(const char *text)
{
	size_t start, end, tl, bl;
	char *body, *fixed = NULL, *out = NULL, tag[24];

	if (!find_body(text, &start, &end, &tl))
		return NULL;
	bl = end - start - 2 * tl;
	if (!(body = strndup(text + start + tl, bl)))
		return NULL;
	fixed = plpgsql_fix_body(body);
	if (fixed && pick_tag(fixed, tag, sizeof(tag))) {
		size_t n = start + strlen(fixed) + 2 * strlen(tag) + strlen(text + end) + 1;

		if ((out = malloc(n)))
			snprintf(out, n, "%.*s%s%s%s%s", (int)start, text, tag, fixed, tag, text + end);
	}
	free(body);
	free(fixed);
	return out;
}

/* Parse and walk; false with r's error kept when libpg_query rejects the text. */
static bool walk_parsed(policy_facts *f, PgQueryPlpgsqlParseResult *r, const char *what, int nest, int depth)
{
	jdoc d = { 0 };
	char why[200];

	if (r->error)
		return false;
	if (json_parse(&d, r->plpgsql_funcs, strlen(r->plpgsql_funcs)) != 0) {
		snprintf(why, sizeof(why), "%s pgwarden cannot analyse", what);
		pl_mark_opaque(f, why);
	} else {
		pl_walk w = { .f = f, .d = &d, .nest = nest, .depth = depth, .what = what };

		pl_value(&w, 0);
	}
	json_free(&d);
	return true;
}

void walk_plpgsql_source(policy_facts *f, const char *create_text, const char *what, int nest, int depth)
{
	PgQueryPlpgsqlParseResult r = pg_query_parse_plpgsql(create_text), r2;
	char why[200], *fixed;

	if (walk_parsed(f, &r, what, nest, depth)) {
		pg_query_free_plpgsql_parse_result(r);
		return;
	}
	/* Why a second try: the reader has no catalog; valid cursor and COLLATE code fails (plfix.c). */
	if ((fixed = fixed_source(create_text))) {
		r2 = pg_query_parse_plpgsql(fixed);
		free(fixed);
		if (walk_parsed(f, &r2, what, nest, depth)) {
			pg_query_free_plpgsql_parse_result(r2);
			pg_query_free_plpgsql_parse_result(r);
			return;
		}
		pg_query_free_plpgsql_parse_result(r2);
	}
	snprintf(why, sizeof(why), "%s pgwarden cannot analyse: %s", what,
		 r.error->message ? r.error->message : "parse error");
	pl_mark_opaque(f, why);
	pg_query_free_plpgsql_parse_result(r);
}

void walk_do_block(policy_facts *f, const char *body, size_t len, int nest, int depth)
{
	static const char head[] = "CREATE FUNCTION pgw_do() RETURNS void LANGUAGE plpgsql AS ";
	char tag[24], *src;
	size_t tl;

	if (nest > PC_MAX_NESTED_DO || !pick_tag(body, tag, sizeof(tag))) {
		pl_mark_opaque(f, "DO block nested too deeply to verify");
		return;
	}
	tl = strlen(tag);
	if (!(src = malloc(sizeof(head) + len + 2 * tl + 1))) {
		f->oom = true;
		return;
	}
	snprintf(src, sizeof(head) + len + 2 * tl + 1, "%s%s%s%s", head, tag, body, tag);
	walk_plpgsql_source(f, src, "DO block", nest, depth);
	free(src);
}
