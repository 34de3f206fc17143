/* random.c - random bytes from OpenSSL's DRBG, failing closed, with a source tests can replace (see random.h). */
#include "conf/core/random.h"

#include <limits.h>

#include <openssl/rand.h>

/* OpenSSL's generator: RAND_bytes takes an int count, so larger requests are drawn in pieces. */
static bool openssl_source(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		int chunk = n > INT_MAX ? INT_MAX : (int)n;

		if (RAND_bytes(p, chunk) != 1)
			return false;
		p += chunk;
		n -= (size_t)chunk;
	}
	return true;
}

/* The source in use; only tests change it (pgw_random_set_source), before any thread starts. */
static pgw_random_source source = openssl_source;

bool pgw_random_bytes(void *buf, size_t n)
{
	return source(buf, n);
}

pgw_random_source pgw_random_set_source(pgw_random_source src)
{
	pgw_random_source prev = source;

	source = src != NULL ? src : openssl_source;
	return prev == openssl_source ? NULL : prev;
}
