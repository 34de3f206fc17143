/* audit_hash.c - the SHA-256 (OpenSSL EVP) of audit lines that links the hash chain. */
#include "audit/audit_int.h"

#include <openssl/evp.h>

const char audit_zero_prev[AUDIT_HASH_HEX + 1] = "0000000000000000000000000000000000000000000000000000000000000000";

int audit_hasher_init(audit_hasher *h)
{
	h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->ctx = EVP_MD_CTX_new();
	if (h->md == NULL || h->ctx == NULL) {
		audit_hasher_free(h);
		return -1;
	}
	return 0;
}

void audit_hasher_free(audit_hasher *h)
{
	EVP_MD_CTX_free(h->ctx);
	EVP_MD_free(h->md);
	h->ctx = NULL;
	h->md = NULL;
}

int audit_hash_begin(audit_hasher *h)
{
	return EVP_DigestInit_ex2(h->ctx, h->md, NULL) == 1 ? 0 : -1;
}

int audit_hash_update(audit_hasher *h, const void *p, size_t n)
{
	return EVP_DigestUpdate(h->ctx, p, n) == 1 ? 0 : -1;
}

int audit_hash_end(audit_hasher *h, char out[AUDIT_HASH_HEX + 1])
{
	static const char hexdigits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	if (EVP_DigestFinal_ex(h->ctx, md, &n) != 1 || n * 2 != AUDIT_HASH_HEX)
		return -1;
	for (i = 0; i < n; i++) {
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
