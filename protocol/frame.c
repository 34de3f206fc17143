/* frame.c - message header checks and the generated message-name tables. */
#include "protocol/frame.h"
#include "protocol/msgtypes.h"

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

frame_status frame_peek(const uint8_t *hdr, size_t avail, uint32_t max_len, char *type, uint32_t *body_len)
{
	uint32_t len;

	if (avail < 5)
		return FRAME_NEED_MORE;
	len = be32(hdr + 1);
	/* The length counts itself, so anything below 4 cannot be a message. */
	if (len < 4 || len > max_len)
		return FRAME_MALFORMED;
	*type = (char)hdr[0];
	*body_len = len - 4;
	return FRAME_OK;
}

frame_status frame_peek_startup(const uint8_t *hdr, size_t avail, uint32_t *total_len)
{
	uint32_t len;

	if (avail < 4)
		return FRAME_NEED_MORE;
	len = be32(hdr);
	if (len < 8 || len > STARTUP_PACKET_MAX)
		return FRAME_MALFORMED;
	*total_len = len;
	return FRAME_OK;
}

#define DIR_F(x) x
#define DIR_B(x)
#define DIR_FB(x) x
#define FRONTEND_CASE(byte, dir, name) DIR_##dir(case byte : return #name;)
#define DIRB_F(x)
#define DIRB_B(x) x
#define DIRB_FB(x) x
#define BACKEND_CASE(byte, dir, name) DIRB_##dir(case byte : return #name;)

const char *frontend_message_name(char type)
{
	switch (type) {
		PGW_MESSAGE_TYPES(FRONTEND_CASE)
	}
	return "unknown";
}

const char *backend_message_name(char type)
{
	switch (type) {
		PGW_MESSAGE_TYPES(BACKEND_CASE)
	}
	return "unknown";
}
