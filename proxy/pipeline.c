/* pipeline.c - the server's timeline: entries owed an answer, pending name changes, predicted mode. */
#include "proxy/pipeline.h"

#include <stdlib.h>
#include <string.h>

void tl_init(timeline *t)
{
	memset(t, 0, sizeof(*t));
	t->next_seq = 1;
	TAILQ_INIT(&t->changes);
	stmt_table_init(&t->confirmed);
	t->mode = TL_MODE_NORMAL;
}

static void entry_release(tl_entry *e)
{
	free(e->deny_msg);
	if (e->refs != e->inline_refs)
		free(e->refs);
}

void tl_set_mode(timeline *t, tl_mode mode)
{
	t->mode = mode;
}

/* ---- changes ------------------------------------------------------------------------------- */

/*
 * Freed changes kept for reuse (per thread, bounded): every simple Query
 * makes one (it replaces the unnamed portal), so without this each statement
 * paid a calloc and a free for it.
 */
#define CHANGE_CACHE_MAX 64
static _Thread_local tl_change *change_cache[CHANGE_CACHE_MAX]; /* free changes, any content */
static _Thread_local size_t change_cache_n;                     /* how many change_cache holds */

/* A zeroed change, from the cache when it has one. */
static tl_change *change_new(void)
{
	tl_change *c = change_cache_n > 0 ? change_cache[--change_cache_n] : malloc(sizeof(*c));

	if (c)
		memset(c, 0, sizeof(*c));
	return c;
}

static void change_free(tl_change *c)
{
	stmt_info_unref(c->si);
	free(c->params);
	free(c->name);
	if (change_cache_n < CHANGE_CACHE_MAX)
		change_cache[change_cache_n++] = c;
	else
		free(c);
}

void tl_changes_free(struct tl_changes *list)
{
	tl_change *c;

	while ((c = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, c, link);
		change_free(c);
	}
}

bool tl_change_add(struct tl_changes *list, tl_ns ns, tl_op op, const char *name, stmt_info *si, const uint8_t *params,
		   size_t params_len, uint32_t index, bool doubtful, bool holdable)
{
	tl_change *c = change_new();

	if (!c)
		return false;
	c->ns = ns;
	c->op = op;
	c->index = index;
	c->doubtful = doubtful;
	c->holdable = holdable;
	if ((name && !(c->name = strndup(name, STMT_NAME_MAX))) ||
	    (params && !(c->params = malloc(params_len ? params_len : 1)))) {
		change_free(c);
		return false;
	}
	if (params) {
		memcpy(c->params, params, params_len);
		c->params_len = params_len;
	}
	if (si) {
		stmt_info_ref(si);
		c->si = si;
	}
	TAILQ_INSERT_TAIL(list, c, link);
	return true;
}

void tl_adopt_before(timeline *t, const tl_entry *e, struct tl_changes *list, uint32_t limit)
{
	tl_change *c;

	while ((c = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, c, link);
		if (c->index >= limit) {
			change_free(c);
			continue;
		}
		c->entry = e->seq;
		TAILQ_INSERT_TAIL(&t->changes, c, link);
	}
}

void tl_adopt(timeline *t, const tl_entry *e, struct tl_changes *list)
{
	tl_adopt_before(t, e, list, UINT32_MAX);
}

/* A confirmed change becomes part of the confirmed table. */
static void apply(stmt_table *tab, const tl_change *c)
{
	if (c->op == TL_CLEAR) {
		if (c->ns == TL_NS_STMT)
			stmt_table_clear_stmts(tab);
		else
			portal_table_clear(tab);
	} else if (c->op == TL_DEL) {
		if (c->ns == TL_NS_STMT)
			stmt_table_del(tab, c->name);
		else
			portal_table_del(tab, c->name);
	} else if (!c->si) {
		/* a PUT with no meaning (a poison Parse of the unnamed statement) leaves the name unknown */
		if (c->ns == TL_NS_STMT)
			stmt_table_del(tab, c->name);
		else
			portal_table_del(tab, c->name);
	} else if (c->ns == TL_NS_STMT) {
		stmt_table_put(tab, c->name, c->si);
	} else {
		portal_table_put(tab, c->name, c->si, c->params, c->params_len, c->holdable);
	}
}

/*
 * Where exec_bind_message (postgres.c) stopped, from the SQLSTATE of its
 * error. Before CreatePortal: the statement is missing (26000), the
 * transaction is aborted (25P02), the portal name is in use (42P03). From
 * CreatePortal on: parameters, planning and executor start (22012, 25006,
 * 42P01...). Either side: protocol violations (08), resources (53),
 * cancels and timeouts (57), system and internal errors (58, XX), or no
 * SQLSTATE at all.
 */
typedef enum { BIND_FAILED_BEFORE_PORTAL, BIND_FAILED_AFTER_PORTAL, BIND_FAILED_ANYWHERE } bind_failure;

static bind_failure bind_failed_where(const char *sqlstate)
{
	static const char *const before[] = { "26000", "25P02", "42P03" };
	static const char *const anywhere[] = { "08", "53", "57", "58", "XX" };
	size_t i;

	if (strlen(sqlstate) != 5)
		return BIND_FAILED_ANYWHERE;
	for (i = 0; i < sizeof(before) / sizeof(before[0]); i++)
		if (strcmp(sqlstate, before[i]) == 0)
			return BIND_FAILED_BEFORE_PORTAL;
	for (i = 0; i < sizeof(anywhere) / sizeof(anywhere[0]); i++)
		if (strncmp(sqlstate, anywhere[i], 2) == 0)
			return BIND_FAILED_ANYWHERE;
	return BIND_FAILED_AFTER_PORTAL;
}

/*
 * A Bind failed. Before CreatePortal nothing changed (an old unnamed portal
 * is still there). From CreatePortal on, the old unnamed portal was dropped
 * and the new portal exists but has failed: in a transaction block it stays
 * until the block ends, and an Execute of it runs nothing
 * (EmptyQueryResponse, or 25P02), so it is a "dead" portal: empty text, no
 * facts. When the error could be either, the unnamed portal is unknown
 * (default deny) and a named one keeps its old meaning (none, or the one
 * whose name made its Bind doubtful); a doubtful named Bind never leaves a
 * dead portal, as its name could still hold the old one.
 */
static void refuse_bind(stmt_table *tab, const tl_change *c, const char *sqlstate)
{
	bind_failure where = bind_failed_where(sqlstate);
	stmt_info *dead;

	if (where == BIND_FAILED_BEFORE_PORTAL ||
	    (c->name[0] != '\0' && (c->doubtful || where == BIND_FAILED_ANYWHERE)))
		return;
	if (where == BIND_FAILED_ANYWHERE || !(dead = stmt_info_new("", 0, NULL))) {
		portal_table_del(tab, c->name);
		return;
	}
	portal_table_put(tab, c->name, dead, NULL, 0, false);
	stmt_info_unref(dead);
}

/*
 * The server refused a change (its request, entry e, failed). A named
 * statement or portal keeps its old meaning; the unnamed statement is
 * dropped before the server even looks at the new one (postgres.c,
 * exec_parse_message), so it is gone; a Bind's portal: refuse_bind().
 */
static void refuse(stmt_table *tab, const tl_entry *e, const tl_change *c)
{
	if (c->stands_on_error) {
		apply(tab, c);
		return;
	}
	if (c->op != TL_PUT)
		return;
	if (c->ns == TL_NS_PORTAL && e->kind == TL_BIND)
		refuse_bind(tab, c, e->sqlstate);
	else if (c->name[0] == '\0' && c->ns == TL_NS_STMT)
		stmt_table_del(tab, "");
	else if (c->name[0] == '\0')
		portal_table_del(tab, "");
}

/*
 * Settle the front changes of entry 'seq' with index in [from, to): apply
 * them (confirmed) or drop them (refused, or skipped when !refused_by_error).
 * Changes of one entry are contiguous at the front: entries are answered in
 * the order they were sent, and each adopts its changes when pushed.
 */
typedef enum { SETTLE_CONFIRM, SETTLE_REFUSE, SETTLE_SKIP } settle_how;

static void settle(timeline *t, const tl_entry *e, uint32_t from, uint32_t to, settle_how how)
{
	tl_change *c, *next;

	for (c = TAILQ_FIRST(&t->changes); c && c->entry == e->seq; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->index < from || c->index >= to)
			continue;
		TAILQ_REMOVE(&t->changes, c, link);
		if (how == SETTLE_CONFIRM)
			apply(&t->confirmed, c);
		else if (how == SETTLE_REFUSE)
			refuse(&t->confirmed, e, c);
		change_free(c);
	}
}

void tl_confirm_index(timeline *t, const tl_entry *head, uint32_t index)
{
	settle(t, head, index, index + 1, SETTLE_CONFIRM);
}

void tl_refuse_from(timeline *t, const tl_entry *head, uint32_t index)
{
	settle(t, head, index, UINT32_MAX, SETTLE_REFUSE);
}

/* Whether a TL_CLEAR reaches 'name': DEALLOCATE ALL spares the unnamed statement (stmt_table_clear_stmts). */
static bool clears(const tl_change *c, const char *name)
{
	return c->ns == TL_NS_PORTAL || name[0] != '\0';
}

/* The newest change to (ns, name) among 'list', or NULL. */
static const tl_change *newest_change(const struct tl_changes *list, tl_ns ns, const char *name)
{
	const tl_change *c;

	TAILQ_FOREACH_REVERSE(c, list, tl_changes, link)
	if (c->ns == ns && (c->op == TL_CLEAR ? clears(c, name) : stmt_name_eq(c->name, name)))
		return c;
	return NULL;
}

/*
 * Why a change of an earlier batch is doubtful although nothing was wrong
 * with it: any message before it in its batch may still fail (an error at
 * Execute cannot be foreseen), and the server then skips it, leaving the
 * OLD meaning: the unnamed statement and portal are replaced whatever they
 * held, and a named one may still hold what a Close or DEALLOCATE skipped
 * with it was to remove. A message of a later batch that names it
 * therefore waits for the answer (messages of the same batch are skipped
 * along with it).
 */
static bool skippable_put(const timeline *t, const tl_change *c)
{
	return c->op == TL_PUT && c->entry != 0 && c->entry < t->last_sync_seq;
}

static tl_name_state state_of(const timeline *t, const tl_change *c, stmt_info **si)
{
	*si = NULL;
	if (c->doubtful || (t && skippable_put(t, c)))
		return TL_NAME_DOUBTFUL;
	if (c->op != TL_PUT)
		return TL_NAME_NONE;
	*si = c->si;
	return TL_NAME_KNOWN;
}

tl_name_state tl_lookup_with(timeline *t, const struct tl_changes *local, tl_ns ns, const char *name, stmt_info **si)
{
	const tl_change *c = local ? newest_change(local, ns, name) : NULL;

	if (c)
		return state_of(NULL, c, si); /* an earlier statement of the same Query: no batch between */
	if ((c = newest_change(&t->changes, ns, name)) != NULL)
		return state_of(t, c, si);
	*si = ns == TL_NS_STMT ? stmt_table_get(&t->confirmed, name) : portal_table_get(&t->confirmed, name);
	return *si ? TL_NAME_KNOWN : TL_NAME_NONE;
}

tl_name_state tl_lookup(timeline *t, tl_ns ns, const char *name, stmt_info **si)
{
	return tl_lookup_with(t, NULL, ns, name, si);
}

bool tl_doubt_awaits_server(timeline *t, const struct tl_changes *local, tl_ns ns, const char *name)
{
	const tl_change *c;
	uint32_t i;

	if (local && newest_change(local, ns, name))
		return false;
	c = newest_change(&t->changes, ns, name);
	/* a pending deletion is doubtful too: an earlier error in its batch makes the server skip it */
	if (!c || !(c->doubtful || c->op != TL_PUT || skippable_put(t, c)) || c->entry == 0)
		return false;
	/*
	 * An extended-protocol poison's change (a denied Parse of the unnamed
	 * statement) with no Sync after it: the poison fails or is skipped, so the server skips
	 * whatever comes next to the Sync, and there is nothing to wait for.
	 */
	for (i = t->count; i-- > 0;) {
		const tl_entry *e = tl_at(t, i);

		if (e->kind == TL_SYNC)
			return true;
		if (e->seq == c->entry) /* a denied Query runs the statements before its poison: no skip */
			return e->action != TL_DENY || e->kind == TL_QUERY;
	}
	return true;
}

const uint8_t *tl_portal_params(timeline *t, const char *name, size_t *len)
{
	const tl_change *c = newest_change(&t->changes, TL_NS_PORTAL, name);

	if (c) {
		*len = c->op == TL_PUT ? c->params_len : 0;
		return c->op == TL_PUT ? c->params : NULL;
	}
	return portal_table_params(&t->confirmed, name, len);
}

void tl_transaction_ended(timeline *t)
{
	portal_table_end_transaction(&t->confirmed);
}

/* ---- entries ------------------------------------------------------------------------------- */

static bool grow(timeline *t)
{
	uint32_t ncap = t->cap ? t->cap * 2 : 16, i;
	tl_entry *nv = malloc(sizeof(tl_entry) * ncap);

	if (!nv)
		return false;
	for (i = 0; i < t->count; i++) {
		nv[i] = t->v[(t->head + i) & (t->cap - 1)];
		/* refs may point at the entry's own inline storage, which moved */
		if (nv[i].n_refs <= TL_INLINE_REFS && nv[i].refs)
			nv[i].refs = nv[i].inline_refs;
	}
	free(t->v);
	t->v = nv;
	t->cap = ncap;
	t->head = 0;
	return true;
}

tl_entry *tl_push(timeline *t, tl_kind kind, tl_action action)
{
	tl_entry *e;

	if (t->count == t->cap && !grow(t))
		return NULL;
	e = &t->v[(t->head + t->count) & (t->cap - 1)];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->action = action;
	e->seq = t->next_seq++;
	e->deny_at = TL_NO_DENIAL;
	clock_gettime(CLOCK_MONOTONIC, &e->start);
	if (kind == TL_SYNC)
		t->last_sync_seq = e->seq;
	t->count++;
	return e;
}

tl_entry *tl_head(timeline *t)
{
	return t->count ? &t->v[t->head] : NULL;
}

tl_entry *tl_at(timeline *t, uint32_t i)
{
	return i < t->count ? &t->v[(t->head + i) & (t->cap - 1)] : NULL;
}

/* Remove the head without settling its changes (the caller did). */
static void pop(timeline *t)
{
	entry_release(&t->v[t->head]);
	t->head = (t->head + 1) & (t->cap - 1);
	t->count--;
}

void tl_complete_head(timeline *t)
{
	tl_entry *h = tl_head(t);

	if (!h)
		return;
	settle(t, h, 0, UINT32_MAX, h->failed ? SETTLE_REFUSE : SETTLE_CONFIRM);
	pop(t);
}

bool tl_set_refs(tl_entry *e, const uint64_t *refs, uint32_t n)
{
	if (n <= TL_INLINE_REFS) {
		e->refs = e->inline_refs;
	} else if (!(e->refs = malloc(sizeof(uint64_t) * n))) {
		return false;
	}
	memcpy(e->refs, refs, sizeof(uint64_t) * n);
	e->n_refs = n;
	e->next_ref = 0;
	return true;
}

uint64_t tl_peek_ref(const tl_entry *e)
{
	return e->next_ref < e->n_refs ? e->refs[e->next_ref] : 0;
}

uint64_t tl_take_ref(tl_entry *e)
{
	if (e->next_ref >= e->n_refs)
		return 0;
	return e->refs[e->next_ref++];
}

uint32_t tl_until_sync(const timeline *t)
{
	uint32_t n = 0;

	while (n < t->count && t->v[(t->head + n) & (t->cap - 1)].kind != TL_SYNC)
		n++;
	return n;
}

/* Drop every pending change of entry 'seq' wherever it is (a skipped entry's). */
static void drop_changes_of(timeline *t, uint64_t seq)
{
	tl_change *c, *next;

	for (c = TAILQ_FIRST(&t->changes); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->entry == seq) {
			TAILQ_REMOVE(&t->changes, c, link);
			change_free(c);
		}
	}
}

void tl_remove_at(timeline *t, uint32_t i)
{
	uint32_t k;

	if (i == 0 || i >= t->count)
		return;
	drop_changes_of(t, tl_at(t, i)->seq);
	entry_release(tl_at(t, i));
	/* close the gap: move the newer entries one slot back (fixing inline refs pointers) */
	for (k = i; k + 1 < t->count; k++) {
		tl_entry *dst = tl_at(t, k);
		*dst = *tl_at(t, k + 1);
		if (dst->refs && dst->n_refs <= TL_INLINE_REFS)
			dst->refs = dst->inline_refs;
	}
	t->count--;
}

unsigned tl_error_skip(timeline *t)
{
	uint32_t n = tl_until_sync(t), i;
	unsigned own = 0;

	/* PostgreSQL ignores every message until Sync, a simple Query too (postgres.c, ignore_till_sync). */
	for (i = 0; i < n; i++) {
		tl_entry *h = tl_head(t);

		if (h->action == TL_SWALLOW)
			own++;
		settle(t, h, 0, UINT32_MAX, i == 0 ? SETTLE_REFUSE : SETTLE_SKIP);
		pop(t);
	}
	if (!t->count)
		tl_set_mode(t, TL_MODE_SKIP);
	return own;
}

void tl_free(timeline *t)
{
	while (t->count)
		pop(t);
	free(t->v);
	tl_changes_free(&t->changes);
	stmt_table_free(&t->confirmed);
	t->v = NULL;
	t->cap = 0;
}
