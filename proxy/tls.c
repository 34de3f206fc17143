/* tls.c - client-facing OpenSSL context and the certificate's end-point hash. */
#include "proxy/tls.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <stdio.h>

/* RFC 5929 §4.1: hash with the certificate's signature digest; MD5 and SHA-1 become SHA-256. */
static int cert_end_point_hash(SSL_CTX *ctx, uint8_t *hash, unsigned *hash_len)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	const EVP_MD *md = NULL;
	int md_nid = NID_undef, pk_nid;

	if (!cert)
		return -1;
	if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid))
		return -1;
	if (md_nid == NID_md5 || md_nid == NID_sha1 || md_nid == NID_undef)
		md = EVP_sha256();
	else
		md = EVP_get_digestbynid(md_nid);
	if (!md)
		return -1;
	return X509_digest(cert, md, hash, hash_len) == 1 ? 0 : -1;
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, uint8_t *hash, unsigned *hash_len,
			    char *err, size_t errsz)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned long e;

	if (!ctx) {
		snprintf(err, errsz, "could not create TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* libevent's OpenSSL bufferevent may retry a write with a moved buffer. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		e = ERR_get_error();
		snprintf(err, errsz, "tls_cert_file \"%s\": %s", cert_file, ERR_reason_error_string(e));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 || !SSL_CTX_check_private_key(ctx)) {
		e = ERR_get_error();
		snprintf(err, errsz, "tls_key_file \"%s\": %s", key_file, ERR_reason_error_string(e));
		goto fail;
	}
	if (cert_end_point_hash(ctx, hash, hash_len) != 0) {
		snprintf(err, errsz, "tls_cert_file \"%s\": cannot hash certificate for channel binding", cert_file);
		goto fail;
	}
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}
