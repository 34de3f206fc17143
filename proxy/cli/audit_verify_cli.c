/* audit_verify_cli.c - `pgwarden audit verify [--key FILE] [--expect-head SEQ:HASH] FILE...`: options and output. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "audit/audit_int.h"
#include "proxy/cli/audit_cli.h"

#define VERIFY_USAGE "usage: pgwarden audit verify [--key FILE] [--expect-head SEQ:HASH] FILE...\n"

/* Parse verify's options; returns the index of the first file, or -1 (usage error, printed). */
static int verify_args(int argc, char **argv, audit_verify_opts *o, const char **key_path)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0)
			return i + 1;
		if (a[0] != '-' || a[1] == '\0')
			return i;
		if ((strcmp(a, "--key") == 0 || strcmp(a, "--expect-head") == 0) && i + 1 >= argc) {
			fprintf(stderr, "pgwarden audit verify: %s needs a value\n" VERIFY_USAGE, a);
			return -1;
		}
		if (strcmp(a, "--key") == 0)
			*key_path = argv[++i];
		else if (strcmp(a, "--expect-head") == 0) {
			if (audit_parse_head(argv[++i], &o->head_seq, o->head_hash) != 0) {
				fprintf(stderr,
					"pgwarden audit verify: --expect-head: \"%s\" is not SEQ:HASH (a seq "
					"and 64 hex digits, as verify prints after \"head:\")\n",
					argv[i]);
				return -1;
			}
			o->has_head = true;
		} else {
			fprintf(stderr, "pgwarden audit verify: unknown option %s\n" VERIFY_USAGE, a);
			return -1;
		}
	}
	return i;
}

/* What verify says beyond ok/broken: the head, checkpoints, how the set starts. */
static void print_anchors(const audit_verify_result *res, const audit_verify_opts *o, const char *first_file)
{
	if (res->head[0])
		printf("head: %llu:%s\n", (unsigned long long)res->last_seq, res->head);
	if (res->checkpoints > 0)
		printf("checkpoints: %llu %s, the last at seq %llu\n", (unsigned long long)res->checkpoints,
		       o->key ? "verified" : "not verified (no --key)", (unsigned long long)res->last_checkpoint);
	else if (o->key && res->records > 0)
		fprintf(stderr, "warning: no checkpoint records: the key checked nothing\n");
	if (res->start == VERIFY_START_ELSEWHERE)
		fprintf(stderr,
			"warning: %s: the set begins at seq %llu, neither seq 1 nor a checkpoint: records "
			"before it are not checked (was the first file dropped?)\n",
			first_file, (unsigned long long)res->first_seq);
}

int audit_verify_main(int argc, char **argv)
{
	audit_verify_opts o;
	audit_verify_result res;
	const char *key_path = NULL;
	audit_signer *key = NULL;
	char err[512];
	int first, rc;

	memset(&o, 0, sizeof(o));
	if ((first = verify_args(argc, argv, &o, &key_path)) < 0)
		return 2;
	if (argc <= first) {
		fprintf(stderr, VERIFY_USAGE);
		return 2;
	}
	if (key_path && (key = audit_signer_load(key_path, false, err, sizeof(err))) == NULL) {
		fprintf(stderr, "pgwarden audit verify: --key %s\n", err);
		return 2;
	}
	o.key = key;
	rc = audit_verify_files_opts((const char *const *)argv + first, (size_t)(argc - first), &o, &res);
	if (rc == 0) {
		if (res.records == 0)
			printf("ok: 0 records\n");
		else
			printf("ok: %llu records, seq %llu..%llu\n", (unsigned long long)res.records,
			       (unsigned long long)res.first_seq, (unsigned long long)res.last_seq);
	} else if (res.bad_file != NULL && res.bad_line > 0)
		printf("%s:%llu: %s\n", res.bad_file, (unsigned long long)res.bad_line, res.why);
	else if (res.bad_file != NULL)
		printf("%s: %s\n", res.bad_file, res.why);
	else
		printf("%s\n", res.why);
	print_anchors(&res, &o, argv[first]);
	audit_signer_free(key);
	return rc == 0 ? 0 : 1;
}
