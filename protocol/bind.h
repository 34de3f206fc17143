/* bind.h - the parameter section of a Bind message (PostgreSQL docs, "Message Formats": Bind). */
#ifndef PGW_BIND_H
#define PGW_BIND_H

#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"

/*
 * The Bind body after the portal and statement names: int16 format count,
 * formats, int16 value count, then (int32 length, bytes) per value. Values
 * are read into 'out' (pointers into p), at most 'max' of them; returns how
 * many were read, or -1 if the section is malformed.
 */
int bind_read_params(const uint8_t *p, size_t len, audit_param *out, int max);

#endif
