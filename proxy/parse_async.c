/* parse_async.c - large statements parsed on a worker thread, handed back to the loop through an eventfd. */
#include "proxy/parse_async.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxy/relay.h"
#include "proxy/server.h"

/* One text being parsed off the loop. */
struct parse_job {
	session *s;            /* the session waiting for it; NULL once it ended (the result is dropped) */
	char *text;            /* a copy of the statement text (the client input may move) */
	size_t len;            /* its length */
	policy_lexctx lx;      /* how the server lexes it */
	policy_analysis a;     /* the worker's result */
	int rc;                /* policy_analyze's return: 0, or -1 out of memory */
	bool done;             /* the worker finished (set before it writes wake_fd) */
	int wake_fd;           /* eventfd the worker writes when done */
	struct event *wake_ev; /* reads wake_fd on the loop */
};

static void job_free(struct parse_job *job)
{
	policy_analysis_clear(&job->a);
	free(job->text);
	free(job);
}

/* Worker: a classifier of its own (classifiers are per thread), no cache. */
static void *worker(void *arg)
{
	struct parse_job *job = arg;
	policy_classifier *pc = policy_classifier_new(0);
	uint64_t one = 1;
	ssize_t w;

	job->rc = pc ? policy_analyze(pc, job->text, job->len, &job->lx, &job->a) : -1;
	policy_classifier_free(pc);
	job->done = true;
	w = write(job->wake_fd, &one, sizeof(one));
	(void)w;
	return NULL;
}

/* On the loop: the worker is done; wake the session, which judges its message again. */
static void landed(evutil_socket_t fd, short what, void *arg)
{
	struct parse_job *job = arg;
	session *s = job->s;

	(void)what;
	event_free(job->wake_ev);
	job->wake_ev = NULL;
	close(fd);
	job->wake_fd = -1;
	if (!s) {
		job_free(job);
		return;
	}
	s->parse_waiting = false;
	relay_client_wake(s);
}

static parse_result start_job(session *s, const char *sql, size_t len, const policy_lexctx *lx)
{
	struct parse_job *job = calloc(1, sizeof(*job));
	pthread_attr_t attr;
	pthread_t th;
	int err;

	if (!job || !(job->text = malloc(len ? len : 1)))
		goto oom;
	memcpy(job->text, sql, len);
	job->len = len;
	job->lx = *lx;
	job->s = s;
	job->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (job->wake_fd < 0 || !(job->wake_ev = event_new(s->srv->base, job->wake_fd, EV_READ, landed, job)) ||
	    event_add(job->wake_ev, NULL) != 0)
		goto oom;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&th, &attr, worker, job);
	pthread_attr_destroy(&attr);
	if (err != 0)
		goto oom;
	s->parse_job = job;
	s->parse_waiting = true;
	relay_client_wake(s); /* no longer readable: pauses the client until the job lands */
	return PARSE_WAITING;
oom:
	if (job) {
		if (job->wake_ev)
			event_free(job->wake_ev);
		if (job->wake_fd >= 0)
			close(job->wake_fd);
		free(job->text);
		free(job);
	}
	return PARSE_FAILED;
}

parse_result parse_async_analyze(session *s, const char *sql, size_t len, const policy_lexctx *lx, policy_analysis *out)
{
	struct parse_job *job = s->parse_job;

	if (len < PARSE_ASYNC_MIN_LEN && !job)
		return policy_analyze(s->srv->classifier, sql, len, lx, out) == 0 ? PARSE_DONE : PARSE_FAILED;
	if (job && !job->done)
		return PARSE_WAITING;
	if (job) {
		/* the message at the front is still the one handed to the worker: take its analysis */
		bool same = job->len == len && job->lx.standard_conforming_strings == lx->standard_conforming_strings &&
			    memcmp(job->text, sql, len) == 0;
		int rc = job->rc;

		s->parse_job = NULL;
		if (same) {
			*out = job->a;
			job->a.v = NULL;
			job->a.n = 0;
		}
		job_free(job);
		if (same)
			return rc == 0 ? PARSE_DONE : PARSE_FAILED;
		if (len < PARSE_ASYNC_MIN_LEN)
			return policy_analyze(s->srv->classifier, sql, len, lx, out) == 0 ? PARSE_DONE : PARSE_FAILED;
	}
	return start_job(s, sql, len, lx);
}

void parse_async_forget(session *s)
{
	struct parse_job *job = s->parse_job;

	if (!job)
		return;
	s->parse_job = NULL;
	if (job->wake_ev)
		job->s = NULL; /* still running (or not yet landed): landed() frees it */
	else
		job_free(job);
}
