/*
 * audit.h - the append-only, hash-chained JSON Lines audit log (CONTRACT §5).
 *
 * Records are appended to an in-memory batch (audit_append) and written to
 * the OS by audit_flush(), which the proxy calls once per event-loop
 * iteration, before any statement recorded in the batch is sent upstream.
 * A failed flush rolls the chain back to the last line really written, so
 * the file on disk always verifies; the caller must then deny whatever the
 * lost records covered.
 *
 * Lines: {"ts":..,"seq":..,"event":.., then the other fields of CONTRACT §5 in
 * its table order, absent ones omitted, and "prev" last}. ts is RFC 3339 UTC
 * with microseconds. Strings are escaped by audit/json_writer.h: any bytes give
 * valid JSON; bytes that are not well-formed UTF-8 are written as \u00XX.
 *
 * Chain: prev = lowercase hex SHA-256 of the previous line without its '\n';
 * 64 zeros on the first record of a new, empty file at audit_open. seq and prev
 * continue across restarts (audit_open reads the file's last line, seeking
 * from the end) and across audit_reopen (kept in memory, so a rotated set
 * verifies in order: `pgwarden audit verify audit.jsonl.1 audit.jsonl`). A
 * rotation while pgwarden is stopped starts a new chain at seq 1.
 * A last line without its newline (a crash mid-write) is cut off at open,
 * with a warning; the chain continues from the last complete line.
 *
 * Not thread-safe: one audit_log is used by one thread (the event loop).
 */
#ifndef PGW_AUDIT_H
#define PGW_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "protocol/bind.h"

/*
 * Parameter values longer than this many bytes are written as
 * {"truncated":true,"len":<full length>,"prefix":<first AUDIT_PARAM_MAX bytes>}
 * (text cut back to a UTF-8 character boundary), so a record is never dropped.
 */
#define AUDIT_PARAM_MAX 4096

/* One bound parameter of an extended-protocol Execute, as the protocol layer reads it from a Bind. */
typedef bind_param audit_param;

/* The fields of one record; NULL / negative means "absent". */
typedef struct audit_record {
	const char *event; /* start stop reload connect auth_ok auth_fail statement result disconnect
				    window_open window_close checkpoint */
	uint64_t session;  /* 0: absent */
	const char *actor;
	const char *role;
	const char *tenant;
	const char *client; /* "ip:port" or "unix" */
	const char *target;
	const char *environment;
	/* session..environment pre-rendered by audit_render_ident (a session's records repeat them);
	   when set, it is written instead of those six fields */
	const char *ident;
	size_t ident_len;     /* bytes of ident */
	const char *protocol; /* simple extended copy fastpath */
	const char *sql;      /* statement text, not NUL-terminated */
	size_t sql_len;
	const audit_param *params; /* only when audit_params = yes; NULL: absent, else a JSON array */
	size_t n_params;
	const char *decision; /* allow deny */
	const char *rule;
	const char *window;
	uint32_t backend_pid;         /* statement: the upstream backend that runs it (CONTRACT §5, §7); 0 absent */
	uint64_t ref;                 /* result: seq of its statement record; 0 absent */
	const char *tag;              /* result: CommandComplete tag */
	const char *sqlstate;         /* result: error SQLSTATE */
	int64_t duration_us;          /* result: -1 absent */
	const char *reason;           /* auth_fail: why; denied statement: the denial message */
	const char *config;           /* start, reload: lowercase hex SHA-256 of the config file's bytes */
	const char *windows;          /* start, reload: a JSON array, written as is (the caller's well-formed JSON) */
	int accepted;                 /* reload: 1 accepted, 0 rejected, -1 absent */
	const char *error;            /* reload: why it was rejected */
	const char *application_name; /* connect: the client's startup application_name */
	const char *alg;              /* checkpoint: "hmac-sha256" or "ed25519" */
	const char *sig;              /* checkpoint: lowercase hex signature (see audit_sign.c) */
} audit_record;

/* Initialise a record with every field absent. */
void audit_record_init(audit_record *r);

/*
 * The fields session, actor, role, tenant, client, target and environment of
 * 'r' as they appear in a line (",\"session\":17,\"actor\":...", each absent
 * one left out), for audit_record.ident: a session renders them once instead of
 * escaping them again in every record. malloc'd; NULL on out of memory.
 */
char *audit_render_ident(const audit_record *r, size_t *len);

typedef struct audit_log audit_log;

/*
 * Open (create) the log for appending. Reads the last line of an existing
 * file to continue seq and the chain. On error returns NULL and *err
 * (malloc'd) says why, naming the file.
 */
audit_log *audit_open(const char *path, pgw_audit_fsync mode, char **err);

/* SIGHUP: close and reopen the path (after logrotate moved the file); the chain continues. */
int audit_reopen(audit_log *log, char **err);

void audit_close(audit_log *log);

/*
 * Append a record to the batch, computing its place in the chain now; returns
 * its seq. ts is taken now. Returns 0 if it could not be formatted (out of
 * memory): the whole batch is then lost and the next audit_flush returns -1.
 * Seqs of a batch whose flush fails are given out again to later records.
 */
uint64_t audit_append(audit_log *log, const audit_record *r);

/* Records waiting in the batch. */
bool audit_pending(const audit_log *log);

/*
 * Write the batch to the OS (and fsync per mode). 0 on success. On failure
 * returns -1, rolls the chain back, counts an error and logs why; the
 * batch is dropped and the caller denies the statements it covered.
 */
int audit_flush(audit_log *log);

/*
 * For audit_fsync = batch: fsync now if anything was written since the last
 * one. Not needed for the 100 ms promise: a background thread started by
 * audit_open does that, so the event loop never waits on the disk.
 */
void audit_sync_tick(audit_log *log);

/*
 * Whether the last flush (and, for batch, fsync) succeeded; for /healthz.
 * Keep appending and flushing while false: audit_flush's result is what
 * decides a statement, and the next flush that succeeds makes this true.
 */
bool audit_healthy(const audit_log *log);

/* Write errors since start (for /metrics). */
uint64_t audit_write_errors(const audit_log *log);

/* seq of the last record really written (0: none yet). */
uint64_t audit_last_seq(const audit_log *log);

/* seq of the last record appended (written or still in the batch). */
uint64_t audit_appended_seq(const audit_log *log);

/*
 * Checkpoint keys (audit_checkpoint_key). The file is either a PEM Ed25519
 * key (private to sign; public or private to verify) or, for anything else,
 * an HMAC-SHA256 secret: the file's bytes without trailing whitespace, at
 * least AUDIT_HMAC_KEY_MIN bytes.
 */
#define AUDIT_HMAC_KEY_MIN 16
typedef struct audit_signer audit_signer;

/*
 * Load a key file. for_signing: an Ed25519 key must be the private key.
 * NULL on failure with 'err' naming the file and the problem.
 */
audit_signer *audit_signer_load(const char *path, bool for_signing, char *err, size_t errsz);
void audit_signer_free(audit_signer *k);
/* Whether 'path' loads as a signing key (a config_file_check for audit_checkpoint_key); false with the reason. */
bool audit_signing_key_usable(const char *path, char *why, size_t whysz);
/* "hmac-sha256" or "ed25519". */
const char *audit_signer_alg(const audit_signer *k);

/*
 * Use 'k' (owned by the log from now on; NULL: none) for checkpoint records.
 * The previous signer, if any, is freed.
 */
void audit_set_signer(audit_log *log, audit_signer *k);

/*
 * Append a `checkpoint` record signed over the seq and hash of the record
 * before it (see audit_sign.c for the exact bytes). Returns its seq, or 0
 * when there is no signer or it could not be formed.
 */
uint64_t audit_append_checkpoint(audit_log *log);

#endif
