/*
 * pool_settings.h - transaction pooling: a client's own settings (SET,
 * RESET, set_config(..., false)) read back from the server when its
 * transaction is over, and replayed when it borrows another connection.
 */
#ifndef PGW_POOL_SETTINGS_H
#define PGW_POOL_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What the server says this session set for itself (source 'session': SET,
 * set_config(..., false), and the startup settings pgwarden applied), less
 * what the pin owns (role, read-only default, pgwarden.*): name and value.
 */
extern const char pool_settings_query[];

/* The replay being built from the query's DataRows. */
typedef struct pool_settings_buf {
	char *sql;   /* "SELECT pg_catalog.set_config(E'name', E'value', false), ..." (malloc'd) */
	size_t len;  /* bytes used */
	size_t cap;  /* bytes allocated */
	unsigned n;  /* settings added */
	bool failed; /* out of memory, or a row that was not two text columns */
} pool_settings_buf;

/* Add one DataRow (its body) of pool_settings_query. */
void pool_settings_add_row(pool_settings_buf *b, const uint8_t *body, uint32_t len);

/* The replay SQL ("" when nothing was set; malloc'd), or NULL when building failed. Frees b's own memory. */
char *pool_settings_finish(pool_settings_buf *b);

#endif
