/*
 * fuzz_auth.c - libFuzzer target for the authentication exchange:
 * auth_begin() and auth_on_message() over a real token table (tokens_load on
 * a temp file), fed arbitrary client 'p' message bodies.
 *
 * Input: byte 0 picks the actor and the connection (bits 0-1 actor: SCRAM,
 * sha256, expired SCRAM, unknown; bit 2 TLS; bit 3 plaintext_auth; bit 4 a
 * certificate hash). Then messages, each a big-endian u16 length and the body.
 * So that the fuzzer can get past the random server nonce and the proof, a
 * body's "@N" is replaced by the combined nonce of the last server-first
 * message, "@P" by the correct proof for the SCRAM actor's token, and "@C" by
 * the channel-binding attribute value matching the client-first gs2 header.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "conf/config.h"
#include "conf/tokens.h"
#include "protocol/auth.h"
#include "protocol/pktbuf.h"
#include "protocol/scram.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SCRAM_TOKEN "pencil"
#define ITERATIONS 16 /* low on purpose: the fuzzer computes proofs */

static pgw_token_table *tokens;
static bool verbose; /* PGW_FUZZ_VERBOSE=1: print each step, to check seeds reach where they should */
static const char *const actors[] = {"agent:scram", "user:sha", "agent:old", "user:nobody"};
static const uint8_t cert_hash[32] = {1, 2, 3, 4};

/* One exchange's memory, for the @N / @P substitutions. */
typedef struct exchange {
	char gs2_header[1024];        /* from the SASLInitialResponse, up to the second comma */
	char client_first_bare[1024]; /* from the SASLInitialResponse */
	char server_first[1024];      /* from the last AuthenticationSASLContinue */
} exchange;

static void add_line(char *file, size_t sz, const char *secret, const char *rest)
{
	size_t n = strlen(file);

	snprintf(file + n, sz - n, "%s %s\n", secret, rest);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t salt[16] = "fuzzsaltfuzzsalt";
	char path[] = "/tmp/pgw_fuzz_tokens_XXXXXX", file[2048] = "", sha[80] = "sha256:";
	uint8_t h[32];
	char *v;
	pgw_errors e = {0};
	int fd, i;

	(void)argc;
	(void)argv;
	verbose = getenv("PGW_FUZZ_VERBOSE") != NULL;
	v = scram_build_secret(SCRAM_TOKEN, salt, sizeof(salt), ITERATIONS);
	if (!v)
		abort();
	add_line(file, sizeof(file), v, "agent:scram agent_rw acme");
	add_line(file, sizeof(file), v, "agent:old agent_rw - expires=2000-01-01T00:00:00Z");
	free(v);
	SHA256((const unsigned char *)"sha-token", 9, h);
	for (i = 0; i < 32; i++)
		snprintf(sha + 7 + 2 * i, 3, "%02x", h[i]);
	add_line(file, sizeof(file), sha, "user:sha clerk - targets=prod");
	add_line(file, sizeof(file), sha, "user:sha2 clerk -");
	fd = mkstemp(path);
	if (fd < 0 || write(fd, file, strlen(file)) != (ssize_t)strlen(file))
		abort();
	close(fd);
	tokens = tokens_load(path, NULL, 0, &e);
	unlink(path);
	if (!tokens) {
		fprintf(stderr, "fuzz_auth: tokens_load: %s\n", e.n ? e.msgs[0] : "?");
		abort();
	}
	errors_free(&e);
	return 0;
}

/* Value of attribute 'a' ("r=", "s=", "i=") in a SCRAM message, copied to out. */
static bool scram_attr(const char *msg, char a, char *out, size_t outsz)
{
	const char *p = msg;

	while (p && *p) {
		if (p[0] == a && p[1] == '=') {
			size_t n = strcspn(p + 2, ",");
			if (n >= outsz)
				return false;
			memcpy(out, p + 2, n);
			out[n] = '\0';
			return true;
		}
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return false;
}

/* ClientProof for 'final_wo_proof' with the SCRAM actor's token, base64 into out. */
static bool client_proof(const exchange *x, const char *final_wo_proof, size_t wo_len, char *out,
			 size_t outsz)
{
	char salt64[256], iter[16], am[4096];
	uint8_t *salt = NULL, salted[32], client_key[32], stored[32], sig[32], proof[32];
	size_t salt_len;
	unsigned int len;
	char *b64;
	int n, i;

	if (!scram_attr(x->server_first, 's', salt64, sizeof(salt64)) ||
	    !scram_attr(x->server_first, 'i', iter, sizeof(iter)) || atoi(iter) < 1 || atoi(iter) > 10000 ||
	    !pgw_b64_decode(salt64, strlen(salt64), &salt, &salt_len))
		return false;
	if (!scram_salted_password(SCRAM_TOKEN, salt, salt_len, atoi(iter), salted)) {
		free(salt);
		return false;
	}
	free(salt);
	n = snprintf(am, sizeof(am), "%s,%s,%.*s", x->client_first_bare, x->server_first, (int)wo_len,
		     final_wo_proof);
	if (n < 0 || (size_t)n >= sizeof(am))
		return false;
	HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, client_key, &len);
	SHA256(client_key, 32, stored);
	HMAC(EVP_sha256(), stored, 32, (const unsigned char *)am, (size_t)n, sig, &len);
	for (i = 0; i < 32; i++)
		proof[i] = client_key[i] ^ sig[i];
	b64 = pgw_b64_encode(proof, 32);
	if (!b64 || strlen(b64) >= outsz) {
		free(b64);
		return false;
	}
	strcpy(out, b64);
	free(b64);
	return true;
}

/* base64(gs2 header [+ our certificate hash when the client asked for binding]). */
static char *cbind_attr(const exchange *x)
{
	uint8_t buf[1024 + sizeof(cert_hash)];
	size_t n = strlen(x->gs2_header);

	memcpy(buf, x->gs2_header, n);
	if (x->gs2_header[0] == 'p') {
		memcpy(buf + n, cert_hash, sizeof(cert_hash));
		n += sizeof(cert_hash);
	}
	return pgw_b64_encode(buf, n);
}

/* Copy 'in' to 'out' replacing "@N" by the combined nonce, "@P" by the proof and "@C" by the binding. */
static size_t substitute(const exchange *x, const uint8_t *in, size_t len, uint8_t *out, size_t outsz)
{
	char nonce[512] = "", proof[128], cbind[2048] = "";
	char *c = cbind_attr(x);
	size_t i, o = 0;

	if (c && strlen(c) < sizeof(cbind))
		strcpy(cbind, c);
	free(c);
	scram_attr(x->server_first, 'r', nonce, sizeof(nonce));
	for (i = 0; i < len && o < outsz; i++) {
		const char *rep = NULL;

		if (in[i] == '@' && i + 1 < len && in[i + 1] == 'N')
			rep = nonce;
		else if (in[i] == '@' && i + 1 < len && in[i + 1] == 'C')
			rep = cbind;
		else if (in[i] == '@' && i + 1 < len && in[i + 1] == 'P' &&
			 client_proof(x, (const char *)out, o >= 3 ? o - 3 : 0, proof, sizeof(proof)))
			rep = proof; /* out ends with ",p=": the proof covers what precedes it */
		if (rep) {
			size_t n = strlen(rep);
			if (o + n > outsz)
				break;
			memcpy(out + o, rep, n);
			o += n;
			i++;
		} else
			out[o++] = in[i];
	}
	return o;
}

/* Split a client-first-message into gs2 header and client-first-bare. */
static void keep_client_first(exchange *x, const char *data, size_t dlen)
{
	char cf[1024];
	const char *p;

	if (dlen >= sizeof(cf))
		return;
	memcpy(cf, data, dlen);
	cf[dlen] = '\0';
	p = strchr(cf, ',');
	p = p ? strchr(p + 1, ',') : NULL;
	if (p) {
		snprintf(x->client_first_bare, sizeof(x->client_first_bare), "%s", p + 1);
		snprintf(x->gs2_header, sizeof(x->gs2_header), "%.*s", (int)(p + 1 - cf), cf);
	}
}

/*
 * Remember client-first (from the SASLInitialResponse, or the next message
 * when that had none) and server-first (from AuthenticationSASLContinue).
 */
static void remember(exchange *x, int msg, const uint8_t *body, size_t len, const pktbuf *out)
{
	const uint8_t *nul = memchr(body, 0, len);

	if (msg == 1 && nul && (size_t)(nul - body) + 5 <= len)
		keep_client_first(x, (const char *)nul + 5, len - (size_t)(nul - body) - 5);
	else if (msg == 2 && x->server_first[0] == '\0')
		keep_client_first(x, (const char *)body, len); /* client-first in a SASLResponse */
	if (out->len > 9 && out->data[0] == 'R' && out->data[8] == 11 &&
	    out->len - 9 < sizeof(x->server_first)) {
		memcpy(x->server_first, out->data + 9, out->len - 9);
		x->server_first[out->len - 9] = '\0';
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t body[70000];
	exchange x;
	auth_params p;
	pgw_auth *a;
	pktbuf out;
	size_t off = 1;
	auth_status st = AUTH_CONTINUE;
	int msgs = 0;

	if (size < 1)
		return 0;
	memset(&x, 0, sizeof(x));
	memset(&p, 0, sizeof(p));
	p.tokens = tokens;
	p.actor = actors[data[0] & 3];
	p.target = "prod";
	p.tls = data[0] & 4;
	p.plaintext_auth = data[0] & 8;
	p.tls_cert_hash = (data[0] & 16) ? cert_hash : NULL;
	p.tls_cert_hash_len = (data[0] & 16) ? sizeof(cert_hash) : 0;
	p.now = 1700000000;
	pktbuf_init(&out);
	a = auth_begin(&p, &out);
	if (!a)
		abort();
	if (out.failed || out.len < 9 || out.data[0] != 'R')
		abort();
	while (off + 2 <= size && msgs++ < 8) {
		size_t len = ((size_t)data[off] << 8) | data[off + 1], blen;
		const pgw_token *who = (const pgw_token *)1;

		off += 2;
		if (len > size - off)
			len = size - off;
		blen = substitute(&x, data + off, len, body, sizeof(body));
		pktbuf_reset(&out);
		st = auth_on_message(a, body, blen, &out, &who);
		remember(&x, msgs, body, blen, &out);
		if (verbose)
			fprintf(stderr, "fuzz_auth: %s message %d (%zu bytes): status %d (%s)\n", p.actor,
				msgs, blen, st, auth_fail_reason(a));
		off += len;
		if (out.failed)
			abort();
		if (st == AUTH_OK && (who == NULL || strcmp(who->actor, p.actor) != 0))
			abort(); /* authenticated as someone else */
		if (st != AUTH_OK && who != NULL)
			abort();
		if (st == AUTH_OK && (data[0] & 3) != 0 && (data[0] & 3) != 1)
			abort(); /* only the SCRAM actor and the sha256 actor can ever succeed */
		(void)auth_fail_reason(a);
	}
	auth_free(a);
	pktbuf_free(&out);
	return 0;
}
