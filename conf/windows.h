/*
 * windows.h - approved change windows ([window.*]): whether one is open for a
 * target and actor at an instant, and when the next one opens.
 *
 * Design. A one-off window is the interval [start, end). A weekly window is
 * evaluated in the local time of its IANA zone, read from the zone's TZif file
 * by our own small reader at config load (no setenv("TZ")/tzset, ever): the
 * file's transitions, extended with its POSIX TZ footer rule up to year 2200,
 * give a sorted table of UTC offsets. At load, window_prepare() turns each
 * weekly window into the UTC intervals it is open from about 7 days before to
 * about 399 days after the load, sorted and merged, so a statement-time query is
 * one binary search (tens of nanoseconds). An instant outside that horizon (a
 * process running over a year without reload, or a test clock) is answered by
 * scanning the occurrences around it on the fly from the same zone table: pure,
 * slower (tens of microseconds for next-open), never mutating the snapshot.
 *
 * Local-time rule (DST): an occurrence opens the first time the zone's wall
 * clock reaches its start time on that day and closes the first time it then
 * reaches the end time. So "22:00-23:30" stays 22:00-23:30 local on both sides
 * of a change. A start (or end) inside a spring-forward gap is reached at the
 * instant of the jump: "02:30-03:30" on the night Berlin jumps 02:00 -> 03:00
 * opens at 03:00 CEST and closes at 03:30 CEST; an occurrence lying wholly inside
 * a gap does not open that day. In an autumn fall-back the first pass counts:
 * "02:30-03:30" on the night Berlin goes 03:00 CEST -> 02:00 CET opens at
 * 02:30 CEST and closes at 03:30 CET (two hours), and a window that ends inside
 * the repeated hour is not reopened by the second pass.
 */
#ifndef PGW_WINDOWS_H
#define PGW_WINDOWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf/config.h"

/* Whether w is for this target and lets this actor in (no actors= means anyone). */
bool window_applies(const pgw_window *w, const char *target, const char *actor);

/* The first window (config order) open at 'now' for this target and actor, or NULL. */
const pgw_window *windows_open_now(const pgw_config *c, const char *target, const char *actor, time_t now);

/*
 * The earliest instant after 'now' (strictly) at which an applicable window
 * opens, within 370 days; 0 if none. *which (if not NULL) is set to that window
 * or NULL. A window open at 'now' counts with its next opening after this one.
 */
time_t windows_next_open(const pgw_config *c, const char *target, const char *actor, time_t now,
			 const pgw_window **which);

/*
 * The state of one window at 'now'. Open: *next_close is when this opening ends
 * and *next_open the start of the following one (0 if none within 370 days).
 * Closed: *next_open and *next_close bound the next opening (both 0 if none).
 */
void window_state(const pgw_window *w, time_t now, bool *open, time_t *next_open, time_t *next_close);

/*
 * The HINT of a production write denied at 'now': the actor's next opening on
 * this target with its close, in the window's own zone and in UTC; when a
 * window is open now but its actors= list leaves this actor out, that first.
 */
void windows_hint(const pgw_config *c, const char *target, const char *actor, time_t now, char *buf, size_t sz);

/* Load-time only (config_load) -------------------------------------------- */

/*
 * Load w->timezone (an IANA name) into w->zone. False with a reason in 'err'
 * if the name is unsafe (leading '/', "..", odd characters), missing or not a
 * valid TZif file. Looks in $TZDIR if set, else /usr/share/zoneinfo.
 */
bool window_load_zone(pgw_window *w, char *err, size_t errsz);

/* Precompute a weekly window's intervals around 'now' (needs w->zone). False on no memory. */
bool window_prepare(pgw_window *w, time_t now);

/* Free what window_load_zone and window_prepare allocated. */
void window_release(pgw_window *w);

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12, d 1..31). */
int64_t pgw_days_from_civil(int64_t y, int m, int d);

/* For tests: the zone's UTC offset in seconds at instant t. */
int32_t window_zone_offset(const pgw_window *w, time_t t);

#endif
