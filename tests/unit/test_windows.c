/* test_windows.c - approved windows: one-off bounds, weekly windows across DST, actors, next-open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "conf/config.h"
#include "conf/windows.h"

static time_t T(const char *rfc3339)
{
	time_t t = 0;

	if (!parse_rfc3339(rfc3339, &t))
		fail_msg("bad test time %s", rfc3339);
	return t;
}

/* Days as in the config: "sun".."sat" -> bit tm_wday. */
static uint8_t days_of(const char *list)
{
	static const char *const names[7] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
	uint8_t d = 0;

	for (int i = 0; i < 7; i++)
		if (strstr(list, names[i]) != NULL)
			d |= (uint8_t)(1u << i);
	return d;
}

static void make_weekly(pgw_window *w, const char *zone, const char *days, int start_min, int end_min)
{
	char err[256];

	memset(w, 0, sizeof(*w));
	w->name = "w";
	w->target = "prod";
	w->weekly = true;
	w->days = days_of(days);
	w->start_minute = start_min;
	w->end_minute = end_min;
	w->timezone = (char *)zone;
	if (!window_load_zone(w, err, sizeof(err)))
		fail_msg("%s", err);
}

#define HM(h, m) ((h) * 60 + (m))

/* One weekly case: the window, a fixed clock, and the expected state. */
typedef struct weekly_case {
	const char *what;
	const char *zone;
	const char *days;
	int start, end;       /* local minutes */
	const char *at;       /* the clock */
	bool open;
	const char *next_open;  /* NULL: 0 */
	const char *next_close; /* NULL: 0 */
} weekly_case;

static const weekly_case weekly_cases[] = {
	/* America/Santiago, autumn 2026: Sun Apr 5 03:00Z, local Sat 24:00 -03 -> Sat 23:00 -04. */
	{ "scl autumn: before", "America/Santiago", "sat", HM(22, 0), HM(23, 30), "2026-04-05T00:59:59Z",
		false,
	  "2026-04-05T01:00:00Z", "2026-04-05T02:30:00Z" },
	{ "scl autumn: start inclusive", "America/Santiago", "sat", HM(22, 0), HM(23, 30),
		"2026-04-05T01:00:00Z",
	  true, "2026-04-12T02:00:00Z", "2026-04-05T02:30:00Z" },
	{ "scl autumn: last second", "America/Santiago", "sat", HM(22, 0), HM(23, 30), "2026-04-05T02:29:59Z",
	  true, "2026-04-12T02:00:00Z", "2026-04-05T02:30:00Z" },
	{ "scl autumn: end exclusive", "America/Santiago", "sat", HM(22, 0), HM(23, 30),
		"2026-04-05T02:30:00Z",
	  false, "2026-04-12T02:00:00Z", "2026-04-12T03:30:00Z" },
	{ "scl autumn: repeated hour not reopened", "America/Santiago", "sat", HM(22, 0), HM(23, 30),
	  "2026-04-05T03:15:00Z", false, "2026-04-12T02:00:00Z", "2026-04-12T03:30:00Z" },
	/* Santiago spring 2026: Sun Sep 6 04:00Z, local Sat 24:00 -04 -> Sun 01:00 -03. */
	{ "scl spring: thu before, -04", "America/Santiago", "tue,thu", HM(22, 0), HM(23, 30),
	  "2026-09-04T03:00:00Z", true, "2026-09-09T01:00:00Z", "2026-09-04T03:30:00Z" },
	{ "scl spring: tue after, -03", "America/Santiago", "tue,thu", HM(22, 0), HM(23, 30),
	  "2026-09-08T23:00:00Z", false, "2026-09-09T01:00:00Z", "2026-09-09T02:30:00Z" },
	{ "scl spring: start in the gap opens at the jump", "America/Santiago", "sun", HM(0, 30), HM(2, 0),
	  "2026-09-06T03:59:59Z", false, "2026-09-06T04:00:00Z", "2026-09-06T05:00:00Z" },
	{ "scl spring: open from the jump", "America/Santiago", "sun", HM(0, 30), HM(2, 0),
	  "2026-09-06T04:00:00Z", true, "2026-09-13T03:30:00Z", "2026-09-06T05:00:00Z" },
	{ "scl spring: week before, plain -04", "America/Santiago", "sun", HM(0, 30), HM(2, 0),
	  "2026-08-30T04:29:00Z", false, "2026-08-30T04:30:00Z", "2026-08-30T06:00:00Z" },
	{ "scl spring: wholly inside the gap is skipped", "America/Santiago", "sun", HM(0, 10), HM(0, 50),
	  "2026-09-06T03:00:00Z", false, "2026-09-13T03:10:00Z", "2026-09-13T03:50:00Z" },
	/* Europe/Berlin spring 2026: Sun Mar 29 01:00Z, 02:00 CET -> 03:00 CEST. */
	{ "ber spring: sat before, CET", "Europe/Berlin", "sat", HM(22, 0), HM(23, 30),
		"2026-03-28T22:00:00Z",
	  true, "2026-04-04T20:00:00Z", "2026-03-28T22:30:00Z" },
	{ "ber spring: sat after, CEST", "Europe/Berlin", "sat", HM(22, 0), HM(23, 30),
		"2026-04-04T19:59:59Z",
	  false, "2026-04-04T20:00:00Z", "2026-04-04T21:30:00Z" },
	{ "ber spring: gap start", "Europe/Berlin", "sun", HM(2, 30), HM(3, 30), "2026-03-29T00:59:59Z",
		false,
	  "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z" },
	{ "ber spring: open at the jump", "Europe/Berlin", "sun", HM(2, 30), HM(3, 30),
		"2026-03-29T01:00:00Z",
	  true, "2026-04-05T00:30:00Z", "2026-03-29T01:30:00Z" },
	/* Berlin autumn 2026: Sun Oct 25 01:00Z, 03:00 CEST -> 02:00 CET. */
	{ "ber autumn: sat before, CEST", "Europe/Berlin", "sat", HM(22, 0), HM(23, 30),
		"2026-10-24T21:29:59Z",
	  true, "2026-10-31T21:00:00Z", "2026-10-24T21:30:00Z" },
	{ "ber autumn: sat after, CET", "Europe/Berlin", "sat", HM(22, 0), HM(23, 30), "2026-10-31T20:30:00Z",
	  false, "2026-10-31T21:00:00Z", "2026-10-31T22:30:00Z" },
	{ "ber autumn: first pass opens", "Europe/Berlin", "sun", HM(2, 30), HM(3, 30),
		"2026-10-25T00:29:59Z",
	  false, "2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z" },
	{ "ber autumn: open through the repeat", "Europe/Berlin", "sun", HM(2, 30), HM(3, 30),
	  "2026-10-25T01:45:00Z", true, "2026-11-01T01:30:00Z", "2026-10-25T02:30:00Z" },
	/* Crossing midnight, days, ranges, merging (Berlin, January: CET = UTC+1). */
	{ "midnight: fri window open on saturday 00:30", "Europe/Berlin", "fri", HM(23, 0), HM(1, 0),
	  "2026-01-09T23:30:00Z", true, "2026-01-16T22:00:00Z", "2026-01-10T00:00:00Z" },
	{ "midnight: end exclusive", "Europe/Berlin", "fri", HM(23, 0), HM(1, 0), "2026-01-10T00:00:00Z",
		false,
	  "2026-01-16T22:00:00Z", "2026-01-17T00:00:00Z" },
	{ "midnight: sat window not open sat 00:30", "Europe/Berlin", "sat", HM(23, 0), HM(1, 0),
	  "2026-01-09T23:30:00Z", false, "2026-01-10T22:00:00Z", "2026-01-11T00:00:00Z" },
	{ "range mon-fri on a saturday", "Europe/Berlin", "mon,tue,wed,thu,fri", HM(9, 0), HM(17, 0),
	  "2026-01-10T10:00:00Z", false, "2026-01-12T08:00:00Z", "2026-01-12T16:00:00Z" },
	{ "adjacent days merge", "Europe/Berlin", "mon,tue", HM(0, 0), HM(0, 0), "2026-01-12T10:00:00Z", true,
	  "2026-01-18T23:00:00Z", "2026-01-13T23:00:00Z" },
	{ "fixed zone UTC", "UTC", "wed", HM(10, 0), HM(11, 0), "2026-11-25T10:59:59Z", true,
	  "2026-12-02T10:00:00Z", "2026-11-25T11:00:00Z" },
};

static time_t T_or_zero(const char *s)
{
	return s == NULL ? 0 : T(s);
}

static void check_state(const weekly_case *wc, const pgw_window *w, const char *mode)
{
	bool open;
	time_t no, nc, at = T(wc->at);

	window_state(w, at, &open, &no, &nc);
	if (open != wc->open || no != T_or_zero(wc->next_open) || nc != T_or_zero(wc->next_close))
		fail_msg("%s [%s]: got open=%d next_open=%lld next_close=%lld, want open=%d %s %s", wc->what,
			mode,
			 open, (long long)no, (long long)nc, wc->open, wc->next_open ? wc->next_open : "0",
			 wc->next_close ? wc->next_close : "0");
}

/* Each case three ways: no table (scan), table built around the clock, table built far away. */
static void test_weekly_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(weekly_cases) / sizeof(weekly_cases[0]); i++) {
		const weekly_case *wc = &weekly_cases[i];
		pgw_window w;

		make_weekly(&w, wc->zone, wc->days, wc->start, wc->end);
		check_state(wc, &w, "scan");
		assert_true(window_prepare(&w, T(wc->at)));
		assert_true(w.n_iv > 50);
		check_state(wc, &w, "table");
		assert_true(window_prepare(&w, T(wc->at) - 3 * 365 * 86400));
		check_state(wc, &w, "table elsewhere");
		window_release(&w);
	}
}

/* The table and the scan agree at every probe over the whole horizon. */
static void test_table_matches_scan(void **state)
{
	pgw_window tab, scan;
	time_t base = T("2026-11-22T00:00:00Z");

	(void)state;
	make_weekly(&tab, "America/Santiago", "tue,thu,sat", HM(23, 0), HM(0, 30));
	make_weekly(&scan, "America/Santiago", "tue,thu,sat", HM(23, 0), HM(0, 30));
	assert_true(window_prepare(&tab, base));
	assert_true(tab.iv_from < base - 6 * 86400 && tab.iv_to > base + 398 * 86400);
	for (time_t t = tab.iv_from; t < tab.iv_to; t += 37 * 60 + 11) {
		bool o1, o2;
		time_t a1, a2, c1, c2;

		window_state(&tab, t, &o1, &a1, &c1);
		window_state(&scan, t, &o2, &a2, &c2);
		if (o1 != o2 || a1 != a2 || c1 != c2)
			fail_msg("t=%lld table (%d %lld %lld) scan (%d %lld %lld)", (long long)t, o1,
				(long long)a1,
				 (long long)c1, o2, (long long)a2, (long long)c2);
	}
	window_release(&tab);
	window_release(&scan);
}

/* Our TZif + POSIX-footer reader agrees with glibc's localtime_r, 1990..2060 (past the fat table's 2037). */
static void test_zone_offsets_match_glibc(void **state)
{
	static const char *const zones[] = { "America/Santiago", "Europe/Berlin", "America/New_York",
					     "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kolkata",
					     "America/Sao_Paulo", "Africa/Casablanca", "UTC" };
	char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;

	(void)state;
	for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
		pgw_window w;

		make_weekly(&w, zones[z], "mon", 0, 60);
		setenv("TZ", zones[z], 1); /* test only: pgwarden itself never touches TZ */
		tzset();
		time_t end = T("2060-01-01T00:00:00Z");

		for (time_t t = T("1990-01-01T00:00:00Z"); t < end; t += 3 * 3600 + 17 * 60) {
			struct tm tm;

			localtime_r(&t, &tm);
			if (window_zone_offset(&w, t) != tm.tm_gmtoff)
				fail_msg("%s at %lld: ours %d glibc %ld", zones[z], (long long)t,
					 window_zone_offset(&w, t), tm.tm_gmtoff);
		}
		window_release(&w);
	}
	if (old)
		setenv("TZ", old, 1);
	else
		unsetenv("TZ");
	tzset();
	free(old);
}

static void test_bad_zone_names(void **state)
{
	static const char *const bad[] = { "", "/etc/passwd", "../../etc/passwd", "Europe/../../etc/passwd",
					   "Mars/Olympus_Mons", "Europe/Berlin\n", "zone.tab" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pgw_window w = { .timezone = (char *)bad[i], .weekly = true };
		char err[256] = "";

		if (window_load_zone(&w, err, sizeof(err)))
			fail_msg("zone \"%s\" accepted", bad[i]);
		assert_null(w.zone);
		assert_true(err[0] != '\0');
	}
}

static void test_one_off_bounds(void **state)
{
	pgw_window w = { .name = "sec-42", .target = "prod" };
	bool open;
	time_t no, nc, s = T("2026-11-24T19:00:00-03:00"), e = T("2026-11-24T23:30:00Z");

	(void)state;
	assert_int_equal(s, T("2026-11-24T22:00:00Z"));
	w.start_utc = s;
	w.end_utc = e;
	window_state(&w, s - 1, &open, &no, &nc);
	assert_false(open);
	assert_int_equal(no, s);
	assert_int_equal(nc, e);
	window_state(&w, s, &open, &no, &nc);
	assert_true(open);
	assert_int_equal(no, 0);
	assert_int_equal(nc, e);
	window_state(&w, e - 1, &open, &no, &nc);
	assert_true(open);
	window_state(&w, e, &open, &no, &nc);
	assert_false(open);
	assert_int_equal(no, 0);
	assert_int_equal(nc, 0);
}

static void test_actors_and_next_open(void **state)
{
	char *brent[] = { "user:brent" };
	pgw_window ws[3] = {
		{ .name = "restricted", .target = "prod", .actors = brent, .n_actors = 1,
		  .start_utc = T("2026-11-24T22:00:00Z"), .end_utc = T("2026-11-24T23:30:00Z") },
		{ .name = "later", .target = "prod", .start_utc = T("2026-11-25T22:00:00Z"),
		  .end_utc = T("2026-11-25T23:00:00Z") },
		{ .name = "far", .target = "prod", .start_utc = T("2028-01-01T00:00:00Z"),
		  .end_utc = T("2028-01-02T00:00:00Z") },
	};
	pgw_config c = { .windows = ws, .n_windows = 3 };
	const pgw_window *which = NULL;
	time_t during = T("2026-11-24T22:30:00Z");

	(void)state;
	assert_ptr_equal(windows_open_now(&c, "prod", "user:brent", during), &ws[0]);
	assert_null(windows_open_now(&c, "prod", "user:jimmie", during));
	assert_null(windows_open_now(&c, "prod", NULL, during));
	assert_null(windows_open_now(&c, "staging", "user:brent", during));
	assert_null(windows_open_now(&c, "prod", "user:brent", T("2026-11-24T23:30:00Z")));

	/* Before both: brent's comes first, jimmie's is the later one. */
	assert_int_equal(windows_next_open(&c, "prod", "user:brent", T("2026-11-24T00:00:00Z"), &which),
			 T("2026-11-24T22:00:00Z"));
	assert_ptr_equal(which, &ws[0]);
	assert_int_equal(windows_next_open(&c, "prod", "user:jimmie", T("2026-11-24T00:00:00Z"), &which),
			 T("2026-11-25T22:00:00Z"));
	assert_ptr_equal(which, &ws[1]);
	/* While brent's is open, his next opening is the later window. */
	assert_int_equal(windows_next_open(&c, "prod", "user:brent", during, &which),
		T("2026-11-25T22:00:00Z"));
	/* Only "far" remains, more than 370 days away: none. */
	assert_int_equal(windows_next_open(&c, "prod", "user:brent", T("2026-11-26T00:00:00Z"), &which), 0);
	assert_null(which);
	/* Within 370 days of it, it counts. */
	assert_int_equal(windows_next_open(&c, "prod", "x", T("2027-06-01T00:00:00Z"), &which),
			 T("2028-01-01T00:00:00Z"));
	assert_ptr_equal(which, &ws[2]);
}

static void test_weekly_in_config_next_open(void **state)
{
	pgw_window ws[2];
	pgw_config c = { .windows = ws, .n_windows = 2 };
	const pgw_window *which;
	time_t now = T("2026-09-08T12:00:00Z"); /* Tue, Santiago -03 */

	(void)state;
	make_weekly(&ws[0], "America/Santiago", "thu", HM(22, 0), HM(23, 30));
	make_weekly(&ws[1], "America/Santiago", "tue", HM(22, 0), HM(23, 30));
	ws[1].name = "tue";
	assert_true(window_prepare(&ws[0], now) && window_prepare(&ws[1], now));
	assert_int_equal(windows_next_open(&c, "prod", "anyone", now, &which), T("2026-09-09T01:00:00Z"));
	assert_ptr_equal(which, &ws[1]);
	assert_null(windows_open_now(&c, "prod", "anyone", now));
	assert_ptr_equal(windows_open_now(&c, "prod", "anyone", T("2026-09-09T01:00:00Z")), &ws[1]);
	window_release(&ws[0]);
	window_release(&ws[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_off_bounds),
		cmocka_unit_test(test_weekly_cases),
		cmocka_unit_test(test_table_matches_scan),
		cmocka_unit_test(test_zone_offsets_match_glibc),
		cmocka_unit_test(test_bad_zone_names),
		cmocka_unit_test(test_actors_and_next_open),
		cmocka_unit_test(test_weekly_in_config_next_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
