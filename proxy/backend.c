/*
 * backend.c - the meaning of server messages for the relay: which owed
 * response they complete, what they tell the audit log, and which ones the
 * client must not see (our internal queries, a poison's raw error).
 *
 * PostgreSQL docs, "Message Flow": a simple Query ends with ReadyForQuery;
 * in the extended protocol each message answers with its own completion
 * (ParseComplete, BindComplete, ...) and an error makes the server skip to
 * Sync; async messages (NoticeResponse, NotificationResponse,
 * ParameterStatus) may come at any time and complete nothing.
 */
#include "proxy/backend.h"

#include <string.h>
#include <time.h>

#include "proxy/audit_hooks.h"
#include "proxy/client.h"
#include "proxy/frontend.h"
#include "proxy/gate.h"
#include "proxy/stmt_table.h"
#include "proxy/log.h"
#include "protocol/pktread.h"
#include "protocol/startup.h"

backend_action backend_classify(session *s, char type, uint32_t body_len)
{
	owed *head = owed_head(&s->owed);

	/* Internal queries' rows are swallowed, so they are read whole (they are tiny). */
	if ((type == 'D' || type == 'd') && !(head && (head->kind == OWED_INTERNAL || head->kind == OWED_INTERNAL_EXT)))
		return BACKEND_STREAM;
	return BACKEND_WHOLE;
}

static int64_t elapsed_us(const owed *o)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - o->start.tv_sec) * 1000000 + (now.tv_nsec - o->start.tv_nsec) / 1000;
}

/* The SQLSTATE field of an ErrorResponse body, or "" */
static void error_sqlstate(const uint8_t *body, uint32_t len, char out[6])
{
	pktread r;
	uint8_t code;
	const char *val;

	out[0] = '\0';
	pktread_init(&r, body, len);
	while (rd_u8(&r, &code) && code != 0) {
		if (!rd_cstr(&r, &val, NULL))
			return;
		if (code == 'C') {
			strncpy(out, val, 5);
			out[5] = '\0';
			return;
		}
	}
}

/* A result (CommandComplete, EmptyQueryResponse or ErrorResponse) for the head entry. */
static void record_result(session *s, owed *head, const char *tag, const char *sqlstate)
{
	uint64_t ref = owed_take_ref(head);
	int64_t us = elapsed_us(head);

	metrics_observe_duration(&s->srv->metrics, us);
	if (ref && ref != GATE_REF_INTERNAL)
		audit_result(s, ref, tag, sqlstate, us);
}

/* Messages of our own internal query: everything is swallowed but ParameterStatus and notices. */
static backend_action internal_message(session *s, char type, const uint8_t *body, uint32_t len)
{
	char state[6];

	switch (type) {
	case 'E':
		error_sqlstate(body, len, state);
		/* In an aborted transaction the internal query fails harmlessly: the rollback undoes what it fixes. */
		if (strcmp(state, "25P02") != 0) {
			session_log(LOG_LVL_ERROR, s, "internal query failed (SQLSTATE %s): closing session", state);
			client_fail(s, "XX000", "pgwarden: could not re-apply the pinned identity", NULL);
		}
		return BACKEND_DROP;
	case 'Z':
		s->up.txn_status = (char)body[0];
		owed_pop(&s->owed);
		return BACKEND_DROP;
	case 'S':
	case 'N':
	case 'A':
		return BACKEND_FORWARD;
	default:
		return BACKEND_DROP;
	}
}

/*
 * Answers to an internal extended message (Parse, Bind, Execute, Close):
 * one completion each, swallowed; the Execute's row too. An error means the
 * identity could not be re-applied mid-batch: the session cannot go on.
 */
static backend_action internal_ext_message(session *s, char type, const uint8_t *body, uint32_t len)
{
	char state[6];

	switch (type) {
	case '1': /* ParseComplete */
	case '2': /* BindComplete */
	case '3': /* CloseComplete */
	case 'C': /* CommandComplete of the Execute */
		owed_pop(&s->owed);
		return BACKEND_DROP;
	case 'E':
		error_sqlstate(body, len, state);
		session_log(LOG_LVL_ERROR, s, "internal re-pin failed (SQLSTATE %s): closing session", state);
		client_fail(s, "XX000", "pgwarden: could not re-apply the pinned identity", NULL);
		return BACKEND_DROP;
	case 'S':
	case 'N':
	case 'A':
		return BACKEND_FORWARD;
	default:
		return BACKEND_DROP; /* its RowDescription and DataRow */
	}
}

/*
 * COPY FROM STDIN started. Until the client's CopyDone or CopyFail the
 * server ignores Sync and Flush (PostgreSQL's copy code, for clients such as
 * libpq that send them without knowing the command was COPY): a Sync sent
 * right behind an extended-protocol COPY, before this answer came, owes
 * nothing, and neither do those the client sends during the copy.
 */
static void on_copy_in(session *s, owed *head)
{
	owed *next;

	s->up.copy_in++;
	if (head && head->kind == OWED_EXECUTE && (next = owed_at(&s->owed, 1)) != NULL && next->kind == OWED_SYNC)
		owed_remove_at(&s->owed, 1);
}

static void on_parameter_status(session *s, const uint8_t *body, uint32_t len)
{
	pktread r;
	const char *name, *value;

	pktread_init(&r, body, len);
	if (!rd_cstr(&r, &name, NULL) || !rd_cstr(&r, &value, NULL))
		return;
	if (strcmp(name, "standard_conforming_strings") == 0)
		s->up.standard_conforming_strings = strcmp(value, "on") == 0;
	else if (strcmp(name, "client_encoding") == 0 && !startup_encoding_safe(value)) {
		/* A backstop: the policy refuses such SETs; if one got through, stop parsing blind. */
		session_log(LOG_LVL_ERROR, s, "upstream reports unsupported client_encoding %s", value);
		client_fail(s, "0A000", "pgwarden: this client_encoding is not supported", NULL);
	}
}

/*
 * After an extended-protocol error the server skips everything up to Sync.
 * The failing request (the head) and the skipped ones owe nothing more:
 * the skipped statements get result records saying they failed with the
 * batch, every statement-name change among them is undone (newest first),
 * and an internal query among them (it never ran) is queued again.
 */
static void skip_to_sync(session *s, const char *sqlstate)
{
	uint32_t n = owed_until_sync(&s->owed), i;

	for (i = 1; i < n; i++) {
		owed *o = owed_at(&s->owed, i);
		while (o->next_ref < o->n_refs)
			record_result(s, o, NULL, sqlstate);
	}
	if (owed_error_skip(&s->owed, &s->stmts) > 0)
		s->repin_pending = true;
}

static backend_action on_error(session *s, owed *head, const uint8_t *body, uint32_t len)
{
	char state[6];
	bool denied;

	error_sqlstate(body, len, state);
	if (!head)
		return BACKEND_FORWARD; /* e.g. FATAL from an administrator's pg_terminate_backend */
	denied = head->denied;
	if (denied) {
		/* The poison failed as planned: the client sees the denial instead. */
		client_send(s, head->deny_msg, head->deny_len);
		record_result(s, head, NULL, "42501");
	} else
		record_result(s, head, NULL, state);
	switch (head->kind) {
	case OWED_PARSE:
	case OWED_BIND:
	case OWED_DESCRIBE:
	case OWED_EXECUTE:
	case OWED_CLOSE:
		/* The refused request and what follows it up to Sync: their name changes do not stand. */
		skip_to_sync(s, denied ? "42501" : state);
		break;
	case OWED_QUERY:
		/* This statement and the rest of the Query did not run: undo their changes. */
		stmt_undo_revert(&s->stmts, &head->undo, head->next_ref ? head->next_ref - 1 : 0);
		break;
	default:
		break; /* FunctionCall and Sync end at ReadyForQuery */
	}
	return denied ? BACKEND_DROP : BACKEND_FORWARD;
}

/* The CommandComplete tag, NUL-terminated inside the body. */
static const char *command_tag(const uint8_t *body, uint32_t len)
{
	return (len > 0 && body[len - 1] == '\0') ? (const char *)body : "";
}

backend_action backend_message(session *s, char type, const uint8_t *msg, uint32_t len)
{
	const uint8_t *body = msg + 5;
	owed *head = owed_head(&s->owed);

	if (head && head->kind == OWED_INTERNAL)
		return internal_message(s, type, body, len);
	if (head && head->kind == OWED_INTERNAL_EXT)
		return internal_ext_message(s, type, body, len);
	switch (type) {
	case 'Z': /* ReadyForQuery */
		if (len < 1)
			break;
		s->up.txn_status = (char)body[0];
		if (head && (head->kind == OWED_SYNC || head->kind == OWED_QUERY || head->kind == OWED_FUNCTION))
			owed_pop(&s->owed);
		/* all answered: an early CopyDone whose COPY never started (it failed first) is void */
		if (s->owed.count == 0 && s->up.copy_in < 0)
			s->up.copy_in = 0;
		frontend_ready_for_query(s);
		break;
	case 'C': /* CommandComplete */
		if (head && head->kind == OWED_QUERY && owed_peek_ref(head) == GATE_REF_INTERNAL) {
			owed_take_ref(head); /* one of the pinning SETs spliced into the Query */
			return BACKEND_DROP;
		}
		if (head && (head->kind == OWED_QUERY || head->kind == OWED_EXECUTE)) {
			if (head->kind == OWED_QUERY)
				stmt_undo_confirm(&head->undo, head->next_ref);
			record_result(s, head, command_tag(body, len), NULL);
			if (head->kind == OWED_EXECUTE)
				owed_pop(&s->owed);
		}
		break;
	case 'I': /* EmptyQueryResponse */
		if (head && (head->kind == OWED_QUERY || head->kind == OWED_EXECUTE)) {
			record_result(s, head, "", NULL);
			if (head->kind == OWED_EXECUTE)
				owed_pop(&s->owed);
		}
		break;
	case 's': /* PortalSuspended */
		if (head && head->kind == OWED_EXECUTE) {
			record_result(s, head, "SUSPENDED", NULL);
			owed_pop(&s->owed);
		}
		break;
	case 'E':
		return on_error(s, head, body, len);
	case '1': /* ParseComplete */
	case '2': /* BindComplete */
	case '3': /* CloseComplete */
	case 'n': /* NoData */
		if (head && (head->kind == OWED_PARSE || head->kind == OWED_BIND || head->kind == OWED_CLOSE ||
			     head->kind == OWED_DESCRIBE))
			owed_pop(&s->owed);
		break;
	case 'T': /* RowDescription: ends a Describe; inside Query/Execute it starts rows */
		if (head && head->kind == OWED_DESCRIBE)
			owed_pop(&s->owed);
		break;
	case 'S':
		on_parameter_status(s, body, len);
		break;
	case 'G': /* CopyInResponse */
		on_copy_in(s, head);
		break;
	default:
		break; /* 't', 'H', 'W', 'V', 'N', 'A', 'c': progress nothing by themselves */
	}
	return BACKEND_FORWARD;
}
