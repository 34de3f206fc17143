/* pktbuf.c - growable outgoing message buffer with a sticky error flag. */
#include "protocol/pktbuf.h"

#include <stdlib.h>
#include <string.h>

void pktbuf_init(pktbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void pktbuf_free(pktbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void pktbuf_reset(pktbuf *b)
{
	b->len = 0;
	b->msg_start = 0;
	b->failed = false;
}

/* Make room for n more bytes; false (and sticky failure) if impossible. */
static bool reserve(pktbuf *b, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (b->failed)
		return false;
	if (n > SIZE_MAX / 2 - b->len) {
		b->failed = true;
		return false;
	}
	need = b->len + n;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void pkt_put_bytes(pktbuf *b, const void *p, size_t n)
{
	if (!reserve(b, n))
		return;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

void pkt_put_u8(pktbuf *b, uint8_t v)
{
	pkt_put_bytes(b, &v, 1);
}

void pkt_put_u16(pktbuf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	pkt_put_bytes(b, x, 2);
}

void pkt_put_u32(pktbuf *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	pkt_put_bytes(b, x, 4);
}

void pkt_put_cstr(pktbuf *b, const char *s)
{
	pkt_put_bytes(b, s, strlen(s) + 1);
}

void pkt_begin(pktbuf *b, char type)
{
	if (type)
		pkt_put_u8(b, (uint8_t)type);
	b->msg_start = b->len;
	pkt_put_u32(b, 0); /* patched by pkt_end */
}

void pkt_end(pktbuf *b)
{
	uint32_t n;

	if (b->failed)
		return;
	n = (uint32_t)(b->len - b->msg_start);
	b->data[b->msg_start] = (uint8_t)(n >> 24);
	b->data[b->msg_start + 1] = (uint8_t)(n >> 16);
	b->data[b->msg_start + 2] = (uint8_t)(n >> 8);
	b->data[b->msg_start + 3] = (uint8_t)n;
}

void pkt_error(pktbuf *b, const char *severity, const char *sqlstate, const char *message, const char *detail,
	       const char *hint)
{
	pkt_begin(b, 'E');
	pkt_put_u8(b, 'S');
	pkt_put_cstr(b, severity);
	pkt_put_u8(b, 'V'); /* non-localized severity, protocol 3.0 since 9.6 */
	pkt_put_cstr(b, severity);
	pkt_put_u8(b, 'C');
	pkt_put_cstr(b, sqlstate);
	pkt_put_u8(b, 'M');
	pkt_put_cstr(b, message);
	if (detail) {
		pkt_put_u8(b, 'D');
		pkt_put_cstr(b, detail);
	}
	if (hint) {
		pkt_put_u8(b, 'H');
		pkt_put_cstr(b, hint);
	}
	pkt_put_u8(b, 0);
	pkt_end(b);
}

void pkt_auth(pktbuf *b, uint32_t code, const void *payload, size_t n)
{
	pkt_begin(b, 'R');
	pkt_put_u32(b, code);
	pkt_put_bytes(b, payload, n);
	pkt_end(b);
}

void pkt_parameter_status(pktbuf *b, const char *name, const char *value)
{
	pkt_begin(b, 'S');
	pkt_put_cstr(b, name);
	pkt_put_cstr(b, value);
	pkt_end(b);
}

void pkt_ready_for_query(pktbuf *b, char status)
{
	pkt_begin(b, 'Z');
	pkt_put_u8(b, (uint8_t)status);
	pkt_end(b);
}
