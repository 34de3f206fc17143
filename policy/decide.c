/* decide.c - the verdict: facts + config snapshot + target + actor + clock -> allow / deny (rule id). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"
#include "policy/catalog.h"
#include "policy/classify_int.h"
#include "conf/windows.h"

/*
 * Order of checks (the first that denies names the rule): unparsable, lexing
 * change (reported as "unparsable"), identity-change, grant-to-protected-role,
 * opaque-sql, [rule.*] deny, read-write-override and write-outside-window
 * (production without an open window). Staging and development run writes.
 * A [rule.*] with action=log never denies; the first matching one is reported.
 *
 * User functions (policy_facts_functions) without a catalog: not read-only
 * unless in trusted_functions. With the target's catalog (catalog.h), each
 * call is judged by what the function can do, most restrictive candidate of
 * the name: its identity change, lexing change, grant and opacity deny next to
 * the statement's own (same rule ids, the message naming the function), and
 * its writes make the statement not read-only. A name the catalog does not
 * have is opaque-sql everywhere (it was created after the catalog was read,
 * e.g. in pg_temp, so what it does is unknown); a built-in the table does not
 * know is a write, as without a catalog.
 *
 * Views: every relation the statement names (policy_facts_relations) that the
 * catalog knows as a view is judged like a call of a function whose body is
 * the view's SELECT (what it calls, the views it reads), every view of an
 * unqualified name counting; the message names the view. Other names are
 * tables (or CTEs): nothing to judge. Without a catalog, views are not judged.
 */

static const struct {
	const char *name;
	bool judged_at_execute;
} rule_props[] = {
	[RULE_NONE] = { NULL, false },
	[RULE_GRANT_TO_PROTECTED] = { "grant-to-protected-role", false },
	[RULE_WRITE_OUTSIDE_WINDOW] = { "write-outside-window", true },
	[RULE_IDENTITY_CHANGE] = { "identity-change", false },
	[RULE_READ_WRITE_OVERRIDE] = { "read-write-override", true },
	[RULE_OPAQUE_SQL] = { "opaque-sql", false },
	[RULE_FASTPATH] = { "fastpath", false },
	[RULE_UNPARSABLE] = { "unparsable", false },
	[RULE_CONFIG] = { "rule", false },
};

const char *policy_rule_name(policy_rule r)
{
	return (unsigned)r < sizeof(rule_props) / sizeof(rule_props[0]) ? rule_props[r].name : NULL;
}

bool policy_rule_judged_at_execute(policy_rule r)
{
	return (unsigned)r < sizeof(rule_props) / sizeof(rule_props[0]) && rule_props[r].judged_at_execute;
}

/* Mark out denied under 'rule' (RULE_CONFIG: its text already in out->rule_buf). */
static void set_rule(policy_verdict *out, policy_rule rule)
{
	out->deny = true;
	out->rule_id = rule;
	out->rule = rule == RULE_CONFIG ? out->rule_buf : policy_rule_name(rule);
	snprintf(out->detail, sizeof(out->detail), "rule: %s", out->rule);
}

static void deny(policy_verdict *out, policy_rule rule, const char *fmt, const char *arg)
{
	set_rule(out, rule);
	snprintf(out->message, sizeof(out->message), fmt, arg ? arg : "");
}

void policy_verdict_deny(policy_verdict *out, policy_rule rule, const char *message)
{
	memset(out, 0, sizeof(*out));
	set_rule(out, rule);
	snprintf(out->message, sizeof(out->message), "%s", message);
}

static bool eq_ci(const char *a, const char *b)
{
	return a && b && *b && strcasecmp(a, b) == 0;
}

bool policy_setting_is_pinned(const pgw_config *cfg, const char *name)
{
	return eq_ci(name, cfg->actor_setting) || eq_ci(name, cfg->tenant_setting) ||
	       eq_ci(name, cfg->claims_setting) || eq_ci(name, "role") || eq_ci(name, "session_authorization");
}

const char *policy_pinned_setting_written(const pgw_config *cfg, const policy_facts *f)
{
	for (size_t i = 0; i < f->settings.n; i++) {
		if (policy_setting_is_pinned(cfg, f->settings.v[i]))
			return f->settings.v[i];
	}
	return NULL;
}

/* Protected names compare case-insensitively after the parser's folding (CONTRACT §4). */
const char *policy_protected_grantee(const pgw_config *cfg, const policy_facts *f)
{
	for (size_t i = 0; i < f->grantees.n; i++) {
		for (size_t k = 0; k < cfg->n_protected_roles; k++) {
			if (strcasecmp(f->grantees.v[i], cfg->protected_roles[k]) == 0)
				return f->grantees.v[i];
		}
	}
	return NULL;
}

/* Whether schema.name (or bare name) is in trusted_functions; a bare call matches by name part. */
static bool is_trusted(const pgw_config *cfg, const char *fn)
{
	const char *dot = strrchr(fn, '.');

	for (size_t k = 0; k < cfg->n_trusted_functions; k++) {
		const char *t = cfg->trusted_functions[k], *tdot = strrchr(t, '.');

		if (strcasecmp(t, fn) == 0)
			return true;
		if (!dot && tdot && strcasecmp(tdot + 1, fn) == 0)
			return true;
	}
	return false;
}

/* The first user function not vouched for, or NULL. */
static const char *untrusted_function(const pgw_config *cfg, const policy_facts *f)
{
	for (size_t i = 0; i < f->funcs.n; i++) {
		if (!is_trusted(cfg, f->funcs.v[i]))
			return f->funcs.v[i];
	}
	return NULL;
}

static void window_hint(const policy_subject *s, policy_verdict *out)
{
	windows_hint(s->cfg, s->target->name, s->who ? s->who->actor : NULL, s->now, out->hint, sizeof(out->hint));
}

/* Operator rules: deny stops here (returns true); log remembers the first match. */
static bool apply_rules(const policy_subject *s, const char *text, size_t len, policy_verdict *out)
{
	const pgw_rule *logged = NULL;

	for (size_t i = 0; i < s->cfg->n_rules; i++) {
		const pgw_rule *r = &s->cfg->rules[i];

		if (!rule_applies_to(r, s->target->name) || !rule_matches(r, text, len))
			continue;
		if (r->action == RULE_ACTION_DENY) {
			snprintf(out->rule_buf, sizeof(out->rule_buf), "rule:%s", r->name);
			deny(out, RULE_CONFIG, "pgwarden: %s", r->message ? r->message : "statement denied by a rule");
			return true;
		}
		if (!logged)
			logged = r;
	}
	if (logged) {
		snprintf(out->rule_buf, sizeof(out->rule_buf), "rule:%s", logged->name);
		out->rule_id = RULE_CONFIG;
		out->rule = out->rule_buf;
	}
	return false;
}

/* Judge everything the statement makes PostgreSQL run against the target's catalog (zeroed without one). */
static void judge_calls(const policy_subject *s, const policy_facts *f, catalog_judgement *j)
{
	memset(j, 0, sizeof(*j));
	if (s->catalog)
		catalog_judge_facts(s->catalog, f, j);
}

/* Deny for a function's (or view's) bit, naming it: "... function app_set_tenant: sets app.tenant_id",
 * "... view billing.v: calls billing.switch_tenant: sets app.tenant_id". */
static bool deny_fn(policy_verdict *out, const catalog_judgement *j, uint32_t bit, policy_rule rule, const char *what)
{
	int b = __builtin_ctz(bit);

	if (!(j->bits & bit))
		return false;
	set_rule(out, rule);
	snprintf(out->message, sizeof(out->message), "pgwarden: %s: %s %s: %s", what,
		 j->kind[b] ? j->kind[b] : "function", j->fn[b], j->why[b] ? j->why[b] : "");
	return true;
}

/*
 * Whether the statement uses a definition the catalog has not read yet (*what: which). No catalog:
 * calls of user functions and attribute notation wait for it. Names unknown (a function or DO block
 * did the DDL): everything the catalog judges waits. Names known: only what uses one of them, directly
 * or through a function, view or hook (built-in names are judged on the old catalog: denying every
 * now() while a catalog loads would stop all traffic).
 */
static bool stale_use(const policy_subject *s, const policy_facts *f, const catalog_judgement *j, const char **what)
{
	*what = "function definitions";
	if (s->catalog_stale && !s->catalog)
		return f->funcs.n > 0 || f->attrs.n > 0;
	if (s->catalog_stale)
		return f->funcs.n > 0 || f->attrs.n > 0 || j->user || f->rels.n > 0 || f->wrels.n > 0 ||
		       f->types.n > 0 || f->opers.n > 0;
	return s->stale_names && (*what = catalog_stale_hit(s->catalog, f, s->stale_names)) != NULL;
}

/* Checks that hold on every target, before rules and windows. True if denied. */
static bool deny_everywhere(const policy_subject *s, const policy_facts *f, const catalog_judgement *j,
			    policy_verdict *out)
{
	const char *x;
	char why[200];

	if (f->flags & PF_UNPARSABLE) {
		deny(out, RULE_UNPARSABLE, "pgwarden: statement cannot be verified: %s", f->error);
		return true;
	}
	if (f->flags & PF_LEXING_CHANGE) {
		deny(out, RULE_UNPARSABLE, "pgwarden: changing how SQL is lexed is not allowed: %s", f->why_lexing);
		return true;
	}
	if (deny_fn(out, j, CJ_LEXING, RULE_UNPARSABLE, "changing how SQL is lexed is not allowed"))
		return true;
	if (f->flags & PF_IDENTITY) {
		deny(out, RULE_IDENTITY_CHANGE, "pgwarden: identity change is not allowed: %s", f->why_identity);
		return true;
	}
	if ((x = policy_pinned_setting_written(s->cfg, f))) {
		deny(out, RULE_IDENTITY_CHANGE, "pgwarden: identity change is not allowed: setting %s is pinned", x);
		return true;
	}
	if (policy_login_role_altered(s->cfg, f, why, sizeof(why))) {
		deny(out, RULE_IDENTITY_CHANGE, "pgwarden: identity change is not allowed: %s", why);
		return true;
	}
	if (deny_fn(out, j, CJ_IDENTITY, RULE_IDENTITY_CHANGE, "identity change is not allowed"))
		return true;
	if ((x = policy_protected_grantee(s->cfg, f))) {
		deny(out, RULE_GRANT_TO_PROTECTED, "pgwarden: granting to protected role \"%s\" is not allowed", x);
		return true;
	}
	if ((x = policy_protected_role_altered(s->cfg, f))) {
		deny(out, RULE_GRANT_TO_PROTECTED, "pgwarden: changing protected role \"%s\" is not allowed", x);
		return true;
	}
	if (policy_actor_role_altered(s->cfg, f, why, sizeof(why))) {
		deny(out, RULE_IDENTITY_CHANGE, "pgwarden: identity change is not allowed: %s", why);
		return true;
	}
	if (deny_fn(out, j, CJ_GRANT, RULE_GRANT_TO_PROTECTED, "granting to a protected role is not allowed"))
		return true;
	if (f->flags & PF_OPAQUE) {
		deny(out, RULE_OPAQUE_SQL, "pgwarden: statement runs SQL pgwarden cannot verify: %s", f->why_opaque);
		return true;
	}
	if (deny_fn(out, j, CJ_OPAQUE, RULE_OPAQUE_SQL, "statement runs SQL pgwarden cannot verify"))
		return true;
	/* Stale: only calls of non-built-in names wait for the new catalog (built-in names are judged on
	 * the old one, if any: denying every now() while a catalog loads would stop all traffic). */
	if (stale_use(s, f, j, &x)) {
		deny(out, RULE_OPAQUE_SQL,
		     "pgwarden: statement runs SQL pgwarden cannot verify: definitions changed and are being read "
		     "again (%s); retry",
		     x);
		return true;
	}
	return false;
}

/* What makes the statement need a window on production: its own writes, or a function's. */
static const char *production_write(const policy_subject *s, const policy_facts *f, const catalog_judgement *j,
				    char *buf, size_t bufsz)
{
	const char *fn;

	if (!(f->flags & PF_READ_ONLY))
		return f->why_write ? f->why_write : "statement is not known to be read-only";
	if (s->catalog) {
		int b = __builtin_ctz(CJ_WRITE);

		if (!(j->bits & CJ_WRITE))
			return NULL;
		snprintf(buf, bufsz, "%s %s: %s", j->kind[b] ? j->kind[b] : "function", j->fn[b],
			 j->why[b] ? j->why[b] : "");
		return buf;
	}
	if ((fn = untrusted_function(s->cfg, f))) {
		snprintf(buf, bufsz, "function %s is not known to be read-only", fn);
		return buf;
	}
	return NULL;
}

/* Production outside a window: only read-only statements, no read-write override. */
static void decide_production(const policy_subject *s, const policy_facts *f, const catalog_judgement *j,
			      policy_verdict *out)
{
	const char *actor = s->who ? s->who->actor : NULL;
	const pgw_window *w = windows_open_now(s->cfg, s->target->name, actor, s->now);
	char what[200];
	const char *write = production_write(s, f, j, what, sizeof(what));

	if (w) {
		out->window = write ? w->name : NULL;
		return;
	}
	if (f->flags & PF_RW_OVERRIDE) {
		deny(out, RULE_READ_WRITE_OVERRIDE,
		     "pgwarden: read-write transactions are not allowed outside an "
		     "approved window: %s",
		     f->why_rw);
		window_hint(s, out);
		return;
	}
	if (write) {
		deny(out, RULE_WRITE_OUTSIDE_WINDOW, "pgwarden: write outside an approved window: %s", write);
		window_hint(s, out);
	}
}

void policy_decide(const policy_subject *s, const policy_facts *f, const char *text, size_t len, policy_verdict *out)
{
	catalog_judgement j;

	memset(out, 0, sizeof(*out));
	/* PREPARE is judged by what it prepares (the relay keeps the body's facts for EXECUTE). */
	if ((f->flags & PF_PREPARE) && f->inner)
		f = f->inner;
	judge_calls(s, f, &j);
	if (deny_everywhere(s, f, &j, out))
		return;
	if (apply_rules(s, text, len, out))
		return;
	if (s->target->environment == ENV_PRODUCTION)
		decide_production(s, f, &j, out);
	out->refresh_catalog = !out->deny && ((f->flags & PF_FUNC_DDL) || (j.bits & CJ_FUNC_DDL));
	out->refresh_names_known = out->refresh_catalog && !(j.bits & CJ_FUNC_DDL) && f->ddl_names.n > 0;
}

void policy_deny_fastpath(policy_verdict *out)
{
	memset(out, 0, sizeof(*out));
	deny(out, RULE_FASTPATH, "pgwarden: %sfunction calls through the fast-path protocol are not allowed", NULL);
}

void policy_verdict_copy(policy_verdict *dst, const policy_verdict *src)
{
	*dst = *src;
	if (src->rule == src->rule_buf)
		dst->rule = dst->rule_buf;
}
