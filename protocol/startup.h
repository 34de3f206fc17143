/*
 * startup.h - the StartupMessage: parsing its parameters and deciding which
 * may go upstream (CONTRACT §4, "Startup parameters").
 */
#ifndef PGW_STARTUP_H
#define PGW_STARTUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STARTUP_MAX_PARAMS 64

/* The parameters of one StartupMessage; strings point into the packet. */
typedef struct startup_params {
	uint32_t protocol;                     /* requested version, e.g. 196608 */
	const char *user;                      /* actor id; NULL if missing */
	const char *database;                  /* target name; defaults to user like PostgreSQL */
	const char *options;                   /* "options" value or NULL */
	const char *names[STARTUP_MAX_PARAMS]; /* allowlisted settings to forward */
	const char *values[STARTUP_MAX_PARAMS];
	size_t n;
	char refused[128]; /* first refused parameter name, "" if none */
} startup_params;

typedef enum {
	STARTUP_OK,        /* parsed; check refused[] before going on */
	STARTUP_MALFORMED, /* not a well-formed parameter list: 08P01 */
} startup_status;

/* Parse the body of a StartupMessage (after length and protocol words). */
startup_status startup_parse(const uint8_t *body, size_t len, startup_params *out);

/* Whether a setting may be given at startup (application_name, client_encoding, ...). */
bool startup_setting_allowed(const char *name);

/*
 * Check an "options" value: every "-c name=value" (or "--name=value") must
 * name an allowlisted setting. On refusal copies the offending name to
 * 'refused'. Returns false also for anything that is not -c/--.
 */
bool startup_options_allowed(const char *options, char *refused, size_t refused_sz);

/* A judge of one "-c name=value" of an options value (name with '-' already turned into '_'). */
typedef bool (*startup_setting_check)(const char *name, const char *value, void *arg);

/*
 * The same walk with the caller's judge: pgwarden passes the session's own
 * judgement of SET (policy_startup_setting_ok), so options allow exactly what
 * a session could SET. On refusal copies the offending name to 'refused'.
 */
bool startup_options_check(const char *options, startup_setting_check ok, void *arg, char *refused, size_t refused_sz);

/* Whether every client_encoding given inside an options value is safe. */
bool startup_options_encoding_safe(const char *options);

/* Call visit(name, value, arg) for each setting of an options value (value NULL: not a setting); false if visit stopped. */
bool startup_options_each(const char *options, bool (*visit)(const char *name, const char *value, void *arg),
			  void *arg);

/* Whether a client_encoding value is safe for pgwarden's parser (no ASCII bytes inside multibyte chars). */
bool startup_encoding_safe(const char *encoding);

#endif
