/* arr.h - the one growable-array helper: room for more elements in a malloc'd array, failing cleanly. */
#ifndef PGW_ARR_H
#define PGW_ARR_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Make *vp (a pointer to an array of 'elem'-byte elements, capacity *cap)
 * hold at least 'need' elements: the capacity doubles, starting at 'first'.
 * New slots are not initialised. False, with the array and *cap unchanged,
 * when memory runs out or the size would overflow: the caller can go on
 * with what it has, and nothing ever writes past the old capacity.
 */
bool pgw_arr_reserve(void *vp, size_t *cap, size_t need, size_t elem, size_t first);

/*
 * Make room for element n at the end of *vp, an array kept exactly n long
 * (small lists built once, with no capacity field): it becomes n + 1 long
 * with element n zeroed; the caller fills it and counts it. False, with the
 * array unchanged, when memory runs out.
 */
bool pgw_arr_extend(void *vp, size_t n, size_t elem);

/* Typed forms: 'v' is the array pointer itself (T *), 'cap' a size_t. */
#define ARR_RESERVE(v, cap, need, first) pgw_arr_reserve(&(v), &(cap), (need), sizeof(*(v)), (first))
#define ARR_EXTEND(v, n) pgw_arr_extend(&(v), (n), sizeof(*(v)))

#endif
