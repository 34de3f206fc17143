/* random.h - random bytes for everything pgwarden invents: names, cancel keys, nonces, salts, tokens, seeds. */
#ifndef PGW_RANDOM_H
#define PGW_RANDOM_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Fill buf[0..n) from OpenSSL's DRBG (seeded from the OS CSPRNG, getrandom).
 * False when no randomness is to be had: the caller then fails what it was
 * doing (the session, the login, the command, the connection's reuse); it
 * never falls back to a constant, a counter or a weaker source.
 */
bool pgw_random_bytes(void *buf, size_t n);

/* A source of random bytes with pgw_random_bytes' contract. */
typedef bool (*pgw_random_source)(void *buf, size_t n);

/* Tests only: use 'src' from now on (NULL: OpenSSL's again); returns the previous source. */
pgw_random_source pgw_random_set_source(pgw_random_source src);

#endif
