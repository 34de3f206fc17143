/*
 * pktbuf.h - building outgoing protocol messages in a growable buffer.
 *
 * Fields are appended without per-call error checks: an allocation failure
 * sets a sticky 'failed' flag and later calls do nothing, so the caller checks
 * once, at the end (the PgBouncer PktBuf / pqcomm habit).
 */
#ifndef PGW_PKTBUF_H
#define PGW_PKTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pktbuf {
	uint8_t *data;    /* the bytes built so far */
	size_t len;       /* bytes used */
	size_t cap;       /* bytes allocated */
	size_t msg_start; /* offset of the length word of the message being built */
	bool failed;      /* sticky: an allocation failed, the content is unusable */
} pktbuf;

void pktbuf_init(pktbuf *b);
void pktbuf_free(pktbuf *b);
/* Forget the content, keep the allocation. */
void pktbuf_reset(pktbuf *b);

/* Start a message of 'type' (a protocol type byte), or an untyped one if type is 0. */
void pkt_begin(pktbuf *b, char type);
/* Patch the length word of the message started by pkt_begin. */
void pkt_end(pktbuf *b);

void pkt_put_u8(pktbuf *b, uint8_t v);
void pkt_put_u16(pktbuf *b, uint16_t v); /* network byte order */
void pkt_put_u32(pktbuf *b, uint32_t v); /* network byte order */
void pkt_put_bytes(pktbuf *b, const void *p, size_t n);
void pkt_put_cstr(pktbuf *b, const char *s); /* with its terminating NUL */

/* Whole messages the proxy itself sends to clients. */

/* ErrorResponse ('E') or, with fatal, severity FATAL. detail/hint may be NULL. */
void pkt_error(pktbuf *b, const char *severity, const char *sqlstate, const char *message, const char *detail,
	       const char *hint);
/* AuthenticationXXX ('R') with a 4-byte code and optional payload. */
void pkt_auth(pktbuf *b, uint32_t code, const void *payload, size_t n);
void pkt_parameter_status(pktbuf *b, const char *name, const char *value);
void pkt_ready_for_query(pktbuf *b, char status);

#endif
