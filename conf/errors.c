/* errors.c - the list of "FILE:LINE: message" problems a config or token load collects. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/core/arr.h"
#include "conf/config.h"

/* A broken file can produce one error per line; past this many we say so once and stop. */
#define ERRORS_MAX 200

static void errors_push(pgw_errors *e, char *msg)
{
	if (!ARR_EXTEND(e->msgs, e->n)) {
		free(msg);
		return;
	}
	e->msgs[e->n++] = msg;
}

/*
 * Append one message. 'line' <= 0 means the problem is with the file as a
 * whole ("FILE: message"). Out of memory drops the message: the caller still
 * fails because it tracks failure itself, not through e->n alone.
 */
void errors_add(pgw_errors *e, const char *file, int line, const char *fmt, ...)
{
	char body[1024];
	char *msg = NULL;
	va_list ap;
	int len;

	if (e->n > ERRORS_MAX)
		return;
	if (e->n == ERRORS_MAX) {
		if (asprintf(&msg, "%s: too many errors, giving up", file ? file : "?") >= 0)
			errors_push(e, msg);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (line > 0)
		len = asprintf(&msg, "%s:%d: %s", file ? file : "?", line, body);
	else
		len = asprintf(&msg, "%s: %s", file ? file : "?", body);
	if (len < 0)
		return;
	errors_push(e, msg);
}

void errors_free(pgw_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msgs[i]);
	free(e->msgs);
	e->msgs = NULL;
	e->n = 0;
}
