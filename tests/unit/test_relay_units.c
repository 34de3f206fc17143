/* test_relay_units.c - the timeline (entries, names, mode), the pinning SQL (checked with libpg_query), stmt_table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <pg_query.h>

#include "conf/config.h"
#include "conf/tokens.h"
#include "proxy/pipeline.h"
#include "proxy/pin.h"
#include "proxy/stmt_table.h"
#include "proxy/wall.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- timeline: entries ---- */

static void test_tl_fifo_order(void **state)
{
	static const tl_kind kinds[] = {TL_PARSE, TL_BIND, TL_DESCRIBE, TL_EXECUTE, TL_SYNC, TL_QUERY, TL_CLOSE};
	timeline t;
	size_t i;
	uint64_t seq = 0;

	(void)state;
	tl_init(&t);
	assert_null(tl_head(&t));
	tl_complete_head(&t); /* completing nothing is harmless */
	for (i = 0; i < ARRAY_LEN(kinds); i++) {
		tl_entry *e = tl_push(&t, kinds[i], i % 2 ? TL_SWALLOW : TL_FORWARD);
		assert_non_null(e);
		assert_int_equal(e->kind, kinds[i]);
		assert_true(e->seq > seq); /* seqs grow: they tie name changes to entries */
		seq = e->seq;
		assert_int_equal(e->deny_at, TL_NO_DENIAL);
		assert_int_equal(tl_peek_ref(e), 0);
	}
	for (i = 0; i < ARRAY_LEN(kinds); i++) {
		assert_int_equal(tl_head(&t)->kind, kinds[i]);
		assert_int_equal(tl_head(&t)->action, i % 2 ? TL_SWALLOW : TL_FORWARD);
		tl_complete_head(&t);
	}
	assert_null(tl_head(&t));
	tl_free(&t);
}

/* The ring grows while wrapped, and inline refs follow their entries. */
static void test_tl_grow_wraparound(void **state)
{
	timeline t;
	uint32_t next_in = 0, next_out = 0, round, k;

	(void)state;
	tl_init(&t);
	for (round = 0; round < 40; round++) {
		for (k = 0; k < 7 + round % 5; k++, next_in++) {
			tl_entry *e = tl_push(&t, TL_EXECUTE, TL_FORWARD);
			uint64_t refs[4];
			uint32_t j, n = next_in % 4;
			for (j = 0; j < n; j++)
				refs[j] = (uint64_t)next_in * 100 + j + 1;
			assert_non_null(e);
			assert_true(tl_set_refs(e, refs, n));
		}
		for (k = 0; k < 5; k++, next_out++) {
			tl_entry *e = tl_head(&t);
			uint32_t j;
			for (j = 0; j < next_out % 4; j++)
				assert_int_equal(tl_take_ref(e), (uint64_t)next_out * 100 + j + 1);
			assert_int_equal(tl_take_ref(e), 0);
			tl_complete_head(&t);
		}
	}
	assert_int_equal(t.count, next_in - next_out);
	tl_free(&t);
}

typedef struct skip_case {
	const char *what;
	tl_kind queued[6];   /* entries queued behind the one that fails */
	tl_action own[6];    /* their actions */
	size_t n;
	uint32_t want_count; /* entries left */
	bool want_skipping;  /* mode SKIP afterwards */
	unsigned want_own;   /* pgwarden's own entries dropped */
} skip_case;

/*
 * PostgreSQL ignores every message until Sync after an extended-protocol
 * error, a simple Query too (postgres.c: "ignore it if we're skipping till
 * Sync"): those entries owe nothing and go.
 */
static const skip_case skip_cases[] = {
	{"Sync queued", {TL_BIND, TL_EXECUTE, TL_SYNC}, {0}, 3, 1, false, 0},
	{"Sync queued, more after it", {TL_EXECUTE, TL_SYNC, TL_PARSE, TL_SYNC}, {0}, 4, 3, false, 0},
	{"Sync right away", {TL_SYNC, TL_QUERY}, {0}, 2, 2, false, 0},
	{"no Sync yet", {TL_BIND, TL_DESCRIBE, TL_EXECUTE, TL_CLOSE}, {0}, 4, 0, true, 0},
	{"nothing after the error", {0}, {0}, 0, 0, true, 0},
	{"Query before the Sync", {TL_BIND, TL_QUERY, TL_SYNC}, {0}, 3, 1, false, 0},
	{"own re-pin before the Sync", {TL_PARSE, TL_BIND, TL_EXECUTE, TL_CLOSE, TL_SYNC},
	 {TL_SWALLOW, TL_SWALLOW, TL_SWALLOW, TL_SWALLOW, TL_FORWARD}, 5, 1, false, 4},
};

static void test_tl_error_skip(void **state)
{
	size_t i, k;

	(void)state;
	for (i = 0; i < ARRAY_LEN(skip_cases); i++) {
		const skip_case *c = &skip_cases[i];
		timeline t;
		unsigned own;

		tl_init(&t);
		assert_non_null(tl_push(&t, TL_PARSE, TL_FORWARD)); /* the message that fails */
		for (k = 0; k < c->n; k++)
			assert_non_null(tl_push(&t, c->queued[k], c->own[k]));
		own = tl_error_skip(&t);
		if (t.count != c->want_count || (t.mode == TL_MODE_SKIP) != c->want_skipping || own != c->want_own ||
		    (t.count && tl_head(&t)->kind != TL_SYNC))
			fail_msg("tl_error_skip: %s: count %u mode %d own %u", c->what, t.count, t.mode, own);
		tl_free(&t);
	}
}

/* ---- timeline: names ---- */

static stmt_info *info(const char *text)
{
	stmt_info *si = stmt_info_new(text, strlen(text), NULL);

	assert_non_null(si);
	return si;
}

/* Push an entry making one change; the change is adopted by it. */
static tl_entry *push_change(timeline *t, tl_kind kind, tl_ns ns, tl_op op, const char *name, stmt_info *si)
{
	struct tl_changes l = TAILQ_HEAD_INITIALIZER(l);
	stmt_info *cur;
	tl_entry *e;
	bool doubtful = op == TL_PUT && name && name[0] && tl_lookup(t, ns, name, &cur) != TL_NAME_NONE;

	assert_true(tl_change_add(&l, ns, op, name, si, NULL, 0, 0, doubtful, false));
	e = tl_push(t, kind, TL_FORWARD);
	assert_non_null(e);
	tl_adopt(t, e, &l);
	return e;
}

static const char *stmt_text(timeline *t, const char *name)
{
	stmt_info *si;
	tl_name_state st = tl_lookup(t, TL_NS_STMT, name, &si);

	return st == TL_NAME_KNOWN ? si->text : st == TL_NAME_DOUBTFUL ? "?" : "-";
}

/*
 * Issue 10's fail-open sequence: S1 = SELECT 1 confirmed; then Parse S1
 * (refused, 42P05), Sync, Close S1, Parse S1 lo_create, Sync. Whatever the
 * order of answers, S1 must mean lo_create, never SELECT 1 again.
 */
static void test_tl_refused_change_never_resurrects(void **state)
{
	timeline t;
	stmt_info *one = info("SELECT 1"), *two = info("SELECT 2"), *lo = info("SELECT lo_create(0)");

	(void)state;
	tl_init(&t);
	push_change(&t, TL_PARSE, TL_NS_STMT, TL_PUT, "S1", one);
	tl_complete_head(&t);
	assert_string_equal(stmt_text(&t, "S1"), "SELECT 1");
	push_change(&t, TL_PARSE, TL_NS_STMT, TL_PUT, "S1", two);
	assert_string_equal(stmt_text(&t, "S1"), "?"); /* the name is in use: the server will refuse it */
	assert_non_null(tl_push(&t, TL_SYNC, TL_FORWARD));
	push_change(&t, TL_CLOSE, TL_NS_STMT, TL_DEL, "S1", NULL);
	assert_string_equal(stmt_text(&t, "S1"), "-");
	push_change(&t, TL_PARSE, TL_NS_STMT, TL_PUT, "S1", lo);
	assert_string_equal(stmt_text(&t, "S1"), "SELECT lo_create(0)"); /* before its Sync: as predicted */
	assert_non_null(tl_push(&t, TL_SYNC, TL_FORWARD));
	assert_string_equal(stmt_text(&t, "S1"), "?"); /* a later batch waits for the answer */
	/* 42P05 for the first Parse: only its own change goes */
	assert_int_equal(tl_error_skip(&t), 0);
	assert_string_equal(stmt_text(&t, "S1"), "?");
	while (t.count)
		tl_complete_head(&t);
	assert_string_equal(stmt_text(&t, "S1"), "SELECT lo_create(0)");
	assert_ptr_equal(stmt_table_get(&t.confirmed, "S1"), lo);
	tl_free(&t);
	stmt_info_unref(one);
	stmt_info_unref(two);
	stmt_info_unref(lo);
}

/* A Close skipped after an error is undone; so is a DEALLOCATE ALL (clear). */
static void test_tl_close_undone(void **state)
{
	timeline t;
	stmt_info *a = info("SELECT a");

	(void)state;
	tl_init(&t);
	push_change(&t, TL_PARSE, TL_NS_STMT, TL_PUT, "s", a);
	tl_complete_head(&t);
	assert_non_null(tl_push(&t, TL_EXECUTE, TL_FORWARD)); /* fails */
	push_change(&t, TL_CLOSE, TL_NS_STMT, TL_DEL, "s", NULL);
	push_change(&t, TL_QUERY, TL_NS_STMT, TL_CLEAR, NULL, NULL);
	assert_string_equal(stmt_text(&t, "s"), "-");
	assert_int_equal(tl_error_skip(&t), 0);
	assert_int_equal(t.mode, TL_MODE_SKIP);
	assert_string_equal(stmt_text(&t, "s"), "SELECT a");
	tl_set_mode(&t, TL_MODE_NORMAL);
	push_change(&t, TL_CLOSE, TL_NS_STMT, TL_DEL, "s", NULL);
	tl_complete_head(&t);
	assert_null(stmt_table_get(&t.confirmed, "s"));
	tl_free(&t);
	stmt_info_unref(a);
}

/* The unnamed statement is dropped before the server parses a new one: a failed Parse "" leaves none. */
static void test_tl_unnamed_refused(void **state)
{
	timeline t;
	stmt_info *a = info("SELECT a"), *b = info("SELECT b");

	(void)state;
	tl_init(&t);
	push_change(&t, TL_PARSE, TL_NS_STMT, TL_PUT, "", a);
	tl_complete_head(&t);
	push_change(&t, TL_PARSE, TL_NS_STMT, TL_PUT, "", b);
	assert_string_equal(stmt_text(&t, ""), "SELECT b"); /* no doubt: the unnamed one is replaced */
	tl_error_skip(&t);
	assert_string_equal(stmt_text(&t, ""), "-");
	tl_free(&t);
	stmt_info_unref(a);
	stmt_info_unref(b);
}

/*
 * A Parse in a batch whose Sync is sent: a message of a later batch that
 * names it waits (an earlier message of that batch may fail, and the server
 * would skip the Parse, keeping the old meaning); before the Sync, or once
 * answered, it is known.
 */
static void test_tl_unnamed_put_of_an_earlier_batch(void **state)
{
	timeline t;
	stmt_info *old = info("SELECT lo_create(0)"), *nu = info("SELECT 1"), *si;

	(void)state;
	tl_init(&t);
	push_change(&t, TL_PARSE, TL_NS_STMT, TL_PUT, "", old);
	tl_complete_head(&t);
	assert_non_null(tl_push(&t, TL_EXECUTE, TL_FORWARD)); /* may fail at run time */
	push_change(&t, TL_PARSE, TL_NS_STMT, TL_PUT, "", nu);
	assert_string_equal(stmt_text(&t, ""), "SELECT 1"); /* same batch: skipped along with it */
	assert_non_null(tl_push(&t, TL_SYNC, TL_FORWARD));
	assert_string_equal(stmt_text(&t, ""), "?");
	assert_true(tl_doubt_awaits_server(&t, NULL, TL_NS_STMT, ""));
	push_change(&t, TL_PARSE, TL_NS_STMT, TL_PUT, "s", nu); /* after the Sync: the batch of what names it */
	assert_int_equal(tl_lookup(&t, TL_NS_STMT, "s", &si), TL_NAME_KNOWN);
	assert_non_null(tl_push(&t, TL_SYNC, TL_FORWARD));
	assert_int_equal(tl_lookup(&t, TL_NS_STMT, "s", &si), TL_NAME_DOUBTFUL); /* a Close skipped with it... */
	tl_complete_head(&t); /* the Execute ran */
	tl_complete_head(&t); /* and so did the Parse */
	assert_string_equal(stmt_text(&t, ""), "SELECT 1");
	tl_free(&t);
	stmt_info_unref(old);
	stmt_info_unref(nu);
}

/* What a failed Bind leaves (exec_bind_message), by where its SQLSTATE says it stopped. */
static const struct {
	const char *portal;   /* the Bind's portal; "old" is bound to SELECT old beforehand */
	const char *sqlstate; /* its error */
	const char *want;     /* the portal afterwards: its text, "" (dead: empty, runs nothing), "-" (none), "?" */
} failed_bind_cases[] = {
	{"", "22012", ""},        /* planning failed: the old unnamed portal is gone, a dead one stays */
	{"", "25006", ""},        /* executor start failed: the same */
	{"", "26000", "SELECT old"}, /* before CreatePortal: nothing changed */
	{"", "25P02", "SELECT old"},
	{"", "08P01", "-"},       /* either side: unknown, so denied */
	{"", "57014", "-"},
	{"", "", "-"},
	{"p", "22012", ""},       /* a named portal: dead too */
	{"p", "08P01", "-"},      /* either side: none (it was free) */
	{"old", "42P03", "SELECT old"}, /* a name in use: the server refuses it before CreatePortal */
	{"old", "22012", "SELECT old"}, /* a doubtful named Bind never leaves a dead portal */
};

static void test_tl_failed_bind(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(failed_bind_cases) / sizeof(failed_bind_cases[0]); i++) {
		const char *portal = failed_bind_cases[i].portal, *want = failed_bind_cases[i].want;
		stmt_info *old = info("SELECT old"), *nu = info("SELECT new"), *si;
		const char *name = portal, *got;
		timeline t;
		tl_entry *e;
		tl_name_state st;

		tl_init(&t);
		push_change(&t, TL_BIND, TL_NS_PORTAL, TL_PUT, strcmp(portal, "old") == 0 ? "old" : "", old);
		tl_complete_head(&t);
		e = push_change(&t, TL_BIND, TL_NS_PORTAL, TL_PUT, name, nu);
		e->failed = true;
		snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", failed_bind_cases[i].sqlstate);
		tl_error_skip(&t);
		st = tl_lookup(&t, TL_NS_PORTAL, name, &si);
		got = st == TL_NAME_KNOWN ? si->text : st == TL_NAME_DOUBTFUL ? "?" : "-";
		if (strcmp(got, want) != 0)
			fail_msg("Bind \"%s\" failing with %s: portal is \"%s\", want \"%s\"", portal,
				 failed_bind_cases[i].sqlstate, got, want);
		assert_true(st != TL_NAME_KNOWN || si->len > 0 || si->facts == NULL); /* a dead portal judges nothing */
		tl_free(&t);
		stmt_info_unref(old);
		stmt_info_unref(nu);
	}
}

/* Portals end with their transaction, WITH HOLD cursors do not; DECLARE shares their namespace. */
static void test_tl_portals_end_with_transaction(void **state)
{
	timeline t;
	struct tl_changes l = TAILQ_HEAD_INITIALIZER(l);
	stmt_info *a = info("SELECT a"), *c = info("DECLARE p CURSOR FOR SELECT 42"), *si;
	tl_entry *e;

	(void)state;
	tl_init(&t);
	push_change(&t, TL_BIND, TL_NS_PORTAL, TL_PUT, "p", a);
	tl_complete_head(&t);
	assert_true(tl_change_add(&l, TL_NS_PORTAL, TL_PUT, "h", a, NULL, 0, 0, false, true));
	e = tl_push(&t, TL_QUERY, TL_FORWARD);
	tl_adopt(&t, e, &l);
	tl_complete_head(&t);
	tl_transaction_ended(&t);
	assert_int_equal(tl_lookup(&t, TL_NS_PORTAL, "p", &si), TL_NAME_NONE);
	assert_int_equal(tl_lookup(&t, TL_NS_PORTAL, "h", &si), TL_NAME_KNOWN);
	push_change(&t, TL_QUERY, TL_NS_PORTAL, TL_PUT, "p", c); /* DECLARE p reuses the name */
	assert_int_equal(tl_lookup(&t, TL_NS_PORTAL, "p", &si), TL_NAME_KNOWN);
	assert_ptr_equal(si, c);
	tl_free(&t);
	stmt_info_unref(a);
	stmt_info_unref(c);
}

/* A Query's changes stand statement by statement: an error at statement i drops i and later ones. */
static void test_tl_query_changes_by_index(void **state)
{
	timeline t;
	struct tl_changes l = TAILQ_HEAD_INITIALIZER(l);
	stmt_info *a = info("SELECT a"), *b = info("SELECT b");
	tl_entry *e;

	(void)state;
	tl_init(&t);
	assert_true(tl_change_add(&l, TL_NS_STMT, TL_PUT, "qa", a, NULL, 0, 0, false, false));
	assert_true(tl_change_add(&l, TL_NS_STMT, TL_PUT, "qb", b, NULL, 0, 1, false, false));
	assert_true(tl_change_add(&l, TL_NS_STMT, TL_PUT, "qc", b, NULL, 0, 2, false, false));
	e = tl_push(&t, TL_QUERY, TL_FORWARD);
	tl_adopt_before(&t, e, &l, 2); /* the statement at index 2 was denied: its change never stands */
	assert_true(TAILQ_EMPTY(&l));
	assert_string_equal(stmt_text(&t, "qc"), "-");
	tl_confirm_index(&t, e, 0);
	tl_refuse_from(&t, e, 1);
	assert_string_equal(stmt_text(&t, "qa"), "SELECT a");
	assert_string_equal(stmt_text(&t, "qb"), "-");
	tl_complete_head(&t);
	assert_ptr_equal(stmt_table_get(&t.confirmed, "qa"), a);
	tl_free(&t);
	stmt_info_unref(a);
	stmt_info_unref(b);
}

/* ---- pin SQL ---- */

typedef struct pin_case {
	const char *what;
	const char *role;
	const char *actor;
	const char *tenant;   /* NULL: no tenant, pinned as '' */
	const char *claims;   /* claims_setting, NULL = off */
	bool read_only;
	const char *want;     /* exact SQL */
} pin_case;

static const pin_case pin_cases[] = {
	{"plain", "bookkeeper", "user:jimmie", "acme", NULL, true,
	 "SET ROLE \"bookkeeper\"; SET \"app.actor_id\" TO E'user:jimmie'; SET \"app.tenant_id\" TO E'acme'; "
	 "SET \"default_transaction_read_only\" TO E'on'"},
	{"no tenant, writable", "clerk", "agent:x", NULL, NULL, false,
	 "SET ROLE \"clerk\"; SET \"app.actor_id\" TO E'agent:x'; SET \"app.tenant_id\" TO E''; "
	 "SET \"default_transaction_read_only\" TO E'off'"},
	{"single quotes", "r", "o'brien", "a''b'", NULL, true,
	 "SET ROLE \"r\"; SET \"app.actor_id\" TO E'o''brien'; SET \"app.tenant_id\" TO E'a''''b'''; "
	 "SET \"default_transaction_read_only\" TO E'on'"},
	{"backslashes", "r", "a\\b\\", "\\'", NULL, true,
	 "SET ROLE \"r\"; SET \"app.actor_id\" TO E'a\\\\b\\\\'; SET \"app.tenant_id\" TO E'\\\\'''; "
	 "SET \"default_transaction_read_only\" TO E'on'"},
	{"double quotes", "we\"ird\"", "\"x\"", "t", NULL, false,
	 "SET ROLE \"we\"\"ird\"\"\"; SET \"app.actor_id\" TO E'\"x\"'; SET \"app.tenant_id\" TO E't'; "
	 "SET \"default_transaction_read_only\" TO E'off'"},
	{"injection attempt", "r\"; DROP TABLE t; --", "x'; RESET ROLE; --", "\\'; SELECT 1; --", NULL, true,
	 "SET ROLE \"r\"\"; DROP TABLE t; --\"; SET \"app.actor_id\" TO E'x''; RESET ROLE; --'; "
	 "SET \"app.tenant_id\" TO E'\\\\''; SELECT 1; --'; SET \"default_transaction_read_only\" TO E'on'"},
	{"unicode", "rôle", "user:jörg✓", "ten\xf0\x9f\x98\x80nt", NULL, true,
	 "SET ROLE \"rôle\"; SET \"app.actor_id\" TO E'user:jörg✓'; "
	 "SET \"app.tenant_id\" TO E'ten\xf0\x9f\x98\x80nt'; "
	 "SET \"default_transaction_read_only\" TO E'on'"},
	{"dollar, semicolon, newline", "r", "$$;\n--", "$t$", NULL, true,
	 "SET ROLE \"r\"; SET \"app.actor_id\" TO E'$$;\n--'; SET \"app.tenant_id\" TO E'$t$'; "
	 "SET \"default_transaction_read_only\" TO E'on'"},
	{"claims", "r", "a'b\\c\"d", "t", "request.jwt.claims", true,
	 "SET ROLE \"r\"; SET \"app.actor_id\" TO E'a''b\\\\c\"d'; SET \"app.tenant_id\" TO E't'; "
	 "SET \"request.jwt.claims\" TO "
	 "E'{\"sub\":\"a''b\\\\\\\\c\\\\\"d\",\"role\":\"r\",\"tenant_id\":\"t\"}'; "
	 "SET \"default_transaction_read_only\" TO E'on'"},
	{"claims, no tenant", "r", "x", NULL, "c.x", false,
	 "SET ROLE \"r\"; SET \"app.actor_id\" TO E'x'; SET \"app.tenant_id\" TO E''; "
	 "SET \"c.x\" TO E'{\"sub\":\"x\",\"role\":\"r\"}'; SET \"default_transaction_read_only\" TO E'off'"},
};

static pgw_config pin_config(const char *claims)
{
	static char actor_setting[] = "app.actor_id", tenant_setting[] = "app.tenant_id";
	pgw_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.actor_setting = actor_setting;
	cfg.tenant_setting = tenant_setting;
	cfg.claims_setting = (char *)claims;
	return cfg;
}

static pgw_token pin_token(const char *role, const char *actor, const char *tenant)
{
	pgw_token t;

	memset(&t, 0, sizeof(t));
	t.role = (char *)role;
	t.actor = (char *)actor;
	t.tenant = (char *)tenant;
	return t;
}

/* The string value of a VariableSetStmt's single argument, or NULL. */
static const char *set_value(json_t *vss)
{
	json_t *args = json_object_get(vss, "args");
	json_t *sval;

	if (!json_is_array(args) || json_array_size(args) != 1)
		return NULL;
	sval = json_object_get(json_object_get(json_object_get(json_array_get(args, 0), "A_Const"), "sval"),
			       "sval");
	return json_is_string(sval) ? json_string_value(sval) : "";
}

/*
 * Parse 'sql' with PostgreSQL's own grammar (libpg_query): exactly 'nstmts'
 * statements, each a plain SET of one string value, and the names and
 * values are what we meant, byte for byte.
 */
static void check_pin_sql_parses(const char *sql, unsigned nstmts, const char *const *names,
				 const char *const *values)
{
	PgQueryParseResult res = pg_query_parse(sql);
	json_error_t jerr;
	json_t *root, *stmts;
	unsigned i;

	if (res.error)
		fail_msg("pin SQL does not parse: %s\n%s", res.error->message, sql);
	root = json_loads(res.parse_tree, 0, &jerr);
	assert_non_null(root);
	stmts = json_object_get(root, "stmts");
	if (json_array_size(stmts) != nstmts)
		fail_msg("pin SQL has %zu statements, want %u:\n%s", json_array_size(stmts), nstmts, sql);
	for (i = 0; i < nstmts; i++) {
		json_t *stmt = json_object_get(json_array_get(stmts, i), "stmt");
		json_t *vss = json_object_get(stmt, "VariableSetStmt");
		const char *kind, *name, *value;

		if (!vss || json_object_size(stmt) != 1)
			fail_msg("pin SQL statement %u is not a VariableSetStmt:\n%s", i + 1, sql);
		kind = json_string_value(json_object_get(vss, "kind"));
		name = json_string_value(json_object_get(vss, "name"));
		value = set_value(vss);
		assert_non_null(kind);
		assert_string_equal(kind, "VAR_SET_VALUE");
		assert_non_null(name);
		assert_string_equal(name, names[i]);
		if (!value)
			fail_msg("pin SQL statement %u does not set exactly one value:\n%s", i + 1, sql);
		if (values[i])
			assert_string_equal(value, values[i]);
	}
	json_decref(root);
	pg_query_free_parse_result(res);
}

static void test_pin_sql(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(pin_cases); i++) {
		const pin_case *c = &pin_cases[i];
		pgw_config cfg = pin_config(c->claims);
		pgw_token who = pin_token(c->role, c->actor, c->tenant);
		const char *names[5] = {"role", "app.actor_id", "app.tenant_id", NULL, NULL};
		const char *values[5] = {c->role, c->actor, c->tenant ? c->tenant : "", NULL, NULL};
		unsigned n = pin_sql_statements(&cfg);
		char *sql = pin_sql_build(&cfg, &who, c->read_only);

		assert_non_null(sql);
		if (strcmp(sql, c->want) != 0)
			fail_msg("pin SQL %s:\n got: %s\nwant: %s", c->what, sql, c->want);
		assert_int_equal(n, c->claims ? 5 : 4);
		if (c->claims) {
			names[3] = c->claims;
			values[3] = NULL; /* JSON, checked by the exact text above */
		}
		names[n - 1] = "default_transaction_read_only";
		values[n - 1] = c->read_only ? "on" : "off";
		check_pin_sql_parses(sql, n, names, values);
		free(sql);
	}
	/* an empty claims_setting is "off" */
	{
		pgw_config cfg = pin_config("");
		assert_int_equal(pin_sql_statements(&cfg), 4);
	}
	assert_string_equal(pin_sql_read_only(true), "SET default_transaction_read_only TO on");
	assert_string_equal(pin_sql_read_only(false), "SET default_transaction_read_only TO off");
}

/* A target with walls = required and the key 00 01 .. 1f. */
static pgw_target wall_target(pgw_walls walls)
{
	pgw_target t;

	memset(&t, 0, sizeof(t));
	t.walls = walls;
	for (int i = 0; i < WALL_KEY_LEN; i++)
		t.wall_key[i] = (unsigned char)i;
	return t;
}

/*
 * Known answers (Python's hmac over the same bytes), so pgwarden and
 * walls.sql's pin_message()/write_granted() cannot drift apart unnoticed.
 */
static void test_wall_signatures(void **state)
{
	pgw_target t = wall_target(WALLS_REQUIRED);
	char sig[WALL_SIG_HEX], grant[WALL_WRITE_MAX];

	(void)state;
	assert_true(wall_sign_pin(&t, 4242, "bookkeeper", "user:jimmie", "acme", sig));
	assert_string_equal(sig, "7112172587237fe4176f87f8f97786a91afe952ac69ccef94198eda5b19af397");
	assert_true(wall_sign_pin(&t, 4242, "bookkeeper", "user:jimmie", NULL, sig));
	assert_string_equal(sig, "c856a07397e7d5708c30ef079224835af97b33037572f2c9675a93160fcf46e2");
	assert_true(wall_sign_write(&t, 4242, "bookkeeper", "user:jimmie", 1799990000, 1800000000, grant));
	assert_string_equal(grant,
			    "1799990000:1800000000:fa6ddb3c7769d001f00ef7fcbf6e6db0e7cd24980e6c09bdc89274193c4b5e28");
	/* Another pid, another signature. */
	assert_true(wall_sign_pin(&t, 4243, "bookkeeper", "user:jimmie", "acme", sig));
	assert_string_not_equal(sig, "7112172587237fe4176f87f8f97786a91afe952ac69ccef94198eda5b19af397");
}

/*
 * The write grant's window: the one open now (from now to its close), else
 * the next one within WALL_GRANT_AHEAD, never on a non-production target.
 */
static void test_wall_write_window(void **state)
{
	static char prod[] = "prod", staging[] = "staging", wname[] = "w";
	const time_t t0 = 1800000000;
	pgw_target targets[2];
	pgw_window win;
	pgw_config cfg = pin_config(NULL);
	time_t from, until;

	(void)state;
	memset(targets, 0, sizeof(targets));
	targets[0].name = prod;
	targets[0].environment = ENV_PRODUCTION;
	targets[1].name = staging;
	targets[1].environment = ENV_STAGING;
	memset(&win, 0, sizeof(win));
	win.name = wname;
	win.target = prod;
	win.start_utc = t0 + 100;
	win.end_utc = t0 + 200;
	cfg.targets = targets;
	cfg.n_targets = 2;
	cfg.windows = &win;
	cfg.n_windows = 1;

	assert_true(wall_write_window(&cfg, &targets[0], "user:a", t0, &from, &until)); /* ahead */
	assert_int_equal(from, t0 + 100);
	assert_int_equal(until, t0 + 200);
	assert_true(wall_write_window(&cfg, &targets[0], "user:a", t0 + 150, &from, &until)); /* open */
	assert_int_equal(from, t0 + 150);
	assert_int_equal(until, t0 + 200);
	assert_false(wall_write_window(&cfg, &targets[0], "user:a", t0 + 200, &from, &until)); /* over */
	assert_int_equal(until, 0);
	assert_false(wall_write_window(&cfg, &targets[1], "user:a", t0 + 150, &from, &until)); /* staging */
	win.start_utc = t0 + WALL_GRANT_AHEAD + 1; /* too far ahead */
	win.end_utc = win.start_utc + 100;
	assert_false(wall_write_window(&cfg, &targets[0], "user:a", t0, &from, &until));
}

/* The walled pin: the plain pin, then pgwarden.pin and pgwarden.write, and nothing else. */
static void test_pin_sql_walled(void **state)
{
	pgw_config cfg = pin_config(NULL);
	pgw_token who = pin_token("bookkeeper", "user:jimmie", "acme");
	pgw_target walled = wall_target(WALLS_REQUIRED), off = wall_target(WALLS_OFF);
	pin_wall w = {&walled, 4242, 1799990000, 1800000000};
	const char *names[6] = {"role", "app.actor_id", "app.tenant_id", "default_transaction_read_only",
				WALL_PIN_SETTING, WALL_WRITE_SETTING};
	const char *values[6] = {"bookkeeper", "user:jimmie", "acme", "off",
				 "7112172587237fe4176f87f8f97786a91afe952ac69ccef94198eda5b19af397",
				 "1799990000:1800000000:fa6ddb3c7769d001f00ef7fcbf6e6db0e7cd24980e6c09bdc89274193c4b5e28"};
	char *sql, *plain;

	(void)state;
	assert_int_equal(pin_sql_statements_walled(&cfg, &w), 6);
	sql = pin_sql_build_walled(&cfg, &who, false, &w);
	assert_non_null(sql);
	check_pin_sql_parses(sql, 6, names, values);
	free(sql);
	/* No window: the write setting is cleared, so a grant from an earlier pin cannot outlive it. */
	w.write_until = 0;
	values[3] = "on";
	values[5] = "";
	sql = pin_sql_build_walled(&cfg, &who, true, &w);
	check_pin_sql_parses(sql, 6, names, values);
	free(sql);
	/* walls = off, or no wall: exactly the unwalled pin. */
	w.target = &off;
	plain = pin_sql_build(&cfg, &who, true);
	sql = pin_sql_build_walled(&cfg, &who, true, &w);
	assert_string_equal(sql, plain);
	assert_int_equal(pin_sql_statements_walled(&cfg, &w), 4);
	free(sql);
	sql = pin_sql_build_walled(&cfg, &who, true, NULL);
	assert_string_equal(sql, plain);
	free(sql);
	free(plain);
	/* The single-statement form carries the same two settings. */
	w.target = &walled;
	sql = pin_sql_build_single_walled(&cfg, &who, true, &w);
	assert_non_null(strstr(sql, "pg_catalog.set_config(E'pgwarden.pin', "
				    "E'7112172587237fe4176f87f8f97786a91afe952ac69ccef94198eda5b19af397', false)"));
	assert_non_null(strstr(sql, "pg_catalog.set_config(E'pgwarden.write', E'', false)"));
	free(sql);
}

/*
 * Quoting round-trips through PostgreSQL's grammar for many generated
 * strings built from the dangerous characters: the parsed value is the
 * original, and there is never more than the statements we wrote.
 */
static void test_pin_sql_generated(void **state)
{
	static const char *const atoms[] = {"'", "\\", "\"", ";",  " ",  "--",  "/*", "*/", "$$",
					    "\n", "a",  "é",  "✓", "E'", "U&", "\\'", "''", "\"\""};
	uint32_t seed = 12345;
	int round;

	(void)state;
	for (round = 0; round < 400; round++) {
		char parts[3][128];
		int p;

		for (p = 0; p < 3; p++) {
			int k, len;

			parts[p][0] = '\0';
			seed = seed * 1103515245u + 12345u;
			len = 1 + (int)((seed >> 16) % 12);
			for (k = 0; k < len; k++) {
				seed = seed * 1103515245u + 12345u;
				strcat(parts[p], atoms[(seed >> 16) % ARRAY_LEN(atoms)]);
			}
		}
		{
			pgw_config cfg = pin_config(round % 2 ? "app.claims" : NULL);
			pgw_token who = pin_token(parts[0], parts[1], parts[2]);
			const char *names[5] = {"role", "app.actor_id", "app.tenant_id", "app.claims", NULL};
			const char *values[5] = {parts[0], parts[1], parts[2], NULL, NULL};
			unsigned n = pin_sql_statements(&cfg);
			char *sql = pin_sql_build(&cfg, &who, true);

			assert_non_null(sql);
			names[n - 1] = "default_transaction_read_only";
			values[n - 1] = "on";
			check_pin_sql_parses(sql, n, names, values);
			free(sql);
		}
	}
}

typedef struct quote_case {
	const char *in;
	bool ident;         /* sql_quote_ident, else sql_quote_literal */
	size_t bufsz;
	int want;           /* returned length, -1 = does not fit */
	const char *out;    /* expected text when it fits */
} quote_case;

static const quote_case quote_cases[] = {
	{"ab", false, 6, 5, "E'ab'"},
	{"ab", false, 5, -1, NULL},
	{"", false, 4, 3, "E''"},
	{"", false, 3, -1, NULL},
	{"'", false, 6, 5, "E''''"},
	{"'", false, 5, -1, NULL},
	{"\\", false, 6, 5, "E'\\\\'"},
	{"a'", false, 7, 6, "E'a'''"},
	{"a'", false, 6, -1, NULL},
	{"ab", true, 5, 4, "\"ab\""},
	{"ab", true, 4, -1, NULL},
	{"", true, 3, 2, "\"\""},
	{"", true, 2, -1, NULL},
	{"\"", true, 5, 4, "\"\"\"\""},
	{"\"", true, 4, -1, NULL},
	{"a'b\\", true, 7, 6, "\"a'b\\\""},
};

static void test_quote_bounds(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(quote_cases); i++) {
		const quote_case *c = &quote_cases[i];
		char buf[64];
		int got;

		memset(buf, '#', sizeof(buf));
		got = c->ident ? sql_quote_ident(buf, c->bufsz, 0, c->in)
			       : sql_quote_literal(buf, c->bufsz, 0, c->in);
		if (got != c->want)
			fail_msg("quote %s \"%s\" in %zu: %d, want %d", c->ident ? "ident" : "literal", c->in,
				 c->bufsz, got, c->want);
		if (got >= 0)
			assert_string_equal(buf, c->out);
		assert_int_equal(buf[c->bufsz], '#'); /* nothing written past the buffer */
	}
	/* appending at an offset keeps what is there */
	{
		char buf[32] = "SET x TO ";
		assert_int_equal(sql_quote_literal(buf, sizeof(buf), 9, "v"), 13);
		assert_string_equal(buf, "SET x TO E'v'");
	}
}

/* ---- stmt_table ---- */

static void test_stmt_table(void **state)
{
	stmt_table t;
	stmt_info *a, *b;

	(void)state;
	stmt_table_init(&t);
	a = stmt_info_new("select 1xyz", 8, NULL);
	assert_non_null(a);
	assert_string_equal(a->text, "select 1"); /* copied, cut at len, NUL-terminated */
	assert_int_equal(a->len, 8);
	assert_int_equal(a->refcount, 1);
	b = stmt_info_new("", 0, NULL);
	assert_non_null(b);
	assert_string_equal(b->text, "");

	assert_null(stmt_table_get(&t, "s1"));
	assert_true(stmt_table_put(&t, "s1", a));
	assert_true(stmt_table_put(&t, "", b)); /* the unnamed statement */
	assert_int_equal(a->refcount, 2);
	assert_ptr_equal(stmt_table_get(&t, "s1"), a);
	assert_ptr_equal(stmt_table_get(&t, ""), b);
	assert_null(stmt_table_get(&t, "S1")); /* names are case-sensitive, as on the server */

	/* statements and portals are separate namespaces */
	assert_null(portal_table_get(&t, "s1"));
	assert_true(portal_table_put(&t, "s1", b, NULL, 0, false));
	assert_ptr_equal(portal_table_get(&t, "s1"), b);
	assert_ptr_equal(stmt_table_get(&t, "s1"), a);
	assert_int_equal(b->refcount, 3);

	/* replacing a name drops the old reference */
	assert_true(stmt_table_put(&t, "s1", b));
	assert_int_equal(a->refcount, 1);
	assert_int_equal(b->refcount, 4);
	assert_ptr_equal(stmt_table_get(&t, "s1"), b);

	/* re-putting the same info under its own name keeps it alive */
	assert_true(stmt_table_put(&t, "s1", b));
	assert_int_equal(b->refcount, 4);

	stmt_table_del(&t, "s1");
	stmt_table_del(&t, "s1"); /* deleting twice is harmless */
	stmt_table_del(&t, "never");
	assert_null(stmt_table_get(&t, "s1"));
	assert_int_equal(b->refcount, 3);
	portal_table_del(&t, "s1");
	assert_int_equal(b->refcount, 2);

	stmt_table_clear_stmts(&t);
	assert_ptr_equal(stmt_table_get(&t, ""), b); /* DEALLOCATE ALL keeps the unnamed statement */
	assert_int_equal(b->refcount, 2);
	stmt_table_put(&t, "s2", a);
	stmt_table_clear_stmts(&t);
	assert_null(stmt_table_get(&t, "s2"));
	stmt_table_del(&t, "");
	assert_null(stmt_table_get(&t, ""));
	assert_int_equal(b->refcount, 1);
	stmt_info_unref(a);
	stmt_info_unref(b);
	stmt_info_unref(NULL);
	stmt_table_free(&t);
}

static void test_portal_params(void **state)
{
	static const uint8_t params[] = {0, 0, 0, 1, 0, 0, 0, 2, 'h', 'i'};
	stmt_table t;
	stmt_info *si;
	const uint8_t *p;
	size_t len = 99;

	(void)state;
	stmt_table_init(&t);
	si = stmt_info_new("select $1", 9, NULL);
	assert_non_null(si);
	assert_null(portal_table_params(&t, "p", &len));
	assert_int_equal(len, 0);
	assert_true(portal_table_put(&t, "p", si, params, sizeof(params), false));
	p = portal_table_params(&t, "p", &len);
	assert_non_null(p);
	assert_ptr_not_equal(p, params); /* a copy */
	assert_int_equal(len, sizeof(params));
	assert_memory_equal(p, params, sizeof(params));
	assert_true(portal_table_put(&t, "q", si, params, 0, false)); /* an empty section is kept, not NULL */
	assert_non_null(portal_table_params(&t, "q", &len));
	assert_int_equal(len, 0);
	assert_true(portal_table_put(&t, "p", si, NULL, 0, false)); /* rebinding without params forgets them */
	assert_null(portal_table_params(&t, "p", &len));
	assert_int_equal(si->refcount, 3);
	portal_table_clear(&t);
	assert_null(portal_table_get(&t, "q"));
	assert_int_equal(si->refcount, 1);
	stmt_info_unref(si);
	stmt_table_free(&t);
}

/* Many names: the hash keeps them all, and free releases every reference. */
static void test_stmt_table_many(void **state)
{
	stmt_table t;
	stmt_info *si;
	char name[32];
	int i;

	(void)state;
	stmt_table_init(&t);
	si = stmt_info_new("x", 1, NULL);
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		assert_true(stmt_table_put(&t, name, si));
		assert_true(portal_table_put(&t, name, si, (const uint8_t *)name, strlen(name), false));
	}
	assert_int_equal(si->refcount, 2001);
	for (i = 0; i < 1000; i += 3) {
		snprintf(name, sizeof(name), "stmt_%d", i);
		assert_ptr_equal(stmt_table_get(&t, name), si);
		stmt_table_del(&t, name);
	}
	assert_int_equal(si->refcount, 2001 - 334);
	stmt_table_free(&t);
	assert_int_equal(si->refcount, 1);
	stmt_info_unref(si);
}

/* The server keys names by their first 63 bytes: names differing only after them are one name. */
static void test_names_past_63_bytes(void **state)
{
	char a[80], b[80], c[80];
	stmt_table t;
	timeline tl;
	struct tl_changes local = TAILQ_HEAD_INITIALIZER(local);
	stmt_info *si = stmt_info_new("select 1", 8, NULL), *got;

	(void)state;
	memset(a, 'n', 63);
	memcpy(b, a, 63);
	memcpy(c, a, 63);
	strcpy(a + 63, "_reader");
	strcpy(b + 63, "_writer");
	c[62] = 'm'; /* differs at byte 63: another name */
	c[63] = '\0';
	stmt_table_init(&t);
	assert_true(stmt_table_put(&t, a, si));
	assert_ptr_equal(stmt_table_get(&t, b), si);
	assert_null(stmt_table_get(&t, c));
	stmt_table_del(&t, b);
	assert_null(stmt_table_get(&t, a));
	assert_true(portal_table_put(&t, b, si, NULL, 0, false));
	assert_ptr_equal(portal_table_get(&t, a), si);
	stmt_table_free(&t);

	tl_init(&tl);
	assert_true(tl_change_add(&local, TL_NS_STMT, TL_PUT, a, si, NULL, 0, 0, false, false));
	assert_int_equal(tl_lookup_with(&tl, &local, TL_NS_STMT, b, &got), TL_NAME_KNOWN);
	assert_ptr_equal(got, si);
	assert_true(tl_change_add(&local, TL_NS_STMT, TL_DEL, b, NULL, NULL, 0, 0, false, false));
	assert_int_equal(tl_lookup_with(&tl, &local, TL_NS_STMT, a, &got), TL_NAME_NONE);
	assert_int_equal(tl_lookup_with(&tl, &local, TL_NS_STMT, c, &got), TL_NAME_NONE);
	tl_changes_free(&local);
	tl_free(&tl);
	stmt_info_unref(si);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tl_fifo_order),
		cmocka_unit_test(test_tl_grow_wraparound),
		cmocka_unit_test(test_tl_error_skip),
		cmocka_unit_test(test_tl_failed_bind),
		cmocka_unit_test(test_tl_unnamed_put_of_an_earlier_batch),
		cmocka_unit_test(test_tl_refused_change_never_resurrects),
		cmocka_unit_test(test_tl_close_undone),
		cmocka_unit_test(test_tl_unnamed_refused),
		cmocka_unit_test(test_tl_portals_end_with_transaction),
		cmocka_unit_test(test_tl_query_changes_by_index),
		cmocka_unit_test(test_pin_sql),
		cmocka_unit_test(test_wall_signatures),
		cmocka_unit_test(test_pin_sql_walled),
		cmocka_unit_test(test_wall_write_window),
		cmocka_unit_test(test_pin_sql_generated),
		cmocka_unit_test(test_quote_bounds),
		cmocka_unit_test(test_stmt_table),
		cmocka_unit_test(test_portal_params),
		cmocka_unit_test(test_stmt_table_many),
		cmocka_unit_test(test_names_past_63_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
