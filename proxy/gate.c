/*
 * gate.c - classify, decide and audit each statement before it goes upstream.
 *
 * Order per message: refresh the session's config snapshot and token (a
 * reload may have revoked it), classify with the shared classifier (facts
 * are cached), decide per statement, write audit records (the relay holds
 * the upstream bytes until they are written), then say forward or deny.
 */
#include "proxy/gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "conf/windows.h"
#include "proxy/audit_hooks.h"
#include "proxy/catalogs.h"
#include "proxy/client.h"
#include "conf/core/log.h"
#include "proxy/parse_async.h"
#include "proxy/pin.h"
#include "proxy/pool_txn.h"
#include "proxy/relay.h"
#include "proxy/server.h"
#include "proxy/upstream.h"
#include "audit/audit.h"
#include "protocol/pktbuf.h"
#include "protocol/bind.h"

void gate_verdict_clear(gate_verdict *v)
{
	tl_changes_free(&v->changes);
	if (v->refs && v->refs != v->inline_refs)
		free(v->refs);
	v->refs = NULL;
	v->n_refs = 0;
}

static void verdict_init(gate_verdict *v)
{
	v->status = GATE_ALLOW;
	v->sqlstate[0] = v->message[0] = v->detail[0] = v->hint[0] = '\0';
	v->position = 0;
	v->refs = v->inline_refs;
	v->n_refs = 0;
	v->cap_refs = GATE_INLINE_REFS;
	v->deny_at = TL_NO_DENIAL;
	TAILQ_INIT(&v->changes);
	v->repin = false;
	v->rewritten = NULL;
	v->rewritten_len = 0;
}

/* The audit record's protocol: a COPY statement opens the COPY sub-protocol, whichever message carried it. */
static const char *audit_protocol(const policy_facts *facts, const char *carrier)
{
	return facts && (policy_facts_flags(facts) & PF_COPY) ? "copy" : carrier;
}

/* Append an audit ref, growing from the inline storage when needed. */
static bool add_ref(gate_verdict *v, uint64_t ref)
{
	if (v->n_refs == v->cap_refs) {
		uint32_t ncap = v->cap_refs * 2;
		uint64_t *r = v->refs == v->inline_refs ? malloc(sizeof(uint64_t) * ncap)
							: realloc(v->refs, sizeof(uint64_t) * ncap);
		if (!r)
			return false;
		if (v->refs == v->inline_refs)
			memcpy(r, v->inline_refs, sizeof(uint64_t) * v->n_refs);
		v->refs = r;
		v->cap_refs = ncap;
	}
	v->refs[v->n_refs++] = ref;
	return true;
}

static gate_status deny_with(gate_verdict *v, const char *message, const char *detail, const char *hint)
{
	v->status = GATE_DENY;
	snprintf(v->sqlstate, sizeof(v->sqlstate), "42501");
	snprintf(v->message, sizeof(v->message), "%s", message);
	snprintf(v->detail, sizeof(v->detail), "%s", detail ? detail : "");
	snprintf(v->hint, sizeof(v->hint), "%s", hint ? hint : "");
	return v->status;
}

/*
 * A denial, or, when PostgreSQL's own parser rejects the text, the
 * parser's answer (CONTRACT §4): SQLSTATE 42601 with its position. It is
 * never forwarded (a newer server might accept it); the caller answers it
 * through the same path as a denial, so the server's transaction and
 * skip-to-Sync state follow as if the server had raised it.
 */
static gate_status refuse_with(gate_verdict *v, const policy_facts *f, const policy_verdict *pv)
{
	int pos;

	if (f && pv->rule_id == RULE_UNPARSABLE && policy_facts_syntax_error(f, &pos)) {
		deny_with(v, policy_facts_error(f), NULL, NULL);
		v->status = GATE_FAIL;
		snprintf(v->sqlstate, sizeof(v->sqlstate), "42601");
		v->position = pos;
		return v->status;
	}
	return deny_with(v, pv->message, pv->detail, pv->hint);
}

/* Out of memory inside the gate: the session ends. */
static gate_status fail_oom(session *s, gate_verdict *v)
{
	client_fail(s, "53200", "pgwarden: out of memory", NULL);
	v->status = GATE_CLOSED;
	return v->status;
}

/*
 * Bring the session up to the current config snapshot. The token record
 * is found again by actor and secret; if it is gone, expired or no longer
 * allowed on this target, the token was revoked: close the session.
 */
static bool refresh_identity(session *s)
{
	pgw_config *cur = s->srv->cfg;
	time_t now = time(NULL);
	const pgw_token *t, *found = NULL;
	const pgw_target *target;
	size_t n, i;

	if (cur == s->cfg) {
		if (token_usable(s->who, s->target->name, now))
			return true;
		goto revoked;
	}
	target = config_find_target(cur, s->target->name);
	t = target ? tokens_find_actor(cur->tokens, s->who->actor, &n) : NULL;
	for (i = 0; t && i < n && !found; i++) {
		const uint8_t *id = t[i].kind == TOKEN_SHA256 ? t[i].sha256 : t[i].stored_key;
		if (t[i].kind == s->who->kind && memcmp(id, s->secret_id, 32) == 0 &&
		    token_usable(&t[i], target->name, now) && strcmp(t[i].role, s->who->role) == 0 &&
		    ((!t[i].tenant && !s->who->tenant) ||
		     (t[i].tenant && s->who->tenant && strcmp(t[i].tenant, s->who->tenant) == 0)))
			found = &t[i];
	}
	if (!found)
		goto revoked;
	config_unref(s->cfg);
	s->cfg = config_ref(cur);
	s->target = target;
	s->who = found;
	return true;
revoked:
	session_log(LOG_LVL_WARN, s, "token revoked or expired: closing session");
	audit_revoked(s);
	client_fail(s, "28000", "pgwarden: the actor's token was revoked or has expired", NULL);
	return false;
}

static policy_subject subject_of(session *s)
{
	policy_subject subj;

	memset(&subj, 0, sizeof(subj));
	subj.cfg = s->cfg;
	subj.target = s->target;
	subj.who = s->who;
	subj.now = time(NULL);
	subj.in_transaction = s->up.txn_status != 'I';
	/* Without a current catalog, calls of user functions are denied (never judged on an old view). */
	subj.catalog = catalogs_get(s->srv, s->target->name, &subj.catalog_stale);
	subj.stale_names = catalogs_stale_names(s->srv, s->target->name);
	return subj;
}

/* Decide facts, following EXECUTE to the stored PREPARE (as named after 'local''s changes); the first denial wins. */
static void decide_facts(session *s, const policy_subject *subj, const policy_facts *f, const char *text, size_t len,
			 const struct tl_changes *local, policy_verdict *pv)
{
	stmt_info *si;
	char msg[sizeof(pv->message)];

	policy_decide(subj, f, text, len, pv);
	if (pv->deny || !(policy_facts_flags(f) & PF_EXECUTE))
		return;
	switch (tl_lookup_with(&s->tl, local, TL_NS_STMT, policy_facts_name(f), &si)) {
	case TL_NAME_KNOWN:
		if (si->facts)
			policy_decide(subj, si->facts, si->text, si->len, pv);
		break;
	case TL_NAME_NONE:
	case TL_NAME_DOUBTFUL:
		/* Unknown to us, or depending on a request not yet answered: we cannot know what it runs. */
		snprintf(msg, sizeof(msg), "pgwarden: unknown prepared statement \"%s\"", policy_facts_name(f));
		policy_verdict_deny(pv, RULE_UNPARSABLE, msg);
		break;
	}
}

/* An EXECUTE of a statement name whose meaning an unanswered request decides: judge it after the answer. */
static bool execute_awaits(session *s, const policy_facts *f)
{
	return f && (policy_facts_flags(f) & PF_EXECUTE) && policy_facts_name(f) &&
	       tl_doubt_awaits_server(&s->tl, NULL, TL_NS_STMT, policy_facts_name(f));
}

/*
 * Whether a change the gate predicts is doubtful: the name is in use (a PUT
 * on it is refused unless it is gone by then), or the transaction has
 * failed, where the server refuses every statement but ROLLBACK and COMMIT
 * (a CLOSE or DEALLOCATE there changes nothing).
 */
static bool change_doubtful(session *s, bool in_use)
{
	return in_use || s->tl.mode == TL_MODE_FAILED;
}

/* Whether a name is in use once 'local''s changes are made: a PUT on it is refused unless it is gone by then. */
static bool name_in_use(session *s, const struct tl_changes *local, tl_ns ns, const char *name)
{
	stmt_info *si;

	return name[0] != '\0' && tl_lookup_with(&s->tl, local, ns, name, &si) != TL_NAME_NONE;
}

/*
 * PREPARE name AS body: the name means the body. Its text is the body's
 * alone: a protocol Bind of the name runs the body (SQL and protocol
 * statements share one namespace upstream), so that is what its Execute is
 * audited with (the whole PREPARE text if the body cannot be found).
 */
static bool track_prepare(session *s, const policy_facts *f, const char *text, size_t len, gate_verdict *v,
			  uint32_t index)
{
	const policy_facts *inner = policy_facts_inner(f);
	const char *name = policy_facts_name(f);
	stmt_info *si;
	size_t body;
	bool ok;

	/* the scanner lexes as standard_conforming_strings = on: otherwise keep the whole text */
	if (s->up.standard_conforming_strings && policy_prepare_body(text, len, &body) && body < len) {
		text += body;
		len -= body;
	}
	policy_facts_ref(inner);
	if (!(si = stmt_info_new(text, len, inner))) {
		policy_facts_unref(inner);
		return false;
	}
	ok = tl_change_add(&v->changes, TL_NS_STMT, TL_PUT, name, si, NULL, 0, index,
			   change_doubtful(s, name_in_use(s, &v->changes, TL_NS_STMT, name)), false);
	stmt_info_unref(si);
	return ok;
}

/* DECLARE name CURSOR FOR query: a portal of that name; executing it runs the query. */
static bool track_declare(session *s, const policy_facts *f, const char *text, size_t len, gate_verdict *v,
			  uint32_t index)
{
	const char *name = policy_facts_name(f);
	stmt_info *si;
	bool ok;

	if (!name)
		return true;
	policy_facts_ref(f);
	if (!(si = stmt_info_new(text, len, f))) {
		policy_facts_unref(f);
		return false;
	}
	si->cursor = true;
	ok = tl_change_add(&v->changes, TL_NS_PORTAL, TL_PUT, name, si, NULL, 0, index,
			   change_doubtful(s, name_in_use(s, &v->changes, TL_NS_PORTAL, name)),
			   (policy_facts_flags(f) & PF_CURSOR_HOLD) != 0);
	stmt_info_unref(si);
	return ok;
}

/*
 * After an allowed statement: the name changes it makes (PREPARE,
 * DEALLOCATE, DECLARE, CLOSE) go to v->changes for the timeline, tagged
 * with the result index that confirms them; function DDL marks the catalog
 * stale (re-read when the statement's transaction ends). false on out of memory.
 */
static bool track_statement(session *s, const policy_facts *f, const char *text, size_t len, const policy_verdict *pv,
			    gate_verdict *v, uint32_t index)
{
	uint32_t flags = policy_facts_flags(f);
	const char *name = policy_facts_name(f);

	pool_txn_note_statement(s, f); /* transaction pooling: state that holds the client on its connection */
	if (pv->refresh_catalog) {
		catalogs_mark_stale_for(s, f, pv->refresh_names_known);
		s->catalog_refresh_needed = true;
	}
	if (flags & PF_PREPARE)
		return track_prepare(s, f, text, len, v, index);
	/* DISCARD ALL closes every portal and deallocates every named statement (commands/discard.c, DiscardAll) */
	if (flags & PF_DISCARD_ALL)
		return tl_change_add(&v->changes, TL_NS_STMT, TL_CLEAR, NULL, NULL, NULL, 0, index,
				     change_doubtful(s, false), false) &&
		       tl_change_add(&v->changes, TL_NS_PORTAL, TL_CLEAR, NULL, NULL, NULL, 0, index,
				     change_doubtful(s, false), false);
	if (flags & PF_DEALLOCATE)
		return tl_change_add(&v->changes, TL_NS_STMT, name ? TL_DEL : TL_CLEAR, name, NULL, NULL, 0, index,
				     change_doubtful(s, false), false);
	if (flags & PF_DECLARE)
		return track_declare(s, f, text, len, v, index);
	if (flags & PF_CLOSE_CURSOR)
		return tl_change_add(&v->changes, TL_NS_PORTAL, name ? TL_DEL : TL_CLEAR, name, NULL, NULL, 0, index,
				     change_doubtful(s, false), false);
	return true;
}

static void count_decision(session *s, const policy_verdict *pv)
{
	metrics_count_statement(&s->srv->metrics, s->target->name, pv->deny ? "deny" : "allow", pv->rule);
	if (pv->deny)
		session_log(LOG_LVL_WARN, s, "denied: %s", pv->rule ? pv->rule : "?");
}

/*
 * The Query actually sent upstream, when it is not the client's: the
 * pinning SETs spliced in right after each RESET ALL (or DISCARD ALL) that
 * more statements follow, inside the same Query (and so the same implicit
 * transaction), so no later statement runs unpinned; and, when a statement
 * is denied, the statements before it followed by a poison in its place.
 * Their results are swallowed through TL_REF_INTERNAL refs.
 */
typedef struct qbuild {
	pktbuf b;      /* the rewritten Query, started at the first change */
	bool started;  /* b is in use */
	size_t copied; /* bytes of the original text already copied */
	char *pin;     /* the pinning SQL, built once */
} qbuild;

/*
 * A statement that fails at run time whatever the server's state, and
 * changes nothing: a cast of a non-number to int4 fails in parse analysis
 * (22P02). Unlike a syntax error, it fails only when reached, so the
 * statements before it in the Query run first, as they would on the server.
 */
#define GATE_POISON_SQL "SELECT 'pgwarden denied this statement'::pg_catalog.int4"

static void qb_start(qbuild *q)
{
	if (!q->started) {
		pktbuf_init(&q->b);
		pkt_begin(&q->b, 'Q');
		q->started = true;
	}
}

/* Copy the original text up to 'cut', then a ';' and 'extra'. */
static bool qb_insert(qbuild *q, const char *sql, size_t cut, const char *extra)
{
	qb_start(q);
	pkt_put_bytes(&q->b, sql + q->copied, cut - q->copied);
	if (cut > 0)
		pkt_put_u8(&q->b, ';');
	pkt_put_bytes(&q->b, extra, strlen(extra));
	q->copied = cut;
	return !q->b.failed;
}

static bool splice_pin(session *s, qbuild *q, const char *sql, size_t cut, gate_verdict *v)
{
	pin_wall w = upstream_pin_wall(s);
	unsigned k, npin = pin_sql_statements_walled(s->cfg, &w);

	if (!q->pin && !(q->pin = pin_sql_build_walled(s->cfg, s->who, s->up.read_only, &w)))
		return false;
	if (!qb_insert(q, sql, cut, q->pin))
		return false;
	for (k = 0; k < npin; k++)
		if (!add_ref(v, TL_REF_INTERNAL))
			return false;
	return true;
}

/* Finish the rewritten Query into v (if anything changed); 'rest' copies what is left. */
static bool qb_finish(qbuild *q, const char *sql, size_t len, bool rest, gate_verdict *v)
{
	bool ok = true;

	free(q->pin);
	if (!q->started)
		return true;
	if (rest)
		pkt_put_bytes(&q->b, sql + q->copied, len - q->copied);
	pkt_put_u8(&q->b, 0);
	pkt_end(&q->b);
	if (q->b.failed) {
		pktbuf_free(&q->b);
		ok = false;
	} else {
		v->rewritten = q->b.data;
		v->rewritten_len = q->b.len;
	}
	return ok;
}

#ifdef PGW_RELAY_ONLY
/*
 * Benchmark build only (make bench builds it as pgwarden-relay; it is never
 * installed): statements are audited but not classified, to measure what
 * the policy engine costs against the bare relay in the same run.
 */
static gate_status relay_only_query(session *s, const char *sql, size_t len, gate_verdict *v)
{
	policy_verdict pv;

	memset(&pv, 0, sizeof(pv));
	if (len && !add_ref(v, audit_statement(s, "simple", sql, len, &pv)))
		return fail_oom(s, v);
	return GATE_ALLOW;
}
#endif

/* One allowed statement of a Query: audit, name changes, and the pin spliced after a reset. */
static bool allow_statement(session *s, const char *sql, const policy_analysis *a, size_t i, const policy_verdict *pv,
			    qbuild *q, gate_verdict *v)
{
	const policy_stmt *st = &a->v[i];

	count_decision(s, pv);
	if (!add_ref(v, audit_statement(s, audit_protocol(st->facts, "simple"), sql + st->offset, st->len, pv)) ||
	    !track_statement(s, st->facts, sql + st->offset, st->len, pv, v, v->n_refs - 1))
		return false;
	if (!(policy_facts_flags(st->facts) & PF_SESSION_RESET))
		return true;
	if (i + 1 == a->n) {
		v->repin = true; /* re-pinned right after this Query */
		return true;
	}
	return splice_pin(s, q, sql, st->offset + st->len, v);
}

/*
 * Statement i is denied. As on the server, the statements before it run
 * (the client sees their results, and a BEGIN among them leaves the
 * session in a failed transaction block), then the poison fails in its
 * place; the statements after it never run. All of them are audited.
 */
static bool deny_statement(session *s, const char *sql, const policy_analysis *a, size_t i, const policy_verdict *pv,
			   qbuild *q, gate_verdict *v)
{
	size_t j;

	for (j = i; j < a->n; j++) {
		policy_verdict copy;

		policy_verdict_copy(&copy, pv);
		audit_statement(s, audit_protocol(a->v[j].facts, "simple"), sql + a->v[j].offset, a->v[j].len, &copy);
		count_decision(s, &copy);
	}
	refuse_with(v, a->v[i].facts, pv);
	if (i == 0) {
		q->copied = 0;
		return qb_insert(q, sql, 0, GATE_POISON_SQL);
	}
	v->deny_at = v->n_refs;
	return qb_insert(q, sql, a->v[i - 1].offset + a->v[i - 1].len, GATE_POISON_SQL);
}

gate_status gate_query(session *s, const char *sql, size_t len, gate_verdict *v)
{
	policy_lexctx lx = { s->up.standard_conforming_strings };
	policy_analysis a;
	policy_subject subj;
	qbuild q = { .started = false, .copied = 0, .pin = NULL };
	bool ok = true;
	size_t i;

	verdict_init(v);
	if (!refresh_identity(s))
		return v->status = GATE_CLOSED;
#ifdef PGW_RELAY_ONLY
	return relay_only_query(s, sql, len, v);
#endif
	switch (parse_async_analyze(s, sql, len, &lx, &a)) {
	case PARSE_DONE:
		break;
	case PARSE_WAITING:
		return v->status = GATE_WAIT;
	case PARSE_FAILED:
		return fail_oom(s, v);
	}
	for (i = 0; i < a.n; i++)
		if (execute_awaits(s, a.v[i].facts)) {
			policy_analysis_clear(&a);
			return v->status = GATE_AWAIT;
		}
	subj = subject_of(s);
	/* In order: a statement is judged with the names the earlier ones in the Query made (PREPARE; EXECUTE). */
	for (i = 0; ok && i < a.n && v->status == GATE_ALLOW; i++) {
		policy_verdict pv;

		decide_facts(s, &subj, a.v[i].facts, sql + a.v[i].offset, a.v[i].len, &v->changes, &pv);
		ok = pv.deny ? deny_statement(s, sql, &a, i, &pv, &q, v) : allow_statement(s, sql, &a, i, &pv, &q, v);
	}
	ok = qb_finish(&q, sql, len, v->status == GATE_ALLOW, v) && ok;
	policy_analysis_clear(&a);
	return ok ? v->status : fail_oom(s, v);
}

/* Deny and audit one extended-protocol statement text (facts NULL if it has none). */
static gate_status deny_extended(session *s, const policy_facts *facts, const char *text, size_t len,
				 const policy_verdict *pv, gate_verdict *v)
{
	audit_statement(s, audit_protocol(facts, "extended"), text, len, pv);
	count_decision(s, pv);
	return refuse_with(v, facts, pv);
}

gate_status gate_parse(session *s, const char *name, const char *sql, size_t len, gate_verdict *v)
{
	policy_lexctx lx = { s->up.standard_conforming_strings };
	policy_analysis a;
	policy_verdict pv;
	policy_subject subj;
	stmt_info *si;
	const policy_facts *facts = NULL;
	bool ok;

	verdict_init(v);
	if (!refresh_identity(s))
		return v->status = GATE_CLOSED;
#ifdef PGW_RELAY_ONLY
	(void)lx;
	a.n = 0;
	a.v = NULL;
#else
	switch (parse_async_analyze(s, sql, len, &lx, &a)) {
	case PARSE_DONE:
		break;
	case PARSE_WAITING:
		return v->status = GATE_WAIT;
	case PARSE_FAILED:
		return fail_oom(s, v);
	}
#endif
	if (a.n > 1) {
		/* PostgreSQL's own answer (exec_parse_message): never bet on our split matching the server's. */
		policy_analysis_clear(&a);
		policy_verdict_deny(&pv, RULE_UNPARSABLE, "cannot insert multiple commands into a prepared statement");
		deny_extended(s, NULL, sql, len, &pv, v);
		v->status = GATE_FAIL;
		snprintf(v->sqlstate, sizeof(v->sqlstate), "42601");
		return v->status;
	}
	if (a.n == 1 && execute_awaits(s, a.v[0].facts)) {
		policy_analysis_clear(&a);
		return v->status = GATE_AWAIT;
	}
	if (a.n == 1) {
		subj = subject_of(s);
		decide_facts(s, &subj, a.v[0].facts, sql, len, NULL, &pv);
		/* Window rules are judged at Execute (a window may open in between); the rest now. */
		if (pv.deny && !policy_rule_judged_at_execute(pv.rule_id)) {
			deny_extended(s, a.v[0].facts, sql, len, &pv, v);
			policy_analysis_clear(&a);
			return v->status;
		}
		facts = a.v[0].facts;
		policy_facts_ref(facts);
	}
	policy_analysis_clear(&a);
	si = stmt_info_new(sql, len, facts);
	if (!si && facts)
		policy_facts_unref(facts);
	/* a named statement in use makes the server refuse the Parse (42P05): the change is doubtful */
	ok = si && tl_change_add(&v->changes, TL_NS_STMT, TL_PUT, name, si, NULL, 0, 0,
				 change_doubtful(s, name_in_use(s, NULL, TL_NS_STMT, name)), false);
	stmt_info_unref(si);
	return ok ? GATE_ALLOW : fail_oom(s, v);
}

/*
 * Bind: the portal will mean the statement. What pgwarden denies at
 * Execute is judged here as well: the server may refuse it already at
 * Bind (SELECT ... FOR UPDATE in a read-only transaction plans its row
 * locks there: 25006), and the client must see pgwarden's denial, not the
 * server's error.
 */
/*
 * What a statement or portal name means now. False when it is not known for
 * sure: v->status is then GATE_AWAIT (the server's answer to an earlier
 * request decides it, and is on its way) or GATE_DENY with 'unknown'.
 */
static bool lookup_known(session *s, tl_ns ns, const char *name, const char *unknown, stmt_info **si, gate_verdict *v)
{
	if (tl_lookup(&s->tl, ns, name, si) == TL_NAME_KNOWN)
		return true;
	if (tl_doubt_awaits_server(&s->tl, NULL, ns, name))
		v->status = GATE_AWAIT;
	else
		deny_with(v, unknown, "rule: unparsable", NULL);
	return false;
}

gate_status gate_bind(session *s, const char *portal, const char *stmt, const uint8_t *rest, size_t rest_len,
		      gate_verdict *v)
{
	stmt_info *si;
	policy_verdict pv;
	policy_subject subj;

	verdict_init(v);
	/* A statement we never saw prepared cannot be judged: default deny. */
	if (!lookup_known(s, TL_NS_STMT, stmt, "pgwarden: unknown prepared statement", &si, v))
		return v->status;
	if (!refresh_identity(s))
		return v->status = GATE_CLOSED;
#ifndef PGW_RELAY_ONLY
	if (execute_awaits(s, si->facts))
		return v->status = GATE_AWAIT;
	if (si->facts) {
		subj = subject_of(s);
		decide_facts(s, &subj, si->facts, si->text, si->len, NULL, &pv);
		if (pv.deny)
			return deny_extended(s, si->facts, si->text, si->len, &pv, v);
	}
#else
	(void)pv;
	(void)subj;
#endif
	if (!tl_change_add(&v->changes, TL_NS_PORTAL, TL_PUT, portal, si, s->cfg->audit_params ? rest : NULL, rest_len,
			   0, change_doubtful(s, name_in_use(s, NULL, TL_NS_PORTAL, portal)), false))
		return fail_oom(s, v);
	return GATE_ALLOW;
}

/* The statement record of an Execute, with its Bind parameters when audit_params is on. */
static uint64_t audit_execute(session *s, const char *portal, const stmt_info *si, const policy_verdict *pv)
{
	audit_param few[GATE_MAX_AUDIT_PARAMS], *params = few;
	size_t plen;
	const uint8_t *p = s->cfg->audit_params ? tl_portal_params(&s->tl, portal, &plen) : NULL;
	int n = -1, max = GATE_MAX_AUDIT_PARAMS;
	uint64_t seq;

	if (p && plen >= 4) {
		/* The protocol allows 65535 parameters: every one is recorded, on the heap past the first few. */
		uint16_t nfmt = (uint16_t)((p[0] << 8) | p[1]);
		if (plen >= 4 + 2 * (size_t)nfmt) {
			uint16_t nval = (uint16_t)((p[2 + 2 * nfmt] << 8) | p[3 + 2 * nfmt]);
			if (nval > max && (params = malloc(sizeof(*params) * (size_t)nval)) != NULL)
				max = nval;
			else if (nval > max)
				params = few;
		}
		n = bind_read_params(p, plen, params, max);
	}
	seq = audit_statement_params(s, audit_protocol(si->facts, "extended"), si->text, si->len, pv,
				     n >= 0 ? params : NULL, n >= 0 ? (size_t)n : 0);
	if (params != few)
		free(params);
	return seq;
}

/*
 * Describe of a prepared statement. Why a FETCH is refused: PostgreSQL 15
 * computes a FETCH's result columns from its cursor at Parse, and Describe
 * then reads the cursor again with only an Assert that it still exists
 * (FetchStatementTargetList in pquery.c, from CachedPlanGetTargetList): a
 * cursor gone by then (closed, or ended with its transaction, which a
 * COMMIT in the same batch does unseen here) crashes the backend and
 * restarts the whole cluster. MOVE returns no rows and is safe, and so is
 * Describe of the FETCH's portal (what drivers send), so only this is refused.
 */
gate_status gate_describe_statement(session *s, const char *name, gate_verdict *v)
{
	stmt_info *si;

	verdict_init(v);
	switch (tl_lookup(&s->tl, TL_NS_STMT, name, &si)) {
	case TL_NAME_NONE:
		return GATE_ALLOW; /* the server answers 26000 itself */
	case TL_NAME_DOUBTFUL:
		if (tl_doubt_awaits_server(&s->tl, NULL, TL_NS_STMT, name))
			return v->status = GATE_AWAIT;
		return deny_with(v, "pgwarden: unknown prepared statement", "rule: unparsable", NULL);
	case TL_NAME_KNOWN:
		break;
	}
	if (si->facts && (policy_facts_flags(si->facts) & PF_FETCH))
		return deny_with(v, "pgwarden: Describe of a prepared FETCH statement is refused", "rule: unparsable",
				 "PostgreSQL 15 crashes on it once the cursor is gone; describe the portal instead");
	return GATE_ALLOW;
}

gate_status gate_execute(session *s, const char *portal, gate_verdict *v)
{
	stmt_info *si;
	policy_verdict pv;
	policy_subject subj;

	verdict_init(v);
	if (!lookup_known(s, TL_NS_PORTAL, portal, "pgwarden: unknown portal", &si, v))
		return v->status;
	if (!refresh_identity(s))
		return v->status = GATE_CLOSED;
	if (!si->facts) {
#ifdef PGW_RELAY_ONLY
		policy_verdict none;
		memset(&none, 0, sizeof(none));
		if (si->len && !add_ref(v, audit_statement(s, "extended", si->text, si->len, &none)))
			return fail_oom(s, v);
#endif
		/* an empty statement: EmptyQueryResponse, nothing to judge or record */
		return GATE_ALLOW;
	}
	if (execute_awaits(s, si->facts))
		return v->status = GATE_AWAIT;
	subj = subject_of(s);
	decide_facts(s, &subj, si->facts, si->text, si->len, NULL, &pv);
	if (pv.deny)
		return deny_extended(s, si->facts, si->text, si->len, &pv, v);
	count_decision(s, &pv);
	if (!add_ref(v, audit_execute(s, portal, si, &pv)))
		return fail_oom(s, v);
	/* a cursor's portal fetches: the DECLARE's own name change was made when it ran */
	if (!si->cursor && !track_statement(s, si->facts, si->text, si->len, &pv, v, 0))
		return fail_oom(s, v);
	if (!si->cursor && (policy_facts_flags(si->facts) & PF_SESSION_RESET))
		v->repin = true;
	return GATE_ALLOW;
}

gate_status gate_function_call(session *s, gate_verdict *v)
{
	policy_verdict pv;

	verdict_init(v);
	policy_deny_fastpath(&pv);
	audit_statement(s, "fastpath", NULL, 0, &pv);
	count_decision(s, &pv);
	return deny_with(v, pv.message, pv.detail, pv.hint);
}

bool gate_transaction_boundary(session *s)
{
	bool want;

	if (s->closing)
		return false;
	if (s->up.txn_status != 'I' || s->tl.count != 0 || s->tl.batch_open)
		return true;
	/* A reload may have opened or closed a window: judge with the current config. */
	if (!refresh_identity(s))
		return false;
	if (s->target->environment != ENV_PRODUCTION)
		return true;
	want = !windows_open_now(s->cfg, s->target->name, s->who->actor, time(NULL));
	if (want == s->up.read_only)
		return true;
	session_log(LOG_LVL_INFO, s, "window %s: default_transaction_read_only %s", want ? "closed" : "open",
		    want ? "on" : "off");
	s->up.read_only = want;
	s->tl.repin = true; /* the pin carries the read-only default */
	return true;
}
