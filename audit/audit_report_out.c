/* audit_report_out.c - rendering an audit report as text or HTML (one page shape, two skins) or JSON. */
#include <stdlib.h>
#include <string.h>

#include "audit/audit_report.h"
#include "conf/core/json_writer.h"

#define SQL_SHOWN_MAX 500 /* bytes of a refused statement shown in text and HTML (JSON has all of it) */
#define MAX_COLS 8        /* the widest table */

/*
 * The page is written through a skin: text for terminals and tickets, HTML
 * for a self-contained attachment. Every value goes through the skin's
 * escaping; nothing from the log is ever written raw.
 */
typedef struct skin {
	void (*begin)(FILE *out);
	void (*heading)(FILE *out, int level, const char *text);
	void (*kv)(FILE *out, const char *key, const char *value);
	void (*note)(FILE *out, const char *text, bool alarm);
	void (*table)(FILE *out, const char *const *head, int ncols);
	void (*row)(FILE *out, const char *const *cells, int ncols);
	void (*table_end)(FILE *out);
	void (*end)(FILE *out);
} skin;

/* ---- text ----------------------------------------------------------------------------------- */

/* A value on one line: control characters as \xNN, cut at SQL_SHOWN_MAX bytes (on a character boundary). */
static void text_put(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "-");
	size_t n = 0;

	for (; *p; p++, n++) {
		if (n >= SQL_SHOWN_MAX && (*p & 0xc0) != 0x80) {
			fputs("\xe2\x80\xa6", out);
			return;
		}
		if (*p < 0x20 || *p == 0x7f)
			fprintf(out, "\\x%02x", *p);
		else
			fputc(*p, out);
	}
}

static void text_begin(FILE *out)
{
}

static void text_heading(FILE *out, int level, const char *text)
{
	fputs(level == 1 ? "" : level == 2 ? "\n== " : level == 3 ? "\n-- " : "", out);
	text_put(out, text);
	fputs(level == 4 ? ":\n" : "\n", out);
}

static void text_kv(FILE *out, const char *key, const char *value)
{
	fprintf(out, "%s: ", key);
	text_put(out, value);
	fputc('\n', out);
}

static void text_note(FILE *out, const char *text, bool alarm)
{
	fputs(alarm ? "!! " : "", out);
	text_put(out, text);
	fputc('\n', out);
}

static void text_cells(FILE *out, const char *const *cells, int ncols)
{
	int i;

	fputs("  ", out);
	for (i = 0; i < ncols; i++) {
		fputs(i ? " | " : "", out);
		text_put(out, cells[i]);
	}
	fputc('\n', out);
}

static void text_table_end(FILE *out)
{
}

static const skin text_skin = { text_begin, text_heading, text_kv,        text_note,
				text_cells, text_cells,   text_table_end, text_begin };

/* ---- HTML ----------------------------------------------------------------------------------- */

/* Escaped for element content and quoted attributes; control characters shown as \xNN. */
static void html_put(FILE *out, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "-");
	size_t n = 0;

	for (; *p; p++, n++) {
		if (n >= max && (*p & 0xc0) != 0x80) {
			fputs("&#8230;", out);
			return;
		}
		switch (*p) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&#39;", out);
			break;
		case '\n':
		case '\t':
			fputc(*p, out);
			break; /* kept: statements are shown pre-wrapped */
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\x%02x", *p);
			else
				fputc(*p, out);
		}
	}
}

static void html_begin(FILE *out)
{
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<title>pgwarden audit report</title>\n<style>\n"
	      "body{font-family:sans-serif;margin:2em;color:#222}\n"
	      "table{border-collapse:collapse;margin:.5em 0 1em}\n"
	      "th,td{border:1px solid #bbb;padding:.2em .5em;text-align:left;vertical-align:top}\n"
	      "th{background:#eee}\ntd.sql{font-family:monospace;white-space:pre-wrap}\n"
	      ".alarm{color:#a00;font-weight:bold}\ndl{display:grid;grid-template-columns:max-content auto;gap:.2em "
	      "1em}\n"
	      "dt{font-weight:bold}\ndd{margin:0}\n"
	      "</style>\n</head>\n<body>\n",
	      out);
}

static void html_heading(FILE *out, int level, const char *text)
{
	fprintf(out, "<h%d>", level);
	html_put(out, text, SIZE_MAX);
	fprintf(out, "</h%d>\n", level);
}

static void html_kv(FILE *out, const char *key, const char *value)
{
	fputs("<dl><dt>", out);
	html_put(out, key, SIZE_MAX);
	fputs("</dt><dd>", out);
	html_put(out, value, SIZE_MAX);
	fputs("</dd></dl>\n", out);
}

static void html_note(FILE *out, const char *text, bool alarm)
{
	fputs(alarm ? "<p class=\"alarm\">" : "<p>", out);
	html_put(out, text, SIZE_MAX);
	fputs("</p>\n", out);
}

/* The column of the open table that holds statements (shown monospace, pre-wrapped); -1: none. */
static int html_sql_col = -1;

static void html_table(FILE *out, const char *const *head, int ncols)
{
	int i;

	html_sql_col = strcmp(head[ncols - 1], "statement") == 0 ? ncols - 1 : -1;
	fputs("<table>\n<thead><tr>", out);
	for (i = 0; i < ncols; i++) {
		fputs("<th>", out);
		html_put(out, head[i], SIZE_MAX);
		fputs("</th>", out);
	}
	fputs("</tr></thead>\n<tbody>\n", out);
}

static void html_row(FILE *out, const char *const *cells, int ncols)
{
	int i;

	fputs("<tr>", out);
	for (i = 0; i < ncols; i++) {
		fputs(i == html_sql_col ? "<td class=\"sql\">" : "<td>", out);
		html_put(out, cells[i], SQL_SHOWN_MAX);
		fputs("</td>", out);
	}
	fputs("</tr>\n", out);
}

static void html_table_end(FILE *out)
{
	fputs("</tbody>\n</table>\n", out);
}

static void html_end(FILE *out)
{
	fputs("</body>\n</html>\n", out);
}

static const skin html_skin = { html_begin, html_heading, html_kv,        html_note,
				html_table, html_row,     html_table_end, html_end };

/* ---- the page --------------------------------------------------------------------------------- */

static void verification(const report_model *m, const skin *k, FILE *out)
{
	const audit_verify_result *v = &m->verify;
	char s[1024];

	if (m->verified)
		snprintf(s, sizeof(s), "verified: %llu records, seq %llu..%llu, hash chain intact",
			 (unsigned long long)v->records, (unsigned long long)v->first_seq,
			 (unsigned long long)v->last_seq);
	else
		snprintf(s, sizeof(s),
			 "NOT VERIFIED: %s%s%llu: %s; what follows is read from records that may have "
			 "been altered",
			 v->bad_file ? v->bad_file : "", v->bad_file ? ":" : "", (unsigned long long)v->bad_line,
			 v->why);
	k->kv(out, "chain", s);
	if (v->head[0]) {
		snprintf(s, sizeof(s), "%llu:%s", (unsigned long long)v->last_seq, v->head);
		k->kv(out, "head", s);
	}
	if (v->start == VERIFY_START_SEQ1)
		k->kv(out, "start", "seq 1: the log's beginning");
	else if (v->start == VERIFY_START_CHECKPOINT)
		k->kv(out, "start",
		      m->key_given ? "a checkpoint, signature verified"
				   : "a checkpoint, signature NOT verified (no --key)");
	else if (v->start == VERIFY_START_ELSEWHERE)
		k->note(out,
			"The set does not start at seq 1 or at a checkpoint: earlier records are missing "
			"from it, and nothing shows whether a first file was dropped.",
			true);
	snprintf(s, sizeof(s), "%llu%s", (unsigned long long)v->checkpoints,
		 v->checkpoints == 0 ? ""
		 : m->key_given      ? " (signatures verified)"
				     : " (signatures NOT verified: no --key)");
	k->kv(out, "checkpoints", s);
	k->note(out,
		"Not verifiable from the files alone: records removed from the end, unless checked "
		"against a head recorded earlier (audit verify --expect-head).",
		false);
}

static void filters(const report_model *m, const skin *k, FILE *out)
{
	const report_filter *f = m->filter;
	char s[512];

	snprintf(s, sizeof(s), "%s .. %s (%llu records)", m->first_ts ? m->first_ts : "-",
		 m->last_ts ? m->last_ts : "-", (unsigned long long)m->records);
	k->kv(out, "records span", s);
	if (f->window)
		k->kv(out, "window", f->window);
	if (f->target)
		k->kv(out, "target", f->target);
	if (f->has_since || f->has_until)
		k->note(out, "Statements are limited to the --since/--until range.", false);
}

static void approval(const report_window *w, const skin *k, FILE *out)
{
	json_t *a = w->approval, *actors = a ? json_object_get(a, "actors") : NULL, *v;
	char s[1024];
	size_t i, n = 0;

	if (a == NULL) {
		k->note(out,
			"No start or reload record in these files lists this window: its approval is not "
			"in the files given.",
			true);
		return;
	}
	k->note(out, "Approval as last recorded:", false);
	k->kv(out, "target", json_string_value(json_object_get(a, "target")));
	k->kv(out, "approved by", json_string_value(json_object_get(a, "approved_by")));
	k->kv(out, "reason", json_string_value(json_object_get(a, "reason")));
	s[0] = '\0';
	json_array_foreach(actors, i, v) if (json_is_string(v) && n < sizeof(s)) n +=
		(size_t)snprintf(s + n, sizeof(s) - n, "%s%s", i ? ", " : "", json_string_value(v));
	k->kv(out, "actors", s[0] ? s : "any actor");
	if (json_is_string(json_object_get(a, "weekly")))
		snprintf(s, sizeof(s), "weekly %s (%s)", json_string_value(json_object_get(a, "weekly")),
			 json_string_value(json_object_get(a, "timezone")));
	else
		snprintf(s, sizeof(s), "%s to %s", json_string_value(json_object_get(a, "start")),
			 json_string_value(json_object_get(a, "end")));
	k->kv(out, "approved for", s);
}

/* When the approval changed within the files: every version, with the record that brought it. */
static void approval_history(const report_window *w, const skin *k, FILE *out)
{
	static const char *const head[] = { "from seq", "at", "approved by", "reason", "actors", "approved for" };
	json_t *h, *a, *v;
	size_t i, j, n;
	char seq[24], actors[512], when[256];

	if (json_array_size(w->history) < 2)
		return;
	k->note(out, "The approval of this window changed within these files; each version as recorded:", true);
	k->table(out, head, 6);
	json_array_foreach(w->history, i, h)
	{
		a = json_object_get(h, "approval");
		snprintf(seq, sizeof(seq), "%lld", (long long)json_integer_value(json_object_get(h, "seq")));
		actors[0] = '\0';
		n = 0;
		json_array_foreach(json_object_get(a, "actors"), j, v) if (json_is_string(v) && n < sizeof(actors)) n +=
			(size_t)snprintf(actors + n, sizeof(actors) - n, "%s%s", j ? ", " : "", json_string_value(v));
		if (json_is_string(json_object_get(a, "weekly")))
			snprintf(when, sizeof(when), "weekly %s (%s)", json_string_value(json_object_get(a, "weekly")),
				 json_string_value(json_object_get(a, "timezone")));
		else
			snprintf(when, sizeof(when), "%s to %s", json_string_value(json_object_get(a, "start")),
				 json_string_value(json_object_get(a, "end")));
		{
			const char *cells[6] = { seq,
						 json_string_value(json_object_get(h, "ts")),
						 json_string_value(json_object_get(a, "approved_by")),
						 json_string_value(json_object_get(a, "reason")),
						 actors[0] ? actors : "any actor",
						 when };
			k->row(out, cells, 6);
		}
	}
	k->table_end(out);
}

static void openings(const report_window *w, const skin *k, FILE *out)
{
	static const char *const head[] = { "opened", "closed" };
	size_t i;

	if (w->n_open == 0) {
		k->note(out, "Not recorded as open in these files.", false);
		return;
	}
	k->table(out, head, 2);
	for (i = 0; i < w->n_open; i++) {
		const char *cells[2] = { w->opened[i], w->closed[i] ? w->closed[i] : "(still open at the end)" };

		k->row(out, cells, 2);
	}
	k->table_end(out);
}

/* "who wrote what" in a section (NULL: outside), for one actor or all (actor NULL). */
static void counts(const report_model *m, const char *section, const char *actor, const skin *k, FILE *out)
{
	static const char *const head[] = { "actor", "target", "kind", "statements", "rows" };
	char n[24], rows[24];
	bool any = false;
	size_t i;

	for (i = 0; i < m->n_counts; i++) {
		const report_count *c = &m->counts[i];
		const char *cells[5] = { c->actor, c->target, c->kind, n, c->has_rows ? rows : "-" };

		if ((section ? !c->section || strcmp(c->section, section) : c->section != NULL) ||
		    (actor && strcmp(c->actor, actor) != 0))
			continue;
		if (!any)
			k->table(out, head, 5);
		any = true;
		snprintf(n, sizeof(n), "%llu", (unsigned long long)c->statements);
		snprintf(rows, sizeof(rows), "%llu", (unsigned long long)c->rows);
		k->row(out, cells, 5);
	}
	if (any)
		k->table_end(out);
	else
		k->note(out, "No statements.", false);
}

static void refusals(const report_model *m, const char *section, const char *actor, const skin *k, FILE *out)
{
	static const char *const head[] = { "time", "actor", "target", "rule", "reason", "statement" };
	bool any = false;
	size_t i;

	for (i = 0; i < m->n_refusals; i++) {
		const report_refusal *r = &m->refusals[i];
		const char *cells[6] = { r->ts, r->actor, r->target, r->rule, r->reason, r->sql };

		if ((section ? !r->section || strcmp(r->section, section) : r->section != NULL) ||
		    (actor && strcmp(r->actor ? r->actor : "-", actor) != 0))
			continue;
		if (!any)
			k->table(out, head, 6);
		any = true;
		k->row(out, cells, 6);
	}
	if (any)
		k->table_end(out);
	else
		k->note(out, "Nothing refused.", false);
}

/* The start and reload records: when the config (and so the approvals) changed, and refused changes. */
static void config_changes(const report_model *m, const skin *k, FILE *out)
{
	static const char *const head[] = { "seq", "time", "event", "result", "config SHA-256", "error" };
	char seq[24];
	size_t i;

	k->heading(out, 2, "configuration");
	if (m->n_configs == 0) {
		k->note(out, "No start or reload record in these files.", true);
		return;
	}
	k->table(out, head, 6);
	for (i = 0; i < m->n_configs; i++) {
		const report_config *c = &m->configs[i];
		const char *cells[6] = { seq,       c->ts,
					 c->event,  c->accepted < 0 ? "-" : c->accepted ? "accepted" : "REJECTED",
					 c->config, c->error };

		snprintf(seq, sizeof(seq), "%llu", (unsigned long long)c->seq);
		k->row(out, cells, 6);
	}
	k->table_end(out);
}

static bool window_shown(const report_model *m, const report_window *w)
{
	const char *t = w->approval ? json_string_value(json_object_get(w->approval, "target")) : NULL;

	if (m->filter->window && strcmp(w->name, m->filter->window) != 0)
		return false;
	return !m->filter->target || (t && strcmp(t, m->filter->target) == 0);
}

static void add_actor(const char **v, size_t *n, size_t max, const char *a)
{
	size_t j;

	for (j = 0; j < *n; j++)
		if (strcmp(v[j], a) == 0)
			return;
	if (*n < max)
		v[(*n)++] = a;
}

/* Actors with statements outside windows, in the order first seen; returns how many were put in 'v'. */
static size_t outside_actors(const report_model *m, const char **v, size_t max)
{
	size_t n = 0, i;

	for (i = 0; i < m->n_counts; i++)
		if (m->counts[i].section == NULL)
			add_actor(v, &n, max, m->counts[i].actor);
	for (i = 0; i < m->n_refusals; i++)
		if (m->refusals[i].section == NULL)
			add_actor(v, &n, max, m->refusals[i].actor ? m->refusals[i].actor : "-");
	return n;
}

static void page(const report_model *m, const skin *k, FILE *out)
{
	size_t i, n;
	const char **actors;
	char title[512];

	k->begin(out);
	k->heading(out, 1, "pgwarden audit report");
	verification(m, k, out);
	filters(m, k, out);
	config_changes(m, k, out);
	for (i = 0; i < m->n_windows; i++) {
		const report_window *w = &m->windows[i];

		if (!window_shown(m, w))
			continue;
		snprintf(title, sizeof(title), "window %s", w->name);
		k->heading(out, 2, title);
		approval(w, k, out);
		approval_history(w, k, out);
		openings(w, k, out);
		k->heading(out, 3, "writes in this window");
		counts(m, w->name, NULL, k, out);
		k->heading(out, 3, "refused while it was open");
		refusals(m, w->name, NULL, k, out);
	}
	if (m->filter->window == NULL) {
		k->heading(out, 2, "outside windows");
		actors = malloc((m->n_counts + m->n_refusals + 1) * sizeof(*actors));
		n = actors ? outside_actors(m, actors, m->n_counts + m->n_refusals) : 0;
		if (n == 0)
			k->note(out, "No statements outside windows.", false);
		for (i = 0; i < n; i++) {
			snprintf(title, sizeof(title), "actor %s", actors[i]);
			k->heading(out, 3, title);
			k->heading(out, 4, "statements");
			counts(m, NULL, actors[i], k, out);
			k->heading(out, 4, "refused");
			refusals(m, NULL, actors[i], k, out);
		}
		free(actors);
	}
	k->end(out);
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static json_t *jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *json_verification(const report_model *m)
{
	static const char *const starts[] = { "none", "seq1", "checkpoint", "elsewhere" };
	const audit_verify_result *v = &m->verify;
	json_t *o = json_object();

	json_object_set_new(o, "verified", json_boolean(m->verified));
	json_object_set_new(o, "records", json_integer((json_int_t)v->records));
	json_object_set_new(o, "first_seq", json_integer((json_int_t)v->first_seq));
	json_object_set_new(o, "last_seq", json_integer((json_int_t)v->last_seq));
	json_object_set_new(o, "head", v->head[0] ? json_string(v->head) : json_null());
	json_object_set_new(o, "start", json_string(starts[v->start]));
	json_object_set_new(o, "checkpoints", json_integer((json_int_t)v->checkpoints));
	json_object_set_new(o, "checkpoints_verified", json_boolean(m->key_given && v->checkpoints > 0));
	if (!m->verified) {
		json_object_set_new(o, "file", jstr_or_null(v->bad_file));
		json_object_set_new(o, "line", json_integer((json_int_t)v->bad_line));
		json_object_set_new(o, "error", json_string(v->why));
	}
	return o;
}

static json_t *json_counts(const report_model *m, const char *section)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < m->n_counts; i++) {
		const report_count *c = &m->counts[i];

		if (section ? !c->section || strcmp(c->section, section) : c->section != NULL)
			continue;
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:I, s:o}", "actor", c->actor, "target", c->target,
						   "kind", c->kind, "statements", (json_int_t)c->statements, "rows",
						   c->has_rows ? json_integer((json_int_t)c->rows) : json_null()));
	}
	return a;
}

static json_t *json_refusals(const report_model *m, const char *section)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < m->n_refusals; i++) {
		const report_refusal *r = &m->refusals[i];

		if (section ? !r->section || strcmp(r->section, section) : r->section != NULL)
			continue;
		json_array_append_new(a, json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "seq", (json_int_t)r->seq,
						   "ts", jstr_or_null(r->ts), "actor", jstr_or_null(r->actor), "target",
						   jstr_or_null(r->target), "rule", jstr_or_null(r->rule), "reason",
						   jstr_or_null(r->reason), "sql", jstr_or_null(r->sql)));
	}
	return a;
}

static json_t *json_configs(const report_model *m)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < m->n_configs; i++) {
		const report_config *c = &m->configs[i];

		json_array_append_new(a, json_pack("{s:I, s:o, s:o, s:o, s:o, s:o}", "seq", (json_int_t)c->seq, "ts",
						   jstr_or_null(c->ts), "event", jstr_or_null(c->event), "accepted",
						   c->accepted < 0 ? json_null() : json_boolean(c->accepted), "config",
						   jstr_or_null(c->config), "error", jstr_or_null(c->error)));
	}
	return a;
}

static void render_json(const report_model *m, FILE *out)
{
	json_t *root = json_object(), *wins = json_array(), *w, *op;
	size_t i, j;

	json_object_set_new(root, "chain", json_verification(m));
	json_object_set_new(root, "records", json_integer((json_int_t)m->records));
	json_object_set_new(root, "first_ts", jstr_or_null(m->first_ts));
	json_object_set_new(root, "last_ts", jstr_or_null(m->last_ts));
	for (i = 0; i < m->n_windows; i++) {
		const report_window *rw = &m->windows[i];

		if (!window_shown(m, rw))
			continue;
		op = json_array();
		for (j = 0; j < rw->n_open; j++)
			json_array_append_new(op, json_pack("{s:o, s:o}", "open", jstr_or_null(rw->opened[j]), "close",
							    jstr_or_null(rw->closed[j])));
		w = json_pack("{s:s, s:O, s:o, s:o, s:o, s:o}", "name", rw->name, "approval",
			      rw->approval ? rw->approval : json_null(), "approvals",
			      rw->history ? json_incref(rw->history) : json_array(), "openings", op, "writes",
			      json_counts(m, rw->name), "refused", json_refusals(m, rw->name));
		json_array_append_new(wins, w);
	}
	json_object_set_new(root, "windows", wins);
	json_object_set_new(root, "configuration", json_configs(m));
	if (m->filter->window == NULL)
		json_object_set_new(
			root, "outside",
			json_pack("{s:o, s:o}", "writes", json_counts(m, NULL), "refused", json_refusals(m, NULL)));
	json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
	json_decref(root);
}

void report_render(const report_model *m, report_format fmt, FILE *out)
{
	if (fmt == REPORT_JSON)
		render_json(m, out);
	else
		page(m, fmt == REPORT_HTML ? &html_skin : &text_skin, out);
}
