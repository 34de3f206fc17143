/* log.c - the process log on stderr: timestamped, levelled, one line per event, as text or JSON. */
#include "conf/core/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "conf/core/json_writer.h"

pgw_log_level pgw_log_min_level = LOG_LVL_INFO;
bool pgw_log_json = false;

static const char *const level_names[] = { "DEBUG", "LOG", "WARNING", "ERROR" };

/* Who a session line is about (all NULL for process lines). */
typedef struct log_who {
	unsigned long long session; /* session id, 0 = none */
	const char *actor;          /* claimed or authenticated actor id */
	const char *target;         /* target name */
	const char *client;         /* peer "ip:port" or "unix" */
} log_who;

/* "2026-11-22 01:48:41.489 UTC" (text) or "2026-11-22T01:48:41.489Z" (JSON). */
static void timestamp(char *out, size_t size, bool iso)
{
	struct timeval tv;
	struct tm tm;
	size_t n;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(out, size, iso ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out + n, size - n, iso ? ".%03ldZ" : ".%03ld UTC", (long)(tv.tv_usec / 1000));
}

static void put_field(jbuf *j, const char *name, const char *value)
{
	if (!value)
		return;
	jbuf_putc(j, ',');
	json_put_cstr(j, name);
	jbuf_putc(j, ':');
	json_put_cstr(j, value);
}

static void emit_json(pgw_log_level lvl, const log_who *who, const char *msg)
{
	char ts[40];
	jbuf j;

	timestamp(ts, sizeof(ts), true);
	jbuf_init(&j);
	jbuf_put_lit(&j, "{\"ts\":");
	json_put_cstr(&j, ts);
	put_field(&j, "level", level_names[lvl]);
	if (who->session) {
		jbuf_put_lit(&j, ",\"session\":");
		jbuf_put_u64(&j, who->session);
	}
	put_field(&j, "actor", who->actor);
	put_field(&j, "target", who->target);
	put_field(&j, "client", who->client);
	put_field(&j, "msg", msg);
	jbuf_put_lit(&j, "}\n");
	if (!j.failed)
		fwrite(j.data, 1, j.len, stderr); /* one write per line: cancel threads do not interleave */
	jbuf_free(&j);
}

static void emit(pgw_log_level lvl, const log_who *who, const char *fmt, va_list ap)
{
	char raw[2048], msg[2048], line[2400], ts[40];

	vsnprintf(raw, sizeof(raw), fmt, ap);
	/* Every event on one line: libpq's and the server's messages span several. */
	log_one_line(raw, msg, sizeof(msg));
	if (pgw_log_json) {
		emit_json(lvl, who, msg);
		return;
	}
	timestamp(ts, sizeof(ts), false);
	if (who->session)
		snprintf(line, sizeof(line), "%s %s: s=%llu %s %s %s %s\n", ts, level_names[lvl], who->session,
			 who->actor ? who->actor : "-", who->target ? who->target : "-", who->client, msg);
	else
		snprintf(line, sizeof(line), "%s %s: %s\n", ts, level_names[lvl], msg);
	if (line[strlen(line) - 1] != '\n')
		line[sizeof(line) - 2] = '\n';
	fputs(line, stderr);
}

void pgw_vlog(pgw_log_level lvl, const char *fmt, va_list ap)
{
	log_who nobody = { 0, NULL, NULL, NULL };

	if (lvl < pgw_log_min_level)
		return;
	emit(lvl, &nobody, fmt, ap);
}

void pgw_log(pgw_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pgw_vlog(lvl, fmt, ap);
	va_end(ap);
}

void pgw_log_session(pgw_log_level lvl, unsigned long long session, const char *actor, const char *target,
		     const char *client, const char *fmt, ...)
{
	log_who who = { session, actor, target, client };
	va_list ap;

	if (lvl < pgw_log_min_level)
		return;
	va_start(ap, fmt);
	emit(lvl, &who, fmt, ap);
	va_end(ap);
}

const char *log_sample(char *out, size_t outsz, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t o = 0, i;

	if (outsz == 0)
		return out;
	for (i = 0; i < len; i++) {
		if (o + 8 >= outsz) {
			if (outsz > 4)
				memcpy(out + (o < outsz - 4 ? o : outsz - 4), "...", 4);
			return out;
		}
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			out[o++] = (char)p[i];
		else
			o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", p[i]);
	}
	out[o] = '\0';
	return out;
}

char *log_one_line(const char *msg, char *out, size_t outsz)
{
	size_t o = 0;

	if (outsz == 0)
		return out;
	for (; msg && *msg && o + 1 < outsz; msg++) {
		char ch = (*msg == '\n' || *msg == '\r' || *msg == '\t') ? ' ' : *msg;

		if (ch == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = ch;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return out;
}
