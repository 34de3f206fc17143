/* test_pool_upkeep.c - the pool's upkeep decisions: how many to open for pool_min_idle, the idle sweep's verdict, when to check before lending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/pool_upkeep.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static pgw_target target(int size, int min_idle)
{
	pgw_target t;

	memset(&t, 0, sizeof(t));
	t.pool_size = size;
	t.pool_min_idle = min_idle;
	t.server_idle_timeout = 600;
	t.server_lifetime = 3600;
	t.server_check_delay = 30;
	return t;
}

/* One deficit case: the pool's counts and what upkeep_deficit must answer. */
typedef struct deficit_case {
	int size, min_idle;  /* pool_size, pool_min_idle */
	int n_open;          /* open or opening, lent included */
	int n_ready;         /* idle or being reset */
	int n_opening;       /* background connects in flight */
	time_t retry_at, now; /* back-off after a failed connect */
	int want;            /* connections to open now */
} deficit_case;

static const deficit_case deficit_cases[] = {
	{ 10, 0, 0, 0, 0, 0, 100, 0 },  /* min_idle off */
	{ 10, 3, 0, 0, 0, 0, 100, 3 },  /* cold start */
	{ 10, 3, 1, 1, 0, 0, 100, 2 },  /* one idle already */
	{ 10, 3, 3, 0, 3, 0, 100, 0 },  /* three on their way */
	{ 4, 3, 3, 0, 0, 0, 100, 1 },   /* three lent: pool_size leaves room for one */
	{ 4, 3, 4, 0, 0, 0, 100, 0 },   /* full: never beyond pool_size */
	{ 10, 3, 5, 5, 0, 0, 100, 0 },  /* more idle than asked */
	{ 10, 3, 0, 0, 0, 105, 100, 0 }, /* backing off after a failure */
	{ 10, 3, 0, 0, 0, 100, 100, 3 }, /* back-off over */
};

static void test_deficit(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(deficit_cases); i++) {
		const deficit_case *c = &deficit_cases[i];
		pgw_target t = target(c->size, c->min_idle);
		upkeep_state u;

		memset(&u, 0, sizeof(u));
		u.n_opening = c->n_opening;
		u.retry_at = c->retry_at;
		assert_int_equal(upkeep_deficit(&u, &t, c->n_open, c->n_ready, c->now), c->want);
	}
}

/* The sweep walks from the most recently idle: min_idle of them are spared the idle timeout, never the lifetime. */
static void test_idle_expired(void **state)
{
	pgw_target t = target(10, 2);
	time_t now = 10000;
	int keep = t.pool_min_idle;

	(void)state;
	/* idle for an hour each, young */
	assert_false(upkeep_idle_expired(&t, now - 3000, now - 3100, now, &keep));
	assert_false(upkeep_idle_expired(&t, now - 3000, now - 3100, now, &keep));
	assert_true(upkeep_idle_expired(&t, now - 3000, now - 3100, now, &keep)); /* the third goes */
	assert_int_equal(keep, 0);
	assert_false(upkeep_idle_expired(&t, now - 10, now - 3100, now, &keep)); /* not idle long enough */
	/* past server_lifetime: closed even as one of the min_idle, and it does not use up a keep */
	keep = 2;
	assert_true(upkeep_idle_expired(&t, now - 1, now - 3600, now, &keep));
	assert_int_equal(keep, 2);
}

static void test_check_due(void **state)
{
	pgw_target t = target(10, 0);
	time_t now = 5000;

	(void)state;
	assert_false(upkeep_check_due(&t, now - 29, 0, now));
	assert_true(upkeep_check_due(&t, now - 30, 0, now));
	t.server_check_delay = 0; /* always */
	assert_true(upkeep_check_due(&t, now, 0, now));
	assert_true(upkeep_check_due(&t, now, now - 1, now));
	assert_false(upkeep_check_due(&t, now, now, now)); /* just passed one: lent, not checked again */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deficit),
		cmocka_unit_test(test_idle_expired),
		cmocka_unit_test(test_check_due),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
