/*
 * relay.c - the two relay loops, backpressure, the audit hold, denial by
 * poison, and pgwarden's internal queries.
 */
#include "proxy/relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/core/random.h"
#include "proxy/backend.h"
#include "proxy/client.h"
#include "proxy/console.h"
#include "proxy/frontend.h"
#include "conf/core/log.h"
#include "proxy/server.h"
#include "proxy/upstream.h"
#include "protocol/frame.h"
#include "protocol/pktbuf.h"
#include "protocol/pktread.h"
#include "proxy/pin.h"
#include "proxy/pool.h"
#include "proxy/pool_txn.h"
#include "proxy/wall.h"

/* Server messages are trusted less than blindly: the same 1 GB bound as PostgreSQL's own limit. */
#define BACKEND_MESSAGE_MAX 0x40000000u

struct evbuffer *relay_upstream_out(session *s)
{
	return s->awaiting_flush ? s->hold : s->up.io.out;
}

static size_t upstream_queued(session *s)
{
	return io_pending(&s->up.io) + evbuffer_get_length(s->hold);
}

/* Send what the client side queued for the upstream (unless it waits for its audit records). */
static void upstream_flush(session *s)
{
	if (s->closing || s->awaiting_flush || !io_active(&s->up.io))
		return;
	if (io_flush(&s->up.io) != 0) {
		s->up.broken = true;
		client_fail(s, "08006", "pgwarden: upstream connection lost", NULL);
	}
}

/* ---- client -> upstream ------------------------------------------------------------------ */

static void relay_client_messages(session *s);

void relay_client_input(session *s)
{
	if (s->pool_skip_to_sync && !pool_skip_input(s))
		return; /* a statement whose wait for a connection timed out is still arriving */
	if (s->up.phase == UPSTREAM_NONE) {
		/* Between logins and the first message a client holds no connection: this one borrows. */
		if (s->client.phase == CLIENT_READY && evbuffer_get_length(s->client.io.in) > 0)
			pool_borrow(s);
		return;
	}
	if (s->pool_parked && evbuffer_get_length(s->client.io.in) > 0)
		pool_unpark(s); /* transaction mode: its next transaction runs on the connection it kept */
	relay_client_messages(s);
	/* An admin PAUSE stopped the loop between transactions: held until RESUME wakes it. */
	console_hold(s);
	upstream_flush(s);
}

bool relay_client_readable(const session *s)
{
	return !s->closing && s->client.phase == CLIENT_READY && s->up.phase == UPSTREAM_READY &&
	       !s->client.terminated && !s->catalog_waiting && !s->parse_waiting && !s->tl.awaiting &&
	       !s->client.backpressured && !console_should_hold(s);
}

void relay_client_wake(session *s)
{
	if (s->closing || s->client.phase != CLIENT_READY)
		return;
	if (s->up.phase == UPSTREAM_NONE && !s->pool_waiting) {
		client_resume(s); /* holding no connection: the next message borrows one */
		relay_client_input(s);
		return;
	}
	if (!relay_client_readable(s)) {
		if (!console_hold(s)) /* a PAUSE marks the session held, so RESUME finds it */
			client_pause(s);
		return;
	}
	client_resume(s);
	relay_client_input(s);
}

/*
 * Too much is queued for the upstream: try to send it now; still too much
 * means the socket is full (write readiness is watched) or the bytes wait
 * for the audit flush, and both resume the client when they drain.
 */
static bool upstream_backlogged(session *s)
{
	if (upstream_queued(s) <= RELAY_HIGH_WATER)
		return false;
	upstream_flush(s);
	return upstream_queued(s) > RELAY_HIGH_WATER;
}

/* Resume a client paused by backpressure once the upstream backlog is small again. */
static void resume_client_if_drained(session *s)
{
	if (s->closing || !s->client.backpressured || upstream_queued(s) > RELAY_LOW_WATER)
		return;
	s->client.backpressured = false;
	relay_client_wake(s);
}

/* PostgreSQL 15's limits on a frontend message's length word (libpq.h). */
#define PG_LARGE_MESSAGE_LIMIT PGW_MAX_MESSAGE_SIZE /* MaxAllocSize - 1 */
#define PG_SMALL_MESSAGE_LIMIT 10000u

/*
 * The largest length word PostgreSQL accepts for this message type, read
 * before the body (postgres.c SocketBackend, copyfromparse.c
 * CopyGetData): statements and data may be large, control messages not;
 * an unknown type is refused before its length is even looked at (0).
 * pgwarden rejects at the same point (the header), never after buffering.
 */
static uint32_t client_message_limit(const session *s, char type)
{
	uint32_t max;

	switch (type) {
	case 'C':
	case 'D':
	case 'E':
	case 'H':
	case 'S':
	case 'X':
		max = PG_SMALL_MESSAGE_LIMIT;
		break;
	case 'c':
	case 'f':
		max = s->tl.mode == TL_MODE_COPY_IN ? PG_SMALL_MESSAGE_LIMIT : PG_LARGE_MESSAGE_LIMIT;
		break;
	case 'Q':
	case 'P':
	case 'B':
	case 'F':
	case 'd':
		max = PG_LARGE_MESSAGE_LIMIT;
		break;
	default:
		return 0;
	}
	return (uint32_t)s->cfg->max_message_size < max ? (uint32_t)s->cfg->max_message_size : max;
}

/* Frame and hand over every whole client message buffered now. */
static void relay_client_messages(session *s)
{
	struct evbuffer *in = s->client.io.in;

	while (relay_client_readable(s)) {
		size_t avail = evbuffer_get_length(in);
		uint8_t hdr[5];
		const uint8_t *msg;
		char type;
		uint32_t blen;

		if (upstream_backlogged(s)) {
			/* resumed by relay_upstream_drained or relay_release_held */
			s->client.backpressured = true;
			relay_client_wake(s);
			return;
		}
		if (s->client.copy_passthru) {
			size_t n = avail < s->client.copy_passthru ? avail : s->client.copy_passthru;
			if (n == 0)
				return;
			evbuffer_remove_buffer(in, relay_upstream_out(s), n);
			s->client.copy_passthru -= (uint32_t)n;
			continue;
		}
		if (avail < 5)
			return;
		evbuffer_copyout(in, hdr, 5);
		if (client_message_limit(s, (char)hdr[0]) == 0) {
			char m[64];
			snprintf(m, sizeof(m), "invalid frontend message type %d", hdr[0]);
			client_fail(s, "08P01", m, NULL);
			return;
		}
		if (frame_peek(hdr, avail, client_message_limit(s, (char)hdr[0]), &type, &blen) != FRAME_OK) {
			char sample[64];
			session_log(LOG_LVL_WARN, s, "invalid message length from client: %s",
				    log_sample(sample, sizeof(sample), hdr, 5));
			client_fail(s, "08P01", "invalid message length", NULL);
			return;
		}
		s->srv->metrics.bytes_from_clients += 5 + (uint64_t)blen;
		if (type == 'd') {
			/* CopyData is streamed: it carries rows, not statements. */
			evbuffer_remove_buffer(in, relay_upstream_out(s), 5);
			s->client.copy_passthru = blen;
			continue;
		}
		if (avail < 5 + (size_t)blen)
			return; /* the rest of the message is still on its way */
		msg = evbuffer_pullup(in, 5 + (ssize_t)blen);
		if (!msg) {
			client_fail(s, "53200", "pgwarden: out of memory", NULL);
			return;
		}
		if (frontend_message(s, type, msg, blen) == RELAY_STOP)
			return;
	}
}

void relay_upstream_drained(session *s)
{
	resume_client_if_drained(s);
}

/* ---- upstream -> client ------------------------------------------------------------------ */

/* Move 'run' bytes from the front of the upstream input to the client. */
static void flush_run(session *s, struct evbuffer *in, size_t *run)
{
	if (*run) {
		evbuffer_remove_buffer(in, s->client.io.out, *run);
		s->srv->metrics.bytes_to_clients += *run;
		*run = 0;
	}
}

void relay_upstream_input(session *s)
{
	struct evbuffer *in = s->up.io.in;
	size_t run = 0; /* bytes at the front of 'in' already judged "forward as is" */

	while (!s->closing && s->client.phase != CLIENT_CLOSING) {
		size_t avail = evbuffer_get_length(in) - run;
		struct evbuffer_ptr pos;
		uint8_t hdr[5];
		char type;
		uint32_t blen;
		const uint8_t *msg;
		backend_action act;

		if (s->up.passthru) {
			size_t n = avail < s->up.passthru ? avail : s->up.passthru;
			run += n;
			s->up.passthru -= (uint32_t)n;
			if (s->up.passthru)
				break;
			continue;
		}
		if (avail < 5)
			break;
		evbuffer_ptr_set(in, &pos, run, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(in, &pos, hdr, 5);
		if (frame_peek(hdr, avail, BACKEND_MESSAGE_MAX, &type, &blen) != FRAME_OK) {
			session_log(LOG_LVL_ERROR, s, "invalid message length from upstream");
			client_fail(s, "08P01", "pgwarden: protocol error from upstream", NULL);
			return;
		}
		act = backend_classify(s, type, blen);
		if (act == BACKEND_STREAM) {
			/* DataRow / CopyData: forwarded as they arrive, never buffered whole */
			run += 5;
			s->up.passthru = blen;
			continue;
		}
		if (avail < 5 + (size_t)blen)
			break;
		/* Whole message present: let backend.c judge it with its body at the front. */
		flush_run(s, in, &run);
		if (!(msg = evbuffer_pullup(in, 5 + (ssize_t)blen))) {
			client_fail(s, "53200", "pgwarden: out of memory", NULL);
			return;
		}
		act = backend_message(s, type, msg, blen);
		if (act == BACKEND_FORWARD)
			run = 5 + (size_t)blen;
		else
			evbuffer_drain(in, 5 + (size_t)blen); /* swallowed or replaced */
	}
	if (s->closing || s->client.phase == CLIENT_CLOSING)
		return; /* a final error is queued: nothing more goes to the client */
	flush_run(s, in, &run);
	client_flush(s);
	/* internal queries and the audit may have queued upstream bytes too */
	upstream_flush(s);
	if (s->tl.awaiting && !s->closing) {
		/* an answer may have settled the name the waiting message names: judge it again */
		s->tl.awaiting = false;
		relay_client_wake(s);
	}
	relay_close_if_terminated(s);
	server_close_if_idle(s);
	if (!s->closing && io_pending(&s->client.io) > RELAY_HIGH_WATER)
		io_set_reading(&s->up.io, false); /* resumed by relay_client_drained */
	pool_txn_after_input(s); /* transaction mode: a transaction ended, maybe the connection goes back */
}

void relay_client_drained(session *s)
{
	if (s->closing || !io_active(&s->up.io) || s->up.io.reading)
		return;
	io_set_reading(&s->up.io, true);
	relay_upstream_input(s);
}

void relay_close_if_terminated(session *s)
{
	if (!s->client.terminated || s->closing || s->tl.count || s->awaiting_flush)
		return;
	if (io_pending(&s->client.io) == 0)
		session_close_later(s, "client terminated");
	else
		client_set_phase(s, CLIENT_CLOSING); /* the write callback closes once drained */
}

/* ---- audit hold ------------------------------------------------------------------------------ */

void relay_release_held(session *s, bool audit_ok)
{
	s->awaiting_flush = false;
	if (s->closing)
		return;
	if (!audit_ok) {
		/* Nothing reaches the database unaudited: what the lost records covered is never sent. */
		evbuffer_drain(s->hold, evbuffer_get_length(s->hold));
		client_fail(s, "58030", "pgwarden: audit log write failed; statement not sent",
			    "Nothing reaches the database unaudited.");
		return;
	}
	if (io_active(&s->up.io))
		evbuffer_add_buffer(s->up.io.out, s->hold);
	upstream_flush(s);
	relay_close_if_terminated(s);
	resume_client_if_drained(s);
}

/* ---- re-pin and poison ------------------------------------------------------------------ */

/* A name of pgwarden's own upstream: a prefix and 64 random bits; false (the session fails) without randomness. */
static bool own_name(session *s, const char *prefix, char *out, size_t outsz)
{
	uint8_t r[8];

	if (!pgw_random_bytes(r, sizeof(r))) {
		client_fail(s, "53200", "pgwarden: no random bytes for an internal name", NULL);
		return false;
	}
	snprintf(out, outsz, "%s%02x%02x%02x%02x%02x%02x%02x%02x", prefix, r[0], r[1], r[2], r[3], r[4], r[5], r[6],
		 r[7]);
	return true;
}

/* Queue 'b' upstream, owing one swallowed entry per kind in 'kinds'. */
static relay_status send_own(session *s, pktbuf *b, const tl_kind *kinds, int n)
{
	int i;

	for (i = 0; i < n && !b->failed; i++)
		if (!tl_push(&s->tl, kinds[i], TL_SWALLOW))
			b->failed = true;
	if (b->failed) {
		pktbuf_free(b);
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return RELAY_STOP;
	}
	evbuffer_add(relay_upstream_out(s), b->data, b->len);
	pktbuf_free(b);
	return RELAY_GO;
}

relay_status relay_send_own_message(session *s, const uint8_t *msg, size_t len, tl_kind kind)
{
	pktbuf b;

	pktbuf_init(&b);
	pkt_put_bytes(&b, msg, len);
	return send_own(s, &b, &kind, 1);
}

/* The pin as a simple Query, between batches. */
static relay_status repin_simple(session *s, const char *sql)
{
	static const tl_kind kinds[] = { TL_QUERY };
	pktbuf b;

	pktbuf_init(&b);
	pkt_begin(&b, 'Q');
	pkt_put_cstr(&b, sql);
	pkt_end(&b);
	return send_own(s, &b, kinds, 1);
}

/*
 * The pin inside an extended batch (after an Execute of RESET ALL, before
 * the client's next message): Parse, Bind, Execute and Close of one
 * set_config statement under a name of our own, each owing one swallowed
 * answer. It runs in the batch's implicit transaction, so a later error
 * rolls it back together with the reset.
 */
static relay_status repin_extended(session *s, const char *sql)
{
	static const tl_kind kinds[] = { TL_PARSE, TL_BIND, TL_EXECUTE, TL_CLOSE };
	char name[48];
	pktbuf b;

	if (!own_name(s, "pgwarden_pin_", name, sizeof(name)))
		return RELAY_STOP;
	pktbuf_init(&b);
	pkt_begin(&b, 'P');
	pkt_put_cstr(&b, name);
	pkt_put_cstr(&b, sql);
	pkt_put_u16(&b, 0);
	pkt_end(&b);
	pkt_begin(&b, 'B');
	pkt_put_cstr(&b, name); /* portal */
	pkt_put_cstr(&b, name); /* statement */
	pkt_put_u16(&b, 0);
	pkt_put_u16(&b, 0);
	pkt_put_u16(&b, 0);
	pkt_end(&b);
	pkt_begin(&b, 'E');
	pkt_put_cstr(&b, name);
	pkt_put_u32(&b, 0);
	pkt_end(&b);
	pkt_begin(&b, 'C');
	pkt_put_u8(&b, 'S');
	pkt_put_cstr(&b, name);
	pkt_end(&b);
	return send_own(s, &b, kinds, 4);
}

/*
 * A walled target's verdict on a borrow's pin, on the very backend lent:
 * anything but 'ok' (walls missing, another key) fails this swallowed
 * statement, and a failed pin ends the session (own_request_failed). Its
 * operators are qualified: it runs under the client's search_path, where
 * a bare '=' could be the client's own operator (see pool_settings.c).
 */
#define WALL_CHECK_OR_FAIL                                                                               \
	"SELECT (CASE WHEN s OPERATOR(pg_catalog.=) 'ok' THEN '1' ELSE 'the database says the pin is ' " \
	"OPERATOR(pg_catalog.||) s END)::pg_catalog.int4 FROM pgwarden_wall.pin_status() AS s"

/* The pin for this session between batches: the client's startup settings, then identity, in one Query. */
static char *repin_sql(session *s, const pin_wall *w)
{
	char *pin = pin_sql_build_walled(s->cfg, s->who, s->up.read_only, w), *sql;
	const char *settings = s->settings_sql ? s->settings_sql : "";
	const char *own = s->pool_settings_sql ? s->pool_settings_sql : ""; /* transaction mode: its SETs */
	bool check = s->wall_check_due && wall_required(s->target);

	if (!pin)
		return NULL;
	if (asprintf(&sql, "%s%s%s%s%s%s%s", settings, settings[0] ? "; " : "", own, own[0] ? "; " : "", pin,
		     check ? "; " : "", check ? WALL_CHECK_OR_FAIL : "") < 0)
		sql = NULL;
	free(pin);
	s->wall_check_due = false;
	return sql;
}

/*
 * Pin in front of the client's next request. A pooled connection carries
 * nothing of this client (it was reset to "nobody", or the client ran
 * RESET ALL / DISCARD ALL): the client's own startup settings go first,
 * then role, actor, tenant, claims and the read-only default, so identity
 * is set last and nothing in the settings can touch it.
 */
relay_status relay_repin(session *s)
{
	char *sql;
	relay_status st = RELAY_GO;
	pin_wall w;

	if (s->closing)
		return RELAY_STOP;
	/* Skipping to Sync, reading COPY data, or in a failed transaction, the server would not run it: wait. */
	if (!s->tl.repin || s->tl.mode != TL_MODE_NORMAL)
		return RELAY_GO;
	/* RESET ALL cleared the walls' signatures too: a walled target gets them signed again. */
	w = upstream_pin_wall(s);
	sql = s->tl.batch_open ? pin_sql_build_single_walled(s->cfg, s->who, s->up.read_only, &w) : repin_sql(s, &w);
	if (!sql) {
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return RELAY_STOP;
	}
	s->tl.repin = false;
	if (s->tl.batch_open && s->settings_sql && s->settings_sql[0])
		st = repin_extended(s, s->settings_sql);
	if (st == RELAY_GO && s->tl.batch_open && s->pool_settings_sql && s->pool_settings_sql[0])
		st = repin_extended(s, s->pool_settings_sql);
	if (st == RELAY_GO)
		st = s->tl.batch_open ? repin_extended(s, sql) : repin_simple(s, sql);
	if (st == RELAY_GO && s->borrow_pin_due && s->tl.count > 0)
		tl_at(&s->tl, s->tl.count - 1)->quiet = true;
	s->borrow_pin_due = false;
	free(sql);
	return st;
}

/*
 * The poison that takes a refused message's place upstream. It fails with
 * an ErrorResponse and changes nothing, so the server aborts a transaction
 * block and, in the extended protocol, skips to Sync, exactly as if the
 * refused message itself had failed; and while the server is already
 * skipping it is ignored like the message it replaces.
 * - For a Query or FunctionCall: a Query that fails (the gate may give one
 *   running the statements before a denied one first).
 * - For a Parse of the unnamed statement: a Parse of the unnamed statement
 *   that fails to parse. Why not the Execute: PostgreSQL drops the unnamed
 *   statement before it parses a new one (postgres.c, exec_parse_message),
 *   so after the server's own error at that Parse the old unnamed statement
 *   is gone, and after a denial it must be gone too.
 * - For another extended-protocol message: Execute of a portal that cannot
 *   exist (its name has 64 random bits chosen per denial).
 */
static bool add_poison(session *s, bool simple, bool unnamed_parse, pktbuf *b)
{
	char portal[48];

	if (unnamed_parse) {
		pkt_begin(b, 'P');
		pkt_put_cstr(b, "");
		pkt_put_cstr(b, "pgwarden denied this statement"); /* a syntax error: nothing runs */
		pkt_put_u16(b, 0);
		pkt_end(b);
		return true;
	}
	if (simple) {
		pkt_begin(b, 'Q');
		pkt_put_cstr(b, "pgwarden denied this statement");
		pkt_end(b);
		return true;
	}
	if (!own_name(s, "pgwarden_denied_", portal, sizeof(portal)))
		return false;
	pkt_begin(b, 'E');
	pkt_put_cstr(b, portal);
	pkt_put_u32(b, 0);
	pkt_end(b);
	return true;
}

/*
 * The poison for a denied Bind: the client's own Bind, cut short so that it
 * fails where a Bind the server cannot plan fails, after CreatePortal
 * (postgres.c, exec_bind_message): the old unnamed portal is dropped, a
 * portal name in use is refused (42P03), a missing statement is 26000, and
 * in a transaction block the new portal stays behind, failed and empty, as
 * it would on a direct connection. Why it runs nothing: the first
 * parameter's length claims more bytes than the message holds (no
 * parameter's input function is called), or with no parameters, the one
 * result format announced is missing; either is "insufficient data left in
 * message" (08P01) before planning. Names and formats are the client's, so
 * the server's checks before CreatePortal answer as they would have.
 */
static void add_bind_poison(const uint8_t *body, size_t len, pktbuf *b)
{
	pktread r;
	const char *portal = "", *stmt = "";
	const uint8_t *fmts = NULL;
	uint16_t nfmt = 0, nparams = 0;

	pktread_init(&r, body, len);
	if (!rd_cstr(&r, &portal, NULL) || !rd_cstr(&r, &stmt, NULL) || !rd_u16(&r, &nfmt) ||
	    !rd_bytes(&r, 2 * (size_t)nfmt, &fmts) || !rd_u16(&r, &nparams)) {
		nfmt = nparams = 0; /* malformed after the names: no formats, no values; it fails all the same */
		fmts = NULL;
	}
	pkt_begin(b, 'B');
	pkt_put_cstr(b, portal);
	pkt_put_cstr(b, stmt);
	pkt_put_u16(b, nfmt);
	if (nfmt)
		pkt_put_bytes(b, fmts, 2 * (size_t)nfmt);
	pkt_put_u16(b, nparams);
	if (nparams)
		pkt_put_u32(b, 0x7FFFFFFF); /* the first value's length: more than is left */
	else
		pkt_put_u16(b, 1); /* one result format code, and none follows */
	pkt_end(b);
}

/* The name a refused Parse or Bind message would have changed (its body's first string). */
static const char *refused_name(const uint8_t *msg, size_t total_len)
{
	return total_len > 5 && memchr(msg + 5, '\0', total_len - 5) ? (const char *)msg + 5 : NULL;
}

/* Which answer completes a poison's entry: the message the server takes it for. */
static tl_kind poison_kind(bool unnamed_parse, bool bind, bool simple)
{
	if (unnamed_parse)
		return TL_PARSE;
	if (bind)
		return TL_BIND;
	return simple ? TL_QUERY : TL_EXECUTE;
}

relay_status relay_refuse(session *s, char type, size_t total_len, uint8_t *err, size_t err_len, const uint8_t *query,
			  size_t query_len, tl_entry **entry)
{
	bool simple = (type == 'Q' || type == 'F');
	const uint8_t *msg = evbuffer_pullup(s->client.io.in, (ev_ssize_t)total_len);
	const char *name = msg ? refused_name(msg, total_len) : NULL;
	bool unnamed_parse = type == 'P' && name && name[0] == '\0';
	bool bind = type == 'B' && name;
	struct tl_changes drop = TAILQ_HEAD_INITIALIZER(drop);
	tl_entry *e;
	pktbuf b;

	pktbuf_init(&b);
	if (query)
		pkt_put_bytes(&b, query, query_len);
	else if (bind)
		add_bind_poison(msg + 5, total_len - 5, &b);
	else if (!add_poison(s, simple, unnamed_parse, &b)) {
		evbuffer_drain(s->client.io.in, total_len);
		free(err);
		pktbuf_free(&b);
		return RELAY_STOP;
	}
	/*
	 * The poison Parse drops the unnamed statement when the server runs it
	 * (not when it skips it), and the poison Bind may drop or leave behind
	 * its portal (pipeline.c, refuse_bind()): a doubtful change with no
	 * meaning, refused by the poison's error, so the name is unknown meanwhile.
	 */
	if ((unnamed_parse || bind) &&
	    !tl_change_add(&drop, bind ? TL_NS_PORTAL : TL_NS_STMT, TL_PUT, name, NULL, NULL, 0, 0, true, false))
		b.failed = true;
	evbuffer_drain(s->client.io.in, total_len);
	e = b.failed ? NULL : tl_push(&s->tl, poison_kind(unnamed_parse, bind, simple), TL_DENY);
	if (e)
		tl_adopt(&s->tl, e, &drop);
	tl_changes_free(&drop);
	if (!e) {
		free(err);
		pktbuf_free(&b);
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return RELAY_STOP;
	}
	/*
	 * Why SKIP now, before the poison's answer: an extended-protocol poison
	 * always fails (or is skipped after an earlier error), so the server
	 * ignores every later message up to Sync (postgres.c, ignore_till_sync).
	 * Judging those messages would predict name changes (Parse, Bind, Close,
	 * DECLARE) the server never makes; they are dropped unjudged instead.
	 */
	if (!simple) {
		s->tl.batch_open = true;
		tl_set_mode(&s->tl, TL_MODE_SKIP);
	}
	e->deny_msg = err; /* ownership moves to the entry */
	e->deny_len = err_len;
	evbuffer_add(relay_upstream_out(s), b.data, b.len);
	pktbuf_free(&b);
	*entry = e;
	return RELAY_GO;
}
