/* admin_cli.h - `pgwarden admin`: the operator console's command line, over the admin HTTP listener. */
#ifndef PGW_ADMIN_CLI_H
#define PGW_ADMIN_CLI_H

/* argv[0] == "admin". Exit 0 on a 2xx answer, 1 on another answer or no answer, 2 on usage errors. */
int admin_cli_main(int argc, char **argv);

#endif
