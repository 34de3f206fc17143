/* decide.c - the verdict: facts + config snapshot + target + actor + clock -> allow / deny (rule id). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"
#include "policy/classify_int.h"
#include "policy/windows.h"

/*
 * Order of checks (the first that denies names the rule): unparsable, lexing
 * change (reported as "unparsable"), identity-change, grant-to-protected-role,
 * opaque-sql, [rule.*] deny, read-write-override and write-outside-window
 * (production without an open window). Staging and development run writes.
 * A [rule.*] with action=log never denies; the first matching one is reported.
 */

static void deny(policy_verdict *out, const char *rule, const char *fmt, const char *arg)
{
	out->deny = true;
	out->rule = rule;
	snprintf(out->message, sizeof(out->message), fmt, arg ? arg : "");
	snprintf(out->detail, sizeof(out->detail), "rule: %s", rule);
}

static bool eq_ci(const char *a, const char *b)
{
	return a && b && *b && strcasecmp(a, b) == 0;
}

/* Whether a setting name is one of the settings pgwarden pins for the session. */
static bool is_pinned_setting(const pgw_config *cfg, const char *name)
{
	return eq_ci(name, cfg->actor_setting) || eq_ci(name, cfg->tenant_setting)
	       || eq_ci(name, cfg->claims_setting) || eq_ci(name, "role")
	       || eq_ci(name, "session_authorization");
}

static const char *pinned_setting_written(const pgw_config *cfg, const policy_facts *f)
{
	for (size_t i = 0; i < f->settings.n; i++) {
		if (is_pinned_setting(cfg, f->settings.v[i]))
			return f->settings.v[i];
	}
	return NULL;
}

/* Protected names compare case-insensitively after the parser's folding (CONTRACT §4). */
static const char *protected_grantee(const pgw_config *cfg, const policy_facts *f)
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

static void format_utc(time_t t, char *buf, size_t sz)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void window_hint(const policy_subject *s, policy_verdict *out)
{
	const pgw_window *w = NULL;
	time_t t = windows_next_open(s->cfg, s->target->name, s->who ? s->who->actor : NULL, s->now, &w);
	char when[32];

	if (t == 0 || !w) {
		snprintf(out->hint, sizeof(out->hint), "no approved window is scheduled for this target");
		return;
	}
	format_utc(t, when, sizeof(when));
	snprintf(out->hint, sizeof(out->hint), "next approved window: %s opens %s", w->name, when);
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
			deny(out, out->rule_buf, "pgwarden: %s",
			     r->message ? r->message : "statement denied by a rule");
			return true;
		}
		if (!logged)
			logged = r;
	}
	if (logged) {
		snprintf(out->rule_buf, sizeof(out->rule_buf), "rule:%s", logged->name);
		out->rule = out->rule_buf;
	}
	return false;
}

/* Checks that hold on every target, before rules and windows. True if denied. */
static bool deny_everywhere(const policy_subject *s, const policy_facts *f, policy_verdict *out)
{
	const char *x;

	if (f->flags & PF_UNPARSABLE) {
		deny(out, "unparsable", "pgwarden: statement cannot be verified: %s", f->error);
		return true;
	}
	if (f->flags & PF_LEXING_CHANGE) {
		deny(out, "unparsable", "pgwarden: changing how SQL is lexed is not allowed: %s",
		     f->why_lexing);
		return true;
	}
	if (f->flags & PF_IDENTITY) {
		deny(out, "identity-change", "pgwarden: identity change is not allowed: %s", f->why_identity);
		return true;
	}
	if ((x = pinned_setting_written(s->cfg, f))) {
		deny(out, "identity-change", "pgwarden: identity change is not allowed: setting %s is pinned",
		     x);
		return true;
	}
	if ((x = protected_grantee(s->cfg, f))) {
		deny(out, "grant-to-protected-role",
		     "pgwarden: granting to protected role \"%s\" is not allowed", x);
		return true;
	}
	if (f->flags & PF_OPAQUE) {
		deny(out, "opaque-sql", "pgwarden: statement runs SQL pgwarden cannot verify: %s",
		     f->why_opaque);
		return true;
	}
	return false;
}

/* Production outside a window: only read-only statements, no read-write override. */
static void decide_production(const policy_subject *s, const policy_facts *f, policy_verdict *out)
{
	const char *actor = s->who ? s->who->actor : NULL;
	const pgw_window *w = windows_open_now(s->cfg, s->target->name, actor, s->now);
	const char *fn = untrusted_function(s->cfg, f);

	if (w) {
		out->window = (f->flags & PF_READ_ONLY) && !fn ? NULL : w->name;
		return;
	}
	if (f->flags & PF_RW_OVERRIDE) {
		deny(out, "read-write-override",
		     "pgwarden: read-write transactions are not allowed outside an "
		     "approved window: %s",
		     f->why_rw);
		window_hint(s, out);
		return;
	}
	if (!(f->flags & PF_READ_ONLY)) {
		deny(out, "write-outside-window", "pgwarden: write outside an approved window: %s",
		     f->why_write ? f->why_write : "statement is not known to be read-only");
		window_hint(s, out);
		return;
	}
	if (fn) {
		char what[200];

		snprintf(what, sizeof(what), "function %s is not known to be read-only", fn);
		deny(out, "write-outside-window", "pgwarden: write outside an approved window: %s", what);
		window_hint(s, out);
	}
}

void policy_decide(const policy_subject *s, const policy_facts *f, const char *text, size_t len,
		   policy_verdict *out)
{
	memset(out, 0, sizeof(*out));
	/* PREPARE is judged by what it prepares (the relay keeps the body's facts for EXECUTE). */
	if ((f->flags & PF_PREPARE) && f->inner)
		f = f->inner;
	if (deny_everywhere(s, f, out))
		return;
	if (apply_rules(s, text, len, out))
		return;
	if (s->target->environment == ENV_PRODUCTION)
		decide_production(s, f, out);
}

void policy_deny_fastpath(policy_verdict *out)
{
	memset(out, 0, sizeof(*out));
	deny(out, "fastpath", "pgwarden: %sfunction calls through the fast-path protocol are not allowed",
	     NULL);
}

void policy_verdict_copy(policy_verdict *dst, const policy_verdict *src)
{
	*dst = *src;
	if (src->rule == src->rule_buf)
		dst->rule = dst->rule_buf;
}
