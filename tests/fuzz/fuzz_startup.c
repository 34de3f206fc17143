/*
 * fuzz_startup.c - libFuzzer target for the StartupMessage: frame_peek_startup,
 * startup_parse, and the "options" / client_encoding checks, with an oracle
 * that replays what PostgreSQL 15 does with an options value
 * (postinit.c pg_split_opts, postgres.c process_postgres_switches with glibc
 * getopt, guc.c ParseLongOption, encnames.c pg_char_to_encoding).
 *
 * Input: a whole startup packet (length word, protocol word, parameters).
 * The same bytes, NUL-terminated, are also used as an options value.
 * Crashes on memory errors (ASan/UBSan) and on any value pgwarden accepts
 * that PostgreSQL would read as a setting outside the allowlist or as an
 * unsafe client encoding. Set PGW_FUZZ_NO_ENCODING_ORACLE=1 to leave the
 * encoding oracle out (to look past a known encoding finding).
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "protocol/frame.h"
#include "protocol/startup.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool check_encodings = true;

#define MAX_WORDS 512

/* PostgreSQL's pg_split_opts: words split on unescaped isspace(), backslash escapes the next char. */
static int pg_split_opts(const char *s, char words[][1024], int max)
{
	int n = 0;

	while (*s && n < max) {
		size_t k = 0;
		bool esc = false;

		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		while (*s) {
			if (isspace((unsigned char)*s) && !esc)
				break;
			if (!esc && *s == '\\')
				esc = true;
			else {
				esc = false;
				if (k < 1023)
					words[n][k++] = *s;
			}
			s++;
		}
		words[n][k] = '\0';
		n++;
	}
	return n;
}

/* pg_char_to_encoding's cleaning (isalnum only, lower case) and the client-only multibyte encodings. */
static bool pg_encoding_unsafe(const char *name)
{
	static const char *const unsafe[] = {"sjis",   "shiftjis",   "mskanji",    "win932", "windows932",
					     "big5",   "win950",     "windows950", "gbk",    "win936",
					     "windows936", "uhc",   "win949",     "windows949", "gb18030",
					     "johab",  "shiftjis2004"};
	char key[64];
	size_t i, k = 0;

	if (strlen(name) >= 64) /* NAMEDATALEN: PostgreSQL rejects it outright */
		return false;
	for (i = 0; name[i]; i++)
		if (isalnum((unsigned char)name[i]))
			key[k++] = (char)tolower((unsigned char)name[i]);
	key[k] = '\0';
	for (i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++)
		if (strcmp(key, unsafe[i]) == 0)
			return true;
	return false;
}

/*
 * What PostgreSQL does with an options value pgwarden accepted: every switch
 * must be -c/-- with an allowlisted name and a value, nothing else.
 */
static void oracle_options(const char *options, bool encoding_safe)
{
	static char words[MAX_WORDS][1024];
	char *argv[MAX_WORDS + 2];
	int argc = 0, n, i, flag;

	n = pg_split_opts(options, words, MAX_WORDS);
	if (n >= MAX_WORDS)
		return; /* beyond what the oracle models */
	argv[argc++] = (char *)"postgres";
	for (i = 0; i < n; i++)
		argv[argc++] = words[i];
	argv[argc] = NULL;
	opterr = 0;
	optind = 0; /* glibc: full re-initialisation */
	while ((flag = getopt(argc, argv, "B:bC:c:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:")) != -1) {
		char name[1024];
		const char *eq;
		size_t len, k;

		if (flag != 'c' && flag != '-') {
			fprintf(stderr, "oracle: options \"%s\" accepted, PostgreSQL sees -%c\n", options,
				flag);
			abort();
		}
		eq = strchr(optarg, '=');
		if (!eq) {
			fprintf(stderr, "oracle: options \"%s\" accepted, PostgreSQL: -%c %s without value\n",
				options, flag, optarg);
			abort();
		}
		len = (size_t)(eq - optarg) < sizeof(name) - 1 ? (size_t)(eq - optarg) : sizeof(name) - 1;
		for (k = 0; k < len; k++)
			name[k] = optarg[k] == '-' ? '_' : optarg[k];
		name[len] = '\0';
		if (!startup_setting_allowed(name)) {
			fprintf(stderr, "oracle: options \"%s\" accepted, PostgreSQL sets \"%s\"\n", options,
				name);
			abort();
		}
		if (check_encodings && encoding_safe && strcasecmp(name, "client_encoding") == 0 &&
		    pg_encoding_unsafe(eq + 1)) {
			fprintf(stderr, "oracle: options \"%s\" judged encoding-safe, PostgreSQL sets "
					"client_encoding \"%s\"\n", options, eq + 1);
			abort();
		}
	}
	if (optind != argc) {
		fprintf(stderr, "oracle: options \"%s\" accepted, PostgreSQL sees a stray word \"%s\"\n",
			options, argv[optind]);
		abort();
	}
}

static void check_options(const char *options)
{
	char refused[128];
	bool allowed = startup_options_allowed(options, refused, sizeof(refused));
	bool encoding_safe = startup_options_encoding_safe(options);

	if (!allowed && strlen(refused) >= sizeof(refused))
		abort();
	if (allowed)
		oracle_options(options, encoding_safe);
}

static void check_packet(const uint8_t *data, size_t size)
{
	uint32_t total;
	startup_params p;
	size_t i;

	if (frame_peek_startup(data, size, &total) != FRAME_OK || total > size)
		return;
	if (total < 8)
		abort(); /* frame_peek_startup promised at least the length and protocol words */
	if (startup_parse(data + 8, total - 8, &p) != STARTUP_OK)
		return;
	if (p.n > STARTUP_MAX_PARAMS || strlen(p.refused) >= sizeof(p.refused))
		abort();
	if (p.database == NULL && p.user != NULL)
		abort(); /* the database defaults to the user */
	for (i = 0; i < p.n; i++) {
		if (!startup_setting_allowed(p.names[i]))
			abort();
		/* client.c refuses client_encoding values startup_encoding_safe() rejects */
		if (check_encodings && strcasecmp(p.names[i], "client_encoding") == 0 &&
		    startup_encoding_safe(p.values[i]) && pg_encoding_unsafe(p.values[i])) {
			fprintf(stderr, "oracle: client_encoding \"%s\" judged safe\n", p.values[i]);
			abort();
		}
	}
	if (p.options)
		check_options(p.options);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *e = getenv("PGW_FUZZ_NO_ENCODING_ORACLE");

	(void)argc;
	(void)argv;
	check_encodings = !(e && *e && strcmp(e, "0") != 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	check_packet(data, size);
	if (size > STARTUP_PACKET_MAX)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_options(s);
	startup_encoding_safe(s);
	free(s);
	return 0;
}
