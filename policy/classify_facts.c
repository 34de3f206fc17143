/* classify_facts.c - the policy_facts object: building, merging, reference counting, accessors. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/core/arr.h"
#include "policy/classify_int.h"

policy_facts *facts_new(void)
{
	policy_facts *f = calloc(1, sizeof(*f));

	if (f)
		f->refcount = 1;
	return f;
}

/* Unparsable facts with a formatted reason; NULL only when out of memory. */
policy_facts *facts_unparsable(const char *fmt, ...)
{
	policy_facts *f = facts_new();
	va_list ap;
	char buf[512];

	if (!f)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	f->flags = PF_UNPARSABLE;
	f->error = strdup(buf);
	if (!f->error) {
		free(f);
		return NULL;
	}
	return f;
}

/* Set a reason slot if still empty: the first reason found is the one reported. */
void facts_set_why(policy_facts *f, char **slot, const char *fmt, ...)
{
	va_list ap;
	char buf[256];

	if (*slot)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	*slot = strdup(buf);
	if (!*slot)
		f->oom = true;
}

/* Append a string (optionally ASCII-lower-cased) unless already present. */
void facts_add(policy_facts *f, pc_strlist *l, const char *s, size_t len, bool lower)
{
	char *c;

	for (size_t i = 0; i < l->n; i++) {
		if (strlen(l->v[i]) == len && (lower ? strncasecmp(l->v[i], s, len) : strncmp(l->v[i], s, len)) == 0)
			return;
	}
	c = malloc(len + 1);
	if (!c || !ARR_EXTEND(l->v, l->n)) {
		free(c);
		f->oom = true;
		return;
	}
	for (size_t i = 0; i < len; i++)
		c[i] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
	c[len] = '\0';
	l->v[l->n++] = c;
}

static void merge_list(policy_facts *dst, pc_strlist *d, const pc_strlist *s)
{
	for (size_t i = 0; i < s->n; i++)
		facts_add(dst, d, s->v[i], strlen(s->v[i]), false);
}

static void merge_why(policy_facts *dst, char **d, const char *s)
{
	if (s)
		facts_set_why(dst, d, "%s", s);
}

void facts_merge(policy_facts *dst, const policy_facts *src, uint32_t flag_mask)
{
	dst->flags |= src->flags & flag_mask;
	merge_why(dst, &dst->why_write, src->why_write);
	merge_why(dst, &dst->why_identity, src->why_identity);
	merge_why(dst, &dst->why_opaque, src->why_opaque);
	merge_why(dst, &dst->why_rw, src->why_rw);
	merge_why(dst, &dst->why_lexing, src->why_lexing);
	merge_list(dst, &dst->settings, &src->settings);
	merge_list(dst, &dst->grantees, &src->grantees);
	merge_list(dst, &dst->funcs, &src->funcs);
	merge_list(dst, &dst->builtins, &src->builtins);
	merge_list(dst, &dst->rels, &src->rels);
	merge_list(dst, &dst->wrels, &src->wrels);
	merge_list(dst, &dst->attrs, &src->attrs);
	merge_list(dst, &dst->opers, &src->opers);
	merge_list(dst, &dst->types, &src->types);
	merge_list(dst, &dst->ddl_names, &src->ddl_names);
	merge_list(dst, &dst->roles, &src->roles);
	if (src->oom)
		dst->oom = true;
}

static void strlist_free(pc_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static void facts_destroy(policy_facts *f)
{
	if (f->inner)
		policy_facts_unref(f->inner);
	free(f->name);
	free(f->error);
	free(f->why_write);
	free(f->why_identity);
	free(f->why_opaque);
	free(f->why_rw);
	free(f->why_lexing);
	strlist_free(&f->settings);
	strlist_free(&f->grantees);
	strlist_free(&f->funcs);
	strlist_free(&f->builtins);
	strlist_free(&f->rels);
	strlist_free(&f->wrels);
	strlist_free(&f->attrs);
	strlist_free(&f->opers);
	strlist_free(&f->types);
	strlist_free(&f->ddl_names);
	strlist_free(&f->roles);
	free(f);
}

void policy_facts_ref(const policy_facts *f)
{
	if (f)
		__atomic_fetch_add(&((policy_facts *)f)->refcount, 1, __ATOMIC_RELAXED);
}

void policy_facts_unref(const policy_facts *f)
{
	if (f && __atomic_sub_fetch(&((policy_facts *)f)->refcount, 1, __ATOMIC_ACQ_REL) == 0)
		facts_destroy((policy_facts *)f);
}

uint32_t policy_facts_flags(const policy_facts *f)
{
	return f->flags;
}

const char *policy_facts_name(const policy_facts *f)
{
	return f->name;
}

const policy_facts *policy_facts_inner(const policy_facts *f)
{
	return f->inner;
}

const char *policy_facts_error(const policy_facts *f)
{
	return f->error;
}

bool policy_facts_syntax_error(const policy_facts *f, int *position)
{
	*position = f->syntax ? f->error_pos : 0;
	return f->syntax;
}

policy_facts *facts_syntax_error(const char *message, int position)
{
	policy_facts *f = facts_unparsable("%s", message);

	if (f) {
		f->syntax = true;
		f->error_pos = position > 0 ? position : 0;
	}
	return f;
}

char *const *policy_facts_settings(const policy_facts *f, size_t *n)
{
	*n = f->settings.n;
	return f->settings.v;
}

char *const *policy_facts_grantees(const policy_facts *f, size_t *n)
{
	*n = f->grantees.n;
	return f->grantees.v;
}

char *const *policy_facts_functions(const policy_facts *f, size_t *n)
{
	*n = f->funcs.n;
	return f->funcs.v;
}

char *const *policy_facts_ddl_names(const policy_facts *f, size_t *n)
{
	*n = f->ddl_names.n;
	return f->ddl_names.v;
}

char *const *policy_facts_relations(const policy_facts *f, size_t *n)
{
	*n = f->rels.n;
	return f->rels.v;
}

char *const *policy_facts_roles(const policy_facts *f, size_t *n)
{
	*n = f->roles.n;
	return f->roles.v;
}

const char *policy_facts_why_write(const policy_facts *f)
{
	return f->why_write;
}

const char *policy_facts_why_identity(const policy_facts *f)
{
	return f->why_identity;
}

const char *policy_facts_why_opaque(const policy_facts *f)
{
	return f->why_opaque;
}
