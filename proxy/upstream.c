/*
 * upstream.c - connecting to the target with libpq without blocking the
 * loop, pinning identity, and handing the socket to the raw relay.
 *
 * libpq gives us upstream TLS, SCRAM, multi-host conninfo and service files
 * for free. After pinning, libpq's connection is idle and its buffers are
 * empty, so the relay reads and writes the socket itself (io.c): plain TCP
 * directly, TLS through libpq's own SSL object (libpq keeps ownership;
 * PQfinish frees it).
 *
 * A plain socket is then taken from libpq altogether (release_libpq): the
 * PGconn's two 16 kB buffers were most of an idle session's memory.
 */
#include "proxy/upstream.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "proxy/cancel.h"
#include "proxy/client.h"
#include "proxy/health.h"
#include "proxy/log.h"
#include "proxy/pin.h"
#include "proxy/relay.h"
#include "proxy/server.h"
#include "proxy/wall.h"
#include "policy/windows.h"

static void upstream_poll_cb(evutil_socket_t fd, short what, void *arg);

static const char *const upstream_phase_names[] = {"none", "connecting", "pinning", "ready", "closed"};

void upstream_set_phase(session *s, upstream_phase phase)
{
	session_log(LOG_LVL_DEBUG, s, "upstream %s -> %s", upstream_phase_names[s->up.phase],
		    upstream_phase_names[phase]);
	s->up.phase = phase;
}

/* Wait for libpq's socket to become readable or writable. */
static bool upstream_wait(session *s, short what)
{
	if (s->up.poll_ev)
		event_free(s->up.poll_ev);
	/* The socket can change while connecting (multi-host conninfo, SSL retry): look it up each time. */
	s->up.poll_ev = event_new(s->srv->base, PQsocket(s->up.pg), what, upstream_poll_cb, s);
	if (!s->up.poll_ev || event_add(s->up.poll_ev, NULL) != 0)
		return false;
	return true;
}

static void upstream_failed(session *s, const char *what)
{
	char msg[256], folded[512];
	const char *pgerr = s->up.pg ? PQerrorMessage(s->up.pg) : "";

	/* libpq's message may name hosts and users: it goes to our log, not to the client. */
	session_log(LOG_LVL_WARN, s, "upstream %s failed for target %s: %s", what, s->target->name,
		    log_one_line(pgerr, folded, sizeof(folded)));
	if (s->up.phase == UPSTREAM_CONNECTING)
		health_note_connect(s->srv, s->target->name, false, folded);
	snprintf(msg, sizeof(msg), "pgwarden: could not connect to target \"%s\"", s->target->name);
	client_fail(s, "08006", msg, NULL);
}

/* Escape a value for libpq's "options" (backslash before spaces and backslashes). */
static void append_option(char *buf, size_t bufsz, size_t *off, const char *name, const char *value)
{
	int n = snprintf(buf + *off, bufsz - *off, "%s-c %s=", *off ? " " : "", name);

	if (n < 0 || (size_t)n >= bufsz - *off)
		return;
	*off += (size_t)n;
	for (; *value && *off + 3 < bufsz; value++) {
		if (*value == ' ' || *value == '\\')
			buf[(*off)++] = '\\';
		buf[(*off)++] = *value;
	}
	buf[*off] = '\0';
}

/* The target conninfo's own "options", to keep them when we add the client's settings. */
static char *conninfo_options(const char *conninfo)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL), *o;
	char *val = NULL;

	if (!opts)
		return NULL;
	for (o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val)
			val = strdup(o->val);
	PQconninfoFree(opts);
	return val;
}

/* Start PQconnectStartParams with the target's conninfo and the client's allowlisted settings. */
static PGconn *connect_start(session *s)
{
	const startup_params *p = s->client.params;
	const char *kw[STARTUP_MAX_PARAMS + 8], *val[STARTUP_MAX_PARAMS + 8];
	char options[4096] = "";
	size_t nk = 0, off = 0, i;
	char *base_opts = conninfo_options(s->target->conninfo);
	PGconn *pg;

	kw[nk] = "dbname";
	val[nk++] = s->target->conninfo; /* expanded: later keywords override it */
	kw[nk] = "fallback_application_name";
	val[nk++] = "pgwarden";
	if (base_opts) {
		snprintf(options, sizeof(options), "%s", base_opts);
		off = strlen(options);
	}
	for (i = 0; i < p->n; i++) {
		if (strcasecmp(p->names[i], "application_name") == 0) {
			kw[nk] = "application_name";
			val[nk++] = p->values[i];
		} else if (strcasecmp(p->names[i], "client_encoding") == 0) {
			kw[nk] = "client_encoding";
			val[nk++] = p->values[i];
		} else
			append_option(options, sizeof(options), &off, p->names[i], p->values[i]);
	}
	if (p->options) {
		/* Already checked to hold only allowlisted -c settings; pass it on as written. */
		int n = snprintf(options + off, sizeof(options) - off, "%s%s", off ? " " : "", p->options);
		if (n > 0 && (size_t)n < sizeof(options) - off)
			off += (size_t)n;
	}
	if (off) {
		kw[nk] = "options";
		val[nk++] = options;
	}
	kw[nk] = NULL;
	val[nk] = NULL;
	pg = PQconnectStartParams(kw, val, 1);
	free(base_opts);
	return pg;
}

void upstream_start(session *s)
{
	upstream_set_phase(s, UPSTREAM_CONNECTING);
	clock_gettime(CLOCK_MONOTONIC, &s->up.connect_start);
	s->up.pg = connect_start(s);
	free(s->client.params); /* libpq has copied what it needs; actor and database live in startup_pkt */
	s->client.params = NULL;
	if (!s->up.pg || PQstatus(s->up.pg) == CONNECTION_BAD) {
		upstream_failed(s, "connection start");
		return;
	}
	PQsetnonblocking(s->up.pg, 1);
	if (!upstream_wait(s, EV_WRITE))
		upstream_failed(s, "event setup");
}

/* Production outside an open window starts read-only (CONTRACT §4). */
static bool session_wants_read_only(session *s)
{
	return s->target->environment == ENV_PRODUCTION &&
	       !windows_open_now(s->cfg, s->target->name, s->who->actor, time(NULL));
}

pin_wall upstream_pin_wall(const session *s)
{
	pin_wall w = { s->target, s->up.backend_pid, 0, 0 };

	wall_write_window(s->cfg, s->target, s->who->actor, time(NULL), &w.write_from, &w.write_until);
	return w;
}

/*
 * The pin, signed for the database walls when the target requires them, and
 * then the walls' verdict on it (WALL_CHECK_SQL): the one place a walled
 * target is proven to have its walls and our key, on the very backend the
 * session will use, so a target whose walls are missing or hold another key
 * is refused whatever the start-time check saw.
 */
static char *walled_pin_sql(session *s)
{
	pin_wall w = upstream_pin_wall(s);
	char *pin, *sql;

	if (!wall_required(s->target))
		return pin_sql_build(s->cfg, s->who, s->up.read_only);
	pin = pin_sql_build_walled(s->cfg, s->who, s->up.read_only, &w);
	if (!pin || asprintf(&sql, "%s; " WALL_CHECK_SQL, pin) < 0)
		sql = NULL;
	free(pin);
	return sql;
}

/* A row among the pinning results is the walls' verdict: anything but 'ok' refuses the session. */
static bool wall_verdict_ok(session *s, const PGresult *res)
{
	const char *v = PQntuples(res) == 1 && PQnfields(res) == 1 ? PQgetvalue(res, 0, 0) : "?";

	if (strcmp(v, "ok") == 0)
		return true;
	session_log(LOG_LVL_ERROR, s, "target %s: walls = required but the database says the pin is \"%s\"%s",
		    s->target->name, v,
		    strcmp(v, "mismatch") == 0 ? ": its wall key is not the one in wall_key_file" : "");
	return false;
}

static void start_pinning(session *s)
{
	char *sql;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	s->srv->metrics.upstream_connects++;
	health_note_connect(s->srv, s->target->name, true, NULL);
	s->srv->metrics.upstream_connect_us_total +=
		(uint64_t)((now.tv_sec - s->up.connect_start.tv_sec) * 1000000 +
			   (now.tv_nsec - s->up.connect_start.tv_nsec) / 1000);
	s->up.read_only = session_wants_read_only(s);
	s->up.backend_pid = (uint32_t)PQbackendPID(s->up.pg);
	sql = walled_pin_sql(s);
	if (!sql || !PQsendQuery(s->up.pg, sql)) {
		free(sql);
		upstream_failed(s, "pinning");
		return;
	}
	free(sql);
	upstream_set_phase(s, UPSTREAM_PINNING);
	if (!upstream_wait(s, PQflush(s->up.pg) == 1 ? EV_WRITE : EV_READ))
		upstream_failed(s, "event setup");
}

static void upstream_on_read(void *arg)
{
	relay_upstream_input(arg);
}

static void upstream_on_drain(void *arg)
{
	relay_upstream_drained(arg);
}

static void upstream_on_close(void *arg, const char *why)
{
	session *s = arg;

	if (s->closing)
		return;
	session_log(LOG_LVL_WARN, s, "upstream connection lost (%s)", why);
	client_fail(s, "08006", "pgwarden: upstream connection lost", NULL);
}

static const io_handlers upstream_io_handlers = {upstream_on_read, upstream_on_drain, upstream_on_close};

/*
 * A plain socket's libpq connection, let go once the session runs on our
 * duplicate of the socket (up.own_fd). PQfinish would say goodbye
 * (Terminate) on the socket, so libpq's descriptor number is first pointed
 * at sink, an unconnected socket (dup2 swaps it in one step: no other
 * thread can be handed that number meanwhile), where the goodbye fails
 * harmlessly. upstream_close() says goodbye itself. If dup2 fails libpq is
 * kept, which costs only memory and a descriptor. Closes sink.
 */
static void release_libpq(session *s, int sink)
{
	if (dup2(sink, PQsocket(s->up.pg)) >= 0) {
		PQfinish(s->up.pg);
		s->up.pg = NULL;
	}
	close(sink);
}

/* Pinning is done and libpq is idle: relay the socket ourselves from now on. */
static void become_ready(session *s)
{
	int fd = PQsocket(s->up.pg), sink = -1;
	SSL *ssl = PQsslInUse(s->up.pg) ? PQsslStruct(s->up.pg, "OpenSSL") : NULL;
	const char *scs = PQparameterStatus(s->up.pg, "standard_conforming_strings");

	event_free(s->up.poll_ev);
	s->up.poll_ev = NULL;
	s->up.cancel = cancel_handle_new(s->up.pg); /* NULL only without memory: cancels are dropped */
	s->up.standard_conforming_strings = !scs || strcmp(scs, "on") == 0;
	if (ssl) { /* libpq's own writes never move their buffer; ours may (IO_TLS_MODES) */
		SSL_set_mode(ssl, IO_TLS_MODES);
	} else if ((sink = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0) {
		/* Both descriptors are taken first, so libpq is kept whole if either is missing. */
		s->up.own_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (s->up.own_fd >= 0) {
			fd = s->up.own_fd;
		} else {
			close(sink);
			sink = -1;
		}
	}
	if (io_init(&s->up.io, s->srv->base, fd, ssl, &upstream_io_handlers, s) != 0) {
		if (sink >= 0)
			close(sink);
		upstream_failed(s, "relay setup");
		return;
	}
	io_set_reading(&s->up.io, true);
	s->up.txn_status = 'I';
	upstream_set_phase(s, UPSTREAM_READY);
	client_login_complete(s); /* passes on libpq's ParameterStatus values */
	if (sink >= 0)
		release_libpq(s, sink);
}

/*
 * The server refused a pinning statement: say what it was, not "could not
 * connect". A missing role (42704) or a login role that may not SET ROLE to
 * it (42501) is an operator's mistake the client should be told about in
 * PostgreSQL's words; the statement is ours, the SQLSTATE is the server's.
 */
static void pinning_refused(session *s, const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char msg[256], detail[256];

	session_log(LOG_LVL_WARN, s, "pinning identity failed: %s (%s)%s", primary ? primary : "?", state ? state : "?",
		    wall_required(s->target) ? " (walls = required: is deploy/walls.sql installed?)" : "");
	snprintf(msg, sizeof(msg), "pgwarden: could not pin the session's identity on target \"%s\": %s",
		 s->target->name, primary ? primary : "error");
	snprintf(detail, sizeof(detail), "pgwarden's login role could not take on role \"%s\" of this token; "
		 "the operator can find such records with pgwarden --check --connect.", s->who->role);
	client_fail(s, state && strlen(state) == 5 ? state : "42501", msg, detail);
}

/* Collect the pinning results; any failure ends the session (identity would not hold). */
static void poll_pinning(session *s)
{
	PGresult *res;

	if (!PQconsumeInput(s->up.pg)) {
		upstream_failed(s, "pinning");
		return;
	}
	while (!PQisBusy(s->up.pg)) {
		res = PQgetResult(s->up.pg);
		if (!res) {
			if (PQtransactionStatus(s->up.pg) != PQTRANS_IDLE) {
				upstream_failed(s, "pinning (not idle)");
				return;
			}
			become_ready(s);
			return;
		}
		if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
			pinning_refused(s, res);
			PQclear(res);
			return;
		}
		if (PQresultStatus(res) == PGRES_TUPLES_OK && !wall_verdict_ok(s, res)) {
			PQclear(res);
			upstream_failed(s, "pinning");
			return;
		}
		PQclear(res);
	}
	if (!upstream_wait(s, PQflush(s->up.pg) == 1 ? EV_WRITE : EV_READ))
		upstream_failed(s, "event setup");
}

static void upstream_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	session *s = arg;

	if (s->closing)
		return;
	switch (s->up.phase) {
	case UPSTREAM_CONNECTING:
		switch (PQconnectPoll(s->up.pg)) {
		case PGRES_POLLING_READING:
			if (!upstream_wait(s, EV_READ))
				upstream_failed(s, "event setup");
			break;
		case PGRES_POLLING_WRITING:
			if (!upstream_wait(s, EV_WRITE))
				upstream_failed(s, "event setup");
			break;
		case PGRES_POLLING_OK:
			start_pinning(s);
			break;
		default:
			upstream_failed(s, "connection");
			break;
		}
		break;
	case UPSTREAM_PINNING:
		poll_pinning(s);
		break;
	default:
		break;
	}
}

void upstream_stop(session *s)
{
	if (s->up.poll_ev)
		event_del(s->up.poll_ev);
	io_stop(&s->up.io);
}

void upstream_close(session *s)
{
	if (s->up.poll_ev) {
		event_free(s->up.poll_ev);
		s->up.poll_ev = NULL;
	}
	/*
	 * Say goodbye like libpq would, unless a message is half sent (bytes
	 * still queued, or a CopyData whose rest the client never sent). Where
	 * libpq is still there (TLS, or it could not be let go), PQfinish does.
	 */
	if (!s->up.pg && s->up.own_fd >= 0 && io_active(&s->up.io) && io_pending(&s->up.io) == 0 &&
	    s->client.copy_passthru == 0) {
		static const char terminate[5] = {'X', 0, 0, 0, 4};
		(void)send(s->up.own_fd, terminate, sizeof(terminate), MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	if (io_active(&s->up.io))
		io_free(&s->up.io);
	if (s->up.pg) {
		PQfinish(s->up.pg);
		s->up.pg = NULL;
	}
	if (s->up.own_fd >= 0) {
		close(s->up.own_fd);
		s->up.own_fd = -1;
	}
	cancel_handle_unref(s->up.cancel);
	s->up.cancel = NULL;
	if (s->up.phase != UPSTREAM_NONE)
		upstream_set_phase(s, UPSTREAM_CLOSED);
}
