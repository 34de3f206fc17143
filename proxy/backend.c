/*
 * backend.c - the meaning of server messages for the relay: which timeline
 * entry they complete, what they tell the audit log, and which ones the
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
#include "proxy/pipeline.h"
#include "proxy/pool_txn.h"
#include "conf/core/log.h"
#include "protocol/pktread.h"
#include "protocol/startup.h"

/* The bit of an entry kind in a reply rule's masks. */
#define K(kind) (1u << (kind))

/* Which entry a server message completes, and whose audit result it is. */
typedef struct reply_rule {
	char type;          /* server message type */
	uint32_t completes; /* entry kinds (K()) this message completes when one is at the head */
	uint32_t results;   /* entry kinds whose statement result it is (audit `result` record) */
} reply_rule;

/*
 * The table of which reply completes which entry (PostgreSQL docs,
 * "Message Flow"). Not listed: ErrorResponse and CopyInResponse (handled
 * on their own below), and what completes nothing (ParameterDescription,
 * DataRow, CopyOutResponse, NoticeResponse, NotificationResponse,
 * ParameterStatus, ...). RowDescription completes a Describe only: inside
 * a Query or Execute it starts rows.
 */
static const reply_rule reply_rules[] = {
	{ '1', K(TL_PARSE), 0 },                             /* ParseComplete */
	{ '2', K(TL_BIND), 0 },                              /* BindComplete */
	{ '3', K(TL_CLOSE), 0 },                             /* CloseComplete */
	{ 'n', K(TL_DESCRIBE), 0 },                          /* NoData */
	{ 'T', K(TL_DESCRIBE), 0 },                          /* RowDescription */
	{ 'C', K(TL_EXECUTE), K(TL_EXECUTE) | K(TL_QUERY) }, /* CommandComplete */
	{ 'I', K(TL_EXECUTE), K(TL_EXECUTE) | K(TL_QUERY) }, /* EmptyQueryResponse */
	{ 's', K(TL_EXECUTE), K(TL_EXECUTE) },               /* PortalSuspended */
	{ 'Z', K(TL_SYNC) | K(TL_QUERY), 0 },                /* ReadyForQuery */
};

static const reply_rule *rule_for(char type)
{
	size_t i;

	for (i = 0; i < sizeof(reply_rules) / sizeof(reply_rules[0]); i++)
		if (reply_rules[i].type == type)
			return &reply_rules[i];
	return NULL;
}

backend_action backend_classify(session *s, char type, uint32_t body_len)
{
	tl_entry *head = tl_head(&s->tl);

	/* Our own requests' rows are swallowed, so they are read whole (they are tiny). */
	if ((type == 'D' || type == 'd') && !(head && head->action == TL_SWALLOW))
		return BACKEND_STREAM;
	return BACKEND_WHOLE;
}

static int64_t elapsed_us(const tl_entry *e)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - e->start.tv_sec) * 1000000 + (now.tv_nsec - e->start.tv_nsec) / 1000;
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

/* The primary message field ('M') of an ErrorResponse body, for our log, or "" (the body must end in NUL). */
static const char *error_message(const uint8_t *body, uint32_t len)
{
	pktread r;
	uint8_t code;
	const char *val;

	pktread_init(&r, body, len);
	while (rd_u8(&r, &code) && code != 0) {
		if (!rd_cstr(&r, &val, NULL))
			return "";
		if (code == 'M')
			return val;
	}
	return "";
}

/* A result (CommandComplete, EmptyQueryResponse or ErrorResponse) for the head entry. */
static void record_result(session *s, tl_entry *head, const char *tag, const char *sqlstate)
{
	uint64_t ref = tl_take_ref(head);
	int64_t us = elapsed_us(head);

	metrics_observe_duration(&s->srv->metrics, us);
	if (ref && ref != TL_REF_INTERNAL)
		audit_result(s, ref, tag, sqlstate, us);
}

/*
 * The one swallow path: whether the client must not see this message.
 * Everything answering pgwarden's own requests (re-pin) is swallowed, as is
 * the CommandComplete of a pinning SET spliced into a client's Query; but
 * never ParameterStatus, notices or notifications, which are the client's.
 */
static bool swallowed(const tl_entry *head, char type)
{
	if (head && type == 'S' && head->action == TL_SWALLOW && head->quiet)
		return true; /* a borrow's pin re-states what the login already told the client */
	if (!head || type == 'S' || type == 'N' || type == 'A')
		return false;
	if (head->action == TL_SWALLOW)
		return true;
	return type == 'C' && head->kind == TL_QUERY && tl_peek_ref(head) == TL_REF_INTERNAL;
}

/*
 * COPY FROM STDIN started. Until the client's CopyDone or CopyFail the
 * server ignores Sync and Flush (PostgreSQL's copy code, for clients such as
 * libpq that send them without knowing the command was COPY): a Sync sent
 * right behind an extended-protocol COPY, before this answer came, owes
 * nothing. A CopyDone the client sent before this answer ended it already.
 */
static void on_copy_in(session *s, tl_entry *head)
{
	tl_entry *next;

	if (s->tl.early_copy_ends > 0)
		s->tl.early_copy_ends--;
	else
		tl_set_mode(&s->tl, TL_MODE_COPY_IN);
	if (head && head->kind == TL_EXECUTE && (next = tl_at(&s->tl, 1)) != NULL && next->kind == TL_SYNC)
		tl_remove_at(&s->tl, 1);
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
 * The skipped statements get result records saying they failed with the
 * batch; the timeline drops their entries and name changes; a re-pin among
 * them (it never ran) is asked for again.
 */
static void skip_to_sync(session *s, const char *sqlstate)
{
	uint32_t n = tl_until_sync(&s->tl), i;

	for (i = 1; i < n; i++) {
		tl_entry *e = tl_at(&s->tl, i);
		while (e->next_ref < e->n_refs)
			record_result(s, e, NULL, sqlstate);
	}
	if (tl_error_skip(&s->tl) > 0)
		s->tl.repin = true;
}

/* An error for one of pgwarden's own requests: in an aborted transaction it is harmless (ask again later). */
static bool own_request_failed(session *s, const tl_entry *head, const char *state, const char *msg)
{
	char text[256], detail[256];

	if (head->quiet && strlen(state) == 5 && strcmp(state, "25P02") != 0) {
		/*
		 * A borrow's first pin refused: a missing role (42704) or a login
		 * role that may not SET ROLE to it (42501) is the operator's mistake,
		 * told in PostgreSQL's words with its SQLSTATE, not "connection lost".
		 */
		session_log(LOG_LVL_WARN, s, "pinning identity failed: %.200s (%s)", msg, state);
		snprintf(text, sizeof(text), "pgwarden: could not pin the session's identity on target \"%s\": %.150s",
			 s->target->name, msg);
		snprintf(detail, sizeof(detail),
			 "pgwarden's login role could not take on role \"%s\" of this token; "
			 "the operator can find such records with pgwarden --check --connect.",
			 s->who->role);
		client_fail(s, state, text, detail);
		return false;
	}
	if (strcmp(state, "25P02") != 0) {
		session_log(LOG_LVL_ERROR, s, "re-pin failed (SQLSTATE %s: %.200s): closing session", state, msg);
		client_fail(s, "XX000", "pgwarden: could not re-apply the pinned identity", NULL);
		return false;
	}
	s->tl.repin = true;
	return true;
}

static backend_action on_error(session *s, tl_entry *head, const uint8_t *body, uint32_t len)
{
	char state[6];
	uint32_t index;
	bool denial;

	error_sqlstate(body, len, state);
	pool_txn_note_error(s); /* transaction pooling: this transaction's releases do not count */
	if (!head)
		return BACKEND_FORWARD; /* e.g. FATAL from an administrator's pg_terminate_backend */
	if (head->action == TL_SWALLOW && !own_request_failed(s, head, state, error_message(body, len)))
		return BACKEND_DROP;
	index = head->next_ref;
	/* the poison's error, not a real one from a statement that ran before it */
	denial = head->action == TL_DENY && (head->deny_at == TL_NO_DENIAL || head->deny_at == index);
	if (denial)
		client_send(s, head->deny_msg, head->deny_len);
	record_result(s, head, NULL, denial ? "42501" : state);
	head->failed = true;
	memcpy(head->sqlstate, state, sizeof(head->sqlstate));
	if (head->kind == TL_QUERY)
		tl_refuse_from(&s->tl, head, index); /* this statement and the rest of the Query did not run */
	else if (head->kind != TL_SYNC)
		skip_to_sync(s, denial ? "42501" : state);
	return denial || head->action == TL_SWALLOW ? BACKEND_DROP : BACKEND_FORWARD;
}

/* The CommandComplete tag, NUL-terminated inside the body. */
static const char *command_tag(const uint8_t *body, uint32_t len)
{
	return (len > 0 && body[len - 1] == '\0') ? (const char *)body : "";
}

/*
 * ReadyForQuery: the transaction status; the predicted mode follows it
 * (a failed block refuses everything until it ends); portals end with their
 * transaction; everything answered means no COPY can still be starting.
 */
static void on_ready(session *s, char status)
{
	s->up.txn_status = status;
	if (status == 'E' && s->tl.mode == TL_MODE_NORMAL)
		tl_set_mode(&s->tl, TL_MODE_FAILED);
	else if (status != 'E' && s->tl.mode == TL_MODE_FAILED)
		tl_set_mode(&s->tl, TL_MODE_NORMAL);
	if (status == 'I')
		tl_transaction_ended(&s->tl);
}

/* A reply with a rule: the audit result it carries, and the entry it completes. */
static void on_reply(session *s, tl_entry *head, const reply_rule *r, char type, const uint8_t *body, uint32_t len)
{
	uint32_t index;

	if (!head)
		return;
	if (type == 'I' && head->kind == TL_EXECUTE) {
		/*
		 * Why no result: an Execute pgwarden judged as a statement can be
		 * answered EmptyQueryResponse when its Bind failed inside a
		 * transaction block, which leaves an empty portal of that name
		 * (postgres.c, exec_execute_message): nothing ran. An empty
		 * statement has no ref to take.
		 */
		tl_take_ref(head);
	} else if (r->results & K(head->kind)) {
		index = head->next_ref;
		record_result(s, head, type == 'C' ? command_tag(body, len) : type == 's' ? "SUSPENDED" : "", NULL);
		if (head->kind == TL_QUERY)
			tl_confirm_index(&s->tl, head, index);
	}
	if (r->completes & K(head->kind))
		tl_complete_head(&s->tl);
	if (type == 'Z' && s->tl.count == 0)
		s->tl.early_copy_ends = 0; /* all answered: a CopyDone whose COPY never started is void */
}

backend_action backend_message(session *s, char type, const uint8_t *msg, uint32_t len)
{
	const uint8_t *body = msg + 5;
	tl_entry *head = tl_head(&s->tl);
	bool swallow = swallowed(head, type);
	const reply_rule *r;

	switch (type) {
	case 'E':
		return on_error(s, head, body, len);
	case 'G': /* CopyInResponse */
		on_copy_in(s, head);
		break;
	case 'S':
		on_parameter_status(s, body, len);
		break;
	case 'Z':
		if (len < 1)
			return BACKEND_FORWARD;
		on_ready(s, (char)body[0]);
		break;
	default:
		break;
	}
	if ((r = rule_for(type)) != NULL)
		on_reply(s, head, r, type, body, len);
	if (type == 'Z' && !s->closing)
		frontend_ready_for_query(s);
	return swallow ? BACKEND_DROP : BACKEND_FORWARD;
}
