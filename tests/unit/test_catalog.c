/* test_catalog.c - the function catalog: body classification, call resolution, verdicts, a live load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "conf/config.h"
#include "policy/catalog.h"
#include "policy/classify_int.h"
#include "policy/policy.h"

#define DATA "tests/unit/data/policy/catalog.ini"

/* Class names, most restrictive first (the order decide.c checks them). */
#define LEX "lexing"
#define ID  "identity"
#define GR  "grant"
#define OPQ "opaque"
#define WR  "write"
#define RO  "read"

/* A PL/pgSQL definition as pg_get_functiondef() gives it. */
#define PL(schema_name, params, ret, body)                                                                   \
	"CREATE OR REPLACE FUNCTION " schema_name "(" params ")\n RETURNS " ret "\n LANGUAGE plpgsql\nAS "   \
	"$function$" body "$function$\n"

/* One pg_proc row and the class its name must have once the catalog is built. */
typedef struct fn_case {
	catalog_row row;
	const char *expect; /* class of this row alone (NULL: only judged through its name below) */
} fn_case;

#define SQLFN(OID, NAME, SRC)                                                                                \
	{                                                                                                    \
		.oid = OID, .schema = "public", .name = NAME, .lang = "sql", .kind = 'f', .volatility = 'v', \
		.src = SRC                                                                                   \
	}
#define PLFN(OID, NAME, PARAMS, RET, BODY)                                                                   \
	{                                                                                                    \
		.oid = OID, .schema = "public", .name = NAME, .lang = "plpgsql", .kind = 'f',                \
		.volatility = 'v', .src = BODY, .def = PL("public." NAME, PARAMS, RET, BODY)                 \
	}

static const fn_case fns[] = {
	/* setting the tenant: set_config and SET, SQL and PL/pgSQL */
	{ SQLFN(100, "app_set_tenant", "SELECT set_config('app.tenant_id', $1, false)"), ID },
	{ PLFN(101, "set_tenant_pl", "t text", "void",
	       " BEGIN PERFORM set_config('app.tenant_id', t, false); END "),
	  ID },
	{ SQLFN(102, "set_tenant_set", "SET app.tenant_id = 'globex'"), ID },
	{ PLFN(103, "set_tenant_set_pl", "", "void", " BEGIN SET LOCAL app.tenant_id = 'globex'; END "), ID },
	{ PLFN(104, "set_claims_pl", "", "void",
	       " BEGIN PERFORM set_config('request.jwt.claims', '{}', true); END "),
	  ID },
	/* role */
	{ PLFN(110, "become_admin", "", "void", " BEGIN SET ROLE admin; END "), ID },
	{ SQLFN(111, "become_admin_sql", "SELECT set_config('role', 'admin', false)"), ID },
	{ PLFN(112, "reset_everything", "", "void", " BEGIN RESET ALL; END "), ID },
	{ PLFN(113, "set_any", "n text", "void", " BEGIN PERFORM set_config(n, 'x', false); END "), ID },
	/* writes */
	{ SQLFN(120, "archive_old_rows", "DELETE FROM events WHERE ts < now() - interval '1 year'"), WR },
	{ SQLFN(121, "ins_sql", "INSERT INTO t VALUES (1)"), WR },
	{ PLFN(122, "upd_pl", "", "void", " BEGIN UPDATE t SET a = 1; END "), WR },
	{ PLFN(123, "trunc_pl", "", "void", " BEGIN TRUNCATE t; END "), WR },
	{ SQLFN(124, "next_id", "SELECT nextval('s')"), WR },
	{ PLFN(125, "nextval_pl", "", "bigint", " DECLARE v bigint := nextval('s'); BEGIN RETURN v; END "),
	  WR },
	{ { .oid = 126,
	    .schema = "public",
	    .name = "proc_write",
	    .lang = "plpgsql",
	    .kind = 'p',
	    .volatility = 'v',
	    .def = "CREATE OR REPLACE PROCEDURE public.proc_write()\n LANGUAGE "
		   "plpgsql\nAS "
		   "$procedure$ BEGIN INSERT INTO t VALUES (1); COMMIT; END "
		   "$procedure$" },
	  WR },
	/* dynamic SQL and unreadable languages */
	{ PLFN(130, "dyn", "", "void", " BEGIN EXECUTE 'select 1'; END "), OPQ },
	{ PLFN(131, "dyn_query", "", "SETOF record", " BEGIN RETURN QUERY EXECUTE 'select 1'; END "), OPQ },
	{ PLFN(132, "dyn_for", "", "void",
	       " DECLARE r record; BEGIN FOR r IN EXECUTE 'x' LOOP END LOOP; END "),
	  OPQ },
	{ { .oid = 133,
	    .schema = "public",
	    .name = "c_fn",
	    .lang = "c",
	    .kind = 'f',
	    .volatility = 'v',
	    .src = "c_fn" },
	  OPQ },
	{ { .oid = 134,
	    .schema = "public",
	    .name = "py_fn",
	    .lang = "plpython3u",
	    .kind = 'f',
	    .volatility = 'v',
	    .src = "plpy.execute('x')" },
	  OPQ },
	{ PLFN(135, "uses_dblink", "", "void", " BEGIN PERFORM dblink_exec('c', 'delete from t'); END "),
	  OPQ },
	{ SQLFN(136, "calls_missing", "SELECT no_such_fn()"), OPQ },
	{ SQLFN(137, "broken_sql", "SELEC 1"), OPQ },
	/* trusted_functions: opacity waived, definite findings kept */
	{ { .oid = 140,
	    .schema = "public",
	    .name = "safe_fn",
	    .lang = "c",
	    .kind = 'f',
	    .volatility = 'v',
	    .src = "safe_fn" },
	  RO },
	{ { .oid = 141,
	    .schema = "ext",
	    .name = "c_trusted",
	    .lang = "c",
	    .kind = 'f',
	    .volatility = 's',
	    .src = "x" },
	  RO },
	{ PLFN(142, "trusted_dyn", "", "void", " BEGIN EXECUTE 'select 1'; END "), RO },
	{ PLFN(143, "trusted_dyn_tenant", "", "void",
	       " BEGIN EXECUTE 'select 1'; PERFORM set_config('app.tenant_id', 'x', "
	       "false); END "),
	  ID },
	{ SQLFN(144, "calls_trusted", "SELECT public.safe_fn() + ext.c_trusted()"), RO },
	{ SQLFN(145, "calls_c", "SELECT c_fn()"), OPQ },
	/* read-only helpers */
	{ SQLFN(150, "helper_read", "SELECT upper($1) || btrim($1)"), RO },
	{ PLFN(151, "loop_read", "", "void",
	       " DECLARE r record; BEGIN FOR r IN SELECT * FROM t LOOP RAISE NOTICE "
	       "'%', r; END LOOP; END "),
	  RO },
	{ PLFN(152, "trg", "", "trigger", " BEGIN NEW.x := upper(NEW.y); RETURN NEW; END "), RO },
	{ SQLFN(153, "multi_read", "SELECT 1; SELECT current_setting('app.tenant_id')"), RO },
	/* calls: two levels, and cycles */
	{ SQLFN(160, "level1_read", "SELECT helper_read('x')"), RO },
	{ SQLFN(161, "level2_read", "SELECT public.level1_read()"), RO },
	{ SQLFN(162, "level1_write", "SELECT ins_sql()"), WR },
	{ PLFN(163, "level2_write", "", "void", " BEGIN PERFORM level1_write(); END "), WR },
	{ PLFN(164, "level2_tenant", "", "void", " BEGIN PERFORM public.app_set_tenant('globex'); END "),
	  ID },
	{ SQLFN(165, "cyc_a", "SELECT cyc_b()"), ID },
	{ SQLFN(166, "cyc_b", "SELECT cyc_a() UNION ALL SELECT 1 FROM app_set_tenant('x')"), ID },
	{ SQLFN(167, "cyc_r1", "SELECT cyc_r2()"), RO },
	{ SQLFN(168, "cyc_r2", "SELECT cyc_r1()"), RO },
	{ SQLFN(169, "self_rec", "SELECT self_rec()"), RO },
	/* overloads: ovl(int) reads, ovl(text) writes, other.ovl(int) sets the tenant */
	{ { .oid = 170,
	    .schema = "public",
	    .name = "ovl",
	    .args = "integer",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 'i',
	    .src = "SELECT $1" },
	  NULL },
	{ { .oid = 171,
	    .schema = "public",
	    .name = "ovl",
	    .args = "text",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 'v',
	    .src = "INSERT INTO t VALUES ($1) RETURNING 1" },
	  NULL },
	{ { .oid = 172,
	    .schema = "other",
	    .name = "ovl",
	    .args = "integer",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 'v',
	    .src = "SELECT set_config('app.tenant_id', 'x', true)" },
	  NULL },
	/* SECURITY DEFINER with proconfig */
	{ { .oid = 180,
	    .schema = "public",
	    .name = "sd_tenant",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 's',
	    .secdef = true,
	    .config = "search_path=public\napp.tenant_id=globex",
	    .src = "SELECT count(*) FROM t" },
	  ID },
	{ { .oid = 181,
	    .schema = "public",
	    .name = "sd_path",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 's',
	    .secdef = true,
	    .config = "search_path=public, pg_temp",
	    .src = "SELECT count(*) FROM t" },
	  RO },
	{ { .oid = 182,
	    .schema = "public",
	    .name = "cfg_role",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 'v',
	    .config = "ROLE=admin",
	    .src = "SELECT 1" },
	  ID },
	{ { .oid = 183,
	    .schema = "public",
	    .name = "cfg_rw",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 'v',
	    .config = "default_transaction_read_only=off",
	    .src = "SELECT 1" },
	  WR },
	/* BEGIN ATOMIC / RETURN bodies (pg_get_functiondef text) and argument defaults */
	{ { .oid = 190,
	    .schema = "public",
	    .name = "atomic_write",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 'v',
	    .atomic = true,
	    .def = "CREATE OR REPLACE FUNCTION public.atomic_write()\n RETURNS "
		   "void\n LANGUAGE sql\n"
		   "BEGIN ATOMIC\n INSERT INTO public.t (a) VALUES (1);\nEND\n" },
	  WR },
	{ { .oid = 191,
	    .schema = "public",
	    .name = "atomic_ret",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 'i',
	    .atomic = true,
	    .def = "CREATE OR REPLACE FUNCTION public.atomic_ret(a integer)\n "
		   "RETURNS integer\n LANGUAGE sql\n"
		   "RETURN (a + 1)\n" },
	  RO },
	{ { .oid = 192,
	    .schema = "public",
	    .name = "atomic_tenant",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 'v',
	    .atomic = true,
	    .def = "CREATE OR REPLACE FUNCTION public.atomic_tenant()\n RETURNS "
		   "text\n LANGUAGE sql\n"
		   "RETURN public.app_set_tenant('x'::text)\n" },
	  ID },
	{ { .oid = 193,
	    .schema = "public",
	    .name = "def_write",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 'v',
	    .src = "SELECT $1",
	    .defaults = "public.next_id()" },
	  WR },
	/* a user function PostgreSQL may pick for a built-in name: lower(1) */
	{ { .oid = 200,
	    .schema = "public",
	    .name = "lower",
	    .args = "integer",
	    .lang = "sql",
	    .kind = 'f',
	    .volatility = 'v',
	    .src = "INSERT INTO t VALUES ($1) RETURNING 'x'" },
	  WR },
	{ SQLFN(201, "shadow_caller", "SELECT lower(1)"), WR },
	/* aggregates run their support functions */
	{ { .oid = 210,
	    .schema = "public",
	    .name = "evil_agg",
	    .lang = "internal",
	    .kind = 'a',
	    .volatility = 'v',
	    .src = "aggregate_dummy" },
	  ID },
	{ { .oid = 211,
	    .schema = "public",
	    .name = "sum_agg",
	    .lang = "internal",
	    .kind = 'a',
	    .volatility = 'i',
	    .src = "aggregate_dummy" },
	  RO },
	{ { .oid = 212,
	    .schema = "public",
	    .name = "write_agg",
	    .lang = "internal",
	    .kind = 'a',
	    .volatility = 'v',
	    .src = "aggregate_dummy" },
	  WR },
	/* a function reading a view runs the view's definition */
	{ SQLFN(220, "reads_view", "SELECT count(*) FROM billing.v_tenant"), ID },
	{ SQLFN(221, "reads_plain_view", "SELECT count(*) FROM v_plain"), RO },
	/* grants, lexing, function DDL */
	{ PLFN(220, "grant_anon", "", "void", " BEGIN GRANT SELECT ON t TO anon; END "), GR },
	{ PLFN(221, "lex_fn", "", "void", " BEGIN SET standard_conforming_strings = off; END "), LEX },
	{ PLFN(222, "ddl_fn", "", "void",
	       " BEGIN CREATE OR REPLACE FUNCTION x() RETURNS int LANGUAGE sql AS "
	       "'select 1'; END "),
	  WR },
	{ PLFN(223, "unparsable_pl", "", "void", " BEGIN IF THEN END "), OPQ },
};

/* Views: pg_get_viewdef() text (names outside pg_catalog qualified, as under an empty search_path). */
typedef struct view_case {
	const char *schema, *name, *def;
} view_case;

static const view_case views[] = {
	{ "billing", "v_tenant", " SELECT public.app_set_tenant('globex'::text) AS app_set_tenant;" },
	{ "other", "v_tenant", " SELECT 1 AS one;" }, /* same name, read-only: unqualified reads still deny */
	{ "billing", "v_write", " SELECT public.archive_old_rows() AS a;" },
	{ "billing", "v_over", " SELECT v_tenant.app_set_tenant FROM billing.v_tenant;" },
	{ "app", "v_w2", " SELECT v_write.a FROM billing.v_write JOIN public.t USING (a);" },
	{ "public", "v_plain", " SELECT t.a, upper(t.b) AS b FROM public.t WHERE t.a > 1;" },
	{ "app", "v_helper", " SELECT public.helper_read(t.b) AS h FROM public.t;" },
	/* cycles cannot exist in PostgreSQL; the fixpoint must not care */
	{ "app", "v_cyc1", " SELECT v_cyc2.a FROM app.v_cyc2;" },
	{ "app", "v_cyc2", " SELECT v_cyc1.a FROM app.v_cyc1;" },
	{ "app", "v_cyc_id1", " SELECT x.a FROM app.v_cyc_id2 x;" },
	{ "app", "v_cyc_id2", " SELECT y.a FROM app.v_cyc_id1 y, billing.v_tenant;" },
	{ "app", "v_broken", " SELEC 1;" },
};

/* The class of a set of CJ_ bits, most restrictive first. */
static const char *class_of(uint32_t bits)
{
	if (bits & CJ_LEXING)
		return LEX;
	if (bits & CJ_IDENTITY)
		return ID;
	if (bits & CJ_GRANT)
		return GR;
	if (bits & CJ_OPAQUE)
		return OPQ;
	if (bits & CJ_WRITE)
		return WR;
	return RO;
}

/* ---- fixture ---- */

typedef struct fixture {
	pgw_config *cfg;
	fn_catalog *cat;
	policy_classifier *pc;
	pgw_token who;
	time_t outside, inside;
} fixture;

static time_t utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };

	return timegm(&tm);
}

static fn_catalog *build_catalog(const pgw_config *cfg)
{
	fn_catalog *c = catalog_new();
	char *err = NULL;

	assert_non_null(c);
	assert_int_equal(catalog_add_system(c, "pg_catalog", "lower"), 0);
	assert_int_equal(catalog_add_system(c, "pg_catalog", "some_untabled_builtin"), 0);
	assert_int_equal(catalog_add_system(c, "pg_catalog", "set_config"), 0);
	assert_int_equal(catalog_add_system(c, "information_schema", "_pg_expandarray"), 0);
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
		assert_int_equal(catalog_add_row(c, &fns[i].row), 0);
	assert_int_equal(catalog_add_agg_support(c, 210, 2078, "pg_catalog", "set_config", 'v'), 0);
	assert_int_equal(catalog_add_agg_support(c, 211, 177, "pg_catalog", "int4pl", 'i'), 0);
	assert_int_equal(catalog_add_agg_support(c, 212, 121, "public", "ins_sql", 'v'), 0);
	for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++)
		assert_int_equal(catalog_add_view(c, views[i].schema, views[i].name, views[i].def), 0);
	if (catalog_finish(c, cfg, &err) != 0)
		fail_msg("catalog_finish: %s", err);
	return c;
}

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));
	pgw_errors e = { 0 };

	fx->cfg = config_load(DATA, &e);
	for (size_t i = 0; i < e.n; i++)
		fprintf(stderr, "%s\n", e.msgs[i]);
	errors_free(&e);
	if (!fx->cfg)
		return -1;
	fx->cat = build_catalog(fx->cfg);
	fx->pc = policy_classifier_new(4096);
	fx->who.actor = "user:brent";
	fx->who.role = "app_rw";
	fx->outside = utc(2026, 11, 24, 12, 0);
	fx->inside = utc(2026, 11, 24, 22, 30);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;

	catalog_unref(fx->cat);
	policy_classifier_free(fx->pc);
	config_unref(fx->cfg);
	free(fx);
	return 0;
}

static const char *judge_class(const fn_catalog *c, const char *called, uint32_t *bits)
{
	catalog_judgement j = { 0 };

	catalog_judge(c, called, false, &j);
	if (bits)
		*bits = j.bits;
	return class_of(j.bits);
}

/* ---- body classification ---- */

static void test_body_classes(void **state)
{
	fixture *fx = *state;
	char qual[128], why[1024];

	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		const char *got;

		if (!fns[i].expect)
			continue;
		snprintf(qual, sizeof(qual), "%s.%s", fns[i].row.schema, fns[i].row.name);
		got = judge_class(fx->cat, qual, NULL);
		if (strcmp(got, fns[i].expect) != 0) {
			catalog_explain(fx->cat, qual, why, sizeof(why));
			fail_msg("%s: want %s got %s\n  %s", qual, fns[i].expect, got, why);
		}
	}
}

/* Overloads and name resolution: the most restrictive candidate wins; unknown names are opaque. */
static void test_resolution(void **state)
{
	fixture *fx = *state;
	static const struct {
		const char *called;
		const char *expect;
	} cases[] = {
		{ "ovl", ID },         /* any schema, any argument types */
		{ "public.ovl", WR },  /* qualified: public's two overloads */
		{ "other.ovl", ID },   /* qualified: other's one */
		{ "nope.ovl", OPQ },   /* no such schema: cannot be what the server runs */
		{ "no_such_fn", OPQ }, /* created after the catalog was read, or temporary */
		{ "pg_temp.f", OPQ },
		{ "some_untabled_builtin", WR }, /* a built-in the table does not know */
		{ "pg_catalog.some_untabled_builtin", WR },
		{ "information_schema._pg_expandarray", WR },
		{ "lower", WR }, /* public.lower(integer) writes; pg_catalog.lower is a built-in */
		{ "helper_read", RO },
		{ "safe_fn", RO },
		{ "c_fn", OPQ },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = judge_class(fx->cat, cases[i].called, NULL);

		if (strcmp(got, cases[i].expect) != 0)
			fail_msg("%s: want %s got %s", cases[i].called, cases[i].expect, got);
	}
}

static void test_func_ddl_bit_and_reasons(void **state)
{
	fixture *fx = *state;
	catalog_judgement j = { 0 };
	uint32_t bits;

	judge_class(fx->cat, "ddl_fn", &bits);
	assert_true(bits & CJ_FUNC_DDL);
	judge_class(fx->cat, "level2_write", &bits);
	assert_false(bits & CJ_FUNC_DDL);
	/* Reasons follow the chain and name the functions on the way. */
	catalog_judge(fx->cat, "level2_tenant", false, &j);
	assert_string_equal(j.fn[2], "level2_tenant");
	assert_non_null(strstr(j.why[2], "calls public.app_set_tenant: sets app.tenant_id"));
	/* builtin_named: only user functions count, absence is fine. */
	memset(&j, 0, sizeof(j));
	catalog_judge(fx->cat, "upper", true, &j);
	assert_int_equal(j.bits, 0);
	catalog_judge(fx->cat, "lower", true, &j);
	assert_int_equal(j.bits, CJ_WRITE);
}

static void test_counts_and_explain(void **state)
{
	fixture *fx = *state;
	catalog_counts k;
	char buf[2048], small[40];
	size_t n;

	catalog_counts_get(fx->cat, &k);
	assert_int_equal(k.analysed, sizeof(fns) / sizeof(fns[0]));
	assert_int_equal(k.analysed, k.read_only + k.writes + k.identity + k.opaque);
	assert_int_equal(k.trusted, 4);
	assert_int_equal(k.views, sizeof(views) / sizeof(views[0]));
	assert_int_equal(k.views_denied, 7); /* billing.v_tenant, v_write, v_over; app.v_w2, v_cyc_id1/2, v_broken */
	assert_true(k.identity >= 10 && k.opaque >= 5 && k.writes >= 10 && k.read_only >= 10);

	n = catalog_explain(fx->cat, "ovl", buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_non_null(strstr(buf, "public.ovl(integer) sql immutable function: read-only\n"));
	assert_non_null(strstr(buf, "public.ovl(text) sql volatile function: write: INSERT;\n"));
	assert_non_null(strstr(buf,
			       "other.ovl(integer) sql volatile function: "
			       "identity-change: sets app.tenant_id"));
	catalog_explain(fx->cat, "sd_tenant", buf, sizeof(buf));
	assert_non_null(strstr(buf, "security definer"));
	assert_non_null(strstr(buf, "SET app.tenant_id in its definition"));
	catalog_explain(fx->cat, "safe_fn", buf, sizeof(buf));
	assert_non_null(strstr(buf, " trusted: read-only"));
	catalog_explain(fx->cat, "no_such_fn", buf, sizeof(buf));
	assert_non_null(strstr(buf, "not in the catalog"));
	n = catalog_explain(fx->cat, "ovl", small, sizeof(small));
	assert_int_equal(n, sizeof(small) - 1);
	assert_int_equal(strlen(small), n);
}

/* ---- verdicts with a catalog ---- */

#define V_OK  "allow"
#define V_WOW "write-outside-window"
#define V_ID  "identity-change"
#define V_OPQ "opaque-sql"
#define V_GR  "grant-to-protected-role"
#define V_UNP "unparsable"

typedef struct verdict_case {
	const char *sql;
	const char *prod_out, *prod_in, *staging;
} verdict_case;

static const verdict_case verdicts[] = {
	{ "SELECT app_set_tenant('globex')", V_ID, V_ID, V_ID },
	{ "SELECT * FROM t WHERE tenant = public.set_tenant_pl('x')", V_ID, V_ID, V_ID },
	{ "SELECT archive_old_rows()", V_WOW, V_OK, V_OK },
	{ "SELECT helper_read(name) FROM t", V_OK, V_OK, V_OK },
	{ "SELECT level2_read()", V_OK, V_OK, V_OK },
	{ "SELECT level2_write()", V_WOW, V_OK, V_OK },
	{ "SELECT cyc_r1()", V_OK, V_OK, V_OK },
	{ "SELECT cyc_a()", V_ID, V_ID, V_ID },
	{ "SELECT c_fn()", V_OPQ, V_OPQ, V_OPQ },
	{ "SELECT dyn()", V_OPQ, V_OPQ, V_OPQ },
	{ "SELECT safe_fn(1)", V_OK, V_OK, V_OK },
	{ "SELECT ext.c_trusted()", V_OK, V_OK, V_OK },
	{ "SELECT no_such_fn()", V_OPQ, V_OPQ, V_OPQ },
	{ "SELECT some_untabled_builtin()", V_WOW, V_OK, V_OK },
	{ "SELECT lower(1)", V_WOW, V_OK, V_OK },
	{ "SELECT upper('x')", V_OK, V_OK, V_OK },
	{ "SELECT ovl(1)", V_ID, V_ID, V_ID },
	{ "SELECT public.ovl(1)", V_WOW, V_OK, V_OK },
	{ "CALL proc_write()", V_WOW, V_OK, V_OK },
	{ "SELECT sd_tenant()", V_ID, V_ID, V_ID },
	{ "SELECT evil_agg(x, false) FROM t", V_ID, V_ID, V_ID },
	{ "SELECT sum_agg(x) FROM t", V_OK, V_OK, V_OK },
	{ "SELECT grant_anon()", V_GR, V_GR, V_GR },
	{ "SELECT lex_fn()", V_UNP, V_UNP, V_UNP },
	{ "PREPARE p AS SELECT app_set_tenant('x')", V_ID, V_ID, V_ID },
	{ "DO $$ BEGIN PERFORM archive_old_rows(); END $$", V_WOW, V_OK, V_OK },
	{ "SELECT 1", V_OK, V_OK, V_OK },
	/* views: reading one runs its definition */
	{ "SELECT * FROM billing.v_tenant", V_ID, V_ID, V_ID },
	{ "SELECT * FROM v_tenant", V_ID, V_ID, V_ID }, /* any schema: billing's counts */
	{ "SELECT * FROM other.v_tenant", V_OK, V_OK, V_OK },
	{ "SELECT * FROM nosuch.v_tenant", V_OK, V_OK, V_OK }, /* not a view: a table */
	{ "SELECT * FROM billing.v_write", V_WOW, V_OK, V_OK },
	{ "SELECT * FROM billing.v_over", V_ID, V_ID, V_ID }, /* view over a view over the function */
	{ "SELECT * FROM app.v_w2", V_WOW, V_OK, V_OK },
	{ "SELECT * FROM v_plain p JOIN t USING (a)", V_OK, V_OK, V_OK },
	{ "SELECT * FROM app.v_helper", V_OK, V_OK, V_OK },
	{ "SELECT * FROM app.v_cyc1", V_OK, V_OK, V_OK },
	{ "SELECT * FROM app.v_cyc_id1", V_ID, V_ID, V_ID },
	{ "SELECT * FROM app.v_broken", V_OPQ, V_OPQ, V_OPQ },
	{ "SELECT (SELECT count(*) FROM billing.v_write)", V_WOW, V_OK, V_OK },
	{ "WITH x AS (SELECT * FROM billing.v_tenant) SELECT * FROM x", V_ID, V_ID, V_ID },
	{ "SELECT * FROM t WHERE a IN (SELECT 1 FROM v_tenant)", V_ID, V_ID, V_ID },
	{ "UPDATE billing.v_tenant SET app_set_tenant = 'x'", V_ID, V_ID, V_ID },
	{ "DO $$ BEGIN PERFORM * FROM billing.v_tenant; END $$", V_ID, V_ID, V_ID },
	{ "PREPARE pv AS SELECT * FROM billing.v_write", V_WOW, V_OK, V_OK },
	{ "SELECT reads_view()", V_ID, V_ID, V_ID },
	{ "SELECT reads_plain_view()", V_OK, V_OK, V_OK },
};

static const char *verdict_of(fixture *fx, const char *sql, const char *target, time_t now, bool stale,
			      policy_verdict *out)
{
	static const policy_lexctx on = { .standard_conforming_strings = true };
	policy_subject s = { .cfg = fx->cfg,
			     .target = config_find_target(fx->cfg, target),
			     .who = &fx->who,
			     .now = now,
			     .catalog = fx->cat,
			     .catalog_stale = stale };
	policy_analysis a;
	const char *r = V_OK;

	assert_int_equal(policy_analyze(fx->pc, sql, strlen(sql), &on, &a), 0);
	assert_int_equal(a.n, 1);
	policy_decide(&s, a.v[0].facts, sql, strlen(sql), out);
	if (out->deny)
		r = out->rule;
	policy_analysis_clear(&a);
	return r;
}

/* Built-ins by pg_proc facts; attribute notation as one-argument calls; hooks (issue 14 holes 1, 2, item 7). */
static void test_builtin_facts_attrs_and_hooks(void **state)
{
	fixture *fx = *state;
	fn_catalog *c = catalog_new();
	char *err = NULL;
	static const policy_lexctx on = { .standard_conforming_strings = true };
	catalog_row set_t = { .oid = 900, .schema = "s", .name = "set_t", .lang = "sql", .kind = 'f',
			      .volatility = 'v', .src = "SELECT set_config('app.tenant_id', $1, false)",
			      .nargs_min = 1, .nargs_max = 1 };
	catalog_row two = { .oid = 901, .schema = "s", .name = "two_args", .lang = "sql", .kind = 'f',
			    .volatility = 'v', .src = "SELECT set_config('app.tenant_id', $1, false)",
			    .nargs_min = 2, .nargs_max = 2 };
	static const struct {
		const char *sql;
		const char *want; /* verdict on staging */
	} cases[] = {
		{ "SELECT numrange(1, 2)", V_OK },                 /* immutable built-in */
		{ "SELECT some_volatile(1)", V_OK },               /* volatile: a write, allowed on staging */
		{ "SELECT ('x'::text).set_t", V_ID },              /* attribute notation */
		{ "SELECT (t.b).set_t FROM t", V_ID },
		{ "SELECT t.set_t FROM t", V_ID },
		{ "SELECT ('x'::text).two_args", V_OK },           /* two arguments: only a column */
		{ "SELECT t.a, t.b FROM t", V_OK },                /* no function of those names */
		{ "SELECT ('x'::text).ts_stat", V_OPQ },           /* a dangerous built-in's own judgement */
		{ "SELECT ('x'::text).query_to_xml", V_OK },       /* four arguments: only a column */
		{ "SELECT query_to_xml('x', true, true, '')", V_OPQ },
		{ "SELECT jsonb('{}')", V_OK },                    /* a type: a function-style cast */
		{ "SELECT 'a' === 'b'", V_ID },                    /* an operator bound to set_t */
		{ "SELECT 'a' OPERATOR(s.===) 'b'", V_ID },
		{ "SELECT 1 FROM t WHERE a IN (SELECT a FROM t)", V_OK },
		{ "INSERT INTO s.trig VALUES (1)", V_ID },         /* a trigger */
		{ "SELECT * FROM s.trig", V_OK },                  /* reading runs no trigger */
		{ "SELECT * FROM s.pol", V_ID },                   /* a policy */
		{ "SELECT 'x'::s.d", V_ID },                       /* a domain CHECK */
		{ "DELETE FROM s.parent", V_ID },                  /* a cascade into s.trig */
		{ "CREATE TABLE x (a int)", V_ID },                /* an event trigger fires on DDL */
		{ "INSERT INTO t VALUES (1)", V_OK },              /* ... not on DML */
	};

	assert_non_null(c);
	assert_int_equal(catalog_add_builtin(c, "pg_catalog", "numrange", 'i', 2, 3), 0);
	assert_int_equal(catalog_add_builtin(c, "pg_catalog", "some_volatile", 'v', 1, 1), 0);
	assert_int_equal(catalog_add_builtin(c, "pg_catalog", "query_to_xml", 's', 4, 4), 0);
	assert_int_equal(catalog_add_builtin(c, "pg_catalog", "set_config", 'v', 3, 3), 0);
	assert_int_equal(catalog_add_builtin(c, "pg_catalog", "ts_stat", 'v', 1, 2), 0);
	assert_int_equal(catalog_add_builtin(c, "pg_catalog", "upper", 'i', 1, 1), 0);
	assert_int_equal(catalog_add_type(c, "jsonb"), 0);
	assert_int_equal(catalog_add_row(c, &set_t), 0);
	assert_int_equal(catalog_add_row(c, &two), 0);
	assert_int_equal(catalog_add_hook(c, CATALOG_HOOK_OPERATOR, "", "===", "SELECT s.set_t(NULL)"), 0);
	assert_int_equal(catalog_add_hook(c, CATALOG_HOOK_WRITE, "s", "trig",
					  "CREATE TRIGGER x BEFORE INSERT ON s.trig FOR EACH ROW EXECUTE FUNCTION "
					  "s.set_t(); SELECT s.set_t(NULL)"),
			 0);
	assert_int_equal(catalog_add_hook(c, CATALOG_HOOK_READ, "s", "pol", "SELECT s.set_t('x')"), 0);
	assert_int_equal(catalog_add_hook(c, CATALOG_HOOK_TYPE, "s", "d", "SELECT s.set_t(VALUE)"), 0);
	assert_int_equal(catalog_add_hook(c, CATALOG_HOOK_WRITE, "s", "parent", "DELETE FROM s.trig"), 0);
	assert_int_equal(catalog_add_hook(c, CATALOG_HOOK_DDL, "", "", "SELECT s.set_t(NULL)"), 0);
	if (catalog_finish(c, fx->cfg, &err) != 0)
		fail_msg("catalog_finish: %s", err);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		policy_subject subj = { .cfg = fx->cfg,
					.target = config_find_target(fx->cfg, "staging"),
					.who = &fx->who,
					.now = fx->outside,
					.catalog = c };
		policy_analysis a;
		policy_verdict v;
		const char *got;

		assert_int_equal(policy_analyze(fx->pc, cases[i].sql, strlen(cases[i].sql), &on, &a), 0);
		policy_decide(&subj, a.v[0].facts, cases[i].sql, strlen(cases[i].sql), &v);
		got = v.deny ? v.rule : V_OK;
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("%s: want %s got %s (%s)", cases[i].sql, cases[i].want, got, v.message);
		policy_analysis_clear(&a);
	}
	catalog_unref(c);
}

/* Per-name staleness (issue 14 item 6): DDL on one function holds up only what uses it. */
static void test_stale_names(void **state)
{
	fixture *fx = *state;
	static const policy_lexctx on = { .standard_conforming_strings = true };
	static const struct {
		const char *sql;
		bool denied;
	} cases[] = {
		{ "SELECT helper_read('x')", true },               /* named */
		{ "SELECT ('x'::text).helper_read", true },         /* attribute notation */
		{ "SELECT * FROM v_plain", true },                  /* a view whose definition changed */
		{ "SELECT reads_plain_view()", true },              /* a function that reaches it */
		{ "SELECT archive_old_rows() FROM t", false },      /* another function (a write: staging) */
		{ "SELECT lower(t.b), t.a FROM t", false },          /* built-ins and columns */
	};
	catalog_stale *st = catalog_stale_new();
	policy_subject subj = { .cfg = fx->cfg,
				.target = config_find_target(fx->cfg, "staging"),
				.who = &fx->who,
				.now = fx->outside,
				.catalog = fx->cat,
				.stale_names = st };

	catalog_stale_add(st, "public.helper_read", 5);
	catalog_stale_add(st, "v_plain", 5);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		policy_analysis a;
		policy_verdict v;

		assert_int_equal(policy_analyze(fx->pc, cases[i].sql, strlen(cases[i].sql), &on, &a), 0);
		policy_decide(&subj, a.v[0].facts, cases[i].sql, strlen(cases[i].sql), &v);
		if (v.deny != cases[i].denied || (v.deny && strcmp(v.rule, "opaque-sql") != 0))
			fail_msg("%s: denied %d (%s)", cases[i].sql, v.deny, v.message);
		policy_analysis_clear(&a);
	}
	/* A load started after mark 5 covers it; one started before does not. */
	catalog_stale_covered(st, 4);
	assert_true(catalog_stale_has(st, "helper_read"));
	catalog_stale_covered(st, 5);
	assert_false(catalog_stale_any(st));
	catalog_stale_free(st);
}

static void test_verdicts(void **state)
{
	fixture *fx = *state;
	policy_verdict v;

	for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++) {
		const verdict_case *c = &verdicts[i];
		const char *got;

		if (strcmp(got = verdict_of(fx, c->sql, "prod", fx->outside, false, &v), c->prod_out) != 0)
			fail_msg("prod outside: %s\n  want %s got %s (%s)", c->sql, c->prod_out, got,
				 v.message);
		if (strcmp(got = verdict_of(fx, c->sql, "prod", fx->inside, false, &v), c->prod_in) != 0)
			fail_msg("prod inside: %s\n  want %s got %s (%s)", c->sql, c->prod_in, got,
				 v.message);
		if (strcmp(got = verdict_of(fx, c->sql, "staging", fx->outside, false, &v), c->staging) != 0)
			fail_msg("staging: %s\n  want %s got %s (%s)", c->sql, c->staging, got, v.message);
	}
}

static void test_verdict_messages(void **state)
{
	fixture *fx = *state;
	policy_verdict v;

	verdict_of(fx, "SELECT archive_old_rows()", "prod", fx->outside, false, &v);
	assert_string_equal(v.message,
			    "pgwarden: write outside an approved window: "
			    "function archive_old_rows: DELETE");
	assert_non_null(strstr(v.hint, "sec-42"));
	verdict_of(fx, "SELECT archive_old_rows()", "prod", fx->inside, false, &v);
	assert_string_equal(v.window, "sec-42");
	verdict_of(fx, "SELECT helper_read('x')", "prod", fx->inside, false, &v);
	assert_null(v.window);
	verdict_of(fx, "SELECT app_set_tenant('globex')", "staging", fx->outside, false, &v);
	assert_string_equal(v.message,
			    "pgwarden: identity change is not allowed: "
			    "function app_set_tenant: sets app.tenant_id");
	verdict_of(fx, "SELECT * FROM billing.v_tenant", "staging", fx->outside, false, &v);
	assert_string_equal(v.message,
			    "pgwarden: identity change is not allowed: view billing.v_tenant: "
			    "calls public.app_set_tenant: sets app.tenant_id");
	verdict_of(fx, "SELECT * FROM billing.v_over", "staging", fx->outside, false, &v);
	assert_string_equal(v.message,
			    "pgwarden: identity change is not allowed: view billing.v_over: "
			    "reads view billing.v_tenant: calls public.app_set_tenant: sets app.tenant_id");
	verdict_of(fx, "SELECT * FROM billing.v_write", "prod", fx->outside, false, &v);
	assert_string_equal(v.message,
			    "pgwarden: write outside an approved window: view billing.v_write: "
			    "calls public.archive_old_rows: DELETE");
	/* A function's bit stays the function's even when a view also has it. */
	verdict_of(fx, "SELECT app_set_tenant('x') FROM billing.v_tenant", "staging", fx->outside, false, &v);
	assert_non_null(strstr(v.message, "function app_set_tenant: sets app.tenant_id"));
	/* Everything stale (the changed names are unknown): whatever the catalog judges waits, SELECT 1 does not. */
	assert_string_equal(verdict_of(fx, "SELECT * FROM v_plain", "staging", fx->outside, true, &v), V_OPQ);
	verdict_of(fx, "SELECT c_fn()", "staging", fx->outside, false, &v);
	assert_non_null(strstr(v.message, "function c_fn: written in language c"));
	/* A stale catalog denies calls of user functions, nothing else. */
	assert_string_equal(verdict_of(fx, "SELECT helper_read('x')", "staging", fx->outside, true, &v),
			    V_OPQ);
	assert_string_equal(verdict_of(fx, "SELECT 1", "staging", fx->outside, true, &v), V_OK);
	/* Function DDL asks for a refresh, when allowed. */
	verdict_of(fx, "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'", "staging", fx->outside,
		   false, &v);
	assert_true(v.refresh_catalog);
	verdict_of(fx, "SELECT ddl_fn()", "staging", fx->outside, false, &v);
	assert_true(v.refresh_catalog);
	verdict_of(fx, "SELECT ddl_fn()", "prod", fx->outside, false, &v);
	assert_true(v.deny);
	assert_false(v.refresh_catalog);
	verdict_of(fx, "SELECT helper_read('x')", "staging", fx->outside, false, &v);
	assert_false(v.refresh_catalog);
}

/* ---- PF_FUNC_DDL in the classifier ---- */

static void test_func_ddl_flag(void **state)
{
	fixture *fx = *state;
	static const policy_lexctx on = { .standard_conforming_strings = true };
	static const struct {
		const char *sql;
		bool ddl;
	} cases[] = {
		{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'", true },
		{ "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS 'select 1'", true },
		{ "ALTER FUNCTION f() SET search_path = public", true },
		{ "ALTER FUNCTION f() RESET ALL", true },
		{ "ALTER ROUTINE f() SECURITY DEFINER", true },
		{ "ALTER PROCEDURE p() SET app.tenant_id = 'x'", true },
		{ "ALTER FUNCTION f() RENAME TO g", true },
		{ "ALTER FUNCTION f() SET SCHEMA s", true },
		{ "DROP FUNCTION f()", true },
		{ "DROP PROCEDURE IF EXISTS p", true },
		{ "DROP ROUTINE f, g", true },
		{ "CREATE AGGREGATE a(int) (sfunc = int4pl, stype = int)", true },
		{ "DROP AGGREGATE a(int)", true },
		{ "CREATE EXTENSION dblink", true },
		{ "ALTER EXTENSION x UPDATE", true },
		{ "ALTER EXTENSION x ADD FUNCTION f()", true },
		{ "DROP EXTENSION x", true },
		{ "DROP SCHEMA s CASCADE", true },
		{ "ALTER SCHEMA s RENAME TO t", true },
		{ "CREATE LANGUAGE plfoo", true },
		{ "DROP LANGUAGE plfoo", true },
		{ "DROP OWNED BY bob", true },
		{ "DO $$ BEGIN CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select "
		  "1'; END $$",
		  true },
		{ "CREATE VIEW v AS SELECT 1", true },
		{ "CREATE OR REPLACE VIEW v AS SELECT app_set_tenant('x')", true },
		{ "ALTER VIEW v RENAME TO w", true },
		{ "ALTER VIEW v SET SCHEMA s", true },
		{ "DROP VIEW v", true },
		{ "CREATE RULE r AS ON SELECT TO t DO INSTEAD SELECT 1", true },
		/* What tables, types, operators and casts run (the catalog's hooks) changes too. */
		{ "CREATE TABLE t (a int)", true },
		{ "DROP TABLE t", true },
		{ "ALTER TABLE t RENAME TO u", true },
		{ "CREATE SCHEMA s", true },
		{ "CREATE TRIGGER tg BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", true },
		{ "ALTER TABLE t ALTER COLUMN a SET DEFAULT f()", true },
		{ "ALTER TABLE t ENABLE TRIGGER tg", true },
		{ "CREATE POLICY p ON t USING (f())", true },
		{ "ALTER POLICY p ON t USING (g())", true },
		{ "CREATE OPERATOR === (LEFTARG = text, RIGHTARG = text, FUNCTION = f)", true },
		{ "CREATE CAST (t AS int) WITH FUNCTION f(t)", true },
		{ "CREATE DOMAIN d AS int CHECK (f(VALUE))", true },
		{ "ALTER DOMAIN d ADD CHECK (g(VALUE))", true },
		{ "CREATE INDEX ON t (f(a))", true },
		{ "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", true },
		{ "DROP TRIGGER tg ON t", true },
		{ "DROP POLICY p ON t", true },
		{ "SELECT 1", false },
		{ "INSERT INTO t VALUES (1)", false },
		{ "CREATE ROLE r", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		policy_analysis a;
		uint32_t fl;

		assert_int_equal(policy_analyze(fx->pc, cases[i].sql, strlen(cases[i].sql), &on, &a), 0);
		assert_int_equal(a.n, 1);
		fl = policy_facts_flags(a.v[0].facts);
		if (((fl & PF_FUNC_DDL) != 0) != cases[i].ddl)
			fail_msg("%s: want PF_FUNC_DDL %d", cases[i].sql, cases[i].ddl);
		if (cases[i].ddl)
			assert_false(fl & PF_READ_ONLY);
		policy_analysis_clear(&a);
	}
}

/* The relations a statement names: RangeVars anywhere (FROM, subqueries, DML targets, DO bodies), folded. */
static void test_relation_facts(void **state)
{
	fixture *fx = *state;
	static const policy_lexctx on = { .standard_conforming_strings = true };
	static const struct {
		const char *sql;
		const char *rels; /* joined by ' ', in walk order (target list before FROM) */
	} cases[] = {
		{ "SELECT 1", "" },
		{ "SELECT * FROM Billing.V_Tenant", "billing.v_tenant" },
		{ "SELECT * FROM \"Billing\".\"V\" JOIN t USING (a)", "Billing.V t" },
		{ "SELECT (SELECT max(a) FROM s.u) FROM t, LATERAL (SELECT * FROM w) x", "s.u t w" },
		{ "INSERT INTO db.s.t SELECT * FROM v", "s.t v" },
		{ "UPDATE t SET a = 1 FROM u", "t u" },
		{ "DELETE FROM s.t", "s.t" },
		{ "WITH c AS (SELECT 1) SELECT * FROM c", "c" },
		{ "DO $$ BEGIN PERFORM * FROM s.v; END $$", "s.v" },
		{ "SELECT * FROM generate_series(1, 3)", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		policy_analysis a;
		char got[256] = "";
		char *const *v;
		size_t n;

		/* Twice: the second answer comes from the cache and must be the same. */
		for (int pass = 0; pass < 2; pass++) {
			got[0] = '\0';
			assert_int_equal(policy_analyze(fx->pc, cases[i].sql, strlen(cases[i].sql), &on, &a), 0);
			assert_int_equal(a.n, 1);
			v = policy_facts_relations(a.v[0].facts, &n);
			for (size_t k = 0; k < n; k++)
				snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? " " : "", v[k]);
			policy_analysis_clear(&a);
			if (strcmp(got, cases[i].rels) != 0)
				fail_msg("%s (pass %d): want \"%s\" got \"%s\"", cases[i].sql, pass, cases[i].rels,
					 got);
		}
	}
}

/* Texts that differ only in the relation name must not share cached facts (names are in the key). */
static void test_relation_cache_key(void **state)
{
	fixture *fx = *state;
	policy_verdict v;

	for (int i = 0; i < 3; i++) {
		assert_string_equal(verdict_of(fx, "SELECT * FROM app.v_cyc1", "staging", fx->outside, false, &v),
				    V_OK);
		assert_string_equal(verdict_of(fx, "SELECT * FROM app.v_cyc_id1", "staging", fx->outside, false,
					       &v),
				    V_ID);
		assert_string_equal(verdict_of(fx, "select * from APP.V_CYC_ID1", "staging", fx->outside, false,
					       &v),
				    V_ID);
	}
}

/* A temporary function could never be read by the catalog's connection: refused. */
static void test_pg_temp_function(void **state)
{
	fixture *fx = *state;
	policy_verdict v;

	assert_string_equal(verdict_of(fx,
				       "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'select 1'",
				       "staging", fx->outside, false, &v),
			    V_OPQ);
}

/* ---- scale: 5,000 functions without a database ---- */

static void test_bench_build(void **state)
{
	fixture *fx = *state;
	enum { N = 5000 };
	static char names[N][24], srcs[N][128], defs[N][512];
	fn_catalog *c = catalog_new();
	struct timespec t0, t1;
	char *err = NULL;
	catalog_counts k;

	for (int i = 0; i < N; i++) {
		catalog_row r = { .oid = 10000 + (uint32_t)i,
				  .schema = "bench",
				  .name = names[i],
				  .kind = 'f',
				  .volatility = 'v' };

		snprintf(names[i], sizeof(names[i]), "fn_%d", i);
		if (i % 2) {
			snprintf(srcs[i], sizeof(srcs[i]),
				 "SELECT a, b FROM t%d WHERE a = $1 AND fn_%d($1) > 0", i, i - 1);
			r.lang = "sql";
			r.src = srcs[i];
		} else {
			snprintf(defs[i], sizeof(defs[i]),
				 PL("bench.fn_%d", "a integer", "integer",
				    " DECLARE n int; BEGIN SELECT count(*) INTO n FROM t WHERE x = a; "
				    "IF n > %d THEN UPDATE t SET y = n WHERE x = a; END IF; RETURN "
				    "fn_%d(n); END "),
				 i, i, (i + 7) % N);
			r.lang = "plpgsql";
			r.def = defs[i];
		}
		assert_int_equal(catalog_add_row(c, &r), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(catalog_finish(c, fx->cfg, &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	catalog_counts_get(c, &k);
	printf("bench: classify + resolve %d functions: %.0f ms (read_only %zu, "
	       "writes %zu)\n",
	       N, (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
	       k.read_only, k.writes);
	assert_int_equal(k.analysed, N);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000000; i++) {
		catalog_judgement j = { 0 };

		catalog_judge(c, names[i % N], false, &j);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("bench: catalog_judge %.0f ns per call\n",
	       ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e6);
	catalog_unref(c);
}

/* ---- a real catalog_load, when a throwaway PostgreSQL is given ---- */

static void exec_ok(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

static const char live_schema[] = "DROP SCHEMA IF EXISTS pgw_cat CASCADE; DROP SCHEMA IF EXISTS pgw_cat2 "
				  "CASCADE;"
				  "CREATE SCHEMA pgw_cat; CREATE SCHEMA pgw_cat2; SET search_path = pgw_cat;"
				  "CREATE TABLE t (a int, ts timestamptz default now()); CREATE SEQUENCE s;"
				  "CREATE FUNCTION app_set_tenant(t text) RETURNS text LANGUAGE sql "
				  "  AS $$ SELECT set_config('app.tenant_id', t, false) $$;"
				  "CREATE FUNCTION archive_old_rows() RETURNS void LANGUAGE plpgsql "
				  "  AS $$ BEGIN DELETE FROM t WHERE ts < now() - interval '1 year'; END $$;"
				  "CREATE FUNCTION helper(x text) RETURNS text LANGUAGE plpgsql STABLE "
				  "  AS $$ BEGIN RETURN lower(x) || pgw_cat.helper2(x); END $$;"
				  "CREATE FUNCTION helper2(x text) RETURNS text LANGUAGE sql IMMUTABLE "
				  "RETURN upper(x);"
				  "CREATE FUNCTION atomic_w() RETURNS void LANGUAGE sql BEGIN ATOMIC INSERT "
				  "INTO t (a) VALUES (1); END;"
				  "CREATE FUNCTION via_atomic() RETURNS text LANGUAGE sql BEGIN ATOMIC "
				  "SELECT app_set_tenant('x'); END;"
				  "CREATE FUNCTION dyn() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE "
				  "'select 1'; END $$;"
				  "CREATE FUNCTION sd() RETURNS bigint LANGUAGE sql SECURITY DEFINER SET "
				  "app.tenant_id = 'globex' "
				  "  AS $$ SELECT count(*) FROM t $$;"
				  "CREATE FUNCTION ovl(int) RETURNS int LANGUAGE sql AS 'SELECT $1';"
				  "CREATE FUNCTION pgw_cat2.ovl(int) RETURNS int LANGUAGE sql AS 'SELECT "
				  "nextval(''pgw_cat.s'')::int';"
				  "CREATE FUNCTION defw(a bigint DEFAULT nextval('s')) RETURNS bigint "
				  "LANGUAGE sql AS 'SELECT $1';"
				  "CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.a "
				  ":= 1; RETURN NEW; END $$;"
				  "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN INSERT INTO t VALUES "
				  "(1); COMMIT; END $$;"
				  "CREATE FUNCTION cyc_a(n int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
				  "RETURN cyc_b(n); END $$;"
				  "CREATE FUNCTION cyc_b(n int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
				  "RETURN cyc_a(n); END $$;"
				  "CREATE FUNCTION sfn(text, text, boolean) RETURNS text LANGUAGE sql "
				  "  AS $$ SELECT set_config('app.tenant_id', $2, $3) $$;"
				  "CREATE AGGREGATE evil(text, boolean) (sfunc = sfn, stype = text);"
				  "CREATE AGGREGATE setcfg_agg(text, boolean) (sfunc = "
				  "pg_catalog.set_config, stype = text);"
				  "CREATE VIEW v_tenant AS SELECT app_set_tenant('x') AS t, lower('A') AS l;"
				  "CREATE VIEW pgw_cat2.v_over AS SELECT * FROM v_tenant;"
				  "CREATE VIEW v_write AS SELECT 1 AS one FROM t WHERE archive_old_rows() IS NULL;"
				  "CREATE VIEW v_plain AS SELECT a, helper(a::text) AS h FROM t;"
				  "CREATE MATERIALIZED VIEW mv AS SELECT app_set_tenant('x') AS t WITH NO DATA;";

typedef struct live_expect {
	const char *name;
	const char *expect;
} live_expect;

static const live_expect live[] = {
	{ "pgw_cat.app_set_tenant", ID },
	{ "pgw_cat.archive_old_rows", WR },
	{ "pgw_cat.helper", RO },
	{ "pgw_cat.helper2", RO },
	{ "pgw_cat.atomic_w", WR },
	{ "pgw_cat.via_atomic", ID },
	{ "pgw_cat.dyn", OPQ },
	{ "pgw_cat.sd", ID },
	{ "ovl", WR },
	{ "pgw_cat.ovl", RO },
	{ "pgw_cat.defw", WR },
	{ "pgw_cat.trg", RO },
	{ "pgw_cat.p", WR },
	{ "pgw_cat.cyc_a", RO },
	{ "pgw_cat.evil", ID },
	{ "pgw_cat.setcfg_agg", ID },
};

static void test_live_load(void **state)
{
	fixture *fx = *state;
	const char *conninfo = getenv("PGWARDEN_TEST_PG_CONNINFO");
	const char *bench = getenv("PGWARDEN_TEST_PG_BENCH");
	struct timespec t0, t1;
	fn_catalog *c;
	char *err = NULL, buf[1024];
	PGconn *conn;

	if (!conninfo || !*conninfo) {
		printf("skipped: set PGWARDEN_TEST_PG_CONNINFO to run catalog_load against "
		       "a throwaway PostgreSQL\n");
		skip();
	}
	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(conn));
	exec_ok(conn, "SET client_min_messages = warning");
	exec_ok(conn, live_schema);
	if (bench && *bench) {
		exec_ok(conn,
			"DROP SCHEMA IF EXISTS pgw_bench CASCADE; CREATE SCHEMA pgw_bench;"
			"DO $$ BEGIN FOR i IN 1..5000 LOOP IF i % 2 = 0 THEN "
			"EXECUTE format('CREATE FUNCTION pgw_bench.f%s(a int) RETURNS int "
			"LANGUAGE plpgsql AS "
			"$b$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM pgw_cat.t "
			"WHERE t.a = $1; "
			"IF n > %s THEN UPDATE pgw_cat.t SET a = n; END IF; RETURN "
			"pgw_bench.f%s(n); END $b$', "
			"i, i, i - 1); ELSE "
			"EXECUTE format('CREATE FUNCTION pgw_bench.f%s(a int) RETURNS int "
			"LANGUAGE sql AS "
			"$b$ SELECT count(*)::int FROM pgw_cat.t WHERE t.a = $1 $b$', i); "
			"END IF; END LOOP; END $$");
	}
	exec_ok(conn, "RESET search_path");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	c = catalog_load(conn, fx->cfg, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!c)
		fail_msg("catalog_load: %s", err);
	{
		catalog_counts k;

		catalog_counts_get(c, &k);
		printf("live: catalog_load %zu functions in %.0f ms (read_only %zu writes "
		       "%zu identity %zu opaque "
		       "%zu)\n",
		       k.analysed,
		       (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
		       k.read_only, k.writes, k.identity, k.opaque);
	}
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		const char *got = judge_class(c, live[i].name, NULL);

		if (strcmp(got, live[i].expect) != 0) {
			catalog_explain(c, live[i].name, buf, sizeof(buf));
			fail_msg("%s: want %s got %s\n  %s", live[i].name, live[i].expect, got, buf);
		}
	}
	/* Views: reading one is judged by its definition; a materialized view runs nothing when read. */
	{
		static const live_expect live_views[] = {
			{ "pgw_cat.v_tenant", ID }, { "pgw_cat2.v_over", ID }, { "v_over", ID },
			{ "pgw_cat.v_write", WR },  { "pgw_cat.v_plain", RO }, { "pgw_cat.mv", RO },
			{ "pgw_cat.t", RO },
		};
		catalog_counts k;

		for (size_t i = 0; i < sizeof(live_views) / sizeof(live_views[0]); i++) {
			catalog_judgement j = { 0 };

			catalog_judge_relation(c, live_views[i].name, &j);
			if (strcmp(class_of(j.bits), live_views[i].expect) != 0)
				fail_msg("%s: want %s got %s", live_views[i].name, live_views[i].expect,
					 class_of(j.bits));
		}
		catalog_counts_get(c, &k);
		assert_true(k.views >= 4);
	}
	/* The session is left idle and usable. */
	assert_int_equal(PQtransactionStatus(conn), PQTRANS_IDLE);
	exec_ok(conn,
		"DROP SCHEMA pgw_cat CASCADE; DROP SCHEMA pgw_cat2 CASCADE; "
		"DROP SCHEMA IF EXISTS pgw_bench CASCADE");
	catalog_unref(c);
	PQfinish(conn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_classes),
		cmocka_unit_test(test_resolution),
		cmocka_unit_test(test_func_ddl_bit_and_reasons),
		cmocka_unit_test(test_counts_and_explain),
		cmocka_unit_test(test_verdicts),
		cmocka_unit_test(test_verdict_messages),
		cmocka_unit_test(test_stale_names),
		cmocka_unit_test(test_builtin_facts_attrs_and_hooks),
		cmocka_unit_test(test_func_ddl_flag),
		cmocka_unit_test(test_pg_temp_function),
		cmocka_unit_test(test_relation_facts),
		cmocka_unit_test(test_relation_cache_key),
		cmocka_unit_test(test_bench_build),
		cmocka_unit_test(test_live_load),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
