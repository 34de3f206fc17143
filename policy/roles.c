/* roles.c - decide-time judgement of the roles a statement alters: protected roles and pgwarden's own login roles. */
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/classify_int.h"

/*
 * Facts list the roles a statement alters by name (policy_facts_roles); which
 * names matter is config: protected_roles, and the upstream login role of
 * every target (roles are cluster-wide, and two targets may share a cluster,
 * so a staging session must not lock pgwarden out of production either), and
 * the role of every token record (renaming, dropping or re-granting it changes
 * who those actors are upstream, or locks them out of SET ROLE).
 */

/* Why "*" and the specials: ALTER ROLE ALL touches every role; session_user is the login role
 * itself, and current_user is the owner inside a SECURITY DEFINER body (it could be anyone). */
static bool is_wildcard(const char *role)
{
	return strcmp(role, "*") == 0 || strcmp(role, "session_user") == 0 || strcmp(role, "current_user") == 0 ||
	       strcmp(role, "current_role") == 0;
}

const char *policy_protected_role_altered(const pgw_config *cfg, const policy_facts *f)
{
	for (size_t i = 0; i < f->roles.n; i++) {
		if (strcmp(f->roles.v[i], "*") == 0 && cfg->n_protected_roles > 0)
			return cfg->protected_roles[0];
		for (size_t k = 0; k < cfg->n_protected_roles; k++) {
			if (strcasecmp(f->roles.v[i], cfg->protected_roles[k]) == 0)
				return f->roles.v[i];
		}
	}
	return NULL;
}

/* The value of keyword in a conninfo option array, or NULL when absent or empty. */
static const char *opt_value(const PQconninfoOption *o, const char *keyword)
{
	for (; o && o->keyword; o++) {
		if (strcmp(o->keyword, keyword) == 0)
			return o->val && *o->val ? o->val : NULL;
	}
	return NULL;
}

/*
 * The upstream login role of a conninfo, as libpq will choose it: its user=,
 * else libpq's default (PGUSER, else the OS user). Returns false when it
 * cannot be known here: unparsable, out of memory, or a service file (which
 * may name the user) is in play without an explicit user=.
 */
static bool login_role_of(const char *conninfo, char *out, size_t outsz)
{
	PQconninfoOption *given = PQconninfoParse(conninfo ? conninfo : "", NULL), *defs = NULL;
	const char *user = opt_value(given, "user");
	bool ok = given != NULL;

	if (ok && !user) {
		defs = PQconndefaults();
		ok = defs && !opt_value(given, "service") && !opt_value(defs, "service");
		user = ok ? opt_value(defs, "user") : NULL;
		ok = ok && user;
	}
	if (ok)
		snprintf(out, outsz, "%s", user);
	PQconninfoFree(given);
	PQconninfoFree(defs);
	return ok;
}

bool policy_login_role_altered(const pgw_config *cfg, const policy_facts *f, char *why, size_t whysz)
{
	char login[256];

	for (size_t i = 0; i < f->roles.n; i++) {
		const char *r = f->roles.v[i];

		for (size_t t = 0; t < cfg->n_targets; t++) {
			const char *tn = cfg->targets[t].name;

			if (!login_role_of(cfg->targets[t].conninfo, login, sizeof(login))) {
				snprintf(why, whysz,
					 "it changes role \"%s\" and the login role of target %s is not known", r, tn);
				return true;
			}
			/* Case-insensitive: denies "PGWARDEN_SVC" too, although only a quoted name would match. */
			if (is_wildcard(r) || strcasecmp(r, login) == 0) {
				if (strcmp(r, "*") == 0)
					snprintf(why, whysz,
						 "ALTER ROLE ALL changes pgwarden's login role %s (target %s)", login,
						 tn);
				else
					snprintf(why, whysz, "role %s %s pgwarden's login role (target %s)", r,
						 is_wildcard(r) ? "may be" : "is", tn);
				return true;
			}
		}
	}
	return false;
}

bool policy_actor_role_altered(const pgw_config *cfg, const policy_facts *f, char *why, size_t whysz)
{
	const pgw_token_table *t = cfg->tokens;

	for (size_t i = 0; t && i < f->roles.n; i++) {
		for (size_t k = 0; k < t->n; k++) {
			if (t->v[k].role && strcasecmp(f->roles.v[i], t->v[k].role) == 0) {
				snprintf(why, whysz, "role %s is the role of actor %s's token", t->v[k].role,
					 t->v[k].actor);
				return true;
			}
		}
	}
	return false;
}
