/* throttle.c - the bounded failure table and the back-off schedule. */
#include "proxy/throttle.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "conf/core/random.h"

typedef struct startup_count {
	char *address; /* key */
	int n;         /* unauthenticated connections from it now */
	UT_hash_handle hh;
} startup_count;

bool throttle_init(throttle *t)
{
	memset(t, 0, sizeof(*t));
	/* Why no fallback: a known seed lets an attacker aim every key at one slot of the table. */
	return pgw_random_bytes(&t->seed, sizeof(t->seed));
}

/* FNV-1a over a kind byte and a string, mixed with the per-process seed. Never 0. */
static uint64_t key_hash(const throttle *t, char kind, const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull ^ t->seed;

	h = (h ^ (uint8_t)kind) * 0x100000001b3ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	h ^= h >> 29;
	return h ? h : 1;
}

/*
 * Find the slot for a key, or claim one: a short linear probe; when all
 * probed slots are taken, the stalest is recycled (an attacker spraying
 * keys only evicts other stale entries).
 */
static throttle_slot *slot_for(throttle *t, uint64_t h, time_t now, int create)
{
	size_t i, idx = (size_t)(h % THROTTLE_SLOTS);
	throttle_slot *victim = NULL;

	for (i = 0; i < 8; i++) {
		throttle_slot *sl = &t->slots[(idx + i) % THROTTLE_SLOTS];
		if (sl->key_hash == h)
			return sl;
		if (!victim || sl->key_hash == 0 || (victim->key_hash && sl->last < victim->last))
			victim = sl;
	}
	if (!create)
		return NULL;
	victim->key_hash = h;
	victim->failures = 0;
	victim->last = now;
	return victim;
}

static uint32_t delay_for(uint32_t failures)
{
	uint32_t d;

	if (failures <= THROTTLE_FREE_FAILURES)
		return 0;
	d = failures - THROTTLE_FREE_FAILURES > 10 ? THROTTLE_MAX_DELAY_MS
						   : 100u << (failures - THROTTLE_FREE_FAILURES - 1);
	return d > THROTTLE_MAX_DELAY_MS ? THROTTLE_MAX_DELAY_MS : d;
}

static uint32_t count_failure(throttle *t, char kind, const char *key, time_t now)
{
	throttle_slot *sl = slot_for(t, key_hash(t, kind, key), now, 1);

	if (now - sl->last > THROTTLE_FORGET_SECONDS)
		sl->failures = 0;
	if (sl->failures < UINT32_MAX)
		sl->failures++;
	sl->last = now;
	return delay_for(sl->failures);
}

uint32_t throttle_fail(throttle *t, const char *address, const char *actor, time_t now)
{
	uint32_t a = count_failure(t, 'a', address, now);
	uint32_t u = actor ? count_failure(t, 'u', actor, now) : 0;
	uint32_t d = a > u ? a : u;

	if (d)
		t->delayed++;
	return d;
}

void throttle_success(throttle *t, const char *address, const char *actor)
{
	throttle_slot *sl = slot_for(t, key_hash(t, 'a', address), 0, 0);

	if (sl)
		sl->failures = 0;
	sl = slot_for(t, key_hash(t, 'u', actor), 0, 0);
	if (sl)
		sl->failures = 0;
}

bool throttle_startup_begin(throttle *t, const char *address, int limit)
{
	startup_count *sc;

	HASH_FIND_STR(t->startups, address, sc);
	if (sc) {
		if (sc->n >= limit)
			return false;
		sc->n++;
		return true;
	}
	sc = calloc(1, sizeof(*sc));
	if (!sc || !(sc->address = strdup(address))) {
		free(sc);
		return false;
	}
	sc->n = 1;
	HASH_ADD_KEYPTR(hh, t->startups, sc->address, strlen(sc->address), sc);
	return true;
}

void throttle_startup_done(throttle *t, const char *address)
{
	startup_count *sc;

	HASH_FIND_STR(t->startups, address, sc);
	if (sc && --sc->n <= 0) {
		HASH_DEL(t->startups, sc);
		free(sc->address);
		free(sc);
	}
}

void throttle_free(throttle *t)
{
	startup_count *sc, *tmp;

	HASH_ITER(hh, t->startups, sc, tmp)
	{
		HASH_DEL(t->startups, sc);
		free(sc->address);
		free(sc);
	}
}
