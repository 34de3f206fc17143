# audit/: the hash-chained JSON Lines audit log, its checkpoints, and the readers behind `pgwarden audit verify|show|report`.
AUDIT_SRCS := audit/audit_hash.c audit/audit_log.c audit/audit_verify.c \
	audit/audit_show.c audit/audit_sign.c audit/audit_report.c audit/audit_report_out.c audit/audit_results.c
AUDIT_TESTS := tests/unit/test_audit_log.c
# verify and show parse records with jansson (libjansson-dev); the writer does not use it.
LDLIBS += -ljansson
