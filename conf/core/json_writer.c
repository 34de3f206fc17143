/* json_writer.c - JSON text into a growable buffer; the escaper that makes any bytes valid JSON. */
#include "conf/core/json_writer.h"

#include <stdlib.h>
#include <string.h>

static const char hexdigits[] = "0123456789abcdef";

/*
 * plain[c] is 1 for bytes copied verbatim inside a JSON string: printable
 * ASCII except '"' and '\'. Everything else takes the slow path.
 */
static const uint8_t plain[256] = {
	['\x20'] = 1, ['\x21'] = 1, ['\x23'] = 1, ['\x24'] = 1, ['\x25'] = 1, ['\x26'] = 1, ['\x27'] = 1, ['\x28'] = 1,
	['\x29'] = 1, ['\x2a'] = 1, ['\x2b'] = 1, ['\x2c'] = 1, ['\x2d'] = 1, ['\x2e'] = 1, ['\x2f'] = 1, ['0'] = 1,
	['1'] = 1,    ['2'] = 1,    ['3'] = 1,    ['4'] = 1,    ['5'] = 1,    ['6'] = 1,    ['7'] = 1,    ['8'] = 1,
	['9'] = 1,    [':'] = 1,    [';'] = 1,    ['<'] = 1,    ['='] = 1,    ['>'] = 1,    ['?'] = 1,    ['@'] = 1,
	['A'] = 1,    ['B'] = 1,    ['C'] = 1,    ['D'] = 1,    ['E'] = 1,    ['F'] = 1,    ['G'] = 1,    ['H'] = 1,
	['I'] = 1,    ['J'] = 1,    ['K'] = 1,    ['L'] = 1,    ['M'] = 1,    ['N'] = 1,    ['O'] = 1,    ['P'] = 1,
	['Q'] = 1,    ['R'] = 1,    ['S'] = 1,    ['T'] = 1,    ['U'] = 1,    ['V'] = 1,    ['W'] = 1,    ['X'] = 1,
	['Y'] = 1,    ['Z'] = 1,    ['['] = 1,    [']'] = 1,    ['^'] = 1,    ['_'] = 1,    ['`'] = 1,    ['a'] = 1,
	['b'] = 1,    ['c'] = 1,    ['d'] = 1,    ['e'] = 1,    ['f'] = 1,    ['g'] = 1,    ['h'] = 1,    ['i'] = 1,
	['j'] = 1,    ['k'] = 1,    ['l'] = 1,    ['m'] = 1,    ['n'] = 1,    ['o'] = 1,    ['p'] = 1,    ['q'] = 1,
	['r'] = 1,    ['s'] = 1,    ['t'] = 1,    ['u'] = 1,    ['v'] = 1,    ['w'] = 1,    ['x'] = 1,    ['y'] = 1,
	['z'] = 1,    ['{'] = 1,    ['|'] = 1,    ['}'] = 1,    ['~'] = 1,
};

void jbuf_init(jbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void jbuf_free(jbuf *b)
{
	free(b->data);
	jbuf_init(b);
}

void jbuf_reset(jbuf *b)
{
	b->len = 0;
	b->failed = false;
}

bool jbuf_grow(jbuf *b, size_t n)
{
	size_t want, ncap;
	char *nd;

	if (b->failed)
		return false;
	if (b->cap - b->len >= n)
		return true;
	if (n > SIZE_MAX / 2 - b->len)
		goto fail;
	want = b->len + n;
	ncap = b->cap ? b->cap : 512;
	while (ncap < want)
		ncap *= 2;
	nd = realloc(b->data, ncap);
	if (nd == NULL)
		goto fail;
	b->data = nd;
	b->cap = ncap;
	return true;
fail:
	b->failed = true;
	return false;
}

/*
 * The digits go straight to their place in the buffer: building them in a
 * local array and copying it made memcpy load what byte stores had just
 * written, a store-forwarding stall on every seq, ref and duration.
 */
void jbuf_put_u64(jbuf *b, uint64_t v)
{
	uint64_t t = v;
	size_t n = 0;
	char *o;

	do {
		n++;
		t /= 10;
	} while (t != 0);
	if (!jbuf_reserve(b, n))
		return;
	o = b->data + b->len + n;
	do {
		*--o = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	b->len += n;
}

void jbuf_put_i64(jbuf *b, int64_t v)
{
	if (v < 0) {
		jbuf_putc(b, '-');
		/* Negate in unsigned arithmetic: -INT64_MIN overflows int64_t. */
		jbuf_put_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		jbuf_put_u64(b, (uint64_t)v);
	}
}

void jbuf_put_hex(jbuf *b, const void *p, size_t n)
{
	const uint8_t *s = p;
	char *o;
	size_t i;

	if (n == 0 || n > SIZE_MAX / 2 || !jbuf_reserve(b, 2 * n))
		return;
	o = b->data + b->len;
	for (i = 0; i < n; i++) {
		*o++ = hexdigits[s[i] >> 4];
		*o++ = hexdigits[s[i] & 15];
	}
	b->len += 2 * n;
}

size_t utf8_seq_len(const uint8_t *p, size_t avail)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0; /* continuation byte, overlong lead C0/C1, or F5-FF */
	/* RFC 3629 table: the second byte's range is narrower after these leads. */
	if (c == 0xe0)
		lo = 0xa0; /* overlong 3-byte */
	else if (c == 0xed)
		hi = 0x9f; /* UTF-16 surrogates U+D800-DFFF */
	else if (c == 0xf0)
		lo = 0x90; /* overlong 4-byte */
	else if (c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* One byte that needs an escape: a short form where JSON has one, else \u00XX. */
static void put_escaped_byte(jbuf *b, uint8_t c)
{
	char e[6] = { '\\', 'u', '0', '0', hexdigits[c >> 4], hexdigits[c & 15] };

	switch (c) {
	case '"':
		jbuf_put_lit(b, "\\\"");
		return;
	case '\\':
		jbuf_put_lit(b, "\\\\");
		return;
	case '\b':
		jbuf_put_lit(b, "\\b");
		return;
	case '\f':
		jbuf_put_lit(b, "\\f");
		return;
	case '\n':
		jbuf_put_lit(b, "\\n");
		return;
	case '\r':
		jbuf_put_lit(b, "\\r");
		return;
	case '\t':
		jbuf_put_lit(b, "\\t");
		return;
	default:
		jbuf_put(b, e, sizeof(e));
		return;
	}
}

/*
 * Well-formed characters that are still escaped, so that `cat audit.jsonl`
 * cannot drive a terminal or hide text: C1 controls U+0080-U+009F (C2 80..9F),
 * and U+200E/200F, U+2028/2029, U+202A-202E, U+2066-2069 (line separators and
 * bidi overrides, the "Trojan Source" characters).
 */
static bool is_terminal_control(const uint8_t *p, size_t k)
{
	if (k == 2)
		return p[0] == 0xc2 && p[1] < 0xa0;
	if (k != 3 || p[0] != 0xe2)
		return false;
	if (p[1] == 0x80)
		return p[2] == 0x8e || p[2] == 0x8f || (p[2] >= 0xa8 && p[2] <= 0xae);
	return p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9;
}

/* \uXXXX of the 2- or 3-byte character at p (a BMP code point). */
static void put_escaped_cp(jbuf *b, const uint8_t *p, size_t k)
{
	unsigned cp = k == 2 ? (unsigned)(p[0] & 0x1f) << 6 | (p[1] & 0x3f)
			     : (unsigned)(p[0] & 0x0f) << 12 | (unsigned)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
	char e[6] = {
		'\\', 'u', hexdigits[cp >> 12], hexdigits[(cp >> 8) & 15], hexdigits[(cp >> 4) & 15], hexdigits[cp & 15]
	};

	jbuf_put(b, e, sizeof(e));
}

void json_put_escaped(jbuf *b, const void *s, size_t n)
{
	const uint8_t *p = s;
	size_t i = 0, run, k;

	while (i < n && !b->failed) {
		/* Fast path: copy a run of plain ASCII in one go. */
		for (run = i; run < n && plain[p[run]]; run++)
			;
		if (run > i) {
			jbuf_put(b, p + i, run - i);
			i = run;
			continue;
		}
		if (p[i] < 0x80) {
			put_escaped_byte(b, p[i]);
			i++;
			continue;
		}
		k = utf8_seq_len(p + i, n - i);
		if (k > 0 && is_terminal_control(p + i, k)) {
			put_escaped_cp(b, p + i, k);
			i += k;
		} else if (k > 0) {
			jbuf_put(b, p + i, k);
			i += k;
		} else {
			put_escaped_byte(b, p[i]); /* invalid UTF-8: \u00XX of this one byte */
			i++;
		}
	}
}

void json_put_string(jbuf *b, const void *s, size_t n)
{
	jbuf_putc(b, '"');
	json_put_escaped(b, s, n);
	jbuf_putc(b, '"');
}

void json_put_cstr(jbuf *b, const char *s)
{
	json_put_string(b, s, strlen(s));
}
