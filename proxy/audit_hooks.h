/*
 * audit_hooks.h - the session's events as audit records (CONTRACT §5):
 * what to write for each, filled from the session. No-ops when the audit
 * log is off.
 */
#ifndef PGW_AUDIT_HOOKS_H
#define PGW_AUDIT_HOOKS_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/session.h"

struct policy_verdict;
struct pgw_server;

/* Drop the session's rendered identity (session_free). */
void audit_forget_ident(session *s);

void audit_connect(session *s);
void audit_auth(session *s, bool ok);
void audit_revoked(session *s);
void audit_disconnect(session *s);

/*
 * A statement record, written before the statement goes upstream: the
 * session's upstream bytes are held until the batch is flushed. Returns the
 * record's seq (0 when the audit log is off).
 */
uint64_t audit_statement(session *s, const char *protocol, const char *sql, size_t len,
			 const struct policy_verdict *pv);

struct bind_param;
/* The same, with bound parameters (audit_params = yes). */
uint64_t audit_statement_params(session *s, const char *protocol, const char *sql, size_t len,
				const struct policy_verdict *pv, const struct bind_param *params, size_t n_params);

/* A result record for the statement record 'ref'. */
void audit_result(session *s, uint64_t ref, const char *tag, const char *sqlstate, int64_t duration_us);

/* Process events: start, stop, reload. */
void audit_server_event(struct pgw_server *srv, const char *event);

#endif
