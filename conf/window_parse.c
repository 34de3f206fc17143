/* window_parse.c - the [window.NAME] grammar: "weekly = tue,thu 22:00-23:30", and a window section's checks. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf/config.h"
#include "conf/config_int.h"
#include "conf/windows.h"

static int day_index(const char *s, size_t len)
{
	static const char *const names[7] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

	for (int i = 0; i < 7; i++)
		if (len == 3 && strncasecmp(s, names[i], 3) == 0)
			return i;
	return -1;
}

/* "mon", "mon-fri" (wrapping like "fri-mon" allowed) into the days bitmask. */
static bool parse_day_item(const char *item, uint8_t *days)
{
	const char *dash = strchr(item, '-');
	int a, b;

	if (dash == NULL) {
		a = b = day_index(item, strlen(item));
	} else {
		a = day_index(item, (size_t)(dash - item));
		b = day_index(dash + 1, strlen(dash + 1));
	}
	if (a < 0 || b < 0)
		return false;
	for (int d = a;; d = (d + 1) % 7) {
		*days |= (uint8_t)(1u << d);
		if (d == b)
			break;
	}
	return true;
}

static bool parse_hhmm(const char **p, bool allow_24, int *minutes)
{
	int h, m;

	if (!take_digits(p, 2, &h) || *(*p)++ != ':' || !take_digits(p, 2, &m) || m > 59)
		return false;
	if (h == 24 && m == 0 && allow_24) {
		*minutes = 0; /* 24:00 ends at the next midnight, which "end <= start" already means */
		return true;
	}
	if (h > 23)
		return false;
	*minutes = h * 60 + m;
	return true;
}

/* "tue,thu 22:00-23:30": days (mon..sun, ranges), then HH:MM-HH:MM local. */
bool parse_weekly(const char *v, pgw_window *w)
{
	const char *t = v;
	char daybuf[128], timebuf[32], *o = timebuf;
	char **items;
	size_t n;
	bool ok = true;

	while (*t && !isdigit((unsigned char)*t))
		t++;
	if (t == v || (size_t)(t - v) >= sizeof(daybuf))
		return false;
	memcpy(daybuf, v, (size_t)(t - v));
	daybuf[t - v] = '\0';
	for (; *t; t++) /* the time range, spaces dropped: "22:00 - 23:30" is fine */
		if (!isspace((unsigned char)*t)) {
			if (o == timebuf + sizeof(timebuf) - 1)
				return false;
			*o++ = *t;
		}
	*o = '\0';
	if (!split_list(daybuf, &items, &n) || n == 0)
		return false;
	w->days = 0;
	for (size_t i = 0; i < n && ok; i++)
		ok = parse_day_item(items[i], &w->days);
	free_list(items, n);
	t = timebuf;
	if (!ok || !parse_hhmm(&t, false, &w->start_minute) || *t++ != '-' || !parse_hhmm(&t, true, &w->end_minute) ||
	    *t != '\0')
		return false;
	w->weekly = true;
	return true;
}

/* A [window.NAME] as a whole: its target exists; one-off (start < end) or weekly with a loadable zone. */
void check_window(load_ctx *lc, pgw_window *w, const section *s, time_t now)
{
	const int *kl = s->key_line;
	char why[512];

	check_required(lc, s);
	if (w->target != NULL && config_find_target(lc->c, w->target) == NULL)
		cerr_at(lc, kl[WK_TARGET], "[%s]: target \"" ECHO "\" is not a [target.NAME]", s->label, w->target);
	if (kl[WK_WEEKLY] && (kl[WK_START] || kl[WK_END])) {
		cerr_at(lc, kl[WK_WEEKLY], "[%s]: give either start and end, or weekly and timezone, not both",
			s->label);
	} else if (kl[WK_WEEKLY] || kl[WK_TIMEZONE]) {
		if (!kl[WK_WEEKLY] || !kl[WK_TIMEZONE])
			cerr_at(lc, s->line, "[%s]: weekly and timezone must be given together", s->label);
		else if (w->weekly && !window_load_zone(w, why, sizeof(why)))
			cerr_at(lc, kl[WK_TIMEZONE], "timezone: %s", why);
		else if (w->weekly && !window_prepare(w, now))
			cerr_at(lc, s->line, "[%s]: out of memory", s->label);
	} else if (!kl[WK_START] || !kl[WK_END]) {
		cerr_at(lc, s->line, "[%s]: needs start and end, or weekly and timezone", s->label);
	} else if (w->start_utc >= w->end_utc) {
		cerr_at(lc, kl[WK_END], "[%s]: end must be after start", s->label);
	}
}
