/*
 * json_writer.h - appending JSON text to a growable buffer, with a string
 * escaper that turns any byte string into valid JSON.
 *
 * This is the audit log's hot path (one record per statement and per result),
 * so it is hand-written rather than built on a DOM library: no per-field
 * mallocs, runs of plain ASCII are copied with memcpy. Allocation failure sets
 * a sticky 'failed' flag and later calls do nothing; the caller checks once.
 *
 * Escaping (json_put_string):
 *   - '"' and '\' are backslash-escaped; \b \f \n \r \t use their short forms;
 *     every other byte 0x00-0x1f and 0x7f (DEL) is written as \u00XX.
 *   - Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above
 *     U+10FFFF) is copied as is, except characters a terminal acts on, written
 *     as \uXXXX so a raw `cat` of the log is safe: C1 controls U+0080-U+009F,
 *     U+200E/200F, U+2028/2029, bidi overrides U+202A-202E and U+2066-2069.
 *   - Every byte that is not part of a well-formed UTF-8 sequence is written as
 *     \u00XX of that byte, i.e. its Latin-1 reading. Nothing is lost (in the
 *     raw text \u0080-\u00ff only ever stands for such a byte), and text from
 *     a LATIN1 client reads correctly. jansson (JSON_ALLOW_NUL) parses it all.
 */
#ifndef PGW_JSON_WRITER_H
#define PGW_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct jbuf {
	char *data;  /* the text built so far, not NUL-terminated */
	size_t len;  /* bytes used */
	size_t cap;  /* bytes allocated */
	bool failed; /* sticky: an allocation failed, the content is unusable */
} jbuf;

void jbuf_init(jbuf *b);
void jbuf_free(jbuf *b);
/* Forget the content and the failure, keep the allocation. */
void jbuf_reset(jbuf *b);
/* jbuf_reserve's slow path: grow the allocation (or report the sticky failure). */
bool jbuf_grow(jbuf *b, size_t n);

/*
 * Make room for 'n' more bytes; false (and 'failed' set) if that cannot be done.
 * These three are inline: a record is some twenty short appends, mostly key
 * literals, and inlined the compiler copies a literal with a move or two
 * instead of a call into libc's memcpy.
 */
static inline bool jbuf_reserve(jbuf *b, size_t n)
{
	if (!b->failed && b->cap - b->len >= n)
		return true;
	return jbuf_grow(b, n);
}

static inline void jbuf_put(jbuf *b, const void *p, size_t n)
{
	if (n == 0 || !jbuf_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static inline void jbuf_putc(jbuf *b, char c)
{
	if (!jbuf_reserve(b, 1))
		return;
	b->data[b->len++] = c;
}
/* A string literal without strlen at run time. */
#define jbuf_put_lit(b, lit) jbuf_put((b), (lit), sizeof(lit) - 1)

/* Decimal integers. */
void jbuf_put_u64(jbuf *b, uint64_t v);
void jbuf_put_i64(jbuf *b, int64_t v);

/* 'n' bytes as lowercase hex, no quotes. */
void jbuf_put_hex(jbuf *b, const void *p, size_t n);

/* The escaped body of a JSON string (no quotes) for any bytes, per the rules above. */
void json_put_escaped(jbuf *b, const void *s, size_t n);
/* A quoted JSON string for any bytes. */
void json_put_string(jbuf *b, const void *s, size_t n);
/* A quoted JSON string for a NUL-terminated C string. */
void json_put_cstr(jbuf *b, const char *s);

/*
 * Length of the well-formed UTF-8 sequence starting at p (1-4), or 0 if the
 * bytes there are not one (including a sequence cut off by the end).
 */
size_t utf8_seq_len(const uint8_t *p, size_t avail);

#endif
