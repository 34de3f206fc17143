/* audit_log.c - the audit log writer: records, hash chain, batched write, fsync, reopen, tail read. */
#include "audit/audit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit_int.h"
#include "conf/core/json_writer.h"
#include "conf/core/log.h"

#define TAIL_CHUNK 32768   /* bytes read per step when scanning the file's end backwards */
#define SEQ_PREFIX_MAX 160 /* bytes of the last line kept to find its seq ({"ts":"...","seq":N,) */

struct audit_log {
	char *path;                            /* the configured file */
	int fd;                                /* O_RDWR|O_APPEND; -1 when closed */
	pgw_audit_fsync mode;                  /* always | batch | never */
	audit_hasher hasher;                   /* SHA-256 of each line, reused */
	jbuf batch;                            /* whole lines (with '\n') waiting for audit_flush */
	uint64_t batch_first;                  /* seq of the first record in the batch (0: empty) */
	uint64_t seq;                          /* seq of the last appended record (in the batch or written) */
	char prev[AUDIT_HASH_HEX + 1];         /* hash of the last appended line: the next record's prev */
	uint64_t written_seq;                  /* seq of the last line really written to the file */
	char written_prev[AUDIT_HASH_HEX + 1]; /* hash of that line; the rollback point */
	bool torn;                             /* a failed flush could not truncate its partial bytes */
	off_t torn_off;                        /* ... back to this size; retried before the next write */
	bool dirty;                            /* fsync=batch: written since the last fsync (loop thread) */
	/* fsync = batch: a background thread fdatasyncs every 100 ms, so the event loop never waits on it */
	pthread_t syncer;                 /* the syncer thread */
	bool syncer_running;              /* started by audit_open, joined by audit_close */
	pthread_mutex_t sync_lock;        /* held by the syncer around fdatasync and by fd swaps */
	pthread_cond_t sync_cond;         /* wakes the syncer early to stop */
	bool sync_stop;                   /* under sync_lock: the syncer must exit */
	atomic_bool sync_dirty;           /* written since the syncer's last fdatasync */
	atomic_uint_fast64_t sync_errors; /* failed background fdatasyncs */
	audit_signer *signer;             /* signs checkpoint records; NULL: none */
	bool healthy;                     /* the last flush succeeded */
	uint64_t write_errors;            /* failed flushes and fsyncs since open */
	time_t ts_sec;                    /* the second ts_prefix was formatted for */
	char ts_prefix[24];               /* "YYYY-MM-DDTHH:MM:SS" of ts_sec */
	size_t ts_prefix_len;             /* its length (0 before the first record) */
};

/* What the end of an existing file says about the chain. */
typedef struct tail_state {
	bool empty;                    /* no complete line: a new chain starts here */
	uint64_t seq;                  /* seq of the last complete line */
	char hash[AUDIT_HASH_HEX + 1]; /* SHA-256 of that line without its newline */
} tail_state;

void audit_record_init(audit_record *r)
{
	memset(r, 0, sizeof(*r));
	r->duration_us = -1;
	r->accepted = -1;
}

/* --- reading the tail of an existing file -------------------------------------------------- */

/* Read exactly n bytes at 'off'. */
static int pread_full(int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;
	ssize_t r;

	while (n > 0) {
		r = pread(fd, p, n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO; /* the file shrank under us */
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* Offset of the last '\n' in [0, end), or -1 in *pos if there is none. Reads backwards in chunks. */
static int find_newline_before(int fd, off_t end, off_t *pos)
{
	char buf[TAIL_CHUNK];
	const char *q;
	size_t n;

	while (end > 0) {
		n = end > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)end;
		end -= (off_t)n;
		if (pread_full(fd, buf, n, end) < 0)
			return -1;
		q = memrchr(buf, '\n', n);
		if (q != NULL) {
			*pos = end + (q - buf);
			return 0;
		}
	}
	*pos = -1;
	return 0;
}

/*
 * The seq of a line we wrote, from its first bytes: {"ts":"<ts>","seq":N,
 * Only the prefix is looked at, so a gigabyte statement is never loaded.
 */
static int parse_seq_prefix(const char *p, size_t n, uint64_t *seq)
{
	static const char head[] = "{\"ts\":\"", mid[] = ",\"seq\":";
	const char *q, *end = p + n;
	uint64_t v = 0;
	int digits = 0;

	if (n < sizeof(head) - 1 || memcmp(p, head, sizeof(head) - 1) != 0)
		return -1;
	q = memchr(p + sizeof(head) - 1, '"', n - (sizeof(head) - 1));
	if (q == NULL || (size_t)(end - q - 1) < sizeof(mid) - 1 || memcmp(q + 1, mid, sizeof(mid) - 1) != 0)
		return -1;
	for (q += sizeof(mid); q < end && *q >= '0' && *q <= '9'; q++, digits++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*q - '0');
	}
	if (digits == 0 || q >= end || *q != ',' || v == 0)
		return -1;
	*seq = v;
	return 0;
}

/*
 * A crash in the middle of write() can leave a last line without its newline.
 * Its statement was never sent upstream (that waits for the write), so the
 * fragment is cut off and the chain continues from the last complete line;
 * a warning names the file, offset and size. Until pgwarden reopens the file,
 * `audit verify` reports such a fragment as a truncated last line.
 */
static int cut_torn_fragment(int fd, const char *path, off_t *size, char **err)
{
	char head[64], sample[200];
	off_t nl;
	size_t n;

	if (find_newline_before(fd, *size, &nl) < 0)
		goto io_fail;
	n = (size_t)(*size - (nl + 1)) < sizeof(head) ? (size_t)(*size - (nl + 1)) : sizeof(head);
	if (pread_full(fd, head, n, nl + 1) < 0)
		goto io_fail;
	log_warn("audit log %s: last line is incomplete (%lld bytes at offset %lld, a write cut short by a "
		 "crash): removing it, the chain continues from the last complete line; it began: %s",
		 path, (long long)(*size - (nl + 1)), (long long)(nl + 1), log_sample(sample, sizeof(sample), head, n));
	if (ftruncate(fd, nl + 1) < 0)
		goto io_fail;
	*size = nl + 1;
	return 0;
io_fail:
	if (asprintf(err, "%s: cannot repair incomplete last line: %s", path, strerror(errno)) < 0)
		*err = NULL;
	return -1;
}

/* Hash the line [start, end) and find its seq, reading in chunks. */
static int read_last_line(int fd, audit_hasher *h, off_t start, off_t end, tail_state *t)
{
	char buf[TAIL_CHUNK], prefix[SEQ_PREFIX_MAX];
	size_t n, np = 0;

	if (audit_hash_begin(h) < 0)
		return -1;
	while (start < end) {
		n = end - start > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)(end - start);
		if (pread_full(fd, buf, n, start) < 0 || audit_hash_update(h, buf, n) < 0)
			return -1;
		if (np < sizeof(prefix)) {
			size_t take = sizeof(prefix) - np < n ? sizeof(prefix) - np : n;
			memcpy(prefix + np, buf, take);
			np += take;
		}
		start += (off_t)n;
	}
	if (audit_hash_end(h, t->hash) < 0)
		return -1;
	if (parse_seq_prefix(prefix, np, &t->seq) < 0) {
		errno = 0; /* not an I/O error: the caller says what is wrong */
		return -1;
	}
	return 0;
}

/* Find where the chain of the file open on fd stands, repairing a torn last line. */
static int load_tail(int fd, const char *path, audit_hasher *h, tail_state *t, char **err)
{
	struct stat st;
	off_t size, nl;
	char last;

	memset(t, 0, sizeof(*t));
	if (fstat(fd, &st) < 0)
		goto io_fail;
	size = st.st_size;
	if (size > 0) {
		if (pread_full(fd, &last, 1, size - 1) < 0)
			goto io_fail;
		if (last != '\n' && cut_torn_fragment(fd, path, &size, err) < 0)
			return -1;
	}
	if (size == 0) {
		t->empty = true;
		return 0;
	}
	if (find_newline_before(fd, size - 1, &nl) < 0)
		goto io_fail;
	if (read_last_line(fd, h, nl + 1, size - 1, t) < 0) {
		if (errno != 0)
			goto io_fail;
		if (asprintf(err,
			     "%s: the last line (offset %lld) is not a pgwarden audit record; "
			     "cannot continue its chain (move the file away)",
			     path, (long long)(nl + 1)) < 0)
			*err = NULL;
		return -1;
	}
	return 0;
io_fail:
	if (asprintf(err, "%s: cannot read audit log: %s", path, strerror(errno)) < 0)
		*err = NULL;
	return -1;
}

/* Open the file for appending and read its tail. Returns the fd or -1 with *err set. */
static int open_log_file(const char *path, audit_hasher *h, tail_state *t, char **err)
{
	int fd;

	/* O_RDWR, not O_WRONLY: the tail is read back to continue the chain. */
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (asprintf(err, "%s: cannot open audit log: %s", path, strerror(errno)) < 0)
			*err = NULL;
		return -1;
	}
	if (load_tail(fd, path, h, t, err) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* --- open, reopen, close -------------------------------------------------------------------- */

#define SYNC_INTERVAL_NS 100000000L /* audit_fsync = batch: at least every 100 ms */

/* The batch-mode syncer: fdatasync whatever was written since the last round, every 100 ms. */
static void *syncer_main(void *arg)
{
	audit_log *log = arg;
	struct timespec next;

	pthread_mutex_lock(&log->sync_lock);
	while (!log->sync_stop) {
		clock_gettime(CLOCK_REALTIME, &next);
		next.tv_nsec += SYNC_INTERVAL_NS;
		if (next.tv_nsec >= 1000000000L) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&log->sync_cond, &log->sync_lock, &next);
		if (log->sync_stop || !atomic_exchange(&log->sync_dirty, false))
			continue;
		if (fdatasync(log->fd) < 0) {
			atomic_fetch_add(&log->sync_errors, 1);
			log_error("audit log %s: fsync failed: %s", log->path, strerror(errno));
		}
	}
	pthread_mutex_unlock(&log->sync_lock);
	return NULL;
}

static void syncer_stop(audit_log *log)
{
	if (!log->syncer_running)
		return;
	pthread_mutex_lock(&log->sync_lock);
	log->sync_stop = true;
	pthread_cond_signal(&log->sync_cond);
	pthread_mutex_unlock(&log->sync_lock);
	pthread_join(log->syncer, NULL);
	log->syncer_running = false;
}

audit_log *audit_open(const char *path, pgw_audit_fsync mode, char **err)
{
	audit_log *log;
	tail_state t;

	*err = NULL;
	log = calloc(1, sizeof(*log));
	if (log == NULL || (log->path = strdup(path)) == NULL) {
		free(log);
		*err = strdup("out of memory");
		return NULL;
	}
	log->fd = -1;
	log->mode = mode;
	log->healthy = true;
	log->ts_sec = (time_t)-1;
	jbuf_init(&log->batch);
	if (audit_hasher_init(&log->hasher) < 0) {
		*err = strdup("OpenSSL has no SHA-256");
		goto fail;
	}
	log->fd = open_log_file(path, &log->hasher, &t, err);
	if (log->fd < 0)
		goto fail;
	/* A new empty file starts a new chain: seq 1, prev all zeros. */
	log->written_seq = t.empty ? 0 : t.seq;
	memcpy(log->written_prev, t.empty ? audit_zero_prev : t.hash, sizeof(log->written_prev));
	log->seq = log->written_seq;
	memcpy(log->prev, log->written_prev, sizeof(log->prev));
	pthread_mutex_init(&log->sync_lock, NULL);
	pthread_cond_init(&log->sync_cond, NULL);
	atomic_init(&log->sync_dirty, false);
	atomic_init(&log->sync_errors, 0);
	if (mode == AUDIT_FSYNC_BATCH) {
		if (pthread_create(&log->syncer, NULL, syncer_main, log) != 0) {
			*err = strdup("cannot start the audit fsync thread");
			goto fail;
		}
		log->syncer_running = true;
	}
	return log;
fail:
	audit_close(log);
	return NULL;
}

/* fdatasync for modes that promise durability; counts and logs a failure. */
static int sync_file(audit_log *log)
{
	if (fdatasync(log->fd) == 0) {
		log->dirty = false;
		return 0;
	}
	log->write_errors++;
	log->healthy = false;
	log_error("audit log %s: fsync failed: %s", log->path, strerror(errno));
	return -1;
}

int audit_reopen(audit_log *log, char **err)
{
	tail_state t;
	int fd;

	*err = NULL;
	/* What is pending belongs to the old file; a failure is already logged and counted. */
	if (audit_pending(log))
		(void)audit_flush(log);
	if (log->dirty && log->mode != AUDIT_FSYNC_NEVER)
		(void)sync_file(log);
	fd = open_log_file(log->path, &log->hasher, &t, err);
	if (fd < 0)
		return -1; /* keep writing to the old file rather than lose records */
	/*
	 * The in-memory chain is the authority: after logrotate moved the file
	 * away, the new file's first line continues seq and prev from the old
	 * file's last line, so `audit verify old new` checks across both.
	 */
	if (!t.empty && (t.seq != log->written_seq || strcmp(t.hash, log->written_prev) != 0))
		log_warn("audit log %s: file does not end with the last record pgwarden wrote (seq %llu); "
			 "the chain continues from seq %llu",
			 log->path, (unsigned long long)log->written_seq, (unsigned long long)log->written_seq);
	/* The syncer may be in fdatasync on the old fd: swap under its lock. */
	pthread_mutex_lock(&log->sync_lock);
	close(log->fd);
	log->fd = fd;
	atomic_store(&log->sync_dirty, false);
	pthread_mutex_unlock(&log->sync_lock);
	log->dirty = false;
	log->torn = false;
	return 0;
}

void audit_close(audit_log *log)
{
	if (log == NULL)
		return;
	syncer_stop(log);
	if (log->fd >= 0) {
		if (audit_pending(log))
			(void)audit_flush(log);
		if (log->dirty && log->mode != AUDIT_FSYNC_NEVER)
			(void)sync_file(log);
		close(log->fd);
	}
	jbuf_free(&log->batch);
	audit_hasher_free(&log->hasher);
	audit_signer_free(log->signer);
	if (log->path) { /* set up past the first allocation: the sync primitives were initialised */
		pthread_mutex_destroy(&log->sync_lock);
		pthread_cond_destroy(&log->sync_cond);
	}
	free(log->path);
	free(log);
}

/* --- formatting records --------------------------------------------------------------------- */

/*
 * ts: RFC 3339 UTC with microseconds; gmtime only when the second changes.
 * The fraction is written in place (no local copy: see jbuf_put_u64).
 */
static void put_ts(audit_log *log, jbuf *b)
{
	struct timespec now;
	struct tm tm;
	long us;
	char *o;
	int i;

	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec != log->ts_sec) {
		gmtime_r(&now.tv_sec, &tm);
		log->ts_prefix_len = strftime(log->ts_prefix, sizeof(log->ts_prefix), "%Y-%m-%dT%H:%M:%S", &tm);
		log->ts_sec = now.tv_sec;
	}
	jbuf_put(b, log->ts_prefix, log->ts_prefix_len);
	if (!jbuf_reserve(b, 8))
		return;
	o = b->data + b->len;
	us = now.tv_nsec / 1000;
	o[0] = '.';
	for (i = 6; i >= 1; i--, us /= 10)
		o[i] = (char)('0' + us % 10);
	o[7] = 'Z';
	b->len += 8;
}

/* ,"key":"value" when value is present. 'key' is the literal ,"key": */
static void put_str(jbuf *b, const char *key, size_t keylen, const char *value)
{
	if (value == NULL)
		return;
	jbuf_put(b, key, keylen);
	json_put_cstr(b, value);
}

#define PUT_STR(b, name, value) put_str((b), ",\"" name "\":", sizeof(",\"" name "\":") - 1, (value))

/*
 * One bound parameter: null, a string (text format, escaped like sql), or
 * "\\x<hex>" for binary format, as bytea output shows it. A value longer than
 * AUDIT_PARAM_MAX bytes becomes {"truncated":true,"len":N,"prefix":"..."} with
 * its first AUDIT_PARAM_MAX bytes (text cut back to a UTF-8 character boundary).
 */
static void put_param(jbuf *b, const audit_param *p)
{
	const uint8_t *v = p->value;
	size_t len, keep;
	bool cut;

	if (v == NULL || p->len < 0) {
		jbuf_put_lit(b, "null");
		return;
	}
	len = (size_t)p->len;
	cut = len > AUDIT_PARAM_MAX;
	keep = cut ? AUDIT_PARAM_MAX : len;
	if (cut && p->format == 0)
		while (keep > AUDIT_PARAM_MAX - 3 && (v[keep] & 0xc0) == 0x80)
			keep--;
	if (cut) {
		jbuf_put_lit(b, "{\"truncated\":true,\"len\":");
		jbuf_put_u64(b, len);
		jbuf_put_lit(b, ",\"prefix\":");
	}
	if (p->format == 1) {
		jbuf_put_lit(b, "\"\\\\x");
		jbuf_put_hex(b, v, keep);
		jbuf_putc(b, '"');
	} else {
		json_put_string(b, v, keep);
	}
	if (cut)
		jbuf_putc(b, '}');
}

static void put_params(jbuf *b, const audit_param *params, size_t n)
{
	size_t i;

	jbuf_put_lit(b, ",\"params\":[");
	for (i = 0; i < n; i++) {
		if (i > 0)
			jbuf_putc(b, ',');
		put_param(b, &params[i]);
	}
	jbuf_putc(b, ']');
}

/* The fields of process and login events (none of them on statement and result records). */
static void put_rare_fields(jbuf *b, const audit_record *r)
{
	PUT_STR(b, "reason", r->reason);
	PUT_STR(b, "config", r->config);
	if (r->windows != NULL) {
		jbuf_put_lit(b, ",\"windows\":");
		jbuf_put(b, r->windows, strlen(r->windows));
	}
	if (r->accepted >= 0) {
		if (r->accepted)
			jbuf_put_lit(b, ",\"accepted\":true");
		else
			jbuf_put_lit(b, ",\"accepted\":false");
	}
	PUT_STR(b, "error", r->error);
	PUT_STR(b, "application_name", r->application_name);
	PUT_STR(b, "alg", r->alg);
	PUT_STR(b, "sig", r->sig);
}

/* The identity fields, session to environment, in CONTRACT §5's table order. */
static void put_ident(jbuf *b, const audit_record *r)
{
	if (r->session != 0) {
		jbuf_put_lit(b, ",\"session\":");
		jbuf_put_u64(b, r->session);
	}
	PUT_STR(b, "actor", r->actor);
	PUT_STR(b, "role", r->role);
	PUT_STR(b, "tenant", r->tenant);
	PUT_STR(b, "client", r->client);
	PUT_STR(b, "target", r->target);
	PUT_STR(b, "environment", r->environment);
}

char *audit_render_ident(const audit_record *r, size_t *len)
{
	jbuf b;
	char *text;

	jbuf_init(&b);
	put_ident(&b, r);
	/* the caller keeps the text: one more byte for a NUL, so an empty identity is not NULL */
	jbuf_putc(&b, '\0');
	if (b.failed) {
		jbuf_free(&b);
		return NULL;
	}
	/* kept for the session's life: fit it (jbuf starts at 512 bytes; an identity is about 200) */
	text = realloc(b.data, b.len);
	if (text == NULL)
		text = b.data;
	*len = b.len - 1;
	return text;
}

/* Every field after seq and before prev, in CONTRACT §5's table order. */
static void put_fields(jbuf *b, const audit_record *r)
{
	PUT_STR(b, "event", r->event != NULL ? r->event : "unknown");
	if (r->ident != NULL)
		jbuf_put(b, r->ident, r->ident_len);
	else
		put_ident(b, r);
	PUT_STR(b, "protocol", r->protocol);
	if (r->sql != NULL) {
		jbuf_put_lit(b, ",\"sql\":");
		json_put_string(b, r->sql, r->sql_len);
	}
	if (r->params != NULL)
		put_params(b, r->params, r->n_params);
	PUT_STR(b, "decision", r->decision);
	PUT_STR(b, "rule", r->rule);
	PUT_STR(b, "window", r->window);
	if (r->backend_pid != 0) {
		jbuf_put_lit(b, ",\"backend_pid\":");
		jbuf_put_u64(b, r->backend_pid);
	}
	if (r->ref != 0) {
		jbuf_put_lit(b, ",\"ref\":");
		jbuf_put_u64(b, r->ref);
	}
	PUT_STR(b, "tag", r->tag);
	PUT_STR(b, "sqlstate", r->sqlstate);
	if (r->duration_us >= 0) {
		jbuf_put_lit(b, ",\"duration_us\":");
		jbuf_put_i64(b, r->duration_us);
	}
	put_rare_fields(b, r);
}

uint64_t audit_append(audit_log *log, const audit_record *r)
{
	jbuf *b = &log->batch;
	size_t start = b->len;
	uint64_t seq = log->seq + 1;

	if (b->failed)
		return 0; /* the batch is already lost; audit_flush reports it */
	jbuf_put_lit(b, "{\"ts\":\"");
	put_ts(log, b);
	jbuf_put_lit(b, "\",\"seq\":");
	jbuf_put_u64(b, seq);
	put_fields(b, r);
	jbuf_put_lit(b, ",\"prev\":\"");
	jbuf_put(b, log->prev, AUDIT_HASH_HEX);
	jbuf_put_lit(b, "\"}");
	/*
	 * The chain is computed now, so the batch goes out in one write() later.
	 * The hash goes straight into prev: a failure marks the batch failed, and
	 * the flush that reports it rolls prev back to the last line written.
	 */
	if (b->failed || audit_hash_line(&log->hasher, b->data + start, b->len - start, log->prev) < 0) {
		b->failed = true;
		return 0;
	}
	jbuf_putc(b, '\n');
	if (b->failed)
		return 0;
	if (log->batch_first == 0)
		log->batch_first = seq;
	log->seq = seq;
	return seq;
}

bool audit_pending(const audit_log *log)
{
	return log->batch.len > 0 || log->batch.failed;
}

/* --- writing -------------------------------------------------------------------------------- */

/* Write all of the batch; on failure *done says how many bytes reached the file. */
static int write_all(int fd, const char *p, size_t n, size_t *done)
{
	ssize_t r;

	*done = 0;
	while (*done < n) {
		r = write(fd, p + *done, n - *done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		*done += (size_t)r;
	}
	return 0;
}

/*
 * Undo a failed flush: cut the bytes it wrote (so the file never ends in a
 * partial line) and move the chain back to the last line really written.
 * The file offset after an O_APPEND write is the end of what it wrote, which
 * is exact even if logrotate truncated the file meanwhile.
 */
static void roll_back(audit_log *log, size_t written, const char *why, int err)
{
	off_t end;

	if (written > 0) {
		end = lseek(log->fd, 0, SEEK_CUR);
		log->torn_off = end - (off_t)written;
		log->torn = end < 0 || ftruncate(log->fd, log->torn_off) < 0;
		if (log->torn)
			log_error("audit log %s: cannot remove a partial write: %s", log->path, strerror(errno));
	}
	log_error("audit log %s: %s: %s; records seq %llu..%llu dropped", log->path, why,
		  err != 0 ? strerror(err) : "out of memory", (unsigned long long)log->batch_first,
		  (unsigned long long)log->seq);
	log->seq = log->written_seq;
	memcpy(log->prev, log->written_prev, sizeof(log->prev));
	jbuf_reset(&log->batch);
	log->batch_first = 0;
	log->write_errors++;
	log->healthy = false;
}

int audit_flush(audit_log *log)
{
	size_t written = 0;

	if (!audit_pending(log))
		return 0;
	if (log->batch.failed) {
		roll_back(log, 0, "cannot format records", 0);
		return -1;
	}
	if (log->torn) {
		if (ftruncate(log->fd, log->torn_off) < 0) {
			roll_back(log, 0, "cannot remove an earlier partial write", errno);
			return -1;
		}
		log->torn = false;
	}
	if (write_all(log->fd, log->batch.data, log->batch.len, &written) < 0) {
		roll_back(log, written, "write failed", errno);
		return -1;
	}
	if (log->mode == AUDIT_FSYNC_ALWAYS && fdatasync(log->fd) < 0) {
		roll_back(log, written, "fsync failed", errno);
		return -1;
	}
	log->written_seq = log->seq;
	memcpy(log->written_prev, log->prev, sizeof(log->written_prev));
	jbuf_reset(&log->batch);
	log->batch_first = 0;
	log->dirty = log->mode == AUDIT_FSYNC_BATCH;
	if (log->dirty)
		atomic_store(&log->sync_dirty, true);
	log->healthy = true;
	return 0;
}

void audit_sync_tick(audit_log *log)
{
	if (log->mode == AUDIT_FSYNC_BATCH && log->dirty)
		(void)sync_file(log);
}

bool audit_healthy(const audit_log *log)
{
	return log->healthy;
}

uint64_t audit_write_errors(const audit_log *log)
{
	return log->write_errors + atomic_load(&((audit_log *)log)->sync_errors);
}

uint64_t audit_last_seq(const audit_log *log)
{
	return log->written_seq;
}

uint64_t audit_appended_seq(const audit_log *log)
{
	return log->seq;
}

void audit_set_signer(audit_log *log, audit_signer *k)
{
	audit_signer_free(log->signer);
	log->signer = k;
}

uint64_t audit_append_checkpoint(audit_log *log)
{
	char sig[AUDIT_SIG_HEX_MAX + 1];
	audit_record r;

	if (log->signer == NULL)
		return 0;
	/* Signed now, over the chain as it stands: the record before this one is seq log->seq, hash log->prev. */
	if (audit_sign_checkpoint(log->signer, log->seq, log->prev, sig, sizeof(sig)) < 0) {
		log_error("audit log %s: cannot sign a checkpoint", log->path);
		return 0;
	}
	audit_record_init(&r);
	r.event = "checkpoint";
	r.alg = audit_signer_alg(log->signer);
	r.sig = sig;
	return audit_append(log, &r);
}
