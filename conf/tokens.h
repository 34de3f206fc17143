/*
 * tokens.h - the actor token file (CONTRACT §3): who may log in, with which
 * secret, as which database role and tenant.
 */
#ifndef PGW_TOKENS_H
#define PGW_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct pgw_errors;

typedef enum {
	TOKEN_SHA256, /* sha256:<hex>: cleartext password, hashed and compared */
	TOKEN_SCRAM,  /* SCRAM-SHA-256$iter:salt$StoredKey:ServerKey */
} pgw_token_kind;

typedef struct pgw_token {
	pgw_token_kind kind;
	uint8_t sha256[32];   /* TOKEN_SHA256: SHA-256 of the token */
	int scram_iterations; /* TOKEN_SCRAM */
	uint8_t *scram_salt;  /* TOKEN_SCRAM: decoded salt */
	size_t scram_salt_len;
	uint8_t stored_key[32]; /* TOKEN_SCRAM */
	uint8_t server_key[32]; /* TOKEN_SCRAM */
	char *actor;            /* actor id, e.g. user:jimmie */
	char *role;             /* database role for SET ROLE */
	char *tenant;           /* NULL when the file says "-" */
	time_t expires;         /* 0 = never */
	char **targets;         /* allowed targets; n_targets == 0 means all */
	size_t n_targets;
	int line; /* line in the token file */
} pgw_token;

typedef struct pgw_token_table {
	pgw_token *v; /* sorted by actor, so one actor's records are adjacent */
	size_t n;
	char *path;
} pgw_token_table;

/*
 * Load a token file. Errors (with FILE:LINE) go to 'e'; returns NULL if any.
 * protected_roles (lower-cased) makes a record with such a role an error.
 */
pgw_token_table *tokens_load(const char *path, char *const *protected_roles, size_t n_protected, struct pgw_errors *e);
void tokens_free(pgw_token_table *t);

/* All records of one actor: returns the first and sets *count (0 if none). */
const pgw_token *tokens_find_actor(const pgw_token_table *t, const char *actor, size_t *count);

/* Whether a record may be used now for this target (expiry and targets=). */
bool token_usable(const pgw_token *tok, const char *target, time_t now);

#endif
