/* pool_settings.c - transaction pooling: a client's own settings, read back from the server, as a replay statement. */
#include "proxy/pool_settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/pktread.h"
#include "proxy/pin.h"

/*
 * Why read them back instead of parsing SET values: set_config() with bind
 * parameters, RESET of one name, SET inside a block that commits or rolls
 * back: the server's own state after the transaction is the exact answer.
 * current_setting() gives each value as SHOW does, with its unit, which
 * set_config() takes back unchanged.
 *
 * Why every operator is OPERATOR(pg_catalog.x): the query runs on the
 * client's backend under the client's search_path, and an unqualified '='
 * or '<>' resolves to an operator of the first schema on it that has one
 * (pg_catalog is searched first only when the path does not name it). A
 * client's own operator would run its function inside pgwarden's query,
 * never judged nor audited, and could let any row through (role,
 * session_authorization, superuser-only settings, the walls' signatures).
 */
const char pool_settings_query[] =
	"SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings "
	"WHERE source OPERATOR(pg_catalog.=) 'session' AND NOT name OPERATOR(pg_catalog.~~) 'pgwarden.%' "
	"AND NOT name OPERATOR(pg_catalog.=) ANY ('{role,session_authorization,default_transaction_read_only,"
	"transaction_read_only,transaction_isolation,transaction_deferrable}'::pg_catalog.text[])";

/* Names never replayed, whatever the server sent: identity, read-only and transaction state, the walls'. */
static bool never_replayed(const char *name)
{
	static const char *const deny[] = { "role",
					    "session_authorization",
					    "default_transaction_read_only",
					    "transaction_read_only",
					    "transaction_isolation",
					    "transaction_deferrable" };

	if (strncasecmp(name, "pgwarden.", 9) == 0)
		return true;
	for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++)
		if (strcasecmp(name, deny[i]) == 0)
			return true;
	return false;
}

static bool reserve(pool_settings_buf *b, size_t more)
{
	char *n;
	size_t cap;

	if (b->len + more <= b->cap)
		return true;
	cap = (b->len + more) * 2 + 256;
	if (!(n = realloc(b->sql, cap))) {
		b->failed = true;
		return false;
	}
	b->sql = n;
	b->cap = cap;
	return true;
}

/* One text column of a DataRow as a NUL-terminated copy, or NULL (NULL value, malformed, no memory). */
static char *column(pktread *r)
{
	int32_t n;
	const uint8_t *p;
	char *v;

	if (!rd_i32(r, &n) || n < 0 || !rd_bytes(r, (size_t)n, &p) || memchr(p, '\0', (size_t)n))
		return NULL;
	if ((v = malloc((size_t)n + 1)) != NULL) {
		memcpy(v, p, (size_t)n);
		v[n] = '\0';
	}
	return v;
}

void pool_settings_add_row(pool_settings_buf *b, const uint8_t *body, uint32_t len)
{
	pktread r;
	uint16_t ncols;
	char *name = NULL, *value = NULL;
	int off;

	pktread_init(&r, body, len);
	if (!rd_u16(&r, &ncols) || ncols != 2 || !(name = column(&r)) || !(value = column(&r)) || !pktread_done(&r) ||
	    !reserve(b, 2 * (strlen(name) + strlen(value)) + 64)) {
		b->failed = true;
		goto out;
	}
	/* Default deny: the query excludes these; a row naming one means the answer is not ours. */
	if (never_replayed(name)) {
		b->failed = true;
		goto out;
	}
	b->len += (size_t)sprintf(b->sql + b->len, "%spg_catalog.set_config(", b->n ? ", " : "SELECT ");
	off = sql_quote_literal(b->sql, b->cap, b->len, name);
	if (off >= 0 && (size_t)off + 2 < b->cap) {
		memcpy(b->sql + off, ", ", 3);
		off = sql_quote_literal(b->sql, b->cap, (size_t)off + 2, value);
	}
	if (off < 0 || (size_t)off + 9 > b->cap) {
		b->failed = true;
		goto out;
	}
	memcpy(b->sql + off, ", false)", 9);
	b->len = (size_t)off + 8;
	b->n++;
out:
	free(name);
	free(value);
}

char *pool_settings_finish(pool_settings_buf *b)
{
	char *sql = b->failed ? NULL : b->n ? b->sql : strdup("");

	if (sql != b->sql)
		free(b->sql);
	memset(b, 0, sizeof(*b));
	return sql;
}
