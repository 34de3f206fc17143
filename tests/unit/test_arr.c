/* test_arr.c - the growable-array helper: doubling, exact growth, zeroing, and failure that changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "conf/core/arr.h"

/* Doubling from 'first'; no realloc while the capacity suffices; an impossible size leaves all as it was. */
static void test_reserve(void **state)
{
	uint64_t *v = NULL, *before;
	size_t cap = 0;

	(void)state;
	assert_true(ARR_RESERVE(v, cap, 1, 8));
	assert_int_equal(cap, 8);
	for (size_t i = 0; i < 8; i++)
		v[i] = i;
	before = v;
	assert_true(ARR_RESERVE(v, cap, 8, 8));
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 8);
	assert_true(ARR_RESERVE(v, cap, 9, 8));
	assert_int_equal(cap, 16);
	assert_true(ARR_RESERVE(v, cap, 100, 8));
	assert_int_equal(cap, 128);
	assert_int_equal(v[7], 7);
	before = v;
	assert_false(ARR_RESERVE(v, cap, SIZE_MAX / 2, 8)); /* bytes overflow */
	assert_false(ARR_RESERVE(v, cap, SIZE_MAX, 8));     /* capacity overflow */
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 128);
	assert_int_equal(v[7], 7);
	free(v);
}

/* One more zeroed slot at a time, the rest kept. */
static void test_extend(void **state)
{
	struct pair {
		int a;
		char *b;
	} *v = NULL;
	size_t n = 0;

	(void)state;
	for (int i = 0; i < 50; i++) {
		assert_true(ARR_EXTEND(v, n));
		assert_int_equal(v[n].a, 0);
		assert_null(v[n].b);
		v[n++].a = i + 1;
	}
	for (int i = 0; i < 50; i++)
		assert_int_equal(v[i].a, i + 1);
	assert_false(pgw_arr_extend(&v, SIZE_MAX, sizeof(*v)));
	assert_int_equal(v[49].a, 50);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reserve),
		cmocka_unit_test(test_extend),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
