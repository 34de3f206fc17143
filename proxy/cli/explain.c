/* explain.c - the --explain command: classification and verdict of a statement, with reasons. */
#include "proxy/cli/explain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "conf/config.h"
#include "proxy/full_config.h"
#include "policy/catalog.h"
#include "policy/policy.h"
#include "conf/windows.h"

static const struct {
	unsigned flag;
	const char *name;
} fact_names[] = {
	{ PF_READ_ONLY, "read-only" },
	{ PF_IDENTITY, "identity" },
	{ PF_OPAQUE, "opaque" },
	{ PF_GRANT, "grant" },
	{ PF_RW_OVERRIDE, "rw-override" },
	{ PF_UNPARSABLE, "unparsable" },
	{ PF_USER_FUNC, "user-functions" },
	{ PF_SESSION_RESET, "session-reset" },
	{ PF_TXN_CONTROL, "txn-control" },
	{ PF_PREPARE, "prepare" },
	{ PF_EXECUTE, "execute" },
	{ PF_DEALLOCATE, "deallocate" },
	{ PF_LEXING_CHANGE, "lexing-change" },
	{ PF_FUNC_DDL, "function-ddl" },
};

static int usage(void)
{
	fprintf(stderr, "usage: pgwarden --explain -c FILE --target NAME [--actor ID] \"SQL\"\n");
	return 2;
}

static void print_facts(const policy_facts *f)
{
	uint32_t flags = policy_facts_flags(f);
	size_t i, n;
	char *const *fns;

	printf("  facts:");
	for (i = 0; i < sizeof(fact_names) / sizeof(fact_names[0]); i++)
		if (flags & fact_names[i].flag)
			printf(" %s", fact_names[i].name);
	if (!(flags & PF_READ_ONLY))
		printf(" (not read-only%s%s)", policy_facts_why_write(f) ? ": " : "",
		       policy_facts_why_write(f) ? policy_facts_why_write(f) : "");
	printf("\n");
	if (policy_facts_error(f))
		printf("  parser: %s\n", policy_facts_error(f));
	fns = policy_facts_functions(f, &n);
	for (i = 0; i < n; i++)
		printf("  calls %s\n", fns[i]);
}

/* The catalog of the target, read now over a blocking connection; NULL (reported) on failure. */
static fn_catalog *load_catalog(const pgw_config *cfg, const pgw_target *t)
{
	const char *kw[] = { "dbname", "connect_timeout", "fallback_application_name", NULL };
	const char *val[] = { t->conninfo, "10", "pgwarden-explain", NULL };
	PGconn *conn = PQconnectdbParams(kw, val, 1);
	fn_catalog *cat = NULL;
	char *err = NULL;

	if (PQstatus(conn) != CONNECTION_OK)
		fprintf(stderr, "pgwarden: cannot connect to target %s: %s", t->name, PQerrorMessage(conn));
	else if (!(cat = catalog_load(conn, cfg, &err)))
		fprintf(stderr, "pgwarden: cannot read the function catalog of %s: %s\n", t->name, err ? err : "?");
	free(err);
	PQfinish(conn);
	return cat;
}

static bool explain_statement(const pgw_config *cfg, const pgw_target *t, const pgw_token *who, const fn_catalog *cat,
			      const char *sql, const policy_stmt *st)
{
	policy_subject subj;
	policy_verdict v;
	size_t i, n;
	char *const *fns;
	char line[2048];

	printf("statement: %.*s\n", (int)st->len, sql + st->offset);
	print_facts(st->facts);
	memset(&subj, 0, sizeof(subj));
	subj.cfg = cfg;
	subj.target = t;
	subj.who = who;
	subj.now = time(NULL);
	subj.catalog = cat;
	subj.catalog_stale = cat == NULL;
	policy_decide(&subj, st->facts, sql + st->offset, st->len, &v);
	fns = policy_facts_functions(st->facts, &n);
	for (i = 0; i < n && cat; i++) {
		catalog_explain(cat, fns[i], line, sizeof(line));
		printf("  function %s: %s\n", fns[i], line);
	}
	if (v.deny)
		printf("  verdict on %s (%s) for %s: DENY %s\n    %s\n%s%s%s", t->name,
		       environment_name(t->environment), who->actor, v.rule, v.message, v.hint[0] ? "    HINT: " : "",
		       v.hint, v.hint[0] ? "\n" : "");
	else
		printf("  verdict on %s (%s) for %s: allow%s%s\n", t->name, environment_name(t->environment),
		       who->actor, v.window ? " in window " : "", v.window ? v.window : "");
	return !v.deny;
}

int explain_main(int argc, char **argv)
{
	const char *config = NULL, *target = NULL, *actor = "explain", *sql = NULL;
	pgw_errors errs = { 0 };
	pgw_config *cfg;
	const pgw_target *t;
	pgw_token who;
	fn_catalog *cat;
	policy_classifier *pc;
	policy_analysis a;
	policy_lexctx lx = { true };
	int i, rc = 0;
	size_t k;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--explain") == 0)
			continue;
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			config = argv[++i];
		else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc)
			target = argv[++i];
		else if (strcmp(argv[i], "--actor") == 0 && i + 1 < argc)
			actor = argv[++i];
		else if (!sql && argv[i][0] != '-')
			sql = argv[i];
		else
			return usage();
	}
	if (!config || !target || !sql)
		return usage();
	cfg = full_config_load(config, &errs);
	if (!cfg) {
		for (k = 0; k < errs.n; k++)
			fprintf(stderr, "%s\n", errs.msgs[k]);
		errors_free(&errs);
		return 1;
	}
	t = config_find_target(cfg, target);
	if (!t) {
		fprintf(stderr, "pgwarden: no target \"%s\" in %s\n", target, config);
		config_unref(cfg);
		return 2;
	}
	memset(&who, 0, sizeof(who));
	who.actor = (char *)actor;
	who.role = (char *)"-";
	cat = load_catalog(cfg, t);
	pc = policy_classifier_new(0);
	if (!pc || policy_analyze(pc, sql, strlen(sql), &lx, &a) != 0) {
		fprintf(stderr, "pgwarden: out of memory\n");
		rc = 1;
	} else {
		if (!cat)
			printf("(no function catalog: calls of user functions are judged as unknown)\n");
		for (k = 0; k < a.n; k++)
			if (!explain_statement(cfg, t, &who, cat, sql, &a.v[k]))
				rc = 3;
		policy_analysis_clear(&a);
	}
	policy_classifier_free(pc);
	if (cat)
		catalog_unref(cat);
	config_unref(cfg);
	return rc;
}
