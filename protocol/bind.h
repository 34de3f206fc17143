/* bind.h - the parameter section of a Bind message (PostgreSQL docs, "Message Formats": Bind). */
#ifndef PGW_BIND_H
#define PGW_BIND_H

#include <stddef.h>
#include <stdint.h>

/* One bound parameter value, pointing into the stored Bind message (the audit writes it as a JSON value). */
typedef struct bind_param {
	const uint8_t *value; /* NULL for SQL NULL */
	int32_t len;          /* -1 for SQL NULL */
	int16_t format;       /* 0 text (JSON string), 1 binary (written "\\x<hex>", like bytea) */
} bind_param;

/*
 * The Bind body after the portal and statement names: int16 format count,
 * formats, int16 value count, then (int32 length, bytes) per value. Values
 * are read into 'out' (pointers into p), at most 'max' of them; returns how
 * many were read, or -1 if the section is malformed.
 */
int bind_read_params(const uint8_t *p, size_t len, bind_param *out, int max);

#endif
