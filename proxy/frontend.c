/*
 * frontend.c - client messages of a ready session, one on_<message>() each.
 *
 * Every message that makes the server answer pushes a timeline entry before
 * it is forwarded, so backend.c can match responses exactly. Statements (Query,
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
#include "conf/core/log.h"
#include "proxy/pin.h"
#include "proxy/pool_stmts.h"
#include "proxy/relay.h"
#include "proxy/server.h"
#include "protocol/pktbuf.h"
#include "protocol/femsg.h"

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

static relay_status oom(session *s)
{
	client_fail(s, "53200", "pgwarden: out of memory", NULL);
	return RELAY_STOP;
}

static relay_status malformed(session *s, const char *what)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "invalid %s message format", what);
	client_fail(s, "08P01", msg, NULL);
	return RELAY_STOP;
}

/* Owe the server's answer to a message about to be forwarded. */
static tl_entry *owe(session *s, tl_kind kind)
{
	if (kind != TL_QUERY && kind != TL_SYNC)
		s->tl.batch_open = true; /* until its Sync: a re-pin must use the extended protocol */
	return tl_push(&s->tl, kind, TL_FORWARD);
}

/* The ErrorResponse pgwarden answers in a refused message's place (malloc'd), or NULL. */
static uint8_t *refusal_error(const gate_verdict *v, size_t *len)
{
	pktbuf b;
	char pos[16];

	pktbuf_init(&b);
	pkt_begin(&b, 'E');
	pkt_put_u8(&b, 'S');
	pkt_put_cstr(&b, "ERROR");
	pkt_put_u8(&b, 'V');
	pkt_put_cstr(&b, "ERROR");
	pkt_put_u8(&b, 'C');
	pkt_put_cstr(&b, v->sqlstate);
	pkt_put_u8(&b, 'M');
	pkt_put_cstr(&b, v->message);
	if (v->detail[0]) {
		pkt_put_u8(&b, 'D');
		pkt_put_cstr(&b, v->detail);
	}
	if (v->hint[0]) {
		pkt_put_u8(&b, 'H');
		pkt_put_cstr(&b, v->hint);
	}
	if (v->position > 0) {
		/* the parser's cursor: 1-based character position in the whole Query string */
		snprintf(pos, sizeof(pos), "%d", v->position);
		pkt_put_u8(&b, 'P');
		pkt_put_cstr(&b, pos);
	}
	pkt_put_u8(&b, 0);
	pkt_end(&b);
	if (b.failed) {
		pktbuf_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

/* Give an entry the verdict's audit refs. */
static bool set_refs(tl_entry *e, const gate_verdict *v)
{
	return !v->n_refs || tl_set_refs(e, v->refs, v->n_refs);
}

/* Refused (denied, or what the server's parser would reject): the refusal takes the message's place. */
static relay_status refuse(session *s, char type, uint32_t len, gate_verdict *v)
{
	size_t elen;
	uint8_t *err = refusal_error(v, &elen);
	tl_entry *e;

	if (!err || relay_refuse(s, type, 5 + (size_t)len, err, elen, v->rewritten, v->rewritten_len, &e) != RELAY_GO) {
		free(v->rewritten);
		gate_verdict_clear(v);
		return err ? RELAY_STOP : oom(s);
	}
	free(v->rewritten);
	e->deny_at = v->deny_at;
	/* a Query's statements before the denied one run: their refs and name changes stand */
	if (!set_refs(e, v)) {
		gate_verdict_clear(v);
		return oom(s);
	}
	tl_adopt_before(&s->tl, e, &v->changes, v->deny_at);
	gate_verdict_clear(v);
	return RELAY_GO;
}

/*
 * The message names a name whose meaning an unanswered request decides (a
 * Parse or Bind reusing a name the server may still hold, or a portal the
 * coming ReadyForQuery ends): guessing would deny what the server runs, so
 * it stays at the front of the input until the next answer arrives
 * (relay_upstream_input wakes the client). Why the Flush: the server holds
 * its answers until Sync or Flush, and the client may send neither before
 * it has its answers; a Flush has no reply of its own and changes nothing
 * else (ignored, like every message, while the server skips to Sync).
 */
static relay_status await_answer(session *s, gate_verdict *v)
{
	static const uint8_t flush_msg[5] = { 'H', 0, 0, 0, 4 };

	gate_verdict_clear(v);
	s->tl.awaiting = true;
	if (s->tl.flushed_seq != s->tl.next_seq) { /* a Flush behind the same entries would add nothing */
		evbuffer_add(relay_upstream_out(s), flush_msg, sizeof(flush_msg));
		s->tl.flushed_seq = s->tl.next_seq;
	}
	relay_client_wake(s); /* no longer readable: pauses the client until the answer */
	return RELAY_WAIT;
}

/* Carry out the gate's verdict on the message at the front of the client input. */
static relay_status carry_out(session *s, char type, tl_kind kind, uint32_t len, gate_verdict *v)
{
	tl_entry *e;

	if (v->status == GATE_AWAIT)
		return await_answer(s, v);
	if (v->status == GATE_CLOSED || v->status == GATE_WAIT) {
		gate_verdict_clear(v);
		return v->status == GATE_WAIT ? RELAY_WAIT : RELAY_STOP;
	}
	if (v->status != GATE_ALLOW)
		return refuse(s, type, len, v);
	if (!(e = owe(s, kind)) || !set_refs(e, v)) {
		free(v->rewritten);
		gate_verdict_clear(v);
		return oom(s);
	}
	tl_adopt(&s->tl, e, &v->changes);
	if (v->rewritten) {
		/* the gate rewrote the Query (the pin spliced in after a RESET ALL inside it) */
		drop(s, len);
		evbuffer_add(relay_upstream_out(s), v->rewritten, v->rewritten_len);
		free(v->rewritten);
	} else
		forward(s, len);
	if (v->repin)
		s->tl.repin = true; /* RESET ALL / DISCARD ALL ran last: re-pin before the next request */
	gate_verdict_clear(v);
	return RELAY_GO;
}

/* A Query's deletion of the unnamed statement or portal: made whether the Query fails or not. */
static bool drop_unnamed(struct tl_changes *changes, tl_ns ns)
{
	if (!tl_change_add(changes, ns, TL_DEL, "", NULL, NULL, 0, 0, false, false))
		return false;
	TAILQ_LAST(changes, tl_changes)->stands_on_error = true;
	return true;
}

static relay_status on_query(session *s, const uint8_t *body, uint32_t len)
{
	fe_query m;
	gate_verdict v;

	if (!fe_read_query(body, len, &m))
		return malformed(s, "Query");
	gate_query(s, m.sql, m.len, &v);
	/*
	 * Why: each statement of a Query runs in the unnamed portal, replacing
	 * the client's (postgres.c, exec_simple_query), and when it fails inside
	 * a transaction block that portal is left behind pointing at freed
	 * memory: PostgreSQL 15 crashes on an Execute of it (the whole cluster
	 * restarts). So the unnamed portal is gone once the Query ran, failed or
	 * not, and Execute "" is refused until a new Bind "" (unknown portal).
	 * The unnamed statement goes too (exec_simple_query, drop_unnamed_stmt).
	 */
	if ((v.status == GATE_ALLOW || v.status == GATE_DENY) &&
	    (!drop_unnamed(&v.changes, TL_NS_PORTAL) || !drop_unnamed(&v.changes, TL_NS_STMT))) {
		free(v.rewritten);
		gate_verdict_clear(&v);
		return oom(s);
	}
	return carry_out(s, 'Q', TL_QUERY, len, &v);
}

static relay_status on_parse(session *s, const uint8_t *body, uint32_t len)
{
	fe_parse m;
	gate_verdict v;

	if (!fe_read_parse(body, len, &m))
		return malformed(s, "Parse");
	gate_parse(s, m.name, m.query, m.query_len, &v);
	return carry_out(s, 'P', TL_PARSE, len, &v);
}

static relay_status on_bind(session *s, const uint8_t *body, uint32_t len)
{
	fe_bind m;
	gate_verdict v;

	if (!fe_read_bind(body, len, &m))
		return malformed(s, "Bind");
	/* The rest (formats, parameters) is checked by the gate when it needs the values. */
	gate_bind(s, m.portal, m.stmt, m.rest, m.rest_len, &v);
	return carry_out(s, 'B', TL_BIND, len, &v);
}

static relay_status on_execute(session *s, const uint8_t *body, uint32_t len)
{
	fe_execute m;
	gate_verdict v;

	if (!fe_read_execute(body, len, &m))
		return malformed(s, "Execute");
	gate_execute(s, m.portal, &v);
	return carry_out(s, 'E', TL_EXECUTE, len, &v);
}

static relay_status on_describe_or_close(session *s, char type, const uint8_t *body, uint32_t len)
{
	fe_target m;
	struct tl_changes changes = TAILQ_HEAD_INITIALIZER(changes);
	tl_entry *e;

	if (!fe_read_target(body, len, &m))
		return malformed(s, type == 'D' ? "Describe" : "Close");
	if (type == 'D' && m.what == 'S') {
		gate_verdict v;

		if (gate_describe_statement(s, m.name, &v) != GATE_ALLOW)
			return carry_out(s, type, TL_DESCRIBE, len, &v);
		gate_verdict_clear(&v);
	}
	/* Close of a name that does not exist is no error (CloseComplete): the change is certain once answered. */
	if (type == 'C' && !tl_change_add(&changes, m.what == 'S' ? TL_NS_STMT : TL_NS_PORTAL, TL_DEL, m.name, NULL,
					  NULL, 0, 0, false, false))
		return oom(s);
	if (!(e = owe(s, type == 'D' ? TL_DESCRIBE : TL_CLOSE))) {
		tl_changes_free(&changes);
		return oom(s);
	}
	tl_adopt(&s->tl, e, &changes);
	forward(s, len);
	return RELAY_GO;
}

static relay_status on_sync(session *s, uint32_t len)
{
	if (len != 0)
		return malformed(s, "Sync");
	if (s->tl.mode == TL_MODE_COPY_IN) {
		forward(s, len); /* ignored by the server during COPY FROM STDIN: owes nothing */
		return RELAY_GO;
	}
	if (!owe(s, TL_SYNC))
		return oom(s);
	s->tl.batch_open = false;
	if (s->tl.mode == TL_MODE_SKIP)
		tl_set_mode(&s->tl, TL_MODE_NORMAL); /* the server stops skipping here */
	forward(s, len);
	return RELAY_GO;
}

/*
 * CopyDone / CopyFail: end the COPY in progress, or one whose
 * CopyInResponse is still on its way (a client may send its data right
 * behind the COPY): that one is counted, and backend.c pairs it with the
 * CopyInResponse. With nothing owed no COPY can be pending: the server
 * ignores a stray one, so do we.
 */
static relay_status on_copy_end(session *s, uint32_t len)
{
	if (s->tl.mode == TL_MODE_COPY_IN)
		tl_set_mode(&s->tl, TL_MODE_NORMAL);
	else if (s->tl.count > 0)
		s->tl.early_copy_ends++;
	forward(s, len);
	return RELAY_GO;
}

static relay_status on_function_call(session *s, uint32_t len)
{
	gate_verdict v;

	/* FunctionCall can reach set_config by OID with no SQL to read: always denied (rule fastpath). */
	gate_function_call(s, &v);
	return carry_out(s, 'F', TL_QUERY, len, &v);
}

/*
 * Terminate: answers still owed are delivered before closing. The server
 * holds extended-protocol answers until a Sync or Flush, and a COPY FROM
 * STDIN waits for data, so send a Flush (and end a copy); and never wait
 * for a client that is leaving longer than the grace period.
 */
static relay_status on_terminate(session *s, uint32_t len)
{
	static const uint8_t flush_msg[5] = { 'H', 0, 0, 0, 4 };

	drop(s, len);
	s->client.terminated = true;
	relay_client_wake(s); /* no longer readable: pauses the client */
	if (s->tl.count) {
		if (s->tl.mode == TL_MODE_COPY_IN) {
			pktbuf b;

			pktbuf_init(&b);
			pkt_begin(&b, 'f');
			pkt_put_cstr(&b, "client terminated during COPY");
			pkt_end(&b);
			if (!b.failed)
				evbuffer_add(relay_upstream_out(s), b.data, b.len);
			pktbuf_free(&b);
			tl_set_mode(&s->tl, TL_MODE_NORMAL);
		}
		evbuffer_add(relay_upstream_out(s), flush_msg, sizeof(flush_msg));
		client_close_after_grace(s);
	}
	relay_close_if_terminated(s);
	return RELAY_STOP;
}

static relay_status unknown_type(session *s, char type)
{
	char m[64];

	snprintf(m, sizeof(m), "invalid frontend message type %d", (unsigned char)type);
	client_fail(s, "08P01", m, NULL);
	return RELAY_STOP;
}

static relay_status dispatch(session *s, char type, const uint8_t *body, uint32_t len)
{
	switch (type) {
	case 'Q':
		return on_query(s, body, len);
	case 'P':
		return on_parse(s, body, len);
	case 'B':
		return on_bind(s, body, len);
	case 'E':
		return on_execute(s, body, len);
	case 'D':
	case 'C':
		return on_describe_or_close(s, type, body, len);
	case 'S':
		return on_sync(s, len);
	case 'F':
		return on_function_call(s, len);
	case 'H': /* Flush */
		forward(s, len);
		return RELAY_GO;
	case 'c': /* CopyDone */
	case 'f': /* CopyFail */
		return on_copy_end(s, len);
	case 'X':
		return on_terminate(s, len);
	default:
		return unknown_type(s, type);
	}
}

/*
 * What the server will do with this message, from the predicted mode:
 * during COPY FROM STDIN anything but CopyDone, CopyFail, Sync and Flush
 * breaks the copy (a protocol violation); while it skips to Sync it
 * ignores all but Sync (postgres.c, ignore_till_sync), so the message is
 * dropped unjudged: it never reaches the database.
 */
static bool server_takes(session *s, char type, uint32_t len, relay_status *st)
{
	char m[80];

	if (s->tl.mode == TL_MODE_COPY_IN && type != 'c' && type != 'f' && type != 'S' && type != 'H') {
		snprintf(m, sizeof(m), "unexpected message type 0x%02x during COPY FROM STDIN", (unsigned char)type);
		client_fail(s, "08P01", m, NULL);
		*st = RELAY_STOP;
		return false;
	}
	if (s->tl.mode == TL_MODE_SKIP && strchr("QPBEDCFcf", type) && type != '\0') {
		drop(s, len);
		*st = RELAY_GO;
		return false;
	}
	return true;
}

relay_status frontend_message(session *s, char type, const uint8_t *msg, uint32_t len)
{
	relay_status st = RELAY_GO;

	if (!server_takes(s, type, len, &st))
		return st;
	/* Between batches with nothing in flight: a window may have opened or closed since the last ReadyForQuery. */
	if (!gate_transaction_boundary(s) || s->client.phase == CLIENT_CLOSING)
		return RELAY_STOP; /* e.g. the token was revoked by a reload */
	if (type != 'X' && relay_repin(s) != RELAY_GO)
		return RELAY_STOP;
	/* transaction pooling: a named statement is prepared again where the client now is */
	if (pool_stmts_before(s, type, msg, len) != RELAY_GO)
		return RELAY_STOP;
	if ((st = dispatch(s, type, msg + 5, len)) != RELAY_GO)
		return st;
	return relay_repin(s);
}

void frontend_ready_for_query(session *s)
{
	if (!gate_transaction_boundary(s))
		return;
	/* Function DDL committed (or rolled back): re-read the catalog before this session goes on. */
	if (s->catalog_refresh_needed && s->up.txn_status == 'I' && s->tl.count == 0) {
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
