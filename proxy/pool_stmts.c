/* pool_stmts.c - transaction pooling: protocol-level named prepared statements prepared again on demand. */
#include "proxy/pool_stmts.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "protocol/pktread.h"
#include "proxy/client.h"
#include "proxy/pool_txn.h"
#include "proxy/stmt_table.h"

/*
 * Why the client's own names are kept upstream, not renamed: a pooled
 * connection only ever carries one client's statements. It goes back to
 * the same client as it is, and to anyone else only after DISCARD ALL
 * (pool.c), so two clients' names never meet on one backend. What moves is
 * the statement: on a connection that lacks it, the client's Parse is sent
 * again, unchanged, in front of the Bind or Describe that names it
 * (PgBouncer 1.21's max_prepared_statements does the same on demand, with
 * names of its own because its server connections are shared unreset).
 */
typedef struct pool_stmt {
	char *name;        /* the client's statement name (hash key) */
	uint8_t *parse;    /* the client's whole Parse message: name, text, parameter types */
	size_t len;        /* its length */
	const char *query; /* the statement text, inside parse */
	size_t qlen;       /* its length */
	bool on_conn;      /* prepared on the connection held now (or left last, still its own) */
	UT_hash_handle hh; /* s->pool_stmts */
} pool_stmt;

static void stmt_free(session *s, pool_stmt *ps)
{
	HASH_DEL(s->pool_stmts, ps);
	free(ps->name);
	free(ps->parse);
	free(ps);
}

/* Keyed as the server keys names: their first 63 bytes (stmt_name_len), so two spellings are one. */
static pool_stmt *find(session *s, const char *name)
{
	pool_stmt *ps;

	HASH_FIND(hh, s->pool_stmts, name, stmt_name_len(name), ps);
	return ps;
}

/* The statement the gate knows by this name is the one remembered (a DEALLOCATE or new Parse did not replace it). */
static bool still_confirmed(session *s, const pool_stmt *ps)
{
	stmt_info *si = stmt_table_get(&s->tl.confirmed, ps->name);

	return si && si->len == ps->qlen && memcmp(si->text, ps->query, ps->qlen) == 0;
}

static relay_status remember(session *s, const uint8_t *msg, uint32_t len)
{
	pktread r;
	const char *name, *query;
	size_t qlen;
	pool_stmt *ps;

	pktread_init(&r, msg + 5, len);
	if (!rd_cstr(&r, &name, NULL) || !rd_cstr(&r, &query, &qlen) || name[0] == '\0')
		return RELAY_GO; /* the unnamed statement lives for one batch; a malformed one is frontend.c's */
	if ((ps = find(s, name)) != NULL)
		stmt_free(s, ps);
	if (!(ps = calloc(1, sizeof(*ps))) || !(ps->name = strndup(name, stmt_name_len(name))) ||
	    !(ps->parse = malloc(5 + (size_t)len))) {
		if (ps)
			free(ps->name), free(ps);
		client_fail(s, "53200", "pgwarden: out of memory", NULL);
		return RELAY_STOP;
	}
	memcpy(ps->parse, msg, 5 + (size_t)len);
	ps->len = 5 + (size_t)len;
	ps->query = (const char *)ps->parse + (query - (const char *)msg);
	ps->qlen = qlen;
	ps->on_conn = true; /* this Parse prepares it here (or fails, and the server has none either way) */
	HASH_ADD_KEYPTR(hh, s->pool_stmts, ps->name, strlen(ps->name), ps);
	return RELAY_GO;
}

/* A Bind or Describe names this statement: prepare it here first if this connection lacks it. */
static relay_status ensure(session *s, const char *name)
{
	pool_stmt *ps = find(s, name);

	if (!ps || ps->on_conn || !still_confirmed(s, ps))
		return RELAY_GO; /* unknown here: the server answers as PostgreSQL would */
	session_log(LOG_LVL_DEBUG, s, "pool: preparing statement \"%.64s\" again on backend %u", name,
		    s->up.backend_pid);
	ps->on_conn = true;
	return relay_send_own_message(s, ps->parse, ps->len, TL_PARSE);
}

relay_status pool_stmts_before(session *s, char type, const uint8_t *msg, uint32_t len)
{
	pktread r;
	const char *portal, *name;
	uint8_t what;
	pool_stmt *ps;

	if (!pool_txn_mode(s))
		return RELAY_GO;
	pktread_init(&r, msg + 5, len);
	switch (type) {
	case 'P':
		return remember(s, msg, len);
	case 'B':
		if (rd_cstr(&r, &portal, NULL) && rd_cstr(&r, &name, NULL) && name[0])
			return ensure(s, name);
		break;
	case 'D':
	case 'C':
		if (!rd_u8(&r, &what) || what != 'S' || !rd_cstr(&r, &name, NULL) || !name[0])
			break;
		if (type == 'D')
			return ensure(s, name);
		if ((ps = find(s, name)) != NULL)
			stmt_free(s, ps); /* closed for good, wherever it was prepared */
		break;
	default:
		break;
	}
	return RELAY_GO;
}

void pool_stmts_sql(session *s, const char *name)
{
	if (name && name[0])
		(void)ensure(s, name); /* out of memory has failed the session already */
}

void pool_stmts_moved(session *s)
{
	pool_stmt *ps, *tmp;

	HASH_ITER(hh, s->pool_stmts, ps, tmp)
	ps->on_conn = false;
}

unsigned pool_stmts_movable(session *s)
{
	pool_stmt *ps, *tmp;
	unsigned n = 0;

	HASH_ITER(hh, s->pool_stmts, ps, tmp)
	n += still_confirmed(s, ps);
	return n;
}

void pool_stmts_free(session *s)
{
	pool_stmt *ps, *tmp;

	HASH_ITER(hh, s->pool_stmts, ps, tmp)
	stmt_free(s, ps);
}
