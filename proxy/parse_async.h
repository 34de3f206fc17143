/*
 * parse_async.h - large statements are parsed on a worker thread, so one
 * client's parse never stalls the event loop, and with it every other
 * session (issue 14 item 6).
 *
 * The gate asks parse_async_analyze(); for a large text it starts a worker
 * (with a classifier of its own) and says "wait". The session stops
 * reading its client (relay_client_readable) and the message stays at the
 * front of the client input; when the worker is done the loop wakes the
 * session, which reads the same message again and gets the analysis.
 */
#ifndef PGW_PARSE_ASYNC_H
#define PGW_PARSE_ASYNC_H

#include <stddef.h>

#include "policy/policy.h"
#include "proxy/session.h"

/* Texts at least this long are parsed off the event loop. */
#define PARSE_ASYNC_MIN_LEN (32 * 1024)

/* What parse_async_analyze() did. */
typedef enum {
	PARSE_DONE,    /* *out holds the analysis (the caller clears it) */
	PARSE_WAITING, /* a worker parses it: judge the message again when the session is woken */
	PARSE_FAILED,  /* out of memory (the caller fails the session) */
} parse_result;

/* Analyse sql (as policy_analyze does), off the loop when it is large. */
parse_result parse_async_analyze(session *s, const char *sql, size_t len, const policy_lexctx *lx,
				 policy_analysis *out);

/* The session ends: a worker still running for it is left to finish alone, its result dropped. */
void parse_async_forget(session *s);

#endif
