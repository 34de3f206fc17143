/*
 * fuzz_fastscan.c - differential libFuzzer target: policy/fastscan.c against pg_query_scan.
 *
 * For every input (a text cut at its first NUL) the fast scanner must either
 * bail out or give exactly the tokens scan_text() decodes from pg_query_scan:
 * same count, and per token the same start, end, token id and keyword kind.
 * With standard_conforming_strings off it must always bail. Any difference
 * aborts with both token lists printed.
 *   bash tests/fuzz/run.sh fuzz_fastscan
 *   FUZZ_SECONDS=1200 nice bash tests/fuzz/run.sh fuzz_fastscan
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classify_int.h"
#include "policy/fastscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern __thread bool standard_conforming_strings;

static pc_scan fast, full; /* reused between inputs */

static void dump(const char *who, const pc_scan *s)
{
	fprintf(stderr, "%s: %zu tokens\n", who, s->n);
	for (size_t i = 0; i < s->n; i++)
		fprintf(stderr, "  [%u,%u) token %u kw %u\n", s->v[i].start, s->v[i].end, s->v[i].token,
			s->v[i].kw);
}

static void differ(const char *text, const char *why)
{
	fprintf(stderr, "fast scanner differs from pg_query_scan (%s) on:\n%s\n", why, text);
	dump("fast", &fast);
	dump("full", &full);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	size_t len;
	int rc;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	len = strlen(text);
	if (fast_scan(&fast, text, len, false) != FAST_BAIL)
		differ(text, "accepted with standard_conforming_strings off");
	if (fast_scan(&fast, text, len, true) == FAST_SCANNED) {
		standard_conforming_strings = true;
		rc = scan_text(&full, text);
		if (rc != 0)
			differ(text, "the full scanner rejects the text");
		if (fast.n != full.n)
			differ(text, "token count");
		for (size_t i = 0; i < fast.n; i++)
			if (memcmp(&fast.v[i], &full.v[i], sizeof(pc_token)) != 0)
				differ(text, "token");
	}
	free(text);
	return 0;
}
