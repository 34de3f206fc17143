/* main.c - the command line (CONTRACT §1): picks the subcommand and hands argv to its file in proxy/cli/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conf/core/log.h"
#include "proxy/cli/admin_cli.h"
#include "proxy/cli/audit_cli.h"
#include "proxy/cli/cli.h"
#include "proxy/cli/explain.h"
#include "proxy/cli/token_new.h"

/* A subcommand named by the first argument; its entry gets argv from that argument on. */
typedef struct subcommand {
	const char *name;                   /* "token", "admin", "audit" */
	int (*main)(int argc, char **argv); /* returns the exit status */
} subcommand;

static const subcommand subcommands[] = {
	{ "token", token_cli_main },
	{ "admin", admin_cli_main },
	{ "audit", audit_cli_main },
};

int main(int argc, char **argv)
{
	int i;

	/*
	 * Why: OpenSSL's exit handler frees its global state, and a function-catalog
	 * loader thread may still be inside libpq's TLS handshake when the process
	 * exits (SIGTERM during a load): that was a SIGSEGV. The first init decides,
	 * so it comes before anything else touches OpenSSL. The OS reclaims the rest.
	 */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
	if (getenv("PGWARDEN_DEBUG") && strcmp(getenv("PGWARDEN_DEBUG"), "0") != 0)
		pgw_log_min_level = LOG_LVL_DEBUG;
	for (size_t k = 0; argc >= 2 && k < sizeof(subcommands) / sizeof(subcommands[0]); k++)
		if (strcmp(argv[1], subcommands[k].name) == 0)
			return subcommands[k].main(argc - 1, argv + 1);
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--explain") == 0)
			return explain_main(argc, argv);
	return cli_options_main(argc, argv);
}
