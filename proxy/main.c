/* main.c - the command line (CONTRACT §1): run, --check, --version, token, audit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "audit/audit.h"
#include "conf/config.h"
#include "proxy/cli/token_new.h"
#include "proxy/cli/admin_cli.h"
#include "proxy/cli/explain.h"
#include "conf/core/log.h"
#include "proxy/cli/preflight.h"
#include "proxy/server.h"

static const char usage_text[] =
	"pgwarden - a policy-enforcing PostgreSQL proxy\n"
	"\n"
	"Usage:\n"
	"  pgwarden -c FILE                 run the proxy in the foreground (logs to stderr)\n"
	"  pgwarden --check -c FILE         validate config and token file (FILE:LINE: message per error)\n"
	"  pgwarden --check --connect -c FILE\n"
	"                                   also connect to each target: token roles exist and can be SET,\n"
	"                                   login role attributes; warn on windows that are over\n"
	"  pgwarden --version               print the version\n"
	"  pgwarden --explain -c FILE --target NAME [--actor ID] \"SQL\"\n"
	"                                   show how a statement is classified and judged, and why\n"
	"                                   (reads the target's functions; exit 0 allowed, 3 denied)\n"
	"  pgwarden token new --actor ID --role ROLE [--tenant T] [--expires RFC3339] [--targets A,B]\n"
	"                     [--scram] [-c FILE]\n"
	"                                   print a new token and its token-file line (protected roles refused)\n"
	"  pgwarden admin [-c FILE | --url http://HOST:PORT] [--token T] COMMAND\n"
	"                                   the operator console: sessions, kill ID, pause TARGET,\n"
	"                                   resume TARGET, windows, stats, pools, health (JSON answers)\n"
	"  pgwarden audit verify [--key FILE] [--expect-head SEQ:HASH] FILE...\n"
	"                                   check the hash chain of audit files (in order), and the\n"
	"                                   signed checkpoints with --key; prints the head it ended on\n"
	"  pgwarden audit show [--actor A] [--decision allow|deny] [--target T] [--session N]\n"
	"                      [--window W] [--event E] [--rule R] [--since T] [--until T]\n"
	"                      [--json] [--wide] FILE...\n"
	"                                   print matching audit records (T: RFC 3339, or 30m/2h/1d ago)\n"
	"  pgwarden audit report [--since T] [--until T] [--window W] [--target T]\n"
	"                        [--format text|json|html] [--key FILE] FILE...\n"
	"                                   per window: approval, writes, refusals; per actor outside\n"
	"                                   windows; verifies the chain first\n"
	"\n"
	"Signals: SIGHUP reloads config and tokens and reopens the audit log;\n"
	"SIGTERM stops accepting and lets sessions finish (30 s at most); SIGINT stops now.\n"
	"Set PGWARDEN_DEBUG=1 for per-message debug logging.\n";

static int usage(FILE *f, int status)
{
	fputs(usage_text, f);
	return status;
}

static int run(const char *path)
{
	pgw_errors errs = { 0 };
	pgw_config *cfg = config_load(path, &errs);
	pgw_server srv;
	size_t i;
	int rc;

	if (!cfg) {
		for (i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		errors_free(&errs);
		return 1;
	}
	pgw_log_json = cfg->log_format == LOG_FORMAT_JSON;
	if (server_init(&srv, cfg, path) != 0) {
		server_free(&srv);
		return 1;
	}
	rc = server_run(&srv);
	server_free(&srv);
	return rc;
}

int main(int argc, char **argv)
{
	const char *config = NULL;
	bool check = false, connect = false;
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
	if (argc >= 2 && strcmp(argv[1], "token") == 0)
		return token_cli_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "admin") == 0)
		return admin_cli_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "audit") == 0)
		return audit_cli_main(argc - 1, argv + 1);
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--explain") == 0)
			return explain_main(argc, argv);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf("pgwarden %s\n", PGWARDEN_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return usage(stdout, 0);
		else if (strcmp(argv[i], "--check") == 0)
			check = true;
		else if (strcmp(argv[i], "--connect") == 0)
			connect = true;
		else if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			config = argv[++i];
		else {
			fprintf(stderr, "pgwarden: unknown argument \"%s\"\n\n", argv[i]);
			return usage(stderr, 2);
		}
	}
	if (!config) {
		fprintf(stderr, "pgwarden: no config file given (-c FILE)\n\n");
		return usage(stderr, 2);
	}
	if (connect && !check) {
		fprintf(stderr, "pgwarden: --connect goes with --check\n\n");
		return usage(stderr, 2);
	}
	if (check)
		return connect ? preflight_main(config) : config_check_main(config);
	return run(config);
}
