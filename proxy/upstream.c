/*
 * upstream.c - one upstream connection: connecting to the target with
 * libpq without blocking the loop, handing the socket to the raw relay,
 * attaching a pooled connection to a session, closing.
 *
 * libpq gives us upstream TLS, SCRAM, multi-host conninfo and service files
 * for free. Once connected, libpq's connection is idle and its buffers are
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
#include "conf/core/log.h"
#include "proxy/pool.h"
#include "proxy/relay.h"
#include "proxy/server.h"
#include "proxy/wall.h"
#include "conf/windows.h"

static void upstream_poll_cb(evutil_socket_t fd, short what, void *arg);

static const char *const upstream_phase_names[] = { "none", "connecting", "ready", "closed" };

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

/*
 * Start a pool connection: the target's conninfo alone. The client's own
 * settings are not startup options here: the connection outlives the client
 * and RESET ALL would bring them back for the next one. They are SET on
 * every borrow instead (relay_repin).
 */
static PGconn *connect_start(session *s)
{
	const char *kw[] = { "dbname", "fallback_application_name", NULL };
	/* The pool's conninfo, not the session's snapshot's: a session that logged in before a reload
	 * must not open a connection with the old conninfo under the pool's new generation. */
	const char *val[] = { pool_conninfo(s->pool), "pgwarden", NULL }; /* dbname is expanded: the conninfo */

	return PQconnectStartParams(kw, val, 1);
}

void upstream_start(session *s)
{
	upstream_set_phase(s, UPSTREAM_CONNECTING);
	clock_gettime(CLOCK_MONOTONIC, &s->up.connect_start);
	s->up.pg = connect_start(s);
	if (!s->up.pg || PQstatus(s->up.pg) == CONNECTION_BAD) {
		upstream_failed(s, "connection start");
		return;
	}
	PQsetnonblocking(s->up.pg, 1);
	if (!upstream_wait(s, EV_WRITE))
		upstream_failed(s, "event setup");
}

/* Production outside an open window starts read-only (CONTRACT §4). */
bool upstream_wants_read_only(session *s)
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

static void count_connect(session *s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	s->srv->metrics.upstream_connects++;
	health_note_connect(s->srv, s->target->name, true, NULL);
	s->srv->metrics.upstream_connect_us_total += (uint64_t)((now.tv_sec - s->up.connect_start.tv_sec) * 1000000 +
								(now.tv_nsec - s->up.connect_start.tv_nsec) / 1000);
	s->up.born = now.tv_sec;
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

	s->up.broken = true;
	if (s->closing)
		return;
	session_log(LOG_LVL_WARN, s, "upstream connection lost (%s)", why);
	client_fail(s, "08006", "pgwarden: upstream connection lost", NULL);
}

static const io_handlers upstream_io_handlers = { upstream_on_read, upstream_on_drain, upstream_on_close };

/*
 * A plain socket's libpq connection, let go once the session runs on our
 * duplicate of the socket (up.own_fd). PQfinish would say goodbye
 * (Terminate) on the socket, so libpq's descriptor number is first pointed
 * at sink, an unconnected socket (dup2 swaps it in one step: no other
 * thread can be handed that number meanwhile), where the goodbye fails
 * harmlessly. upstream_close() says goodbye itself. If dup2 fails libpq is
 * kept, which costs only memory and a descriptor. Closes sink.
 */
static void release_libpq(upstream_conn *up, int sink)
{
	if (dup2(sink, PQsocket(up->pg)) >= 0) {
		PQfinish(up->pg);
		up->pg = NULL;
	}
	close(sink);
}

void upstream_conn_connected(upstream_conn *up)
{
	int fd = PQsocket(up->pg), sink = -1;
	SSL *ssl = PQsslInUse(up->pg) ? PQsslStruct(up->pg, "OpenSSL") : NULL;
	const char *scs = PQparameterStatus(up->pg, "standard_conforming_strings");

	up->backend_pid = (uint32_t)PQbackendPID(up->pg);
	up->cancel = cancel_handle_new(up->pg); /* NULL only without memory: cancels are dropped */
	up->standard_conforming_strings = !scs || strcmp(scs, "on") == 0;
	if (ssl) { /* libpq's own writes never move their buffer; ours may (IO_TLS_MODES) */
		SSL_set_mode(ssl, IO_TLS_MODES);
	} else if ((sink = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0) {
		/* Both descriptors are taken first, so libpq is kept whole if either is missing. */
		up->own_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (up->own_fd < 0) {
			close(sink);
			sink = -1;
		}
	}
	if (sink >= 0)
		release_libpq(up, sink);
	up->txn_status = 'I';
}

/*
 * Connected, and libpq is idle: relay the socket ourselves from now on. The
 * connection is in the "nobody" state (no role, no pinned settings) until a
 * borrow pins it.
 */
static void become_ready(session *s)
{
	event_free(s->up.poll_ev);
	s->up.poll_ev = NULL;
	count_connect(s);
	pool_learn(s); /* the server's reported settings, for logins answered without a backend */
	upstream_conn_connected(&s->up);
	if (upstream_attach(s) != 0) {
		upstream_failed(s, "relay setup");
		return;
	}
	pool_connected(s);
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
			if (PQtransactionStatus(s->up.pg) != PQTRANS_IDLE)
				upstream_failed(s, "connection (not idle)");
			else
				become_ready(s);
			break;
		default:
			upstream_failed(s, "connection");
			break;
		}
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

int upstream_conn_fd(const upstream_conn *up)
{
	return up->own_fd >= 0 ? up->own_fd : PQsocket(up->pg);
}

SSL *upstream_conn_ssl(const upstream_conn *up)
{
	return up->pg && PQsslInUse(up->pg) ? PQsslStruct(up->pg, "OpenSSL") : NULL;
}

int upstream_attach(session *s)
{
	if (io_init(&s->up.io, s->srv->base, upstream_conn_fd(&s->up), upstream_conn_ssl(&s->up), &upstream_io_handlers,
		    s) != 0)
		return -1;
	io_set_reading(&s->up.io, true);
	upstream_set_phase(s, UPSTREAM_READY);
	return 0;
}

void upstream_conn_clear(upstream_conn *up)
{
	memset(up, 0, sizeof(*up));
	up->own_fd = -1;
	up->io.fd = -1;
	up->txn_status = 'I';
}

void upstream_conn_close(upstream_conn *up, bool goodbye)
{
	if (up->poll_ev) {
		event_free(up->poll_ev);
		up->poll_ev = NULL;
	}
	/*
	 * Say goodbye like libpq would, unless a message is half sent (bytes
	 * still queued, or a CopyData whose rest the client never sent). Where
	 * libpq is still there (TLS, or it could not be let go), PQfinish does.
	 */
	if (goodbye && !up->pg && up->own_fd >= 0 && io_active(&up->io) && io_pending(&up->io) == 0) {
		static const char terminate[5] = { 'X', 0, 0, 0, 4 };
		(void)send(up->own_fd, terminate, sizeof(terminate), MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	if (io_active(&up->io))
		io_free(&up->io);
	if (up->pg) {
		PQfinish(up->pg);
		up->pg = NULL;
	}
	if (up->own_fd >= 0) {
		close(up->own_fd);
		up->own_fd = -1;
	}
	cancel_handle_unref(up->cancel);
	up->cancel = NULL;
}

void upstream_close(session *s)
{
	upstream_conn_close(&s->up, s->client.copy_passthru == 0);
	if (s->up.phase != UPSTREAM_NONE)
		upstream_set_phase(s, UPSTREAM_CLOSED);
}
