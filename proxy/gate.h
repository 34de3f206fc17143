/*
 * gate.h - the statement gate: every statement a client sends passes here
 * before it may go upstream. The gate classifies it (policy/), decides
 * (policy_decide with the session's snapshot, actor, target and the clock),
 * writes its audit record, and keeps the prepared-statement tables that let
 * an Execute be judged by what was Parsed or PREPAREd.
 */
#ifndef PGW_GATE_H
#define PGW_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/session.h"

/* Marks, in a Query's result refs, a result of pgwarden's own spliced statement (swallowed). */
#define GATE_REF_INTERNAL UINT64_MAX
#define GATE_INLINE_REFS 8
/* Parameters recorded per Execute on the stack; more go to the heap (all are recorded). */
#define GATE_MAX_AUDIT_PARAMS 64

/* The gate's answer for one client message. */
typedef struct gate_verdict {
	char message[256];       /* denial: primary message */
	char detail[256];        /* denial: "rule: ..." */
	char hint[256];          /* denial: next window, or "" */
	uint64_t *refs;          /* audit seqs of the statement records, in result order */
	uint64_t inline_refs[GATE_INLINE_REFS];
	uint32_t n_refs;
	uint32_t cap_refs;       /* slots in refs */
	struct stmt_undo *undo;  /* statement-name changes to attach to the request's owed entry */
	uint8_t *rewritten;      /* Query: a replacement message to send instead (malloc'd), or NULL */
	size_t rewritten_len;
} gate_verdict;

/* Each returns true to forward (allowed), false to deny with v's message. */
bool gate_query(session *s, const char *sql, size_t len, gate_verdict *v);
bool gate_parse(session *s, const char *name, const char *sql, size_t len, gate_verdict *v);
bool gate_bind(session *s, const char *portal, const char *stmt, const uint8_t *rest, size_t rest_len,
	       gate_verdict *v);
bool gate_execute(session *s, const char *portal, gate_verdict *v);
/* FunctionCall: always denied (rule fastpath); audited. */
void gate_function_call(session *s, gate_verdict *v);

/* Free refs (rewritten is the caller's once taken). */
void gate_verdict_clear(gate_verdict *v);

/*
 * The upstream is idle outside a transaction: switch production's
 * default_transaction_read_only if a window opened or closed.
 */
void gate_transaction_boundary(session *s);

#endif
