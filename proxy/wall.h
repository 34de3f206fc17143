/*
 * wall.h - what pgwarden gives the database walls (deploy/walls.sql): the
 * HMAC-SHA256 signatures it pins, and the check that a target's walls are there
 * and hold the same key.
 *
 * The identity signature (setting pgwarden.pin) covers the backend pid, the
 * role, the actor and the tenant; the write grant (pgwarden.write) covers the
 * backend pid, role, actor and an expiry. The database recomputes both from
 * its own view of the session (pg_backend_pid(), current_setting('role'), the
 * settings), so a client that changes any of them loses its tenant and its
 * write grant, whether or not pgwarden's classifier saw the change.
 */
#ifndef PGW_WALL_H
#define PGW_WALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "conf/config.h"

#define WALL_SIG_HEX 65                     /* 64 hex digits and a NUL */
#define WALL_WRITE_MAX 96                   /* "<unix seconds>:<unix seconds>:<64 hex>" and a NUL */
#define WALL_GRANT_AHEAD (8 * 86400)        /* a window opening within this is granted ahead (weekly windows) */
#define WALL_PIN_SETTING "pgwarden.pin"     /* the identity signature's setting */
#define WALL_WRITE_SETTING "pgwarden.write" /* the write grant's setting */

/* The query a walled session's pin ends with: one row, 'ok' when the database verified the pin. */
#define WALL_CHECK_SQL "SELECT pgwarden_wall.pin_status()"

/* Whether pins to this target are signed and checked. */
bool wall_required(const pgw_target *t);

/* The identity signature for pgwarden.pin, in hex. False only when signing failed (out of memory). */
bool wall_sign_pin(const pgw_target *t, uint32_t backend_pid, const char *role, const char *actor, const char *tenant,
		   char out[WALL_SIG_HEX]);

/*
 * The write grant for pgwarden.write: "<from>:<until>:<hex signature>", valid
 * in the database from 'from' (inclusive) to 'until' (exclusive), UTC seconds.
 * False when signing failed.
 */
bool wall_sign_write(const pgw_target *t, uint32_t backend_pid, const char *role, const char *actor, time_t from,
		     time_t until, char out[WALL_WRITE_MAX]);

/*
 * The write grant a pin made at 'now' carries: the window open for this
 * target and actor now, or else the next one opening within WALL_GRANT_AHEAD,
 * as [*from, *until). Why ahead: a session pinned before its window opens
 * (pooled connections live for days) must be able to write in it without a
 * re-pin, and the database checks the time itself, so the grant is worth
 * nothing outside the window. False (and 0, 0) when there is none, and for
 * non-production targets, whose walls have no write guard.
 */
bool wall_write_window(const pgw_config *cfg, const pgw_target *t, const char *actor, time_t now, time_t *from,
		       time_t *until);

/* The first 8 hex digits of SHA-256(key): names a key in logs without showing it (walls.sql prints the same). */
void wall_key_id(const pgw_target *t, char out[9]);

#endif
