# proxy/cli/: the command line, one file per subcommand; proxy/main.c only dispatches to them.
CLI_SRCS := proxy/cli/usage.c proxy/cli/options.c proxy/cli/run.c proxy/cli/check.c proxy/cli/token_new.c proxy/cli/admin_cli.c proxy/cli/audit_cli.c proxy/cli/audit_verify_cli.c proxy/cli/audit_report_cli.c proxy/cli/explain.c proxy/cli/preflight.c
