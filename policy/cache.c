/* cache.c - the facts cache: token-stream key -> statement ranges + facts, bounded, LRU. */
#include <stdlib.h>
#include <string.h>

#include "policy/classify_int.h"

/*
 * The key is the scanner's token stream (see classify.c), compared in full on
 * every hit: a hash collision must never hand out another statement's facts.
 * Bounded by entry count and by key bytes (max_entries * 4 KB), evicting the
 * least recently used entry.
 */

typedef struct cache_entry {
	struct cache_entry *chain;               /* next in the hash bucket */
	struct cache_entry *lru_prev, *lru_next; /* LRU list, most recent at head */
	uint64_t hash;
	size_t klen;
	uint8_t *key;
	bool marker;          /* "literal-dependent: look up the literal-exact key" */
	size_t n;             /* statements */
	pc_entry_stmt *stmts; /* n statements, facts referenced */
} cache_entry;

struct pc_cache {
	cache_entry **buckets;
	size_t nbuckets; /* power of two */
	cache_entry *lru_head, *lru_tail;
	size_t entries, max_entries;
	size_t bytes, max_bytes; /* key + statement bytes held */
};

uint64_t cache_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9E3779B97F4A7C15ull ^ n;

	while (n >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
		h ^= h >> 31;
		p += 8;
		n -= 8;
	}
	while (n--)
		h = (h ^ *p++) * 0x94D049BB133111EBull;
	return h ^ (h >> 29);
}

pc_cache *cache_new(size_t max_entries)
{
	pc_cache *c = calloc(1, sizeof(*c));
	size_t nb = 16;

	if (!c)
		return NULL;
	while (nb < max_entries * 2)
		nb *= 2;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->nbuckets = nb;
	c->max_entries = max_entries;
	c->max_bytes = max_entries * 4096;
	return c;
}

static void lru_unlink(pc_cache *c, cache_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		c->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		c->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_push_head(pc_cache *c, cache_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = c->lru_head;
	if (c->lru_head)
		c->lru_head->lru_prev = e;
	c->lru_head = e;
	if (!c->lru_tail)
		c->lru_tail = e;
}

static size_t entry_bytes(const cache_entry *e)
{
	return e->klen + e->n * sizeof(pc_entry_stmt) + sizeof(*e);
}

static void entry_free(cache_entry *e)
{
	for (size_t i = 0; i < e->n; i++)
		policy_facts_unref(e->stmts[i].facts);
	free(e->stmts);
	free(e->key);
	free(e);
}

/* Unlink from bucket and LRU, then free. */
static void entry_remove(pc_cache *c, cache_entry *e)
{
	cache_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];

	while (*pp && *pp != e)
		pp = &(*pp)->chain;
	if (*pp)
		*pp = e->chain;
	lru_unlink(c, e);
	c->entries--;
	c->bytes -= entry_bytes(e);
	entry_free(e);
}

static cache_entry *find(pc_cache *c, const uint8_t *key, size_t klen, uint64_t hash)
{
	cache_entry *e = c->buckets[hash & (c->nbuckets - 1)];

	for (; e; e = e->chain) {
		if (e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0)
			return e;
	}
	return NULL;
}

bool cache_get(pc_cache *c, const uint8_t *key, size_t klen, uint64_t hash, const pc_entry_stmt **v, size_t *n,
	       bool *literal_marker)
{
	cache_entry *e = find(c, key, klen, hash);

	*v = NULL;
	*n = 0;
	*literal_marker = false;
	if (!e)
		return false;
	lru_unlink(c, e);
	lru_push_head(c, e);
	*literal_marker = e->marker;
	*n = e->n;
	*v = e->stmts;
	return true;
}

void cache_put(pc_cache *c, const uint8_t *key, size_t klen, uint64_t hash, const pc_entry_stmt *v, size_t n,
	       bool marker)
{
	cache_entry *e, *old;

	if (c->max_entries == 0)
		return;
	if ((old = find(c, key, klen, hash)))
		entry_remove(c, old);
	e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->key = malloc(klen ? klen : 1);
	e->stmts = n ? calloc(n, sizeof(*e->stmts)) : NULL;
	if (!e->key || (n && !e->stmts)) {
		free(e->key);
		free(e->stmts);
		free(e);
		return; /* a cache that cannot grow just misses */
	}
	memcpy(e->key, key, klen);
	e->klen = klen;
	e->hash = hash;
	e->marker = marker;
	e->n = n;
	for (size_t i = 0; i < n; i++) {
		e->stmts[i] = v[i];
		policy_facts_ref(v[i].facts);
	}
	e->chain = c->buckets[hash & (c->nbuckets - 1)];
	c->buckets[hash & (c->nbuckets - 1)] = e;
	lru_push_head(c, e);
	c->entries++;
	c->bytes += entry_bytes(e);
	while ((c->entries > c->max_entries || c->bytes > c->max_bytes) && c->lru_tail && c->lru_tail != e)
		entry_remove(c, c->lru_tail);
}

void cache_stats(const pc_cache *c, uint64_t *entries, uint64_t *bytes)
{
	*entries = c ? c->entries : 0;
	*bytes = c ? c->bytes : 0;
}

void cache_free(pc_cache *c)
{
	if (!c)
		return;
	while (c->lru_head)
		entry_remove(c, c->lru_head);
	free(c->buckets);
	free(c);
}
