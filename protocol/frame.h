/*
 * frame.h - message framing: where a message starts and how long it is.
 *
 * Framing knows only lengths. It looks at the 5-byte header (type byte and
 * int32 length that counts itself) and tells the caller whether the
 * message is whole, still arriving, or impossible; meaning is the caller's.
 */
#ifndef PGW_FRAME_H
#define PGW_FRAME_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	FRAME_OK,        /* header read: *type and *body_len are set */
	FRAME_NEED_MORE, /* fewer than 5 bytes available */
	FRAME_MALFORMED, /* length < 4 or above the limit: protocol violation */
} frame_status;

/*
 * Read a typed message header from 'hdr' (at least 'avail' bytes of it).
 * body_len excludes the type byte and the length word. 'max_len' is the
 * largest length word accepted (PostgreSQL: PQ_LARGE_MESSAGE_LIMIT 1 GB).
 */
frame_status frame_peek(const uint8_t *hdr, size_t avail, uint32_t max_len, char *type, uint32_t *body_len);

/* Startup packets: length word alone; 8 <= length <= 10000 (PostgreSQL's MAX_STARTUP_PACKET_LENGTH). */
#define STARTUP_PACKET_MAX 10000u
frame_status frame_peek_startup(const uint8_t *hdr, size_t avail, uint32_t *total_len);

#endif
