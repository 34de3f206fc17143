/* cancel.h - CancelRequest: finding the session by our key and cancelling upstream off the loop. */
#ifndef PGW_CANCEL_H
#define PGW_CANCEL_H

#include <stdbool.h>
#include <stdint.h>

struct pgw_server;

/*
 * Cancel the upstream query of the session whose BackendKeyData is
 * (pid, key). A wrong key does nothing (and says nothing). libpq's
 * PQcancel blocks, so it runs on a short-lived thread.
 */
void cancel_request(struct pgw_server *srv, uint32_t pid, uint32_t key);

struct session;
/* Cancel whatever the session's upstream is running (the client vanished mid-query). */
void cancel_upstream(struct session *s);

/*
 * What cancelling an upstream query needs (libpq's PGcancel: address and
 * backend key), taken once at login so the session can drop its PGconn.
 * Shared by the session and the cancel threads in flight, so a session that
 * ends while its cancel is still being sent frees nothing under the thread.
 */
typedef struct cancel_handle cancel_handle;
struct pg_conn;
cancel_handle *cancel_handle_new(struct pg_conn *pg);
void cancel_handle_unref(cancel_handle *h);
/* Whether a cancel thread still holds the handle (its request may not have reached the server yet). */
bool cancel_handle_busy(cancel_handle *h);

#endif
