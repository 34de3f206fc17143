/* classify_scan.c - libpg_query's scanner output (a ScanResult protobuf), decoded by hand into tokens. */
#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/core/arr.h"
#include "policy/classify_int.h"

/*
 * Why by hand: ScanResult is two tiny messages of varints (pg_query.proto:
 * ScanResult{1 version, 2 repeated ScanToken}, ScanToken{1 start, 2 end,
 * 4 token, 5 keyword_kind}); a bounded varint reader is 60 lines and avoids
 * protobuf-c's per-token allocations on the hot path (every statement).
 */

typedef struct pb_cursor {
	const uint8_t *p, *end;
} pb_cursor;

/* Read a varint; false on truncation or overlong encoding. */
static bool pb_varint(pb_cursor *c, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (c->p >= c->end)
			return false;
		b = *c->p++;
		*v |= (uint64_t)(b & 0x7F) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* Skip a field of the given wire type; false if malformed. */
static bool pb_skip(pb_cursor *c, unsigned wt)
{
	uint64_t v;

	switch (wt) {
	case 0:
		return pb_varint(c, &v);
	case 1:
		if (c->end - c->p < 8)
			return false;
		c->p += 8;
		return true;
	case 2:
		if (!pb_varint(c, &v) || v > (uint64_t)(c->end - c->p))
			return false;
		c->p += v;
		return true;
	case 5:
		if (c->end - c->p < 4)
			return false;
		c->p += 4;
		return true;
	default:
		return false;
	}
}

static bool decode_token(pb_cursor *c, pc_token *t)
{
	*t = (pc_token){ 0 };
	while (c->p < c->end) {
		uint64_t tag, v;

		if (!pb_varint(c, &tag))
			return false;
		if ((tag & 7) != 0) {
			if (!pb_skip(c, (unsigned)(tag & 7)))
				return false;
			continue;
		}
		if (!pb_varint(c, &v))
			return false;
		switch (tag >> 3) {
		case 1:
			t->start = (uint32_t)v;
			break;
		case 2:
			t->end = (uint32_t)v;
			break;
		case 4:
			t->token = (uint32_t)v;
			break;
		case 5:
			t->kw = (uint32_t)v;
			break;
		default:
			break;
		}
	}
	return t->end >= t->start;
}

static int push(pc_scan *s, const pc_token *t)
{
	if (s->n == s->cap && !ARR_RESERVE(s->v, s->cap, s->n + 1, 256))
		return -1;
	s->v[s->n++] = *t;
	return 0;
}

/*
 * libpg_query 15-4.0.0 reports U&"..." (UIDENT) and U&'...' (USCONST) tokens
 * with end = start + 1 or less. Find the real end: the closing quote that is
 * not doubled. (U& literals exist only with standard_conforming_strings on,
 * where backslash does not escape a quote.)
 */
static void fix_unicode_extent(pc_token *t, const char *text, size_t textlen)
{
	size_t i = (size_t)t->start + 2;
	char q;

	if (i >= textlen)
		return;
	q = text[i++];
	while (i < textlen) {
		if (text[i] == q) {
			if (i + 1 < textlen && text[i + 1] == q) {
				i += 2;
				continue;
			}
			t->end = (uint32_t)(i + 1);
			return;
		}
		i++;
	}
	t->end = (uint32_t)textlen;
}

static int decode_scan(pc_scan *s, const uint8_t *buf, size_t len, const char *text, size_t textlen)
{
	pb_cursor c = { buf, buf + len };

	while (c.p < c.end) {
		uint64_t tag, l;
		pc_token t;
		pb_cursor sub;

		if (!pb_varint(&c, &tag))
			return -2;
		if (tag != ((2 << 3) | 2)) {
			if (!pb_skip(&c, (unsigned)(tag & 7)))
				return -2;
			continue;
		}
		if (!pb_varint(&c, &l) || l > (uint64_t)(c.end - c.p))
			return -2;
		sub = (pb_cursor){ c.p, c.p + l };
		c.p += l;
		if (!decode_token(&sub, &t) || t.end > textlen)
			return -2;
		if (t.token == TK_SQL_COMMENT || t.token == TK_C_COMMENT)
			continue; /* the grammar never sees comments */
		if (t.token == TK_UIDENT || t.token == TK_USCONST)
			fix_unicode_extent(&t, text, textlen);
		if (push(s, &t) < 0)
			return -1;
	}
	return 0;
}

int scan_text(pc_scan *s, const char *sql)
{
	PgQueryScanResult r = pg_query_scan(sql);
	int rc;

	s->n = 0;
	s->err[0] = '\0';
	s->err_pos = -1;
	if (r.error) {
		snprintf(s->err, sizeof(s->err), "%s", r.error->message ? r.error->message : "scanner error");
		s->err_pos = r.error->cursorpos;
		pg_query_free_scan_result(r);
		return -2;
	}
	rc = decode_scan(s, (const uint8_t *)r.pbuf.data, r.pbuf.len, sql, strlen(sql));
	if (rc == -2)
		snprintf(s->err, sizeof(s->err), "scanner output could not be read");
	pg_query_free_scan_result(r);
	return rc;
}

void scan_free(pc_scan *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

bool token_is_literal(uint32_t token)
{
	switch (token) {
	case TK_FCONST:
	case TK_SCONST:
	case TK_USCONST:
	case TK_BCONST:
	case TK_XCONST:
	case TK_ICONST:
		return true;
	default:
		return false;
	}
}

/*
 * PREPARE name [ ( type, ... ) ] AS body: the body starts at the token after
 * the first AS outside parentheses (gram.y, PrepareStmt; a type list holds no
 * AS at depth 0). Found with the real scanner, so quotes, comments and
 * dollar quoting cannot mislead it.
 */
bool policy_prepare_body(const char *sql, size_t len, size_t *offset)
{
	pc_scan s = { 0 };
	char *copy = malloc(len + 1);
	bool found = false;
	int depth = 0;

	if (!copy)
		return false;
	memcpy(copy, sql, len);
	copy[len] = '\0';
	if (strlen(copy) == len && scan_text(&s, copy) == 0 && s.n > 0 && s.v[0].end - s.v[0].start == 7 &&
	    strncasecmp(copy + s.v[0].start, "prepare", 7) == 0) {
		for (size_t i = 2; i + 1 < s.n && !found; i++) {
			const pc_token *t = &s.v[i];

			depth += t->token == '(' ? 1 : t->token == ')' ? -1 : 0;
			if (depth == 0 && t->kw != 0 && t->end - t->start == 2 &&
			    strncasecmp(copy + t->start, "as", 2) == 0) {
				*offset = s.v[i + 1].start;
				found = true;
			}
		}
	}
	scan_free(&s);
	free(copy);
	return found;
}
