/* audit_cli.h - `pgwarden audit verify|show|report`: the dispatch and `show`'s options. */
#ifndef PGW_AUDIT_CLI_H
#define PGW_AUDIT_CLI_H

/*
 * CLI: argv[0] is "audit", argv[1] "verify", "show" or "report"; returns the exit status
 * (0 ok, 1 broken chain / error, 2 usage).
 *   audit verify FILE...  checks the chain across the files in order; prints
 *     "ok: N records, seq A..B" or "FILE:LINE: <kind>: <why>" on stdout.
 *   audit show [--actor A] [--decision D] [--since T] [--until T] [--json] FILE...
 *     prints matching records (since <= ts < until, RFC 3339 any offset).
 */
int audit_cli_main(int argc, char **argv);

/* The sub-commands, argv[0] being "verify", "show" or "report"; each returns the exit status. */
int audit_verify_main(int argc, char **argv); /* audit_verify_cli.c */
int audit_show_main(int argc, char **argv);   /* audit_cli.c */
int audit_report_main(int argc, char **argv); /* audit_report_cli.c */

#endif
