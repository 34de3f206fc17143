/* wall_check.h - checking at start and after reload that each walled target's database has its walls and our key. */
#ifndef PGW_WALL_CHECK_H
#define PGW_WALL_CHECK_H

#include "conf/config.h"

/*
 * Check every target with walls = required over a connection of its own
 * (blocking): the walls are installed and verify a pin signed with our key.
 * Logs one line per target (error when it fails); returns the number of
 * failed targets. Sessions check again on their own connection, so a failed
 * target is refused session by session even if the database comes back.
 */
int wall_check_targets(const pgw_config *cfg);

/*
 * The same on a thread (after a reload, so the event loop does not wait);
 * holds a config ref. Skipped, with a log line, while the previous one runs.
 */
void wall_check_targets_async(pgw_config *cfg);

/* At stop: wait for a running check (each connect is bounded by a timeout). */
void wall_check_wait(void);

#endif
