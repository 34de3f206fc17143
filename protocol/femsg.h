/*
 * femsg.h - the fields of the client messages the relay reads, from their
 * bodies (PostgreSQL docs, "Message Formats"): Query, Parse, Bind, Execute,
 * Describe and Close. proxy/frontend.c and tests/fuzz/fuzz_frontend.c both
 * read through these, so the fuzzer exercises the production readers.
 * Strings point into the body; a reader returns false when the body is
 * malformed (a short field, a string without its NUL, bytes left over).
 */
#ifndef PGW_FEMSG_H
#define PGW_FEMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Query: the SQL text. */
typedef struct fe_query {
	const char *sql; /* NUL-terminated, the body's only NUL */
	size_t len;      /* its length without the NUL */
} fe_query;

/* Parse: a statement name, its SQL and parameter type OIDs. */
typedef struct fe_parse {
	const char *name;          /* "" for the unnamed statement */
	const char *query;         /* the SQL text */
	size_t query_len;          /* its length */
	uint16_t n_params;         /* parameter types given (unsigned: PostgreSQL allows 65535) */
	const uint8_t *param_oids; /* n_params big-endian int32 OIDs */
} fe_parse;

/* Bind: portal and statement names; the formats and values after them are read when needed (protocol/bind.h). */
typedef struct fe_bind {
	const char *portal;  /* "" for the unnamed portal */
	const char *stmt;    /* "" for the unnamed statement */
	const uint8_t *rest; /* the parameter section onwards */
	size_t rest_len;     /* its length */
} fe_bind;

/* Execute: a portal and a row limit. */
typedef struct fe_execute {
	const char *portal; /* "" for the unnamed portal */
	int32_t max_rows;   /* 0: no limit */
} fe_execute;

/* Describe or Close: what it names. */
typedef struct fe_target {
	uint8_t what;     /* 'S' a prepared statement, 'P' a portal (anything else is malformed) */
	const char *name; /* "" for the unnamed one */
} fe_target;

bool fe_read_query(const uint8_t *body, size_t len, fe_query *m);
bool fe_read_parse(const uint8_t *body, size_t len, fe_parse *m);
/* Only the names are checked here: the rest is the gate's to read when it needs the values. */
bool fe_read_bind(const uint8_t *body, size_t len, fe_bind *m);
bool fe_read_execute(const uint8_t *body, size_t len, fe_execute *m);
/* Describe and Close share their body: a byte 'S' or 'P', then a name. */
bool fe_read_target(const uint8_t *body, size_t len, fe_target *m);

#endif
