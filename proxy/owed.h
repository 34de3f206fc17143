/*
 * owed.h - the FIFO of responses the upstream still owes the client.
 *
 * Every client message that makes the server answer pushes an entry; every
 * server message is matched against the oldest entry (PgBouncer's
 * outstanding_requests). This is what makes pipelining, audit result
 * records and denial inside a pipeline exact.
 */
#ifndef PGW_OWED_H
#define PGW_OWED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum {
	OWED_QUERY,    /* simple Query: any results, then ReadyForQuery */
	OWED_PARSE,    /* ParseComplete */
	OWED_BIND,     /* BindComplete */
	OWED_DESCRIBE, /* [ParameterDescription] then RowDescription or NoData */
	OWED_EXECUTE,  /* DataRow* then CommandComplete, EmptyQueryResponse or PortalSuspended (or COPY) */
	OWED_CLOSE,    /* CloseComplete */
	OWED_SYNC,     /* ReadyForQuery */
	OWED_FUNCTION, /* FunctionCallResponse, then ReadyForQuery */
	OWED_INTERNAL, /* pgwarden's own Query: everything up to its ReadyForQuery is swallowed */
	OWED_INTERNAL_EXT, /* pgwarden's own extended message (re-pin mid-batch): its one answer is swallowed */
} owed_kind;

/* Which of a Query's statement records the next result belongs to. */
#define OWED_INLINE_REFS 2

typedef struct owed {
	owed_kind kind;
	bool denied;            /* a poison was sent: its ErrorResponse becomes 'deny_msg' */
	uint8_t *deny_msg;      /* the whole ErrorResponse to send instead (malloc'd), when denied */
	size_t deny_len;
	uint64_t *refs;         /* audit seqs of the statement records results map to */
	uint64_t inline_refs[OWED_INLINE_REFS]; /* storage for refs when few */
	uint32_t n_refs;        /* how many refs */
	uint32_t next_ref;      /* index of the ref the next result belongs to */
	struct timespec start;  /* when sent, for duration_us */
	struct stmt_undo *undo; /* statement-name changes this request made, until the server confirms them */
} owed;

typedef struct owed_queue {
	owed *v;                /* ring storage */
	uint32_t cap;           /* slots (power of two) */
	uint32_t head;          /* index of the oldest entry */
	uint32_t count;         /* entries in use */
	bool skip_until_sync;   /* an extended-protocol error arrived before its Sync was sent */
} owed_queue;

void owed_init(owed_queue *q);
void owed_free(owed_queue *q);

/* Append an entry; returns it (zeroed but for kind and start) or NULL on out of memory. */
owed *owed_push(owed_queue *q, owed_kind kind);
/* The oldest entry, or NULL. */
owed *owed_head(owed_queue *q);
/* Remove the oldest entry. */
void owed_pop(owed_queue *q);
/* Attach audit refs to an entry (copies them). false on out of memory. */
bool owed_set_refs(owed *o, const uint64_t *refs, uint32_t n);
/* The ref the next result of 'o' maps to (0 if none), without advancing. */
uint64_t owed_peek_ref(const owed *o);
/* The ref the next result of 'o' maps to (0 if none) and advance. */
uint64_t owed_take_ref(owed *o);

/* The i-th oldest entry (0 = head), or NULL. */
owed *owed_at(owed_queue *q, uint32_t i);
/* Remove the i-th oldest entry (its answer will never come). */
void owed_remove_at(owed_queue *q, uint32_t i);
/* How many entries come before the first OWED_SYNC (all of them if none). */
uint32_t owed_until_sync(const owed_queue *q);

/*
 * After an ErrorResponse for an extended-protocol message the server skips
 * every message up to Sync: drop the entries before the next OWED_SYNC (the
 * failing request itself included, when it is still the head). If
 * no Sync is queued yet, later messages owe nothing until one is. The
 * skipped requests' statement-name changes are undone in 'names'. Returns
 * how many of pgwarden's internal queries were dropped (they never ran).
 */
struct stmt_table;
unsigned owed_error_skip(owed_queue *q, struct stmt_table *names);

/* Whether a message of this kind owes a response now (false while skipping until Sync). */
bool owed_expects(const owed_queue *q, owed_kind kind);

#endif
