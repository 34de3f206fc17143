/* audit_results.c - an index of result records by the seq of their statement, for `audit show`. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/core/arr.h"
#include "audit/audit_int.h"

/* "1.2ms"-style duration. */
static void put_duration(char *out, size_t sz, int64_t us)
{
	if (us < 1000)
		snprintf(out, sz, "%lldus", (long long)us);
	else if (us < 1000000)
		snprintf(out, sz, "%.1fms", (double)us / 1000.0);
	else
		snprintf(out, sz, "%.2fs", (double)us / 1000000.0);
}

/* One result record summarised: "INSERT 0 1 1.2ms" or "ERROR 22012 800us". */
static void summarise(json_t *rec, char *out, size_t sz)
{
	json_t *tag = json_object_get(rec, "tag"), *state = json_object_get(rec, "sqlstate"),
	       *dur = json_object_get(rec, "duration_us");
	char d[32] = "";

	if (json_is_integer(dur))
		put_duration(d, sizeof(d), json_integer_value(dur));
	if (json_is_string(tag))
		snprintf(out, sz, "%s%s%s", json_string_value(tag), d[0] ? " " : "", d);
	else
		snprintf(out, sz, "ERROR %s%s%s", json_is_string(state) ? json_string_value(state) : "?",
			 d[0] ? " " : "", d);
}

static int by_ref(const void *a, const void *b)
{
	const audit_result_entry *x = a, *y = b;

	return x->ref < y->ref ? -1 : x->ref > y->ref;
}

/* Add the result records of one file. */
static void index_file(audit_result_index *ix, const char *file)
{
	FILE *in = fopen(file, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while (in && (n = getline(&line, &cap, in)) > 0) {
		json_t *rec, *ref;

		/* Cheap test first: most lines are not results. */
		if (strstr(line, "\"event\":\"result\"") == NULL)
			continue;
		rec = json_loadb(line, line[n - 1] == '\n' ? (size_t)n - 1 : (size_t)n, JSON_ALLOW_NUL, NULL);
		ref = json_object_get(rec, "ref");
		if (json_is_integer(ref) && json_integer_value(ref) > 0) {
			if (ARR_RESERVE(ix->v, ix->cap, ix->n + 1, 64)) {
				ix->v[ix->n].ref = (uint64_t)json_integer_value(ref);
				summarise(rec, ix->v[ix->n].text, sizeof(ix->v[ix->n].text));
				ix->n++;
			}
		}
		json_decref(rec);
	}
	free(line);
	if (in)
		fclose(in);
}

void audit_result_index_load(audit_result_index *ix, const char *const *files, size_t n)
{
	size_t i;

	memset(ix, 0, sizeof(*ix));
	for (i = 0; i < n; i++)
		index_file(ix, files[i]);
	if (ix->n > 1)
		qsort(ix->v, ix->n, sizeof(*ix->v), by_ref);
}

const char *audit_result_index_find(const audit_result_index *ix, uint64_t ref)
{
	audit_result_entry key = { .ref = ref };
	const audit_result_entry *e = ix->n ? bsearch(&key, ix->v, ix->n, sizeof(*ix->v), by_ref) : NULL;

	return e ? e->text : NULL;
}

void audit_result_index_free(audit_result_index *ix)
{
	free(ix->v);
	memset(ix, 0, sizeof(*ix));
}
