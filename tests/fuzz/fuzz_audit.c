/*
 * fuzz_audit.c - libFuzzer target for the audit log readers: `audit verify`
 * and `audit show` read files an attacker may have edited (that is what
 * verify is for), so they must report, never crash or loop.
 *
 * Input: byte 0 picks how show filters and prints (bit 0 --json, bit 1
 * --decision deny, bit 2 --actor, bit 3 --since/--until from the first
 * line's ts); the rest is the file, split at a 0xff byte into two files
 * (a rotated set). Each file goes to a memfd named by /proc/self/fd path.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "audit/audit_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	audit_verify_reread_tries = 0; /* no live writer here: do not wait for one */
	devnull = fopen("/dev/null", "w");
	return devnull ? 0 : -1;
}

/* A memfd holding p[0..n); its /proc path in path. -1 on failure. */
static int as_file(const uint8_t *p, size_t n, char *path, size_t pathsz)
{
	int fd = memfd_create("audit", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (n > 0 && write(fd, p, n) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	snprintf(path, pathsz, "/proc/self/fd/%d", fd);
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char paths[2][64], since[40] = "";
	const char *files[2] = {paths[0], paths[1]};
	int fds[2] = {-1, -1}, nfiles;
	audit_verify_result res;
	audit_show_filter f;
	const uint8_t *body, *cut;
	size_t blen;
	uint8_t mode;

	if (size < 1)
		return 0;
	mode = data[0];
	body = data + 1;
	blen = size - 1;
	cut = memchr(body, 0xff, blen);
	if (cut) {
		fds[0] = as_file(body, (size_t)(cut - body), paths[0], sizeof(paths[0]));
		fds[1] = as_file(cut + 1, blen - (size_t)(cut - body) - 1, paths[1], sizeof(paths[1]));
		nfiles = 2;
	} else {
		fds[0] = as_file(body, blen, paths[0], sizeof(paths[0]));
		nfiles = 1;
	}
	if (fds[0] < 0 || (nfiles == 2 && fds[1] < 0))
		goto out;

	audit_verify_files(files, (size_t)nfiles, &res);

	memset(&f, 0, sizeof(f));
	f.json = mode & 1;
	f.decision = (mode & 2) ? "deny" : NULL;
	f.actor = (mode & 4) ? "user:ada" : NULL;
	f.width = 60 + (mode >> 4) * 8;
	if (mode & 8) {
		/* a ts-looking prefix of the body, if any, as both bounds */
		const uint8_t *ts = memmem(body, blen, "\"ts\":\"", 6);
		if (ts && (size_t)(body + blen - ts) > 6 + 30) {
			memcpy(since, ts + 6, 30);
			since[strcspn(since, "\"")] = '\0';
			f.has_since = audit_parse_rfc3339(since, &f.since_us) == 0;
			f.has_until = f.has_since;
			f.until_us = f.since_us + 1000000;
		}
	}
	audit_show_files(files, (size_t)nfiles, &f, devnull, devnull);
out:
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return 0;
}
