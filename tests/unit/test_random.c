/* test_random.c - random bytes fail closed: a failing source makes each user fail, never fall back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conf/core/random.h"
#include "proxy/throttle.h"

static bool no_random(void *buf, size_t n)
{
	(void)buf, (void)n;
	return false;
}

/* OpenSSL's source by default: two draws differ; an injected failing source is reported, then undone. */
static void test_source(void **state)
{
	uint8_t a[32], b[32];

	(void)state;
	assert_true(pgw_random_bytes(a, sizeof(a)));
	assert_true(pgw_random_bytes(b, sizeof(b)));
	assert_memory_not_equal(a, b, sizeof(a));
	assert_null(pgw_random_set_source(no_random));
	assert_false(pgw_random_bytes(a, sizeof(a)));
	assert_ptr_equal(pgw_random_set_source(NULL), no_random);
	assert_true(pgw_random_bytes(a, sizeof(a)));
}

/* The login throttle's hash seed: no randomness, no start (a known seed lets keys be aimed at one slot). */
static void test_throttle_seed(void **state)
{
	static throttle t1, t2;

	(void)state;
	assert_true(throttle_init(&t1));
	assert_true(throttle_init(&t2));
	assert_true(t1.seed != t2.seed);
	pgw_random_set_source(no_random);
	assert_false(throttle_init(&t1));
	pgw_random_set_source(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_source),
		cmocka_unit_test(test_throttle_seed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
