/* cli.h - the proxy's own command line (run, --check, --help); each subcommand has its file in proxy/cli/. */
#ifndef PGW_CLI_H
#define PGW_CLI_H

#include <stdio.h>

/* The usage text on f (every command, with its options); returns status. */
int cli_usage(FILE *f, int status);

/* `pgwarden -c FILE`, `--check [--connect]`, `--version`, `--help`: parses argv and runs one; the exit status. */
int cli_options_main(int argc, char **argv);

/* `pgwarden -c FILE`: run the proxy in the foreground; the exit status. */
int cli_run_main(const char *path);

/* `pgwarden --check -c FILE`: print every error to stderr, one per line; 0 when valid, 1 when not. */
int cli_check_main(const char *path);

#endif
