/* rfc3339.c - the one RFC 3339 time parser (see rfc3339.h). */
#include "conf/rfc3339.h"

/* Read exactly n decimal digits. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;

	for (; n > 0; n--, (*p)++) {
		if (**p < '0' || **p > '9')
			return false;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : mdays[m - 1];
}

/* The offset part: Z, or +HH:MM / -HH:MM, in seconds east of UTC. */
static bool parse_offset(const char **p, int64_t *off)
{
	int sign, oh, om;

	if (**p == 'Z' || **p == 'z') {
		(*p)++;
		*off = 0;
		return true;
	}
	if (**p != '+' && **p != '-')
		return false;
	sign = **p == '-' ? -1 : 1;
	(*p)++;
	if (!digits(p, 2, &oh) || *(*p)++ != ':' || !digits(p, 2, &om) || oh > 23 || om > 59)
		return false;
	*off = sign * (oh * 3600 + om * 60);
	return true;
}

/* ".frac": 1 to 9 digits, as microseconds (digits past the sixth are read and dropped). */
static bool parse_fraction(const char **p, int64_t *us)
{
	int n = 0;
	int64_t scale = 100000;

	*us = 0;
	if (**p != '.')
		return true;
	for ((*p)++; **p >= '0' && **p <= '9'; (*p)++, n++) {
		*us += (**p - '0') * scale;
		scale /= 10;
	}
	return n >= 1 && n <= 9;
}

bool rfc3339_parse(const char *s, int64_t *us_out)
{
	const char *p = s;
	int y, mo, d, h, mi, sec;
	int64_t us, off;

	if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' || !digits(&p, 2, &d))
		return false;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return false;
	p++;
	if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' || !digits(&p, 2, &sec))
		return false;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
		return false;
	if (!parse_fraction(&p, &us) || !parse_offset(&p, &off) || *p != '\0')
		return false;
	*us_out = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - off) * 1000000 + us;
	return true;
}
