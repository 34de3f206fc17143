/* audit_hash.c - the SHA-256 (OpenSSL) of audit lines that links the hash chain. */
#include "audit/audit_int.h"

/*
 * Why OpenSSL's SHA256_Init/Update/Final and not EVP (they are deprecated
 * since 3.0, hence the define): EVP_DigestInit_ex2 frees and re-allocates the
 * provider's context and looks for an ENGINE on every call. Natively (perf,
 * pgbench -S through pgwarden) that cost twice the hashing itself, two
 * records per statement. The low-level calls run the same block function,
 * which OpenSSL picks per CPU: SHA-NI here (bench/audit_bench.c measures it
 * against OPENSSL_ia32cap with SHA-NI masked off).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <stdlib.h>

const char audit_zero_prev[AUDIT_HASH_HEX + 1] = "0000000000000000000000000000000000000000000000000000000000000000";

int audit_hasher_init(audit_hasher *h)
{
	h->ctx = malloc(sizeof(SHA256_CTX));
	return h->ctx != NULL ? 0 : -1;
}

void audit_hasher_free(audit_hasher *h)
{
	free(h->ctx);
	h->ctx = NULL;
}

int audit_hash_begin(audit_hasher *h)
{
	return SHA256_Init(h->ctx) == 1 ? 0 : -1;
}

int audit_hash_update(audit_hasher *h, const void *p, size_t n)
{
	return SHA256_Update(h->ctx, p, n) == 1 ? 0 : -1;
}

int audit_hash_end(audit_hasher *h, char out[AUDIT_HASH_HEX + 1])
{
	static const char hexdigits[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];
	unsigned int i;

	if (SHA256_Final(md, h->ctx) != 1)
		return -1;
	for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hexdigits[md[i] >> 4];
		out[2 * i + 1] = hexdigits[md[i] & 15];
	}
	out[AUDIT_HASH_HEX] = '\0';
	return 0;
}

int audit_hash_line(audit_hasher *h, const void *p, size_t n, char out[AUDIT_HASH_HEX + 1])
{
	if (audit_hash_begin(h) < 0 || audit_hash_update(h, p, n) < 0)
		return -1;
	return audit_hash_end(h, out);
}
