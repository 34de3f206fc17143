/* audit_cli.c - `pgwarden audit verify|show`: argument parsing and dispatch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "audit/audit_report.h"
#include "proxy/cli/audit_cli.h"

#define DEFAULT_WIDTH 200 /* line width of `audit show` when stdout is not a terminal and COLUMNS is unset */

#define EVENT_LIST                                                                                       \
	"start, stop, reload, connect, auth_ok, auth_fail, statement, result, disconnect, window_open, " \
	"window_close, checkpoint"

static const char *const event_names[] = { "start",        "stop",       "reload", "connect",    "auth_ok",
					   "auth_fail",    "statement",  "result", "disconnect", "window_open",
					   "window_close", "checkpoint", NULL };
static const char *const decision_names[] = { "allow", "deny", NULL };

static const char usage_text[] =
	"usage: pgwarden audit verify [--key FILE] [--expect-head SEQ:HASH] FILE...\n"
	"       pgwarden audit show [--actor A] [--decision allow|deny] [--target T] [--session N] [--window W]\n"
	"                           [--event E] [--rule R] [--since T] [--until T] [--json] [--wide] FILE...\n"
	"       pgwarden audit report [--since T] [--until T] [--window W] [--target T]\n"
	"                             [--format text|json|html] [--key FILE] FILE...\n"
	"verify: exit 0 intact, 1 broken (naming the first bad line), 2 usage; prints \"head: SEQ:HASH\".\n"
	"  --key FILE             check every checkpoint's signature (the HMAC secret, or the Ed25519\n"
	"                         public key); a set must then start at seq 1 or at a checkpoint\n"
	"  --expect-head SEQ:HASH fail unless record SEQ is still there and its line hashes to HASH\n"
	"show: aligned columns, a statement's result on its line; --json prints the raw lines;\n"
	"  --wide never shortens the statement. T is an RFC 3339 time (2026-11-22T01:02:03Z) or a span\n"
	"  back from now (30m, 2h, 1d); since <= ts < until. E is one of: " EVENT_LIST ".\n"
	"report: per window its approval, writes by actor and kind (rows from the tags) and refusals;\n"
	"  per actor the same outside windows; the chain is verified first and the result said at\n"
	"  the top (exit 1 when it does not verify). html is one self-contained page.\n";

static int usage(const char *fmt, const char *arg)
{
	if (fmt != NULL) {
		fprintf(stderr, "pgwarden audit: ");
		fprintf(stderr, fmt, arg);
		fputc('\n', stderr);
	}
	fputs(usage_text, stderr);
	return 2;
}

/* The terminal's width, else $COLUMNS, else DEFAULT_WIDTH. */
static int output_width(void)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");
	int w;

	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (cols != NULL && (w = atoi(cols)) > 0)
		return w;
	return DEFAULT_WIDTH;
}

/*
 * Take the value of option 'name' at argv[*i]: "--name=V" or "--name V".
 * Returns 1 and sets *val if argv[*i] is that option, 0 if it is not, -1 if its value is missing.
 */
static int option_value(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return 0;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

/* Parse --since / --until; -1 after printing usage if the time is neither RFC 3339 nor a span. */
static int time_option(const char *opt, const char *val, bool *has, int64_t *us)
{
	if (audit_parse_when(val, us) < 0) {
		fprintf(stderr, "pgwarden audit show: %s: not an RFC 3339 time or a span like 30m, 2h, 1d: %s\n", opt,
			val);
		return -1;
	}
	*has = true;
	return 0;
}

/* A value that must be one of 'names' (a typo must not give an empty table); -1 after usage. */
static int strict_option(const char *opt, const char *val, const char *const *names, const char *list, const char **out)
{
	size_t i;

	for (i = 0; names[i]; i++)
		if (strcmp(val, names[i]) == 0) {
			*out = names[i];
			return 0;
		}
	fprintf(stderr, "pgwarden audit show: %s: \"%s\" is not one of: %s\n", opt, val, list);
	return -1;
}

/* --session N: a positive integer. */
static int session_option(const char *val, audit_show_filter *f)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(val, &end, 10);
	if (errno != 0 || end == val || *end != '\0' || v == 0 || val[0] == '-') {
		fprintf(stderr, "pgwarden audit show: --session: not a session id: %s\n", val);
		return -1;
	}
	f->has_session = true;
	f->session = v;
	return 0;
}

/* One option of `audit show` at argv[*i]: 0 taken, 2 usage error. */
static int show_option(int argc, char **argv, int *i, audit_show_filter *f)
{
	const char *v = NULL;
	int r;

	if (strcmp(argv[*i], "--json") == 0 || strcmp(argv[*i], "--wide") == 0) {
		*(argv[*i][2] == 'j' ? &f->json : &f->wide) = true;
		return 0;
	}
	if ((r = option_value(argc, argv, i, "--actor", &v)) != 0)
		f->actor = v;
	else if ((r = option_value(argc, argv, i, "--target", &v)) != 0)
		f->target = v;
	else if ((r = option_value(argc, argv, i, "--window", &v)) != 0)
		f->window = v;
	else if ((r = option_value(argc, argv, i, "--rule", &v)) != 0)
		f->rule = v;
	else if ((r = option_value(argc, argv, i, "--decision", &v)) > 0)
		return strict_option("--decision", v, decision_names, "allow, deny", &f->decision) < 0 ? 2 : 0;
	else if ((r = option_value(argc, argv, i, "--event", &v)) > 0)
		return strict_option("--event", v, event_names, EVENT_LIST, &f->event) < 0 ? 2 : 0;
	else if ((r = option_value(argc, argv, i, "--session", &v)) > 0)
		return session_option(v, f) < 0 ? 2 : 0;
	else if ((r = option_value(argc, argv, i, "--since", &v)) > 0)
		return time_option("--since", v, &f->has_since, &f->since_us) < 0 ? usage(NULL, NULL) : 0;
	else if ((r = option_value(argc, argv, i, "--until", &v)) > 0)
		return time_option("--until", v, &f->has_until, &f->until_us) < 0 ? usage(NULL, NULL) : 0;
	if (r < 0)
		return usage("option %s needs a value", argv[*i]);
	if (r == 0)
		return usage("unknown option %s", argv[*i]);
	return 0;
}

int audit_show_main(int argc, char **argv)
{
	audit_show_filter f;
	int i, rc;

	memset(&f, 0, sizeof(f));
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		rc = show_option(argc, argv, &i, &f);
		if (rc != 0)
			return rc;
	}
	if (i >= argc)
		return usage("show: no FILE given", NULL);
	f.width = output_width();
	rc = audit_show_files((const char *const *)argv + i, (size_t)(argc - i), &f, stdout, stderr);
	return fflush(stdout) == 0 ? rc : 1;
}

/* `audit --help`, `audit show --help`...: the usage on stdout, exit 0 (a "--help" after "--" is a file). */
static bool wants_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

int audit_cli_main(int argc, char **argv)
{
	if (wants_help(argc, argv)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc < 2)
		return usage(NULL, NULL);
	if (strcmp(argv[1], "verify") == 0)
		return audit_verify_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return audit_show_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "report") == 0)
		return audit_report_main(argc - 1, argv + 1);
	return usage("unknown command %s (verify, show or report)", argv[1]);
}
