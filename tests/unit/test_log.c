/* test_log.c - the process log: multi-line messages folded to one line, text and JSON lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "conf/core/log.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* One folding case: input, buffer size, expected output. */
typedef struct fold_case {
	const char *in;   /* message as libpq or the server wrote it */
	size_t size;      /* output buffer size */
	const char *want; /* one line */
} fold_case;

static const fold_case fold_cases[] = {
	{"connection to server at \"10.0.0.5\", port 5432 failed: Connection refused\n\tIs the server running on "
	 "that host and accepting TCP/IP connections?\n", 256,
	 "connection to server at \"10.0.0.5\", port 5432 failed: Connection refused Is the server running on that "
	 "host and accepting TCP/IP connections?"},
	{"plain", 64, "plain"},
	{"", 8, ""},
	{"\n\n\t  \r\n", 8, ""},
	{"a\r\nb\n\nc", 16, "a b c"},
	{"  lead  and   inner  ", 64, "lead and inner"},
	{"cut here please", 8, "cut her"},
};

static void test_one_line(void **state)
{
	char out[256];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(fold_cases); i++) {
		const fold_case *c = &fold_cases[i];

		memset(out, 'x', sizeof(out));
		assert_ptr_equal(log_one_line(c->in, out, c->size), out);
		assert_string_equal(out, c->want);
	}
	assert_string_equal(log_one_line(NULL, out, sizeof(out)), "");
}

static void test_plural(void **state)
{
	(void)state;
	assert_string_equal(PLURAL(0, "target", "targets"), "targets");
	assert_string_equal(PLURAL(1, "target", "targets"), "target");
	assert_string_equal(PLURAL(2, "rule", "rules"), "rules");
}

/* Run fn with stderr going to a temporary file; return what it wrote (malloc'd). */
static char *capture_stderr(void (*fn)(void))
{
	FILE *tmp = tmpfile();
	int saved = dup(2);
	char *buf = calloc(1, 8192);

	fflush(stderr);
	dup2(fileno(tmp), 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	fread(buf, 1, 8191, tmp);
	fclose(tmp);
	return buf;
}

static void log_two_lines(void)
{
	pgw_log_session(LOG_LVL_WARN, 42, "user:jimmie", "prod", "10.0.0.9:5123", "upstream failed: %s",
			"refused\n\tIs the server running?\n");
	pgw_log(LOG_LVL_INFO, "ready: %d %s", 1, PLURAL(1, "target", "targets"));
}

static void test_text_lines(void **state)
{
	char *out;

	(void)state;
	pgw_log_json = false;
	out = capture_stderr(log_two_lines);
	assert_non_null(strstr(out, " UTC WARNING: s=42 user:jimmie prod 10.0.0.9:5123 upstream failed: refused Is the "
				    "server running?\n"));
	assert_non_null(strstr(out, " UTC LOG: ready: 1 target\n"));
	assert_null(strchr(out, '\t'));
	free(out);
}

static void test_json_lines(void **state)
{
	char *out, *save = NULL, *line;
	json_error_t err;
	int n = 0;

	(void)state;
	pgw_log_json = true;
	out = capture_stderr(log_two_lines);
	pgw_log_json = false;
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		json_t *j = json_loads(line, 0, &err);

		assert_non_null(j);
		assert_non_null(json_object_get(j, "ts"));
		if (n == 0) {
			assert_string_equal(json_string_value(json_object_get(j, "level")), "WARNING");
			assert_int_equal(json_integer_value(json_object_get(j, "session")), 42);
			assert_string_equal(json_string_value(json_object_get(j, "actor")), "user:jimmie");
			assert_string_equal(json_string_value(json_object_get(j, "target")), "prod");
			assert_string_equal(json_string_value(json_object_get(j, "client")), "10.0.0.9:5123");
			assert_string_equal(json_string_value(json_object_get(j, "msg")),
					    "upstream failed: refused Is the server running?");
		} else {
			assert_null(json_object_get(j, "session"));
			assert_string_equal(json_string_value(json_object_get(j, "msg")), "ready: 1 target");
		}
		json_decref(j);
	}
	assert_int_equal(n, 2);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_line),
		cmocka_unit_test(test_plural),
		cmocka_unit_test(test_text_lines),
		cmocka_unit_test(test_json_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
