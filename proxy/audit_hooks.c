/* audit_hooks.c - building audit records from sessions. */
#include "proxy/console.h"
#include "proxy/audit_hooks.h"

#include <stdlib.h>
#include <string.h>

#include <strings.h>

#include "audit/audit.h"
#include "policy/policy.h"
#include "protocol/auth.h"
#include "protocol/startup.h"
#include "proxy/server.h"

void audit_forget_ident(session *s)
{
	audit_ident_cache *c = &s->audit_ident;

	free(c->text);
	if (c->cfg)
		config_unref(c->cfg);
	memset(c, 0, sizeof(*c));
}

/*
 * Once the session has its identity (token record and target), render its
 * fields once and reuse them: escaping six strings twice per statement was a
 * tenth of the audit's instructions. A reload that moves the session to a new
 * snapshot re-renders (the environment, say, may have changed).
 */
static void use_rendered_ident(audit_record *r, session *s)
{
	audit_ident_cache *c = &s->audit_ident;

	if (!s->who || !s->target || !s->cfg)
		return; /* still logging in: the identity is not final */
	if (c->text == NULL || c->cfg != s->cfg || c->who != s->who || c->target != s->target) {
		audit_forget_ident(s);
		c->text = audit_render_ident(r, &c->len);
		if (c->text == NULL)
			return; /* out of memory: the record writes its fields itself */
		c->cfg = config_ref(s->cfg);
		c->who = s->who;
		c->target = s->target;
	}
	r->ident = c->text;
	r->ident_len = c->len;
}

/* Whether the rendered identity is the one of the session's current identity and snapshot. */
static bool ident_current(const session *s)
{
	const audit_ident_cache *c = &s->audit_ident;

	return c->text != NULL && s->who && s->target && s->cfg && c->cfg == s->cfg && c->who == s->who &&
	       c->target == s->target;
}

/*
 * The identity fields every session record carries (those known so far).
 * Only statement and result records (render) keep a rendered copy: a client
 * that logs in and stays idle holds none.
 */
static void fill_session(audit_record *r, session *s, bool render)
{
	if (ident_current(s)) {
		/* the usual case, twice per statement: the rendered text stands for all seven fields */
		r->ident = s->audit_ident.text;
		r->ident_len = s->audit_ident.len;
		return;
	}
	r->session = s->id;
	r->client = s->client.peer;
	if (s->who) {
		r->actor = s->who->actor;
		r->role = s->who->role;
		r->tenant = s->who->tenant;
	} else
		r->actor = s->client.actor;
	if (s->target) {
		r->target = s->target->name;
		r->environment = environment_name(s->target->environment);
	}
	if (render)
		use_rendered_ident(r, s);
}

/* Append a record nothing waits on (written within 10 ms). */
static void append_lazy(session *s, const audit_record *r)
{
	audit_append(s->srv->audit, r);
	server_request_flush(s->srv, NULL);
}

static void session_event(session *s, const char *event, const char *rule)
{
	audit_record r;

	if (!s->srv->audit)
		return;
	audit_record_init(&r);
	fill_session(&r, s, false);
	r.event = event;
	r.rule = rule;
	append_lazy(s, &r);
}

/* The startup's application_name, while the parsed StartupMessage is kept. */
static const char *startup_application_name(const session *s)
{
	const startup_params *p = s->client.params;
	size_t i;

	for (i = 0; p && i < p->n; i++)
		if (strcasecmp(p->names[i], "application_name") == 0)
			return p->values[i];
	return NULL;
}

/*
 * Written when the StartupMessage has been read, so it can say who asked for
 * what (actor, target, application_name); a connection that ends before
 * sending one gets its connect record just before its disconnect record.
 */
void audit_connect(session *s)
{
	audit_record r;

	if (!s->srv->audit || s->audited_connect)
		return;
	s->audited_connect = true;
	audit_record_init(&r);
	fill_session(&r, s, false);
	r.event = "connect";
	r.application_name = startup_application_name(s);
	append_lazy(s, &r);
}

/* auth_fail carries why (never told to the client, who gets the uniform 28P01). */
void audit_auth(session *s, bool ok)
{
	audit_record r;

	if (!s->srv->audit)
		return;
	audit_record_init(&r);
	fill_session(&r, s, false);
	r.event = ok ? "auth_ok" : "auth_fail";
	if (!ok)
		r.reason = auth_fail_reason(s->client.auth);
	append_lazy(s, &r);
}

/* One disconnect record per session: the revocation's carries the reason. */
void audit_revoked(session *s)
{
	if (s->audited_disconnect)
		return;
	s->audited_disconnect = true;
	audit_connect(s);
	session_event(s, "disconnect", "token-revoked");
}

void audit_disconnect(session *s)
{
	if (s->audited_disconnect)
		return;
	s->audited_disconnect = true;
	audit_connect(s);
	session_event(s, "disconnect", NULL);
}

uint64_t audit_statement(session *s, const char *protocol, const char *sql, size_t len, const struct policy_verdict *pv)
{
	return audit_statement_params(s, protocol, sql, len, pv, NULL, 0);
}

uint64_t audit_statement_params(session *s, const char *protocol, const char *sql, size_t len,
				const struct policy_verdict *pv, const audit_param *params, size_t n_params)
{
	audit_record r;
	uint64_t seq;

	console_note_statement(s, sql, len); /* what GET /sessions shows as the current statement */
	if (!s->srv->audit)
		return 0;
	audit_record_init(&r);
	fill_session(&r, s, true);
	r.event = "statement";
	r.protocol = protocol;
	r.sql = sql;
	r.sql_len = len;
	r.decision = pv->deny ? "deny" : "allow";
	r.rule = pv->rule;
	r.window = pv->window;
	r.backend_pid = s->up.phase == UPSTREAM_READY ? s->up.backend_pid : 0; /* joins PostgreSQL's own logs */
	r.reason = pv->deny ? pv->message : NULL;
	r.params = params;
	r.n_params = n_params;
	seq = audit_append(s->srv->audit, &r);
	/* Hold this session's upstream bytes until the record is written. */
	server_request_flush(s->srv, s);
	return seq;
}

void audit_result(session *s, uint64_t ref, const char *tag, const char *sqlstate, int64_t duration_us)
{
	audit_record r;

	if (!s->srv->audit)
		return;
	audit_record_init(&r);
	fill_session(&r, s, true);
	r.event = "result";
	r.ref = ref;
	r.tag = tag;
	r.sqlstate = sqlstate;
	r.duration_us = duration_us;
	audit_append(s->srv->audit, &r);
	server_request_flush(s->srv, NULL);
}

void audit_server_event(pgw_server *srv, const char *event)
{
	audit_record r;

	if (!srv->audit)
		return;
	audit_record_init(&r);
	r.event = event;
	audit_append(srv->audit, &r);
	audit_flush(srv->audit);
}
