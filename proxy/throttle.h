/*
 * throttle.h - brute-force resistance for logins: failures are counted per
 * client address and per actor in a bounded table, and a failed login is
 * answered only after a back-off that grows with recent failures. A good
 * login is never delayed, and the delay is a timer, not a sleep, so a flood
 * of bad logins slows nobody else.
 */
#ifndef PGW_THROTTLE_H
#define PGW_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Slots in the failure table: bounded memory whatever the attacker sends. */
#define THROTTLE_SLOTS 4096
/* Failures forgiven after this long without another. */
#define THROTTLE_FORGET_SECONDS 600
/* Failures answered at once before the back-off starts. */
#define THROTTLE_FREE_FAILURES 3
#define THROTTLE_MAX_DELAY_MS 5000

typedef struct throttle_slot {
	uint64_t key_hash; /* hash of "a:<address>" or "u:<actor>"; 0 = empty */
	uint32_t failures; /* recent failures */
	time_t last;       /* time of the last failure */
} throttle_slot;

struct startup_count;

typedef struct throttle {
	throttle_slot slots[THROTTLE_SLOTS];
	struct startup_count *startups; /* unauthenticated connections per address (uthash), only while > 0 */
	uint64_t seed;                  /* random per process, so keys cannot be aimed at one slot */
	uint64_t delayed;               /* failures answered late, for /metrics */
} throttle;

/* Zero the table and draw its hash seed; false (pgwarden does not start) without random bytes. */
bool throttle_init(throttle *t);

/* Record a failure of (address, actor); returns the delay before answering it, in ms. */
uint32_t throttle_fail(throttle *t, const char *address, const char *actor, time_t now);

/*
 * Count an unauthenticated connection from an address; false when the
 * address already has 'limit' of them (one address cannot take every
 * startup slot). Each true must be paired with throttle_startup_done().
 */
bool throttle_startup_begin(throttle *t, const char *address, int limit);
void throttle_startup_done(throttle *t, const char *address);
void throttle_free(throttle *t);

/* A successful login: forget the address's and the actor's failures. */
void throttle_success(throttle *t, const char *address, const char *actor);

#endif
