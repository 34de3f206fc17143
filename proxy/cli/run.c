/* run.c - `pgwarden -c FILE`: load the config and run the proxy in the foreground until it stops. */
#include <stdio.h>

#include "audit/audit.h"
#include "conf/config.h"
#include "proxy/full_config.h"
#include "conf/core/log.h"
#include "proxy/cli/cli.h"
#include "proxy/server.h"

int cli_run_main(const char *path)
{
	pgw_errors errs = { 0 };
	pgw_config *cfg = full_config_load(path, &errs);
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
