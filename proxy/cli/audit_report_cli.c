/* audit_report_cli.c - `pgwarden audit report`: options, then verify, gather and render (audit/audit_report*.c). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "audit/audit_report.h"
#include "proxy/cli/audit_cli.h"

/* ---- the command -------------------------------------------------------------------------- */

#define REPORT_USAGE                                                                       \
	"usage: pgwarden audit report [--since T] [--until T] [--window W] [--target T]\n" \
	"                             [--format text|json|html] [--key FILE] FILE...\n"

typedef struct report_args {
	report_filter f;      /* what to include */
	report_format fmt;    /* how to print */
	const char *key_path; /* --key */
} report_args;

static int report_usage(const char *what, const char *arg)
{
	fprintf(stderr, "pgwarden audit report: ");
	fprintf(stderr, what, arg);
	fprintf(stderr, "\n" REPORT_USAGE);
	return -1;
}

/* One option with a value at argv[*i]; 0 taken, -1 usage error (printed). */
static int report_option(const char *opt, const char *v, report_args *a)
{
	if (strcmp(opt, "--since") == 0 || strcmp(opt, "--until") == 0) {
		bool since = opt[2] == 's';

		if (audit_parse_when(v, since ? &a->f.since_us : &a->f.until_us) < 0)
			return report_usage("not a time (RFC 3339, or 30m / 2h / 1d ago): %s", v);
		*(since ? &a->f.has_since : &a->f.has_until) = true;
	} else if (strcmp(opt, "--window") == 0)
		a->f.window = v;
	else if (strcmp(opt, "--target") == 0)
		a->f.target = v;
	else if (strcmp(opt, "--key") == 0)
		a->key_path = v;
	else if (strcmp(opt, "--format") == 0) {
		if (strcmp(v, "text") == 0)
			a->fmt = REPORT_TEXT;
		else if (strcmp(v, "json") == 0)
			a->fmt = REPORT_JSON;
		else if (strcmp(v, "html") == 0)
			a->fmt = REPORT_HTML;
		else
			return report_usage("--format: \"%s\" is not one of text, json, html", v);
	} else
		return report_usage("unknown option %s", opt);
	return 0;
}

/* Returns the index of the first file, or -1 (usage error, printed). */
static int report_args_parse(int argc, char **argv, report_args *a)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq;
		char opt[32];

		if (strcmp(arg, "--") == 0)
			return i + 1;
		if (arg[0] != '-' || arg[1] == '\0')
			return i;
		eq = strchr(arg, '=');
		snprintf(opt, sizeof(opt), "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
		if (!eq && i + 1 >= argc)
			return report_usage("option %s needs a value", arg);
		if (report_option(opt, eq ? eq + 1 : argv[++i], a) < 0)
			return -1;
	}
	return i;
}

int audit_report_main(int argc, char **argv)
{
	report_args a;
	report_model m;
	audit_verify_opts vo;
	char err[512];
	int first, rc;

	memset(&a, 0, sizeof(a));
	memset(&m, 0, sizeof(m));
	memset(&vo, 0, sizeof(vo));
	if ((first = report_args_parse(argc, argv, &a)) < 0)
		return 2;
	if (first >= argc) {
		report_usage("no FILE given%s", "");
		return 2;
	}
	if (a.key_path && (vo.key = audit_signer_load(a.key_path, false, err, sizeof(err))) == NULL) {
		fprintf(stderr, "pgwarden audit report: --key %s\n", err);
		return 2;
	}
	m.files = (const char *const *)argv + first;
	m.n_files = (size_t)(argc - first);
	m.filter = &a.f;
	m.key_given = vo.key != NULL;
	m.verified = audit_verify_files_opts(m.files, m.n_files, &vo, &m.verify) == 0;
	rc = report_gather(&m, stderr);
	if (rc == 0)
		report_render(&m, a.fmt, stdout);
	report_model_free(&m);
	audit_signer_free((audit_signer *)vo.key);
	if (rc != 0 || fflush(stdout) != 0)
		return 1;
	return m.verified ? 0 : 1;
}
