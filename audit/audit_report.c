/* audit_report.c - `pgwarden audit report`: gather windows, writes and refusals from the records; the CLI. */
#include "audit/audit_report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/core/arr.h"
#include "audit/audit.h"

/* An allowed statement waiting for its result record. */
typedef struct pending_stmt {
	uint64_t seq;  /* its statement record */
	char *section; /* window that allowed it, NULL outside (owned) */
	char *actor;   /* (owned) */
	char *target;  /* (owned) */
	bool done;     /* its result was counted */
} pending_stmt;

/* Reading state. */
typedef struct gather {
	report_model *m;     /* what is being filled */
	pending_stmt *pend;  /* allowed statements, in seq order (the log's order) */
	size_t n_pend;       /* how many */
	size_t cap_pend;     /* allocated */
	size_t cap_counts;   /* allocated m->counts */
	size_t cap_refusals; /* allocated m->refusals */
	size_t cap_windows;  /* allocated m->windows */
	size_t cap_configs;  /* allocated m->configs */
} gather;

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static const char *jstr(json_t *rec, const char *key)
{
	json_t *v = json_object_get(rec, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* ---- windows ------------------------------------------------------------------------------ */

static report_window *window_get(gather *g, const char *name)
{
	report_model *m = g->m;
	report_window *w;
	size_t i;

	for (i = 0; i < m->n_windows; i++)
		if (strcmp(m->windows[i].name, name) == 0)
			return &m->windows[i];
	if (!ARR_RESERVE(m->windows, g->cap_windows, m->n_windows + 1, 16))
		return NULL;
	w = &m->windows[m->n_windows];
	memset(w, 0, sizeof(*w));
	if ((w->name = strdup(name)) == NULL)
		return NULL;
	m->n_windows++;
	return w;
}

/* A new or changed approval: kept in the window's history (changes are evidence too). */
static void note_approval(report_window *w, json_t *e, uint64_t seq, const char *ts)
{
	if (w->history == NULL)
		w->history = json_array();
	json_array_append_new(w->history,
			      json_pack("{s:I, s:s?, s:O}", "seq", (json_int_t)seq, "ts", ts, "approval", e));
}

/* Every start and reload, taken or not: the config's history is part of the evidence. */
static void note_config(gather *g, json_t *rec, uint64_t seq)
{
	report_model *m = g->m;
	json_t *acc = json_object_get(rec, "accepted");
	report_config *c;

	if (!ARR_RESERVE(m->configs, g->cap_configs, m->n_configs + 1, 16))
		return;
	c = &m->configs[m->n_configs++];
	c->seq = seq;
	c->ts = dup_or_null(jstr(rec, "ts"));
	c->event = dup_or_null(jstr(rec, "event"));
	c->accepted = json_is_boolean(acc) ? json_is_true(acc) : -1;
	c->config = dup_or_null(jstr(rec, "config"));
	c->error = dup_or_null(jstr(rec, "error"));
}

/* start / reload (not a rejected one): the approvals in force from here on. */
static void on_config_record(gather *g, json_t *rec, uint64_t seq)
{
	json_t *wins = json_object_get(rec, "windows"), *acc = json_object_get(rec, "accepted"), *e;
	report_window *w;
	size_t i;

	note_config(g, rec, seq);
	if (json_is_false(acc) || !json_is_array(wins))
		return;
	json_array_foreach(wins, i, e)
	{
		const char *name = jstr(e, "name");

		if (name == NULL || (w = window_get(g, name)) == NULL)
			continue;
		if (!w->approval || !json_equal(w->approval, e))
			note_approval(w, e, seq, jstr(rec, "ts"));
		json_decref(w->approval);
		w->approval = json_incref(e);
		w->approval_seq = seq;
	}
}

static void on_window_event(gather *g, json_t *rec, bool open)
{
	const char *name = jstr(rec, "window"), *ts = jstr(rec, "ts");
	report_window *w = name ? window_get(g, name) : NULL;

	if (w == NULL)
		return;
	if (!open) {
		if (w->is_open && w->n_open > 0 && w->closed[w->n_open - 1] == NULL)
			w->closed[w->n_open - 1] = dup_or_null(ts);
		w->is_open = false;
		return;
	}
	if (!ARR_EXTEND(w->opened, w->n_open) || !ARR_EXTEND(w->closed, w->n_open))
		return;
	w->opened[w->n_open] = dup_or_null(ts);
	w->closed[w->n_open] = NULL;
	w->n_open++;
	w->is_open = true;
}

static const char *window_target(const report_window *w)
{
	return w->approval ? jstr(w->approval, "target") : NULL;
}

/* The window open on 'target' at the point reached, or NULL. */
static const char *open_window_for(const gather *g, const char *target)
{
	size_t i;

	for (i = 0; target && i < g->m->n_windows; i++)
		if (g->m->windows[i].is_open && same(window_target(&g->m->windows[i]), target))
			return g->m->windows[i].name;
	return NULL;
}

/* ---- statements and results --------------------------------------------------------------- */

static bool in_filter(const report_filter *f, json_t *rec, const char *section)
{
	const char *ts = jstr(rec, "ts");
	int64_t us;

	if (f->target && !same(jstr(rec, "target"), f->target))
		return false;
	if (f->window && !same(section, f->window))
		return false;
	if (!f->has_since && !f->has_until)
		return true;
	if (ts == NULL || audit_parse_rfc3339(ts, &us) < 0)
		return false;
	return (!f->has_since || us >= f->since_us) && (!f->has_until || us < f->until_us);
}

/* Add to the count of (section, actor, target, kind). */
static void count(gather *g, const char *section, const char *actor, const char *target, const char *kind,
		  bool has_rows, uint64_t rows)
{
	report_model *m = g->m;
	report_count *c;
	size_t i;

	for (i = 0; i < m->n_counts; i++) {
		c = &m->counts[i];
		if (same(c->section, section) && same(c->actor, actor) && same(c->target, target) &&
		    strcmp(c->kind, kind) == 0)
			goto add;
	}
	if (!ARR_RESERVE(m->counts, g->cap_counts, m->n_counts + 1, 16))
		return;
	c = &m->counts[m->n_counts++];
	memset(c, 0, sizeof(*c));
	c->section = dup_or_null(section);
	c->actor = dup_or_null(actor ? actor : "-");
	c->target = dup_or_null(target ? target : "-");
	c->kind = strdup(kind);
add:
	c->statements++;
	if (has_rows) {
		c->has_rows = true;
		c->rows += rows;
	}
}

/*
 * A CommandComplete tag as (command, row count): "INSERT 0 5" is INSERT
 * with 5 rows, "CREATE TABLE" has no count. The command is what is left
 * after the trailing numbers.
 */
static void split_tag(const char *tag, char *kind, size_t ksz, bool *has_rows, uint64_t *rows)
{
	size_t n = strlen(tag), end = n;
	const char *last;

	*has_rows = false;
	*rows = 0;
	while (end > 0) {
		size_t s = end;

		while (s > 0 && tag[s - 1] >= '0' && tag[s - 1] <= '9')
			s--;
		if (s == end || s == 0 || tag[s - 1] != ' ')
			break;
		if (!*has_rows) {
			last = tag + s;
			*rows = strtoull(last, NULL, 10);
			*has_rows = true;
		}
		end = s - 1;
	}
	snprintf(kind, ksz, "%.*s", (int)(end < ksz ? end : ksz - 1), tag);
}

/*
 * Drop the statements whose result was counted (keeping seq order), so a
 * long log costs memory for the statements still waiting, not for all.
 */
static void compact_pending(gather *g)
{
	size_t i, n = 0;

	for (i = 0; i < g->n_pend; i++)
		if (!g->pend[i].done)
			g->pend[n++] = g->pend[i];
	g->n_pend = n;
}

static void on_statement(gather *g, json_t *rec, uint64_t seq)
{
	report_model *m = g->m;
	const char *target = jstr(rec, "target");
	pending_stmt *p;
	report_refusal *r;

	if (same(jstr(rec, "decision"), "deny")) {
		const char *section = open_window_for(g, target);

		if (!in_filter(m->filter, rec, section) ||
		    !ARR_RESERVE(m->refusals, g->cap_refusals, m->n_refusals + 1, 16))
			return;
		r = &m->refusals[m->n_refusals++];
		r->section = dup_or_null(section);
		r->seq = seq;
		r->ts = dup_or_null(jstr(rec, "ts"));
		r->actor = dup_or_null(jstr(rec, "actor"));
		r->target = dup_or_null(target);
		r->rule = dup_or_null(jstr(rec, "rule"));
		r->reason = dup_or_null(jstr(rec, "reason"));
		r->sql = dup_or_null(jstr(rec, "sql"));
		return;
	}
	if (!in_filter(m->filter, rec, jstr(rec, "window")))
		return;
	if (g->n_pend == g->cap_pend)
		compact_pending(g);
	if (!ARR_RESERVE(g->pend, g->cap_pend, g->n_pend + 1, 16))
		return;
	p = &g->pend[g->n_pend++];
	p->seq = seq;
	p->section = dup_or_null(jstr(rec, "window"));
	p->actor = dup_or_null(jstr(rec, "actor"));
	p->target = dup_or_null(target);
	p->done = false;
}

/* The pending statement with this seq (binary search: they are in seq order). */
static pending_stmt *find_pending(gather *g, uint64_t seq)
{
	size_t lo = 0, hi = g->n_pend;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (g->pend[mid].seq == seq)
			return &g->pend[mid];
		if (g->pend[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void on_result(gather *g, json_t *rec)
{
	json_t *ref = json_object_get(rec, "ref");
	const char *tag = jstr(rec, "tag"), *state = jstr(rec, "sqlstate");
	pending_stmt *p = json_is_integer(ref) ? find_pending(g, (uint64_t)json_integer_value(ref)) : NULL;
	char kind[64];
	bool has_rows = false;
	uint64_t rows = 0;

	if (p == NULL || p->done)
		return;
	p->done = true;
	if (tag)
		split_tag(tag, kind, sizeof(kind), &has_rows, &rows);
	else
		snprintf(kind, sizeof(kind), "error %s", state ? state : "?");
	count(g, p->section, p->actor, p->target, kind, has_rows, rows);
	free(p->section), free(p->actor), free(p->target);
	p->section = p->actor = p->target = NULL;
}

/* ---- reading ------------------------------------------------------------------------------ */

static void on_record(gather *g, json_t *rec)
{
	const char *ev = jstr(rec, "event"), *ts = jstr(rec, "ts");
	json_t *seqv = json_object_get(rec, "seq");
	uint64_t seq = json_is_integer(seqv) ? (uint64_t)json_integer_value(seqv) : 0;

	g->m->records++;
	if (ts && !g->m->first_ts)
		g->m->first_ts = strdup(ts);
	if (ts) {
		free(g->m->last_ts);
		g->m->last_ts = strdup(ts);
	}
	if (ev == NULL)
		return;
	if (strcmp(ev, "start") == 0 || strcmp(ev, "reload") == 0)
		on_config_record(g, rec, seq);
	else if (strcmp(ev, "window_open") == 0 || strcmp(ev, "window_close") == 0)
		on_window_event(g, rec, ev[7] == 'o');
	else if (strcmp(ev, "statement") == 0)
		on_statement(g, rec, seq);
	else if (strcmp(ev, "result") == 0)
		on_result(g, rec);
}

static int gather_file(gather *g, const char *file, FILE *errout)
{
	FILE *in = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	json_t *rec;

	if (in == NULL) {
		fprintf(errout, "pgwarden audit report: %s: cannot open: %s\n", file, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &cap, in)) > 0) {
		rec = json_loadb(line, line[n - 1] == '\n' ? (size_t)n - 1 : (size_t)n, JSON_ALLOW_NUL, NULL);
		if (json_is_object(rec))
			on_record(g, rec);
		else
			g->m->skipped_lines++;
		json_decref(rec);
	}
	free(line);
	fclose(in);
	return 0;
}

/* Allowed statements that never got a result (the session or pgwarden ended first). */
static void count_unanswered(gather *g)
{
	size_t i;

	for (i = 0; i < g->n_pend; i++) {
		pending_stmt *p = &g->pend[i];

		if (!p->done)
			count(g, p->section, p->actor, p->target, "no result", false, 0);
		free(p->section), free(p->actor), free(p->target);
	}
	free(g->pend);
}

int report_gather(report_model *m, FILE *errout)
{
	gather g;
	size_t i;
	int rc = 0;

	memset(&g, 0, sizeof(g));
	g.m = m;
	for (i = 0; i < m->n_files && rc == 0; i++)
		rc = gather_file(&g, m->files[i], errout);
	count_unanswered(&g);
	return rc;
}

void report_model_free(report_model *m)
{
	size_t i, j;

	for (i = 0; i < m->n_windows; i++) {
		report_window *w = &m->windows[i];

		for (j = 0; j < w->n_open; j++)
			free(w->opened[j]), free(w->closed[j]);
		free(w->opened), free(w->closed), free(w->name);
		json_decref(w->approval);
		json_decref(w->history);
	}
	for (i = 0; i < m->n_counts; i++)
		free(m->counts[i].section), free(m->counts[i].actor), free(m->counts[i].target),
			free(m->counts[i].kind);
	for (i = 0; i < m->n_refusals; i++) {
		report_refusal *r = &m->refusals[i];

		free(r->section), free(r->ts), free(r->actor), free(r->target), free(r->rule), free(r->reason);
		free(r->sql);
	}
	for (i = 0; i < m->n_configs; i++) {
		report_config *c = &m->configs[i];

		free(c->ts), free(c->event), free(c->config), free(c->error);
	}
	free(m->windows), free(m->counts), free(m->refusals), free(m->configs), free(m->first_ts), free(m->last_ts);
}
