/* classify_set.c - settings: SET/RESET, SET TRANSACTION, set_config(), ALTER ... SET, the harmless list. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/classify_int.h"

/*
 * Settings a client may change on a read-only production session: they shape
 * output, planning and timeouts, never data, identity or lexing. Sorted for
 * bsearch. Lexing and read-only settings are listed because their dangerous
 * values are flagged separately (PF_LEXING_CHANGE, PF_RW_OVERRIDE).
 *
 * Not here, so writes (production outside a window): session_replication_role
 * (turns triggers and rules off), and everything unknown. Identity settings
 * (role, session_authorization, the pinned ones) are denied before this list.
 *
 * search_path is here although it changes which function an unqualified name
 * means: the catalog judges a call by name over every schema and every
 * overload, most restrictive first (catalog.h), and views likewise, so no
 * search_path can make a judged call run something that was not judged;
 * a table found in another schema is still only a table read. (pg_temp is
 * never searched for functions; temporary functions are refused outright.)
 */
static const char *const harmless_settings[] = {
	"application_name",
	"array_nulls",
	"backend_flush_after",
	"backslash_quote",
	"bytea_output",
	"check_function_bodies",
	"client_connection_check_interval",
	"client_encoding",
	"client_min_messages",
	"commit_delay",
	"commit_siblings",
	"constraint_exclusion",
	"cpu_index_tuple_cost",
	"cpu_operator_cost",
	"cpu_tuple_cost",
	"cursor_tuple_fraction",
	"datestyle",
	"default_statistics_target",
	"default_table_access_method",
	"default_tablespace",
	"default_text_search_config",
	"default_toast_compression",
	"default_transaction_deferrable",
	"default_transaction_isolation",
	"default_transaction_read_only",
	"effective_cache_size",
	"effective_io_concurrency",
	"enable_async_append",
	"enable_bitmapscan",
	"enable_gathermerge",
	"enable_group_by_reordering",
	"enable_hashagg",
	"enable_hashjoin",
	"enable_incremental_sort",
	"enable_indexonlyscan",
	"enable_indexscan",
	"enable_material",
	"enable_memoize",
	"enable_mergejoin",
	"enable_nestloop",
	"enable_parallel_append",
	"enable_parallel_hash",
	"enable_partition_pruning",
	"enable_partitionwise_aggregate",
	"enable_partitionwise_join",
	"enable_presorted_aggregate",
	"enable_seqscan",
	"enable_sort",
	"enable_tidscan",
	"escape_string_warning",
	"exit_on_error",
	"extra_float_digits",
	"force_parallel_mode",
	"from_collapse_limit",
	"geqo",
	"geqo_effort",
	"geqo_threshold",
	"gin_fuzzy_search_limit",
	"gin_pending_list_limit",
	"hash_mem_multiplier",
	"idle_in_transaction_session_timeout",
	"idle_session_timeout",
	"intervalstyle",
	"jit",
	"jit_above_cost",
	"jit_inline_above_cost",
	"jit_optimize_above_cost",
	"join_collapse_limit",
	"lc_monetary",
	"lc_numeric",
	"lc_time",
	"lock_timeout",
	"logical_decoding_work_mem",
	"maintenance_io_concurrency",
	"maintenance_work_mem",
	"max_parallel_maintenance_workers",
	"max_parallel_workers",
	"max_parallel_workers_per_gather",
	"min_parallel_index_scan_size",
	"min_parallel_table_scan_size",
	"parallel_leader_participation",
	"parallel_setup_cost",
	"parallel_tuple_cost",
	"password_encryption",
	"plan_cache_mode",
	"quote_all_identifiers",
	"random_page_cost",
	"recursive_worktable_factor",
	"restrict_nonsystem_relation_kind",
	"row_security",
	"search_path",
	"seq_page_cost",
	"standard_conforming_strings",
	"statement_timeout",
	"synchronize_seqscans",
	"synchronous_commit",
	"tcp_keepalives_count",
	"tcp_keepalives_idle",
	"tcp_keepalives_interval",
	"tcp_user_timeout",
	"temp_buffers",
	"temp_tablespaces",
	"timezone",
	"timezone_abbreviations",
	"transaction_deferrable",
	"transaction_isolation",
	"transaction_read_only",
	"transform_null_equals",
	"vacuum_cost_delay",
	"vacuum_cost_limit",
	"vacuum_cost_page_dirty",
	"vacuum_cost_page_hit",
	"vacuum_cost_page_miss",
	"vacuum_failsafe_age",
	"vacuum_freeze_min_age",
	"vacuum_freeze_table_age",
	"vacuum_multixact_failsafe_age",
	"vacuum_multixact_freeze_min_age",
	"vacuum_multixact_freeze_table_age",
	"work_mem",
	"xmlbinary",
	"xmloption",
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Custom settings ("prefix.name": app.request_id, plpgsql.*, an extension's):
 * the client's own. The ones that carry identity are pinned (actor_setting,
 * tenant_setting, claims_setting) and denied at decide time, before this
 * matters; an operator whose row policies read another custom setting must
 * make it one of those. Core settings have no dot.
 */
static bool is_custom(const char *name)
{
	const char *dot = strchr(name, '.');

	return dot && dot != name && dot[1] != '\0';
}

bool setting_is_harmless(const char *name)
{
	if (is_custom(name))
		return true;
	return bsearch(&name, harmless_settings, sizeof(harmless_settings) / sizeof(harmless_settings[0]),
		       sizeof(harmless_settings[0]), cmp_name) != NULL;
}

/* PostgreSQL's parse_bool, "true" side: on, true/t/tr/tru, yes/y/ye, 1. */
static bool value_is_true(const char *v)
{
	size_t n = v ? strlen(v) : 0;

	if (n == 0)
		return false;
	return strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0 || strncasecmp(v, "true", n) == 0 ||
	       (n <= 3 && strncasecmp(v, "yes", n) == 0);
}

/* client_encoding values that keep lexing as pgwarden's (UTF-8 only: see classify.c notes). */
static bool encoding_is_utf8(const char *v)
{
	char norm[16];
	size_t k = 0;

	for (const char *p = v; p && *p && k + 1 < sizeof(norm); p++) {
		if (isalnum((unsigned char)*p))
			norm[k++] = (char)tolower((unsigned char)*p);
	}
	norm[k] = '\0';
	return v && (strcmp(norm, "utf8") == 0 || strcmp(norm, "unicode") == 0);
}

/* Settings whose dangerous values are caught by value in a session (SET ... = off): at startup,
 * where pgwarden re-pins nothing of them, they are refused whatever the value. */
static bool value_matters(const char *name);

bool policy_startup_setting_ok(const char *name, const char *value, void *cfg)
{
	char lower[128];
	size_t i;

	for (i = 0; name[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	lower[i] = '\0';
	if (name[i] || policy_setting_is_pinned(cfg, lower))
		return false;
	if (strcmp(lower, "client_encoding") == 0)
		return true; /* its value is checked like the client_encoding parameter's */
	return !value_matters(lower) && setting_is_harmless(lower);
}

/*
 * One setting written. value: the new value when it is a known constant, NULL
 * for DEFAULT/RESET or an expression. persist: ALTER ROLE/DATABASE/SYSTEM SET
 * (future sessions: only identity matters there; the statement is a write anyway).
 */
static void note_setting(pc_walk *w, const char *name, const char *value, bool persist, const char *verb)
{
	facts_add(w->f, &w->f->settings, name, strlen(name), true);
	if (strcasecmp(name, "role") == 0 || strcasecmp(name, "session_authorization") == 0) {
		mark_identity(w, "%s %s", verb, name);
		return;
	}
	if (persist)
		return;
	if (strcasecmp(name, "default_transaction_read_only") == 0 || strcasecmp(name, "transaction_read_only") == 0) {
		if (!value_is_true(value))
			mark_rw(w, "%s %s", verb, name);
	} else if (strcasecmp(name, "standard_conforming_strings") == 0) {
		if (!value_is_true(value))
			mark_lexing(w, "%s standard_conforming_strings", verb);
	} else if (strcasecmp(name, "client_encoding") == 0) {
		if (!encoding_is_utf8(value))
			mark_lexing(w, "%s client_encoding (only UTF8 is allowed)", verb);
	} else if (strcasecmp(name, "backslash_quote") == 0) {
		if (!value || strcasecmp(value, "safe_encoding") != 0)
			mark_lexing(w, "%s backslash_quote", verb);
	}
	if (!setting_is_harmless(name))
		mark_write(w, "%s %s", verb, name);
}

void check_txn_options(pc_walk *w, uint32_t options)
{
	const jdoc *d = w->d;
	uint32_t c, de;

	for (c = options ? options + 1 : 0; options && c < d->t[options].end; c = d->t[c].end) {
		char *v;

		if (!(de = node_body(d, c, "DefElem")) ||
		    !jstr_eq(d, jobj_get(d, de, "defname"), "transaction_read_only"))
			continue;
		v = const_text(w, jobj_get(d, de, "arg"));
		/* READ ONLY is ival 1, READ WRITE is ival 0. */
		if (!v || strcmp(v, "0") == 0 || !value_is_true(v))
			mark_rw(w, "READ WRITE transaction");
		free(v);
	}
}

/* Settings whose new value decides the facts. */
static bool value_matters(const char *name)
{
	return strcasecmp(name, "default_transaction_read_only") == 0 ||
	       strcasecmp(name, "transaction_read_only") == 0 || strcasecmp(name, "standard_conforming_strings") == 0 ||
	       strcasecmp(name, "client_encoding") == 0 || strcasecmp(name, "backslash_quote") == 0;
}

/* First constant argument of a SET as text (NULL for none, DEFAULT or an expression). */
static char *set_value(pc_walk *w, uint32_t body)
{
	uint32_t args = jobj_get(w->d, body, "args");

	if (!args || w->d->t[args].type != J_ARR || w->d->t[args].end == args + 1)
		return NULL;
	return const_text(w, args + 1);
}

void on_variable_set(pc_walk *w, uint32_t body, bool persist)
{
	const jdoc *d = w->d;
	uint32_t kind = jobj_get(d, body, "kind"), name = jobj_get(d, body, "name");
	char *n, *v;

	if (jstr_eq(d, kind, "VAR_RESET_ALL")) {
		if (!persist)
			w->f->flags |= PF_SESSION_RESET;
		return;
	}
	if (jstr_eq(d, kind, "VAR_SET_MULTI")) {
		/* SET TRANSACTION ..., SET SESSION CHARACTERISTICS AS TRANSACTION ... */
		if (!persist)
			check_txn_options(w, jobj_get(d, body, "args"));
		return;
	}
	if (!name || !(n = jstr_dup(d, name))) {
		mark_identity(w, "SET of a setting pgwarden cannot name");
		return;
	}
	/* Read the value only where it decides something: reading a literal makes facts literal-dependent. */
	v = jstr_eq(d, kind, "VAR_SET_VALUE") && value_matters(n) ? set_value(w, body) : NULL;
	note_setting(w, n, v, persist, jstr_eq(d, kind, "VAR_RESET") ? "RESET" : "SET");
	free(n);
	free(v);
}

/* One String node's value equals s. */
static bool string_node_is(const jdoc *d, uint32_t i, const char *s)
{
	uint32_t b = node_body(d, i, "String");

	return b && jstr_eq(d, jobj_get(d, b, "sval"), s);
}

/*
 * A ColumnRef meaning pg_settings' name column: "name", or "q.name" where q is
 * the relation's alias (or its name when it has none). The caller made sure
 * pg_settings is the only FROM item, so nothing else can own the column.
 */
static bool is_name_column(const jdoc *d, uint32_t i, const char *qual)
{
	uint32_t b = node_body(d, i, "ColumnRef"), f, n = 0, first = 0, last = 0;

	if (!b || !(f = jobj_get(d, b, "fields")) || d->t[f].type != J_ARR)
		return false;
	for (uint32_t c = f + 1; c < d->t[f].end; c = d->t[c].end, n++)
		first = first ? first : c, last = c;
	if (n == 1)
		return string_node_is(d, last, "name");
	return n == 2 && string_node_is(d, first, qual) && string_node_is(d, last, "name");
}

/* name = 'x' (either side), with the plain or pg_catalog-qualified operator: 'x', else NULL. */
static char *name_equality(pc_walk *w, uint32_t i, const char *qual)
{
	const jdoc *d = w->d;
	uint32_t b = node_body(d, i, "A_Expr"), op, l, r, c, n = 0, part[2] = { 0, 0 };

	if (!b || !jstr_eq(d, jobj_get(d, b, "kind"), "AEXPR_OP") || !(op = jobj_get(d, b, "name")) ||
	    d->t[op].type != J_ARR)
		return NULL;
	for (c = op + 1; c < d->t[op].end; c = d->t[c].end) {
		if (n == 2)
			return NULL;
		part[n++] = c;
	}
	if (n == 0 || !string_node_is(d, part[n - 1], "=") || (n == 2 && !string_node_is(d, part[0], "pg_catalog")))
		return NULL;
	l = jobj_get(d, b, "lexpr");
	r = jobj_get(d, b, "rexpr");
	if (l && r && is_name_column(d, l, qual) && node_body(d, r, "A_Const"))
		return const_text(w, r);
	if (l && r && is_name_column(d, r, qual) && node_body(d, l, "A_Const"))
		return const_text(w, l);
	return NULL;
}

/* The constant a WHERE clause pins the name column to: a top-level equality, or one arm of an AND. */
static char *where_pins_name(pc_walk *w, uint32_t where, const char *qual)
{
	const jdoc *d = w->d;
	uint32_t b = node_body(d, where, "BoolExpr"), args;
	char *v;

	if (!b)
		return name_equality(w, where, qual);
	if (!jstr_eq(d, jobj_get(d, b, "boolop"), "AND_EXPR") || !(args = jobj_get(d, b, "args")))
		return NULL;
	for (uint32_t c = args + 1; c < d->t[args].end; c = d->t[c].end) {
		if ((v = name_equality(w, c, qual)))
			return v;
	}
	return NULL;
}

/*
 * SELECT <targets> FROM [pg_catalog.]pg_settings [alias] WHERE name = 'x' [AND ...],
 * with no WITH (a CTE could be called pg_settings) and nothing else in FROM:
 * the target list only sees rows whose name is 'x' (pg_dump 15.18 sends this
 * for restrict_nonsystem_relation_kind). Returns 'x', or NULL for any other
 * shape. A relation named pg_settings elsewhere (pg_temp is searched first)
 * cannot be made through pgwarden (note_named_relation).
 */
static char *select_pins_name(pc_walk *w, uint32_t body, char *qual, size_t qualsz)
{
	const jdoc *d = w->d;
	uint32_t from = jobj_get(d, body, "fromClause"), where = jobj_get(d, body, "whereClause"), rv, sch, al;

	if (!from || !where || jobj_get(d, body, "withClause") || d->t[from].type != J_ARR ||
	    d->t[from].end == from + 1 || d->t[from + 1].end != d->t[from].end)
		return NULL;
	if (!(rv = node_body(d, from + 1, "RangeVar")) || !jstr_eq(d, jobj_get(d, rv, "relname"), "pg_settings"))
		return NULL;
	if ((sch = jobj_get(d, rv, "schemaname")) && !jstr_eq(d, sch, "pg_catalog"))
		return NULL;
	snprintf(qual, qualsz, "pg_settings");
	if ((al = jobj_get(d, rv, "alias")) && (al = jobj_get(d, al, "aliasname"))) {
		char *a = jstr_dup(d, al);

		snprintf(qual, qualsz, "%s", a ? a : "");
		free(a);
	}
	return where_pins_name(w, where, qual);
}

void walk_select_body(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	const char *saved = w->settings_name, *saved_qual = w->settings_qual;
	char qual[256] = "", *pinned = select_pins_name(w, body, qual, sizeof(qual));

	/* Why only the target list: WHERE and JOIN quals may run for rows of any name. */
	w->settings_name = NULL;
	for (uint32_t c = body + 1; c + 1 < d->t[body].end; c = d->t[c + 1].end) {
		bool targets = jstr_eq(d, c, "targetList");

		if (d->t[c + 1].type != J_OBJ && d->t[c + 1].type != J_ARR)
			continue;
		w->settings_name = targets ? pinned : NULL;
		w->settings_qual = qual;
		walk_value(w, c + 1);
	}
	w->settings_name = saved;
	w->settings_qual = saved_qual;
	free(pinned);
}

void note_named_relation(pc_walk *w, uint32_t rv)
{
	if (w->d->t[rv].type == J_OBJ && jstr_eq(w->d, jobj_get(w->d, rv, "relname"), "pg_settings"))
		mark_identity(w, "a relation named pg_settings can stand in for pg_catalog.pg_settings");
}

/*
 * set_config(name, value, is_local): the names that can reach it decide. A
 * constant is one name; pg_settings' name column under a WHERE that pins it
 * is one name (walk_select_body); anything else could be the role.
 */
void on_set_config(pc_walk *w, uint32_t fbody)
{
	const jdoc *d = w->d;
	uint32_t args = jobj_get(d, fbody, "args"), a0, a1, n = 0;
	char *name = NULL, *value = NULL;

	for (uint32_t c = args ? args + 1 : 0; args && c < d->t[args].end; c = d->t[c].end)
		n++;
	if (n != 3 || jobj_get(d, fbody, "func_variadic")) {
		mark_identity(w, "set_config with unusual arguments");
		return;
	}
	a0 = args + 1;
	a1 = d->t[a0].end;
	if (w->settings_name && is_name_column(d, a0, w->settings_qual)) {
		if (!(name = strdup(w->settings_name)))
			w->f->oom = true;
	} else if (node_body(d, a0, "A_Const") && jobj_get(d, a0 + 2, "sval")) {
		name = const_text(w, a0);
	}
	if (!name) {
		mark_identity(w, "set_config with a non-constant setting name");
		goto out;
	}
	value = value_matters(name) ? const_text(w, a1) : NULL;
	note_setting(w, name, value, false, "set_config");
out:
	free(name);
	free(value);
}
