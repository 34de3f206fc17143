/* cancel.c - forwarding CancelRequests upstream on a detached thread (PQcancel blocks). */
#include "proxy/cancel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "proxy/log.h"
#include "proxy/server.h"

/* Bound on cancel threads in flight, so a cancel flood cannot exhaust threads. */
#define MAX_CANCEL_THREADS 32

static atomic_int cancels_in_flight;

static void *cancel_thread(void *arg)
{
	PGcancel *c = arg;
	char err[256];

	if (!PQcancel(c, err, sizeof(err)))
		log_warn("cancel request to upstream failed: %s", err);
	PQfreeCancel(c);
	atomic_fetch_sub(&cancels_in_flight, 1);
	return NULL;
}

void cancel_upstream(session *s)
{
	pthread_t th;
	pthread_attr_t attr;
	PGcancel *c;

	if (s->up.phase != UPSTREAM_READY || !s->up.pg)
		return;
	if (atomic_fetch_add(&cancels_in_flight, 1) >= MAX_CANCEL_THREADS) {
		atomic_fetch_sub(&cancels_in_flight, 1);
		session_log(LOG_LVL_WARN, s, "cancel dropped: too many cancels in flight");
		return;
	}
	c = PQgetCancel(s->up.pg);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (!c || pthread_create(&th, &attr, cancel_thread, c) != 0) {
		PQfreeCancel(c);
		atomic_fetch_sub(&cancels_in_flight, 1);
	} else
		session_log(LOG_LVL_INFO, s, "cancel request forwarded upstream");
	pthread_attr_destroy(&attr);
}

void cancel_request(pgw_server *srv, uint32_t pid, uint32_t key)
{
	session *s;

	TAILQ_FOREACH(s, &srv->sessions, link) {
		if (s->cancel_pid != pid || s->closing)
			continue;
		/* A wrong key does nothing, like PostgreSQL. */
		if (CRYPTO_memcmp(&s->cancel_key, &key, sizeof(key)) == 0)
			cancel_upstream(s);
		return;
	}
}
