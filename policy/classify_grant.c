/* classify_grant.c - who receives privileges: GRANT, GRANT role, default privileges, members, owners. */
#include <stdlib.h>
#include <string.h>

#include "policy/classify_int.h"

/*
 * Grantees are stored as the parser folded them (unquoted names lower-cased,
 * U&"\0061non" decoded, "public"/PUBLIC as ROLESPEC_PUBLIC -> "public"); the
 * decision compares them with protected_roles case-insensitively.
 */
/*
 * A RoleSpec's name as the parser folded it ("public", "current_user"... for
 * the specials), or NULL when it has none or on out of memory (*named false
 * when the spec is malformed: callers treat that as "could be anyone").
 */
static char *rolespec_name(const jdoc *d, uint32_t i, bool *named)
{
	uint32_t b = node_body(d, i, "RoleSpec"), type, name;
	static const struct {
		const char *type, *name;
	} specials[] = { { "ROLESPEC_PUBLIC", "public" },
			 { "ROLESPEC_CURRENT_USER", "current_user" },
			 { "ROLESPEC_CURRENT_ROLE", "current_role" },
			 { "ROLESPEC_SESSION_USER", "session_user" } };

	*named = true;
	if (!b)
		b = i; /* an unwrapped RoleSpec field (newowner, authrole, role, ...) */
	if (d->t[b].type != J_OBJ) {
		*named = false;
		return NULL;
	}
	type = jobj_get(d, b, "roletype");
	for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
		if (jstr_eq(d, type, specials[k].type))
			return strdup(specials[k].name);
	}
	name = jobj_get(d, b, "rolename");
	if (!name)
		*named = false;
	return name ? jstr_dup(d, name) : NULL;
}

void add_rolespec(pc_walk *w, uint32_t i)
{
	bool named;
	char *s = rolespec_name(w->d, i, &named);

	w->f->flags |= PF_GRANT;
	if (!s) {
		/* A grantee we cannot name could be anyone: identity-sensitive by default. */
		if (named)
			w->f->oom = true;
		else
			mark_identity(w, "grant to a role pgwarden cannot name");
		return;
	}
	facts_add(w->f, &w->f->grantees, s, strlen(s), false);
	free(s);
}

/* A role whose definition changes (a RoleSpec, wrapped or not). */
static void add_altered_role(pc_walk *w, uint32_t i)
{
	bool named;
	char *s = rolespec_name(w->d, i, &named);

	if (!s) {
		if (named)
			w->f->oom = true;
		else
			mark_identity(w, "change of a role pgwarden cannot name");
		return;
	}
	facts_add(w->f, &w->f->roles, s, strlen(s), false);
	free(s);
}

/* A role named by a plain string field (CREATE ROLE's name, RENAME's names, AccessPriv). */
static void add_altered_name(pc_walk *w, uint32_t str)
{
	char *s = str ? jstr_dup(w->d, str) : NULL;

	if (!s) {
		mark_identity(w, "change of a role pgwarden cannot name");
		return;
	}
	facts_add(w->f, &w->f->roles, s, strlen(s), false);
	free(s);
}

static void add_altered_list(pc_walk *w, uint32_t list)
{
	const jdoc *d = w->d;

	if (!list || d->t[list].type != J_ARR)
		return;
	for (uint32_t c = list + 1; c < d->t[list].end; c = d->t[c].end)
		add_altered_role(w, c);
}

static void add_rolespec_list(pc_walk *w, uint32_t list)
{
	const jdoc *d = w->d;

	if (!list || d->t[list].type != J_ARR)
		return;
	for (uint32_t c = list + 1; c < d->t[list].end; c = d->t[c].end)
		add_rolespec(w, c);
}

static bool is_grant(const jdoc *d, uint32_t body)
{
	uint32_t v = jobj_get(d, body, "is_grant");

	return v && d->t[v].type == J_LIT && d->text[d->t[v].start] == 't';
}

/* GRANT/REVOKE privileges (also the unwrapped action of ALTER DEFAULT PRIVILEGES). */
void on_grant(pc_walk *w, uint32_t body)
{
	bool grant = is_grant(w->d, body);

	mark_write(w, grant ? "GRANT" : "REVOKE");
	if (grant)
		add_rolespec_list(w, jobj_get(w->d, body, "grantees"));
	walk_fields(w, body);
}

/*
 * GRANT/REVOKE role: both sides' memberships change. The granted roles and the
 * grantees are altered roles (a protected role's memberships, and pgwarden's
 * login role's, are not changed through pgwarden); on GRANT the grantees also
 * gain the roles' privileges.
 */
void on_grant_role(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t list = jobj_get(d, body, "granted_roles"), c, ap;
	bool grant = is_grant(d, body);

	mark_write(w, grant ? "GRANT" : "REVOKE");
	for (c = list ? list + 1 : 0; list && c < d->t[list].end; c = d->t[c].end) {
		if ((ap = node_body(d, c, "AccessPriv")))
			add_altered_name(w, jobj_get(d, ap, "priv_name"));
		else
			mark_identity(w, "grant of a role pgwarden cannot name");
	}
	add_altered_list(w, jobj_get(d, body, "grantee_roles"));
	if (grant)
		add_rolespec_list(w, jobj_get(d, body, "grantee_roles"));
}

/*
 * Membership options of CREATE ROLE / ALTER GROUP: IN ROLE x (addroleto: x
 * gains a member), ROLE x and ADMIN x (rolemembers, adminmembers: x becomes a
 * member, gaining privileges), ALTER GROUP g ADD/DROP USER x (rolemembers).
 * Every role listed is altered; members gain privileges when adds_members.
 */
static void on_member_options(pc_walk *w, uint32_t opts, bool adds_members)
{
	const jdoc *d = w->d;
	uint32_t c, de, arg, list, defname;
	bool gains;

	for (c = opts ? opts + 1 : 0; opts && d->t[opts].type == J_ARR && c < d->t[opts].end; c = d->t[c].end) {
		if (!(de = node_body(d, c, "DefElem")))
			continue;
		defname = jobj_get(d, de, "defname");
		gains = jstr_eq(d, defname, "rolemembers") || jstr_eq(d, defname, "adminmembers");
		if (!gains && !jstr_eq(d, defname, "addroleto"))
			continue;
		if (!(arg = jobj_get(d, de, "arg")) || !(list = node_body(d, arg, "List")))
			continue;
		add_altered_list(w, jobj_get(d, list, "items"));
		if (gains && adds_members)
			add_rolespec_list(w, jobj_get(d, list, "items"));
	}
}

/* CREATE ROLE/USER/GROUP name: a new role of that name (a protected name would get a new meaning). */
void on_create_role(pc_walk *w, uint32_t body)
{
	mark_write(w, "CREATE ROLE");
	add_altered_name(w, jobj_get(w->d, body, "role"));
	on_member_options(w, jobj_get(w->d, body, "options"), true);
}

/* ALTER ROLE/USER name WITH ... (attributes, password), ALTER GROUP g ADD|DROP USER x. */
void on_alter_role(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;

	mark_write(w, "ALTER ROLE");
	add_altered_role(w, jobj_get(d, body, "role"));
	/* ALTER GROUP g ADD USER u: action 1; DROP USER: -1. */
	on_member_options(w, jobj_get(d, body, "options"), jnum(d, jobj_get(d, body, "action")) == 1);
}

/* ALTER ROLE name|ALL [IN DATABASE d] SET/RESET: the role's future sessions; no role = every role. */
void on_alter_role_set(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t role = jobj_get(d, body, "role"), set = jobj_get(d, body, "setstmt");

	mark_write(w, "ALTER ROLE");
	if (role)
		add_altered_role(w, role);
	else
		facts_add(w->f, &w->f->roles, "*", 1, false);
	if (set && d->t[set].type == J_OBJ)
		on_variable_set(w, set, true);
}

void on_drop_role(pc_walk *w, uint32_t body)
{
	mark_write(w, "DROP ROLE");
	add_altered_list(w, jobj_get(w->d, body, "roles"));
}

/* REASSIGN OWNED BY x TO y, DROP OWNED BY x: x's objects (functions among them) change hands or go. */
void on_owned_by(pc_walk *w, uint32_t body)
{
	uint32_t newrole = jobj_get(w->d, body, "newrole");

	w->f->flags |= PF_FUNC_DDL;
	mark_write(w, newrole ? "REASSIGN OWNED" : "DROP OWNED");
	add_altered_list(w, jobj_get(w->d, body, "roles"));
	if (newrole)
		add_rolespec(w, newrole);
}

/* ALTER ROLE old RENAME TO new: a name now means another role (a GRANT to it could reach anon).
 * Also: nothing may be renamed to pg_settings. */
void note_role_rename(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t type = jobj_get(d, body, "renameType");

	/* Why here too: a relation renamed to pg_settings could shadow the catalog's (classify_set.c). */
	if (!jstr_eq(d, type, "OBJECT_COLUMN") && !jstr_eq(d, type, "OBJECT_ROLE") &&
	    jstr_eq(d, jobj_get(d, body, "newname"), "pg_settings"))
		mark_identity(w, "a relation named pg_settings can stand in for pg_catalog.pg_settings");
	if (!jstr_eq(d, type, "OBJECT_ROLE"))
		return;
	add_altered_name(w, jobj_get(d, body, "subname"));
	add_altered_name(w, jobj_get(d, body, "newname"));
}

/*
 * CREATE POLICY ... [AS PERMISSIVE] [TO roles] (no TO means PUBLIC) and ALTER
 * POLICY ... TO roles: a permissive policy grants row access to its roles, a
 * grant like any other. A restrictive one only narrows access (ALTER POLICY
 * cannot say which it is: its roles count). The expressions are walked.
 */
void on_policy(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	bool create = jobj_get(d, body, "cmd_name") != 0;
	uint32_t v = jobj_get(d, body, "permissive");
	bool permissive = v && d->t[v].type == J_LIT && d->text[d->t[v].start] == 't';

	mark_write(w, create ? "CREATE POLICY" : "ALTER POLICY");
	if (!create || permissive)
		add_rolespec_list(w, jobj_get(d, body, "roles"));
	if ((v = jobj_get(d, body, "qual")))
		walk_value(w, v);
	if ((v = jobj_get(d, body, "with_check")))
		walk_value(w, v);
}

/* CREATE/ALTER USER MAPPING FOR role: the role gets to use the server with the mapping's credentials. */
void on_user_mapping(pc_walk *w, uint32_t body)
{
	uint32_t user = jobj_get(w->d, body, "user");
	char buf[40];
	const char *tag = stmt_command_tag(w->d, body, buf, sizeof(buf));

	mark_write(w, "%s", tag ? tag : "USER MAPPING");
	if (user)
		add_rolespec(w, user);
}

/* CREATE DATABASE ... OWNER name: the owner is a plain string option here, not a RoleSpec. */
void on_createdb(pc_walk *w, uint32_t body)
{
	const jdoc *d = w->d;
	uint32_t opts = jobj_get(d, body, "options"), c, de, arg, str;
	char *name;

	mark_write(w, "CREATE DATABASE");
	for (c = opts ? opts + 1 : 0; opts && d->t[opts].type == J_ARR && c < d->t[opts].end; c = d->t[c].end) {
		if (!(de = node_body(d, c, "DefElem")) || !jstr_eq(d, jobj_get(d, de, "defname"), "owner"))
			continue;
		w->f->flags |= PF_GRANT;
		if (!(arg = jobj_get(d, de, "arg")))
			continue; /* OWNER DEFAULT: the creator */
		if (!(str = node_body(d, arg, "String")) || !(str = jobj_get(d, str, "sval"))) {
			mark_identity(w, "database owner pgwarden cannot name");
			continue;
		}
		if ((name = jstr_dup(d, str)))
			facts_add(w->f, &w->f->grantees, name, strlen(name), false);
		else
			w->f->oom = true;
		free(name);
	}
}
