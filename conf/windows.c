/* windows.c - approved-window evaluation and the small TZif/POSIX-TZ reader it needs (see windows.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/core/arr.h"
#include "conf/windows.h"

#define DAY 86400
#define MAX_UTC_OFFSET (26 * 3600) /* RFC 8536 bounds |utoff| below 26 h */
#define SCAN_DAYS 372              /* on-the-fly scan covers the 370 days asked for plus margin */
#define NEXT_OPEN_LIMIT (370 * (time_t)DAY)
#define HORIZON_BACK_DAYS 9    /* precomputed table: local days before the load ... */
#define HORIZON_AHEAD_DAYS 401 /* ... and after it */
#define FOOTER_LAST_YEAR 2200  /* the POSIX rule is expanded into transitions up to here */
#define TZIF_MAX_BYTES (1024 * 1024)

/* A time zone: UTC offset as a step function of UTC time. */
struct pgw_zone {
	int64_t *at;  /* transition instants (UTC seconds), strictly ascending */
	int32_t *off; /* off[i]: UTC offset in seconds from at[i] until at[i+1] */
	size_t n;     /* number of transitions */
	size_t cap;   /* allocated entries in at/off */
	int32_t off0; /* offset before at[0] (or always, when n == 0) */
};

/* One rule of a POSIX TZ string: a day of the year and a local time of day. */
typedef struct tz_rule {
	char kind;    /* 'J': Julian 1..365 without Feb 29; 'D': zero-based day 0..365; 'M': month.week.day */
	int n;        /* 'J'/'D': the day number */
	int m, w, d;  /* 'M': month 1..12, week 1..5 (5 = last), weekday 0..6 (0 = Sunday) */
	int32_t time; /* seconds after local midnight, may be negative or > 24 h (TZif v3) */
} tz_rule;

/* A POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3" from a TZif footer. */
typedef struct posix_tz {
	int32_t std_off; /* standard UTC offset in seconds, east positive */
	int32_t dst_off; /* daylight UTC offset */
	bool has_dst;    /* false: a fixed offset */
	tz_rule start;   /* DST starts (in standard local time) */
	tz_rule end;     /* DST ends (in daylight local time) */
} posix_tz;

/* ---- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* After H. Hinnant's days_from_civil: exact for any year in range. */
int64_t pgw_days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int64_t year_of_days(int64_t z)
{
	int64_t era, doe, yoe, y, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	return mp >= 10 ? y + 1 : y;
}

/* 0 = Sunday ... 6 = Saturday, like tm_wday; 1970-01-01 was a Thursday. */
static int weekday_of_days(int64_t days)
{
	return (int)(days + 4 - floor_div(days + 4, 7) * 7);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* ---- zone table ---- */

static bool zone_push(struct pgw_zone *z, int64_t at, int32_t off)
{
	if (z->n > 0 && at <= z->at[z->n - 1])
		return false;
	if (z->n == z->cap) {
		size_t cap_at = z->cap, cap_off = z->cap; /* two arrays, one capacity: it grows once both have */

		if (!ARR_RESERVE(z->at, cap_at, z->n + 1, 64) || !ARR_RESERVE(z->off, cap_off, z->n + 1, 64))
			return false;
		z->cap = cap_at;
	}
	z->at[z->n] = at;
	z->off[z->n] = off;
	z->n++;
	return true;
}

static void zone_free(struct pgw_zone *z)
{
	if (z == NULL)
		return;
	free(z->at);
	free(z->off);
	free(z);
}

/* Index of the first transition strictly after t (n if none). */
static size_t zone_upper(const struct pgw_zone *z, int64_t t)
{
	size_t lo = 0, hi = z->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (z->at[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int32_t zone_offset(const struct pgw_zone *z, int64_t t)
{
	size_t i = zone_upper(z, t);

	return i == 0 ? z->off0 : z->off[i - 1];
}

/*
 * The first UTC instant at which the zone's wall clock reaches local time L
 * (local seconds since the epoch): the earliest t with wall(t) >= L. Pieces
 * are the constant-offset spans between transitions; the wall clock rises
 * within a piece, jumps up at a spring-forward (so a gap time is reached at
 * the jump) and back at a fall-back (so the first pass wins).
 */
static int64_t zone_first_reach(const struct pgw_zone *z, int64_t local)
{
	/* Pieces ending before L - 30 h show wall times below L whatever their offset. */
	size_t i = zone_upper(z, local - 30 * 3600);

	for (;; i++) {
		int32_t off = i == 0 ? z->off0 : z->off[i - 1];
		int64_t start = i == 0 ? INT64_MIN : z->at[i - 1];

		if (i == z->n || z->at[i] + off > local)
			return local - off > start ? local - off : start;
	}
}

/* ---- TZif reader (RFC 8536) ---- */

typedef struct tzif_hdr {
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_hdr;

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool tzif_header(const uint8_t *p, size_t len, tzif_hdr *h)
{
	if (len < 44 || memcmp(p, "TZif", 4) != 0)
		return false;
	h->isutcnt = be32(p + 20);
	h->isstdcnt = be32(p + 24);
	h->leapcnt = be32(p + 28);
	h->timecnt = be32(p + 32);
	h->typecnt = be32(p + 36);
	h->charcnt = be32(p + 40);
	return h->typecnt >= 1 && h->typecnt <= 256 && h->timecnt <= 100000 && h->charcnt <= 65536 &&
	       h->leapcnt <= 100000 && (h->isutcnt == 0 || h->isutcnt == h->typecnt) &&
	       (h->isstdcnt == 0 || h->isstdcnt == h->typecnt);
}

static size_t tzif_block_len(const tzif_hdr *h, size_t tsize)
{
	return h->timecnt * tsize + h->timecnt + h->typecnt * 6 + h->charcnt + h->leapcnt * (tsize + 4) + h->isstdcnt +
	       h->isutcnt;
}

/* Fill z from one data block (tsize 4 for v1, 8 for v2+). Leap-second records are ignored. */
static bool tzif_block(struct pgw_zone *z, const uint8_t *p, const tzif_hdr *h, size_t tsize)
{
	const uint8_t *idx = p + h->timecnt * tsize, *types = idx + h->timecnt;

	for (uint32_t k = 0; k < h->typecnt; k++) {
		int32_t utoff = (int32_t)be32(types + 6 * k);

		if (utoff <= -MAX_UTC_OFFSET || utoff >= MAX_UTC_OFFSET)
			return false;
	}
	z->off0 = (int32_t)be32(types); /* RFC 8536: type 0 rules before the first transition */
	for (uint32_t i = 0; i < h->timecnt; i++) {
		int64_t at = tsize == 8 ? be64(p + 8 * i) : (int64_t)(int32_t)be32(p + 4 * i);

		if (idx[i] >= h->typecnt || !zone_push(z, at, (int32_t)be32(types + 6 * idx[i])))
			return false;
	}
	return true;
}

/* [+-]hh[:mm[:ss]] with hours up to maxh; returns the end or NULL. */
static const char *ptz_hms(const char *p, int maxh, int32_t *secs)
{
	int sign = 1, h = 0, m = 0, s = 0, digits = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	while (isdigit((unsigned char)*p) && digits < 3)
		h = h * 10 + (*p++ - '0'), digits++;
	if (digits == 0 || h > maxh)
		return NULL;
	if (*p == ':') {
		if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]))
			return NULL;
		m = (p[1] - '0') * 10 + (p[2] - '0');
		p += 3;
		if (*p == ':') {
			if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]))
				return NULL;
			s = (p[1] - '0') * 10 + (p[2] - '0');
			p += 3;
		}
	}
	if (m > 59 || s > 59)
		return NULL;
	*secs = sign * (h * 3600 + m * 60 + s);
	return p;
}

static const char *ptz_name(const char *p)
{
	const char *s;

	if (*p == '<') {
		for (s = ++p; *p && *p != '>'; p++)
			;
		return *p == '>' && p > s ? p + 1 : NULL;
	}
	for (s = p; isalpha((unsigned char)*p); p++)
		;
	return p - s >= 3 ? p : NULL;
}

static const char *ptz_num(const char *p, int lo, int hi, int *out)
{
	int v = 0, digits = 0;

	while (isdigit((unsigned char)*p) && digits < 4)
		v = v * 10 + (*p++ - '0'), digits++;
	if (digits == 0 || v < lo || v > hi)
		return NULL;
	*out = v;
	return p;
}

/* Jn | n | Mm.w.d, then an optional /time (default 02:00). */
static const char *ptz_rule(const char *p, tz_rule *r)
{
	if (*p == 'J') {
		r->kind = 'J';
		p = ptz_num(p + 1, 1, 365, &r->n);
	} else if (*p == 'M') {
		r->kind = 'M';
		p = ptz_num(p + 1, 1, 12, &r->m);
		if (p && *p == '.')
			p = ptz_num(p + 1, 1, 5, &r->w);
		else
			p = NULL;
		if (p && *p == '.')
			p = ptz_num(p + 1, 0, 6, &r->d);
		else
			p = NULL;
	} else {
		r->kind = 'D';
		p = ptz_num(p, 0, 365, &r->n);
	}
	r->time = 2 * 3600;
	if (p && *p == '/')
		p = ptz_hms(p + 1, 167, &r->time);
	return p;
}

static bool ptz_parse(const char *p, posix_tz *tz)
{
	int32_t v;

	memset(tz, 0, sizeof(*tz));
	if ((p = ptz_name(p)) == NULL || (p = ptz_hms(p, 24, &v)) == NULL)
		return false;
	tz->std_off = -v; /* POSIX offsets count hours west of Greenwich */
	if (*p == '\0')
		return true;
	if ((p = ptz_name(p)) == NULL)
		return false;
	tz->has_dst = true;
	tz->dst_off = tz->std_off + 3600;
	if (*p && *p != ',') {
		if ((p = ptz_hms(p, 24, &v)) == NULL)
			return false;
		tz->dst_off = -v;
	}
	if (*p == '\0') /* POSIX leaves the default rule to the implementation: US rules, as glibc */
		p = ",M3.2.0,M11.1.0";
	if (*p != ',' || (p = ptz_rule(p + 1, &tz->start)) == NULL)
		return false;
	if (*p != ',' || (p = ptz_rule(p + 1, &tz->end)) == NULL)
		return false;
	return *p == '\0';
}

/* Days since the epoch of a rule's date in year y. */
static int64_t rule_day(const tz_rule *r, int64_t y)
{
	int64_t jan1 = pgw_days_from_civil(y, 1, 1), first, day;

	if (r->kind == 'J')
		return jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
	if (r->kind == 'D')
		return jan1 + r->n;
	first = pgw_days_from_civil(y, r->m, 1);
	day = first + (r->d - weekday_of_days(first) + 7) % 7 + (int64_t)(r->w - 1) * 7;
	while (day >= first + days_in_month(y, r->m))
		day -= 7;
	return day;
}

/*
 * Expand the footer rule into explicit transitions after the table's last one,
 * up to FOOTER_LAST_YEAR. A generated event at the same instant as the previous
 * generated one replaces it: that is how "all year DST" rules (…,0/0,J365/25)
 * chain one year's end into the next year's start.
 */
static bool zone_extend(struct pgw_zone *z, const posix_tz *tz)
{
	size_t n_explicit = z->n;
	int64_t y0 = z->n ? year_of_days(floor_div(z->at[z->n - 1], DAY)) : 1970;

	if (!tz->has_dst) {
		if (z->n == 0)
			z->off0 = tz->std_off;
		return true;
	}
	for (int64_t y = y0; y <= FOOTER_LAST_YEAR; y++) {
		int64_t s = rule_day(&tz->start, y) * DAY + tz->start.time - tz->std_off;
		int64_t e = rule_day(&tz->end, y) * DAY + tz->end.time - tz->dst_off;
		int64_t ev[2][2] = { { s, tz->dst_off }, { e, tz->std_off } };

		if (e < s) { /* southern hemisphere: DST ends early in the year */
			ev[0][0] = e, ev[0][1] = tz->std_off;
			ev[1][0] = s, ev[1][1] = tz->dst_off;
		}
		for (int k = 0; k < 2; k++) {
			int64_t last = z->n ? z->at[z->n - 1] : INT64_MIN;

			if (ev[k][0] == last && z->n > n_explicit) {
				z->off[z->n - 1] = (int32_t)ev[k][1];
				continue;
			}
			if (ev[k][0] <= last || ev[k][1] == (z->n ? z->off[z->n - 1] : z->off0))
				continue;
			if (!zone_push(z, ev[k][0], (int32_t)ev[k][1]))
				return false;
		}
	}
	return true;
}

/* Parse a whole TZif file image. NULL with a reason if it is not one we can use. */
static struct pgw_zone *tzif_parse(const uint8_t *p, size_t len, const char **why)
{
	struct pgw_zone *z = calloc(1, sizeof(*z));
	tzif_hdr h;
	size_t off;

	*why = "not a valid TZif file";
	if (z == NULL) {
		*why = "out of memory";
		return NULL;
	}
	if (!tzif_header(p, len, &h) || (off = 44 + tzif_block_len(&h, 4)) > len)
		goto fail;
	if (p[4] == 0) { /* version 1: 32-bit data only, no footer */
		if (!tzif_block(z, p + 44, &h, 4))
			goto fail;
		return z;
	}
	if (!tzif_header(p + off, len - off, &h) || off + 44 + tzif_block_len(&h, 8) > len)
		goto fail;
	if (!tzif_block(z, p + off + 44, &h, 8))
		goto fail;
	off += 44 + tzif_block_len(&h, 8);
	if (off < len && p[off] == '\n') {
		const uint8_t *nl = memchr(p + off + 1, '\n', len - off - 1);
		char footer[128];
		posix_tz tz;
		size_t flen;

		if (nl == NULL || (flen = (size_t)(nl - (p + off + 1))) >= sizeof(footer))
			goto fail;
		memcpy(footer, p + off + 1, flen);
		footer[flen] = '\0';
		if (flen > 0 && (!ptz_parse(footer, &tz) || !zone_extend(z, &tz)))
			goto fail;
	}
	return z;
fail:
	zone_free(z);
	return NULL;
}

/* An IANA name we are willing to turn into a path under the zoneinfo directory. */
static bool zone_name_safe(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 200 || name[0] == '/' || strstr(name, "..") != NULL)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!isalnum(c) && c != '/' && c != '_' && c != '-' && c != '+')
			return false;
	}
	return true;
}

bool window_load_zone(pgw_window *w, char *err, size_t errsz)
{
	const char *dir = getenv("TZDIR"), *why = NULL;
	char path[512];
	uint8_t *buf = NULL;
	size_t len = 0;
	FILE *f;

	if (w->timezone == NULL || !zone_name_safe(w->timezone)) {
		snprintf(err, errsz, "\"%s\" is not a valid IANA time zone name", w->timezone ? w->timezone : "");
		return false;
	}
	snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", w->timezone);
	f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(err, errsz, "unknown time zone \"%s\" (%s: %s)", w->timezone, path, strerror(errno));
		return false;
	}
	buf = malloc(TZIF_MAX_BYTES);
	if (buf != NULL)
		len = fread(buf, 1, TZIF_MAX_BYTES, f);
	fclose(f);
	if (buf != NULL && len < TZIF_MAX_BYTES)
		w->zone = tzif_parse(buf, len, &why);
	free(buf);
	if (w->zone == NULL) {
		snprintf(err, errsz, "time zone \"%s\": %s: %s", w->timezone, path, why ? why : "cannot read");
		return false;
	}
	return true;
}

/* ---- weekly occurrences ---- */

/* The local calendar day (days since the epoch) that instant t falls on in w's zone. */
static int64_t local_day(const pgw_window *w, int64_t t)
{
	return floor_div(t + zone_offset(w->zone, t), DAY);
}

/* The occurrence starting on local day 'day', if the window has one that day and it is not empty. */
static bool occurrence(const pgw_window *w, int64_t day, pgw_interval *out)
{
	int64_t ls, le;

	if (!(w->days & (1u << weekday_of_days(day))))
		return false;
	ls = day * DAY + (int64_t)w->start_minute * 60;
	le = (w->end_minute <= w->start_minute ? day + 1 : day) * DAY + (int64_t)w->end_minute * 60;
	out->open = (time_t)zone_first_reach(w->zone, ls);
	out->close = (time_t)zone_first_reach(w->zone, le);
	return out->open < out->close;
}

/*
 * Occurrences of local days [from, to], adjacent ones merged, into out (room
 * for to - from + 1). Returns how many.
 */
static size_t gen_intervals(const pgw_window *w, int64_t from, int64_t to, pgw_interval *out)
{
	size_t n = 0;
	pgw_interval occ;

	for (int64_t d = from; d <= to; d++) {
		if (!occurrence(w, d, &occ))
			continue;
		if (n > 0 && occ.open <= out[n - 1].close) {
			if (occ.close > out[n - 1].close)
				out[n - 1].close = occ.close;
			continue;
		}
		out[n++] = occ;
	}
	return n;
}

bool window_prepare(pgw_window *w, time_t now)
{
	int64_t today, from, to;
	pgw_interval *iv;

	free(w->iv);
	w->iv = NULL;
	w->n_iv = 0;
	if (!w->weekly || w->zone == NULL)
		return true;
	today = local_day(w, now);
	from = today - HORIZON_BACK_DAYS;
	to = today + HORIZON_AHEAD_DAYS;
	iv = malloc((size_t)(to - from + 1) * sizeof(*iv));
	if (iv == NULL)
		return false;
	w->n_iv = gen_intervals(w, from, to, iv);
	w->iv = iv;
	/*
	 * Why these bounds: occurrences of days before 'from' close before
	 * (from + 2) days + 2 h in UTC, and those after 'to' open after
	 * (to + 1) days - 26 h, whatever the offset; between, the table is complete.
	 */
	w->iv_from = (time_t)((from + 2) * DAY + 3 * 3600);
	w->iv_to = (time_t)((to + 1) * DAY - 27 * 3600);
	return true;
}

/* Slow path: the first merged interval with close > t, scanning the days around t. */
static bool weekly_scan(const pgw_window *w, time_t t, pgw_interval *out)
{
	int64_t d0 = local_day(w, t) - 2;
	pgw_interval cur = { 0, 0 }, occ;
	bool have = false;

	for (int64_t d = d0; d <= d0 + SCAN_DAYS; d++) {
		if (!occurrence(w, d, &occ))
			continue;
		if (have && occ.open <= cur.close) {
			if (occ.close > cur.close)
				cur.close = occ.close;
			continue;
		}
		if (have && cur.close > t)
			break;
		cur = occ;
		have = true;
	}
	if (!have || cur.close <= t)
		return false;
	*out = cur;
	return true;
}

/* The first interval of a weekly window with close > t (open now, or the next one). */
static bool weekly_find(const pgw_window *w, time_t t, pgw_interval *out)
{
	if (w->iv != NULL && t >= w->iv_from && t < w->iv_to) {
		size_t lo = 0, hi = w->n_iv;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (w->iv[mid].close <= t)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < w->n_iv && w->iv[lo].close < w->iv_to) {
			*out = w->iv[lo];
			return true;
		}
	}
	if (w->zone == NULL)
		return false;
	return weekly_scan(w, t, out);
}

void window_state(const pgw_window *w, time_t now, bool *open, time_t *next_open, time_t *next_close)
{
	pgw_interval iv, after;

	*open = false;
	*next_open = *next_close = 0;
	if (!w->weekly) {
		iv.open = w->start_utc;
		iv.close = w->end_utc;
		if (now >= iv.close)
			return;
		*open = now >= iv.open;
		*next_open = *open ? 0 : iv.open;
		*next_close = iv.close;
		return;
	}
	if (!weekly_find(w, now, &iv))
		return;
	if (iv.open > now) {
		*next_open = iv.open;
		*next_close = iv.close;
		return;
	}
	*open = true;
	*next_close = iv.close;
	if (weekly_find(w, iv.close, &after))
		*next_open = after.open;
}

bool window_applies(const pgw_window *w, const char *target, const char *actor)
{
	if (target == NULL || strcmp(w->target, target) != 0)
		return false;
	if (w->n_actors == 0)
		return true;
	if (actor == NULL)
		return false;
	for (size_t i = 0; i < w->n_actors; i++)
		if (strcmp(w->actors[i], actor) == 0)
			return true;
	return false;
}

/* Whether w is open at now: the statement-time hot path, one binary search for weekly windows. */
static bool window_is_open(const pgw_window *w, time_t now)
{
	pgw_interval iv;

	if (!w->weekly)
		return now >= w->start_utc && now < w->end_utc;
	return weekly_find(w, now, &iv) && iv.open <= now;
}

const pgw_window *windows_open_now(const pgw_config *c, const char *target, const char *actor, time_t now)
{
	for (size_t i = 0; i < c->n_windows; i++) {
		const pgw_window *w = &c->windows[i];

		if (window_applies(w, target, actor) && window_is_open(w, now))
			return w;
	}
	return NULL;
}

time_t windows_next_open(const pgw_config *c, const char *target, const char *actor, time_t now,
			 const pgw_window **which)
{
	time_t best = 0;

	if (which != NULL)
		*which = NULL;
	for (size_t i = 0; i < c->n_windows; i++) {
		const pgw_window *w = &c->windows[i];
		time_t next_open, next_close;
		bool open;

		if (!window_applies(w, target, actor))
			continue;
		window_state(w, now, &open, &next_open, &next_close);
		if (next_open <= now || next_open - now > NEXT_OPEN_LIMIT)
			continue;
		if (best == 0 || next_open < best) {
			best = next_open;
			if (which != NULL)
				*which = w;
		}
	}
	return best;
}

/* ---- hints for denied production writes ---- */

/* "2026-11-25T22:00:00-03:00" in the window's zone (weekly), or "2026-11-26T01:00:00Z" (one-off). */
static void format_local(const pgw_window *w, time_t t, char *buf, size_t sz)
{
	int32_t off = w->weekly ? window_zone_offset(w, t) : 0;
	time_t local = t + off;
	struct tm tm;
	char day[24];

	gmtime_r(&local, &tm);
	/* Weekly windows are minute-grained: seconds would only lengthen the hint (256 bytes). */
	strftime(day, sizeof(day), w->weekly ? "%Y-%m-%dT%H:%M" : "%Y-%m-%dT%H:%M:%S", &tm);
	if (!w->weekly) {
		snprintf(buf, sz, "%sZ", day);
		return;
	}
	snprintf(buf, sz, "%s%c%02d:%02d", day, off < 0 ? '-' : '+', abs(off) / 3600, abs(off) % 3600 / 60);
}

static void format_utc_time(time_t t, char *buf, size_t sz, bool seconds)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sz, seconds ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H:%MZ", &tm);
}

/* "sec-42 opens 2026-11-24T22:00:00Z, closes 2026-11-24T23:30:00Z" or, for a weekly window,
 * "weekly opens 2026-11-25T22:00-03:00 America/Santiago (2026-11-26T01:00Z), closes ...". */
static void describe_opening(const pgw_window *w, time_t open_at, char *buf, size_t sz)
{
	time_t next_open, close_at;
	bool open;
	char lo[40], lc[40], uo[24], uc[24];

	window_state(w, open_at, &open, &next_open, &close_at);
	format_local(w, open_at, lo, sizeof(lo));
	format_local(w, close_at, lc, sizeof(lc));
	format_utc_time(open_at, uo, sizeof(uo), !w->weekly);
	format_utc_time(close_at, uc, sizeof(uc), !w->weekly);
	if (!w->weekly)
		snprintf(buf, sz, "%s opens %s, closes %s", w->name, uo, uc);
	else
		snprintf(buf, sz, "%s opens %s %s (%s), closes %s (%s)", w->name, lo, w->timezone, uo, lc, uc);
}

/* A window open now for the target whose actors= list leaves this actor out, or NULL. */
static const pgw_window *open_for_others(const pgw_config *c, const char *target, const char *actor, time_t now)
{
	for (size_t i = 0; i < c->n_windows; i++) {
		const pgw_window *w = &c->windows[i];

		if (target && strcmp(w->target, target) == 0 && !window_applies(w, target, actor) &&
		    window_is_open(w, now))
			return w;
	}
	return NULL;
}

void windows_hint(const pgw_config *c, const char *target, const char *actor, time_t now, char *buf, size_t sz)
{
	const pgw_window *w = NULL, *other = open_for_others(c, target, actor, now);
	time_t t = windows_next_open(c, target, actor, now, &w);
	char next[200] = "", busy[160] = "", until[24];

	if (t != 0 && w)
		describe_opening(w, t, next, sizeof(next));
	if (other) {
		time_t no, nc;
		bool open;

		window_state(other, now, &open, &no, &nc);
		format_utc_time(nc, until, sizeof(until), true);
		snprintf(busy, sizeof(busy), "window %s is open until %s, but actor %s is not on its actors list; ",
			 other->name, until, actor ? actor : "(none)");
	}
	if (next[0])
		snprintf(buf, sz, "%snext approved window: %s", busy, next);
	else
		snprintf(buf, sz, "%sno approved window is scheduled for %s", busy,
			 other ? "this actor" : "this target");
}

void window_release(pgw_window *w)
{
	zone_free(w->zone);
	w->zone = NULL;
	free(w->iv);
	w->iv = NULL;
	w->n_iv = 0;
}

int32_t window_zone_offset(const pgw_window *w, time_t t)
{
	return w->zone ? zone_offset(w->zone, t) : 0;
}
