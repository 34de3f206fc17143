/*
 * console.h - the operator console on the admin HTTP listener (JSON), what
 * `pgwarden admin` talks to: sessions (list, kill), PAUSE/RESUME of a target,
 * stats and pools. Windows stay on /windows (admin.c).
 *
 * PAUSE: a paused target's sessions are not read from while they are between
 * transactions, so new statements wait; a transaction under way finishes.
 * RESUME wakes them. The pause is a per-target flag in server state, checked
 * by console_hold() on the client read path (client.c); the relay's own wake
 * paths (backpressure, catalog, off-loop parse) should also ask
 * console_should_hold() in relay_client_readable().
 *
 * Protection: every POST and GET /sessions (which shows statement text) need
 * `Authorization: Bearer <admin_token>` when admin_token is set. Without
 * admin_token, POSTs are refused (403) and /sessions is served to loopback
 * peers only.
 */
#ifndef PGW_CONSOLE_H
#define PGW_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct pgw_server;
struct session;
struct evhttp;

/* Longest statement prefix kept per session for GET /sessions. */
#define CONSOLE_SQL_MAX 255

/* Per-session console state (a field of session). */
typedef struct session_console {
	time_t accepted; /* wall-clock time the connection was accepted */
	char *last_sql;  /* prefix of the last statement sent (malloc'd once, CONSOLE_SQL_MAX + 1) */
	bool paused;     /* held by PAUSE: client reading stopped until RESUME */
} session_console;

/* Server-wide console state. */
typedef struct console_state {
	char **paused; /* names of paused targets (kept across reloads) */
	size_t n_paused;
} console_state;

/* Register /sessions, /targets/NAME/pause|resume, /stats, /pools on the admin server. */
void console_register(struct pgw_server *srv, struct evhttp *http);
void console_free(struct pgw_server *srv);

/* Session accepted / freed. */
void console_on_accept(struct session *s);
void console_on_free(struct session *s);
/* A statement is about to be sent upstream (one-line hook where statements are audited). */
void console_note_statement(struct session *s, const char *sql, size_t len);

/*
 * Whether the session must not be read now because of a PAUSE: its target
 * is paused and it is between transactions (or already held). Meant for
 * relay_client_readable(), the relay's one answer to "should the client be
 * read now".
 */
bool console_should_hold(const struct session *s);

/*
 * Client read path: when console_should_hold(), mark the session held and
 * stop reading it until RESUME; returns whether it did.
 */
bool console_hold(struct session *s);

#endif
