/* log.h - the process log: one line per event on stderr, prefixed with who and where. */
#ifndef PGW_LOG_H
#define PGW_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
	LOG_LVL_DEBUG = 0, /* per-message tracing, off unless PGWARDEN_DEBUG is set */
	LOG_LVL_INFO,      /* lifecycle: start, reload, connect, disconnect */
	LOG_LVL_WARN,      /* something a client or operator did wrong */
	LOG_LVL_ERROR,     /* something pgwarden could not do */
} pgw_log_level;

/* "1 target", "2 targets": counts in log lines read as English. */
#define PLURAL(n, one, many) ((n) == 1 ? (one) : (many))

/* Minimum level printed; set once at start (PGWARDEN_DEBUG=1 lowers it to DEBUG). */
extern pgw_log_level pgw_log_min_level;
/* log_format = json: one JSON object a line (ts, level, session, actor, target, client, msg). */
extern bool pgw_log_json;

void pgw_log(pgw_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pgw_vlog(pgw_log_level lvl, const char *fmt, va_list ap);
/* A line about one session: text "s=17 user:jimmie prod 10.0.0.9:5123 msg", or JSON fields. */
void pgw_log_session(pgw_log_level lvl, unsigned long long session, const char *actor, const char *target,
		     const char *client, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define log_debug(...)                                       \
	do {                                                 \
		if (pgw_log_min_level <= LOG_LVL_DEBUG)      \
			pgw_log(LOG_LVL_DEBUG, __VA_ARGS__); \
	} while (0)
#define log_info(...) pgw_log(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) pgw_log(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) pgw_log(LOG_LVL_ERROR, __VA_ARGS__)

/*
 * Copy at most 'len' bytes of untrusted data into 'out' (size 'outsz') as a
 * printable sample: non-printable bytes become \xNN, the result is truncated
 * with "..." and always NUL-terminated. For logging bad input safely.
 */
const char *log_sample(char *out, size_t outsz, const void *data, size_t len);

/*
 * Fold a message that may span lines (libpq's "could not connect...\n\tIs the
 * server running...") into one line in 'out': line breaks and tabs become
 * one blank, runs of blanks collapse, trailing blanks go. Returns out.
 */
char *log_one_line(const char *msg, char *out, size_t outsz);

#endif
