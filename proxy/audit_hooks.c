/* audit_hooks.c - building audit records from sessions. */
#include "proxy/console.h"
#include "proxy/audit_hooks.h"

#include <string.h>

#include "audit/audit.h"
#include "policy/policy.h"
#include "proxy/server.h"

/* The identity fields every session record carries (those known so far). */
static void fill_session(audit_record *r, const session *s)
{
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
}

static void session_event(session *s, const char *event, const char *rule)
{
	audit_record r;

	if (!s->srv->audit)
		return;
	audit_record_init(&r);
	fill_session(&r, s);
	r.event = event;
	r.rule = rule;
	audit_append(s->srv->audit, &r);
	server_request_flush(s->srv, NULL);
}

void audit_connect(session *s)
{
	session_event(s, "connect", NULL);
}

void audit_auth(session *s, bool ok)
{
	session_event(s, ok ? "auth_ok" : "auth_fail", NULL);
}

/* One disconnect record per session: the revocation's carries the reason. */
void audit_revoked(session *s)
{
	if (s->audited_disconnect)
		return;
	s->audited_disconnect = true;
	session_event(s, "disconnect", "token-revoked");
}

void audit_disconnect(session *s)
{
	if (s->audited_disconnect)
		return;
	s->audited_disconnect = true;
	session_event(s, "disconnect", NULL);
}

uint64_t audit_statement(session *s, const char *protocol, const char *sql, size_t len,
			 const struct policy_verdict *pv)
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
	fill_session(&r, s);
	r.event = "statement";
	r.protocol = protocol;
	r.sql = sql;
	r.sql_len = len;
	r.decision = pv->deny ? "deny" : "allow";
	r.rule = pv->rule;
	r.window = pv->window;
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
	fill_session(&r, s);
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
