/* femsg.c - reading the client messages the relay judges, through the bounded cursor (see femsg.h). */
#include "protocol/femsg.h"

#include <string.h>

#include "protocol/pktread.h"

bool fe_read_query(const uint8_t *body, size_t len, fe_query *m)
{
	/* Why: one NUL, at the end. A NUL inside would hide the rest of the text from the classifier. */
	if (len == 0 || body[len - 1] != '\0' || memchr(body, '\0', len) != body + len - 1)
		return false;
	m->sql = (const char *)body;
	m->len = len - 1;
	return true;
}

bool fe_read_parse(const uint8_t *body, size_t len, fe_parse *m)
{
	pktread r;

	pktread_init(&r, body, len);
	rd_cstr(&r, &m->name, NULL);
	rd_cstr(&r, &m->query, &m->query_len);
	rd_u16(&r, &m->n_params); /* unsigned: PostgreSQL allows 65535 parameters */
	return rd_bytes(&r, 4 * (size_t)m->n_params, &m->param_oids) && pktread_done(&r);
}

bool fe_read_bind(const uint8_t *body, size_t len, fe_bind *m)
{
	pktread r;

	pktread_init(&r, body, len);
	rd_cstr(&r, &m->portal, NULL);
	rd_cstr(&r, &m->stmt, NULL);
	if (r.bad)
		return false;
	m->rest = body + r.pos;
	m->rest_len = len - r.pos;
	return true;
}

bool fe_read_execute(const uint8_t *body, size_t len, fe_execute *m)
{
	pktread r;

	pktread_init(&r, body, len);
	rd_cstr(&r, &m->portal, NULL);
	rd_i32(&r, &m->max_rows);
	return pktread_done(&r);
}

bool fe_read_target(const uint8_t *body, size_t len, fe_target *m)
{
	pktread r;

	pktread_init(&r, body, len);
	rd_u8(&r, &m->what);
	rd_cstr(&r, &m->name, NULL);
	return pktread_done(&r) && (m->what == 'S' || m->what == 'P');
}
