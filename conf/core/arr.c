/* arr.c - growing malloc'd arrays by doubling or by one, never past what was allocated (see arr.h). */
#include "conf/core/arr.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Why memcpy: vp points at some T *; reading and writing it as a void * object would break C's aliasing rules. */
static bool resize(void *vp, size_t n, size_t elem)
{
	void *v, *nv;

	if (elem != 0 && n > SIZE_MAX / elem)
		return false;
	memcpy(&v, vp, sizeof(v));
	nv = realloc(v, n * elem);
	if (nv == NULL)
		return false;
	memcpy(vp, &nv, sizeof(nv));
	return true;
}

bool pgw_arr_reserve(void *vp, size_t *cap, size_t need, size_t elem, size_t first)
{
	size_t ncap = *cap ? *cap : (first ? first : 1);

	if (need <= *cap)
		return true;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return false;
		ncap *= 2;
	}
	if (!resize(vp, ncap, elem))
		return false;
	*cap = ncap;
	return true;
}

bool pgw_arr_extend(void *vp, size_t n, size_t elem)
{
	char *v;

	if (n == SIZE_MAX || !resize(vp, n + 1, elem))
		return false;
	memcpy(&v, vp, sizeof(v));
	memset(v + n * elem, 0, elem);
	return true;
}
