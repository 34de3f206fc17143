/*
 * frontend.c - client messages of a ready session, one on_<message>() each.
 *
 * Every message that makes the server answer pushes an owed entry before it
 * is forwarded, so backend.c can match responses exactly. Statements (Query,
 * Parse, Execute, FunctionCall) pass through the gate, which classifies,
 * decides and writes the audit record before anything goes upstream.
 */
#include "proxy/frontend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxy/catalogs.h"
#include "proxy/client.h"
#include "proxy/gate.h"
#include "proxy/log.h"
#include "proxy/pin.h"
#include "proxy/relay.h"
#include "proxy/server.h"
#include "protocol/pktbuf.h"
#include "protocol/pktread.h"

/* Forward the current message unchanged. */
static void forward(session *s, uint32_t body_len)
{
	evbuffer_remove_buffer(s->client.io.in, relay_upstream_out(s), 5 + (size_t)body_len);
}

/* Drop the current message without forwarding it. */
static void drop(session *s, uint32_t body_len)
{
	evbuffer_drain(s->client.io.in, 5 + (size_t)body_len);
}

/* Push an owed entry for a message about to be forwarded; false (session failing) on out of memory. */
static owed *expect(session *s, owed_kind kind)
{
	owed *o;

	if (!owed_expects(&s->owed, kind))
		return NULL; /* the server is skipping to Sync and will not answer */
	o = owed_push(&s->owed, kind);
	if (!o)
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
	return o;
}

static void malformed(session *s, const char *what)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "invalid %s message format", what);
	client_fail(s, "08P01", msg, NULL);
}

/*
 * Hand the statement-name changes the gate made to the request's owed
 * entry: they stand once the server answers it. With no entry (the server
 * is skipping to Sync and will ignore the request) they are undone now.
 */
static void attach_undo(session *s, owed *o, gate_verdict *v)
{
	if (o)
		o->undo = v->undo;
	else
		stmt_undo_revert(&s->stmts, &v->undo, 0);
	v->undo = NULL;
}

/* An allowed statement will be forwarded: owe its response, with its audit refs and name changes. */
static void owe_statement(session *s, owed_kind kind, gate_verdict *v)
{
	owed *o = expect(s, kind);

	if (o && v->n_refs && !owed_set_refs(o, v->refs, v->n_refs))
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
	attach_undo(s, o, v);
	gate_verdict_clear(v);
}

static void deny(session *s, char type, uint32_t body_len, const gate_verdict *v)
{
	relay_deny(s, type, 5 + (size_t)body_len, v->message, v->detail[0] ? v->detail : NULL,
		   v->hint[0] ? v->hint : NULL);
}

/* RESET ALL / DISCARD ALL were forwarded: re-apply identity before the client's next request. */
static void repin_if_needed(session *s)
{
	char *sql;

	if (!s->repin_pending || s->closing)
		return;
	s->repin_pending = false;
	sql = pin_sql_build(s->cfg, s->who, s->up.read_only);
	if (!sql) {
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return;
	}
	relay_inject_internal(s, sql);
	free(sql);
}

static void repin_extended(session *s)
{
	char *sql = pin_sql_build_single(s->cfg, s->who, s->up.read_only);

	s->repin_pending = false;
	if (!sql) {
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return;
	}
	relay_inject_internal_ext(s, sql);
	free(sql);
}

static void on_query(session *s, const uint8_t *body, uint32_t len)
{
	gate_verdict v;

	if (len == 0 || body[len - 1] != '\0' || memchr(body, '\0', len) != body + len - 1) {
		malformed(s, "Query");
		return;
	}
	if (!gate_query(s, (const char *)body, len - 1, &v)) {
		deny(s, 'Q', len, &v);
		return;
	}
	owe_statement(s, OWED_QUERY, &v);
	if (s->closing)
		return;
	if (v.rewritten) {
		/* the gate rewrote the Query (e.g. re-pinning after RESET ALL inside it) */
		drop(s, len);
		evbuffer_add(relay_upstream_out(s), v.rewritten, v.rewritten_len);
		free(v.rewritten);
	} else
		forward(s, len);
	repin_if_needed(s);
}

static void on_parse(session *s, const uint8_t *body, uint32_t len)
{
	pktread r;
	const char *name, *query;
	size_t qlen;
	uint16_t nparams;
	const uint8_t *oids;
	gate_verdict v;

	pktread_init(&r, body, len);
	rd_cstr(&r, &name, NULL);
	rd_cstr(&r, &query, &qlen);
	rd_u16(&r, &nparams); /* unsigned: PostgreSQL allows 65535 parameters */
	if (!rd_bytes(&r, 4 * (size_t)nparams, &oids) || !pktread_done(&r)) {
		malformed(s, "Parse");
		return;
	}
	if (!gate_parse(s, name, query, qlen, &v)) {
		deny(s, 'P', len, &v);
		return;
	}
	attach_undo(s, expect(s, OWED_PARSE), &v);
	if (!s->closing)
		forward(s, len);
}

static void on_bind(session *s, const uint8_t *body, uint32_t len)
{
	pktread r;
	const char *portal, *stmt;
	gate_verdict v;

	pktread_init(&r, body, len);
	rd_cstr(&r, &portal, NULL);
	rd_cstr(&r, &stmt, NULL);
	if (r.bad) {
		malformed(s, "Bind");
		return;
	}
	/* The rest (formats, parameters) is checked by the gate when it needs the values. */
	if (!gate_bind(s, portal, stmt, body + r.pos, len - r.pos, &v)) {
		deny(s, 'B', len, &v);
		return;
	}
	attach_undo(s, expect(s, OWED_BIND), &v);
	if (!s->closing)
		forward(s, len);
}

static void on_execute(session *s, const uint8_t *body, uint32_t len)
{
	pktread r;
	const char *portal;
	int32_t max_rows;
	gate_verdict v;

	pktread_init(&r, body, len);
	rd_cstr(&r, &portal, NULL);
	rd_i32(&r, &max_rows);
	if (!pktread_done(&r)) {
		malformed(s, "Execute");
		return;
	}
	if (!gate_execute(s, portal, &v)) {
		deny(s, 'E', len, &v);
		return;
	}
	owe_statement(s, OWED_EXECUTE, &v);
	if (s->closing)
		return;
	forward(s, len);
	/* RESET ALL / DISCARD ALL ran: re-pin before the batch's next message, not at its Sync. */
	if (s->repin_pending)
		repin_extended(s);
}

static void on_describe_or_close(session *s, char type, const uint8_t *body, uint32_t len)
{
	pktread r;
	uint8_t what;
	const char *name;

	pktread_init(&r, body, len);
	rd_u8(&r, &what);
	rd_cstr(&r, &name, NULL);
	if (!pktread_done(&r) || (what != 'S' && what != 'P')) {
		malformed(s, type == 'D' ? "Describe" : "Close");
		return;
	}
	if (type == 'C') {
		if (what == 'S')
			stmt_table_del(&s->stmts, name);
		else
			portal_table_del(&s->stmts, name);
	}
	expect(s, type == 'D' ? OWED_DESCRIBE : OWED_CLOSE);
	if (!s->closing)
		forward(s, len);
}

static void on_sync(session *s, uint32_t len)
{
	if (len != 0) {
		malformed(s, "Sync");
		return;
	}
	if (s->up.copy_in > 0) {
		forward(s, len); /* ignored by the server during COPY FROM STDIN: owes nothing */
		return;
	}
	s->ext_batch_open = false;
	expect(s, OWED_SYNC);
	if (s->closing)
		return;
	forward(s, len);
	/* Unnamed portals die at the end of the transaction; named ones are tracked until Close. */
	repin_if_needed(s);
}

static void on_function_call(session *s, uint32_t len)
{
	gate_verdict v;

	/* FunctionCall can reach set_config by OID with no SQL to read: always denied (rule fastpath). */
	gate_function_call(s, &v);
	deny(s, 'F', len, &v);
}

/*
 * Terminate: answers still owed are delivered before closing. The server
 * holds extended-protocol answers until a Sync or Flush, and a COPY FROM
 * STDIN waits for data, so send a Flush (and end a copy); and never wait
 * for a client that is leaving longer than the grace period.
 */
static void on_terminate(session *s)
{
	static const uint8_t flush_msg[5] = {'H', 0, 0, 0, 4};

	s->client.terminated = true;
	client_pause(s);
	if (s->owed.count) {
		if (s->up.copy_in > 0) {
			pktbuf b;

			pktbuf_init(&b);
			pkt_begin(&b, 'f');
			pkt_put_cstr(&b, "client terminated during COPY");
			pkt_end(&b);
			if (!b.failed)
				evbuffer_add(relay_upstream_out(s), b.data, b.len);
			pktbuf_free(&b);
			s->up.copy_in--;
		}
		evbuffer_add(relay_upstream_out(s), flush_msg, sizeof(flush_msg));
		client_close_after_grace(s);
	}
	relay_close_if_terminated(s);
}

void frontend_message(session *s, char type, const uint8_t *msg, uint32_t len)
{
	const uint8_t *body = msg + 5;

	/* During COPY FROM STDIN anything but CopyDone, CopyFail, Sync and Flush breaks the copy. */
	if (s->up.copy_in > 0 && type != 'c' && type != 'f' && type != 'S' && type != 'H') {
		char m[80];

		snprintf(m, sizeof(m), "unexpected message type 0x%02x during COPY FROM STDIN", (unsigned char)type);
		client_fail(s, "08P01", m, NULL);
		return;
	}
	/* Between batches with nothing in flight: a window may have opened or closed since the last ReadyForQuery. */
	if (s->owed.count == 0 && !s->ext_batch_open) {
		gate_transaction_boundary(s);
		if (s->closing || s->client.phase == CLIENT_CLOSING)
			return; /* e.g. the token was revoked by a reload */
	}
	if (type == 'P' || type == 'B' || type == 'D' || type == 'E' || type == 'C')
		s->ext_batch_open = true; /* until its Sync: no internal Query may be slipped in */

	switch (type) {
	case 'Q':
		on_query(s, body, len);
		break;
	case 'P':
		on_parse(s, body, len);
		break;
	case 'B':
		on_bind(s, body, len);
		break;
	case 'E':
		on_execute(s, body, len);
		break;
	case 'D':
	case 'C':
		on_describe_or_close(s, type, body, len);
		break;
	case 'S':
		on_sync(s, len);
		break;
	case 'F':
		on_function_call(s, len);
		break;
	case 'H': /* Flush */
		forward(s, len);
		break;
	case 'c': /* CopyDone */
	case 'f': /* CopyFail */
		/*
		 * Ends the COPY in progress, or one whose CopyInResponse is still on its
		 * way (a client may send its data right behind the COPY). With nothing
		 * owed no COPY can be pending: the server ignores a stray one, so do we.
		 */
		if (s->up.copy_in > 0 || (s->up.copy_in == 0 && s->owed.count > 0))
			s->up.copy_in--;
		forward(s, len);
		break;
	case 'X': /* Terminate: deliver what is owed, then close (PQfinish says goodbye upstream) */
		drop(s, len);
		on_terminate(s);
		break;
	default: {
		char m[64];
		snprintf(m, sizeof(m), "invalid frontend message type %d", (unsigned char)type);
		client_fail(s, "08P01", m, NULL);
	}
	}
}

void frontend_ready_for_query(session *s)
{
	gate_transaction_boundary(s);
	/* Function DDL committed (or rolled back): re-read the catalog before this session goes on. */
	if (s->catalog_refresh_needed && s->up.txn_status == 'I' && s->owed.count == 0) {
		s->catalog_refresh_needed = false;
		/*
		 * Mark stale again now that the DDL is committed: a load another
		 * session started in between may have read the catalog before the
		 * commit, and must not count as covering it.
		 */
		catalogs_mark_stale(s->srv, s->target->name);
		catalogs_refresh_and_wait(s);
	}
}
