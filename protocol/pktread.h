/*
 * pktread.h - a bounded cursor over one received message body.
 *
 * Every read checks the remaining length; the first short read sets 'bad'
 * and all later reads fail too, so a parser reads all fields and checks
 * once. pktread_done() also demands the body was used exactly (libpq's
 * "message contents do not agree with length" check).
 */
#ifndef PGW_PKTREAD_H
#define PGW_PKTREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pktread {
	const uint8_t *p; /* body start */
	size_t len;       /* body length */
	size_t pos;       /* next unread byte */
	bool bad;         /* sticky: a read ran past the end or a string had no NUL */
} pktread;

static inline void pktread_init(pktread *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->pos = 0;
	r->bad = false;
}

bool rd_u8(pktread *r, uint8_t *v);
bool rd_u16(pktread *r, uint16_t *v);
bool rd_u32(pktread *r, uint32_t *v);
bool rd_i32(pktread *r, int32_t *v);
bool rd_i16(pktread *r, int16_t *v);
/* A NUL-terminated string inside the body; *s points into the body. */
bool rd_cstr(pktread *r, const char **s, size_t *slen);
/* n raw bytes; *p points into the body. */
bool rd_bytes(pktread *r, size_t n, const uint8_t **p);
/* True when nothing went wrong and every byte was consumed. */
static inline bool pktread_done(const pktread *r)
{
	return !r->bad && r->pos == r->len;
}

#endif
