/*
 * stmt_table.h - the prepared statements and portals a session's client has
 * created, by name, so an Execute is audited with its statement's text and
 * judged by its statement's facts (Parse, SQL PREPARE and Bind all feed it).
 */
#ifndef PGW_STMT_TABLE_H
#define PGW_STMT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct policy_facts;
struct stmt_entry;

/* A statement's text and what the classifier found; shared by statements and portals. */
typedef struct stmt_info {
	int refcount;
	char *text;                        /* statement text, NUL-terminated */
	size_t len;
	const struct policy_facts *facts;  /* NULL while no classifier is wired in */
} stmt_info;

typedef struct stmt_table {
	struct stmt_entry *stmts;          /* prepared statements (protocol and SQL share one namespace) */
	struct stmt_entry *portals;        /* portals created by Bind */
} stmt_table;

/*
 * A change to the statement names, kept until the server's answer confirms
 * it: a Parse or PREPARE the server refuses (a name already in use, an
 * aborted transaction), or one it skips after an earlier error, must not
 * change what pgwarden thinks a name runs.
 */
typedef struct stmt_undo {
	struct stmt_undo *next;   /* the change made before this one */
	char *name;               /* the statement name changed */
	stmt_info *prev;          /* what it meant before (a reference), NULL if it did not exist */
	uint32_t index;           /* in a Query: which statement's result confirms it; else 0 */
	bool portal;              /* a portal name (Bind), not a statement name */
} stmt_undo;

void stmt_table_init(stmt_table *t);
void stmt_table_free(stmt_table *t);

/* New info with refcount 1 (copies text); NULL on out of memory. facts ref is taken over. */
stmt_info *stmt_info_new(const char *text, size_t len, const struct policy_facts *facts);
void stmt_info_ref(stmt_info *si);
void stmt_info_unref(stmt_info *si);

/* Name a statement (replacing any old one of that name); takes a new reference. */
bool stmt_table_put(stmt_table *t, const char *name, stmt_info *si);
stmt_info *stmt_table_get(stmt_table *t, const char *name);
void stmt_table_del(stmt_table *t, const char *name);
void stmt_table_clear_stmts(stmt_table *t);

/* Name a portal; 'params' (may be NULL) is a copy of the Bind's parameter section, kept for the audit. */
/* The same changes, recording how to undo them (newest first) in *log. false on out of memory. */
bool stmt_table_put_undoable(stmt_table *t, const char *name, stmt_info *si, stmt_undo **log, uint32_t index);
bool stmt_table_del_undoable(stmt_table *t, const char *name, stmt_undo **log, uint32_t index);
bool stmt_table_clear_undoable(stmt_table *t, stmt_undo **log, uint32_t index);
/* A Bind the server may refuse (a named portal in use) or skip: kept only when answered BindComplete. */
bool portal_table_put_undoable(stmt_table *t, const char *name, stmt_info *si, const uint8_t *params,
			       size_t params_len, stmt_undo **log);
/* The server refused or skipped the changes with index >= from: restore what the names meant, newest first. */
void stmt_undo_revert(stmt_table *t, stmt_undo **log, uint32_t from);
/* The server confirmed the changes with this index: forget how to undo them. */
void stmt_undo_confirm(stmt_undo **log, uint32_t index);
/* Forget every undo record (all confirmed). */
void stmt_undo_free(stmt_undo **log);

bool portal_table_put(stmt_table *t, const char *name, stmt_info *si, const uint8_t *params, size_t params_len);
stmt_info *portal_table_get(stmt_table *t, const char *name);
/* The Bind parameter section stored with a portal (NULL if none). */
const uint8_t *portal_table_params(stmt_table *t, const char *name, size_t *len);
void portal_table_del(stmt_table *t, const char *name);
void portal_table_clear(stmt_table *t);

#endif
