/* audit_events.c - process records: start/reload/stop with the approval evidence, window transitions, checkpoints. */
#include "proxy/audit_events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <openssl/evp.h>

#include "audit/audit.h"
#include "conf/core/json_writer.h"
#include "conf/windows.h"
#include "proxy/audit_hooks.h"
#include "conf/core/log.h"
#include "proxy/server.h"

#define WINDOW_RECHECK_SECONDS 3600 /* look again at least this often (clock steps, far transitions) */
#define REJECT_ERROR_MAX 2048       /* bytes of a rejected reload's errors kept in its record */

/* A window recorded open: its name and target as they were then. */
typedef struct open_window {
	char *name;   /* window name (owned) */
	char *target; /* its target (owned) */
} open_window;

/* What the process has recorded so far; owned by the server. */
typedef struct audit_events {
	struct event *window_timer;     /* fires at the next window transition */
	struct event *checkpoint_timer; /* every audit_checkpoint_interval seconds */
	int checkpoint_interval;        /* the interval the timer runs at */
	open_window *open;              /* the windows last recorded open */
	size_t n_open;                  /* how many */
	uint64_t checkpoint_seq;        /* seq of the last checkpoint appended (0: none) */
} audit_events;

/* ---- the windows in force, as JSON ---------------------------------------------------------- */

static void put_time(jbuf *b, time_t t)
{
	struct tm tm;
	char s[32];

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_put_cstr(b, s);
}

/* "tue,thu 22:00-23:30", as the config says it. */
static void put_weekly(jbuf *b, const pgw_window *w)
{
	static const char *const days[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
	char s[64];
	size_t n = 0;
	int d;

	for (d = 0; d < 7; d++)
		if (w->days & (1u << d))
			n += (size_t)snprintf(s + n, sizeof(s) - n, "%s%s", n ? "," : "", days[d]);
	snprintf(s + n, sizeof(s) - n, " %02d:%02d-%02d:%02d", w->start_minute / 60, w->start_minute % 60,
		 w->end_minute / 60, w->end_minute % 60);
	json_put_cstr(b, s);
}

static void put_window(jbuf *b, const pgw_window *w)
{
	size_t i;

	jbuf_put_lit(b, "{\"name\":");
	json_put_cstr(b, w->name ? w->name : "");
	jbuf_put_lit(b, ",\"target\":");
	json_put_cstr(b, w->target ? w->target : "");
	if (w->weekly) {
		jbuf_put_lit(b, ",\"weekly\":");
		put_weekly(b, w);
		jbuf_put_lit(b, ",\"timezone\":");
		json_put_cstr(b, w->timezone ? w->timezone : "UTC");
	} else {
		jbuf_put_lit(b, ",\"start\":");
		put_time(b, w->start_utc);
		jbuf_put_lit(b, ",\"end\":");
		put_time(b, w->end_utc);
	}
	jbuf_put_lit(b, ",\"approved_by\":");
	json_put_cstr(b, w->approved_by ? w->approved_by : "");
	jbuf_put_lit(b, ",\"reason\":");
	json_put_cstr(b, w->reason ? w->reason : "");
	jbuf_put_lit(b, ",\"actors\":[");
	for (i = 0; i < w->n_actors; i++) {
		if (i)
			jbuf_putc(b, ',');
		json_put_cstr(b, w->actors[i]);
	}
	jbuf_put_lit(b, "]}");
}

char *audit_windows_json(const pgw_config *c)
{
	jbuf b;
	char *out;
	size_t i;

	jbuf_init(&b);
	jbuf_putc(&b, '[');
	for (i = 0; i < c->n_windows; i++) {
		if (i)
			jbuf_putc(&b, ',');
		put_window(&b, &c->windows[i]);
	}
	jbuf_putc(&b, ']');
	out = b.failed ? NULL : malloc(b.len + 1);
	if (out) {
		memcpy(out, b.data, b.len);
		out[b.len] = '\0';
	}
	jbuf_free(&b);
	return out;
}

/* ---- records ---------------------------------------------------------------------------------- */

/* start / reload with the config's evidence; accepted -1 for start. */
static void write_process_record(pgw_server *srv, const char *event, int accepted, const char *config_hash,
				 const char *error)
{
	audit_record r;
	char *windows = audit_windows_json(srv->cfg);

	audit_record_init(&r);
	r.event = event;
	r.config = config_hash && config_hash[0] ? config_hash : NULL;
	r.windows = windows ? windows : "[]";
	r.accepted = accepted;
	r.error = error;
	audit_append(srv->audit, &r);
	free(windows);
}

static void write_window_event(pgw_server *srv, const char *event, const char *name, const char *target)
{
	audit_record r;

	log_info("window %s (target %s) %s", name, target ? target : "?",
		 strcmp(event, "window_open") == 0 ? "opened" : "closed");
	audit_record_init(&r);
	r.event = event;
	r.window = name;
	r.target = target;
	audit_append(srv->audit, &r);
}

static void checkpoint(pgw_server *srv, audit_events *ev)
{
	uint64_t seq = audit_append_checkpoint(srv->audit);

	if (seq != 0)
		ev->checkpoint_seq = seq;
}

/* ---- window transitions ----------------------------------------------------------------------- */

/* Whether (name, target) is in v[0..n). */
static bool open_in(const open_window *v, size_t n, const char *name, const char *target)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0 && strcmp(v[i].target, target) == 0)
			return true;
	return false;
}

static void free_open(open_window *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].name), free(v[i].target);
	free(v);
}

/*
 * Compare the windows open now with those last recorded open (by name and
 * target); write a window_close for each that closed, left the config or
 * moved to another target, then a window_open for each that opened.
 * Returns the next transition (0: none).
 */
static time_t record_transitions(pgw_server *srv, audit_events *ev, time_t now)
{
	const pgw_config *c = srv->cfg;
	open_window *open = calloc(c->n_windows + 1, sizeof(*open));
	size_t n = 0, i;
	time_t next = 0, t, no, nc;
	bool is_open;

	if (open == NULL)
		return now + 1; /* try again in a second */
	for (i = 0; i < c->n_windows; i++) {
		const pgw_window *w = &c->windows[i];

		window_state(w, now, &is_open, &no, &nc);
		t = is_open ? nc : no;
		if (t > now && (next == 0 || t < next))
			next = t;
		if (!is_open || (open[n].name = strdup(w->name)) == NULL)
			continue;
		if ((open[n].target = strdup(w->target)) == NULL) {
			free(open[n].name);
			continue;
		}
		n++;
	}
	for (i = 0; i < ev->n_open; i++)
		if (!open_in(open, n, ev->open[i].name, ev->open[i].target))
			write_window_event(srv, "window_close", ev->open[i].name, ev->open[i].target);
	for (i = 0; i < n; i++)
		if (!open_in(ev->open, ev->n_open, open[i].name, open[i].target))
			write_window_event(srv, "window_open", open[i].name, open[i].target);
	free_open(ev->open, ev->n_open);
	ev->open = open;
	ev->n_open = n;
	return next;
}

/* Write what changed and set the timer for the next transition. */
static void watch_windows(pgw_server *srv)
{
	audit_events *ev = srv->audit_events;
	struct timeval now, tv;
	time_t next;
	int64_t us;

	gettimeofday(&now, NULL);
	next = record_transitions(srv, ev, now.tv_sec);
	if (audit_pending(srv->audit))
		server_request_flush(srv, NULL);
	us = (int64_t)WINDOW_RECHECK_SECONDS * 1000000;
	if (next != 0 && (int64_t)(next - now.tv_sec) * 1000000 - now.tv_usec < us)
		us = (int64_t)(next - now.tv_sec) * 1000000 - now.tv_usec;
	us += 5000; /* land just past the transition's second */
	tv.tv_sec = us / 1000000;
	tv.tv_usec = us % 1000000;
	evtimer_add(ev->window_timer, &tv);
}

static void window_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	watch_windows(arg);
}

/* Periodic: a checkpoint when records were written since the last one. */
static void checkpoint_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	pgw_server *srv = arg;
	audit_events *ev = srv->audit_events;

	if (audit_appended_seq(srv->audit) == ev->checkpoint_seq)
		return;
	checkpoint(srv, ev);
	server_request_flush(srv, NULL);
}

/* ---- life cycle ------------------------------------------------------------------------------- */

/* (Re)load the signing key of cfg; a failure keeps the previous one (logged). */
static void load_signer(pgw_server *srv)
{
	char err[512];
	audit_signer *k;

	if (srv->cfg->audit_checkpoint_key == NULL) {
		audit_set_signer(srv->audit, NULL);
		return;
	}
	k = audit_signer_load(srv->cfg->audit_checkpoint_key, true, err, sizeof(err));
	if (k == NULL) {
		log_error("audit_checkpoint_key: %s; the previous key (if any) stays in use", err);
		return;
	}
	audit_set_signer(srv->audit, k);
}

/* (Re)arm the periodic checkpoint timer at the config's interval. */
static void arm_checkpoint_timer(pgw_server *srv, audit_events *ev)
{
	struct timeval every = { srv->cfg->audit_checkpoint_interval, 0 };

	if (ev->checkpoint_interval == srv->cfg->audit_checkpoint_interval &&
	    event_pending(ev->checkpoint_timer, EV_TIMEOUT, NULL))
		return;
	ev->checkpoint_interval = srv->cfg->audit_checkpoint_interval;
	event_del(ev->checkpoint_timer);
	event_add(ev->checkpoint_timer, &every);
}

int audit_events_start(pgw_server *srv)
{
	audit_events *ev;

	if (!srv->audit)
		return 0;
	ev = srv->audit_events = calloc(1, sizeof(*ev));
	if (ev == NULL)
		return -1;
	ev->window_timer = evtimer_new(srv->base, window_timer_cb, srv);
	ev->checkpoint_timer = event_new(srv->base, -1, EV_PERSIST, checkpoint_timer_cb, srv);
	if (!ev->window_timer || !ev->checkpoint_timer)
		return -1;
	load_signer(srv);
	write_process_record(srv, "start", -1, srv->cfg->sha256, NULL);
	checkpoint(srv, ev);
	watch_windows(srv);
	arm_checkpoint_timer(srv, ev);
	return audit_flush(srv->audit) == 0 ? 0 : -1;
}

/* The SHA-256 of a file's bytes now (a rejected config has no snapshot to carry one). */
static void hash_file(const char *path, char hex[65])
{
	unsigned char buf[16384], md[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	FILE *f = fopen(path, "rb");
	unsigned int n = 0, i;
	bool ok = ctx && f && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
	size_t got;

	hex[0] = '\0';
	while (ok && (got = fread(buf, 1, sizeof(buf), f)) > 0)
		ok = EVP_DigestUpdate(ctx, buf, got) == 1;
	if (ok && !ferror(f) && EVP_DigestFinal_ex(ctx, md, &n) == 1 && n == 32)
		for (i = 0; i < n; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
	if (f)
		fclose(f);
	EVP_MD_CTX_free(ctx);
}

/*
 * A rejected config's errors, joined with "; " and capped. A conninfo
 * error is cut after the key: libpq's message quotes the connection
 * string, which may hold a password, and the audit log is for auditors.
 */
static void join_errors(const pgw_errors *errs, char *out, size_t sz)
{
	size_t n = 0, i;
	const char *msg, *ci;

	out[0] = '\0';
	for (i = 0; errs && i < errs->n && n + 1 < sz; i++) {
		msg = errs->msgs[i];
		ci = strstr(msg, ": conninfo: ");
		if (ci)
			n += (size_t)snprintf(out + n, sz - n,
					      "%s%.*s: conninfo: not a valid connection string "
					      "(details in pgwarden's log)",
					      i ? "; " : "", (int)(ci - msg), msg);
		else
			n += (size_t)snprintf(out + n, sz - n, "%s%s", i ? "; " : "", msg);
	}
	if (out[0] == '\0')
		snprintf(out, sz, "rejected");
}

void audit_events_reload(pgw_server *srv, bool accepted, const pgw_errors *errs)
{
	audit_events *ev = srv->audit_events;
	char hash[65], error[REJECT_ERROR_MAX];

	if (!srv->audit || !ev)
		return;
	if (accepted) {
		load_signer(srv);
		arm_checkpoint_timer(srv, ev);
	}
	checkpoint(srv, ev); /* the first record of a freshly rotated file: the set can start here */
	if (accepted) {
		write_process_record(srv, "reload", 1, srv->cfg->sha256, NULL);
	} else {
		hash_file(srv->config_path, hash);
		join_errors(errs, error, sizeof(error));
		write_process_record(srv, "reload", 0, hash, error);
	}
	evtimer_del(ev->window_timer);
	watch_windows(srv);
	audit_flush(srv->audit);
}

void audit_events_stop(pgw_server *srv)
{
	audit_events *ev = srv->audit_events;

	if (!srv->audit)
		return;
	audit_server_event(srv, "stop"); /* the approval evidence is in start and reload */
	if (ev) {
		checkpoint(srv, ev);
		evtimer_del(ev->window_timer);
		event_del(ev->checkpoint_timer);
	}
	audit_flush(srv->audit);
}

void audit_events_free(pgw_server *srv)
{
	audit_events *ev = srv->audit_events;

	if (!ev)
		return;
	if (ev->window_timer)
		event_free(ev->window_timer);
	if (ev->checkpoint_timer)
		event_free(ev->checkpoint_timer);
	free_open(ev->open, ev->n_open);
	free(ev);
	srv->audit_events = NULL;
}
