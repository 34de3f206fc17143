/*
 * fuzz_audit.c - libFuzzer target for the audit log readers: `audit verify`
 * (with an HMAC key and an expected head), `audit show` and `audit report`
 * read files an attacker may have edited (that is what verify is for), so
 * they must report, never crash or loop.
 *
 * Input: byte 0 picks how show filters and prints (bit 0 --json, bit 1
 * --decision deny, bit 2 --actor, bit 3 --since/--until from the first
 * line's ts, bits 4-7 the width, and with bit 6 the other filters and
 * --wide) and the report's format (bits 0-1) and filters (bits 2-3); the
 * rest is the file, split at a 0xff byte into two files (a rotated set).
 * Each file goes to a memfd named by /proc/self/fd path. The first 80
 * bytes of the body are also tried as an --expect-head and a --since.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "audit/audit_report.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;
static audit_signer *hmac_key; /* checks the checkpoints of the input (all forged: fine) */

static int as_file(const uint8_t *p, size_t n, char *path, size_t pathsz);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t secret[] = "fuzz-checkpoint-secret-0123456789";
	char path[64], err[256];
	int fd;

	(void)argc;
	(void)argv;
	audit_verify_reread_tries = 0; /* no live writer here: do not wait for one */
	devnull = fopen("/dev/null", "w");
	fd = as_file(secret, sizeof(secret) - 1, path, sizeof(path));
	hmac_key = fd >= 0 ? audit_signer_load(path, false, err, sizeof(err)) : NULL;
	if (fd >= 0)
		close(fd);
	return devnull && hmac_key ? 0 : -1;
}

/* The body's first bytes as a NUL-terminated string (an --expect-head or --since to try). */
static void prefix_string(const uint8_t *body, size_t blen, char *out, size_t sz)
{
	size_t n = blen < sz - 1 ? blen : sz - 1;

	memcpy(out, body, n);
	out[n] = '\0';
}

/* verify with the key and, when the body starts like one, an expected head. */
static void fuzz_verify(const char *const *files, int nfiles, const uint8_t *body, size_t blen)
{
	audit_verify_opts o;
	audit_verify_result res;
	char head[96];
	int64_t us;

	memset(&o, 0, sizeof(o));
	o.key = hmac_key;
	prefix_string(body, blen, head, sizeof(head));
	o.has_head = audit_parse_head(head, &o.head_seq, o.head_hash) == 0;
	(void)audit_parse_when(head, &us);
	audit_verify_files_opts(files, (size_t)nfiles, &o, &res);
}

/* report over the same files, in the format and with the filters the mode byte picks. */
static void fuzz_report(const char *const *files, int nfiles, uint8_t mode)
{
	static const report_format fmts[] = {REPORT_TEXT, REPORT_JSON, REPORT_HTML, REPORT_HTML};
	report_filter rf;
	report_model m;

	memset(&rf, 0, sizeof(rf));
	memset(&m, 0, sizeof(m));
	rf.window = (mode & 4) ? "sec-42" : NULL;
	rf.target = (mode & 8) ? "prod" : NULL;
	m.files = files;
	m.n_files = (size_t)nfiles;
	m.filter = &rf;
	m.verified = audit_verify_files(files, (size_t)nfiles, &m.verify) == 0;
	if (report_gather(&m, devnull) == 0)
		report_render(&m, fmts[mode & 3], devnull);
	report_model_free(&m);
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
	fuzz_verify(files, nfiles, body, blen);
	fuzz_report(files, nfiles, mode);

	memset(&f, 0, sizeof(f));
	f.json = mode & 1;
	f.decision = (mode & 2) ? "deny" : NULL;
	f.actor = (mode & 4) ? "user:ada" : NULL;
	f.width = 60 + (mode >> 4) * 8;
	if (mode & 64) {
		f.wide = true;
		f.event = "statement";
		f.target = "prod";
		f.window = "sec-42";
		f.rule = "write-outside-window";
		f.has_session = true;
		f.session = 7;
	}
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
