/* cancel.c - forwarding CancelRequests upstream on a detached thread (PQcancel blocks). */
#include "proxy/cancel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "conf/core/log.h"
#include "proxy/server.h"

/* Bound on cancel threads in flight, so a cancel flood cannot exhaust threads. */
#define MAX_CANCEL_THREADS 32

static atomic_int cancels_in_flight;

struct cancel_handle {
	atomic_int refs;
	PGcancel *pg;
};

cancel_handle *cancel_handle_new(PGconn *pg)
{
	cancel_handle *h = malloc(sizeof(*h));

	if (!h)
		return NULL;
	h->pg = PQgetCancel(pg);
	if (!h->pg) {
		free(h);
		return NULL;
	}
	atomic_init(&h->refs, 1);
	return h;
}

void cancel_handle_unref(cancel_handle *h)
{
	if (h && atomic_fetch_sub(&h->refs, 1) == 1) {
		PQfreeCancel(h->pg);
		free(h);
	}
}

bool cancel_handle_busy(cancel_handle *h)
{
	return h && atomic_load(&h->refs) > 1;
}

static void *cancel_thread(void *arg)
{
	cancel_handle *h = arg;
	char err[256];

	if (!PQcancel(h->pg, err, sizeof(err)))
		log_warn("cancel request to upstream failed: %s", err);
	cancel_handle_unref(h);
	atomic_fetch_sub(&cancels_in_flight, 1);
	return NULL;
}

void cancel_upstream(session *s)
{
	pthread_t th;
	pthread_attr_t attr;
	cancel_handle *h = s->up.cancel;

	if (s->up.phase != UPSTREAM_READY || !h)
		return;
	if (atomic_fetch_add(&cancels_in_flight, 1) >= MAX_CANCEL_THREADS) {
		atomic_fetch_sub(&cancels_in_flight, 1);
		session_log(LOG_LVL_WARN, s, "cancel dropped: too many cancels in flight");
		return;
	}
	atomic_fetch_add(&h->refs, 1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, cancel_thread, h) != 0) {
		cancel_handle_unref(h);
		atomic_fetch_sub(&cancels_in_flight, 1);
	} else
		session_log(LOG_LVL_INFO, s, "cancel request forwarded upstream");
	pthread_attr_destroy(&attr);
}

void cancel_request(pgw_server *srv, uint32_t pid, uint32_t key)
{
	session *s;

	TAILQ_FOREACH(s, &srv->sessions, link)
	{
		if (s->cancel_pid != pid || s->closing)
			continue;
		/* A wrong key does nothing, like PostgreSQL. */
		if (CRYPTO_memcmp(&s->cancel_key, &key, sizeof(key)) == 0)
			cancel_upstream(s);
		return;
	}
}
