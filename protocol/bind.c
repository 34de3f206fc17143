/* bind.c - reading the parameter section of a Bind message. */
#include "protocol/bind.h"

#include "protocol/pktread.h"

/*
 * The Bind parameter section: int16 format count, formats, int16 value
 * count, then (int32 length, bytes) per value. Values are read into 'out'
 * (pointers into the stored section); returns how many, or -1 if malformed.
 */
int bind_read_params(const uint8_t *p, size_t len, bind_param *out, int max)
{
	pktread r;
	uint16_t nfmt, nval;
	int16_t fmt = 0;
	const uint8_t *fmts = NULL, *val;
	int32_t vlen;
	int i;

	/* Counts are unsigned 16-bit (PostgreSQL reads them so: up to 65535 parameters). */
	pktread_init(&r, p, len);
	if (!rd_u16(&r, &nfmt) || !rd_bytes(&r, 2 * (size_t)nfmt, &fmts) || !rd_u16(&r, &nval))
		return -1;
	for (i = 0; i < nval; i++) {
		if (!rd_i32(&r, &vlen) || (vlen >= 0 && !rd_bytes(&r, (size_t)vlen, &val)))
			return -1;
		if (nfmt == 1)
			fmt = (int16_t)((fmts[0] << 8) | fmts[1]);
		else if (nfmt > i)
			fmt = (int16_t)((fmts[2 * i] << 8) | fmts[2 * i + 1]);
		if (i < max) {
			out[i].value = vlen >= 0 ? val : NULL;
			out[i].len = vlen >= 0 ? vlen : -1;
			out[i].format = fmt;
		}
	}
	return nval < max ? nval : max;
}
