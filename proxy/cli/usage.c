/* usage.c - `pgwarden --help`: the one usage text, listing every command (tests check it lists them all). */
#include <stdio.h>

#include "proxy/cli/cli.h"

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

int cli_usage(FILE *f, int status)
{
	fputs(usage_text, f);
	return status;
}
