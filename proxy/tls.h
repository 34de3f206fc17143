/* tls.h - client-facing TLS: the server context and the channel-binding hash. */
#ifndef PGW_TLS_H
#define PGW_TLS_H

#include <openssl/ssl.h>
#include <stdint.h>

/*
 * Build a server SSL_CTX from PEM cert and key files (TLS 1.2+). Also
 * computes the tls-server-end-point hash of the certificate into hash (64
 * bytes of room) and hash_len (0 when the certificate has none, e.g. Ed25519).
 * On failure returns NULL and writes a message naming the file into err.
 */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, uint8_t *hash, unsigned *hash_len, char *err,
			    size_t errsz);

#endif
