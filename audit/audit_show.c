/* audit_show.c - `pgwarden audit show`: filter audit records, print them as aligned columns or raw JSON. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/core/arr.h"
#include "audit/audit_int.h"
#include "conf/rfc3339.h"
#include "conf/core/json_writer.h"

/* Column widths of the human-readable form; the statement takes what is left. */
#define COL_SEQ 7      /* seq: seven digits before the column shifts */
#define COL_TIME 27    /* 2026-11-22T01:02:03.123456Z */
#define COL_SESSION 16 /* session ids are the start second << 20 plus a counter: 16 digits */
#define COL_ACTOR 16
#define COL_TARGET 10
#define COL_WINDOW 10
#define COL_DECISION 8
#define COL_RULE 24
#define COL_RESULT 20 /* the statement's result: "INSERT 0 1 1.2ms" */
#define N_FIXED_COLS 9
#define COL_STMT_MIN 20 /* the statement column never gets narrower than this */
#define COL_STMT_MAX 2000
#define COL_STMT_WIDE (1 << 30) /* --wide: never shortened */

/* What the printing pass keeps: the results to fold in, the statements whose result was folded. */
typedef struct show_state {
	audit_result_index results; /* every result of the files, by ref */
	uint64_t *shown;            /* seqs of statements printed with their result, ascending */
	size_t n_shown;             /* how many */
	size_t cap_shown;           /* allocated */
} show_state;

/* --- times ----------------------------------------------------------------------------------- */

int audit_parse_rfc3339(const char *s, int64_t *us_out)
{
	return rfc3339_parse(s, us_out) ? 0 : -1;
}

int audit_parse_when(const char *s, int64_t *us_out)
{
	struct timespec now;
	int64_t n = 0, unit;
	const char *p = s;

	if (audit_parse_rfc3339(s, us_out) == 0)
		return 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > 1000000000)
			return -1;
		n = n * 10 + (*p - '0');
	}
	if (p == s || p[0] == '\0' || p[1] != '\0')
		return -1;
	switch (*p) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	*us_out = ((int64_t)now.tv_sec - n * unit) * 1000000 + now.tv_nsec / 1000;
	return 0;
}

/* --- safe cells ----------------------------------------------------------------------------- */

/* Code points a terminal would act on rather than show: C0, DEL, C1, and bidi overrides/isolates. */
static bool unsafe_cp(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029;
}

static uint32_t decode_cp(const uint8_t *p, size_t k)
{
	if (k == 1)
		return p[0];
	if (k == 2)
		return (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
	if (k == 3)
		return (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
	return (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 | (uint32_t)(p[2] & 0x3f) << 6 |
	       (p[3] & 0x3f);
}

/*
 * Append s (len bytes) to b as one column of 'width' characters: whitespace
 * runs become one space, control and bidi characters are shown as \xNN or
 * \uNNNN, too long a value ends in "…", and 'pad' fills with spaces.
 * Width counts code points (wide CJK characters are not measured).
 */
static void put_cell(jbuf *b, const char *s, size_t len, int width, bool pad)
{
	const uint8_t *p = (const uint8_t *)s;
	char esc[12];
	int used = 0, elen, need;
	size_t i = 0, k;
	uint32_t cp;
	bool space = false;

	while (i < len) {
		k = utf8_seq_len(p + i, len - i);
		if (k == 0) {
			cp = 0xfffd; /* not from our writer; jansson only hands out valid UTF-8 */
			k = 1;
		} else {
			cp = decode_cp(p + i, k);
		}
		if (cp == ' ' || cp == '\n' || cp == '\t' || cp == '\r') {
			space = true;
			i += k;
			continue;
		}
		elen = 1;
		if (unsafe_cp(cp))
			elen = snprintf(esc, sizeof(esc), cp < 0x80 ? "\\x%02x" : "\\u%04x", (unsigned)cp);
		need = (space && used > 0) + elen;
		/* Keep one column for the ellipsis unless this is the last character and it fits. */
		if (used + need > width - 1 && (i + k < len || used + need > width))
			goto ellipsis;
		if (space && used > 0) {
			jbuf_putc(b, ' ');
			used++;
		}
		space = false;
		if (elen > 1 || cp == 0xfffd)
			jbuf_put(b, elen > 1 ? esc : "\xef\xbf\xbd", elen > 1 ? (size_t)elen : 3);
		else
			jbuf_put(b, p + i, k);
		used += elen;
		i += k;
	}
	goto out;
ellipsis:
	jbuf_put_lit(b, "\xe2\x80\xa6"); /* U+2026 HORIZONTAL ELLIPSIS */
	used++;
out:
	for (; pad && used < width; used++)
		jbuf_putc(b, ' ');
}

/* A string field of the record as (pointer, length); "-" when absent. */
static const char *field(json_t *rec, const char *key, size_t *len)
{
	json_t *v = json_object_get(rec, key);

	if (!json_is_string(v)) {
		*len = 1;
		return "-";
	}
	*len = json_string_length(v);
	return json_string_value(v);
}

/* For records without sql, a bracketed summary of the event goes in the statement column. */
static void event_summary(jbuf *t, json_t *rec)
{
	static const char *const keys[] = { "tag", "sqlstate", "client", "protocol", "window" };
	json_t *v;
	size_t i, len;
	const char *s;

	s = field(rec, "event", &len);
	jbuf_putc(t, '[');
	jbuf_put(t, s, len);
	if (json_is_integer(v = json_object_get(rec, "ref"))) {
		jbuf_put_lit(t, " ref=");
		jbuf_put_i64(t, json_integer_value(v));
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!json_is_string(v = json_object_get(rec, keys[i])))
			continue;
		jbuf_putc(t, ' ');
		jbuf_put(t, keys[i], strlen(keys[i]));
		jbuf_putc(t, '=');
		jbuf_put(t, json_string_value(v), json_string_length(v));
	}
	if (json_is_integer(v = json_object_get(rec, "duration_us"))) {
		jbuf_putc(t, ' ');
		jbuf_put_i64(t, json_integer_value(v));
		jbuf_put_lit(t, "us");
	}
	jbuf_putc(t, ']');
}

/* A column holding an integer field, or "-". */
static void put_int_cell(jbuf *b, json_t *rec, const char *key, int width)
{
	json_t *v = json_object_get(rec, key);
	char s[32];

	if (json_is_integer(v))
		snprintf(s, sizeof(s), "%lld", (long long)json_integer_value(v));
	else
		snprintf(s, sizeof(s), "-");
	put_cell(b, s, strlen(s), width, true);
	jbuf_put_lit(b, "  ");
}

/* One human-readable line for a record; 'result' is its statement's result summary, or NULL. */
static void format_record(jbuf *b, json_t *rec, int stmt_width, const char *result)
{
	static const struct {
		const char *key;
		int width;
	} cols[] = {
		{ "actor", COL_ACTOR },       { "target", COL_TARGET }, { "window", COL_WINDOW },
		{ "decision", COL_DECISION }, { "rule", COL_RULE },
	};
	jbuf tmp;
	const char *s;
	size_t i, len;

	put_int_cell(b, rec, "seq", COL_SEQ);
	s = field(rec, "ts", &len);
	put_cell(b, s, len, COL_TIME, true);
	jbuf_put_lit(b, "  ");
	put_int_cell(b, rec, "session", COL_SESSION);
	for (i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		s = field(rec, cols[i].key, &len);
		put_cell(b, s, len, cols[i].width, true);
		jbuf_put_lit(b, "  ");
	}
	put_cell(b, result ? result : "-", result ? strlen(result) : 1, COL_RESULT, true);
	jbuf_put_lit(b, "  ");
	if (json_is_string(json_object_get(rec, "sql"))) {
		s = field(rec, "sql", &len);
		put_cell(b, s, len, stmt_width, false);
	} else {
		jbuf_init(&tmp);
		event_summary(&tmp, rec);
		put_cell(b, tmp.data, tmp.failed ? 0 : tmp.len, stmt_width, false);
		jbuf_free(&tmp);
	}
	jbuf_putc(b, '\n');
}

static void print_header(FILE *out)
{
	fprintf(out, "%-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", COL_SEQ, "SEQ", COL_TIME, "TIME",
		COL_SESSION, "SESSION", COL_ACTOR, "ACTOR", COL_TARGET, "TARGET", COL_WINDOW, "WINDOW", COL_DECISION,
		"DECISION", COL_RULE, "RULE", COL_RESULT, "RESULT", "STATEMENT");
}

/* --- filtering ------------------------------------------------------------------------------ */

static bool str_is(json_t *rec, const char *key, const char *want)
{
	json_t *v = json_object_get(rec, key);

	return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

static bool matches(json_t *rec, const audit_show_filter *f)
{
	json_t *ts;
	int64_t us;

	if (f->actor != NULL && !str_is(rec, "actor", f->actor))
		return false;
	if (f->decision != NULL && !str_is(rec, "decision", f->decision))
		return false;
	if ((f->target && !str_is(rec, "target", f->target)) || (f->window && !str_is(rec, "window", f->window)) ||
	    (f->event && !str_is(rec, "event", f->event)) || (f->rule && !str_is(rec, "rule", f->rule)))
		return false;
	if (f->has_session) {
		json_t *sv = json_object_get(rec, "session");

		if (!json_is_integer(sv) || (uint64_t)json_integer_value(sv) != f->session)
			return false;
	}
	if (!f->has_since && !f->has_until)
		return true;
	ts = json_object_get(rec, "ts");
	if (!json_is_string(ts) || audit_parse_rfc3339(json_string_value(ts), &us) < 0)
		return false;
	return (!f->has_since || us >= f->since_us) && (!f->has_until || us < f->until_us);
}

static int stmt_width_for(const audit_show_filter *f)
{
	int w = f->width - (COL_SEQ + COL_TIME + COL_SESSION + COL_ACTOR + COL_TARGET + COL_WINDOW + COL_DECISION +
			    COL_RULE + COL_RESULT + N_FIXED_COLS * 2);

	if (f->wide)
		return COL_STMT_WIDE;
	if (w < COL_STMT_MIN)
		w = COL_STMT_MIN;
	return w > COL_STMT_MAX ? COL_STMT_MAX : w;
}

/* A statement printed with its result: remember it, so the result is not printed again. */
static void mark_shown(show_state *st, uint64_t seq)
{
	if (!ARR_RESERVE(st->shown, st->cap_shown, st->n_shown + 1, 64))
		return;
	st->shown[st->n_shown++] = seq;
}

static bool was_shown(const show_state *st, uint64_t seq)
{
	size_t lo = 0, hi = st->n_shown;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st->shown[mid] == seq)
			return true;
		if (st->shown[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static uint64_t int_field(json_t *rec, const char *key)
{
	json_t *v = json_object_get(rec, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

/*
 * A record in the human-readable form. A statement carries its result in
 * the RESULT column; that result record is then not printed on its own.
 */
static void print_human(json_t *rec, const audit_show_filter *f, show_state *st, FILE *out, jbuf *b)
{
	const char *result = NULL;
	uint64_t seq = int_field(rec, "seq");

	if (str_is(rec, "event", "result") && was_shown(st, int_field(rec, "ref")))
		return;
	if (str_is(rec, "event", "statement") && (result = audit_result_index_find(&st->results, seq)) != NULL &&
	    (st->n_shown == 0 || st->shown[st->n_shown - 1] < seq))
		mark_shown(st, seq);
	jbuf_reset(b);
	format_record(b, rec, stmt_width_for(f), result);
	if (!b->failed)
		fwrite(b->data, 1, b->len, out);
}

static int show_file(const char *file, const audit_show_filter *f, FILE *out, FILE *errout, jbuf *b, show_state *st)
{
	FILE *in;
	char *line = NULL;
	size_t cap = 0, len;
	ssize_t n;
	uint64_t lineno = 0;
	json_t *rec;
	json_error_t jerr;

	in = fopen(file, "r");
	if (in == NULL) {
		fprintf(errout, "%s: cannot open: %s\n", file, strerror(errno));
		return 1;
	}
	while ((n = getline(&line, &cap, in)) > 0) {
		lineno++;
		len = line[n - 1] == '\n' ? (size_t)n - 1 : (size_t)n;
		rec = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
		if (!json_is_object(rec)) {
			fprintf(errout, "%s:%llu: not an audit record, skipped\n", file, (unsigned long long)lineno);
		} else if (matches(rec, f)) {
			if (f->json) {
				fwrite(line, 1, len, out);
				fputc('\n', out);
			} else {
				print_human(rec, f, st, out, b);
			}
		}
		json_decref(rec);
	}
	free(line);
	fclose(in);
	return 0;
}

int audit_show_files(const char *const *files, size_t n, const audit_show_filter *f, FILE *out, FILE *errout)
{
	show_state st;
	jbuf b;
	size_t i;
	int rc = 0;

	memset(&st, 0, sizeof(st));
	jbuf_init(&b);
	if (!f->json) {
		audit_result_index_load(&st.results, files, n);
		print_header(out);
	}
	for (i = 0; i < n; i++)
		if (show_file(files[i], f, out, errout, &b, &st) != 0)
			rc = 1;
	jbuf_free(&b);
	audit_result_index_free(&st.results);
	free(st.shown);
	return rc;
}
