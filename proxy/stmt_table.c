/* stmt_table.c - name -> statement maps, with uthash (Debian uthash-dev, header-only). */
#include "proxy/stmt_table.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "policy/policy.h"

typedef struct stmt_entry {
	char *name;        /* key: the name's first STMT_NAME_MAX bytes, as the server keys it */
	stmt_info *si;     /* one reference */
	uint8_t *params;   /* portals, audit_params = yes: the Bind's parameter section */
	size_t params_len; /* length of params */
	bool holdable;     /* portals: a WITH HOLD cursor, kept at transaction end */
	UT_hash_handle hh; /* uthash linkage */
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

	HASH_FIND(hh, *head, name, stmt_name_len(name), e);
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
	e->name = strndup(name, STMT_NAME_MAX); /* the server's key */
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

	HASH_FIND(hh, head, name, stmt_name_len(name), e);
	return e ? e->si : NULL;
}

static void map_del(stmt_entry **head, const char *name)
{
	stmt_entry *e;

	HASH_FIND(hh, *head, name, stmt_name_len(name), e);
	if (e)
		entry_free(head, e);
}

static void map_clear(stmt_entry **head)
{
	stmt_entry *e, *tmp;

	HASH_ITER(hh, *head, e, tmp)
	entry_free(head, e);
}

bool stmt_table_put(stmt_table *t, const char *name, stmt_info *si)
{
	return map_put(&t->stmts, name, si) != NULL;
}
stmt_info *stmt_table_get(stmt_table *t, const char *name)
{
	return map_get(t->stmts, name);
}
void stmt_table_del(stmt_table *t, const char *name)
{
	map_del(&t->stmts, name);
}
void stmt_table_clear_stmts(stmt_table *t)
{
	stmt_entry *e, *tmp;

	HASH_ITER(hh, t->stmts, e, tmp)
	if (e->name[0] != '\0')
		entry_free(&t->stmts, e);
}
bool portal_table_put(stmt_table *t, const char *name, stmt_info *si, const uint8_t *params, size_t params_len,
		      bool holdable)
{
	stmt_entry *e = map_put(&t->portals, name, si);

	if (!e)
		return false;
	e->holdable = holdable;
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

	HASH_FIND(hh, t->portals, name, stmt_name_len(name), e);
	*len = e ? e->params_len : 0;
	return e ? e->params : NULL;
}
stmt_info *portal_table_get(stmt_table *t, const char *name)
{
	return map_get(t->portals, name);
}
void portal_table_del(stmt_table *t, const char *name)
{
	map_del(&t->portals, name);
}
void portal_table_clear(stmt_table *t)
{
	map_clear(&t->portals);
}

void portal_table_end_transaction(stmt_table *t)
{
	stmt_entry *e, *tmp;

	HASH_ITER(hh, t->portals, e, tmp)
	if (!e->holdable)
		entry_free(&t->portals, e);
}

void stmt_table_free(stmt_table *t)
{
	map_clear(&t->stmts);
	map_clear(&t->portals);
}

/* Named prepared statements (the unnamed one excluded) and portals that are confirmed now. */
void stmt_table_counts(const stmt_table *t, unsigned *named_stmts, unsigned *portals)
{
	const stmt_entry *e, *tmp;

	*named_stmts = *portals = 0;
	HASH_ITER(hh, t->stmts, e, tmp)
	*named_stmts += e->name[0] != '\0';
	*portals = HASH_COUNT(t->portals);
}
