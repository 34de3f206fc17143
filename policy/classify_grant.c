/* classify_grant.c - who receives privileges: GRANT, GRANT role, default privileges, members, owners. */
#include <stdlib.h>
#include <string.h>

#include "policy/classify_int.h"

/*
 * Grantees are stored as the parser folded them (unquoted names lower-cased,
 * U&"\0061non" decoded, "public"/PUBLIC as ROLESPEC_PUBLIC -> "public"); the
 * decision compares them with protected_roles case-insensitively.
 */
void add_rolespec(pc_walk *w, uint32_t i)
{
	const jdoc *d = w->d;
	uint32_t b = node_body(d, i, "RoleSpec"), type, name;
	char *s = NULL;
	const char *special = NULL;

	if (!b)
		b = i; /* an unwrapped RoleSpec field (newowner, authrole, ...) */
	if (d->t[b].type != J_OBJ)
		return;
	type = jobj_get(d, b, "roletype");
	w->f->flags |= PF_GRANT;
	if (jstr_eq(d, type, "ROLESPEC_PUBLIC"))
		special = "public";
	else if (jstr_eq(d, type, "ROLESPEC_CURRENT_USER"))
		special = "current_user";
	else if (jstr_eq(d, type, "ROLESPEC_CURRENT_ROLE"))
		special = "current_role";
	else if (jstr_eq(d, type, "ROLESPEC_SESSION_USER"))
		special = "session_user";
	if (special) {
		facts_add(w->f, &w->f->grantees, special, strlen(special), false);
		return;
	}
	name = jobj_get(d, b, "rolename");
	if (!name || !(s = jstr_dup(d, name))) {
		/* A grantee we cannot name could be anyone: identity-sensitive by default. */
		mark_identity(w, "grant to a role pgwarden cannot name");
		return;
	}
	facts_add(w->f, &w->f->grantees, s, strlen(s), false);
	free(s);
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

/* GRANT role TO grantee: the grantees gain the role's privileges. */
void on_grant_role(pc_walk *w, uint32_t body)
{
	bool grant = is_grant(w->d, body);

	mark_write(w, grant ? "GRANT role" : "REVOKE role");
	if (grant)
		add_rolespec_list(w, jobj_get(w->d, body, "grantee_roles"));
}

/*
 * CREATE ROLE x ROLE anon / ADMIN anon, ALTER GROUP x ADD USER anon: the
 * listed members gain x's privileges. ALTER DEFAULT PRIVILEGES carries its
 * GrantStmt unwrapped in "action"; it is judged here too (same JSON shape).
 */
void on_role_options(pc_walk *w, uint32_t body, bool adds_members)
{
	const jdoc *d = w->d;
	uint32_t opts = jobj_get(d, body, "options"), c, de, arg, list;

	mark_write(w, "role change");
	for (c = opts ? opts + 1 : 0; opts && adds_members && c < d->t[opts].end; c = d->t[c].end) {
		if (!(de = node_body(d, c, "DefElem")))
			continue;
		if (!jstr_eq(d, jobj_get(d, de, "defname"), "rolemembers")
		    && !jstr_eq(d, jobj_get(d, de, "defname"), "adminmembers"))
			continue;
		if ((arg = jobj_get(d, de, "arg")) && (list = node_body(d, arg, "List")))
			add_rolespec_list(w, jobj_get(d, list, "items"));
	}
}
