/* fastscan.c - PostgreSQL 15's core lexer (scan.l) for the common shape of SQL; anything else bails to pg_query_scan. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conf/core/arr.h"
#include "policy/fastscan.h"

/*
 * Why this exists: pg_query_scan runs the lexer twice and packs protobuf
 * (~19k instructions for pgbench's SELECT); a text that misses the
 * exact-text cache (pgbench -M simple: a new literal each time) needs only
 * its tokens for the literal-free cache key. The rules below are scan.l's
 * (PostgreSQL 15), restricted to what we are sure of; every other byte
 * sequence returns FAST_BAIL and the caller runs the real scanner. Proven
 * against pg_query_scan by tests/fuzz/fuzz_fastscan.c.
 *
 * Keywords: not a hand-typed table. libpg_query exports the server's own
 * keyword list (ScanKeywords, a ScanKeywordList from common/kwlookup.h) and
 * its lookup (ScanKeywordLookup, which the lexer itself calls); the token id
 * and keyword kind of each keyword come from running pg_query_scan on its
 * name once, so they are pg_query_scan's numbering by construction.
 */

/* ---- character classes (scan.l) ---- */

/* Bits of char_class[]: scan.l's character sets, ASCII only (non-ASCII bytes bail). */
enum {
	CL_SPACE = 1 << 0, /* {space}: [ \t\n\r\f] */
	CL_DIGIT = 1 << 1, /* [0-9] */
	CL_START = 1 << 2, /* {ident_start} without \200-\377 */
	CL_CONT = 1 << 3,  /* {ident_cont} without \200-\377 */
	CL_OP = 1 << 4,    /* {op_chars} */
	CL_SELF = 1 << 5,  /* {self} */
	CL_KEEP = 1 << 6,  /* op_chars that let an operator end in + or - */
	CL_HIGH = 1 << 7,  /* a non-ASCII byte */
};

static uint8_t char_class[256]; /* written once under kw_once (build_keywords), before kw_ready */

static void set_class(const char *chars, uint8_t bits)
{
	for (; *chars; chars++)
		char_class[(unsigned char)*chars] |= bits;
}

static void build_classes(void)
{
	static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";

	set_class(" \t\n\r\f", CL_SPACE);
	set_class("0123456789", CL_DIGIT | CL_CONT);
	set_class(letters, CL_START | CL_CONT);
	set_class("$", CL_CONT);
	set_class("~!@#^&|`?+-*/%<>=", CL_OP);
	set_class(",()[].;:+-*/%^<>=", CL_SELF);
	set_class("~!@#^&|`?%", CL_KEEP);
	for (int b = 0x80; b < 0x100; b++)
		char_class[b] |= CL_HIGH;
}

static inline bool has_class(char c, uint8_t bits)
{
	return (char_class[(unsigned char)c] & bits) != 0;
}

static inline bool is_space(char c)
{
	return has_class(c, CL_SPACE);
}

static inline bool is_digit(char c)
{
	return has_class(c, CL_DIGIT);
}

/* ---- keywords ---- */

/* common/kwlookup.h (PostgreSQL 12+), not in libpg_query's public header. */
typedef struct pg_kwlist {
	const char *kw_string;                       /* all keywords in order, separated by NUL */
	const uint16_t *kw_offsets;                  /* offset of each keyword in kw_string */
	int (*hash)(const void *key, size_t keylen); /* perfect hash of the list */
	int num_keywords;                            /* number of keywords */
	int max_kw_len;                              /* length of the longest keyword */
} pg_kwlist;
extern const pg_kwlist ScanKeywords;
extern int ScanKeywordLookup(const char *str, const pg_kwlist *keywords);

enum {
	FS_MAX_KEYWORDS = 1024,  /* sanity bound on ScanKeywords.num_keywords */
	FS_NAMEDATALEN = 64,     /* operators this long are a scanner error */
	TK_TYPECAST = 268,       /* :: */
	TK_DOT_DOT = 269,        /* .. */
	TK_EQUALS_GREATER = 271, /* => */
	TK_LESS_EQUALS = 272,    /* <= */
	TK_GREATER_EQUALS = 273, /* >= */
	TK_NOT_EQUALS = 274,     /* <> and != */
};

/* A keyword as pg_query_scan reports it. */
typedef struct fs_keyword {
	uint16_t token; /* Token enum value */
	uint8_t kind;   /* KeywordKind (1..4) */
} fs_keyword;

static fs_keyword kw_table[FS_MAX_KEYWORDS]; /* by ScanKeywords index; written once under kw_once */
static bool kw_ready;                        /* the table is complete and checked */
static pthread_once_t kw_once = PTHREAD_ONCE_INIT;

/* Scan one keyword's name with the real scanner: it must be exactly one keyword token. */
static bool learn_keyword(int i)
{
	const char *name = ScanKeywords.kw_string + ScanKeywords.kw_offsets[i];
	pc_scan s = { 0 };
	bool ok = false;

	/* scan_text: pg_query_scan, decoded as classify decodes it (one decoder, one numbering) */
	if (scan_text(&s, name) == 0 && s.n == 1 && s.v[0].kw >= 1 && s.v[0].kw <= 4 && s.v[0].start == 0 &&
	    s.v[0].end == strlen(name) && s.v[0].token <= UINT16_MAX) {
		kw_table[i] = (fs_keyword){ .token = (uint16_t)s.v[0].token, .kind = (uint8_t)s.v[0].kw };
		ok = ScanKeywordLookup(name, &ScanKeywords) == i;
	}
	scan_free(&s);
	return ok;
}

static void build_keywords(void)
{
	int n = ScanKeywords.num_keywords;

	build_classes();
	if (n <= 0 || n > FS_MAX_KEYWORDS || ScanKeywords.max_kw_len <= 0 || ScanKeywords.max_kw_len >= FS_NAMEDATALEN)
		return;
	for (int i = 0; i < n; i++)
		if (!learn_keyword(i))
			return;
	kw_ready = true;
}

bool fast_scan_init(void)
{
	pthread_once(&kw_once, build_keywords);
	return kw_ready;
}

/* ---- the scanner ---- */

/* Scanner state over one text. */
typedef struct fs_cursor {
	const char *t; /* the text */
	size_t len;    /* its length */
	size_t i;      /* current byte */
	pc_scan *s;    /* output */
} fs_cursor;

static char at(const fs_cursor *c, size_t i)
{
	return i < c->len ? c->t[i] : '\0';
}

static fast_scan_rc emit(fs_cursor *c, size_t start, size_t end, uint32_t token, uint32_t kw)
{
	pc_scan *s = c->s;

	if (s->n == s->cap && !ARR_RESERVE(s->v, s->cap, s->n + 1, 256))
		return FAST_NOMEM;
	s->v[s->n++] = (pc_token){ .start = (uint32_t)start, .end = (uint32_t)end, .token = token, .kw = kw };
	c->i = end;
	return FAST_SCANNED;
}

/*
 * Identifier or keyword. Why bail when a quote or '&' follows at once: e'..',
 * b'..', x'..', n'..' and u&'..'/u&".." are prefixed literals, one token in
 * scan.l, not an identifier followed by a string.
 */
static fast_scan_rc scan_word(fs_cursor *c)
{
	size_t st = c->i, e = st;
	char buf[FS_NAMEDATALEN];
	int kw;

	while (e < c->len && has_class(c->t[e], CL_CONT))
		e++;
	if (e < c->len && (c->t[e] == '\'' || c->t[e] == '&' || has_class(c->t[e], CL_HIGH)))
		return FAST_BAIL;
	if (e - st > (size_t)ScanKeywords.max_kw_len)
		return emit(c, st, e, TK_IDENT, 0);
	memcpy(buf, c->t + st, e - st);
	buf[e - st] = '\0';
	kw = ScanKeywordLookup(buf, &ScanKeywords); /* folds ASCII case itself, as the lexer does */
	if (kw < 0)
		return emit(c, st, e, TK_IDENT, 0);
	return emit(c, st, e, kw_table[kw].token, kw_table[kw].kind);
}

/* Digits from i; returns the first non-digit. */
static size_t skip_digits(const fs_cursor *c, size_t i)
{
	while (i < c->len && is_digit(c->t[i]))
		i++;
	return i;
}

/*
 * A number: {integer}, {decimal} or {real}. Bails on scan.l's fail and junk
 * rules ("1..", "1e", "1e+", "123abc", "1.2.3", ...): those either error out
 * or re-split the text, and are not application SQL.
 */
static fast_scan_rc scan_number(fs_cursor *c)
{
	size_t st = c->i, e = skip_digits(c, st);
	bool integer = true;

	if (at(c, e) == '.') {
		if (at(c, e + 1) == '.')
			return FAST_BAIL; /* decimalfail: "1.." is 1 then DOT_DOT */
		e = skip_digits(c, e + 1);
		integer = false;
	}
	if (at(c, e) == 'e' || at(c, e) == 'E') {
		size_t d = e + 1;

		if (at(c, d) == '+' || at(c, d) == '-')
			d++;
		if (!is_digit(at(c, d)))
			return FAST_BAIL; /* realfail / junk */
		e = skip_digits(c, d);
		integer = false;
	}
	if (e < c->len && (has_class(c->t[e], CL_CONT | CL_HIGH) || c->t[e] == '.'))
		return FAST_BAIL; /* trailing junk or a second '.' */
	if (integer) {
		/* process_integer_literal: ICONST only if it fits an int32, else FCONST */
		long v = 0;

		for (size_t k = st; k < e && v <= INT_MAX; k++)
			v = v * 10 + (c->t[k] - '0');
		return emit(c, st, e, v <= INT_MAX ? TK_ICONST : TK_FCONST, 0);
	}
	return emit(c, st, e, TK_FCONST, 0);
}

/* $n. A '$' not followed by a digit starts a dollar quote (or is odd): bail. */
static fast_scan_rc scan_param(fs_cursor *c)
{
	size_t st = c->i, e;

	if (!is_digit(at(c, st + 1)))
		return FAST_BAIL;
	e = skip_digits(c, st + 1);
	if (e < c->len && (has_class(c->t[e], CL_CONT | CL_HIGH) || c->t[e] == '.'))
		return FAST_BAIL; /* param_junk */
	return emit(c, st, e, TK_PARAM, 0);
}

/*
 * Why the lookahead after the closing quote: scan.l joins 'a' <newline> 'b'
 * into one string (SQL's continuation across a line break). We bail on it
 * rather than re-implement it.
 */
static bool continues(const fs_cursor *c, size_t i)
{
	bool newline = false;

	for (; i < c->len && is_space(c->t[i]); i++)
		newline |= c->t[i] == '\n' || c->t[i] == '\r';
	return newline && at(c, i) == '\'';
}

/* Body of a quoted token with doubled quotes; returns the end (past the close) or 0 to bail. */
static size_t quoted_end(const fs_cursor *c, char q)
{
	for (size_t i = c->i + 1; i < c->len; i++) {
		unsigned char b = (unsigned char)c->t[i];

		if (b == '\\' || b >= 0x80)
			return 0;
		if (c->t[i] != q)
			continue;
		if (at(c, i + 1) != q)
			return i + 1;
		i++;
	}
	return 0; /* unterminated: the real scanner reports it */
}

/* '...' with standard_conforming_strings on (off: backslash escapes; bail earlier). */
static fast_scan_rc scan_string(fs_cursor *c)
{
	size_t e = quoted_end(c, '\'');

	if (e == 0 || continues(c, e))
		return FAST_BAIL;
	return emit(c, c->i, e, TK_SCONST, 0);
}

/* "..." : an identifier, never a keyword; "" (zero-length) is an error: bail. */
static fast_scan_rc scan_quoted_ident(fs_cursor *c)
{
	size_t e = quoted_end(c, '"');

	if (e == 0 || e == c->i + 2)
		return FAST_BAIL;
	return emit(c, c->i, e, TK_IDENT, 0);
}

/* The fixed two-character operator tokens formed from op_chars. */
static uint32_t two_char_token(const char *p)
{
	if (p[0] == '=' && p[1] == '>')
		return TK_EQUALS_GREATER;
	if (p[0] == '<' && p[1] == '=')
		return TK_LESS_EQUALS;
	if (p[0] == '>' && p[1] == '=')
		return TK_GREATER_EQUALS;
	if ((p[0] == '<' && p[1] == '>') || (p[0] == '!' && p[1] == '='))
		return TK_NOT_EQUALS;
	return 0;
}

/*
 * {operator} = {op_chars}+, then scan.l's trims: a trailing + or - is cut
 * (repeatedly) unless the operator holds one of ~ ! @ # ^ & | ` ? %, so
 * "=-" lexes as '=' '-'. What remains as one self character or a fixed pair
 * gets that token, as the earlier rules would. A run holding "--" or slash-star
 * (a comment start) bails.
 */
static fast_scan_rc scan_operator(fs_cursor *c)
{
	size_t st = c->i, e = st, n;
	uint32_t tok;

	while (e < c->len && has_class(c->t[e], CL_OP)) {
		/*
		 * Why a cap: a trimmed run is scanned again from the cut, so a long
		 * run of "+-+-..." would cost quadratic time. Longer operators are
		 * a scanner error anyway ("operator too long").
		 */
		if (e - st + 1 >= FS_NAMEDATALEN)
			return FAST_BAIL;
		if (e > st && ((c->t[e - 1] == '-' && c->t[e] == '-') || (c->t[e - 1] == '/' && c->t[e] == '*')))
			return FAST_BAIL;
		e++;
	}
	n = e - st;
	if (n > 1 && (c->t[e - 1] == '+' || c->t[e - 1] == '-')) {
		bool keep = false;

		for (size_t k = st; k < e - 1; k++)
			keep |= has_class(c->t[k], CL_KEEP);
		while (!keep && n > 1 && (c->t[st + n - 1] == '+' || c->t[st + n - 1] == '-'))
			n--;
	}
	if (n == 1 && has_class(c->t[st], CL_SELF))
		return emit(c, st, st + 1, (uint32_t)(unsigned char)c->t[st], 0);
	if (n == 2 && (tok = two_char_token(c->t + st)) != 0)
		return emit(c, st, st + 2, tok, 0);
	if (n >= FS_NAMEDATALEN)
		return FAST_BAIL; /* "operator too long" */
	return emit(c, st, st + n, TK_OP, 0);
}

/* ':' '::' ':=' and '.' '..' '.5' */
static fast_scan_rc scan_colon_dot(fs_cursor *c)
{
	char ch = c->t[c->i], nx = at(c, c->i + 1);

	if (ch == ':' && nx == ':')
		return emit(c, c->i, c->i + 2, TK_TYPECAST, 0);
	if (ch == ':' && nx == '=')
		return emit(c, c->i, c->i + 2, TK_COLON_EQUALS, 0);
	if (ch == '.' && nx == '.')
		return emit(c, c->i, c->i + 2, TK_DOT_DOT, 0);
	if (ch == '.' && is_digit(nx))
		return scan_number(c);
	return emit(c, c->i, c->i + 1, (uint32_t)(unsigned char)ch, 0);
}

static fast_scan_rc scan_one(fs_cursor *c)
{
	char ch = c->t[c->i];

	if (has_class(ch, CL_START))
		return scan_word(c);
	if (is_digit(ch))
		return scan_number(c);
	if (ch == '\'')
		return scan_string(c);
	if (ch == '"')
		return scan_quoted_ident(c);
	if (ch == '$')
		return scan_param(c);
	if (ch == ':' || ch == '.')
		return scan_colon_dot(c);
	if (has_class(ch, CL_OP))
		return scan_operator(c);
	if (has_class(ch, CL_SELF)) /* , ( ) [ ] ; (':' and '.' were taken above) */
		return emit(c, c->i, c->i + 1, (uint32_t)(unsigned char)ch, 0);
	return FAST_BAIL; /* non-ASCII, backslash, braces, control bytes, ... */
}

fast_scan_rc fast_scan(pc_scan *s, const char *text, size_t len, bool scs)
{
	fs_cursor c = { .t = text, .len = len, .i = 0, .s = s };

	s->n = 0;
	s->err[0] = '\0';
	s->err_pos = -1;
	if (!scs || len >= UINT32_MAX || !fast_scan_init())
		return FAST_BAIL;
	while (c.i < len) {
		fast_scan_rc rc;

		if (is_space(text[c.i])) {
			c.i++;
			continue;
		}
		if ((rc = scan_one(&c)) != FAST_SCANNED) {
			s->n = 0;
			return rc;
		}
	}
	return FAST_SCANNED;
}
