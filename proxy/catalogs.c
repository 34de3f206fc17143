/*
 * catalogs.c - loading each target's function catalog off the event loop.
 *
 * A load is a short-lived thread: its own blocking libpq connection to the
 * target (the same conninfo the sessions use), catalog_load(), PQfinish.
 * The finished catalog is handed back through a locked list and an event
 * the thread makes active; everything else happens on the loop thread.
 */
#include "conf/core/arr.h"
#include "proxy/catalogs.h"

#include <pthread.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <uthash.h>

#include "policy/catalog.h"
#include "proxy/client.h"
#include "conf/core/log.h"
#include "proxy/relay.h"
#include "proxy/server.h"

/* A failed load is tried again after this long. */
#define CATALOG_RETRY_SECONDS 5
/* At exit, loader threads still running are waited for this long (they may be inside libpq). */
#define CATALOG_EXIT_WAIT_SECONDS 3

/* One target's catalog and its loading state (loop thread only). */
typedef struct catalog_slot {
	char *target;                /* target name (key) */
	const fn_catalog *cat;       /* newest catalog, or NULL */
	uint64_t stale_mark;         /* bumped when a session sends function DDL */
	uint64_t covered;            /* stale_mark the newest catalog was loaded after */
	bool loading;                /* a load thread runs */
	bool again;                  /* load once more when it lands */
	bool failed;                 /* the last load failed; a retry is scheduled */
	catalog_counts counts;       /* of the newest catalog */
	catalog_stale *stale;        /* names (or everything) changed since the newest catalog was read */
	struct pending_ddl *pending; /* per session: what its uncommitted DDL named, re-marked at its commit */
	UT_hash_handle hh;
} catalog_slot;

/* What one session's DDL named, until its transaction ends (catalogs_refresh_and_wait). */
typedef struct pending_ddl {
	uint64_t session_id; /* the session (key) */
	char **names;        /* bare names its DDL mentioned */
	size_t n;
	bool global; /* some of its DDL named nothing we know: everything */
	UT_hash_handle hh;
} pending_ddl;

/* Sessions whose DDL is pending at once, past which a new one is recorded as global (bounded memory). */
#define CATALOG_PENDING_MAX 1024

/* A load handed to a thread and back. */
typedef struct load_job {
	pgw_server *srv;
	catalog_slot *slot; /* slots live as long as the server */
	char *conninfo;     /* copied from the target */
	pgw_config *cfg;    /* reference taken and dropped on the loop thread */
	uint64_t mark;      /* slot->stale_mark when the load started */
	bool walls;         /* the target is walled: trust deploy/walls.sql's schema */
	fn_catalog *result; /* set by the thread */
	char *err;          /* set by the thread on failure */
	struct load_job *next;
} load_job;

/* The loader's shared state. */
typedef struct catalog_loader {
	catalog_slot *slots;    /* by target name */
	pthread_mutex_t lock;   /* guards done and running */
	pthread_cond_t idle;    /* signalled when a thread ends (running went down) */
	int running;            /* loader threads started and not yet ended */
	load_job *done;         /* finished loads, handed back by threads */
	int wake_fd;            /* eventfd a thread writes to when it hands a load back */
	struct event *done_ev;  /* reads wake_fd on the loop */
	struct event *retry_ev; /* retries failed loads */
} catalog_loader;

static catalog_slot *slot_for(catalog_loader *l, const char *target, bool create)
{
	catalog_slot *sl;

	HASH_FIND_STR(l->slots, target, sl);
	if (sl || !create)
		return sl;
	sl = calloc(1, sizeof(*sl));
	if (!sl || !(sl->target = strdup(target)) || !(sl->stale = catalog_stale_new())) {
		if (sl)
			free(sl->target);
		free(sl);
		return NULL;
	}
	HASH_ADD_KEYPTR(hh, l->slots, sl->target, strlen(sl->target), sl);
	return sl;
}

/* Thread: connect, read the catalog, hand the result back. */
static void *load_thread(void *arg)
{
	load_job *job = arg;
	catalog_loader *l = job->srv->catalogs;
	const char *kw[] = { "dbname", "connect_timeout", "fallback_application_name", NULL };
	const char *val[] = { job->conninfo, "10", "pgwarden-catalog", NULL };
	PGconn *conn = PQconnectdbParams(kw, val, 1);

	static pthread_mutex_t one_at_a_time = PTHREAD_MUTEX_INITIALIZER;

	pthread_mutex_lock(&one_at_a_time);
	if (PQstatus(conn) != CONNECTION_OK)
		job->err = strdup(PQerrorMessage(conn));
	else
		job->result = catalog_load_walled(conn, job->cfg, job->walls, &job->err);
	pthread_mutex_unlock(&one_at_a_time);
	PQfinish(conn);
	pthread_mutex_lock(&l->lock);
	job->next = l->done;
	l->done = job;
	/*
	 * Wake the loop through an eventfd rather than event_active(): the latter
	 * would need libevent's locking on every event operation of the hot path.
	 * Written under the lock: once running is 0, catalogs_free may close it.
	 */
	{
		uint64_t one = 1;
		ssize_t w = write(l->wake_fd, &one, sizeof(one));
		(void)w;
	}
	l->running--;
	pthread_cond_broadcast(&l->idle);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* Sessions waiting for this target's catalog go on once a load covering their DDL lands or fails. */
static void wake_waiters(pgw_server *srv, catalog_slot *sl, bool failed)
{
	session *s, *next;

	for (s = TAILQ_FIRST(&srv->sessions); s; s = next) {
		next = TAILQ_NEXT(s, link);
		if (!s->catalog_waiting || s->closing || strcmp(s->target->name, sl->target) != 0)
			continue;
		if (!failed && sl->covered < s->catalog_wait_mark)
			continue;
		s->catalog_waiting = false;
		relay_client_wake(s);
	}
}

/* A load could not even start: treat it as failed (waiters go on, a retry is scheduled). */
static void load_not_started(pgw_server *srv, catalog_slot *sl)
{
	struct timeval tv = { CATALOG_RETRY_SECONDS, 0 };

	sl->failed = true;
	if (!evtimer_pending(srv->catalogs->retry_ev, NULL))
		evtimer_add(srv->catalogs->retry_ev, &tv);
	wake_waiters(srv, sl, true);
}

static void start_load(pgw_server *srv, catalog_slot *sl)
{
	const pgw_target *t = config_find_target(srv->cfg, sl->target);
	load_job *job;
	pthread_t th;
	pthread_attr_t attr;

	if (!t) {
		wake_waiters(srv, sl, true); /* the target was removed by a reload: nobody waits for it */
		return;
	}
	if (sl->loading) {
		sl->again = true;
		return;
	}
	job = calloc(1, sizeof(*job));
	if (!job || !(job->conninfo = strdup(t->conninfo))) {
		free(job);
		log_error("catalog %s: out of memory", sl->target);
		load_not_started(srv, sl);
		return;
	}
	job->srv = srv;
	job->slot = sl;
	job->cfg = config_ref(srv->cfg);
	job->mark = sl->stale_mark;
	job->walls = t->walls == WALLS_REQUIRED;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&srv->catalogs->lock);
	srv->catalogs->running++;
	pthread_mutex_unlock(&srv->catalogs->lock);
	if (pthread_create(&th, &attr, load_thread, job) != 0) {
		pthread_mutex_lock(&srv->catalogs->lock);
		srv->catalogs->running--;
		pthread_mutex_unlock(&srv->catalogs->lock);
		log_error("catalog %s: cannot start a loader thread", sl->target);
		config_unref(job->cfg);
		free(job->conninfo);
		free(job);
		load_not_started(srv, sl);
	} else
		sl->loading = true;
	pthread_attr_destroy(&attr);
}

static void pending_free(catalog_slot *sl, pending_ddl *p);

/* Drop the records of sessions that ended inside their DDL transaction (rolled back): bounded memory. */
static void pending_prune(pgw_server *srv, catalog_slot *sl)
{
	pending_ddl *p, *tmp;

	if (HASH_COUNT(sl->pending) < CATALOG_PENDING_MAX / 16)
		return;
	HASH_ITER(hh, sl->pending, p, tmp)
	{
		session *s;

		TAILQ_FOREACH(s, &srv->sessions, link)
		if (s->id == p->session_id && !s->closing)
			break;
		if (!s)
			pending_free(sl, p);
	}
}

static void land(pgw_server *srv, load_job *job)
{
	catalog_slot *sl = job->slot;
	catalog_loader *l = srv->catalogs;

	sl->loading = false;
	if (job->result) {
		if (sl->cat)
			catalog_unref(sl->cat);
		sl->cat = job->result;
		sl->covered = job->mark;
		catalog_stale_covered(sl->stale, sl->covered);
		sl->failed = false;
		catalog_counts_get(sl->cat, &sl->counts);
		log_info("catalog %s: %zu user functions analysed: %zu read-only, %zu write, %zu identity-changing, "
			 "%zu opaque, %zu trusted; %zu views, %zu of them do more than read",
			 sl->target, sl->counts.analysed, sl->counts.read_only, sl->counts.writes, sl->counts.identity,
			 sl->counts.opaque, sl->counts.trusted, sl->counts.views, sl->counts.views_denied);
	} else {
		log_error("catalog %s: cannot read function definitions: %s", sl->target,
			  job->err ? job->err : "unknown error");
		sl->failed = true;
		if (!evtimer_pending(l->retry_ev, NULL)) {
			struct timeval tv = { CATALOG_RETRY_SECONDS, 0 };
			evtimer_add(l->retry_ev, &tv);
		}
	}
	wake_waiters(srv, sl, !job->result);
	pending_prune(srv, sl);
	if (job->result && (sl->again || sl->stale_mark > sl->covered)) {
		sl->again = false;
		start_load(srv, sl);
	}
	config_unref(job->cfg);
	free(job->conninfo);
	free(job->err);
	free(job);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	pgw_server *srv = arg;
	catalog_loader *l = srv->catalogs;
	load_job *job;
	uint64_t n;
	ssize_t r = read(l->wake_fd, &n, sizeof(n));

	(void)r;
	pthread_mutex_lock(&l->lock);
	job = l->done;
	l->done = NULL;
	pthread_mutex_unlock(&l->lock);
	while (job) {
		load_job *next = job->next;
		land(srv, job);
		job = next;
	}
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	pgw_server *srv = arg;
	catalog_slot *sl, *tmp;

	HASH_ITER(hh, srv->catalogs->slots, sl, tmp)
	if (sl->failed && !sl->loading)
		start_load(srv, sl);
}

void catalogs_reload_all(pgw_server *srv)
{
	size_t i;

	for (i = 0; i < srv->cfg->n_targets; i++) {
		catalog_slot *sl = slot_for(srv->catalogs, srv->cfg->targets[i].name, true);
		if (!sl)
			continue;
		/*
		 * The new config's trusted_functions and pinned names apply once the new
		 * catalog lands; until then the old one keeps judging (marking it stale
		 * would deny every user-function call for the length of a load, on every
		 * reload).
		 */
		start_load(srv, sl);
	}
}

bool catalogs_all_settled(pgw_server *srv)
{
	size_t i;

	for (i = 0; i < srv->cfg->n_targets; i++) {
		catalog_slot *sl = slot_for(srv->catalogs, srv->cfg->targets[i].name, false);
		if (sl && !sl->cat && !sl->failed)
			return false;
	}
	return true;
}

int catalogs_init(pgw_server *srv)
{
	catalog_loader *l = calloc(1, sizeof(*l));

	if (!l)
		return -1;
	srv->catalogs = l;
	l->wake_fd = -1;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->idle, NULL);
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake_fd < 0)
		return -1;
	l->done_ev = event_new(srv->base, l->wake_fd, EV_READ | EV_PERSIST, done_cb, srv);
	l->retry_ev = evtimer_new(srv->base, retry_cb, srv);
	if (!l->done_ev || !l->retry_ev || event_add(l->done_ev, NULL) != 0)
		return -1;
	catalogs_reload_all(srv);
	return 0;
}

static void pending_free_all(catalog_slot *sl);

/*
 * Wait, bounded, for loader threads to end (a stop during a load: the thread
 * may be in PQconnectdbParams for up to its connect_timeout). True if none runs.
 */
static bool wait_for_loaders(catalog_loader *l)
{
	struct timespec until;
	bool idle;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += CATALOG_EXIT_WAIT_SECONDS;
	pthread_mutex_lock(&l->lock);
	while (l->running > 0 && pthread_cond_timedwait(&l->idle, &l->lock, &until) == 0)
		;
	idle = l->running == 0;
	pthread_mutex_unlock(&l->lock);
	if (!idle)
		log_warn("catalog: a loader thread is still connecting; exiting without waiting for it");
	return idle;
}

void catalogs_free(pgw_server *srv)
{
	catalog_loader *l = srv->catalogs;
	catalog_slot *sl, *tmp;

	if (!l)
		return;
	if (!wait_for_loaders(l))
		return; /* a thread still runs and will touch the lock and the eventfd: leave them to the exit */
	/* Loads that ended after the loop stopped were never landed. */
	while (l->done) {
		load_job *job = l->done;

		l->done = job->next;
		catalog_unref(job->result);
		config_unref(job->cfg);
		free(job->conninfo);
		free(job->err);
		free(job);
	}
	HASH_ITER(hh, l->slots, sl, tmp)
	{
		HASH_DEL(l->slots, sl);
		if (sl->cat)
			catalog_unref(sl->cat);
		pending_free_all(sl);
		catalog_stale_free(sl->stale);
		free(sl->target);
		free(sl);
	}
	if (l->done_ev)
		event_free(l->done_ev);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	if (l->retry_ev)
		event_free(l->retry_ev);
	free(l);
	srv->catalogs = NULL;
}

const fn_catalog *catalogs_get(pgw_server *srv, const char *target, bool *stale)
{
	catalog_slot *sl = slot_for(srv->catalogs, target, false);

	*stale = !sl || !sl->cat || catalog_stale_global(sl->stale);
	return sl ? sl->cat : NULL;
}

const catalog_stale *catalogs_stale_names(pgw_server *srv, const char *target)
{
	catalog_slot *sl = slot_for(srv->catalogs, target, false);

	return sl && catalog_stale_any(sl->stale) ? sl->stale : NULL;
}

void catalogs_mark_stale(pgw_server *srv, const char *target)
{
	catalog_slot *sl = slot_for(srv->catalogs, target, true);

	if (sl)
		sl->stale_mark++;
}

static void pending_free(catalog_slot *sl, pending_ddl *p)
{
	HASH_DEL(sl->pending, p);
	for (size_t i = 0; i < p->n; i++)
		free(p->names[i]);
	free(p->names);
	free(p);
}

static void pending_free_all(catalog_slot *sl)
{
	pending_ddl *p, *tmp;

	HASH_ITER(hh, sl->pending, p, tmp)
	pending_free(sl, p);
}

/* The session's record, created if missing; NULL when full or out of memory (then: global). */
static pending_ddl *pending_get(catalog_slot *sl, uint64_t id)
{
	pending_ddl *p = NULL;

	HASH_FIND(hh, sl->pending, &id, sizeof(id), p);
	if (p || HASH_COUNT(sl->pending) >= CATALOG_PENDING_MAX || !(p = calloc(1, sizeof(*p))))
		return p;
	p->session_id = id;
	HASH_ADD(hh, sl->pending, session_id, sizeof(p->session_id), p);
	return p;
}

static void pending_add(pending_ddl *p, const char *name)
{
	if (!ARR_EXTEND(p->names, p->n) || !(p->names[p->n] = strdup(name))) {
		p->global = true;
		return;
	}
	p->n++;
}

/* Mark stale what the record names (or everything), at the slot's current mark. */
static void stale_add_names(catalog_slot *sl, char *const *names, size_t n, bool global)
{
	if (global || n == 0) {
		catalog_stale_add(sl->stale, NULL, sl->stale_mark);
		return;
	}
	for (size_t i = 0; i < n; i++)
		catalog_stale_add(sl->stale, names[i], sl->stale_mark);
}

void catalogs_mark_stale_for(session *s, const struct policy_facts *f, bool names_known)
{
	catalog_slot *sl = slot_for(s->srv->catalogs, s->target->name, true);
	char *const *names = NULL;
	size_t n = 0;
	pending_ddl *p;

	if (!sl)
		return;
	sl->stale_mark++;
	if (names_known)
		names = policy_facts_ddl_names(f, &n);
	stale_add_names(sl, names, n, !names_known);
	if (!(p = pending_get(sl, s->id))) {
		catalog_stale_add(sl->stale, NULL, sl->stale_mark);
		return;
	}
	if (!names_known || n == 0)
		p->global = true;
	for (size_t i = 0; i < n && !p->global; i++)
		pending_add(p, names[i]);
}

void catalogs_refresh_and_wait(session *s)
{
	catalog_slot *sl = slot_for(s->srv->catalogs, s->target->name, true);
	pending_ddl *p = NULL;
	uint64_t id = s->id;

	if (!sl)
		return;
	/*
	 * The DDL is committed now: a load that started before the commit may have
	 * covered the names marked while it ran. Mark them again at the current mark
	 * (catalogs_mark_stale bumped it); without a record, everything.
	 */
	HASH_FIND(hh, sl->pending, &id, sizeof(id), p);
	if (p) {
		stale_add_names(sl, p->names, p->n, p->global);
		pending_free(sl, p);
	} else {
		catalog_stale_add(sl->stale, NULL, sl->stale_mark);
	}
	session_log(LOG_LVL_INFO, s, "definitions may have changed: reloading the catalog");
	s->catalog_waiting = true;
	s->catalog_wait_mark = sl->stale_mark;
	relay_client_wake(s); /* no longer readable: pauses the client */
	start_load(s->srv, sl);
}

void catalogs_render_metrics(pgw_server *srv, struct evbuffer *out)
{
	catalog_slot *sl, *tmp;

	/* each metric family's samples together, as the text format wants */
	evbuffer_add_printf(out, "# TYPE pgwarden_user_functions gauge\n");
	HASH_ITER(hh, srv->catalogs->slots, sl, tmp)
	{
		if (!sl->cat)
			continue;
		evbuffer_add_printf(out,
				    "pgwarden_user_functions{target=\"%s\",class=\"analysed\"} %zu\n"
				    "pgwarden_user_functions{target=\"%s\",class=\"read_only\"} %zu\n"
				    "pgwarden_user_functions{target=\"%s\",class=\"write\"} %zu\n"
				    "pgwarden_user_functions{target=\"%s\",class=\"identity\"} %zu\n"
				    "pgwarden_user_functions{target=\"%s\",class=\"opaque\"} %zu\n"
				    "pgwarden_user_functions{target=\"%s\",class=\"trusted\"} %zu\n",
				    sl->target, sl->counts.analysed, sl->target, sl->counts.read_only, sl->target,
				    sl->counts.writes, sl->target, sl->counts.identity, sl->target, sl->counts.opaque,
				    sl->target, sl->counts.trusted);
	}
	evbuffer_add_printf(out, "# TYPE pgwarden_user_views gauge\n");
	HASH_ITER(hh, srv->catalogs->slots, sl, tmp)
	{
		if (!sl->cat)
			continue;
		evbuffer_add_printf(out,
				    "pgwarden_user_views{target=\"%s\",class=\"analysed\"} %zu\n"
				    "pgwarden_user_views{target=\"%s\",class=\"more_than_read\"} %zu\n",
				    sl->target, sl->counts.views, sl->target, sl->counts.views_denied);
	}
}
