/* test_config.c - pgwarden.ini: a full good file, each kind of error with its exact FILE:LINE text, rules. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sys/stat.h>

#include "conf/config.h"
#include "conf/windows.h"
#include "proxy/cli/cli.h"
#include "proxy/full_config.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char dir[PATH_MAX];  /* a fresh directory per test, realpath'd */
static char ini[PATH_MAX + 32]; /* dir/pgwarden.ini */

static void put_file(const char *name, const char *text)
{
	char path[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	char tmpl[] = "/tmp/pgw_conf_XXXXXX";

	(void)state;
	if (mkdtemp(tmpl) == NULL || realpath(tmpl, dir) == NULL)
		return -1;
	snprintf(ini, sizeof(ini), "%s/pgwarden.ini", dir);
	put_file("tokens.txt", "sha256:" HEX64 " user:jimmie bookkeeper acme\n");
	put_file("server.crt", "not really a cert\n");
	put_file("server.key", "not really a key\n");
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static pgw_config *load(const char *text, pgw_errors *e)
{
	put_file("pgwarden.ini", text);
	return config_load(ini, e);
}

static const char good_ini[] =
	"; pgwarden test config\n"
	"[pgwarden]\n"
	"listen = 127.0.0.1:6432            ; host:port\n"
	"admin_listen = 127.0.0.1:9930\n"
	"tokens_file = tokens.txt\n"
	"audit_log = logs/audit.jsonl       # inline hash comment\n"
	"audit_params = yes\n"
	"audit_fsync = always\n"
	"tls_cert_file = server.crt\n"
	"tls_key_file = server.key\n"
	"client_tls = require\n"
	"plaintext_auth = On\n"
	"actor_setting = app.actor\n"
	"tenant_setting = app.tenant\n"
	"claims_setting = request.jwt.claims\n"
	"protected_roles = anon, \"Guest\", PUBLIC\n"
	"trusted_functions = App.Safe_Fn, \"App\".\"Mixed\"\"Q\"\n"
	"workers = 1\n"
	"max_message_size = 65536\n"
	"auth_timeout = 10\n"
	"max_startup_conns = 32\n"
	"\n"
	"[target.prod]\n"
	"conninfo = host=10.0.0.5 dbname=app user=pgwarden_svc sslmode=verify-full\n"
	"environment = production\n"
	"\n"
	"  [ target.staging ]\n"
	"  conninfo = host=10.0.0.6 dbname=app user=pgwarden_svc\n"
	"\tenvironment = staging\n"
	"\n"
	"[window.sec-42]\n"
	"target = prod\n"
	"start = 2026-11-24T19:00:00-03:00\n"
	"end = 2026-11-24T23:30:00Z\n"
	"approved_by = ops:larry\n"
	"reason = RLS hardening SEC-42\n"
	"actors = user:brent, user:jimmie\n"
	"\n"
	"[window.weekly]\n"
	"target = prod\n"
	"weekly = tue,thu 22:00-23:30\n"
	"timezone = America/Santiago\n"
	"approved_by = ops:larry\n"
	"reason = weekly maintenance\n"
	"\n"
	"[rule.no-file-access]\n"
	"match = \\bpg_(read|write)_\\w*file\\b\n"
	"action = deny\n"
	"targets = prod, staging\n"
	"message = server file access is not allowed through pgwarden\n"
	"\n"
	"[rule.log-drops]\n"
	"match = (?i)\\bdrop\\b\n"
	"action = log\n";

static void test_good_file(void **state)
{
	pgw_errors e = { 0 };
	pgw_config *c = load(good_ini, &e);
	char want[PATH_MAX + 64];
	const pgw_window *w;
	const pgw_rule *r;
	time_t t;

	(void)state;
	for (size_t i = 0; i < e.n; i++)
		print_error("%s\n", e.msgs[i]);
	assert_int_equal(e.n, 0);
	assert_non_null(c);
	assert_int_equal(c->refcount, 1);
	assert_string_equal(c->listen, "127.0.0.1:6432");
	assert_string_equal(c->admin_listen, "127.0.0.1:9930");
	snprintf(want, sizeof(want), "%s/tokens.txt", dir);
	assert_string_equal(c->tokens_file, want);
	snprintf(want, sizeof(want), "%s/logs/audit.jsonl", dir);
	assert_string_equal(c->audit_log, want);
	snprintf(want, sizeof(want), "%s/server.crt", dir);
	assert_string_equal(c->tls_cert_file, want);
	assert_true(c->audit_params);
	assert_int_equal(c->audit_fsync, AUDIT_FSYNC_ALWAYS);
	assert_int_equal(c->client_tls, CLIENT_TLS_REQUIRE);
	assert_true(c->plaintext_auth);
	assert_string_equal(c->actor_setting, "app.actor");
	assert_string_equal(c->tenant_setting, "app.tenant");
	assert_string_equal(c->claims_setting, "request.jwt.claims");
	assert_int_equal(c->n_protected_roles, 3);
	assert_string_equal(c->protected_roles[0], "anon");
	assert_string_equal(c->protected_roles[1], "Guest");
	assert_string_equal(c->protected_roles[2], "public");
	assert_true(config_is_protected_role(c, "Guest"));
	assert_false(config_is_protected_role(c, "guest"));
	assert_int_equal(c->n_trusted_functions, 2);
	assert_string_equal(c->trusted_functions[0], "app.safe_fn");
	assert_string_equal(c->trusted_functions[1], "App.Mixed\"Q");
	assert_int_equal(c->workers, 1);
	assert_int_equal(c->max_message_size, 65536);
	assert_int_equal(c->auth_timeout, 10);
	assert_int_equal(c->max_startup_conns, 32);

	assert_int_equal(c->n_targets, 2);
	assert_ptr_equal(config_find_target(c, "staging"), &c->targets[1]);
	assert_null(config_find_target(c, "Staging"));
	assert_string_equal(c->targets[1].conninfo, "host=10.0.0.6 dbname=app user=pgwarden_svc");
	assert_int_equal(c->targets[0].environment, ENV_PRODUCTION);
	assert_int_equal(c->targets[1].environment, ENV_STAGING);
	assert_int_equal(c->targets[1].line, 27);
	assert_string_equal(environment_name(c->targets[1].environment), "staging");

	assert_int_equal(c->n_windows, 2);
	w = &c->windows[0];
	assert_string_equal(w->name, "sec-42");
	assert_false(w->weekly);
	assert_true(parse_rfc3339("2026-11-24T22:00:00Z", &t));
	assert_int_equal(w->start_utc, t);
	assert_int_equal(w->end_utc, t + 90 * 60);
	assert_string_equal(w->approved_by, "ops:larry");
	assert_int_equal(w->n_actors, 2);
	assert_string_equal(w->actors[1], "user:jimmie");
	w = &c->windows[1];
	assert_true(w->weekly);
	assert_int_equal(w->days, (1 << 2) | (1 << 4));
	assert_int_equal(w->start_minute, 22 * 60);
	assert_int_equal(w->end_minute, 23 * 60 + 30);
	assert_non_null(w->zone);
	assert_true(w->n_iv > 100); /* precomputed at load */
	assert_string_equal(w->timezone, "America/Santiago");

	assert_int_equal(c->n_rules, 2);
	r = &c->rules[0];
	assert_string_equal(r->name, "no-file-access");
	assert_int_equal(r->action, RULE_ACTION_DENY);
	assert_string_equal(r->message, "server file access is not allowed through pgwarden");
	assert_true(rule_applies_to(r, "prod"));
	assert_false(rule_applies_to(r, "dev"));
	assert_int_equal(c->rules[1].action, RULE_ACTION_LOG);
	assert_true(rule_applies_to(&c->rules[1], "anything"));
	assert_null(c->rules[1].message);

	assert_non_null(c->tokens);
	assert_int_equal(c->tokens->n, 1);

	assert_ptr_equal(config_ref(c), c);
	assert_int_equal(c->refcount, 2);
	config_unref(c);
	config_unref(c);
}

static void test_rule_matching(void **state)
{
	pgw_errors e = { 0 };
	pgw_config *c = load(good_ini, &e);
	const pgw_rule *r;
	/* Text that continues past the length given: only the prefix may be looked at. */
	const char text[] = "select 1; select pg_read_file('/etc/passwd')";
	const char bad_utf8[] = "select '\xff\xfe\xc3' || pg_write_binary_file('x')";
	const char drop[] = "DrOp table t";

	(void)state;
	assert_non_null(c);
	r = &c->rules[0];
	assert_true(rule_matches(r, text, strlen(text)));
	assert_false(rule_matches(r, text, strlen("select 1; select pg_read_fi")));
	assert_false(rule_matches(r, "select 1", 8));
	assert_false(rule_matches(r, "select pg_read_filex()", 22));
	assert_true(rule_matches(r, bad_utf8, sizeof(bad_utf8) - 1));
	assert_false(rule_matches(r, "\xff\xff\xff", 3));
	assert_false(rule_matches(r, NULL, 0));
	assert_true(rule_matches(&c->rules[1], drop, sizeof(drop) - 1));
	assert_false(rule_matches(&c->rules[1], "dropped", 7));
	config_unref(c);
}

static void test_defaults(void **state)
{
	pgw_errors e = { 0 };
	pgw_config *c = load("[pgwarden]\nlisten = unix:run\ntokens_file = /etc/../" "TOKENS\n"
			     "[target.dev]\nconninfo = dbname=dev\nenvironment = development\n",
			     &e);
	char want[PATH_MAX + 64];

	(void)state;
	(void)c;
	/* The token file path is absolute and missing: that is the only error. */
	assert_null(c);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.msgs[0], "/etc/../TOKENS: cannot read token file: No such file or directory");
	errors_free(&e);

	c = load("[pgwarden]\nlisten = unix:run\ntokens_file = tokens.txt\n"
		 "[target.dev]\nconninfo = dbname=dev\nenvironment = development\n",
		 &e);
	assert_non_null(c);
	snprintf(want, sizeof(want), "unix:%s/run", dir);
	assert_string_equal(c->listen, want);
	assert_null(c->admin_listen);
	assert_null(c->audit_log);
	assert_null(c->tls_cert_file);
	assert_false(c->audit_params);
	assert_int_equal(c->audit_fsync, AUDIT_FSYNC_BATCH);
	assert_int_equal(c->client_tls, CLIENT_TLS_ALLOW);
	assert_false(c->plaintext_auth);
	assert_string_equal(c->actor_setting, "app.actor_id");
	assert_string_equal(c->tenant_setting, "app.tenant_id");
	assert_null(c->claims_setting);
	assert_int_equal(c->n_protected_roles, 3);
	assert_string_equal(c->protected_roles[2], "public");
	assert_int_equal(c->n_trusted_functions, 0);
	assert_int_equal(c->workers, 1);
	assert_int_equal(c->max_message_size, 1073741822);
	assert_int_equal(c->auth_timeout, 60);
	assert_int_equal(c->max_startup_conns, 256);
	assert_int_equal(c->n_windows, 0);
	assert_int_equal(c->n_rules, 0);
	config_unref(c);
}

/* Relative config path: messages name it as given, relative paths resolve against its directory. */
static void test_relative_config_path(void **state)
{
	pgw_errors e = { 0 };
	char cwd[PATH_MAX], want[PATH_MAX + 64];
	pgw_config *c;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	put_file("pgwarden.ini", "[pgwarden]\nlisten = 127.0.0.1:1\ntokens_file = tokens.txt\n"
				 "[target.a]\nconninfo = dbname=a\nenvironment = staging\n");
	assert_int_equal(chdir("/"), 0);
	c = config_load(ini + 1, &e); /* "tmp/pgw_conf_.../pgwarden.ini" */
	assert_int_equal(chdir(cwd), 0);
	assert_non_null(c);
	snprintf(want, sizeof(want), "%s/tokens.txt", dir);
	assert_string_equal(c->tokens_file, want);
	config_unref(c);

	put_file("pgwarden.ini", "[pgwarden]\nlisten = 127.0.0.1:1\ntokens_file = tokens.txt\nbogus = 1\n");
	assert_int_equal(chdir(dir), 0);
	c = config_load("pgwarden.ini", &e);
	assert_int_equal(chdir(cwd), 0);
	assert_null(c);
	assert_int_equal(e.n, 2);
	assert_string_equal(e.msgs[0], "pgwarden.ini:4: unknown key \"bogus\" in [pgwarden]");
	assert_string_equal(e.msgs[1],
		"pgwarden.ini: no [target.NAME] section: at least one target is required");
	errors_free(&e);
}

/*
 * Error cases: the base file (lines 1-6, ending inside [pgwarden]) plus the
 * case's lines from line 7 on; every message must match exactly, in order.
 * "@" in a message stands for the config file path, "%" for its directory.
 */
static const char base_ini[] = "[target.prod]\n"
			       "conninfo = host=localhost dbname=app\n"
			       "environment = production\n"
			       "[pgwarden]\n"
			       "listen = 127.0.0.1:6432\n"
			       "tokens_file = tokens.txt\n";

#define WIN_OK "approved_by = a\nreason = r\n"

typedef struct error_case {
	const char *extra;
	const char *want[4];
} error_case;

static const error_case error_cases[] = {
	{ "lisen = 127.0.0.1:1\n", { "@:7: unknown key \"lisen\" in [pgwarden]" } },
	{ "listen = 127.0.0.1:1\n", { "@:7: duplicate key \"listen\" in [pgwarden] (first at line 5)" } },
	{ "audit_fsync = sometimes\n",
		{ "@:7: audit_fsync: \"sometimes\" is not one of always, batch, never" } },
	{ "audit_fsync =\n", { "@:7: audit_fsync: empty value" } },
	{ "client_tls = maybe\n", { "@:7: client_tls: \"maybe\" is not one of disable, allow, require" } },
	{ "audit_params = perhaps\n",
	  { "@:7: audit_params: \"perhaps\" is not a boolean (yes/no, on/off, true/false, 1/0)" } },
	{ "workers = 0\n", { "@:7: workers: \"0\" is not an integer from 1 to 64" } },
	{ "workers = 2x\n", { "@:7: workers: \"2x\" is not an integer from 1 to 64" } },
	{ "workers = 4\n", { "@:7: workers: only 1 is supported in this version (it runs one event-loop thread)" } },
	{ "max_client_conn = 0\n", { "@:7: max_client_conn: \"0\" is not an integer from 1 to 1000000" } },
	{ "query_timeout = -1\n", { "@:7: query_timeout: \"-1\" is not an integer from 0 to 31536000" } },
	{ "auth_timeout = -1\n", { "@:7: auth_timeout: \"-1\" is not an integer from 1 to 3600" } },
	{ "max_message_size = 100\n",
	  { "@:7: max_message_size: \"100\" is not an integer from 1024 to 1073741822" } },
	/* PostgreSQL's own limit is 2^30 - 2 (MaxAllocSize - 1): 2^30 would promise what the relay refuses */
	{ "max_message_size = 1073741823\n",
	  { "@:7: max_message_size: \"1073741823\" is not an integer from 1024 to 1073741822" } },
	{ "max_message_size = 1073741824\n",
	  { "@:7: max_message_size: \"1073741824\" is not an integer from 1024 to 1073741822" } },
	{ "admin_listen = localhost\n",
		{ "@:7: admin_listen: \"localhost\" is not host:port or unix:/directory" } },
	{ "admin_listen = ::1:9930\n",
		{ "@:7: admin_listen: \"::1:9930\" is not host:port or unix:/directory" } },
	{ "admin_listen = [::1]:70000\n",
	  { "@:7: admin_listen: \"[::1]:70000\" is not host:port or unix:/directory" } },
	{ "actor_setting = actor\n",
	  { "@:7: actor_setting: \"actor\" is not a custom setting name such as app.actor_id" } },
	{ "protected_roles = anon,,guest\n",
		{ "@:7: protected_roles: empty item in comma list \"anon,,guest\"" } },
	{ "protected_roles = \"anon\n",
		{ "@:7: protected_roles: \"\"anon\": unterminated quoted identifier" } },
	{ "protected_roles = app.anon\n",
		{ "@:7: protected_roles: \"app.anon\": a role name has no schema" } },
	{ "trusted_functions = lonely_fn\n",
		{ "@:7: trusted_functions: \"lonely_fn\": expected schema.name" } },
	{ "trusted_functions = a.1fn\n",
	  { "@:7: trusted_functions: \"a.1fn\": a name cannot start with a digit or $ unless quoted" } },
	{ "tls_cert_file = server.crt\n", { "@:7: tls_cert_file and tls_key_file must be given together" } },
	{ "client_tls = require\n", { "@:7: client_tls: require needs tls_cert_file and tls_key_file" } },
	{ "tls_cert_file = missing.crt\ntls_key_file = server.key\n",
	  { "@:7: tls_cert_file: cannot read %/missing.crt: No such file or directory" } },
	{ "just some words\n", { "@:7: expected \"name = value\", a [section] or a comment" } },
	{ "weekly: tue 22:00\n", { "@:7: expected \"name = value\", a [section] or a comment" } },
	{ "[target.prod\n", { "@:7: section header without \"]\"" } },
	{ "[target.prod] extra\n", { "@:7: unexpected text after section header" } },
	{ "[target.prod]\nconninfo = x=1\n", { "@:7: duplicate section [target.prod] (first at line 1)" } },
	{ "[bogus]\nx = 1\n", { "@:7: unknown section [bogus]" } },
	{ "[target.]\n", { "@:7: [target.]: invalid name after \"target.\"" } },
	{ "[target.staging]\nconninfo = host=x\n",
		{ "@:7: [target.staging]: missing required key \"environment\"" } },
	{ "[target.s]\nconninfo = host=x\nenvironment = prod\n",
	  { "@:9: environment: \"prod\" is not one of production, staging, development" } },
	{ "[target.s]\nconninfo = host='x\nenvironment = staging\n",
	  { "@:8: conninfo: unterminated quoted string in connection info string" } },
	{ "[target.s]\nconninfo = sslmod=require\nenvironment = staging\n",
	  { "@:8: conninfo: invalid connection option \"sslmod\"" } },
	{ "[target.s]\nenvironment = staging\nenvironment = staging\n",
	  { "@:9: duplicate key \"environment\" in [target.s] (first at line 8)",
	    "@:7: [target.s]: missing required key \"conninfo\"" } },
	{ "audit_log = "
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
	  "workers = 0\n",
	  { "@:7: line too long (214 characters, at most 198)",
		"@:8: workers: \"0\" is not an integer from 1 to 64" } },
	/* database walls */
	{ "[target.s]\nconninfo = host=x\nenvironment = staging\nwalls = maybe\n",
	  { "@:10: walls: \"maybe\" is not one of off, required" } },
	{ "[target.s]\nconninfo = host=x\nenvironment = staging\nwalls = required\n",
	  { "@:10: [target.s]: walls = required needs wall_key_file" } },
	{ "[target.s]\nconninfo = host=x\nenvironment = staging\nwall_key_file = k.key\n",
	  { "@:10: [target.s]: wall_key_file is set but walls is not required" } },
	{ "[target.s]\nconninfo = host=x\nenvironment = staging\nwalls = required\nwall_key_file = missing.key\n",
	  { "@:11: wall_key_file: cannot read %/missing.key: No such file or directory" } },
	{ "[target.s]\nconninfo = host=x\nenvironment = staging\nwalls = required\nwall_key_file = tokens.txt\n",
	  { "@:11: wall_key_file: %/tokens.txt is open to other users (chmod 600 it)" } },
	/* windows */
	{ "[window.w]\ntarget = nope\nstart = 2026-11-24T22:00:00Z\nend = 2026-11-24T23:30:00Z\n" WIN_OK,
	  { "@:8: [window.w]: target \"nope\" is not a [target.NAME]" } },
	{ "[window.w]\ntarget = prod\nstart = 2026-11-24T22:00:00Z\nend = 2026-11-24T22:00:00Z\n" WIN_OK,
	  { "@:10: [window.w]: end must be after start" } },
	{ "[window.w]\ntarget = prod\nstart = 2026-11-24 22:00\nend = 2026-11-24T22:00:00Z\n" WIN_OK,
	  { "@:9: start: \"2026-11-24 22:00\" is not an RFC 3339 time such as 2026-11-24T22:00:00Z" } },
	{ "[window.w]\ntarget = prod\nstart = 2026-11-24T22:00:00Z\n" WIN_OK,
	  { "@:7: [window.w]: needs start and end, or weekly and timezone" } },
	{ "[window.w]\ntarget = prod\nstart = 2026-11-24T22:00:00Z\nend = 2026-11-24T23:00:00Z\n",
	  { "@:7: [window.w]: missing required key \"approved_by\"",
		"@:7: [window.w]: missing required key \"reason\"" } },
	{ "[window.w]\ntarget = prod\nweekly = tue 22:00-23:30\n" WIN_OK,
	  { "@:7: [window.w]: weekly and timezone must be given together" } },
	{ "[window.w]\ntarget = prod\nweekly = tue 22:00-23:30\ntimezone = UTC\nstart = 2026-11-24T22:00:00Z\n" WIN_OK,
	  { "@:9: [window.w]: give either start and end, or weekly and timezone, not both" } },
	{ "[window.w]\ntarget = prod\nweekly = tue,xyz 22:00-23:30\ntimezone = UTC\n" WIN_OK,
	  { "@:9: weekly: \"tue,xyz 22:00-23:30\" is not days and a time range such as \"tue,thu 22:00-23:30\"" } },
	{ "[window.w]\ntarget = prod\nweekly = tue 22:00-24:30\ntimezone = UTC\n" WIN_OK,
	  { "@:9: weekly: \"tue 22:00-24:30\" is not days and a time range such as \"tue,thu 22:00-23:30\"" } },
	{ "[window.w]\ntarget = prod\nweekly = tue 22:00-23:30\ntimezone = Mars/Base\n" WIN_OK,
	  { "@:10: timezone: unknown time zone \"Mars/Base\" (/usr/share/zoneinfo/Mars/Base: No such file or "
	    "directory)" } },
	{ "[window.w]\ntarget = prod\nweekly = tue 22:00-23:30\ntimezone = ../../etc/passwd\n" WIN_OK,
	  { "@:10: timezone: \"../../etc/passwd\" is not a valid IANA time zone name" } },
	{ "[window.w]\ntarget = prod\nweekly = tue 22:00-23:30\ntimezone = zone1970.tab\n" WIN_OK,
	  { "@:10: timezone: \"zone1970.tab\" is not a valid IANA time zone name" } },
	{ "[window.w]\ntarget = prod\nweekly = tue 22:00-23:30\ntimezone = Europe\n" WIN_OK,
	  { "@:10: timezone: time zone \"Europe\": /usr/share/zoneinfo/Europe: not a valid TZif file" } },
	{ "[window.w]\ntarget = prod\nactors = a,,b\nstart = 2026-11-24T22:00:00Z\nend = 2026-11-24T23:00:00Z\n" WIN_OK,
	  { "@:9: actors: empty item in comma list \"a,,b\"" } },
	/* rules */
	{ "[rule.r]\nmatch = (abc\naction = deny\n",
		{ "@:8: [rule.r]: match: missing closing parenthesis at offset 4" } },
	{ "[rule.r]\nmatch = abc\naction = block\n", { "@:9: action: \"block\" is not one of deny, log" } },
	{ "[rule.r]\nmatch = abc\naction = log\ntargets = prod, nope\n",
	  { "@:10: [rule.r]: target \"nope\" is not a [target.NAME]" } },
	{ "[rule.r]\nmatch = abc\n", { "@:7: [rule.r]: missing required key \"action\"" } },
	{ "[rule.r]\nmatch =\naction = deny\n",
	  { "@:8: match: empty value" } },
};

/* Expand "@" to the config path and "%" to its directory. */
static void expand(const char *pattern, char *out, size_t outsz)
{
	size_t n = 0;

	for (const char *p = pattern; *p && n + 1 < outsz; p++) {
		const char *sub = *p == '@' ? ini : *p == '%' ? dir : NULL;

		if (sub != NULL)
			n += (size_t)snprintf(out + n, outsz - n, "%s", sub);
		else
			out[n++] = *p;
	}
	out[n < outsz ? n : outsz - 1] = '\0';
}

static void test_error_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const error_case *ec = &error_cases[i];
		char text[4096], want[1024];
		pgw_errors e = { 0 };
		pgw_config *c;
		size_t n_want = 0;

		snprintf(text, sizeof(text), "%s%s", base_ini, ec->extra);
		c = load(text, &e);
		while (n_want < 4 && ec->want[n_want] != NULL)
			n_want++;
		if (c != NULL || e.n != n_want) {
			for (size_t k = 0; k < e.n; k++)
				print_error("  got: %s\n", e.msgs[k]);
			fail_msg("case %zu (%s): %zu errors, want %zu", i, ec->want[0], e.n, n_want);
		}
		for (size_t k = 0; k < n_want; k++) {
			expand(ec->want[k], want, sizeof(want));
			if (strcmp(e.msgs[k], want) != 0)
				fail_msg("case %zu:\n  got:  %s\n  want: %s", i, e.msgs[k], want);
		}
		errors_free(&e);
	}
}

/* The base itself is valid, so the cases above fail only for their own lines. */
/* A wall key file is read into the target; one open to other users is refused. */
static void test_wall_key(void **state)
{
	static const char walled[] = "[target.s]\nconninfo = host=x\nenvironment = production\n"
				     "walls = required\nwall_key_file = wall.key\n";
	char text[2048], path[PATH_MAX + 64];
	pgw_errors e = { 0 };
	pgw_config *c;

	(void)state;
	snprintf(path, sizeof(path), "%s/wall.key", dir);
	put_file("wall.key", "  000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eFF\n");
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(text, sizeof(text), "%s%s", base_ini, walled);
	c = load(text, &e);
	assert_non_null(c);
	assert_int_equal(c->targets[1].walls, WALLS_REQUIRED);
	assert_int_equal(c->targets[0].walls, WALLS_OFF);
	for (int i = 0; i < 31; i++)
		assert_int_equal(c->targets[1].wall_key[i], i);
	assert_int_equal(c->targets[1].wall_key[31], 0xff);
	config_unref(c);

	assert_int_equal(chmod(path, 0640), 0);
	assert_null(load(text, &e));
	assert_int_equal(e.n, 1);
	assert_non_null(strstr(e.msgs[0], "wall.key is open to other users (chmod 600 it)"));
	errors_free(&e);

	put_file("wall.key", "0001020304\n");
	assert_int_equal(chmod(path, 0600), 0);
	assert_null(load(text, &e));
	assert_int_equal(e.n, 1);
	assert_non_null(strstr(e.msgs[0], "wall.key must hold 64 hex digits (openssl rand -hex 32)"));
	errors_free(&e);
}

static void test_base_is_valid(void **state)
{
	pgw_errors e = { 0 };
	pgw_config *c = load(base_ini, &e);

	(void)state;
	assert_int_equal(e.n, 0);
	assert_non_null(c);
	config_unref(c);
}

static void test_many_errors_all_reported(void **state)
{
	pgw_errors e = { 0 };
	char want[6][512];
	pgw_config *c;

	(void)state;
	put_file("tokens.txt", "sha256:" HEX64 " user:a reader t targets=nope\n"
			       "sha256:" HEX64 " user:b anon t\n");
	c = load("listen = 1.2.3.4:5\n"       /* 1: outside a section */
		 "[pgwarden]\n"               /* 2 */
		 "lisen = 127.0.0.1:6432\n"   /* 3: typo */
		 "tokens_file = tokens.txt\n" /* 4 */
		 "workers = many\n"           /* 5 */
		 "[rules.x]\n"                /* 6: unknown section */
		 "match = x\n",               /* 7: skipped with its section */
		 &e);
	assert_null(c);
	expand("@:1: \"listen\" is outside any [section]", want[0], sizeof(want[0]));
	expand("@:3: unknown key \"lisen\" in [pgwarden]", want[1], sizeof(want[1]));
	expand("@:5: workers: \"many\" is not an integer from 1 to 64", want[2], sizeof(want[2]));
	expand("@:6: unknown section [rules.x]", want[3], sizeof(want[3]));
	expand("@:2: [pgwarden]: missing required key \"listen\"", want[4], sizeof(want[4]));
	expand("@: no [target.NAME] section: at least one target is required", want[5], sizeof(want[5]));
	for (size_t k = 0; k < e.n; k++)
		print_message("  %s\n", e.msgs[k]);
	assert_int_equal(e.n, 7);
	for (int k = 0; k < 6; k++)
		assert_string_equal(e.msgs[k], want[k]);
	/* The token file's problems join the list, named by the token file. */
	expand("%/tokens.txt:2: role \"anon\" of actor \"user:b\" is a protected role", want[0],
		sizeof(want[0]));
	assert_string_equal(e.msgs[6], want[0]);
	errors_free(&e);
	put_file("tokens.txt", "sha256:" HEX64 " user:jimmie bookkeeper acme\n");
}

static void test_token_targets_must_exist(void **state)
{
	pgw_errors e = { 0 };
	char want[512];
	char text[1024];

	(void)state;
	put_file("tokens.txt", "sha256:" HEX64 " user:a reader t targets=prod,nope\n");
	snprintf(text, sizeof(text), "%s", base_ini);
	assert_null(load(text, &e));
	assert_int_equal(e.n, 1);
	expand("%/tokens.txt:1: targets: \"nope\" is not a [target.NAME]", want, sizeof(want));
	assert_string_equal(e.msgs[0], want);
	errors_free(&e);
	put_file("tokens.txt", "sha256:" HEX64 " user:jimmie bookkeeper acme\n");
}

static void test_missing_everything(void **state)
{
	pgw_errors e = { 0 };
	char want[512];

	(void)state;
	assert_null(load("; nothing here\n", &e));
	assert_int_equal(e.n, 2);
	expand("@: missing [pgwarden] section", want, sizeof(want));
	assert_string_equal(e.msgs[0], want);
	errors_free(&e);

	assert_null(config_load("/nonexistent/pgwarden.ini", &e));
	assert_int_equal(e.n, 1);
	assert_string_equal(e.msgs[0],
		"/nonexistent/pgwarden.ini: cannot open config file: No such file or directory");
	errors_free(&e);
}

/* Weekly forms, comments, indentation, CRLF, BOM. */
static void test_weekly_forms_and_syntax(void **state)
{
	static const struct {
		const char *weekly;
		uint8_t days;
		int start, end;
	} forms[] = {
		{ "mon-fri 22:00 - 23:30", 0x3e, 1320, 1410 },
		{ "fri-mon 23:00-01:00", 0x63, 1380, 60 },
		{ "SUN, sat 00:00-24:00", 0x41, 0, 0 },
		{ "wed 09:05-09:05", 0x08, 545, 545 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		pgw_errors e = { 0 };
		char text[1024];
		pgw_config *c;

		snprintf(text, sizeof(text),
			 "\xEF\xBB\xBF[pgwarden]\r\nlisten = 127.0.0.1:6432 ; comment\r\n    tokens_file = tokens.txt\r\n"
			 "# comment\r\n[target.prod]\r\nconninfo = dbname=app\r\nenvironment = production\r\n"
			 "[window.w] ; trailing comment\r\ntarget = prod\r\nweekly = %s\r\ntimezone = Europe/Berlin\r\n"
			 "approved_by = x # who\r\nreason = y\r\n",
			 forms[i].weekly);
		c = load(text, &e);
		for (size_t k = 0; k < e.n; k++)
			print_error("%s\n", e.msgs[k]);
		assert_non_null(c);
		assert_string_equal(c->listen, "127.0.0.1:6432");
		assert_string_equal(c->windows[0].approved_by, "x");
		assert_int_equal(c->windows[0].days, forms[i].days);
		assert_int_equal(c->windows[0].start_minute, forms[i].start);
		assert_int_equal(c->windows[0].end_minute, forms[i].end);
		config_unref(c);
	}
}

static void test_rfc3339(void **state)
{
	static const struct {
		const char *s;
		bool ok;
		long long t;
	} cases[] = {
		{ "1970-01-01T00:00:00Z", true, 0 },
		{ "2026-11-24T22:00:00Z", true, 1795557600LL },
		{ "2026-11-24T19:00:00-03:00", true, 1795557600LL },
		{ "2026-11-25T03:30:00+05:30", true, 1795557600LL },
		{ "2026-11-24t22:00:00.123456z", true, 1795557600LL },
		{ "2024-02-29T00:00:00Z", true, 1709164800LL },
		{ "2023-02-29T00:00:00Z", false, 0 },
		{ "2026-11-24T22:00:00", false, 0 },
		{ "2026-11-24 22:00:00Z", true, 1795557600LL }, /* RFC 3339 5.6 NOTE: a space for T */
		{ "2026-11-24T22:00:00.1234567890Z", false, 0 },
		{ "2026-11-24T24:00:00Z", false, 0 },
		{ "2026-13-01T00:00:00Z", false, 0 },
		{ "2026-11-24T22:00:00+0300", false, 0 },
		{ "2026-11-24T22:00:00Zjunk", false, 0 },
		{ "2026-11-24T22:00:00.Z", false, 0 },
		{ "", false, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		time_t t = 0;
		bool ok = parse_rfc3339(cases[i].s, &t);

		if (ok != cases[i].ok || (ok && t != cases[i].t))
			fail_msg("%s: ok=%d t=%lld", cases[i].s, ok, (long long)t);
	}
}

static void test_check_main(void **state)
{
	(void)state;
	put_file("pgwarden.ini", base_ini);
	assert_int_equal(cli_check_main(ini), 0);
	put_file("pgwarden.ini", "[pgwarden]\n");
	assert_int_equal(cli_check_main(ini), 1);
}

/*
 * audit_checkpoint_key: conf checks the path (it sits below audit), the audit layer's file check
 * that the file loads as a signing key; every loader the binary uses runs both.
 */
static void test_checkpoint_key_file_check(void **state)
{
	char want[3 * PATH_MAX];
	pgw_errors e = { 0 };
	pgw_config *c;

	(void)state;
	put_file("audit.key", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
	put_file("pgwarden.ini", "[pgwarden]\nlisten = 127.0.0.1:6432\ntokens_file = tokens.txt\n"
				 "audit_log = audit.jsonl\naudit_checkpoint_key = audit.key\n"
				 "[target.prod]\nconninfo = host=localhost dbname=app\nenvironment = production\n");
	c = config_load(ini, &e); /* conf alone cannot read a key: the path is all it checks */
	assert_non_null(c);
	config_unref(c);
	assert_null(full_config_load(ini, &e));
	assert_int_equal(e.n, 1);
	snprintf(want, sizeof(want), "%s:5: audit_checkpoint_key: %s/audit.key: not an Ed25519", ini, dir);
	if (strncmp(e.msgs[0], want, strlen(want)) != 0)
		fail_msg("got \"%s\", want a prefix \"%s\"", e.msgs[0], want);
	errors_free(&e);
	assert_int_equal(cli_check_main(ini), 1);
	put_file("audit.key", "6f1d0c2b9a8e7f6d5c4b3a2918f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c\n");
	assert_int_equal(cli_check_main(ini), 0);
	put_file("pgwarden.ini", "[pgwarden]\nlisten = 127.0.0.1:6432\ntokens_file = tokens.txt\n"
				 "audit_checkpoint_key = audit.key\n"
				 "[target.prod]\nconninfo = host=localhost dbname=app\nenvironment = production\n");
	assert_null(full_config_load(ini, &e));
	assert_int_equal(e.n, 1);
	assert_non_null(strstr(e.msgs[0], ":4: audit_checkpoint_key needs audit_log"));
	errors_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wall_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_matching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_config_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_base_is_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_cases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_errors_all_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_targets_must_exist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_weekly_forms_and_syntax, setup, teardown),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test_setup_teardown(test_check_main, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_key_file_check, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
