/* catalog_stale.c - names whose definitions changed since the target's catalog was read. */
#include <stdlib.h>
#include <string.h>

#include "policy/catalog_int.h"

/*
 * Function DDL makes only what it names stale: a session looping CREATE OR
 * REPLACE FUNCTION f must not stop every other session's calls of g. Names
 * are bare (no schema): "s.f" and "t.f" share one entry, which only makes
 * more stale. Each name remembers the newest mark (catalogs.c's counter) it
 * was made stale at; a load started after that mark covers it.
 */

typedef struct stale_name {
	char *name;        /* bare object name (the hash key) */
	uint64_t mark;     /* newest stale mark it was given */
	bool oom;          /* uthash could not add it */
	UT_hash_handle hh; /* uthash */
} stale_name;

struct catalog_stale {
	stale_name *names;    /* uthash head */
	bool global;          /* some DDL could change anything (names unknown) */
	uint64_t global_mark; /* the newest mark that made it global */
};

catalog_stale *catalog_stale_new(void)
{
	return calloc(1, sizeof(catalog_stale));
}

void catalog_stale_free(catalog_stale *st)
{
	stale_name *e, *tmp;

	if (!st)
		return;
	HASH_ITER(hh, st->names, e, tmp)
	{
		HASH_DEL(st->names, e);
		free(e->name);
		free(e);
	}
	free(st);
}

static const char *bare(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot ? dot + 1 : name;
}

void catalog_stale_add(catalog_stale *st, const char *name, uint64_t mark)
{
	const char *b = name ? bare(name) : NULL;
	stale_name *e = NULL;

	if (!b) {
		st->global = true;
		st->global_mark = mark;
		return;
	}
	HASH_FIND_STR(st->names, b, e);
	if (!e) {
		if (!(e = calloc(1, sizeof(*e))) || !(e->name = strdup(b))) {
			free(e);
			st->global = true; /* out of memory: everything is stale, never less */
			st->global_mark = mark;
			return;
		}
		HASH_ADD_KEYPTR(hh, st->names, e->name, strlen(e->name), e);
		if (e->oom) {
			free(e->name);
			free(e);
			st->global = true;
			st->global_mark = mark;
			return;
		}
	}
	e->mark = mark;
}

void catalog_stale_covered(catalog_stale *st, uint64_t covered)
{
	stale_name *e, *tmp;

	if (st->global && st->global_mark <= covered)
		st->global = false;
	HASH_ITER(hh, st->names, e, tmp)
	{
		if (e->mark <= covered) {
			HASH_DEL(st->names, e);
			free(e->name);
			free(e);
		}
	}
}

bool catalog_stale_global(const catalog_stale *st)
{
	return st && st->global;
}

bool catalog_stale_any(const catalog_stale *st)
{
	return st && (st->global || st->names);
}

bool catalog_stale_has(const catalog_stale *st, const char *name)
{
	stale_name *e = NULL;
	const char *b = bare(name);

	if (!st || !st->names)
		return false;
	HASH_FIND_STR(st->names, b, e);
	return e != NULL;
}
