/* startup.c - StartupMessage parameters and the startup-parameter allowlist. */
#include "protocol/startup.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "protocol/pktread.h"

/*
 * Every startup parameter becomes a setting upstream, so only settings that
 * cannot touch identity, lexing or privileges are honoured (CONTRACT §4).
 */
static const char *const allowed_settings[] = {
	"application_name", "client_encoding",    "DateStyle",   "IntervalStyle",
	"TimeZone",         "extra_float_digits", "search_path",
};

bool startup_setting_allowed(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(allowed_settings) / sizeof(allowed_settings[0]); i++)
		if (strcasecmp(name, allowed_settings[i]) == 0)
			return true;
	return false;
}

/*
 * Encodings PostgreSQL accepts only as client encodings because their
 * multibyte characters may contain bytes that look like ASCII quotes or
 * backslashes; pgwarden's parser would read such text differently from the
 * server (the CVE-2006-2314 class). Every alias PostgreSQL knows for them
 * (encnames.c), in its normalized form.
 */
static const char *const unsafe_encodings[] = {
	"big5", "cp936",  "gb18030", "gbk",    "johab",  "mskanji",    "shiftjis",   "shiftjis2004", "sjis",
	"uhc",  "win932", "win936",  "win949", "win950", "windows932", "windows936", "windows949",   "windows950",
};

/*
 * Normalize an encoding name as PostgreSQL's pg_char_to_encoding does: keep
 * only letters and digits, lower-cased. false if it cannot be a valid name.
 */
static bool normalize_encoding(const char *enc, char *out, size_t outsz)
{
	size_t o = 0;

	if (strlen(enc) >= 64) /* NAMEDATALEN: PostgreSQL rejects longer names */
		return false;
	for (; *enc; enc++) {
		unsigned char c = (unsigned char)*enc;
		if (c < 0x80 && isalnum(c)) {
			if (o + 1 >= outsz)
				return false;
			out[o++] = (char)tolower(c);
		}
	}
	out[o] = '\0';
	return true;
}

bool startup_encoding_safe(const char *enc)
{
	char norm[64];
	size_t i;

	if (!normalize_encoding(enc, norm, sizeof(norm)))
		return false;
	for (i = 0; i < sizeof(unsafe_encodings) / sizeof(unsafe_encodings[0]); i++)
		if (strcmp(norm, unsafe_encodings[i]) == 0)
			return false;
	return true;
}

static void set_refused(startup_params *out, const char *name)
{
	if (out->refused[0] == '\0')
		snprintf(out->refused, sizeof(out->refused), "%s", name);
}

startup_status startup_parse(const uint8_t *body, size_t len, startup_params *out)
{
	pktread r;

	memset(out, 0, sizeof(*out));
	pktread_init(&r, body, len);
	for (;;) {
		const char *name, *value;
		size_t nlen;

		if (!rd_cstr(&r, &name, &nlen))
			return STARTUP_MALFORMED;
		if (nlen == 0)
			break; /* the list ends with an empty name */
		if (!rd_cstr(&r, &value, NULL))
			return STARTUP_MALFORMED;
		if (strcmp(name, "user") == 0)
			out->user = value;
		else if (strcmp(name, "database") == 0)
			out->database = value;
		else if (strcmp(name, "options") == 0)
			out->options = value;
		else if (startup_setting_allowed(name) && out->n < STARTUP_MAX_PARAMS) {
			out->names[out->n] = name;
			out->values[out->n] = value;
			out->n++;
		} else
			set_refused(out, name); /* replication, role, app.tenant_id, ... */
	}
	if (!pktread_done(&r))
		return STARTUP_MALFORMED;
	if (out->database == NULL || out->database[0] == '\0')
		out->database = out->user;
	return STARTUP_OK;
}

/*
 * Walk an options value, split on unescaped spaces like PostgreSQL's
 * pg_split_opts; each word must be "-c name=value", "-cname=value" or
 * "--name=value". Calls visit(name, value, arg) per setting; stops and
 * returns false when visit does, or on a word of another form (name "options").
 */
typedef bool (*option_visitor)(const char *name, const char *value, void *arg);

static bool options_walk(const char *options, option_visitor visit, void *arg)
{
	const char *p = options;
	bool expect_setting = false;

	while (*p) {
		char word[1024];
		size_t n = 0;
		const char *setting;
		char name[256];
		size_t k = 0;

		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
			p++;
		if (!*p)
			break;
		while (*p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')) {
			if (*p == '\\' && p[1])
				p++;
			if (n < sizeof(word) - 1)
				word[n++] = *p;
			p++;
		}
		word[n] = '\0';
		if (expect_setting) {
			setting = word;
			expect_setting = false;
		} else if (strcmp(word, "-c") == 0) {
			expect_setting = true;
			continue;
		} else if (strncmp(word, "-c", 2) == 0)
			setting = word + 2;
		else if (strncmp(word, "--", 2) == 0)
			setting = word + 2;
		else
			return visit("options", "", arg);
		while (setting[k] && setting[k] != '=' && k < sizeof(name) - 1) {
			/* PostgreSQL treats '-' in option names as '_' */
			name[k] = setting[k] == '-' ? '_' : setting[k];
			k++;
		}
		name[k] = '\0';
		if (setting[k] != '=')
			return visit(name[0] ? name : "options", NULL, arg);
		if (!visit(name, setting + k + 1, arg))
			return false;
	}
	return expect_setting ? visit("options", NULL, arg) : true;
}

bool startup_options_each(const char *options, option_visitor visit, void *arg)
{
	return options_walk(options, visit, arg);
}

typedef struct refusal {
	char *out; /* where to copy the refused name */
	size_t outsz;
	startup_setting_check ok; /* the judge */
	void *arg;                /* its argument */
} refusal;

static bool visit_allowed(const char *name, const char *value, void *arg)
{
	refusal *r = arg;

	if (value && strcmp(name, "options") != 0 && r->ok(name, value, r->arg))
		return true;
	snprintf(r->out, r->outsz, "%s", name);
	return false;
}

static bool in_allowlist(const char *name, const char *value, void *arg)
{
	return startup_setting_allowed(name);
}

bool startup_options_check(const char *options, startup_setting_check ok, void *arg, char *refused, size_t refused_sz)
{
	refusal r = { refused, refused_sz, ok, arg };

	return options_walk(options, visit_allowed, &r);
}

bool startup_options_allowed(const char *options, char *refused, size_t refused_sz)
{
	return startup_options_check(options, in_allowlist, NULL, refused, refused_sz);
}

static bool visit_encoding(const char *name, const char *value, void *arg)
{
	return !(value && strcasecmp(name, "client_encoding") == 0 && !startup_encoding_safe(value));
}

bool startup_options_encoding_safe(const char *options)
{
	return options_walk(options, visit_encoding, NULL);
}
