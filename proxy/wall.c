/* wall.c - the HMAC-SHA256 signatures pgwarden pins for the database walls (deploy/walls.sql). */
#include "proxy/wall.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "conf/windows.h"

bool wall_required(const pgw_target *t)
{
	return t != NULL && t->walls == WALLS_REQUIRED;
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/*
 * HMAC-SHA256 of msg in hex. The message layout must match walls.sql's
 * pin_message() and write_granted() byte for byte: each field ends with a
 * newline, and no field pgwarden signs can hold one (token-file fields have
 * no white space), so distinct field lists never give the same message.
 */
static bool sign(const pgw_target *t, const char *msg, char out[WALL_SIG_HEX])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), t->wall_key, WALL_KEY_LEN, (const unsigned char *)msg, strlen(msg), mac, &len) == NULL ||
	    len != 32)
		return false;
	to_hex(mac, len, out);
	return true;
}

bool wall_sign_pin(const pgw_target *t, uint32_t backend_pid, const char *role, const char *actor, const char *tenant,
		   char out[WALL_SIG_HEX])
{
	char *msg;
	bool ok;

	if (asprintf(&msg, "pgwarden-pin-v1\n%u\n%s\n%s\n%s\n", backend_pid, role, actor, tenant ? tenant : "") < 0)
		return false;
	ok = sign(t, msg, out);
	free(msg);
	return ok;
}

bool wall_sign_write(const pgw_target *t, uint32_t backend_pid, const char *role, const char *actor, time_t from,
		     time_t until, char out[WALL_WRITE_MAX])
{
	char *msg, sig[WALL_SIG_HEX];
	bool ok;

	if (asprintf(&msg, "pgwarden-write-v2\n%u\n%s\n%s\n%lld\n%lld\n", backend_pid, role, actor, (long long)from,
		     (long long)until) < 0)
		return false;
	ok = sign(t, msg, sig);
	free(msg);
	if (ok)
		snprintf(out, WALL_WRITE_MAX, "%lld:%lld:%s", (long long)from, (long long)until, sig);
	return ok;
}

bool wall_write_window(const pgw_config *cfg, const pgw_target *t, const char *actor, time_t now, time_t *from,
		       time_t *until)
{
	const pgw_window *w = NULL;
	bool open = false;
	time_t next_open = 0, next_close = 0, at = now;

	*from = *until = 0;
	if (t == NULL || t->environment != ENV_PRODUCTION)
		return false;
	w = windows_open_now(cfg, t->name, actor, now);
	if (w == NULL) {
		at = windows_next_open(cfg, t->name, actor, now, &w);
		if (at == 0 || w == NULL || at - now > WALL_GRANT_AHEAD)
			return false;
	}
	window_state(w, at, &open, &next_open, &next_close);
	if (!open || next_close <= at)
		return false;
	*from = at;
	*until = next_close;
	return true;
}

void wall_key_id(const pgw_target *t, char out[9])
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];

	SHA256(t->wall_key, WALL_KEY_LEN, d);
	to_hex(d, sizeof(d), hex);
	memcpy(out, hex, 8);
	out[8] = '\0';
}
