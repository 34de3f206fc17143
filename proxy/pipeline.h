/*
 * pipeline.h - the server's timeline: everything pgwarden predicts of what
 * PostgreSQL will do with the messages already sent to it.
 *
 * One owner for each piece of that prediction:
 * - entries: one per message sent upstream that the server answers (the
 *   client's and pgwarden's own), oldest first, each with what to do with
 *   its replies (forward, swallow, or replace its error with a denial) and
 *   the audit refs its results belong to (PgBouncer's outstanding requests,
 *   libpq's PGcmdQueueEntry);
 * - names: what each prepared statement and portal name means, as the
 *   confirmed table (stmt_table) plus the pending changes of unanswered
 *   entries, replayed in order. Dropping a change the server refused or
 *   skipped therefore never resurrects a stale meaning: later changes to the
 *   same name still come after it;
 * - the predicted server mode (normal, skipping to Sync, COPY in, failed
 *   transaction), set in one place (tl_set_mode), and the count of
 *   CopyDone/CopyFail sent before their CopyInResponse arrived;
 * - the re-pin flag: pgwarden must re-apply the pinned identity before the
 *   client's next request (consumed in one place, relay_repin()).
 */
#ifndef PGW_PIPELINE_H
#define PGW_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "proxy/stmt_table.h"

/* What a message sent upstream makes the server answer. */
typedef enum {
	TL_QUERY,    /* simple Query: any results, then ReadyForQuery */
	TL_PARSE,    /* ParseComplete */
	TL_BIND,     /* BindComplete */
	TL_DESCRIBE, /* [ParameterDescription] then RowDescription or NoData */
	TL_EXECUTE,  /* DataRow* then CommandComplete, EmptyQueryResponse or PortalSuspended (or COPY) */
	TL_CLOSE,    /* CloseComplete */
	TL_SYNC,     /* ReadyForQuery */
} tl_kind;

/* What to do with an entry's replies. */
typedef enum {
	TL_FORWARD, /* the client's own request: replies go to the client */
	TL_SWALLOW, /* pgwarden's own request (re-pin): every reply is swallowed */
	TL_DENY,    /* a poison stands in for a denied request: its error becomes deny_msg */
} tl_action;

/* What the server does with the next message pgwarden sends. */
typedef enum {
	TL_MODE_NORMAL,  /* executes it */
	TL_MODE_SKIP,    /* an extended-protocol error: ignores everything but Sync */
	TL_MODE_COPY_IN, /* COPY FROM STDIN: reads CopyData until CopyDone or CopyFail; ignores Sync and Flush */
	TL_MODE_FAILED,  /* a failed transaction block: refuses everything but ROLLBACK/COMMIT */
} tl_mode;

/* Marks, in an entry's refs, a result of pgwarden's own spliced statement (swallowed). */
#define TL_REF_INTERNAL UINT64_MAX
/* Refs kept inside the entry (no allocation) when this few. */
#define TL_INLINE_REFS 2
/* deny_at of an entry with no denial inside. */
#define TL_NO_DENIAL UINT32_MAX

/* One message sent upstream that the server will answer. */
typedef struct tl_entry {
	tl_kind kind;                         /* which answer completes it */
	tl_action action;                     /* what to do with its replies */
	uint64_t seq;                         /* 1, 2, 3... per session: ties name changes to their entry */
	uint8_t *deny_msg;                    /* TL_DENY: the whole ErrorResponse to send instead (malloc'd) */
	size_t deny_len;                      /* its length */
	uint32_t deny_at;                     /* TL_DENY Query: the result index whose error is the poison's */
	uint64_t *refs;                       /* audit seqs of the statement records its results map to */
	uint64_t inline_refs[TL_INLINE_REFS]; /* storage for refs when few */
	uint32_t n_refs;                      /* how many refs */
	uint32_t next_ref;                    /* index of the result that comes next */
	bool failed;                          /* an ErrorResponse arrived for it */
	char sqlstate[6];                     /* failed: the error's SQLSTATE ("" if none), which says what a failed
	                                         Bind left behind (pipeline.c, refuse_bind) */
	bool quiet;            /* TL_SWALLOW: its ParameterStatus too (a borrow's pin: login told the client already) */
	struct timespec start; /* when sent, for duration_us */
} tl_entry;

/* Which name table a change is about. */
typedef enum {
	TL_NS_STMT,   /* prepared statements: Parse, SQL PREPARE / DEALLOCATE, Close 'S' */
	TL_NS_PORTAL, /* portals: Bind, SQL DECLARE / CLOSE, Close 'P' (one namespace upstream) */
} tl_ns;

/* What a change does to its name. */
typedef enum {
	TL_PUT,   /* the name now means si (replacing any old meaning) */
	TL_DEL,   /* the name is gone */
	TL_CLEAR, /* every name of the namespace is gone (DEALLOCATE ALL, CLOSE ALL) */
} tl_op;

/* One pending change to the names, made by an entry the server has not answered yet. */
typedef struct tl_change {
	TAILQ_ENTRY(tl_change) link; /* oldest first */
	uint64_t entry;              /* seq of the entry that makes it (0 while still the gate's) */
	uint32_t index;              /* in a Query: the result index that confirms it; else 0 */
	tl_ns ns;                    /* statement or portal */
	tl_op op;                    /* put, delete, clear */
	bool doubtful; /* a PUT on a name in use (refused unless the name is gone by then), or any change in a failed transaction */
	bool holdable;        /* portal: a WITH HOLD cursor (survives the transaction) */
	bool stands_on_error; /* made even when its request fails (a Query's replacing the unnamed portal) */
	char *name;           /* the name (NULL for TL_CLEAR) */
	stmt_info *si;        /* TL_PUT: its meaning (one reference) */
	uint8_t *params;      /* TL_PUT portal: the Bind's parameter section for the audit, or NULL */
	size_t params_len;    /* its length */
} tl_change;

TAILQ_HEAD(tl_changes, tl_change);

/* A name's meaning as predicted now. */
typedef enum {
	TL_NAME_NONE,     /* no such name */
	TL_NAME_KNOWN,    /* it means *si */
	TL_NAME_DOUBTFUL, /* depends on whether an earlier request succeeds: judged unknown */
} tl_name_state;

/* The timeline of one session. */
typedef struct timeline {
	tl_entry *v;               /* ring storage of entries */
	uint32_t cap;              /* slots (power of two) */
	uint32_t head;             /* index of the oldest entry */
	uint32_t count;            /* entries in use */
	uint64_t next_seq;         /* seq of the next entry pushed */
	uint64_t last_sync_seq;    /* seq of the newest Sync pushed (0: none): older entries are earlier batches */
	struct tl_changes changes; /* pending name changes, oldest first */
	stmt_table confirmed;      /* names as the server has confirmed them */
	tl_mode mode;              /* see tl_mode; written by tl_set_mode only */
	bool batch_open;           /* extended-protocol messages sent since the last Sync */
	uint32_t early_copy_ends;  /* CopyDone/CopyFail sent while no COPY had started (its CopyInResponse to come) */
	bool repin;                /* identity must be re-applied before the client's next request */
	bool awaiting; /* the client's next message names a doubtful name: read it again after the next answer */
	uint64_t
		flushed_seq; /* next_seq when pgwarden last sent its own Flush: every entry before it will be answered */
} timeline;

void tl_init(timeline *t);
void tl_free(timeline *t);

/* The only writer of t->mode. */
void tl_set_mode(timeline *t, tl_mode mode);

/* ---- entries ---- */

/* Append an entry (zeroed but for kind, action, seq and start); NULL on out of memory. */
tl_entry *tl_push(timeline *t, tl_kind kind, tl_action action);
/* The oldest entry, or NULL. */
tl_entry *tl_head(timeline *t);
/* The i-th oldest entry (0 = head), or NULL. */
tl_entry *tl_at(timeline *t, uint32_t i);
/* The head was answered in full: its remaining name changes stand; remove it. */
void tl_complete_head(timeline *t);
/* Attach audit refs to an entry (copied). false on out of memory. */
bool tl_set_refs(tl_entry *e, const uint64_t *refs, uint32_t n);
/* The ref the next result of e maps to (0 if none), without advancing / advancing. */
uint64_t tl_peek_ref(const tl_entry *e);
uint64_t tl_take_ref(tl_entry *e);

/*
 * An ErrorResponse for the head entry, sent in the extended protocol: the
 * server skips to Sync. The head's name changes and those of every entry
 * up to the next Sync do not stand; those entries owe nothing more and are
 * removed (the head too). Without a Sync queued the mode becomes SKIP.
 * Returns how many of pgwarden's own (swallowed) entries were dropped.
 */
unsigned tl_error_skip(timeline *t);
/* How many entries come before the first TL_SYNC (all of them if none). */
uint32_t tl_until_sync(const timeline *t);
/* Remove the i-th oldest entry (i > 0): the server will not answer it. */
void tl_remove_at(timeline *t, uint32_t i);

/* ---- names ---- */

/* What a name means now: the confirmed table, then the pending changes in order. */
tl_name_state tl_lookup(timeline *t, tl_ns ns, const char *name, stmt_info **si);
/* The same, looking first at changes not yet handed over (a Query's earlier statements). */
tl_name_state tl_lookup_with(timeline *t, const struct tl_changes *local, tl_ns ns, const char *name, stmt_info **si);
/*
 * A doubtful or deleted name (a doubtful change, or a Close/CLOSE/DEALLOCATE
 * the server skips after an earlier error in its batch) that an entry already sent decides:
 * the server's answer to it settles the name, so the message that names it
 * can wait for that answer and be judged again. false when the doubt comes
 * from 'local' (an earlier statement of the same Query): nothing to wait for.
 */
bool tl_doubt_awaits_server(timeline *t, const struct tl_changes *local, tl_ns ns, const char *name);
/* The Bind parameters a portal's current meaning was bound with (NULL if none). */
const uint8_t *tl_portal_params(timeline *t, const char *name, size_t *len);

/*
 * A new change (not yet owned by an entry) appended to 'list'. si is
 * referenced; params copied. 'doubtful' when the name is already in use.
 * false on out of memory.
 */
bool tl_change_add(struct tl_changes *list, tl_ns ns, tl_op op, const char *name, stmt_info *si, const uint8_t *params,
		   size_t params_len, uint32_t index, bool doubtful, bool holdable);
/* Move every change of 'list' to the timeline, owned by entry e (in order). */
void tl_adopt(timeline *t, const tl_entry *e, struct tl_changes *list);
/* Move the changes of 'list' with index < limit to the timeline, and free the rest. */
void tl_adopt_before(timeline *t, const tl_entry *e, struct tl_changes *list, uint32_t limit);
/* Free every change of a list. */
void tl_changes_free(struct tl_changes *list);

/* The head (a Query) produced result 'index' without error: its changes with that index stand. */
void tl_confirm_index(timeline *t, const tl_entry *head, uint32_t index);
/* The head failed at result 'index': its changes from that index on do not stand. */
void tl_refuse_from(timeline *t, const tl_entry *head, uint32_t index);

/* ReadyForQuery 'I' arrived: the transaction ended, and with it every portal but held cursors. */
void tl_transaction_ended(timeline *t);

#endif
