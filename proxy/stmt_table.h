/*
 * stmt_table.h - the prepared statements and portals the server has
 * confirmed, by name, so an Execute is audited with its statement's text and
 * judged by its statement's facts. Pending changes live in the timeline
 * (proxy/pipeline.h), which is the only writer of these tables.
 */
#ifndef PGW_STMT_TABLE_H
#define PGW_STMT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct policy_facts;
struct stmt_entry;

/*
 * Why: the server keys prepared statements and portals by their first
 * NAMEDATALEN-1 = 63 bytes (dynahash HASH_STRINGS with keysize NAMEDATALEN:
 * string_hash and string_compare stop there), whatever the protocol sent; two
 * names that differ only after byte 63 are ONE name upstream. Every name
 * pgwarden keeps or looks up is cut the same way (SQL names arrive already
 * cut by the parser, at a character boundary, which is never longer).
 */
#define STMT_NAME_MAX 63

/* The length of a name's server key: its first STMT_NAME_MAX bytes. */
static inline size_t stmt_name_len(const char *name)
{
	return strnlen(name, STMT_NAME_MAX);
}

/* Whether two names are one name on the server. */
static inline bool stmt_name_eq(const char *a, const char *b)
{
	return strncmp(a, b, STMT_NAME_MAX) == 0;
}

/* A statement's text and what the classifier found; shared by statements and portals. */
typedef struct stmt_info {
	int refcount;
	char *text; /* statement text, NUL-terminated */
	size_t len;
	const struct policy_facts *facts; /* NULL while no classifier is wired in */
	bool cursor;                      /* a cursor's query (from DECLARE): executing its portal fetches rows,
	                                      it does not declare the cursor again */
} stmt_info;

typedef struct stmt_table {
	struct stmt_entry *stmts;   /* prepared statements (protocol and SQL share one namespace) */
	struct stmt_entry *portals; /* portals: Bind and SQL DECLARE share one namespace upstream */
} stmt_table;

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
/* DEALLOCATE ALL, DISCARD ALL: every named statement; the unnamed one stays (the server keeps it
 * apart from the named ones: postgres.c, unnamed_stmt_psrc; prepare.c, DropAllPreparedStatements). */
void stmt_table_clear_stmts(stmt_table *t);

/* Name a portal; 'params' (may be NULL) is a copy of the Bind's parameter section, kept for the audit;
 * 'holdable': a WITH HOLD cursor, which outlives its transaction. */
bool portal_table_put(stmt_table *t, const char *name, stmt_info *si, const uint8_t *params, size_t params_len,
		      bool holdable);
stmt_info *portal_table_get(stmt_table *t, const char *name);
/* The Bind parameter section stored with a portal (NULL if none). */
const uint8_t *portal_table_params(stmt_table *t, const char *name, size_t *len);
void portal_table_del(stmt_table *t, const char *name);
void portal_table_clear(stmt_table *t);
/* The transaction ended: every portal but WITH HOLD cursors is gone (as on the server). */
void portal_table_end_transaction(stmt_table *t);
/* Transaction pooling: how many named prepared statements and portals the server holds for this client. */
void stmt_table_counts(const stmt_table *t, unsigned *named_stmts, unsigned *portals);

#endif
