/* log.c - the process log on stderr: timestamped, levelled, one line per call. */
#include "proxy/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

pgw_log_level pgw_log_min_level = LOG_LVL_INFO;

static const char *const level_names[] = {"DEBUG", "LOG", "WARNING", "ERROR"};

void pgw_vlog(pgw_log_level lvl, const char *fmt, va_list ap)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	int n;

	if (lvl < pgw_log_min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = (int)strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ld UTC %s: ", (long)(tv.tv_usec / 1000),
		      level_names[lvl]);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* One fputs per line so concurrent writers (cancel threads) do not interleave. */
	n = (int)strlen(line);
	if (n >= (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	line[n] = '\0';
	fputs(line, stderr);
}

void pgw_log(pgw_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pgw_vlog(lvl, fmt, ap);
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
