/*
 * gate.h - the statement gate: every statement a client sends passes here
 * before it may go upstream. The gate classifies it (policy/), decides
 * (policy_decide with the session's snapshot, actor, target and the clock)
 * and writes its audit records. It changes nothing else: it returns its
 * verdict, the audit refs, the name changes the statement makes and
 * whether identity must be re-pinned, and the caller (frontend.c) carries
 * them out through the timeline (pipeline.h).
 */
#ifndef PGW_GATE_H
#define PGW_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/pipeline.h"
#include "proxy/session.h"

#define GATE_INLINE_REFS 8
/* Parameters recorded per Execute on the stack; more go to the heap (all are recorded). */
#define GATE_MAX_AUDIT_PARAMS 64

/* What the gate says of one client message. */
typedef enum {
	GATE_ALLOW,  /* forward it (or v->rewritten instead) */
	GATE_DENY,   /* policy denies it: answer v's error (SQLSTATE 42501) in its place */
	GATE_FAIL,   /* PostgreSQL itself would reject it (a syntax error): answer v's error in its place */
	GATE_WAIT,   /* a large text is being parsed off the loop: judge the message again when woken */
	GATE_AWAIT,  /* it names a doubtful name an entry already sent decides: judge it again after the answer */
	GATE_CLOSED, /* the session is ending (token revoked, out of memory): do nothing more */
} gate_status;

/* The gate's answer for one client message. */
typedef struct gate_verdict {
	gate_status status;                     /* see gate_status */
	char sqlstate[6];                       /* DENY: 42501; FAIL: the parser's SQLSTATE */
	char message[256];                      /* DENY/FAIL: primary message */
	char detail[256];                       /* DENY: "rule: ..." */
	char hint[256];                         /* DENY: next window, or "" */
	int position;                           /* FAIL: 1-based character position in the whole text, 0 if none */
	uint64_t *refs;                         /* audit seqs of the statement records, in result order */
	uint64_t inline_refs[GATE_INLINE_REFS]; /* storage for refs when few */
	uint32_t n_refs;                        /* how many refs */
	uint32_t cap_refs;                      /* slots in refs */
	uint32_t deny_at;                       /* DENY of a Query whose earlier statements run: index in refs of the
	                            denied statement (TL_NO_DENIAL when the whole message is denied) */
	struct tl_changes changes;              /* name changes the message makes, for the timeline */
	bool repin;                             /* a reset runs last: re-apply identity right after the message */
	uint8_t *rewritten;   /* Query: the message to send instead (malloc'd, the caller's), or NULL */
	size_t rewritten_len; /* its length */
} gate_verdict;

gate_status gate_query(session *s, const char *sql, size_t len, gate_verdict *v);
gate_status gate_parse(session *s, const char *name, const char *sql, size_t len, gate_verdict *v);
gate_status gate_bind(session *s, const char *portal, const char *stmt, const uint8_t *rest, size_t rest_len,
		      gate_verdict *v);
/* Describe 'S': refused for a prepared FETCH (it can crash PostgreSQL 15), else allowed. */
gate_status gate_describe_statement(session *s, const char *name, gate_verdict *v);
gate_status gate_execute(session *s, const char *portal, gate_verdict *v);
/* FunctionCall: always denied (rule fastpath); audited. */
gate_status gate_function_call(session *s, gate_verdict *v);

/* Free refs and changes (rewritten is the caller's once taken). */
void gate_verdict_clear(gate_verdict *v);

/*
 * The upstream is idle outside a transaction: if a window opened or closed,
 * production's default_transaction_read_only must change (asks for a
 * re-pin). false when the session is ending.
 */
bool gate_transaction_boundary(session *s);

#endif
