/*
 * backend.h - what each server message means for the session: progress
 * through the timeline, transaction status, result records, and
 * the rewriting of a poison's error into pgwarden's denial.
 */
#ifndef PGW_BACKEND_H
#define PGW_BACKEND_H

#include <stdint.h>

#include "proxy/session.h"

typedef enum {
	BACKEND_STREAM,  /* forward without buffering the body (DataRow, CopyData) */
	BACKEND_WHOLE,   /* wait for the whole message, then call backend_message */
	BACKEND_FORWARD, /* (from backend_message) forward the message as it is */
	BACKEND_DROP,    /* (from backend_message) the message was swallowed or replaced */
} backend_action;

/* From the header alone: stream the body, or wait for the whole message? */
backend_action backend_classify(session *s, char type, uint32_t body_len);

/* A whole server message (msg points at its type byte): update state, say forward or drop. */
backend_action backend_message(session *s, char type, const uint8_t *msg, uint32_t body_len);

#endif
