/*
 * pin.h - the SQL that pins a session's identity upstream: SET ROLE, the
 * actor/tenant/claims settings, and production's read-only default.
 * Values are quoted here so an actor id or tenant with quotes cannot inject.
 */
#ifndef PGW_PIN_H
#define PGW_PIN_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "conf/config.h"
#include "protocol/startup.h"

/*
 * Build the pinning statements as one simple-Query string (malloc'd), e.g.
 *   SET ROLE "bookkeeper"; SET "app.actor_id" TO E'user:jimmie'; SET "app.tenant_id" TO E'acme';
 *   SET default_transaction_read_only TO on
 * Every statement is a SET, so each answers with exactly one CommandComplete
 * and no rows: the relay can splice them into a client's Query and swallow
 * their results. Returns NULL on out of memory.
 */
char *pin_sql_build(const pgw_config *cfg, const pgw_token *who, bool read_only);

/*
 * The same pinning as ONE statement, for the extended protocol (a Parse
 * holds one statement): SELECT pg_catalog.set_config('role', ...), ... .
 * set_config('role') is what SET ROLE does. Returns NULL on out of memory.
 */
char *pin_sql_build_single(const pgw_config *cfg, const pgw_token *who, bool read_only);

/*
 * The client's allowlisted startup settings (and the -c settings of its
 * "options") as one statement, SELECT pg_catalog.set_config(..., false), ...
 * ("" when there are none). set_config, not SET: a value is taken as
 * written, like a startup option (SET search_path TO 'a,b' would make one
 * quoted schema name of it).
 * A pooled connection outlives its client, so these are applied on every
 * borrow and after the client's own RESET ALL, never as startup options.
 * Returns NULL on out of memory.
 */
char *pin_settings_build(const startup_params *p);

/* What a pin for a walled target (walls = required, deploy/walls.sql) signs besides the identity. */
typedef struct pin_wall {
	const pgw_target *target; /* the session's target: its wall key signs; unsigned unless walls = required */
	uint32_t backend_pid; /* the upstream backend the pin is for (PQbackendPID): the signature holds only there */
	time_t write_from;    /* the write grant's window [write_from, write_until) (wall_write_window) */
	time_t write_until;   /* > 0: pin a write grant for that window; 0: none (pgwarden.write = '') */
} pin_wall;

/*
 * pin_sql_build() / pin_sql_build_single() plus, for a walled target, the
 * signature (SET pgwarden.pin) and the write grant or '' (SET pgwarden.write):
 * two more statements, or two more set_config() columns. w NULL, or a target
 * without walls: the same text as the unwalled builders. Every re-pin of a
 * walled session must use these (RESET ALL clears both settings), with the
 * same backend_pid and the window from wall_write_window() at that time.
 */
char *pin_sql_build_walled(const pgw_config *cfg, const pgw_token *who, bool read_only, const pin_wall *w);
char *pin_sql_build_single_walled(const pgw_config *cfg, const pgw_token *who, bool read_only, const pin_wall *w);
/* How many statements pin_sql_build_walled() produces. */
unsigned pin_sql_statements_walled(const pgw_config *cfg, const pin_wall *w);

/* How many statements pin_sql_build() produces for this config. */
unsigned pin_sql_statements(const pgw_config *cfg);

/* SQL that only switches default_transaction_read_only. Static string. */
const char *pin_sql_read_only(bool on);

/* Append 's' as an E'' literal (quotes and backslashes doubled) to buf; returns new length or -1. */
int sql_quote_literal(char *buf, size_t bufsz, size_t off, const char *s);
/* Append 's' as a quoted identifier (double quotes doubled). */
int sql_quote_ident(char *buf, size_t bufsz, size_t off, const char *s);

#endif
