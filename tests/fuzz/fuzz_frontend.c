/*
 * fuzz_frontend.c - libFuzzer target for a stream of frontend messages of a
 * ready session: cut into frames with frame_peek, each body read with the
 * pktread cursor exactly as proxy/frontend.c does for Query, Parse, Bind,
 * Execute, Describe, Close and Sync, feeding the statement/portal tables
 * (proxy/stmt_table.c), the Bind parameter reader of proxy/gate.c
 * (bind_params, mirrored here because it is static there) and the owed FIFO
 * (proxy/owed.c), with the server's answers simulated so entries are popped,
 * errors skip to Sync, and refs are taken.
 *
 * The session logic itself (libevent, gate, upstream) is not linked: this
 * target is about the bytes. Keep the readers below in step with frontend.c.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/frame.h"
#include "protocol/bind.h"
#include "protocol/pktread.h"
#include "proxy/owed.h"
#include "proxy/stmt_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* stmt_table.c releases classifier facts; the fuzzer never makes any. */
struct policy_facts;
void policy_facts_unref(const struct policy_facts *f);
void policy_facts_unref(const struct policy_facts *f)
{
	if (f)
		abort();
}

#define FUZZ_MAX_MESSAGE (1u << 20) /* length word limit, as config max_message_size */
#define MAX_AUDIT_PARAMS 32

typedef struct sim {
	stmt_table stmts;
	owed_queue owed;
	uint64_t next_ref;
} sim;

/* The real reader (protocol/bind.c), touching every value the audit record would read. */
static int bind_params(const uint8_t *p, size_t len, int max)
{
	audit_param out[64];
	int n = bind_read_params(p, len, out, max < 64 ? max : 64), i, seen = 0;

	for (i = 0; i < n; i++)
		if (out[i].len > 0)
			seen += out[i].value[0] + out[i].value[out[i].len - 1] + out[i].format;
	(void)seen;
	return n;
}

static void expect(sim *s, owed_kind kind, bool with_ref)
{
	owed *o;

	if (!owed_expects(&s->owed, kind))
		return;
	o = owed_push(&s->owed, kind);
	if (o && with_ref) {
		uint64_t refs[3] = {++s->next_ref, ++s->next_ref, ++s->next_ref};
		if (!owed_set_refs(o, refs, (uint32_t)(s->next_ref % 4)))
			abort();
	}
}

/* frontend.c on_query */
static bool on_query(sim *s, const uint8_t *body, uint32_t len)
{
	if (len == 0 || body[len - 1] != '\0' || memchr(body, '\0', len) != body + len - 1)
		return false;
	expect(s, OWED_QUERY, true);
	return true;
}

/* frontend.c on_parse, then gate_parse's table update */
static bool on_parse(sim *s, const uint8_t *body, uint32_t len)
{
	pktread r;
	const char *name, *query;
	size_t qlen;
	int16_t nparams;
	const uint8_t *oids;
	stmt_info *si;

	pktread_init(&r, body, len);
	rd_cstr(&r, &name, NULL);
	rd_cstr(&r, &query, &qlen);
	rd_i16(&r, &nparams);
	if (nparams < 0 || !rd_bytes(&r, 4 * (size_t)(nparams < 0 ? 0 : nparams), &oids) || !pktread_done(&r))
		return false;
	if (strlen(name) >= len || strlen(query) != qlen)
		abort(); /* the cursor handed out a string that is not inside the body */
	si = stmt_info_new(query, qlen, NULL);
	if (!si || !stmt_table_put(&s->stmts, name, si))
		abort();
	stmt_info_unref(si);
	expect(s, OWED_PARSE, false);
	return true;
}

/* frontend.c on_bind, then gate_bind */
static bool on_bind(sim *s, const uint8_t *body, uint32_t len)
{
	pktread r;
	const char *portal, *stmt;
	stmt_info *si;

	pktread_init(&r, body, len);
	rd_cstr(&r, &portal, NULL);
	rd_cstr(&r, &stmt, NULL);
	if (r.bad)
		return false;
	si = stmt_table_get(&s->stmts, stmt);
	if (!si) {
		portal_table_del(&s->stmts, portal);
		return true; /* denied: poison, the relay owes an Execute-shaped answer */
	}
	if (!portal_table_put(&s->stmts, portal, si, body + r.pos, len - r.pos))
		abort();
	expect(s, OWED_BIND, false);
	return true;
}

/* frontend.c on_execute, then gate_execute / audit_execute */
static bool on_execute(sim *s, const uint8_t *body, uint32_t len)
{
	pktread r;
	const char *portal;
	int32_t max_rows;
	stmt_info *si;
	const uint8_t *params;
	size_t plen;

	pktread_init(&r, body, len);
	rd_cstr(&r, &portal, NULL);
	rd_i32(&r, &max_rows);
	if (!pktread_done(&r))
		return false;
	si = portal_table_get(&s->stmts, portal);
	if (!si)
		return true;
	if (strlen(si->text) > si->len)
		abort();
	params = portal_table_params(&s->stmts, portal, &plen);
	if (params)
		bind_params(params, plen, MAX_AUDIT_PARAMS);
	expect(s, OWED_EXECUTE, true);
	return true;
}

/* frontend.c on_describe_or_close */
static bool on_describe_or_close(sim *s, char type, const uint8_t *body, uint32_t len)
{
	pktread r;
	uint8_t what;
	const char *name;

	pktread_init(&r, body, len);
	rd_u8(&r, &what);
	rd_cstr(&r, &name, NULL);
	if (!pktread_done(&r) || (what != 'S' && what != 'P'))
		return false;
	if (type == 'C') {
		if (what == 'S')
			stmt_table_del(&s->stmts, name);
		else
			portal_table_del(&s->stmts, name);
	}
	expect(s, type == 'D' ? OWED_DESCRIBE : OWED_CLOSE, false);
	return true;
}

/* A server answer chosen by the input: a result for the head entry, or an error. */
static void server_answers(sim *s, uint8_t how)
{
	owed *head = owed_head(&s->owed);

	if (!head)
		return;
	(void)owed_peek_ref(head);
	(void)owed_take_ref(head);
	if ((how & 3) == 3) {
		owed_kind k = head->kind;

		owed_pop(&s->owed);
		if (k == OWED_PARSE || k == OWED_BIND || k == OWED_DESCRIBE || k == OWED_EXECUTE ||
		    k == OWED_CLOSE)
			owed_error_skip(&s->owed, NULL);
	} else if (how & 1)
		owed_pop(&s->owed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sim s;
	size_t off = 0;

	memset(&s, 0, sizeof(s));
	stmt_table_init(&s.stmts);
	owed_init(&s.owed);
	while (off < size) {
		char type = 0;
		uint32_t blen = 0;
		const uint8_t *body;
		bool ok = true;

		switch (frame_peek(data + off, size - off, FUZZ_MAX_MESSAGE, &type, &blen)) {
		case FRAME_NEED_MORE:
			goto done;
		case FRAME_MALFORMED:
			goto done; /* 08P01 invalid message length: the session ends */
		case FRAME_OK:
			break;
		}
		if (blen > FUZZ_MAX_MESSAGE - 4)
			abort();
		if (size - off - 5 < blen)
			goto done; /* the rest of the message is still on its way */
		body = data + off + 5;
		switch (type) {
		case 'Q': ok = on_query(&s, body, blen); break;
		case 'P': ok = on_parse(&s, body, blen); break;
		case 'B': ok = on_bind(&s, body, blen); break;
		case 'E': ok = on_execute(&s, body, blen); break;
		case 'D':
		case 'C': ok = on_describe_or_close(&s, type, body, blen); break;
		case 'S':
			ok = blen == 0;
			if (ok)
				expect(&s, OWED_SYNC, false);
			break;
		case 'H': case 'c': case 'f': case 'd': break;
		case 'X': goto done;
		default: ok = false;
		}
		if (!ok)
			goto done; /* 08P01: the session ends */
		off += 5 + (size_t)blen;
		/* the byte after each message (if any) also steers the simulated server */
		if (off < size)
			server_answers(&s, data[off]);
	}
done:
	owed_free(&s.owed);
	stmt_table_free(&s.stmts);
	return 0;
}
