/* options.c - the options of the proxy itself: -c FILE, --check [--connect], --version, --help. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "proxy/cli/cli.h"
#include "proxy/cli/preflight.h"

int cli_options_main(int argc, char **argv)
{
	const char *config = NULL;
	bool check = false, connect = false;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf("pgwarden %s\n", PGWARDEN_VERSION);
			return 0;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return cli_usage(stdout, 0);
		else if (strcmp(argv[i], "--check") == 0)
			check = true;
		else if (strcmp(argv[i], "--connect") == 0)
			connect = true;
		else if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			config = argv[++i];
		else {
			fprintf(stderr, "pgwarden: unknown argument \"%s\"\n\n", argv[i]);
			return cli_usage(stderr, 2);
		}
	}
	if (!config) {
		fprintf(stderr, "pgwarden: no config file given (-c FILE)\n\n");
		return cli_usage(stderr, 2);
	}
	if (connect && !check) {
		fprintf(stderr, "pgwarden: --connect goes with --check\n\n");
		return cli_usage(stderr, 2);
	}
	if (check)
		return connect ? preflight_main(config) : cli_check_main(config);
	return cli_run_main(config);
}
