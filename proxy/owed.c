/* owed.c - the ring buffer of responses owed by the upstream. */
#include "proxy/owed.h"

#include <stdlib.h>
#include <string.h>

#include "proxy/stmt_table.h"

void owed_init(owed_queue *q)
{
	memset(q, 0, sizeof(*q));
}

static void owed_release(owed *o)
{
	stmt_undo_free(&o->undo); /* answered: its changes stand */
	free(o->deny_msg);
	if (o->refs != o->inline_refs)
		free(o->refs);
}

void owed_free(owed_queue *q)
{
	while (q->count)
		owed_pop(q);
	free(q->v);
	memset(q, 0, sizeof(*q));
}

static bool owed_grow(owed_queue *q)
{
	uint32_t ncap = q->cap ? q->cap * 2 : 16, i;
	owed *nv = malloc(sizeof(owed) * ncap);

	if (!nv)
		return false;
	for (i = 0; i < q->count; i++) {
		nv[i] = q->v[(q->head + i) & (q->cap - 1)];
		/* refs may point at the entry's own inline storage, which moved */
		if (nv[i].n_refs <= OWED_INLINE_REFS && nv[i].refs)
			nv[i].refs = nv[i].inline_refs;
	}
	free(q->v);
	q->v = nv;
	q->cap = ncap;
	q->head = 0;
	return true;
}

owed *owed_push(owed_queue *q, owed_kind kind)
{
	owed *o;

	if (q->count == q->cap && !owed_grow(q))
		return NULL;
	o = &q->v[(q->head + q->count) & (q->cap - 1)];
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	clock_gettime(CLOCK_MONOTONIC, &o->start);
	q->count++;
	if (kind == OWED_SYNC)
		q->skip_until_sync = false;
	return o;
}

owed *owed_head(owed_queue *q)
{
	return q->count ? &q->v[q->head] : NULL;
}

void owed_pop(owed_queue *q)
{
	if (!q->count)
		return;
	owed_release(&q->v[q->head]);
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
}

bool owed_set_refs(owed *o, const uint64_t *refs, uint32_t n)
{
	if (n <= OWED_INLINE_REFS) {
		o->refs = o->inline_refs;
	} else {
		o->refs = malloc(sizeof(uint64_t) * n);
		if (!o->refs)
			return false;
	}
	memcpy(o->refs, refs, sizeof(uint64_t) * n);
	o->n_refs = n;
	o->next_ref = 0;
	return true;
}

uint64_t owed_peek_ref(const owed *o)
{
	return o->next_ref < o->n_refs ? o->refs[o->next_ref] : 0;
}

uint64_t owed_take_ref(owed *o)
{
	if (o->next_ref >= o->n_refs)
		return 0;
	return o->refs[o->next_ref++];
}

owed *owed_at(owed_queue *q, uint32_t i)
{
	return i < q->count ? &q->v[(q->head + i) & (q->cap - 1)] : NULL;
}

void owed_remove_at(owed_queue *q, uint32_t i)
{
	uint32_t k;

	if (i >= q->count)
		return;
	if (i == 0) {
		owed_pop(q);
		return;
	}
	owed_release(&q->v[(q->head + i) & (q->cap - 1)]);
	/* close the gap: move the newer entries one slot back (fixing inline refs pointers) */
	for (k = i; k + 1 < q->count; k++) {
		owed *dst = &q->v[(q->head + k) & (q->cap - 1)];
		*dst = q->v[(q->head + k + 1) & (q->cap - 1)];
		if (dst->refs && dst->n_refs <= OWED_INLINE_REFS)
			dst->refs = dst->inline_refs;
	}
	q->count--;
}

uint32_t owed_until_sync(const owed_queue *q)
{
	uint32_t n = 0;

	while (n < q->count && q->v[(q->head + n) & (q->cap - 1)].kind != OWED_SYNC)
		n++;
	return n;
}

unsigned owed_error_skip(owed_queue *q, struct stmt_table *names)
{
	uint32_t n = owed_until_sync(q), i;
	unsigned internal = 0;

	/*
	 * Undo newest first: each undo record holds what a name meant just
	 * before its change, which assumed every earlier change had happened.
	 */
	for (i = n; i-- > 0;) {
		owed *o = owed_at(q, i);
		if (o->kind == OWED_INTERNAL || o->kind == OWED_INTERNAL_EXT)
			internal++;
		if (names)
			stmt_undo_revert(names, &o->undo, 0);
	}
	/* PostgreSQL ignores every message until Sync, a simple Query too (postgres.c, ignore_till_sync). */
	for (i = 0; i < n; i++)
		owed_pop(q);
	if (!q->count)
		q->skip_until_sync = true;
	return internal;
}

/* While skipping, PostgreSQL ignores every message but Sync (postgres.c, ignore_till_sync). */
bool owed_expects(const owed_queue *q, owed_kind kind)
{
	return !(q->skip_until_sync && kind != OWED_SYNC);
}
