/*
 * audit_report.h - `pgwarden audit report`: what the log says about each
 * approved window (its approval, who wrote what, what was refused and why)
 * and, per actor, the same outside windows. The model is gathered from the
 * records by audit_report.c and rendered as text, JSON or HTML by
 * audit_report_out.c.
 */
#ifndef PGW_AUDIT_REPORT_H
#define PGW_AUDIT_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "audit/audit_int.h"

typedef enum {
	REPORT_TEXT, /* for a terminal or a ticket comment */
	REPORT_JSON, /* one JSON object, for tools */
	REPORT_HTML, /* one self-contained page: inline CSS, no scripts */
} report_format;

/* What the report is restricted to; has_* false / NULL means "any". */
typedef struct report_filter {
	bool has_since;     /* --since */
	int64_t since_us;   /* statements with ts >= since */
	bool has_until;     /* --until */
	int64_t until_us;   /* statements with ts < until */
	const char *window; /* --window: only this window's section (and no outside section) */
	const char *target; /* --target: only statements on, and windows for, this target */
} report_filter;

/* One line of "who wrote what": statements of one kind by one actor in one section. */
typedef struct report_count {
	char *section;       /* window name; NULL: outside windows */
	char *actor;         /* who */
	char *target;        /* where */
	char *kind;          /* the tag's command ("INSERT", "CREATE TABLE"), "error <SQLSTATE>" or "no result" */
	uint64_t statements; /* how many */
	uint64_t rows;       /* rows affected, summed from the tags that carry a count */
	bool has_rows;       /* some tag of this kind carried a row count */
} report_count;

/* One refused statement. */
typedef struct report_refusal {
	char *section; /* the window open for its target when it was refused; NULL: none */
	uint64_t seq;  /* its statement record */
	char *ts;      /* when */
	char *actor;   /* who */
	char *target;  /* where */
	char *rule;    /* rule id */
	char *reason;  /* the denial message (absent in logs older than this field: NULL) */
	char *sql;     /* what (NULL for fastpath) */
} report_refusal;

/* A window as the log knows it: its last recorded approval and when it was open. */
typedef struct report_window {
	char *name;            /* window name */
	json_t *approval;      /* its entry from the last start/reload record that listed it (owned) */
	uint64_t approval_seq; /* seq of that record */
	json_t *history;       /* every distinct approval in log order: [{"seq","ts","approval"}] (owned) */
	char **opened;         /* ts of each window_open */
	char **closed;         /* ts of the matching window_close, or NULL while still open */
	size_t n_open;         /* openings */
	bool is_open;          /* open at the point reading has reached */
} report_window;

/* A start or reload record: when the config changed, or a change was refused. */
typedef struct report_config {
	uint64_t seq; /* the record */
	char *ts;     /* when */
	char *event;  /* "start" or "reload" */
	int accepted; /* reload: 1 taken, 0 rejected; start: -1 */
	char *config; /* SHA-256 of the config file, NULL if absent */
	char *error;  /* a rejected reload's errors, else NULL */
} report_config;

/* Everything a report shows. */
typedef struct report_model {
	audit_verify_result verify;  /* the chain check over the same files */
	bool verified;               /* verify passed */
	bool key_given;              /* checkpoints were checked with a key */
	const char *const *files;    /* the files, in order (the caller's) */
	size_t n_files;              /* how many */
	const report_filter *filter; /* what to include (the caller's) */
	uint64_t records;            /* records read */
	char *first_ts;              /* ts of the first record read */
	char *last_ts;               /* ts of the last */
	report_window *windows;      /* every window the records mention, first seen first */
	size_t n_windows;            /* how many */
	report_count *counts;        /* who wrote what, first seen first */
	size_t n_counts;             /* how many */
	report_refusal *refusals;    /* refused statements, in log order */
	size_t n_refusals;           /* how many */
	report_config *configs;      /* start and reload records, in log order */
	size_t n_configs;            /* how many */
	uint64_t skipped_lines;      /* lines that were not audit records */
} report_model;

/* Read the files into 'm' (after verify has filled m->verify). 0 or -1 (printed to errout). */
int report_gather(report_model *m, FILE *errout);
void report_model_free(report_model *m);

/* Render the model. */
void report_render(const report_model *m, report_format fmt, FILE *out);

#endif
