/*
 * upstream.h - the upstream side of a session: a libpq connection driven
 * without blocking by the event loop (PQconnectStartParams/PQconnectPoll),
 * identity pinned through libpq, then raw protocol relay on its socket.
 *
 * Phases: NONE -> CONNECTING -> PINNING -> READY -> CLOSED.
 */
#ifndef PGW_UPSTREAM_H
#define PGW_UPSTREAM_H

#include "proxy/pin.h"
#include "proxy/session.h"

/* The single writer of up.phase. */
void upstream_set_phase(session *s, upstream_phase phase);

/* Start connecting for an authenticated session; on success client_login_complete() follows. */
void upstream_start(session *s);

/* Stop all upstream callbacks (session failing); the connection is freed with the session. */
void upstream_stop(session *s);

/* Drop the upstream connection now (session ending); safe to call in any phase, twice. */
void upstream_close(session *s);

/*
 * What a re-pin of this session must sign for the database walls (walls =
 * required): its target, its backend, and a write grant for the window open
 * now or opening next (wall_write_window). Every re-pin
 * (after RESET ALL / DISCARD ALL, a splice, a pool borrow, a window opening)
 * should build its SQL with pin_sql_build_walled(cfg, who, read_only, &w):
 * RESET ALL clears pgwarden.pin, and an unsigned pin leaves the session with
 * no verified tenant (it sees no tenant rows) until the next signed one.
 */
pin_wall upstream_pin_wall(const session *s);

#endif
