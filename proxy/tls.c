/* tls.c - client-facing OpenSSL context and the certificate's end-point hash. */
#include "proxy/tls.h"

#include <openssl/err.h>
#include <stdio.h>

#include "protocol/scram.h"

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, uint8_t *hash, unsigned *hash_len, char *err,
			    size_t errsz)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned long e;
	size_t hl;

	if (!ctx) {
		snprintf(err, errsz, "could not create TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	/* SSL modes are set per connection by io_start_tls_accept (IO_TLS_MODES). */
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
	/* No end-point hash (e.g. Ed25519): SCRAM-SHA-256-PLUS is simply not offered. */
	hl = 64;
	*hash_len = scram_cert_end_point_hash(SSL_CTX_get0_certificate(ctx), hash, &hl) ? (unsigned)hl : 0;
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}
