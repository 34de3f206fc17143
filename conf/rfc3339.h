/*
 * rfc3339.h - the one RFC 3339 time parser: config windows and token expiry,
 * audit timestamps, and the audit tools' --since/--until all read times here.
 */
#ifndef PGW_RFC3339_H
#define PGW_RFC3339_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Parse "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" ('t', 'z' and a space
 * for 'T' accepted, as RFC 3339 section 5.6 allows; 1 to 9 fraction digits).
 * Dates are checked (no February 30th). A leap second (:60) counts as the
 * next second's start. *us: microseconds since the Unix epoch, UTC.
 */
bool rfc3339_parse(const char *s, int64_t *us);

#endif
