/* stmt_table.c - name -> statement maps, with uthash (Debian uthash-dev, header-only). */
#include "proxy/stmt_table.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "policy/policy.h"

typedef struct stmt_entry {
	char *name;         /* key */
	stmt_info *si;      /* one reference */
	uint8_t *params;    /* portals, audit_params = yes: the Bind's parameter section */
	size_t params_len;
	UT_hash_handle hh;
} stmt_entry;

void stmt_table_init(stmt_table *t)
{
	t->stmts = NULL;
	t->portals = NULL;
}

stmt_info *stmt_info_new(const char *text, size_t len, const struct policy_facts *facts)
{
	stmt_info *si = calloc(1, sizeof(*si));

	if (!si)
		return NULL;
	si->text = malloc(len + 1);
	if (!si->text) {
		free(si);
		return NULL;
	}
	memcpy(si->text, text, len);
	si->text[len] = '\0';
	si->len = len;
	si->facts = facts;
	si->refcount = 1;
	return si;
}

void stmt_info_ref(stmt_info *si)
{
	si->refcount++;
}

void stmt_info_unref(stmt_info *si)
{
	if (!si || --si->refcount > 0)
		return;
	if (si->facts)
		policy_facts_unref(si->facts);
	free(si->text);
	free(si);
}

static void entry_free(stmt_entry **head, stmt_entry *e)
{
	HASH_DEL(*head, e);
	stmt_info_unref(e->si);
	free(e->params);
	free(e->name);
	free(e);
}

static stmt_entry *map_put(stmt_entry **head, const char *name, stmt_info *si)
{
	stmt_entry *e;

	HASH_FIND_STR(*head, name, e);
	if (e) {
		/* Rebinding a name (the unnamed portal on every Bind): reuse the entry, no allocation. */
		stmt_info_ref(si);
		stmt_info_unref(e->si);
		e->si = si;
		free(e->params);
		e->params = NULL;
		e->params_len = 0;
		return e;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->name = strdup(name);
	if (!e->name) {
		free(e);
		return NULL;
	}
	stmt_info_ref(si);
	e->si = si;
	HASH_ADD_KEYPTR(hh, *head, e->name, strlen(e->name), e);
	return e;
}

static stmt_info *map_get(stmt_entry *head, const char *name)
{
	stmt_entry *e;

	HASH_FIND_STR(head, name, e);
	return e ? e->si : NULL;
}

static void map_del(stmt_entry **head, const char *name)
{
	stmt_entry *e;

	HASH_FIND_STR(*head, name, e);
	if (e)
		entry_free(head, e);
}

static void map_clear(stmt_entry **head)
{
	stmt_entry *e, *tmp;

	HASH_ITER(hh, *head, e, tmp)
		entry_free(head, e);
}

bool stmt_table_put(stmt_table *t, const char *name, stmt_info *si) { return map_put(&t->stmts, name, si) != NULL; }
stmt_info *stmt_table_get(stmt_table *t, const char *name) { return map_get(t->stmts, name); }
void stmt_table_del(stmt_table *t, const char *name) { map_del(&t->stmts, name); }
void stmt_table_clear_stmts(stmt_table *t) { map_clear(&t->stmts); }
bool portal_table_put(stmt_table *t, const char *name, stmt_info *si, const uint8_t *params, size_t params_len)
{
	stmt_entry *e = map_put(&t->portals, name, si);

	if (!e)
		return false;
	if (params) {
		e->params = malloc(params_len ? params_len : 1);
		if (!e->params)
			return false;
		memcpy(e->params, params, params_len);
		e->params_len = params_len;
	}
	return true;
}

const uint8_t *portal_table_params(stmt_table *t, const char *name, size_t *len)
{
	stmt_entry *e;

	HASH_FIND_STR(t->portals, name, e);
	*len = e ? e->params_len : 0;
	return e ? e->params : NULL;
}
stmt_info *portal_table_get(stmt_table *t, const char *name) { return map_get(t->portals, name); }
void portal_table_del(stmt_table *t, const char *name) { map_del(&t->portals, name); }
void portal_table_clear(stmt_table *t) { map_clear(&t->portals); }

void stmt_table_free(stmt_table *t)
{
	map_clear(&t->stmts);
	map_clear(&t->portals);
}

/* ---- undo log ---------------------------------------------------------------------------- */

static bool undo_push_kind(stmt_table *t, const char *name, stmt_undo **log, uint32_t index, bool portal)
{
	stmt_undo *u = calloc(1, sizeof(*u));
	stmt_info *prev = map_get(portal ? t->portals : t->stmts, name);

	if (!u || !(u->name = strdup(name))) {
		free(u);
		return false;
	}
	if (prev)
		stmt_info_ref(prev);
	u->prev = prev;
	u->index = index;
	u->portal = portal;
	u->next = *log;
	*log = u;
	return true;
}

static bool undo_push(stmt_table *t, const char *name, stmt_undo **log, uint32_t index)
{
	return undo_push_kind(t, name, log, index, false);
}

bool portal_table_put_undoable(stmt_table *t, const char *name, stmt_info *si, const uint8_t *params,
			       size_t params_len, stmt_undo **log)
{
	return undo_push_kind(t, name, log, 0, true) && portal_table_put(t, name, si, params, params_len);
}

static void undo_release(stmt_undo *u)
{
	stmt_info_unref(u->prev);
	free(u->name);
	free(u);
}

bool stmt_table_put_undoable(stmt_table *t, const char *name, stmt_info *si, stmt_undo **log, uint32_t index)
{
	return undo_push(t, name, log, index) && stmt_table_put(t, name, si);
}

bool stmt_table_del_undoable(stmt_table *t, const char *name, stmt_undo **log, uint32_t index)
{
	if (!undo_push(t, name, log, index))
		return false;
	stmt_table_del(t, name);
	return true;
}

bool stmt_table_clear_undoable(stmt_table *t, stmt_undo **log, uint32_t index)
{
	stmt_entry *e, *tmp;

	HASH_ITER(hh, t->stmts, e, tmp)
		if (!undo_push(t, e->name, log, index))
			return false;
	stmt_table_clear_stmts(t);
	return true;
}

void stmt_undo_revert(stmt_table *t, stmt_undo **log, uint32_t from)
{
	stmt_undo **pp = log, *u;

	/* The log is newest first, so restoring in list order undoes the newest change first. */
	while ((u = *pp) != NULL) {
		if (u->index < from) {
			pp = &u->next;
			continue;
		}
		*pp = u->next;
		if (u->portal) {
			/* the portal's Bind parameters are not kept for an undone portal: the audit omits them */
			if (u->prev)
				portal_table_put(t, u->name, u->prev, NULL, 0);
			else
				portal_table_del(t, u->name);
		} else if (u->prev)
			stmt_table_put(t, u->name, u->prev);
		else
			stmt_table_del(t, u->name);
		undo_release(u);
	}
}

void stmt_undo_confirm(stmt_undo **log, uint32_t index)
{
	stmt_undo **pp = log, *u;

	while ((u = *pp) != NULL) {
		if (u->index != index) {
			pp = &u->next;
			continue;
		}
		*pp = u->next;
		undo_release(u);
	}
}

void stmt_undo_free(stmt_undo **log)
{
	stmt_undo *u;

	while ((u = *log) != NULL) {
		*log = u->next;
		undo_release(u);
	}
}
