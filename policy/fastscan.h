/* fastscan.h - a single-pass scanner for the common shape of SQL, exactly pg_query_scan's tokens or a bail-out. */
#ifndef PGW_POLICY_FASTSCAN_H
#define PGW_POLICY_FASTSCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/classify_int.h"

/* What fast_scan did with a text. */
typedef enum fast_scan_rc {
	FAST_SCANNED = 0, /* s holds exactly the tokens pg_query_scan would give (comments aside) */
	FAST_BAIL = 1,    /* the text has something the fast scanner does not cover: use scan_text() */
	FAST_NOMEM = -1,  /* out of memory */
} fast_scan_rc;

/*
 * Tokenize text[0..len) (NUL-free) as PostgreSQL 15's core lexer does with
 * standard_conforming_strings = scs. Covers ASCII identifiers and keywords,
 * numbers, '...' strings (scs on only), "..." identifiers, $n, operators and
 * punctuation; anything else (comments, dollar quotes, prefixed strings,
 * backslashes, non-ASCII, scanner errors, ...) is FAST_BAIL.
 */
fast_scan_rc fast_scan(pc_scan *s, const char *text, size_t len, bool scs);

/* Build the keyword table now (it is built on first use otherwise). False: fast_scan will always bail. */
bool fast_scan_init(void);

#endif
