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
#include "policy/windows.h"
#include "proxy/audit_hooks.h"
#include "proxy/catalogs.h"
#include "proxy/client.h"
#include "proxy/log.h"
#include "proxy/pin.h"
#include "proxy/relay.h"
#include "proxy/server.h"
#include "audit/audit.h"
#include "protocol/pktbuf.h"
#include "protocol/bind.h"

void gate_verdict_clear(gate_verdict *v)
{
	stmt_undo_free(&v->undo);
	if (v->refs && v->refs != v->inline_refs)
		free(v->refs);
	v->refs = NULL;
	v->n_refs = 0;
}

static void verdict_init(gate_verdict *v)
{
	v->message[0] = v->detail[0] = v->hint[0] = '\0';
	v->refs = v->inline_refs;
	v->n_refs = 0;
	v->cap_refs = GATE_INLINE_REFS;
	v->undo = NULL;
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

static void deny_with(gate_verdict *v, const char *message, const char *detail, const char *hint)
{
	snprintf(v->message, sizeof(v->message), "%s", message);
	snprintf(v->detail, sizeof(v->detail), "%s", detail ? detail : "");
	snprintf(v->hint, sizeof(v->hint), "%s", hint ? hint : "");
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

/* Decide facts, following EXECUTE to the stored PREPARE; the first denial wins. */
static void decide_facts(session *s, const policy_subject *subj, const policy_facts *f, const char *text,
			 size_t len, policy_verdict *pv)
{
	policy_decide(subj, f, text, len, pv);
	if (!pv->deny && (policy_facts_flags(f) & PF_EXECUTE)) {
		stmt_info *si = stmt_table_get(&s->stmts, policy_facts_name(f));
		if (si && si->facts)
			policy_decide(subj, si->facts, si->text, si->len, pv);
		else if (!si) {
			/* Unknown to us means we cannot know what it runs: default deny. */
			char msg[sizeof(pv->message)];
			snprintf(msg, sizeof(msg), "pgwarden: unknown prepared statement \"%s\"", policy_facts_name(f));
			policy_verdict_deny(pv, RULE_UNPARSABLE, msg);
		}
	}
}

/*
 * After an allowed statement: keep the prepared-statement table in step with
 * the server, and note function DDL (the catalog is stale from now on and is
 * re-read when the statement's transaction ends).
 */
static void track_statement(session *s, const policy_facts *f, const char *text, size_t len,
			    const policy_verdict *pv, gate_verdict *v, uint32_t index)
{
	uint32_t flags = policy_facts_flags(f);

	/* refresh_catalog: the statement, or a function it calls, can change function definitions */
	if (pv->refresh_catalog) {
		catalogs_mark_stale_for(s, f, pv->refresh_names_known);
		s->catalog_refresh_needed = true;
	}
	if (flags & PF_PREPARE) {
		const policy_facts *inner = policy_facts_inner(f);
		stmt_info *si;

		policy_facts_ref(inner);
		si = stmt_info_new(text, len, inner);
		if (!si)
			policy_facts_unref(inner);
		if (!si || !stmt_table_put_undoable(&s->stmts, policy_facts_name(f), si, &v->undo, index))
			client_fail(s, "53200", "pgwarden: out of memory", NULL);
		stmt_info_unref(si);
	} else if (flags & PF_DEALLOCATE) {
		bool ok = policy_facts_name(f)
				  ? stmt_table_del_undoable(&s->stmts, policy_facts_name(f), &v->undo, index)
				  : stmt_table_clear_undoable(&s->stmts, &v->undo, index);
		if (!ok)
			client_fail(s, "53200", "pgwarden: out of memory", NULL);
	}
}

static void count_decision(session *s, const policy_verdict *pv)
{
	metrics_count_statement(&s->srv->metrics, s->target->name, pv->deny ? "deny" : "allow", pv->rule);
	if (pv->deny)
		session_log(LOG_LVL_WARN, s, "denied: %s", pv->rule ? pv->rule : "?");
}

/*
 * A Query whose RESET ALL (or DISCARD ALL) is followed by more statements:
 * the pinning SETs are spliced in right after each such reset, inside the
 * same Query (and so the same implicit transaction), so no later statement
 * runs unpinned. Their results are swallowed through GATE_REF_INTERNAL refs.
 */
typedef struct splicer {
	pktbuf b;       /* the rewritten Query, started at the first splice */
	size_t copied;  /* bytes of the original text already copied */
	char *pin;      /* the pinning SQL, built once */
} splicer;

static bool splice_at(session *s, splicer *sp, const char *sql, size_t cut)
{
	if (!sp->pin) {
		sp->pin = pin_sql_build(s->cfg, s->who, s->up.read_only);
		if (!sp->pin)
			return false;
		pktbuf_init(&sp->b);
		pkt_begin(&sp->b, 'Q');
	}
	pkt_put_bytes(&sp->b, sql + sp->copied, cut - sp->copied);
	pkt_put_u8(&sp->b, ';');
	pkt_put_bytes(&sp->b, sp->pin, strlen(sp->pin));
	sp->copied = cut;
	return !sp->b.failed;
}

/* Finish the rewritten Query into v (if anything was spliced); false on out of memory. */
static bool splice_finish(splicer *sp, const char *sql, size_t len, gate_verdict *v)
{
	bool ok = true;

	if (!sp->pin)
		return true;
	pkt_put_bytes(&sp->b, sql + sp->copied, len - sp->copied);
	pkt_put_u8(&sp->b, 0);
	pkt_end(&sp->b);
	free(sp->pin);
	if (sp->b.failed) {
		pktbuf_free(&sp->b);
		ok = false;
	} else {
		v->rewritten = sp->b.data;
		v->rewritten_len = sp->b.len;
	}
	return ok;
}

/* Audit and bookkeeping for an allowed Query's statements; false on out of memory. */
static bool allow_query(session *s, const char *sql, size_t len, const policy_analysis *a,
			const policy_verdict *pvs, gate_verdict *v)
{
	splicer sp = {.copied = 0, .pin = NULL};
	unsigned k, npin = pin_sql_statements(s->cfg);
	size_t i;

	for (i = 0; i < a->n; i++) {
		const policy_stmt *st = &a->v[i];
		uint64_t ref = audit_statement(s, audit_protocol(st->facts, "simple"), sql + st->offset, st->len, &pvs[i]);

		if (!add_ref(v, ref))
			goto oom;
		track_statement(s, st->facts, sql + st->offset, st->len, &pvs[i], v, v->n_refs - 1);
		if (!(policy_facts_flags(st->facts) & PF_SESSION_RESET))
			continue;
		if (i + 1 == a->n) {
			s->repin_pending = true; /* re-pinned right after this Query */
			continue;
		}
		if (!splice_at(s, &sp, sql, st->offset + st->len))
			goto oom;
		for (k = 0; k < npin; k++)
			if (!add_ref(v, GATE_REF_INTERNAL))
				goto oom;
	}
	return splice_finish(&sp, sql, len, v);
oom:
	if (sp.pin) {
		free(sp.pin);
		pktbuf_free(&sp.b);
	}
	return false;
}

#ifdef PGW_RELAY_ONLY
/*
 * Benchmark build only (make bench builds it as pgwarden-relay; it is never
 * installed): statements are audited but not classified, to measure what
 * the policy engine costs against the bare relay in the same run.
 */
static bool relay_only_query(session *s, const char *sql, size_t len, gate_verdict *v)
{
	policy_verdict pv;

	memset(&pv, 0, sizeof(pv));
	if (len && !add_ref(v, audit_statement(s, "simple", sql, len, &pv)))
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
	return true;
}
#endif

bool gate_query(session *s, const char *sql, size_t len, gate_verdict *v)
{
	policy_lexctx lx = {s->up.standard_conforming_strings};
	policy_analysis a;
	policy_verdict *pvs = NULL, *denial = NULL;
	policy_subject subj;
	size_t i;
	bool ok = true;

	verdict_init(v);
	if (!refresh_identity(s))
		return true; /* the session is closing; nothing will be sent */
#ifdef PGW_RELAY_ONLY
	return relay_only_query(s, sql, len, v);
#endif
	if (policy_analyze(s->srv->classifier, sql, len, &lx, &a) != 0) {
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return true;
	}
	subj = subject_of(s);
	pvs = calloc(a.n ? a.n : 1, sizeof(*pvs));
	if (!pvs) {
		policy_analysis_clear(&a);
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return true;
	}
	for (i = 0; i < a.n; i++) {
		decide_facts(s, &subj, a.v[i].facts, sql + a.v[i].offset, a.v[i].len, &pvs[i]);
		if (pvs[i].deny && !denial)
			denial = &pvs[i];
	}
	if (denial) {
		/* One statement denied: none runs (a Query is one implicit transaction anyway). */
		for (i = 0; i < a.n; i++) {
			if (!pvs[i].deny)
				policy_verdict_copy(&pvs[i], denial);
			audit_statement(s, audit_protocol(a.v[i].facts, "simple"), sql + a.v[i].offset, a.v[i].len, &pvs[i]);
			count_decision(s, &pvs[i]);
		}
		deny_with(v, denial->message, denial->detail, denial->hint);
		ok = false;
	} else {
		for (i = 0; i < a.n; i++)
			count_decision(s, &pvs[i]);
		if (!allow_query(s, sql, len, &a, pvs, v))
			client_fail(s, "53200", "pgwarden: out of memory", NULL);
	}
	free(pvs);
	policy_analysis_clear(&a);
	return ok;
}

/* Deny and audit one extended-protocol statement text (facts NULL if it has none). */
static bool deny_extended(session *s, const policy_facts *facts, const char *text, size_t len,
			  const policy_verdict *pv, gate_verdict *v)
{
	audit_statement(s, audit_protocol(facts, "extended"), text, len, pv);
	count_decision(s, pv);
	deny_with(v, pv->message, pv->detail, pv->hint);
	return false;
}

bool gate_parse(session *s, const char *name, const char *sql, size_t len, gate_verdict *v)
{
	policy_lexctx lx = {s->up.standard_conforming_strings};
	policy_analysis a;
	policy_verdict pv;
	policy_subject subj;
	stmt_info *si;
	const policy_facts *facts = NULL;

	verdict_init(v);
	if (!refresh_identity(s))
		return true;
#ifdef PGW_RELAY_ONLY
	(void)lx;
	a.n = 0;
	a.v = NULL;
#else
	if (policy_analyze(s->srv->classifier, sql, len, &lx, &a) != 0) {
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return true;
	}
#endif
	if (a.n > 1) {
		/*
		 * PostgreSQL refuses several statements in one Parse. Forwarding it would
		 * bet on our split matching the server's: deny it instead (same outcome).
		 */
		policy_analysis_clear(&a);
		policy_verdict_deny(&pv, RULE_UNPARSABLE,
				    "pgwarden: cannot insert multiple commands into a prepared statement");
		return deny_extended(s, NULL, sql, len, &pv, v);
	}
	if (a.n == 1) {
		subj = subject_of(s);
		decide_facts(s, &subj, a.v[0].facts, sql, len, &pv);
		/* Window rules are judged at Execute (a window may open in between); the rest now. */
		if (pv.deny && !policy_rule_judged_at_execute(pv.rule_id)) {
			deny_extended(s, a.v[0].facts, sql, len, &pv, v);
			policy_analysis_clear(&a);
			return false;
		}
		facts = a.v[0].facts;
		policy_facts_ref(facts);
	}
	policy_analysis_clear(&a);
	si = stmt_info_new(sql, len, facts);
	if (!si && facts)
		policy_facts_unref(facts);
	/* kept only if the server answers ParseComplete (a name in use or an error undoes it) */
	if (!si || !stmt_table_put_undoable(&s->stmts, name, si, &v->undo, 0))
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
	stmt_info_unref(si);
	return true;
}

bool gate_bind(session *s, const char *portal, const char *stmt, const uint8_t *rest, size_t rest_len,
	       gate_verdict *v)
{
	stmt_info *si = stmt_table_get(&s->stmts, stmt);

	verdict_init(v);
	if (!si) {
		/* A statement we never saw prepared cannot be judged: default deny. */
		portal_table_del(&s->stmts, portal);
		deny_with(v, "pgwarden: unknown prepared statement", "rule: unparsable", NULL);
		return false;
	}
	if (!portal_table_put_undoable(&s->stmts, portal, si, s->cfg->audit_params ? rest : NULL, rest_len, &v->undo))
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
	return true;
}

/* The statement record of an Execute, with its Bind parameters when audit_params is on. */
static uint64_t audit_execute(session *s, const char *portal, const stmt_info *si, const policy_verdict *pv)
{
	audit_param few[GATE_MAX_AUDIT_PARAMS], *params = few;
	size_t plen;
	const uint8_t *p = s->cfg->audit_params ? portal_table_params(&s->stmts, portal, &plen) : NULL;
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
	seq = audit_statement_params(s, audit_protocol(si->facts, "extended"), si->text, si->len, pv, n >= 0 ? params : NULL,
				     n >= 0 ? (size_t)n : 0);
	if (params != few)
		free(params);
	return seq;
}

bool gate_execute(session *s, const char *portal, gate_verdict *v)
{
	stmt_info *si = portal_table_get(&s->stmts, portal);
	policy_verdict pv;
	policy_subject subj;

	verdict_init(v);
	if (!si) {
		deny_with(v, "pgwarden: unknown portal", "rule: unparsable", NULL);
		return false;
	}
	if (!refresh_identity(s))
		return true;
	if (!si->facts) {
#ifdef PGW_RELAY_ONLY
		policy_verdict none;
		memset(&none, 0, sizeof(none));
		if (si->len && !add_ref(v, audit_statement(s, "extended", si->text, si->len, &none)))
			client_fail(s, "53200", "pgwarden: out of memory", NULL);
#endif
		/* an empty statement: EmptyQueryResponse, nothing to judge or record */
		return true;
	}
	subj = subject_of(s);
	decide_facts(s, &subj, si->facts, si->text, si->len, &pv);
	if (pv.deny)
		return deny_extended(s, si->facts, si->text, si->len, &pv, v);
	count_decision(s, &pv);
	if (!add_ref(v, audit_execute(s, portal, si, &pv)))
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
	track_statement(s, si->facts, si->text, si->len, &pv, v, 0);
	if (policy_facts_flags(si->facts) & PF_SESSION_RESET)
		s->repin_pending = true;
	return true;
}

void gate_function_call(session *s, gate_verdict *v)
{
	policy_verdict pv;

	verdict_init(v);
	policy_deny_fastpath(&pv);
	audit_statement(s, "fastpath", NULL, 0, &pv);
	count_decision(s, &pv);
	deny_with(v, pv.message, pv.detail, pv.hint);
}

void gate_transaction_boundary(session *s)
{
	bool want;

	if (s->closing || s->up.txn_status != 'I' || s->owed.count != 0 || s->ext_batch_open)
		return;
	/* A reload may have opened or closed a window: judge with the current config. */
	if (!refresh_identity(s) || s->target->environment != ENV_PRODUCTION)
		return;
	want = !windows_open_now(s->cfg, s->target->name, s->who->actor, time(NULL));
	if (want == s->up.read_only)
		return;
	session_log(LOG_LVL_INFO, s, "window %s: default_transaction_read_only %s", want ? "closed" : "open",
		    want ? "on" : "off");
	s->up.read_only = want;
	relay_inject_internal(s, pin_sql_read_only(want));
}
