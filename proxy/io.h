/*
 * io.h - one connection's transport: a non-blocking socket, optionally TLS,
 * with an input and an output buffer (libevent evbuffers).
 *
 * Plain TCP, TLS we accepted, and TLS inside libpq's own SSL object all go
 * through the same few operations. Unlike a bufferevent, writes are tried
 * at once (io_flush) and write readiness is watched only while the socket
 * is full, and reads do no FIONREAD ioctl: on a 2-core machine the syscalls
 * saved per query are most of the proxy's cost (PgBouncer's sbuf habit).
 */
#ifndef PGW_IO_H
#define PGW_IO_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

/*
 * The SSL modes every TLS session the io drives needs: writes are retried
 * from evbuffer chunks that may have moved, may complete partially, and an
 * idle session gives its 16 kB record buffers back (most of an idle TLS
 * session's memory).
 */
#define IO_TLS_MODES (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS)

/* What the owner hears. Called from the loop, never from inside io_flush. */
typedef struct io_handlers {
	void (*on_read)(void *arg);                   /* new bytes are in io->in */
	void (*on_drain)(void *arg);                  /* the output emptied after the socket had been full */
	void (*on_close)(void *arg, const char *why); /* EOF, error or TLS failure: stop using the io */
} io_handlers;

typedef struct pgw_io {
	int fd;                /* the socket (not owned: the caller or libpq closes it) */
	SSL *ssl;              /* TLS session or NULL (not owned) */
	struct evbuffer *in;   /* received, not yet consumed */
	struct evbuffer *out;  /* to send */
	struct event *rev;     /* read readiness (persistent), added while reading or handshaking */
	struct event *wev;     /* write readiness (persistent), added only while blocked */
	bool reading;          /* the owner wants input (not paused for backpressure) */
	bool handshaking;      /* TLS server handshake in progress */
	bool read_wants_write; /* TLS: SSL_read asked for writability */
	bool write_wants_read; /* TLS: SSL_write asked for readability */
	bool wev_added;        /* wev is pending */
	bool rev_added;        /* rev is pending */
	bool failed;           /* a read or write failed; on_close was or will be called */
	size_t tls_retry_len;  /* TLS: length of the SSL_write to repeat, 0 if none */
	const io_handlers *h;
	void *arg;
} pgw_io;

/* Set up the io for fd (and ssl); reading starts disabled. 0, or -1 on out of memory. */
int io_init(pgw_io *io, struct event_base *base, int fd, SSL *ssl, const io_handlers *h, void *arg);
/* Free the events and buffers; leaves fd and ssl alone. Safe on a zeroed io. */
void io_free(pgw_io *io);

/* Stop all callbacks for good (the owner is closing). */
void io_stop(pgw_io *io);

/* Whether io_init has set this io up. */
static inline bool io_active(const pgw_io *io)
{
	return io->rev != NULL;
}

/* Start (or stop) reading. */
void io_set_reading(pgw_io *io, bool on);

/* Begin a TLS server handshake on ssl; the first decrypted bytes arrive through on_read. */
int io_start_tls_accept(pgw_io *io, SSL *ssl);

/*
 * Write as much of io->out as the socket takes now; if it is full, watch
 * for writability and finish later. Returns -1 after a write error (the
 * owner closes; on_close is not called from here), else 0.
 */
int io_flush(pgw_io *io);

/* Bytes still to write. */
static inline size_t io_pending(const pgw_io *io)
{
	return evbuffer_get_length(io->out);
}

#endif
