/* session.c - creating, logging and freeing sessions. */
#include "proxy/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/auth.h"
#include "proxy/cancel.h"
#include "proxy/audit_hooks.h"
#include "proxy/server.h"
#include "proxy/pool.h"
#include "proxy/pool_stmts.h"
#include "proxy/upstream.h"
#include "proxy/parse_async.h"

session *session_new(pgw_server *srv)
{
	session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->hold = evbuffer_new();
	if (!s->hold) {
		free(s);
		return NULL;
	}
	s->srv = srv;
	s->id = ++srv->next_session_id;
	/* Our BackendKeyData pid: unique among live sessions for 2^31 connections. */
	s->cancel_pid = (uint32_t)(s->id & 0x7fffffff);
	s->client.fd = -1;
	s->up.own_fd = -1;
	s->cfg = config_ref(srv->cfg);
	s->up.txn_status = 'I';
	tl_init(&s->tl);
	TAILQ_INSERT_TAIL(&srv->sessions, s, link);
	srv->metrics.client_connections++;
	return s;
}

void session_log(pgw_log_level lvl, const session *s, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (lvl < pgw_log_min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pgw_log_session(lvl, (unsigned long long)s->id, s->client.actor, s->target ? s->target->name : NULL,
			s->client.peer, "%s", msg);
}

void session_set_close_reason(session *s, const char *reason)
{
	if (!s->close_reason[0] && reason)
		snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
}

void session_free(session *s)
{
	pgw_server *srv = s->srv;

	audit_disconnect(s); /* every connect record gets its disconnect */
	session_log(LOG_LVL_INFO, s, "disconnect: %s", s->close_reason[0] ? s->close_reason : "closed");
	/*
	 * A client that vanished mid-query leaves the backend running until the
	 * query ends (it notices the closed socket only when it writes): cancel it.
	 */
	if (s->tl.count > 0 && !s->client.terminated)
		cancel_upstream(s);
	pool_release(s); /* reset and returned if clean, else closed */
	pool_stmts_free(s);
	free(s->settings_sql);
	free(s->pool_settings_sql);
	io_free(&s->client.io);
	if (s->client.closing_timer)
		event_free(s->client.closing_timer);
	if (s->client.ssl)
		SSL_free(s->client.ssl);
	if (s->client.fd >= 0)
		close(s->client.fd);
	if (s->client.startup_timer)
		event_free(s->client.startup_timer);
	if (s->client.fail_timer)
		event_free(s->client.fail_timer);
	limits_on_free(s);
	console_on_free(s);
	if (s->client.counted_unauth) {
		srv->n_unauthenticated--;
		throttle_startup_done(&srv->throttle, s->client.addr);
	}
	auth_free(s->client.auth);
	free(s->client.startup_pkt);
	free(s->client.params);
	tl_free(&s->tl);
	parse_async_forget(s);
	evbuffer_free(s->hold);
	audit_forget_ident(s);
	if (s->awaiting_flush)
		TAILQ_REMOVE(&srv->flush_list, s, flush_link);
	TAILQ_REMOVE(&srv->sessions, s, link);
	srv->metrics.client_connections--;
	config_unref(s->cfg);
	free(s);
}
