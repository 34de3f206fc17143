/*
 * saslprep.h - SASLprep (RFC 4013) of a SCRAM password, as PostgreSQL applies it.
 *
 * The stringprep tables come from GNU libidn (Debian libidn-dev / libidn12),
 * profile "SASLprep" with unassigned code points prohibited (stored strings).
 */
#ifndef PGW_SASLPREP_H
#define PGW_SASLPREP_H

typedef enum {
	SASLPREP_SUCCESS,      /* *out holds the prepared string */
	SASLPREP_OOM,          /* out of memory */
	SASLPREP_INVALID_UTF8, /* input is not valid UTF-8 */
	SASLPREP_PROHIBITED,   /* a prohibited or unassigned character, bad bidi, or empty result */
} pgw_saslprep_rc;

/* Prepare 'in'; on success *out is a malloc'd string, else *out is NULL. */
pgw_saslprep_rc pgw_saslprep(const char *in, char **out);

/*
 * The password SCRAM actually hashes, as PostgreSQL's scram_build_secret
 * does: the SASLprep'd form, or the raw bytes when the input is not valid
 * UTF-8 or preparation fails. malloc'd; NULL only when out of memory.
 */
char *scram_prepare_password(const char *password);

#endif
