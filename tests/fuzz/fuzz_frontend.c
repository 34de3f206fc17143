/*
 * fuzz_frontend.c - libFuzzer target for a stream of frontend messages of a
 * ready session: cut into frames with frame_peek, each body read by the
 * production readers proxy/frontend.c calls (protocol/femsg.c: Query, Parse,
 * Bind, Execute, Describe, Close; protocol/bind.c: the Bind parameters the
 * audit reads), feeding the statement/portal tables (proxy/stmt_table.c) and
 * the timeline (proxy/pipeline.c: entries, pending name changes replayed over
 * the confirmed tables, predicted mode), with the server's answers simulated
 * so entries complete, errors skip to Sync, transactions end and refs are
 * taken.
 *
 * The session logic itself (libevent, gate, upstream) is not linked: this
 * target is about the bytes. What each on_*() below does with the fields
 * stands in for the gate's table updates; no message is read by a copy.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/bind.h"
#include "protocol/femsg.h"
#include "protocol/frame.h"
#include "proxy/pipeline.h"
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
	timeline tl;       /* the session's timeline: entries, names, mode */
	uint64_t next_ref; /* audit refs handed out so far */
} sim;

/* The real reader (protocol/bind.c), touching every value the audit record would read. */
static int bind_params(const uint8_t *p, size_t len, int max)
{
	bind_param out[64];
	int n = bind_read_params(p, len, out, max < 64 ? max : 64), i, seen = 0;

	for (i = 0; i < n; i++)
		if (out[i].len > 0)
			seen += out[i].value[0] + out[i].value[out[i].len - 1] + out[i].format;
	(void)seen;
	return n;
}

/* Owe an answer (unless the server skips to Sync), adopting 'changes'. */
static void expect(sim *s, tl_kind kind, bool with_ref, struct tl_changes *changes)
{
	tl_entry *e;

	if (s->tl.mode == TL_MODE_SKIP && kind != TL_SYNC) {
		tl_changes_free(changes);
		return;
	}
	if (kind == TL_SYNC && s->tl.mode == TL_MODE_SKIP)
		tl_set_mode(&s->tl, TL_MODE_NORMAL);
	if (!(e = tl_push(&s->tl, kind, TL_FORWARD)))
		abort();
	if (with_ref) {
		uint64_t refs[3] = {++s->next_ref, ++s->next_ref, ++s->next_ref};
		if (!tl_set_refs(e, refs, (uint32_t)(s->next_ref % 4)))
			abort();
	}
	tl_adopt(&s->tl, e, changes);
}

static bool name_used(sim *s, tl_ns ns, const char *name)
{
	stmt_info *si;

	return name[0] && tl_lookup(&s->tl, ns, name, &si) != TL_NAME_NONE;
}

/* frontend.c on_query */
static bool on_query(sim *s, const uint8_t *body, uint32_t len)
{
	struct tl_changes none = TAILQ_HEAD_INITIALIZER(none);
	fe_query m;

	if (!fe_read_query(body, len, &m))
		return false;
	if (strlen(m.sql) != m.len)
		abort(); /* the reader let a NUL through: the classifier would see less than the server */
	expect(s, TL_QUERY, true, &none);
	return true;
}

/* frontend.c on_parse, then gate_parse's table update */
static bool on_parse(sim *s, const uint8_t *body, uint32_t len)
{
	fe_parse m;
	stmt_info *si;
	struct tl_changes ch = TAILQ_HEAD_INITIALIZER(ch);

	if (!fe_read_parse(body, len, &m))
		return false;
	if (strlen(m.name) >= len || strlen(m.query) != m.query_len ||
	    (m.n_params && m.param_oids + 4 * (size_t)m.n_params > body + len))
		abort(); /* the cursor handed out a field that is not inside the body */
	si = stmt_info_new(m.query, m.query_len, NULL);
	if (!si ||
	    !tl_change_add(&ch, TL_NS_STMT, TL_PUT, m.name, si, NULL, 0, 0, name_used(s, TL_NS_STMT, m.name), false))
		abort();
	stmt_info_unref(si);
	expect(s, TL_PARSE, false, &ch);
	return true;
}

/* frontend.c on_bind, then gate_bind */
static bool on_bind(sim *s, const uint8_t *body, uint32_t len)
{
	fe_bind m;
	stmt_info *si;
	struct tl_changes ch = TAILQ_HEAD_INITIALIZER(ch);

	if (!fe_read_bind(body, len, &m))
		return false;
	if (m.rest < body || m.rest + m.rest_len != body + len)
		abort();
	if (tl_lookup(&s->tl, TL_NS_STMT, m.stmt, &si) != TL_NAME_KNOWN) {
		expect(s, TL_EXECUTE, false, &ch); /* denied: poison, the relay owes an Execute-shaped answer */
		return true;
	}
	if (!tl_change_add(&ch, TL_NS_PORTAL, TL_PUT, m.portal, si, m.rest, m.rest_len, 0,
			   name_used(s, TL_NS_PORTAL, m.portal), false))
		abort();
	expect(s, TL_BIND, false, &ch);
	return true;
}

/* frontend.c on_execute, then gate_execute / audit_execute */
static bool on_execute(sim *s, const uint8_t *body, uint32_t len)
{
	fe_execute m;
	stmt_info *si;
	const uint8_t *params;
	size_t plen;
	struct tl_changes ch = TAILQ_HEAD_INITIALIZER(ch);

	if (!fe_read_execute(body, len, &m))
		return false;
	if (tl_lookup(&s->tl, TL_NS_PORTAL, m.portal, &si) != TL_NAME_KNOWN) {
		expect(s, TL_EXECUTE, false, &ch); /* denied */
		return true;
	}
	if (strlen(si->text) > si->len)
		abort();
	params = tl_portal_params(&s->tl, m.portal, &plen);
	if (params)
		bind_params(params, plen, MAX_AUDIT_PARAMS);
	expect(s, TL_EXECUTE, true, &ch);
	return true;
}

/* frontend.c on_describe_or_close */
static bool on_describe_or_close(sim *s, char type, const uint8_t *body, uint32_t len)
{
	fe_target m;
	struct tl_changes ch = TAILQ_HEAD_INITIALIZER(ch);

	if (!fe_read_target(body, len, &m))
		return false;
	if (type == 'C' && !tl_change_add(&ch, m.what == 'S' ? TL_NS_STMT : TL_NS_PORTAL, TL_DEL, m.name, NULL, NULL,
					  0, 0, false, false))
		abort();
	expect(s, type == 'D' ? TL_DESCRIBE : TL_CLOSE, false, &ch);
	return true;
}

/* A server answer chosen by the input: a result for the head entry, an error, or a transaction end. */
static void server_answers(sim *s, uint8_t how)
{
	tl_entry *head = tl_head(&s->tl);

	if (!head)
		return;
	(void)tl_peek_ref(head);
	(void)tl_take_ref(head);
	if ((how & 3) == 3) {
		head->failed = true;
		if (head->kind == TL_QUERY)
			tl_refuse_from(&s->tl, head, 0);
		else if (head->kind != TL_SYNC)
			tl_error_skip(&s->tl);
	} else if (how & 1) {
		bool ends = (head->kind == TL_SYNC || head->kind == TL_QUERY) && (how & 4);

		if (head->kind == TL_QUERY)
			tl_confirm_index(&s->tl, head, 0);
		tl_complete_head(&s->tl);
		if (ends)
			tl_transaction_ended(&s->tl);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sim s;
	size_t off = 0;

	memset(&s, 0, sizeof(s));
	tl_init(&s.tl);
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
			if (ok) {
				struct tl_changes none = TAILQ_HEAD_INITIALIZER(none);
				expect(&s, TL_SYNC, false, &none);
			}
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
	tl_free(&s.tl);
	return 0;
}
