/* audit_sign.c - checkpoint keys: load an HMAC secret or an Ed25519 key, sign and check checkpoints. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "audit/audit.h"
#include "audit/audit_int.h"

/*
 * The signed bytes of a checkpoint record with seq N (why: a checkpoint
 * commits to everything before it, and the hash of line N-1 already commits
 * to lines 1..N-1 through the chain, so seq and hash of that one line are
 * enough; the label keeps these bytes from meaning anything elsewhere):
 *
 *     "pgwarden-audit-checkpoint-v1\n" <N-1 in decimal> "\n" <prev of record N, 64 lowercase hex> "\n"
 *
 * HMAC-SHA256 with the secret, or Ed25519 (pure, no pre-hash) with the
 * private key; the record carries "alg" and "sig" (lowercase hex).
 */
#define CHECKPOINT_LABEL "pgwarden-audit-checkpoint-v1\n"
#define KEY_FILE_MAX 65536 /* a key file is small: refuse anything larger */

typedef enum {
	SIGNER_HMAC,    /* shared secret: HMAC-SHA256 */
	SIGNER_ED25519, /* asymmetric: Ed25519 */
} signer_kind;

struct audit_signer {
	signer_kind kind;   /* which algorithm */
	unsigned char *key; /* HMAC: the secret (cleansed on free) */
	size_t key_len;     /* HMAC: its length */
	EVP_PKEY *pkey;     /* Ed25519: private (signing) or public (checking) */
};

/* Read a small file whole; NULL with 'err' set on failure. */
static unsigned char *read_key_file(const char *path, size_t *len, char *err, size_t errsz)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	size_t n;

	if (f == NULL) {
		snprintf(err, errsz, "%s: cannot open checkpoint key: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(KEY_FILE_MAX + 1);
	n = buf ? fread(buf, 1, KEY_FILE_MAX + 1, f) : 0;
	fclose(f);
	if (buf == NULL || n > KEY_FILE_MAX) {
		snprintf(err, errsz, "%s: %s", path, buf ? "checkpoint key file is too large" : "out of memory");
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* A PEM Ed25519 key: the private key, or (only to check) the public one. */
static EVP_PKEY *load_ed25519(const unsigned char *pem, size_t len, bool for_signing)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k;

	if (bio == NULL)
		return NULL;
	k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (k == NULL && !for_signing) {
		(void)BIO_reset(bio);
		k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	}
	BIO_free(bio);
	if (k != NULL && EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

audit_signer *audit_signer_load(const char *path, bool for_signing, char *err, size_t errsz)
{
	audit_signer *k = calloc(1, sizeof(*k));
	unsigned char *buf;
	size_t len = 0;

	if (k == NULL || (buf = read_key_file(path, &len, err, errsz)) == NULL) {
		if (k == NULL)
			snprintf(err, errsz, "%s: out of memory", path);
		free(k);
		return NULL;
	}
	if (len >= 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
		k->kind = SIGNER_ED25519;
		k->pkey = load_ed25519(buf, len, for_signing);
		OPENSSL_cleanse(buf, len);
		free(buf);
		if (k->pkey == NULL) {
			snprintf(err, errsz, "%s: not an Ed25519 %s key in PEM form", path,
				 for_signing ? "private" : "public or private");
			free(k);
			return NULL;
		}
		return k;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	if (len < AUDIT_HMAC_KEY_MIN) {
		snprintf(err, errsz,
			 "%s: an HMAC checkpoint key must have at least %d bytes (e.g. openssl rand -hex 32)", path,
			 AUDIT_HMAC_KEY_MIN);
		OPENSSL_cleanse(buf, len);
		free(buf);
		free(k);
		return NULL;
	}
	k->kind = SIGNER_HMAC;
	k->key = buf;
	k->key_len = len;
	return k;
}

void audit_signer_free(audit_signer *k)
{
	if (k == NULL)
		return;
	if (k->key) {
		OPENSSL_cleanse(k->key, k->key_len);
		free(k->key);
	}
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *audit_signer_alg(const audit_signer *k)
{
	return k->kind == SIGNER_HMAC ? "hmac-sha256" : "ed25519";
}

/* The signed bytes; returns their length (< sz) or 0. */
static size_t checkpoint_payload(uint64_t seq, const char *hash, char *out, size_t sz)
{
	int n = snprintf(out, sz, CHECKPOINT_LABEL "%llu\n%.64s\n", (unsigned long long)seq, hash);

	return n > 0 && (size_t)n < sz && strlen(hash) == AUDIT_HASH_HEX ? (size_t)n : 0;
}

static void to_hex(const unsigned char *p, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The raw signature of 'msg'; returns its length or 0. */
static size_t sign_raw(const audit_signer *k, const char *msg, size_t n, unsigned char out[64])
{
	unsigned int hl = 0;
	size_t sl = 64;
	EVP_MD_CTX *md;
	int ok;

	if (k->kind == SIGNER_HMAC)
		return HMAC(EVP_sha256(), k->key, (int)k->key_len, (const unsigned char *)msg, n, out, &hl) ? hl : 0;
	md = EVP_MD_CTX_new();
	ok = md && EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestSign(md, out, &sl, (const unsigned char *)msg, n) == 1;
	EVP_MD_CTX_free(md);
	return ok ? sl : 0;
}

int audit_sign_checkpoint(const audit_signer *k, uint64_t seq, const char *hash, char *sig, size_t sigsz)
{
	char msg[160];
	unsigned char raw[64];
	size_t n = checkpoint_payload(seq, hash, msg, sizeof(msg)), sl;

	if (n == 0 || (sl = sign_raw(k, msg, n, raw)) == 0 || sigsz < 2 * sl + 1)
		return -1;
	to_hex(raw, sl, sig);
	return 0;
}

/* Lowercase hex to bytes; returns the byte count or 0 when it is not hex of at most 'max' bytes. */
static size_t from_hex(const char *s, unsigned char *out, size_t max)
{
	size_t n = strlen(s), i;

	if (n == 0 || n % 2 != 0 || n / 2 > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	for (i = 0; i < n / 2; i++) {
		int hi = s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10;
		int lo = s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : s[2 * i + 1] - 'a' + 10;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return n / 2;
}

int audit_check_checkpoint(const audit_signer *k, const char *alg, uint64_t seq, const char *hash, const char *sig)
{
	char msg[160];
	unsigned char want[64], got[64];
	size_t n = checkpoint_payload(seq, hash, msg, sizeof(msg)), gl = from_hex(sig, got, sizeof(got)), wl;
	EVP_MD_CTX *md;
	int ok;

	if (n == 0 || gl == 0 || strcmp(alg, audit_signer_alg(k)) != 0)
		return -1;
	if (k->kind == SIGNER_HMAC) {
		wl = sign_raw(k, msg, n, want);
		return wl == gl && CRYPTO_memcmp(want, got, wl) == 0 ? 0 : -1;
	}
	md = EVP_MD_CTX_new();
	ok = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
	     EVP_DigestVerify(md, got, gl, (const unsigned char *)msg, n) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

bool audit_signing_key_usable(const char *path, char *why, size_t whysz)
{
	audit_signer *k = audit_signer_load(path, true, why, whysz);

	if (k == NULL)
		return false;
	audit_signer_free(k);
	return true;
}
