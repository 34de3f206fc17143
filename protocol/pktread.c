/* pktread.c - bounded reads from a message body. */
#include "protocol/pktread.h"

#include <string.h>

bool rd_bytes(pktread *r, size_t n, const uint8_t **p)
{
	if (r->bad || n > r->len - r->pos) {
		r->bad = true;
		return false;
	}
	*p = r->p + r->pos;
	r->pos += n;
	return true;
}

bool rd_u8(pktread *r, uint8_t *v)
{
	const uint8_t *p;

	if (!rd_bytes(r, 1, &p))
		return false;
	*v = p[0];
	return true;
}

bool rd_u16(pktread *r, uint16_t *v)
{
	const uint8_t *p;

	if (!rd_bytes(r, 2, &p))
		return false;
	*v = (uint16_t)((p[0] << 8) | p[1]);
	return true;
}

bool rd_i16(pktread *r, int16_t *v)
{
	uint16_t u;

	if (!rd_u16(r, &u))
		return false;
	*v = (int16_t)u;
	return true;
}

bool rd_u32(pktread *r, uint32_t *v)
{
	const uint8_t *p;

	if (!rd_bytes(r, 4, &p))
		return false;
	*v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
	return true;
}

bool rd_i32(pktread *r, int32_t *v)
{
	uint32_t u;

	if (!rd_u32(r, &u))
		return false;
	*v = (int32_t)u;
	return true;
}

bool rd_cstr(pktread *r, const char **s, size_t *slen)
{
	const uint8_t *start, *nul;

	if (r->bad)
		return false;
	start = r->p + r->pos;
	nul = memchr(start, 0, r->len - r->pos);
	if (!nul) {
		r->bad = true;
		return false;
	}
	*s = (const char *)start;
	if (slen)
		*slen = (size_t)(nul - start);
	r->pos += (size_t)(nul - start) + 1;
	return true;
}
