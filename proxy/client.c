/*
 * client.c - the client side of a session up to the relay: accept, SSL and
 * GSS negotiation, CancelRequest, StartupMessage checks, authentication.
 *
 * Phases (client_phase): STARTUP -> AUTH -> WAIT_UPSTREAM -> READY, with
 * CLOSING reachable from any of them once a final error is queued.
 */
#include "proxy/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "conf/core/random.h"
#include "proxy/audit_hooks.h"
#include "proxy/cancel.h"
#include "proxy/console.h"
#include "proxy/limits.h"
#include "conf/core/log.h"
#include "proxy/pin.h"
#include "proxy/pool.h"
#include "proxy/relay.h"
#include "proxy/upstream.h"
#include "policy/policy.h"
#include "protocol/auth.h"
#include "protocol/frame.h"
#include "protocol/msgtypes.h"
#include "protocol/pktbuf.h"
#include "protocol/scram.h"
#include "protocol/startup.h"

/* Largest 'p' message accepted during authentication (PostgreSQL: PG_MAX_AUTH_TOKEN_LENGTH 65535). */
#define AUTH_MESSAGE_MAX 65535u
/* How long a client has to read a final error before we close anyway. */
#define CLOSING_GRACE_SECONDS 5

static void client_on_read(void *arg);
static void client_on_drain(void *arg);
static void client_on_close(void *arg, const char *why);

static const io_handlers client_io_handlers = { client_on_read, client_on_drain, client_on_close };

static const char *const client_phase_names[] = { "startup", "auth", "wait-upstream", "ready", "closing" };

void client_set_phase(session *s, client_phase phase)
{
	session_log(LOG_LVL_DEBUG, s, "client %s -> %s", client_phase_names[s->client.phase],
		    client_phase_names[phase]);
	s->client.phase = phase;
}

void client_send(session *s, const void *data, size_t len)
{
	if (io_active(&s->client.io))
		evbuffer_add(s->client.io.out, data, len);
}

static void client_send_pkt(session *s, pktbuf *b)
{
	if (b->failed) {
		session_close_later(s, "out of memory");
		return;
	}
	client_send(s, b->data, b->len);
}

void client_pause(session *s)
{
	io_set_reading(&s->client.io, false);
}

void client_resume(session *s)
{
	io_set_reading(&s->client.io, true);
}

void client_flush(session *s)
{
	if (!s->closing && io_active(&s->client.io) && io_flush(&s->client.io) != 0)
		session_close_later(s, "client write error");
}

/* "ip:port" for logs and audit, and the bare address for the throttle. */
static void format_peer(client_conn *c, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(c->peer, sizeof(c->peer), "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, ntohs(in6->sin6_port));
	} else
		snprintf(host, sizeof(host), "unix");
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		snprintf(c->peer, sizeof(c->peer), "unix");
	snprintf(c->addr, sizeof(c->addr), "%s", host);
}

static void startup_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	session *s = arg;

	session_log(LOG_LVL_WARN, s, "startup not completed within auth_timeout (%d s)", s->cfg->auth_timeout);
	client_fail(s, "08006", "pgwarden: authentication timeout", NULL);
}

/*
 * An address at its quota of unfinished startups: close its oldest one to
 * make room. Why shed instead of refusing the newcomer: behind NAT or a
 * sidecar one address is every application instance, and refusing would let
 * a few stuck or slow clients lock all of them out (issue 14). Returns
 * whether a slot was freed.
 */
static bool shed_oldest_startup(pgw_server *srv, const char *addr)
{
	session *s;

	TAILQ_FOREACH(s, &srv->sessions, link)
	{
		if (s->closing || !s->client.counted_unauth || strcmp(s->client.addr, addr) != 0)
			continue;
		limits_count(srv, LIMIT_UNAUTH_SHED);
		session_log(LOG_LVL_WARN, s,
			    "closing the oldest unfinished startup from %s: its address is at "
			    "its quota and a new connection came",
			    addr);
		client_fail(s, "53300",
			    "pgwarden: too many unfinished logins from this address; the oldest is "
			    "closed",
			    NULL);
		return !s->client.counted_unauth;
	}
	return false;
}

/* Room for one more unauthenticated connection from this address (shedding its oldest if need be). */
static bool startup_slot(pgw_server *srv, const char *addr)
{
	/* One address may hold a quarter of the startup slots, so a flood from it leaves room for others. */
	int per_address = srv->cfg->max_startup_conns / 4 > 8 ? srv->cfg->max_startup_conns / 4 : 8;

	if (srv->n_unauthenticated >= srv->cfg->max_startup_conns)
		return false;
	if (throttle_startup_begin(&srv->throttle, addr, per_address))
		return true;
	return shed_oldest_startup(srv, addr) && throttle_startup_begin(&srv->throttle, addr, per_address);
}

void client_accept(pgw_server *srv, int fd, const struct sockaddr *sa, int socklen)
{
	session *s;
	struct timeval tv;
	int one = 1;
	client_conn probe;

	format_peer(&probe, sa);
	if (srv->shutting_down || !startup_slot(srv, probe.addr)) {
		log_warn("refusing connection from %s: %s", probe.peer,
			 srv->shutting_down ? "shutting down" : "too many unauthenticated connections");
		close(fd);
		return;
	}
	s = session_new(srv);
	if (!s) {
		throttle_startup_done(&srv->throttle, probe.addr);
		close(fd);
		return;
	}
	s->client.fd = fd;
	memcpy(s->client.peer, probe.peer, sizeof(probe.peer));
	memcpy(s->client.addr, probe.addr, sizeof(probe.addr));
	if (sa->sa_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	s->client.startup_timer = evtimer_new(srv->base, startup_timeout_cb, s);
	if (io_init(&s->client.io, srv->base, fd, NULL, &client_io_handlers, s) != 0 || !s->client.startup_timer) {
		session_close_later(s, "out of memory");
		return;
	}
	srv->n_unauthenticated++;
	s->client.counted_unauth = true;
	limits_on_accept(s);
	console_on_accept(s);
	tv.tv_sec = s->cfg->auth_timeout;
	tv.tv_usec = 0;
	evtimer_add(s->client.startup_timer, &tv);
	io_set_reading(&s->client.io, true);
}

/* Leave the unauthenticated state (login done or session ending). */
static void client_authenticated(session *s)
{
	if (s->client.counted_unauth) {
		s->srv->n_unauthenticated--;
		throttle_startup_done(&s->srv->throttle, s->client.addr);
		s->client.counted_unauth = false;
	}
	if (s->client.startup_timer)
		evtimer_del(s->client.startup_timer);
}

static void closing_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	session_close_later(arg, "client did not read the final error");
}

void client_fail(session *s, const char *sqlstate, const char *message, const char *detail)
{
	pktbuf b;

	if (s->closing || s->client.phase == CLIENT_CLOSING)
		return;
	session_log(LOG_LVL_INFO, s, "closing: %s (%s)", message, sqlstate);
	pktbuf_init(&b);
	pkt_error(&b, "FATAL", sqlstate, message, detail, NULL);
	client_send_pkt(s, &b);
	pktbuf_free(&b);
	client_set_phase(s, CLIENT_CLOSING);
	client_authenticated(s);
	session_set_close_reason(s, message);
	/*
	 * Stop reading; close once the error is written, or after the grace
	 * period. The upstream is only stopped here: a relay loop may be
	 * iterating its buffers; the reaper frees it.
	 */
	client_pause(s);
	upstream_stop(s);
	if (!io_active(&s->client.io) || io_flush(&s->client.io) != 0 || io_pending(&s->client.io) == 0) {
		session_close_later(s, message);
		return;
	}
	client_close_after_grace(s);
}

void client_close_after_grace(session *s)
{
	struct timeval tv = { CLOSING_GRACE_SECONDS, 0 };

	if (!s->client.closing_timer)
		s->client.closing_timer = evtimer_new(s->srv->base, closing_timeout_cb, s);
	if (!s->client.closing_timer || evtimer_add(s->client.closing_timer, &tv) != 0)
		session_close_later(s, "closing");
}

/* ---- startup phase ---------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/*
 * Bytes that arrive together with an SSLRequest were sent before the
 * handshake, in plaintext: a man in the middle can inject them
 * (CVE-2021-23214). Like PostgreSQL, answer the request, then refuse them.
 */
static bool plaintext_after_negotiation(session *s, char answer)
{
	if (evbuffer_get_length(s->client.io.in) == 0)
		return false;
	session_log(LOG_LVL_WARN, s, "received unencrypted data after SSL/GSS request");
	client_send(s, &answer, 1);
	client_fail(s, "08P01", "received unencrypted data after SSL request", NULL);
	return true;
}

static void on_ssl_request(session *s)
{
	pgw_server *srv = s->srv;
	bool offer =
		srv->ssl_ctx && s->cfg->client_tls != CLIENT_TLS_DISABLE && !s->client.tls_refused && !s->client.ssl;
	SSL *ssl;

	if (plaintext_after_negotiation(s, offer ? 'S' : 'N'))
		return;
	if (!offer) {
		s->client.tls_refused = true;
		client_send(s, "N", 1);
		return;
	}
	ssl = SSL_new(srv->ssl_ctx);
	/* The 'S' must reach the client before any TLS byte: write it directly, the buffer is empty. */
	if (!ssl || send(s->client.fd, "S", 1, MSG_NOSIGNAL) != 1) {
		SSL_free(ssl);
		session_close_later(s, "could not start TLS");
		return;
	}
	s->client.ssl = ssl;
	if (io_start_tls_accept(&s->client.io, ssl) != 0)
		session_close_later(s, "could not start TLS");
}

static void on_cancel_request(session *s, const uint8_t *pkt, uint32_t len)
{
	if (len == 16)
		cancel_request(s->srv, be32(pkt + 8), be32(pkt + 12));
	/* PostgreSQL answers nothing to a CancelRequest; just close. */
	session_close_later(s, "cancel request");
}

/*
 * A client asking for protocol 3.x (x > 0) gets NegotiateProtocolVersion:
 * we speak 3.0 (PostgreSQL does the same). "_pq_." options are refused
 * like any other startup parameter (CONTRACT §4).
 */
static void negotiate_protocol(session *s)
{
	pktbuf b;

	pktbuf_init(&b);
	pkt_begin(&b, 'v');
	pkt_put_u32(&b, 0); /* newest minor version supported for major 3 */
	pkt_put_u32(&b, 0); /* no unrecognized protocol options listed */
	pkt_end(&b);
	client_send_pkt(s, &b);
	pktbuf_free(&b);
}

/* Refuse what the StartupMessage asks for that pgwarden will not pass on. Returns false if refused. */
static bool check_startup_params(session *s, startup_params *p)
{
	char msg[256], refused[128];
	size_t i;

	if (p->refused[0]) {
		snprintf(msg, sizeof(msg), "pgwarden: startup parameter \"%s\" is not allowed", p->refused);
		client_fail(s, "42501", msg, NULL);
		return false;
	}
	/* options: the session's own judgement of SET (policy_startup_setting_ok), one source of truth. */
	if (p->options &&
	    !startup_options_check(p->options, policy_startup_setting_ok, (void *)s->cfg, refused, sizeof(refused))) {
		snprintf(msg, sizeof(msg), "pgwarden: startup parameter \"%s\" is not allowed", refused);
		client_fail(s, "42501", msg,
			    "options may set only what a session may SET: not the role, session "
			    "authorization, pinned, read-only or lexing settings.");
		return false;
	}
	for (i = 0; i < p->n; i++) {
		if (strcasecmp(p->names[i], "client_encoding") == 0 && !startup_encoding_safe(p->values[i])) {
			snprintf(msg, sizeof(msg), "pgwarden: client_encoding \"%s\" is not supported", p->values[i]);
			client_fail(s, "0A000", msg,
				    "Encodings whose characters can contain ASCII quote or "
				    "backslash bytes cannot be verified; use UTF8.");
			return false;
		}
	}
	if (p->options && !startup_options_encoding_safe(p->options)) {
		client_fail(s, "0A000", "pgwarden: this client_encoding is not supported", NULL);
		return false;
	}
	return true;
}

static void on_startup_message(session *s, const uint8_t *pkt, uint32_t len)
{
	startup_params *p;
	auth_params ap;
	pktbuf b;
	uint8_t cbind[64];
	size_t cbind_len = sizeof(cbind);

	if (s->cfg->client_tls == CLIENT_TLS_REQUIRE && !s->client.ssl) {
		client_fail(s, "28000", "pgwarden: TLS is required", NULL);
		return;
	}
	s->client.startup_pkt = malloc(len);
	if (!s->client.startup_pkt) {
		session_close_later(s, "out of memory");
		return;
	}
	memcpy(s->client.startup_pkt, pkt, len);
	p = s->client.params = malloc(sizeof(*p));
	if (!p) {
		session_close_later(s, "out of memory");
		return;
	}
	if (startup_parse(s->client.startup_pkt + 8, len - 8, p) != STARTUP_OK) {
		client_fail(s, "08P01", "invalid startup packet layout", NULL);
		return;
	}
	if ((be32(pkt + 4) & 0xffff) != 0)
		negotiate_protocol(s);
	if (!p->user || !p->user[0]) {
		client_fail(s, "28000", "no PostgreSQL user name specified in startup packet", NULL);
		return;
	}
	s->client.actor = p->user;
	s->client.database = p->database;
	audit_connect(s); /* now it can name the actor and application_name */
	if (!limits_admit_startup(s) || !check_startup_params(s, p))
		return;
	/*
	 * Why authenticate before looking at the target: answering 3D000 to a
	 * client without a valid token would let anyone probe target names
	 * (CONTRACT §4). The exchange runs the same whatever the dbname; an
	 * unknown one is only told to a client whose token proved valid.
	 */
	s->target = config_find_target(s->cfg, p->database);
	memset(&ap, 0, sizeof(ap));
	ap.tokens = s->cfg->tokens;
	ap.actor = p->user;
	ap.target = p->database ? p->database : "";
	ap.tls = s->client.ssl != NULL;
	ap.plaintext_auth = s->cfg->plaintext_auth;
	/*
	 * Channel binding (tls-server-end-point) hashes the certificate THIS
	 * connection was served, not the server's current one: after a reload
	 * rotated the certificate, a handshake made before it still binds to the old.
	 */
	if (s->client.ssl && scram_cert_end_point_hash(SSL_get_certificate(s->client.ssl), cbind, &cbind_len)) {
		ap.tls_cert_hash = cbind;
		ap.tls_cert_hash_len = cbind_len;
	}
	ap.now = time(NULL);
	pktbuf_init(&b);
	s->client.auth = auth_begin(&ap, &b);
	if (!s->client.auth) {
		pktbuf_free(&b);
		session_close_later(s, "out of memory");
		return;
	}
	client_send_pkt(s, &b);
	pktbuf_free(&b);
	client_set_phase(s, CLIENT_AUTH);
}

/* One startup-phase packet: length word, then a code or protocol version. */
static void on_startup_input(session *s)
{
	struct evbuffer *in = s->client.io.in;
	uint8_t hdr[8];
	uint32_t len, code;
	const uint8_t *pkt;
	size_t avail = evbuffer_get_length(in);

	if (evbuffer_copyout(in, hdr, avail < 8 ? avail : 8) < 0)
		return;
	switch (frame_peek_startup(hdr, avail, &len)) {
	case FRAME_NEED_MORE:
		return;
	case FRAME_MALFORMED:
		client_fail(s, "08P01", "invalid length of startup packet", NULL);
		return;
	case FRAME_OK:
		break;
	}
	if (avail < len)
		return;
	pkt = evbuffer_pullup(in, len);
	if (!pkt) {
		session_close_later(s, "out of memory");
		return;
	}
	code = be32(pkt + 4);
	if (code == PGW_SSL_REQUEST_CODE && len == 8) {
		evbuffer_drain(in, len);
		on_ssl_request(s);
	} else if (code == PGW_GSSENC_REQUEST_CODE && len == 8) {
		evbuffer_drain(in, len);
		if (!plaintext_after_negotiation(s, 'N'))
			client_send(s, "N", 1);
	} else if (code == PGW_CANCEL_REQUEST_CODE) {
		on_cancel_request(s, pkt, len);
		evbuffer_drain(in, len);
	} else if ((code >> 16) == 3) {
		on_startup_message(s, pkt, len);
		evbuffer_drain(in, len);
	} else {
		client_fail(s, "0A000", "unsupported frontend protocol", "pgwarden speaks protocol 3.0.");
	}
}

/* ---- authentication phase ------------------------------------------------------------------ */

static void on_auth_ok(session *s, const pgw_token *who)
{
	char msg[256];

	if (!s->target) {
		/* The token is valid: now, and only now, the client may learn the target does not exist. */
		throttle_success(&s->srv->throttle, s->client.addr, who->actor);
		snprintf(msg, sizeof(msg), "database \"%s\" does not exist",
			 s->client.database ? s->client.database : "");
		client_fail(s, "3D000", msg, NULL);
		return;
	}
	s->who = who;
	if (!limits_admit_actor(s))
		return;
	throttle_success(&s->srv->throttle, s->client.addr, who->actor);
	if (who->kind == TOKEN_SHA256)
		memcpy(s->secret_id, who->sha256, sizeof(s->secret_id));
	else
		memcpy(s->secret_id, who->stored_key, sizeof(s->secret_id));
	auth_free(s->client.auth);
	s->client.auth = NULL;
	audit_auth(s, true);
	session_log(LOG_LVL_INFO, s, "authenticated as role %s tenant %s", who->role, who->tenant ? who->tenant : "-");
	client_set_phase(s, CLIENT_WAIT_UPSTREAM);
	client_pause(s);
	s->settings_sql = pin_settings_build(s->client.params);
	if (!s->settings_sql) {
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return;
	}
	pool_login(s); /* client_login_complete follows, without a backend of its own */
}

static void delayed_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	client_fail(arg, "28P01", "authentication failed", NULL);
}

/*
 * Every failure answers the same 28P01 (a malformed exchange too: it tells
 * nothing about the actor), after the back-off the throttle asks for.
 */
static void on_auth_failed(session *s, bool malformed)
{
	uint32_t delay_ms = throttle_fail(&s->srv->throttle, s->client.addr, s->client.actor, time(NULL));
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	s->srv->metrics.auth_failures_total++;
	session_log(LOG_LVL_WARN, s, "authentication failed: %s%s; answered after %u ms",
		    auth_fail_reason(s->client.auth), malformed ? " (malformed message)" : "", delay_ms);
	audit_auth(s, false);
	if (delay_ms == 0) {
		client_fail(s, "28P01", "authentication failed", NULL);
		return;
	}
	client_pause(s);
	s->client.fail_timer = evtimer_new(s->srv->base, delayed_fail_cb, s);
	if (!s->client.fail_timer || evtimer_add(s->client.fail_timer, &tv) != 0)
		client_fail(s, "28P01", "authentication failed", NULL);
}

static void on_auth_input(session *s)
{
	struct evbuffer *in = s->client.io.in;
	uint8_t hdr[5];
	char type;
	uint32_t blen;
	const uint8_t *msg;
	const pgw_token *who = NULL;
	pktbuf out;
	auth_status st;
	size_t avail = evbuffer_get_length(in);

	if (evbuffer_copyout(in, hdr, avail < 5 ? avail : 5) < 0)
		return;
	switch (frame_peek(hdr, avail, AUTH_MESSAGE_MAX + 4, &type, &blen)) {
	case FRAME_NEED_MORE:
		return;
	case FRAME_MALFORMED:
		client_fail(s, "08P01", "invalid message length during authentication", NULL);
		return;
	case FRAME_OK:
		break;
	}
	if (type != 'p') {
		client_fail(s, "08P01", "expected password response", NULL);
		return;
	}
	if (avail < 5 + (size_t)blen)
		return;
	msg = evbuffer_pullup(in, 5 + (ssize_t)blen);
	if (!msg) {
		session_close_later(s, "out of memory");
		return;
	}
	pktbuf_init(&out);
	st = auth_on_message(s->client.auth, msg + 5, blen, &out, &who);
	evbuffer_drain(in, 5 + (size_t)blen);
	if (out.len)
		client_send_pkt(s, &out);
	pktbuf_free(&out);
	switch (st) {
	case AUTH_CONTINUE:
		break;
	case AUTH_OK:
		on_auth_ok(s, who);
		break;
	case AUTH_FAIL:
	case AUTH_MALFORMED:
		on_auth_failed(s, st == AUTH_MALFORMED);
		break;
	}
}

/* ---- login completion -------------------------------------------------------------------- */

/*
 * What the client asked for at startup, which its connection would report
 * instead of the server's default: the allowlisted parameters (the last -c
 * in options wins over them, as in PostgreSQL).
 */
typedef struct startup_lookup {
	const char *name;  /* the reported setting looked for */
	const char *value; /* the client's value, or NULL */
} startup_lookup;

static bool find_option(const char *name, const char *value, void *arg)
{
	startup_lookup *l = arg;

	if (value && strcasecmp(name, l->name) == 0)
		l->value = value;
	return true;
}

static const char *client_startup_value(const session *s, const char *name)
{
	const startup_params *p = s->client.params;
	startup_lookup l = { name, NULL };

	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n; i++)
		if (strcasecmp(p->names[i], name) == 0)
			l.value = p->values[i];
	if (p->options)
		startup_options_each(p->options, find_option, &l);
	return l.value;
}

void client_login_complete(session *s)
{
	pktbuf b;
	size_t i;

	pktbuf_init(&b);
	pkt_auth(&b, 0, NULL, 0); /* AuthenticationOk */
	/*
	 * pgwarden answers the login itself: the server's reported settings
	 * as a pool connection saw them, with the client's own startup values
	 * (which the borrow will SET; the server's ParameterStatus then confirms
	 * them in its canonical spelling).
	 */
	for (i = 0; i < POOL_N_REPORTED; i++) {
		const char *v = client_startup_value(s, pool_reported[i]);
		if (strcmp(pool_reported[i], "default_transaction_read_only") == 0)
			v = upstream_wants_read_only(s) ? "on" : "off"; /* what the borrow's pin will set */
		if (!v)
			v = pool_param(s->pool, pool_reported[i]);
		if (v)
			pkt_parameter_status(&b, pool_reported[i], v);
	}
	free(s->client.params); /* 1 kB: the settings live on as SQL (settings_sql) */
	s->client.params = NULL;
	/* BackendKeyData of our own: a CancelRequest carrying it reaches this session only. */
	if (!pgw_random_bytes(&s->cancel_key, sizeof(s->cancel_key))) {
		pktbuf_free(&b);
		client_fail(s, "XX000", "pgwarden: no randomness for the cancel key", NULL);
		return;
	}
	pkt_begin(&b, 'K');
	pkt_put_u32(&b, s->cancel_pid);
	pkt_put_u32(&b, s->cancel_key);
	pkt_end(&b);
	pkt_ready_for_query(&b, 'I');
	client_send_pkt(s, &b);
	pktbuf_free(&b);
	client_flush(s);
	client_authenticated(s);
	client_set_phase(s, CLIENT_READY);
	session_log(LOG_LVL_INFO, s, "login complete");
	client_resume(s);
	/* Anything the client pipelined behind its password is already buffered. */
	relay_client_input(s);
}

/* ---- callbacks ------------------------------------------------------------------------------- */

static void client_on_read(void *arg)
{
	session *s = arg;

	/* One read may hold several packets (a pipelined login); each step may end the session. */
	while (!s->closing) {
		client_phase before = s->client.phase;
		size_t avail = evbuffer_get_length(s->client.io.in);

		switch (s->client.phase) {
		case CLIENT_STARTUP:
			on_startup_input(s);
			break;
		case CLIENT_AUTH:
			on_auth_input(s);
			break;
		case CLIENT_READY:
			limits_client_input(s);
			if (console_hold(s)) /* PAUSE: new statements wait for RESUME */
				goto done;
			relay_client_input(s);
			goto done;
		case CLIENT_WAIT_UPSTREAM:
			goto done; /* kept in the buffer until the upstream is ready */
		case CLIENT_CLOSING:
			evbuffer_drain(s->client.io.in, avail);
			goto done;
		}
		/* Stop when a step consumed nothing and did not move on: it waits for more bytes. */
		if (s->client.phase == before && evbuffer_get_length(s->client.io.in) == avail)
			break;
		if (evbuffer_get_length(s->client.io.in) == 0)
			break;
	}
done:
	client_flush(s);
}

static void client_on_drain(void *arg)
{
	session *s = arg;

	if (s->closing)
		return;
	if (s->client.phase == CLIENT_CLOSING) {
		session_close_later(s, "closed");
		return;
	}
	relay_client_drained(s);
}

static void client_on_close(void *arg, const char *why)
{
	session *s = arg;

	if (s->closing)
		return;
	session_close_later(s, strcmp(why, "EOF") == 0 ? "client disconnected" : why);
}
