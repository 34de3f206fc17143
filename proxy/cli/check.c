/* check.c - `pgwarden --check -c FILE`: every config and token-file error as FILE:LINE: message; exit 0 or 1. */
#include <stdio.h>

#include "conf/config.h"
#include "proxy/full_config.h"
#include "proxy/cli/cli.h"

int cli_check_main(const char *path)
{
	pgw_errors e = { 0 };
	pgw_config *c = full_config_load(path, &e);

	for (size_t i = 0; i < e.n; i++)
		fprintf(stderr, "%s\n", e.msgs[i]);
	errors_free(&e);
	if (c == NULL)
		return 1;
	config_unref(c);
	printf("ok\n");
	return 0;
}
