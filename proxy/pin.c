/* pin.c - building the identity-pinning SQL with safe quoting. */
#include "proxy/pin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/core/json_writer.h"
#include "proxy/wall.h"

/*
 * E'' literals are read the same whatever standard_conforming_strings says,
 * as long as both quote and backslash are doubled.
 */
int sql_quote_literal(char *buf, size_t bufsz, size_t off, const char *s)
{
	if (off + 3 > bufsz)
		return -1;
	buf[off++] = 'E';
	buf[off++] = '\'';
	for (; *s; s++) {
		if (off + 3 > bufsz)
			return -1;
		if (*s == '\'' || *s == '\\')
			buf[off++] = *s;
		buf[off++] = *s;
	}
	if (off + 2 > bufsz)
		return -1;
	buf[off++] = '\'';
	buf[off] = '\0';
	return (int)off;
}

int sql_quote_ident(char *buf, size_t bufsz, size_t off, const char *s)
{
	if (off + 2 > bufsz)
		return -1;
	buf[off++] = '"';
	for (; *s; s++) {
		if (off + 3 > bufsz)
			return -1;
		if (*s == '"')
			buf[off++] = '"';
		buf[off++] = *s;
	}
	if (off + 2 > bufsz)
		return -1;
	buf[off++] = '"';
	buf[off] = '\0';
	return (int)off;
}

/* Append a literal text fragment. */
static int put(char *buf, size_t bufsz, int off, const char *s)
{
	size_t n = strlen(s);

	if (off < 0 || (size_t)off + n + 1 > bufsz)
		return -1;
	memcpy(buf + off, s, n + 1);
	return off + (int)n;
}

/* The claims JSON {"sub":..,"role":..,"tenant_id":..} for claims_setting (malloc'd). */
static char *claims_json(const pgw_token *who)
{
	jbuf b;

	jbuf_init(&b);
	jbuf_put_lit(&b, "{\"sub\":");
	json_put_cstr(&b, who->actor);
	jbuf_put_lit(&b, ",\"role\":");
	json_put_cstr(&b, who->role);
	if (who->tenant) {
		jbuf_put_lit(&b, ",\"tenant_id\":");
		json_put_cstr(&b, who->tenant);
	}
	jbuf_put_lit(&b, "}");
	jbuf_putc(&b, '\0');
	if (b.failed) {
		jbuf_free(&b);
		return NULL;
	}
	return b.data;
}

typedef enum {
	PIN_SETS,   /* SET ROLE ...; SET ... TO ...; ...: one CommandComplete per statement */
	PIN_SELECT, /* SELECT set_config(...), ...: one statement, for the extended protocol */
} pin_style;

/* Append one setting in the given style; 'first' starts the statement list. */
static int put_setting(char *buf, size_t bufsz, int off, pin_style style, const char *name, const char *value,
		       bool first)
{
	if (style == PIN_SETS) {
		off = put(buf, bufsz, off, first ? "SET " : "; SET ");
		if (off >= 0)
			off = sql_quote_ident(buf, bufsz, (size_t)off, name);
		off = put(buf, bufsz, off, " TO ");
		return off >= 0 ? sql_quote_literal(buf, bufsz, (size_t)off, value) : -1;
	}
	off = put(buf, bufsz, off, first ? "SELECT pg_catalog.set_config(" : ", pg_catalog.set_config(");
	if (off >= 0)
		off = sql_quote_literal(buf, bufsz, (size_t)off, name);
	off = put(buf, bufsz, off, ", ");
	if (off >= 0)
		off = sql_quote_literal(buf, bufsz, (size_t)off, value);
	return put(buf, bufsz, off, ", false)");
}

/*
 * The walls' two settings (see wall.h): the identity signature, and the write
 * grant or '' (a grant from an earlier pinning must not outlive this one).
 */
static int put_wall(char *buf, size_t bufsz, int off, pin_style style, const pgw_token *who, const pin_wall *w)
{
	char sig[WALL_SIG_HEX], grant[WALL_WRITE_MAX] = "";

	if (!wall_sign_pin(w->target, w->backend_pid, who->role, who->actor, who->tenant, sig))
		return -1;
	if (w->write_until > 0 &&
	    !wall_sign_write(w->target, w->backend_pid, who->role, who->actor, w->write_from, w->write_until, grant))
		return -1;
	off = put_setting(buf, bufsz, off, style, WALL_PIN_SETTING, sig, false);
	return put_setting(buf, bufsz, off, style, WALL_WRITE_SETTING, grant, false);
}

/*
 * The role first (SET ROLE, or set_config('role'), which is what SET ROLE
 * does), then the actor, tenant and claims settings, then the read-only
 * default, then (walled targets) the signature and the write grant.
 */
static char *pin_build(const pgw_config *cfg, const pgw_token *who, bool read_only, pin_style style, const pin_wall *w)
{
	/* Quoting at most doubles each value; the names are quoted too. */
	size_t bufsz = 512 + 4 * (strlen(who->actor) + strlen(who->role) + (who->tenant ? strlen(who->tenant) : 0)) +
		       2 * (strlen(cfg->actor_setting) + strlen(cfg->tenant_setting) +
			    (cfg->claims_setting ? strlen(cfg->claims_setting) : 0));
	char *buf, *claims = NULL;
	int off;

	if (cfg->claims_setting && cfg->claims_setting[0]) {
		claims = claims_json(who);
		if (!claims)
			return NULL;
		bufsz += 2 * strlen(claims);
	}
	if (w != NULL && wall_required(w->target))
		bufsz += 2 * (WALL_SIG_HEX + WALL_WRITE_MAX) + 64;
	else
		w = NULL;
	buf = malloc(bufsz);
	if (!buf) {
		free(claims);
		return NULL;
	}
	if (style == PIN_SETS) {
		off = put(buf, bufsz, 0, "SET ROLE ");
		if (off >= 0)
			off = sql_quote_ident(buf, bufsz, (size_t)off, who->role);
	} else
		off = put_setting(buf, bufsz, 0, style, "role", who->role, true);
	off = put_setting(buf, bufsz, off, style, cfg->actor_setting, who->actor, false);
	off = put_setting(buf, bufsz, off, style, cfg->tenant_setting, who->tenant ? who->tenant : "", false);
	if (claims)
		off = put_setting(buf, bufsz, off, style, cfg->claims_setting, claims, false);
	off = put_setting(buf, bufsz, off, style, "default_transaction_read_only", read_only ? "on" : "off", false);
	if (w != NULL && off >= 0)
		off = put_wall(buf, bufsz, off, style, who, w);
	free(claims);
	if (off < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

char *pin_sql_build(const pgw_config *cfg, const pgw_token *who, bool read_only)
{
	return pin_build(cfg, who, read_only, PIN_SETS, NULL);
}

char *pin_sql_build_single(const pgw_config *cfg, const pgw_token *who, bool read_only)
{
	return pin_build(cfg, who, read_only, PIN_SELECT, NULL);
}

char *pin_sql_build_walled(const pgw_config *cfg, const pgw_token *who, bool read_only, const pin_wall *w)
{
	return pin_build(cfg, who, read_only, PIN_SETS, w);
}

char *pin_sql_build_single_walled(const pgw_config *cfg, const pgw_token *who, bool read_only, const pin_wall *w)
{
	return pin_build(cfg, who, read_only, PIN_SELECT, w);
}

unsigned pin_sql_statements_walled(const pgw_config *cfg, const pin_wall *w)
{
	/* pgwarden.pin and pgwarden.write */
	return pin_sql_statements(cfg) + (w != NULL && wall_required(w->target) ? 2 : 0);
}

const char *pin_sql_read_only(bool on)
{
	return on ? "SET default_transaction_read_only TO on" : "SET default_transaction_read_only TO off";
}

unsigned pin_sql_statements(const pgw_config *cfg)
{
	/* SET ROLE, actor, tenant, [claims], read-only */
	return (cfg->claims_setting && cfg->claims_setting[0]) ? 5 : 4;
}

/* ---- the client's own startup settings, replayed on every borrow -------------------------------- */

/* Where pin_settings_build() writes: a buffer sized up front, and a sticky failure. */
typedef struct settings_out {
	char *buf;   /* the SQL so far */
	size_t size; /* bytes allocated */
	int off;     /* bytes used, or -1 once something did not fit */
	unsigned n;  /* settings written */
} settings_out;

static bool settings_add(const char *name, const char *value, void *arg)
{
	settings_out *o = arg;

	if (o->off < 0 || !value)
		return o->off >= 0;
	o->off = put(o->buf, o->size, o->off, o->n ? ", pg_catalog.set_config(" : "SELECT pg_catalog.set_config(");
	if (o->off >= 0)
		o->off = sql_quote_literal(o->buf, o->size, (size_t)o->off, name);
	if (o->off >= 0)
		o->off = put(o->buf, o->size, o->off, ", ");
	if (o->off >= 0)
		o->off = sql_quote_literal(o->buf, o->size, (size_t)o->off, value);
	if (o->off >= 0)
		o->off = put(o->buf, o->size, o->off, ", false)");
	o->n++;
	return o->off >= 0;
}

char *pin_settings_build(const startup_params *p)
{
	settings_out o = { NULL, 64, 0, 0 };
	size_t i;
	for (i = 0; i < p->n; i++)
		o.size += 2 * (strlen(p->names[i]) + strlen(p->values[i])) + 64;
	if (p->options)
		o.size += 4 * strlen(p->options) + 64 * (strlen(p->options) / 2 + 1);
	if (!(o.buf = malloc(o.size)))
		return NULL;
	o.buf[0] = '\0';
	for (i = 0; i < p->n && o.off >= 0; i++)
		settings_add(p->names[i], p->values[i], &o);
	/* options were checked at startup to hold only settings the client could SET */
	if (p->options && o.off >= 0)
		startup_options_each(p->options, settings_add, &o);
	if (o.off < 0) {
		free(o.buf);
		return NULL;
	}
	return o.buf;
}
