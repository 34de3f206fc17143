/* token_new.c - `pgwarden token new`: a fresh random token and the sha256 or SCRAM record for it. */
#include "proxy/cli/token_new.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "conf/config.h"
#include "conf/core/random.h"
#include "proxy/full_config.h"
#include "protocol/scram.h"

#define TOKEN_RAW_LEN 32    /* random bytes in a token */
#define TOKEN_PREFIX "pgw_" /* marks pgwarden tokens, e.g. for secret scanners */

/* The parsed command line. */
typedef struct token_args {
	const char *actor;   /* --actor, required */
	const char *role;    /* --role, required */
	const char *tenant;  /* --tenant, "-" when absent */
	const char *expires; /* --expires RFC3339, NULL when absent */
	const char *targets; /* --targets a,b, NULL when absent */
	const char *config;  /* -c FILE: its protected_roles and targets are checked */
	bool scram;          /* --scram: SCRAM-SHA-256 record instead of sha256 */
} token_args;

/* Used when no -c FILE is given: the config's own default (CONTRACT §2). */
static const char *const default_protected[] = { "anon", "guest", "public" };

#define N_VALUE_OPTS 6

static void usage(FILE *err)
{
	fprintf(err, "usage: pgwarden token new --actor ID --role ROLE [--tenant T] [--expires RFC3339] "
		     "[--targets A,B] [--scram] [-c FILE]\n");
}

/* A token-file field: non-empty, printable ASCII without whitespace, not starting a comment. */
static bool field_ok(const char *s)
{
	if (!*s || *s == '#')
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* --name VALUE or --name=VALUE at argv[*i]; NULL if argv[*i] is not this option. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = true;
		return NULL;
	}
	return argv[++*i];
}

/* Parse argv[2..]; false (after saying why on err) on a usage error. */
static bool parse_args(int argc, char **argv, token_args *ta, FILE *err)
{
	static const char *const names[N_VALUE_OPTS] = {
		"--actor", "--role", "--tenant", "--expires", "--targets", "-c"
	};
	const char **slots[N_VALUE_OPTS] = {
		&ta->actor, &ta->role, &ta->tenant, &ta->expires, &ta->targets, &ta->config
	};
	int i;

	memset(ta, 0, sizeof(*ta));
	for (i = 2; i < argc; i++) {
		bool missing = false, matched = false;
		size_t k;

		if (strcmp(argv[i], "--scram") == 0) {
			ta->scram = true;
			continue;
		}
		for (k = 0; k < N_VALUE_OPTS && !matched; k++) {
			const char *v = opt_value(argc, argv, &i, names[k], &missing);

			if (missing) {
				fprintf(err, "pgwarden token new: %s needs a value\n", names[k]);
				return false;
			}
			if (v) {
				*slots[k] = v;
				matched = true;
			}
		}
		if (!matched) {
			fprintf(err, "pgwarden token new: unknown argument \"%s\"\n", argv[i]);
			return false;
		}
	}
	if (!ta->actor || !ta->role) {
		fprintf(err, "pgwarden token new: --actor and --role are required\n");
		return false;
	}
	if (!ta->tenant)
		ta->tenant = "-";
	for (i = 0; i < 5; i++) {
		if (*slots[i] && !field_ok(*slots[i])) {
			fprintf(err,
				"pgwarden token new: %s must be non-empty printable ASCII without spaces"
				" and must not start with '#'\n",
				names[i]);
			return false;
		}
	}
	return true;
}

/* Whether role is protected: by the config's list with -c, else by the default one. Case-insensitive like tokens.c. */
static bool role_protected(const char *role, const pgw_config *c)
{
	size_t i;

	if (c) {
		for (i = 0; i < c->n_protected_roles; i++)
			if (strcasecmp(c->protected_roles[i], role) == 0)
				return true;
		return false;
	}
	for (i = 0; i < sizeof(default_protected) / sizeof(default_protected[0]); i++)
		if (strcasecmp(default_protected[i], role) == 0)
			return true;
	return false;
}

/* --targets: a comma list without empty items; with -c every name must be a target. */
static bool targets_ok(const char *list, const pgw_config *c, FILE *err)
{
	char **items;
	size_t n, i;
	bool ok = true;

	if (!split_list(list, &items, &n) || n == 0) {
		fprintf(err, "pgwarden token new: --targets: expected a comma list of target names\n");
		return false;
	}
	for (i = 0; c && i < n; i++)
		if (!config_find_target(c, items[i])) {
			fprintf(err, "pgwarden token new: --targets: no target \"%s\" in %s\n", items[i], c->path);
			ok = false;
		}
	free_list(items, n);
	return ok;
}

/* Refuse what the token file would refuse, before printing a secret for it. */
static bool check_record(const token_args *ta, FILE *err)
{
	pgw_errors e = { 0 };
	pgw_config *c = NULL;
	time_t t;
	bool ok = true;

	if (ta->config && !(c = full_config_load(ta->config, &e))) {
		for (size_t i = 0; i < e.n; i++)
			fprintf(err, "%s\n", e.msgs[i]);
		errors_free(&e);
		return false;
	}
	if (role_protected(ta->role, c)) {
		fprintf(err, "pgwarden token new: role \"%s\" is a protected role: nobody may enter as it\n", ta->role);
		ok = false;
	}
	if (ta->expires && !parse_rfc3339(ta->expires, &t)) {
		fprintf(err,
			"pgwarden token new: --expires: \"%s\" is not an RFC 3339 time "
			"(e.g. 2026-12-31T00:00:00Z)\n",
			ta->expires);
		ok = false;
	} else if (ta->expires && t <= time(NULL)) {
		fprintf(err, "pgwarden token new: --expires: %s is in the past\n", ta->expires);
		ok = false;
	}
	if (ta->targets && !targets_ok(ta->targets, c, err))
		ok = false;
	if (c)
		config_unref(c);
	return ok;
}

/* base64url without padding of n bytes into out (size >= 4*ceil(n/3)+1). */
static void b64url(const uint8_t *in, size_t n, char *out)
{
	size_t len, i;

	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	len = strlen(out);
	while (len > 0 && out[len - 1] == '=')
		out[--len] = '\0';
	for (i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
}

/* The secret field: sha256:<hex> or a PostgreSQL-style SCRAM verifier. malloc'd; NULL on failure. */
static char *make_secret(const char *token, bool scram)
{
	uint8_t h[SHA256_DIGEST_LENGTH], salt[SCRAM_DEFAULT_SALT_LEN];
	char *s;
	size_t i;

	if (scram) {
		if (!pgw_random_bytes(salt, sizeof(salt)))
			return NULL;
		return scram_build_secret(token, salt, sizeof(salt), SCRAM_DEFAULT_ITERATIONS);
	}
	if (!SHA256((const unsigned char *)token, strlen(token), h))
		return NULL;
	s = malloc(7 + 2 * sizeof(h) + 1);
	if (!s)
		return NULL;
	memcpy(s, "sha256:", 7);
	for (i = 0; i < sizeof(h); i++)
		snprintf(s + 7 + 2 * i, 3, "%02x", h[i]);
	return s;
}

int token_cli_run(int argc, char **argv, FILE *out, FILE *err)
{
	uint8_t raw[TOKEN_RAW_LEN];
	char token[sizeof(TOKEN_PREFIX) + (TOKEN_RAW_LEN + 2) / 3 * 4 + 1];
	char *secret;
	token_args ta;

	if (argc < 2 || strcmp(argv[0], "token") != 0 || strcmp(argv[1], "new") != 0 ||
	    !parse_args(argc, argv, &ta, err)) {
		usage(err);
		return 2;
	}
	if (!check_record(&ta, err))
		return 1;
	if (!pgw_random_bytes(raw, sizeof(raw))) {
		fprintf(err, "pgwarden token new: could not get random bytes\n");
		return 1;
	}
	memcpy(token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1);
	b64url(raw, sizeof(raw), token + sizeof(TOKEN_PREFIX) - 1);
	OPENSSL_cleanse(raw, sizeof(raw));
	secret = make_secret(token, ta.scram);
	if (!secret) {
		OPENSSL_cleanse(token, sizeof(token));
		fprintf(err, "pgwarden token new: could not build the token record\n");
		return 1;
	}
	fprintf(out, "%s\n%s %s %s %s%s%s%s%s\n", token, secret, ta.actor, ta.role, ta.tenant,
		ta.expires ? " expires=" : "", ta.expires ? ta.expires : "", ta.targets ? " targets=" : "",
		ta.targets ? ta.targets : "");
	OPENSSL_cleanse(token, sizeof(token));
	free(secret);
	return fflush(out) == 0 ? 0 : 1;
}

int token_cli_main(int argc, char **argv)
{
	return token_cli_run(argc, argv, stdout, stderr);
}
