/*
 * audit_events.h - the process's own audit records (CONTRACT §5): start,
 * reload (accepted or rejected) and stop with the config's hash and every
 * window in force, window_open / window_close when a window's state changes
 * (an event-loop timer set to the next transition), and signed checkpoint
 * records (periodically while records are written, at reload and at stop)
 * when audit_checkpoint_key is set. No-ops when the audit log is off.
 */
#ifndef PGW_AUDIT_EVENTS_H
#define PGW_AUDIT_EVENTS_H

#include <stdbool.h>

#include "conf/config.h"

struct pgw_server;

/* After the log is open: load the key, write `start` (and a checkpoint), start the timers. 0 or -1 (logged). */
int audit_events_start(struct pgw_server *srv);

/*
 * After a SIGHUP's reload attempt and the log's reopen: a checkpoint (the
 * first record of a rotated file), the `reload` record, then the window
 * changes the new config brings. 'errs' holds a rejected config's errors
 * (accepted: false); srv->cfg is the config now in force either way.
 */
void audit_events_reload(struct pgw_server *srv, bool accepted, const pgw_errors *errs);

/* At the end: `stop`, a last checkpoint, and flush. Stops the timers. */
void audit_events_stop(struct pgw_server *srv);

/* Free the timers and state (safe if never started). */
void audit_events_free(struct pgw_server *srv);

/*
 * The JSON array of the windows in 'c' for start/reload records: name,
 * target, start/end (one-off) or weekly and timezone, approved_by, reason,
 * actors. malloc'd, NULL on no memory. Exposed for unit tests.
 */
char *audit_windows_json(const pgw_config *c);

#endif
