/* saslprep.c - SASLprep of SCRAM passwords through libidn's stringprep, with PostgreSQL's fallbacks. */
#include "protocol/saslprep.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stringprep.h>

static bool is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s & 0x80)
			return false;
	return true;
}

pgw_saslprep_rc pgw_saslprep(const char *in, char **out)
{
	char *res = NULL;
	uint32_t *ucs4;
	int rc;

	*out = NULL;
	/* PostgreSQL: a pure ASCII string is used as is, control characters included. */
	if (is_ascii(in)) {
		*out = strdup(in);
		return *out ? SASLPREP_SUCCESS : SASLPREP_OOM;
	}
	/* libidn returns NULL for invalid UTF-8 (overlong forms and surrogates included). */
	ucs4 = stringprep_utf8_to_ucs4(in, -1, NULL);
	if (!ucs4)
		return SASLPREP_INVALID_UTF8;
	free(ucs4);
	rc = stringprep_profile(in, &res, "SASLprep", STRINGPREP_NO_UNASSIGNED);
	if (rc == STRINGPREP_MALLOC_ERROR)
		return SASLPREP_OOM;
	if (rc != STRINGPREP_OK) {
		free(res);
		return SASLPREP_PROHIBITED;
	}
	/* PostgreSQL refuses a password that maps to nothing; libidn accepts it. */
	if (res[0] == '\0') {
		free(res);
		return SASLPREP_PROHIBITED;
	}
	*out = res;
	return SASLPREP_SUCCESS;
}

char *scram_prepare_password(const char *password)
{
	char *prep = NULL;

	switch (pgw_saslprep(password, &prep)) {
	case SASLPREP_SUCCESS:
		return prep;
	case SASLPREP_OOM:
		return NULL;
	case SASLPREP_INVALID_UTF8:
	case SASLPREP_PROHIBITED:
		break;
	}
	/* Why: PostgreSQL (and libpq) fall back to the raw bytes, so must we to match their verifiers. */
	return strdup(password);
}
