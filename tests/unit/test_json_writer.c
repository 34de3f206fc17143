/* test_json_writer.c - the JSON escaper against hostile bytes, proven valid by parsing back with jansson. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/core/json_writer.h"

/* Escape 'in', check the exact JSON text, parse it back and check the decoded bytes. */
typedef struct escape_case {
	const char *name;     /* what the case is about */
	const char *in;       /* raw input bytes */
	size_t in_len;        /* its length (inputs may hold NUL) */
	const char *json;     /* the exact expected JSON string, quotes included */
	const char *decoded;  /* what a JSON parser must read back (UTF-8) */
	size_t decoded_len;
} escape_case;

#define CASE(name, in, json, decoded) {name, in, sizeof(in) - 1, json, decoded, sizeof(decoded) - 1}

static const escape_case cases[] = {
	CASE("empty", "", "\"\"", ""),
	CASE("plain", "SELECT 1", "\"SELECT 1\"", "SELECT 1"),
	CASE("quotes", "say \"hi\"", "\"say \\\"hi\\\"\"", "say \"hi\""),
	CASE("backslash", "a\\b\\\\", "\"a\\\\b\\\\\\\\\"", "a\\b\\\\"),
	CASE("slash kept", "a/b", "\"a/b\"", "a/b"),
	CASE("short escapes", "\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t"),
	CASE("NUL", "a\0b", "\"a\\u0000b\"", "a\0b"),
	CASE("ESC", "\x1b[31m", "\"\\u001b[31m\"", "\x1b[31m"),
	CASE("DEL", "\x7f", "\"\\u007f\"", "\x7f"),
	CASE("unit separator", "\x1f", "\"\\u001f\"", "\x1f"),
	/* well-formed UTF-8 is kept as is */
	CASE("2-byte", "caf\xc3\xa9", "\"caf\xc3\xa9\"", "caf\xc3\xa9"),
	CASE("3-byte", "\xe2\x82\xac", "\"\xe2\x82\xac\"", "\xe2\x82\xac"),
	CASE("4-byte", "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"", "\xf0\x9f\x98\x80"),
	CASE("U+D7FF", "\xed\x9f\xbf", "\"\xed\x9f\xbf\"", "\xed\x9f\xbf"),
	CASE("U+E000", "\xee\x80\x80", "\"\xee\x80\x80\"", "\xee\x80\x80"),
	CASE("U+FFFF", "\xef\xbf\xbf", "\"\xef\xbf\xbf\"", "\xef\xbf\xbf"),
	CASE("U+10FFFF", "\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"", "\xf4\x8f\xbf\xbf"),
	/* ... except characters a terminal acts on, escaped losslessly */
	CASE("U+2028 escaped", "\xe2\x80\xa8", "\"\\u2028\"", "\xe2\x80\xa8"),
	CASE("RLO escaped", "a\xe2\x80\xae" "b", "\"a\\u202eb\"", "a\xe2\x80\xae" "b"),
	CASE("LRI/PDI escaped", "\xe2\x81\xa6\xe2\x81\xa9", "\"\\u2066\\u2069\"", "\xe2\x81\xa6\xe2\x81\xa9"),
	CASE("C1 CSI escaped", "\xc2\x9b", "\"\\u009b\"", "\xc2\x9b"),
	CASE("NBSP kept", "\xc2\xa0", "\"\xc2\xa0\"", "\xc2\xa0"),
	CASE("U+2030 kept", "\xe2\x80\xb0", "\"\xe2\x80\xb0\"", "\xe2\x80\xb0"),
	/* every byte outside a well-formed sequence becomes \u00XX (its Latin-1 reading) */
	CASE("lone continuation", "a\x80z", "\"a\\u0080z\"", "a\xc2\x80z"),
	CASE("continuations", "\xbf\xbf", "\"\\u00bf\\u00bf\"", "\xc2\xbf\xc2\xbf"),
	CASE("overlong slash C0 AF", "\xc0\xaf", "\"\\u00c0\\u00af\"", "\xc3\x80\xc2\xaf"),
	CASE("overlong C1 81", "\xc1\x81", "\"\\u00c1\\u0081\"", "\xc3\x81\xc2\x81"),
	CASE("overlong 3-byte", "\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\"", "\xc3\xa0\xc2\x80\xc2\xaf"),
	CASE("overlong 4-byte", "\xf0\x80\x80\xaf", "\"\\u00f0\\u0080\\u0080\\u00af\"",
	     "\xc3\xb0\xc2\x80\xc2\x80\xc2\xaf"),
	CASE("surrogate high", "\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\"", "\xc3\xad\xc2\xa0\xc2\x80"),
	CASE("surrogate low", "\xed\xbf\xbf", "\"\\u00ed\\u00bf\\u00bf\"", "\xc3\xad\xc2\xbf\xc2\xbf"),
	CASE("above U+10FFFF", "\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\"",
	     "\xc3\xb4\xc2\x90\xc2\x80\xc2\x80"),
	CASE("F5 lead", "\xf5\x80\x80\x80", "\"\\u00f5\\u0080\\u0080\\u0080\"",
	     "\xc3\xb5\xc2\x80\xc2\x80\xc2\x80"),
	CASE("FF", "\xff", "\"\\u00ff\"", "\xc3\xbf"),
	CASE("truncated 2-byte at end", "ab\xc3", "\"ab\\u00c3\"", "ab\xc3\x83"),
	CASE("truncated 3-byte at end", "ab\xe2\x82", "\"ab\\u00e2\\u0082\"", "ab\xc3\xa2\xc2\x82"),
	CASE("truncated 4-byte at end", "\xf0\x9f\x98", "\"\\u00f0\\u009f\\u0098\"",
	     "\xc3\xb0\xc2\x9f\xc2\x98"),
	CASE("lead then ASCII", "\xe2" "a", "\"\\u00e2a\"", "\xc3\xa2" "a"),
	CASE("latin1 client text", "caf\xe9", "\"caf\\u00e9\"", "caf\xc3\xa9"),
	CASE("mixed", "'\\x\0\"\xff\xc3\xa9\n", "\"'\\\\x\\u0000\\\"\\u00ff\xc3\xa9\\n\"",
	     "'\\x\0\"\xc3\xbf\xc3\xa9\n"),
};

/* Parse a JSON string text back with jansson; returns the decoded bytes (malloc'd) and their length. */
static char *parse_back(const char *json, size_t len, size_t *out_len)
{
	json_error_t err;
	json_t *v;
	char *copy;

	v = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	if (v == NULL)
		fail_msg("jansson rejected %.*s: %s", (int)len, json, err.text);
	assert_true(json_is_string(v));
	*out_len = json_string_length(v);
	copy = malloc(*out_len + 1);
	assert_non_null(copy);
	memcpy(copy, json_string_value(v), *out_len + 1);
	json_decref(v);
	return copy;
}

static void test_escape_table(void **state)
{
	size_t i, dlen;
	char *dec;
	jbuf b;

	jbuf_init(&b);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const escape_case *c = &cases[i];

		jbuf_reset(&b);
		json_put_string(&b, c->in, c->in_len);
		assert_false(b.failed);
		if (b.len != strlen(c->json) || memcmp(b.data, c->json, b.len) != 0)
			fail_msg("case '%s': got %.*s want %s", c->name, (int)b.len, b.data, c->json);
		dec = parse_back(b.data, b.len, &dlen);
		if (dlen != c->decoded_len || memcmp(dec, c->decoded, dlen) != 0)
			fail_msg("case '%s': decoded differently", c->name);
		free(dec);
	}
	jbuf_free(&b);
}

/* Every control character on its own, and all 256 byte values in one string. */
static void test_every_control_and_byte(void **state)
{
	char in[256], want[16];
	size_t i, dlen;
	char *dec;
	jbuf b;

	jbuf_init(&b);
	for (i = 0; i <= 0x7f; i++) {
		if (i >= 0x20 && i < 0x7f)
			continue;
		in[0] = (char)i;
		jbuf_reset(&b);
		json_put_string(&b, in, 1);
		if (i == '\b' || i == '\f' || i == '\n' || i == '\r' || i == '\t')
			assert_int_equal(b.len, 4); /* "\n" and friends */
		else {
			snprintf(want, sizeof(want), "\"\\u%04zx\"", i);
			assert_int_equal(b.len, strlen(want));
			assert_memory_equal(b.data, want, b.len);
		}
		dec = parse_back(b.data, b.len, &dlen);
		assert_int_equal(dlen, 1);
		assert_int_equal((unsigned char)dec[0], i);
		free(dec);
	}
	for (i = 0; i < 256; i++)
		in[i] = (char)i;
	jbuf_reset(&b);
	json_put_string(&b, in, sizeof(in));
	dec = parse_back(b.data, b.len, &dlen);
	/* 128 ASCII bytes decode to themselves, 128 high bytes to 2-byte U+0080..U+00FF. */
	assert_int_equal(dlen, 128 + 2 * 128);
	assert_memory_equal(dec, in, 128);
	free(dec);
	jbuf_free(&b);
}

/* Every 1- and 2-byte input, and random longer ones: the output always parses. */
static void test_exhaustive_and_random(void **state)
{
	unsigned char in[64];
	size_t i, j, n, dlen;
	char *dec;
	jbuf b;

	jbuf_init(&b);
	for (i = 0; i < 65536; i++) {
		in[0] = (unsigned char)(i >> 8);
		in[1] = (unsigned char)i;
		jbuf_reset(&b);
		json_put_string(&b, in, 2);
		free(parse_back(b.data, b.len, &dlen));
	}
	srand(42);
	for (i = 0; i < 20000; i++) {
		n = (size_t)rand() % sizeof(in);
		for (j = 0; j < n; j++) /* bias towards bytes that make UTF-8 interesting */
			in[j] = (unsigned char)(rand() % 3 == 0 ? 0x80 + rand() % 0x80 : rand() % 256);
		jbuf_reset(&b);
		json_put_string(&b, in, n);
		dec = parse_back(b.data, b.len, &dlen);
		free(dec);
	}
	jbuf_free(&b);
}

/* Valid UTF-8 round-trips byte for byte. */
static void test_valid_utf8_roundtrip(void **state)
{
	static const char text[] = "INSERT INTO t VALUES ('\xe6\x97\xa5\xe6\x9c\xac', '\xd0\x9f\xd1\x80', "
				   "'\xf0\x9f\x90\x98', E'\\\\n')";
	size_t dlen;
	char *dec;
	jbuf b;

	jbuf_init(&b);
	json_put_string(&b, text, sizeof(text) - 1);
	dec = parse_back(b.data, b.len, &dlen);
	assert_int_equal(dlen, sizeof(text) - 1);
	assert_memory_equal(dec, text, dlen);
	free(dec);
	jbuf_free(&b);
}

typedef struct utf8_case {
	const char *bytes;
	size_t avail;
	size_t want;
} utf8_case;

static void test_utf8_seq_len(void **state)
{
	static const utf8_case t[] = {
		{"A", 1, 1},         {"\xc2\x80", 2, 2},     {"\xc1\xbf", 2, 0},         {"\xdf\xbf", 2, 2},
		{"\xe0\x9f\xbf", 3, 0}, {"\xe0\xa0\x80", 3, 3}, {"\xed\x9f\xbf", 3, 3},
		{"\xed\xa0\x80", 3, 0},
		{"\xf0\x8f\xbf\xbf", 4, 0}, {"\xf0\x90\x80\x80", 4, 4}, {"\xf4\x8f\xbf\xbf", 4, 4},
		{"\xf4\x90\x80\x80", 4, 0}, {"\xe2\x82\xac", 2, 0}, {"\xe2\x28\xac", 3, 0}, {"\x80", 1, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (utf8_seq_len((const uint8_t *)t[i].bytes, t[i].avail) != t[i].want)
			fail_msg("case %zu: want %zu", i, t[i].want);
}

static void test_integers_and_hex(void **state)
{
	jbuf b;

	jbuf_init(&b);
	jbuf_put_u64(&b, 0);
	jbuf_putc(&b, ' ');
	jbuf_put_u64(&b, UINT64_MAX);
	jbuf_putc(&b, ' ');
	jbuf_put_i64(&b, INT64_MIN);
	jbuf_putc(&b, ' ');
	jbuf_put_i64(&b, 42);
	jbuf_putc(&b, ' ');
	jbuf_put_hex(&b, "\x00\xff\x10", 3);
	jbuf_putc(&b, '\0');
	assert_string_equal(b.data, "0 18446744073709551615 -9223372036854775808 42 00ff10");
	jbuf_free(&b);
}

/* A large string grows the buffer correctly (several reallocs inside one escape). */
static void test_large_string(void **state)
{
	size_t n = 1 << 20, dlen, i;
	char *in = malloc(n), *dec;
	jbuf b;

	assert_non_null(in);
	for (i = 0; i < n; i++)
		in[i] = (char)(i % 7 == 0 ? '"' : i % 11 == 0 ? '\xff' : 'x');
	jbuf_init(&b);
	json_put_string(&b, in, n);
	assert_false(b.failed);
	dec = parse_back(b.data, b.len, &dlen);
	assert_true(dlen > n);
	free(dec);
	free(in);
	jbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_every_control_and_byte),
		cmocka_unit_test(test_exhaustive_and_random),
		cmocka_unit_test(test_valid_utf8_roundtrip),
		cmocka_unit_test(test_utf8_seq_len),
		cmocka_unit_test(test_integers_and_hex),
		cmocka_unit_test(test_large_string),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
