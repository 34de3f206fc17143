/* test_protocol.c - framing, StartupMessage parsing and its allowlists, pktbuf and the pktread cursor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/femsg.h"
#include "protocol/frame.h"
#include "protocol/msgtypes.h"
#include "protocol/pktbuf.h"
#include "protocol/pktread.h"
#include "protocol/startup.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GB (1024u * 1024u * 1024u)

/* A byte string with embedded NULs: the literal without the compiler's final NUL. */
#define BYTES(lit) (const uint8_t *)(lit), (sizeof(lit) - 1)

/* ---- frame_peek ---- */

typedef struct frame_case {
	const char *what;     /* description for failure messages */
	uint8_t hdr[5];       /* type byte and length word */
	size_t avail;         /* bytes the caller says it has */
	uint32_t max_len;     /* largest accepted length word */
	frame_status want;    /* expected status */
	uint32_t want_body;   /* expected body length on FRAME_OK */
} frame_case;

static const frame_case frame_cases[] = {
	{"0 bytes", {'Q', 0, 0, 0, 4}, 0, GB, FRAME_NEED_MORE, 0},
	{"1 byte", {'Q', 0, 0, 0, 4}, 1, GB, FRAME_NEED_MORE, 0},
	{"2 bytes", {'Q', 0, 0, 0, 4}, 2, GB, FRAME_NEED_MORE, 0},
	{"3 bytes", {'Q', 0, 0, 0, 4}, 3, GB, FRAME_NEED_MORE, 0},
	{"4 bytes", {'Q', 0, 0, 0, 4}, 4, GB, FRAME_NEED_MORE, 0},
	{"length 0", {'Q', 0, 0, 0, 0}, 5, GB, FRAME_MALFORMED, 0},
	{"length 1", {'Q', 0, 0, 0, 1}, 5, GB, FRAME_MALFORMED, 0},
	{"length 3", {'Q', 0, 0, 0, 3}, 5, GB, FRAME_MALFORMED, 0},
	{"length 4 = empty body", {'S', 0, 0, 0, 4}, 5, GB, FRAME_OK, 0},
	{"length 5", {'Q', 0, 0, 0, 5}, 5, GB, FRAME_OK, 1},
	{"length = max", {'Q', 0x40, 0, 0, 0}, 5, GB, FRAME_OK, GB - 4},
	{"length = max + 1", {'Q', 0x40, 0, 0, 1}, 5, GB, FRAME_MALFORMED, 0},
	{"small max, at max", {'p', 0, 0, 0x20, 0}, 5, 8192, FRAME_OK, 8192 - 4},
	{"small max, max + 1", {'p', 0, 0, 0x20, 1}, 5, 8192, FRAME_MALFORMED, 0},
	{"0xffffffff under 1 GB", {'Q', 0xff, 0xff, 0xff, 0xff}, 5, GB, FRAME_MALFORMED, 0},
	{"0xffffffff under UINT32_MAX", {'d', 0xff, 0xff, 0xff, 0xff}, 5, UINT32_MAX, FRAME_OK,
	 UINT32_MAX - 4},
	{"negative as int32", {'Q', 0x80, 0, 0, 0}, 5, GB, FRAME_MALFORMED, 0},
	{"length byte order", {'D', 0, 0, 1, 2}, 5, GB, FRAME_OK, 0x102 - 4},
	{"more bytes than the header", {'X', 0, 0, 0, 4}, 100, GB, FRAME_OK, 0},
};

static void test_frame_peek(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(frame_cases); i++) {
		const frame_case *c = &frame_cases[i];
		char type = 0;
		uint32_t body = 12345;
		frame_status st = frame_peek(c->hdr, c->avail, c->max_len, &type, &body);

		if (st != c->want)
			fail_msg("frame_peek %s: status %d, want %d", c->what, st, c->want);
		if (st == FRAME_OK) {
			assert_int_equal(type, (char)c->hdr[0]);
			if (body != c->want_body)
				fail_msg("frame_peek %s: body %u, want %u", c->what, body, c->want_body);
		} else {
			/* nothing is written when the header is not accepted */
			assert_int_equal(type, 0);
			assert_int_equal(body, 12345);
		}
	}
}

typedef struct startup_frame_case {
	const char *what;
	uint8_t hdr[4];
	size_t avail;
	frame_status want;
	uint32_t want_len;
} startup_frame_case;

static const startup_frame_case startup_frame_cases[] = {
	{"0 bytes", {0, 0, 0, 8}, 0, FRAME_NEED_MORE, 0},
	{"1 byte", {0, 0, 0, 8}, 1, FRAME_NEED_MORE, 0},
	{"2 bytes", {0, 0, 0, 8}, 2, FRAME_NEED_MORE, 0},
	{"3 bytes", {0, 0, 0, 8}, 3, FRAME_NEED_MORE, 0},
	{"length 0", {0, 0, 0, 0}, 4, FRAME_MALFORMED, 0},
	{"length 4", {0, 0, 0, 4}, 4, FRAME_MALFORMED, 0},
	{"length 7", {0, 0, 0, 7}, 4, FRAME_MALFORMED, 0},
	{"length 8 (SSLRequest size)", {0, 0, 0, 8}, 4, FRAME_OK, 8},
	{"length 10000 = max", {0, 0, 0x27, 0x10}, 4, FRAME_OK, 10000},
	{"length 10001 = max + 1", {0, 0, 0x27, 0x11}, 4, FRAME_MALFORMED, 0},
	{"huge", {0x7f, 0xff, 0xff, 0xff}, 4, FRAME_MALFORMED, 0},
	{"negative", {0xff, 0xff, 0xff, 0xf0}, 4, FRAME_MALFORMED, 0},
};

static void test_frame_peek_startup(void **state)
{
	size_t i;

	(void)state;
	assert_int_equal(STARTUP_PACKET_MAX, 10000);
	for (i = 0; i < ARRAY_LEN(startup_frame_cases); i++) {
		const startup_frame_case *c = &startup_frame_cases[i];
		uint32_t len = 777;
		frame_status st = frame_peek_startup(c->hdr, c->avail, &len);

		if (st != c->want)
			fail_msg("frame_peek_startup %s: status %d, want %d", c->what, st, c->want);
		assert_int_equal(len, st == FRAME_OK ? c->want_len : 777);
	}
}

static void test_message_names(void **state)
{
	(void)state;
	assert_string_equal(frontend_message_name('Q'), "Query");
	assert_string_equal(frontend_message_name('P'), "Parse");
	assert_string_equal(frontend_message_name('D'), "Describe");
	assert_string_equal(frontend_message_name('H'), "Flush");
	assert_string_equal(frontend_message_name('d'), "CopyData");
	assert_string_equal(frontend_message_name('Z'), "unknown"); /* backend only */
	assert_string_equal(backend_message_name('D'), "DataRow");
	assert_string_equal(backend_message_name('H'), "CopyOutResponse");
	assert_string_equal(backend_message_name('S'), "ParameterStatus");
	assert_string_equal(backend_message_name('d'), "CopyData");
	assert_string_equal(backend_message_name('Q'), "unknown"); /* frontend only */
	assert_string_equal(backend_message_name('\0'), "unknown");
	assert_string_equal(frontend_message_name((char)0xff), "unknown");
}

/* ---- startup_parse ---- */

typedef struct startup_case {
	const char *what;
	const uint8_t *body;
	size_t len;
	startup_status want;
	const char *user;      /* expected user, NULL = missing */
	const char *database;  /* expected database, NULL = missing */
	const char *options;   /* expected options, NULL = none */
	size_t n;              /* allowlisted settings kept */
	const char *refused;   /* expected refused name, "" = none */
} startup_case;

static const startup_case startup_cases[] = {
	{"user and database", BYTES("user\0u1\0database\0db\0\0"), STARTUP_OK, "u1", "db", NULL, 0, ""},
	{"database defaults to user", BYTES("user\0user:jimmie\0\0"), STARTUP_OK, "user:jimmie",
	 "user:jimmie", NULL, 0, ""},
	{"empty database defaults to user", BYTES("database\0\0user\0u\0\0"), STARTUP_OK, "u", "u", NULL, 0,
	 ""},
	{"missing user", BYTES("database\0prod\0\0"), STARTUP_OK, NULL, "prod", NULL, 0, ""},
	{"missing user and database", BYTES("\0"), STARTUP_OK, NULL, NULL, NULL, 0, ""},
	{"last user wins", BYTES("user\0a\0user\0b\0\0"), STARTUP_OK, "b", "b", NULL, 0, ""},
	{"options kept", BYTES("user\0u\0options\0-c search_path=x\0\0"), STARTUP_OK, "u", "u",
	 "-c search_path=x", 0, ""},
	{"empty body", BYTES(""), STARTUP_MALFORMED, NULL, NULL, NULL, 0, ""},
	{"name not NUL-terminated", BYTES("user"), STARTUP_MALFORMED, NULL, NULL, NULL, 0, ""},
	{"name without value", BYTES("user\0"), STARTUP_MALFORMED, NULL, NULL, NULL, 0, ""},
	{"value not NUL-terminated", BYTES("user\0u"), STARTUP_MALFORMED, NULL, NULL, NULL, 0, ""},
	{"missing final NUL", BYTES("user\0u\0"), STARTUP_MALFORMED, NULL, NULL, NULL, 0, ""},
	{"missing final NUL after 2", BYTES("user\0u\0database\0d\0"), STARTUP_MALFORMED, NULL, NULL, NULL, 0,
	 ""},
	{"trailing byte", BYTES("user\0u\0\0x"), STARTUP_MALFORMED, NULL, NULL, NULL, 0, ""},
	{"trailing NUL", BYTES("user\0u\0\0\0"), STARTUP_MALFORMED, NULL, NULL, NULL, 0, ""},
	{"trailing parameter", BYTES("user\0u\0\0role\0x\0\0"), STARTUP_MALFORMED, NULL, NULL, NULL, 0, ""},
	{"replication refused", BYTES("user\0u\0replication\0database\0\0"), STARTUP_OK, "u", "u", NULL, 0,
	 "replication"},
	{"role refused", BYTES("user\0u\0role\0postgres\0\0"), STARTUP_OK, "u", "u", NULL, 0, "role"},
	{"tenant setting refused", BYTES("user\0u\0app.tenant_id\0other\0\0"), STARTUP_OK, "u", "u", NULL, 0,
	 "app.tenant_id"},
	{"protocol extension refused", BYTES("_pq_.x\0y\0user\0u\0\0"), STARTUP_OK, "u", "u", NULL, 0,
	 "_pq_.x"},
	{"session_authorization refused", BYTES("session_authorization\0x\0user\0u\0\0"), STARTUP_OK, "u",
	 "u", NULL, 0, "session_authorization"},
	{"standard_conforming_strings refused", BYTES("user\0u\0standard_conforming_strings\0off\0\0"),
	 STARTUP_OK, "u", "u", NULL, 0, "standard_conforming_strings"},
	{"'User' is a setting, not the keyword", BYTES("User\0u\0\0"), STARTUP_OK, NULL, NULL, NULL, 0,
	 "User"},
	{"first refusal is reported", BYTES("user\0u\0role\0a\0replication\0b\0\0"), STARTUP_OK, "u", "u",
	 NULL, 0, "role"},
	{"allowlisted kept", BYTES("user\0u\0application_name\0psql\0client_encoding\0UTF8\0\0"), STARTUP_OK,
	 "u", "u", NULL, 2, ""},
	{"allowlisted, any case", BYTES("user\0u\0APPLICATION_NAME\0x\0datestyle\0ISO\0TIMEZONE\0UTC\0"
					"intervalstyle\0iso_8601\0Extra_Float_Digits\0"
					"3\0SEARCH_PATH\0s\0CLIENT_ENCODING\0utf8\0\0"),
	 STARTUP_OK, "u", "u", NULL, 7, ""},
	{"allowlisted and refused", BYTES("user\0u\0application_name\0x\0role\0r\0\0"), STARTUP_OK, "u", "u",
	 NULL, 1, "role"},
};

static void test_startup_parse(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(startup_cases); i++) {
		const startup_case *c = &startup_cases[i];
		startup_params p;
		startup_status st = startup_parse(c->body, c->len, &p);

		if (st != c->want)
			fail_msg("startup_parse %s: status %d, want %d", c->what, st, c->want);
		if (st != STARTUP_OK)
			continue;
		if (c->user)
			assert_string_equal(p.user, c->user);
		else if (p.user)
			fail_msg("startup_parse %s: user %s, want none", c->what, p.user);
		if (c->database)
			assert_string_equal(p.database, c->database);
		else if (p.database)
			fail_msg("startup_parse %s: database %s, want none", c->what, p.database);
		if (c->options)
			assert_string_equal(p.options, c->options);
		else
			assert_null(p.options);
		if (p.n != c->n)
			fail_msg("startup_parse %s: %zu settings, want %zu", c->what, p.n, c->n);
		if (strcmp(p.refused, c->refused) != 0)
			fail_msg("startup_parse %s: refused \"%s\", want \"%s\"", c->what, p.refused,
				 c->refused);
	}
}

/* The kept settings point into the packet, in order, with their values. */
static void test_startup_settings_kept(void **state)
{
	static const uint8_t pkt[] = "user\0u\0application_name\0my app\0TimeZone\0Europe/Paris\0\0";
	startup_params p;

	(void)state;
	assert_int_equal(startup_parse(pkt, sizeof(pkt) - 1, &p), STARTUP_OK);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.names[0], "application_name");
	assert_string_equal(p.values[0], "my app");
	assert_string_equal(p.names[1], "TimeZone");
	assert_string_equal(p.values[1], "Europe/Paris");
	assert_true((const uint8_t *)p.values[1] > pkt && (const uint8_t *)p.values[1] < pkt + sizeof(pkt));
}

/* More allowlisted settings than fit: the extra one is refused, never dropped silently or overflowed. */
static void test_startup_too_many_settings(void **state)
{
	char pkt[4096];
	size_t off = 0;
	int i;
	startup_params p;

	(void)state;
	for (i = 0; i < STARTUP_MAX_PARAMS + 1; i++) {
		off += (size_t)sprintf(pkt + off, "application_name") + 1;
		off += (size_t)sprintf(pkt + off, "v%d", i) + 1;
	}
	pkt[off++] = '\0';
	assert_int_equal(startup_parse((const uint8_t *)pkt, off, &p), STARTUP_OK);
	assert_int_equal(p.n, STARTUP_MAX_PARAMS);
	assert_string_equal(p.refused, "application_name");
	assert_string_equal(p.values[STARTUP_MAX_PARAMS - 1], "v63");
}

/* A refused name longer than refused[] is cut, never overflowed. */
static void test_startup_long_refused_name(void **state)
{
	char pkt[1024];
	size_t off;
	startup_params p;

	(void)state;
	memset(pkt, 'r', 300);
	pkt[300] = '\0';
	memcpy(pkt + 301, "x\0\0", 3);
	off = 304;
	assert_int_equal(startup_parse((const uint8_t *)pkt, off, &p), STARTUP_OK);
	assert_int_equal(strlen(p.refused), sizeof(p.refused) - 1);
	assert_int_equal(p.refused[0], 'r');
}

/* ---- options ---- */

typedef struct options_case {
	const char *options;  /* the "options" startup value */
	bool allowed;         /* startup_options_allowed() */
	const char *refused;  /* expected refused name when not allowed, NULL = do not check */
} options_case;

static const options_case options_cases[] = {
	{"", true, NULL},
	{"   \t ", true, NULL},
	{"-c search_path=a", true, NULL},
	{"-csearch_path=a", true, NULL},
	{"--search_path=a", true, NULL},
	{"--search-path=a", true, NULL},
	{"-c SEARCH_PATH=a", true, NULL},
	{"\t-c\tsearch_path=a\n", true, NULL},
	{"-c application_name=a -c DateStyle=ISO --TimeZone=UTC -cextra_float_digits=3", true, NULL},
	{"--client-encoding=UTF8", true, NULL},
	{"-c search_path=", true, NULL},
	{"-c search_path=a=b", true, NULL},
	{"-c application_name=a\\ b", true, NULL},
	/* escaped spaces keep "-c role=x" inside the application_name value: one word */
	{"-c application_name=a\\ -c\\ role=x", true, NULL},
	{"-c search_path=a\\", true, NULL},
	{"-c role=x", false, "role"},
	{"-crole=x", false, "role"},
	{"--role=x", false, "role"},
	{"-c ROLE=x", false, "ROLE"},
	{"-c application_name=a -c role=x", false, "role"},
	{"-c session_authorization=x", false, "session_authorization"},
	{"--session-authorization=x", false, "session_authorization"},
	{"-c app.tenant_id=t", false, "app.tenant_id"},
	{"-c standard_conforming_strings=off", false, "standard_conforming_strings"},
	{"-c backslash_quote=on", false, "backslash_quote"},
	{"-c default_transaction_read_only=off", false, "default_transaction_read_only"},
	{"-c", false, "options"},
	{"-c search_path=a -c", false, "options"},
	{"-c search_path", false, "search_path"},
	{"--search_path", false, "search_path"},
	{"--", false, "options"},
	{"-c =x", false, NULL}, /* refused with an empty name */
	{"garbage", false, "options"},
	{"-c search_path=a garbage", false, "options"},
	{"-B 100", false, "options"},
	{"-e", false, "options"},
	{"-ec role=x", false, "options"},
	{"-C search_path=a", false, "options"},
	{"-c -c role=x", false, NULL},
	{"-c\\ role=x", false, NULL},
	{"-c role\\=x=y", false, "role"},
	{"-c search_path=a\\ -c role=x", false, "options"}, /* "role=x" is a stray word */
};

static void test_options_allowed(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(options_cases); i++) {
		const options_case *c = &options_cases[i];
		char refused[128] = "";
		bool ok = startup_options_allowed(c->options, refused, sizeof(refused));

		if (ok != c->allowed)
			fail_msg("options \"%s\": allowed %d, want %d (refused \"%s\")", c->options, ok,
				 c->allowed, refused);
		if (!ok && c->refused && strcmp(refused, c->refused) != 0)
			fail_msg("options \"%s\": refused \"%s\", want \"%s\"", c->options, refused,
				 c->refused);
	}
}

/* Very long words and names are cut inside pgwarden, never overflowed, and still refused. */
static void test_options_long_words(void **state)
{
	char opt[4096], refused[16];

	(void)state;
	snprintf(opt, sizeof(opt), "-c application_name=");
	memset(opt + strlen(opt), 'a', 2000);
	opt[20 + 2000] = '\0';
	assert_true(startup_options_allowed(opt, refused, sizeof(refused)));

	memset(opt, 0, sizeof(opt));
	strcpy(opt, "--");
	memset(opt + 2, 'n', 600);
	strcat(opt, "=v");
	assert_false(startup_options_allowed(opt, refused, sizeof(refused)));
	assert_int_equal(strlen(refused), sizeof(refused) - 1);
}

/* ---- client encodings ---- */

typedef struct encoding_case {
	const char *name;
	bool safe;
} encoding_case;

static const encoding_case encoding_cases[] = {
	{"SJIS", false},
	{"sjis", false},
	{"Shift_JIS", false},
	{"SHIFT-JIS", false},
	{"shiftjis", false},
	{"MSKANJI", false},
	{"WIN932", false},
	{"BIG5", false},
	{"big5", false},
	{"WIN950", false},
	{"GBK", false},
	{"WIN936", false},
	{"GB18030", false},
	{"UHC", false},
	{"WIN949", false},
	{"JOHAB", false},
	{"SHIFT_JIS_2004", false},
	{"shift-jis-2004", false},
	{"UTF8", true},
	{"utf-8", true},
	{"UNICODE", true},
	{"LATIN1", true},
	{"ISO-8859-1", true},
	{"EUC_JP", true},
	{"EUC_KR", true},
	{"EUC_CN", true},
	{"SQL_ASCII", true},
	{"WIN1252", true},
	{"KOI8R", true},
	{"", true},
};

static void test_encoding_safe(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(encoding_cases); i++) {
		const encoding_case *c = &encoding_cases[i];
		char opt[128];

		if (startup_encoding_safe(c->name) != c->safe)
			fail_msg("startup_encoding_safe(\"%s\") = %d, want %d", c->name, !c->safe, c->safe);
		/* the same through an options value, both spellings */
		snprintf(opt, sizeof(opt), "-c client_encoding=%s", c->name);
		if (startup_options_encoding_safe(opt) != c->safe)
			fail_msg("startup_options_encoding_safe(\"%s\") = %d, want %d", opt, !c->safe,
				 c->safe);
		snprintf(opt, sizeof(opt), "-c application_name=x --client-encoding=%s", c->name);
		if (startup_options_encoding_safe(opt) != c->safe)
			fail_msg("startup_options_encoding_safe(\"%s\") = %d, want %d", opt, !c->safe,
				 c->safe);
	}
	/* an unsafe name as the value of another setting is nobody's business */
	assert_true(startup_options_encoding_safe("-c application_name=SJIS"));
	assert_true(startup_options_encoding_safe("-c search_path=BIG5"));
	assert_false(startup_options_encoding_safe("-c CLIENT_ENCODING=sjis"));
}

/*
 * PostgreSQL (src/common/encnames.c, pg_char_to_encoding) drops EVERY
 * non-alphanumeric character before looking a name up, and also knows the
 * "windows9xx" aliases. Checked against a PostgreSQL 15 server:
 * SET client_encoding = 'S.JIS' / 'sjis ' / 'shift jis' / 'WINDOWS932' gives
 * SJIS, 'Windows936' GBK, 'windows949' UHC, 'windows950' BIG5, and
 * PGOPTIONS="-c client_encoding=S.JIS" connects with SJIS.
 */
static const char *const pg_unsafe_spellings[] = {
	"WINDOWS932", "Windows936", "windows949", "windows950", "S.JIS", "sjis ", "shift jis",
	"BIG.5",      "G/B/K",      "U+H+C",      "johab.",    "win 932", "GB 18030", "MS.Kanji",
};

static void test_encoding_pg_spellings(void **state)
{
	char missed[1024] = "";
	size_t i, off = 0;

	(void)state;
	for (i = 0; i < ARRAY_LEN(pg_unsafe_spellings); i++) {
		const char *name = pg_unsafe_spellings[i];
		char opt[128];
		bool via_options;

		snprintf(opt, sizeof(opt), "-c client_encoding=%s", name);
		/* a space would end the word in an options value */
		via_options = !strchr(name, ' ') && startup_options_encoding_safe(opt);
		if ((startup_encoding_safe(name) || via_options) && off < sizeof(missed))
			off += (size_t)snprintf(missed + off, sizeof(missed) - off, " \"%s\"", name);
	}
	if (missed[0])
		fail_msg("accepted as safe, but PostgreSQL reads them as unsafe client encodings:%s", missed);
}

/* ---- pktbuf ---- */

static void test_pktbuf_messages(void **state)
{
	static const uint8_t rfq[] = {'Z', 0, 0, 0, 5, 'I'};
	static const uint8_t ps[] = {'S', 0, 0, 0, 9, 'a', 0, 'b', 'c', 0};
	static const uint8_t ok[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
	pktbuf b;

	(void)state;
	pktbuf_init(&b);
	pkt_ready_for_query(&b, 'I');
	assert_false(b.failed);
	assert_int_equal(b.len, sizeof(rfq));
	assert_memory_equal(b.data, rfq, sizeof(rfq));

	pktbuf_reset(&b);
	pkt_parameter_status(&b, "a", "bc");
	assert_int_equal(b.len, sizeof(ps));
	assert_memory_equal(b.data, ps, sizeof(ps));

	pktbuf_reset(&b);
	pkt_auth(&b, 0, NULL, 0);
	assert_int_equal(b.len, sizeof(ok));
	assert_memory_equal(b.data, ok, sizeof(ok));

	/* two messages back to back: each length word is its own */
	pktbuf_reset(&b);
	pkt_ready_for_query(&b, 'T');
	pkt_ready_for_query(&b, 'E');
	assert_int_equal(b.len, 12);
	assert_memory_equal(b.data + 6, "Z\0\0\0\5E", 6);
	pktbuf_free(&b);
	assert_null(b.data);
}

static void test_pktbuf_fields(void **state)
{
	static const uint8_t want[] = {0,    0,    0,   17,  0x00, 0x03, 0x00, 0x00, 0xab,
				       0xcd, 'h', 'i', 0, 0x7f, 1,    2,    3};
	pktbuf b;

	(void)state;
	pktbuf_init(&b);
	pkt_begin(&b, 0); /* untyped: a startup-style packet */
	pkt_put_u32(&b, PGW_PROTOCOL_V3);
	pkt_put_u16(&b, 0xabcd);
	pkt_put_cstr(&b, "hi");
	pkt_put_u8(&b, 0x7f);
	pkt_put_bytes(&b, "\1\2\3", 3);
	pkt_put_bytes(&b, NULL, 0);
	pkt_end(&b);
	assert_false(b.failed);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	pktbuf_free(&b);
}

static void test_pktbuf_error(void **state)
{
	static const char want[] = "E\0\0\0\x37SERROR\0VERROR\0C42501\0Mpgwarden: no\0Drule: x\0Hwait\0";
	pktbuf b;
	pktread r;
	uint8_t type;
	uint32_t len;

	(void)state;
	pktbuf_init(&b);
	pkt_error(&b, "ERROR", "42501", "pgwarden: no", "rule: x", "wait");
	assert_false(b.failed);
	assert_int_equal(b.len, sizeof(want)); /* sizeof counts the final NUL terminator field */
	assert_memory_equal(b.data, want, sizeof(want));

	/* without detail and hint, the length still agrees with the content */
	pktbuf_reset(&b);
	pkt_error(&b, "FATAL", "28P01", "authentication failed", NULL, NULL);
	pktread_init(&r, b.data, b.len);
	assert_true(rd_u8(&r, &type));
	assert_int_equal(type, 'E');
	assert_true(rd_u32(&r, &len));
	assert_int_equal(len + 1, b.len);
	for (;;) {
		uint8_t field;
		const char *v;

		assert_true(rd_u8(&r, &field));
		if (field == 0)
			break;
		assert_true(rd_cstr(&r, &v, NULL));
		assert_true(field == 'S' || field == 'V' || field == 'C' || field == 'M');
	}
	assert_true(pktread_done(&r));
	pktbuf_free(&b);
}

static void test_pktbuf_grows(void **state)
{
	uint8_t chunk[100];
	pktbuf b;
	size_t i;

	(void)state;
	pktbuf_init(&b);
	pkt_begin(&b, 'd');
	for (i = 0; i < 50; i++) {
		memset(chunk, (int)i, sizeof(chunk));
		pkt_put_bytes(&b, chunk, sizeof(chunk));
	}
	pkt_end(&b);
	assert_false(b.failed);
	assert_int_equal(b.len, 5 + 5000);
	assert_true(b.cap >= b.len);
	assert_int_equal(b.data[4], (5004) & 0xff);
	assert_int_equal(b.data[3], (5004) >> 8);
	for (i = 0; i < 50; i++)
		assert_int_equal(b.data[5 + i * 100 + 99], i);
	/* reset keeps the allocation */
	i = b.cap;
	pktbuf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, i);
	assert_non_null(b.data);
	pktbuf_free(&b);
}

/* A failed reservation sticks: later puts do nothing, pkt_end does not touch memory, reset clears it. */
static void test_pktbuf_sticky_failure(void **state)
{
	pktbuf b;
	size_t len;

	(void)state;
	pktbuf_init(&b);
	pkt_begin(&b, 'Q');
	pkt_put_cstr(&b, "select 1");
	len = b.len;
	pkt_put_bytes(&b, "x", SIZE_MAX / 2); /* impossible size: must fail without reading 'p' */
	assert_true(b.failed);
	assert_int_equal(b.len, len);
	pkt_put_u8(&b, 1);
	pkt_put_u16(&b, 1);
	pkt_put_u32(&b, 1);
	pkt_put_cstr(&b, "more");
	pkt_error(&b, "ERROR", "XX000", "m", NULL, NULL);
	pkt_end(&b);
	assert_true(b.failed);
	assert_int_equal(b.len, len);
	/* the length word was never patched */
	assert_memory_equal(b.data, "Q\0\0\0\0", 5);

	pktbuf_reset(&b);
	assert_false(b.failed);
	pkt_ready_for_query(&b, 'I');
	assert_false(b.failed);
	assert_memory_equal(b.data, "Z\0\0\0\5I", 6);
	pktbuf_free(&b);

	/* failure on an empty buffer: pkt_end must not write through a NULL data pointer */
	pktbuf_init(&b);
	b.failed = true;
	pkt_begin(&b, 'Z');
	pkt_end(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	pktbuf_free(&b);
}

/* ---- pktread ---- */

static void test_pktread_values(void **state)
{
	static const uint8_t body[] = {0x01, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0xff,
				       0xff, 0xff, 0xfe, 'a', 'b', 0,    0,    9,    8};
	pktread r;
	uint8_t u8;
	uint16_t u16;
	int16_t i16;
	uint32_t u32;
	int32_t i32;
	const char *s;
	size_t slen;
	const uint8_t *p;

	(void)state;
	pktread_init(&r, body, sizeof(body));
	assert_true(rd_u8(&r, &u8));
	assert_int_equal(u8, 1);
	assert_true(rd_i16(&r, &i16));
	assert_int_equal(i16, -2);
	assert_true(rd_u32(&r, &u32));
	assert_int_equal(u32, 0x80000000u);
	assert_true(rd_i32(&r, &i32));
	assert_int_equal(i32, -2);
	assert_true(rd_bytes(&r, 6, &p));
	assert_true(pktread_done(&r));

	pktread_init(&r, body + 11, 6);
	assert_true(rd_cstr(&r, &s, &slen));
	assert_string_equal(s, "ab");
	assert_int_equal(slen, 2);
	assert_true(rd_cstr(&r, &s, NULL)); /* empty string, NULL length is allowed */
	assert_string_equal(s, "");
	assert_true(rd_u16(&r, &u16));
	assert_int_equal(u16, 0x0908);
	assert_true(pktread_done(&r));

	pktread_init(&r, body, 3);
	assert_true(rd_bytes(&r, 0, &p));
	assert_true(rd_bytes(&r, 3, &p));
	assert_ptr_equal(p, body);
	assert_true(rd_bytes(&r, 0, &p)); /* zero bytes at the end is fine */
	assert_true(pktread_done(&r));
}

typedef enum { RD_U8, RD_U16, RD_I16, RD_U32, RD_I32, RD_CSTR, RD_BYTES } rd_op;

typedef struct pktread_case {
	const char *what;
	const uint8_t *body;
	size_t len;
	size_t skip;      /* bytes consumed first with rd_bytes */
	rd_op op;         /* the read that must fail */
	size_t n;         /* for RD_BYTES */
} pktread_case;

static const pktread_case short_reads[] = {
	{"u8 on empty", BYTES(""), 0, RD_U8, 0},
	{"u16 on 1", BYTES("a"), 0, RD_U16, 0},
	{"i16 on 1", BYTES("a"), 0, RD_I16, 0},
	{"u32 on 3", BYTES("abc"), 0, RD_U32, 0},
	{"i32 on 3", BYTES("abc"), 0, RD_I32, 0},
	{"u32 at end", BYTES("abcd"), 1, RD_U32, 0},
	{"cstr without NUL", BYTES("abc"), 0, RD_CSTR, 0},
	{"cstr NUL already consumed", BYTES("ab\0"), 3, RD_CSTR, 0},
	{"cstr on empty", BYTES(""), 0, RD_CSTR, 0},
	{"bytes past end", BYTES("abc"), 1, RD_BYTES, 3},
	{"bytes SIZE_MAX", BYTES("abc"), 1, RD_BYTES, SIZE_MAX},
	{"bytes SIZE_MAX - 1", BYTES("abc"), 2, RD_BYTES, SIZE_MAX - 1},
};

static bool do_read(pktread *r, rd_op op, size_t n)
{
	uint8_t u8;
	uint16_t u16;
	int16_t i16;
	uint32_t u32;
	int32_t i32;
	const char *s;
	const uint8_t *p;

	switch (op) {
	case RD_U8: return rd_u8(r, &u8);
	case RD_U16: return rd_u16(r, &u16);
	case RD_I16: return rd_i16(r, &i16);
	case RD_U32: return rd_u32(r, &u32);
	case RD_I32: return rd_i32(r, &i32);
	case RD_CSTR: return rd_cstr(r, &s, NULL);
	case RD_BYTES: return rd_bytes(r, n, &p);
	}
	return false;
}

/* A short read fails, sets 'bad' for good, and every later read fails even when bytes remain. */
static void test_pktread_bounds(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(short_reads); i++) {
		const pktread_case *c = &short_reads[i];
		uint8_t body[16];
		const uint8_t *p;
		pktread r;
		size_t pos;

		memcpy(body, c->body, c->len);
		pktread_init(&r, body, c->len);
		assert_true(rd_bytes(&r, c->skip, &p));
		pos = r.pos;
		if (do_read(&r, c->op, c->n))
			fail_msg("pktread %s: read succeeded", c->what);
		assert_true(r.bad);
		assert_int_equal(r.pos, pos); /* a failed read consumes nothing */
		assert_false(pktread_done(&r));
		r.pos = 0; /* even with everything back, bad sticks */
		assert_false(rd_u8(&r, body));
		assert_false(rd_bytes(&r, 0, &p));
		assert_false(do_read(&r, RD_CSTR, 0));
	}
}

static void test_pktread_done(void **state)
{
	static const uint8_t body[] = {0, 0, 0, 1, 'x'};
	pktread r;
	uint32_t v;

	(void)state;
	pktread_init(&r, body, 0);
	assert_true(pktread_done(&r)); /* an empty body, nothing to read */
	pktread_init(&r, body, sizeof(body));
	assert_false(pktread_done(&r));
	assert_true(rd_u32(&r, &v));
	assert_false(pktread_done(&r)); /* one byte left over: length disagrees with contents */
	assert_true(rd_bytes(&r, 1, &(const uint8_t *){NULL}));
	assert_true(pktread_done(&r));
	assert_false(rd_u8(&r, (uint8_t *)&v));
	assert_false(pktread_done(&r)); /* reading past the end spoils it */
}

/* The client message readers frontend.c and the fuzzer share (protocol/femsg.c): a table of bodies, good and bad. */
typedef struct femsg_case {
	char type;       /* 'Q', 'P', 'B', 'E', 'D' (Describe and Close share a reader) */
	const char *body; /* the body's bytes */
	size_t len;      /* its length (bodies hold NULs) */
	bool ok;         /* whether the reader accepts it */
} femsg_case;

static bool femsg_read(const femsg_case *c)
{
	const uint8_t *b = (const uint8_t *)c->body;
	fe_query q;
	fe_parse p;
	fe_bind bi;
	fe_execute e;
	fe_target t;

	switch (c->type) {
	case 'Q':
		return fe_read_query(b, c->len, &q);
	case 'P':
		return fe_read_parse(b, c->len, &p);
	case 'B':
		return fe_read_bind(b, c->len, &bi);
	case 'E':
		return fe_read_execute(b, c->len, &e);
	default:
		return fe_read_target(b, c->len, &t);
	}
}

static void test_femsg_readers(void **state)
{
	static const femsg_case cases[] = {
		{ 'Q', "SELECT 1", 9, true },
		{ 'Q', "SELECT 1\0; DROP TABLE t", 24, false }, /* a NUL inside hides the rest */
		{ 'Q', "SELECT 1", 8, false },                 /* no NUL */
		{ 'Q', "", 0, false },
		{ 'P', "s1\0SELECT $1\0\0\1\0\0\0\x19", 19, true },
		{ 'P', "s1\0SELECT 1\0\0\0", 14, true },
		{ 'P', "s1\0SELECT 1\0\0\0x", 15, false },          /* a byte left over */
		{ 'P', "s1\0SELECT 1\0\0\1\0\0\0", 17, false },     /* one OID announced, 3 bytes given */
		{ 'P', "s1\0SELECT 1", 11, false },                /* unterminated */
		{ 'B', "p\0s\0\0\0\0\0\0\0", 10, true },             /* the rest is the gate's */
		{ 'B', "p\0s", 3, false },
		{ 'E', "p\0\0\0\0\0", 6, true },
		{ 'E', "p\0\0\0\0", 5, false },
		{ 'E', "p\0\0\0\0\0\0", 7, false },
		{ 'D', "Ss1\0", 4, true },
		{ 'D', "P\0", 2, true },
		{ 'D', "Xs1\0", 4, false },                      /* neither statement nor portal */
		{ 'D', "Ss1\0\0", 5, false },
	};
	fe_parse p;
	fe_bind bi;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (femsg_read(&cases[i]) != cases[i].ok)
			fail_msg("case %zu (%c): want %s", i, cases[i].type, cases[i].ok ? "accepted" : "refused");
	/* Fields point into the body; 65535 parameter types are allowed (the count is unsigned, as in PostgreSQL). */
	{
		static uint8_t big[3 + 2 + 4 * 65535];

		memcpy(big, "\0x\0\xff\xff", 5);
		assert_true(fe_read_parse(big, sizeof(big), &p));
		assert_int_equal(p.n_params, 65535);
		assert_string_equal(p.query, "x");
		assert_ptr_equal(p.param_oids, big + 5);
	}
	assert_true(fe_read_bind((const uint8_t *)"p\0s\0\0\1", 6, &bi));
	assert_string_equal(bi.portal, "p");
	assert_string_equal(bi.stmt, "s");
	assert_int_equal(bi.rest_len, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_peek),
		cmocka_unit_test(test_femsg_readers),
		cmocka_unit_test(test_frame_peek_startup),
		cmocka_unit_test(test_message_names),
		cmocka_unit_test(test_startup_parse),
		cmocka_unit_test(test_startup_settings_kept),
		cmocka_unit_test(test_startup_too_many_settings),
		cmocka_unit_test(test_startup_long_refused_name),
		cmocka_unit_test(test_options_allowed),
		cmocka_unit_test(test_options_long_words),
		cmocka_unit_test(test_encoding_safe),
		cmocka_unit_test(test_encoding_pg_spellings),
		cmocka_unit_test(test_pktbuf_messages),
		cmocka_unit_test(test_pktbuf_fields),
		cmocka_unit_test(test_pktbuf_error),
		cmocka_unit_test(test_pktbuf_grows),
		cmocka_unit_test(test_pktbuf_sticky_failure),
		cmocka_unit_test(test_pktread_values),
		cmocka_unit_test(test_pktread_bounds),
		cmocka_unit_test(test_pktread_done),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
