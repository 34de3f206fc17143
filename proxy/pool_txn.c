/* pool_txn.c - transaction pooling: the end of a client's transaction, and the state that holds it (CONTRACT §7). */
#include "proxy/pool_txn.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include "policy/policy.h"
#include "proxy/pool.h"
#include "proxy/pool_stmts.h"
#include "proxy/server.h"

const char *const pool_hold_names[POOL_HOLD_N] = {
	[POOL_HOLD_TEMP] = "temp_table",
	[POOL_HOLD_LISTEN] = "listen",
	[POOL_HOLD_LOCK] = "advisory_lock",
	[POOL_HOLD_CURSOR] = "cursor",
	[POOL_HOLD_PREPARED] = "prepared_statement",
	[POOL_HOLD_SETTINGS] = "settings",
	[POOL_HOLD_FUNCTION] = "function",
};

#define BIT(r) (1u << (r))

bool pool_txn_mode(const session *s)
{
	return s->target && s->target->pool_mode == POOL_MODE_TRANSACTION;
}

/* A hold reason starts: counted once per start (pgwarden_pool_holds_total); a release noted earlier in the same transaction no longer applies to it. */
static void hold(session *s, pool_hold_reason r)
{
	if (!(s->pool_holds & BIT(r)) && s->pool)
		pool_count_hold(s->pool, r);
	s->pool_holds |= BIT(r);
	s->pool_release_due &= ~BIT(r);
}

/*
 * Settings this statement may leave for the rest of the session: SET,
 * RESET, set_config() (whatever its is_local: the read-back is exact), and
 * RESET ALL / DISCARD ALL. They follow the client: read back from the
 * server when the transaction is over (pool.c, start_snapshot).
 */
static bool changes_settings(const policy_facts *f, uint32_t flags)
{
	size_t n = 0;

	policy_facts_settings(f, &n);
	return (n > 0 && !(flags & PF_SET_LOCAL)) || (flags & PF_SESSION_RESET);
}

void pool_txn_note_statement(session *s, const policy_facts *f)
{
	uint32_t flags;

	if (!f || !pool_txn_mode(s))
		return;
	flags = policy_facts_flags(f);
	if (flags & (PF_EXECUTE | PF_DEALLOCATE))
		pool_stmts_sql(s, policy_facts_name(f));
	/* What it ends first: "UNLISTEN *; LISTEN a" ends with a registration. */
	if (flags & PF_DISCARD_ALL)
		s->pool_release_due |= ~0u;
	if (flags & PF_DISCARD_TEMP)
		s->pool_release_due |= BIT(POOL_HOLD_TEMP);
	if (flags & PF_UNLISTEN_ALL)
		s->pool_release_due |= BIT(POOL_HOLD_LISTEN);
	if (flags & PF_UNLOCK_ALL)
		s->pool_release_due |= BIT(POOL_HOLD_LOCK);
	if ((flags & PF_SESSION_RESET) && !(flags & PF_DISCARD_ALL))
		s->pool_release_due |= BIT(POOL_HOLD_SETTINGS); /* RESET ALL */
	/*
	 * Why void: a ROLLBACK would undo the release with the rest of the block
	 * (the COMMIT of a failed block is voided by the error that failed it).
	 */
	if (flags & PF_TXN_UNDO)
		s->pool_release_void = true;
	if (flags & PF_HOLD_TEMP)
		hold(s, POOL_HOLD_TEMP);
	if (flags & PF_HOLD_LISTEN)
		hold(s, POOL_HOLD_LISTEN);
	if (flags & PF_HOLD_LOCK)
		hold(s, POOL_HOLD_LOCK);
	if (changes_settings(f, flags))
		s->pool_settings_changed = true;
	if (flags & PF_SESSION_RESET) {
		free(s->pool_settings_sql); /* the pin after it replays the startup settings only */
		s->pool_settings_sql = NULL;
	}
	/* Could change any setting (the policy let it run): it must not follow anyone, it holds. */
	if (flags & PF_IDENTITY)
		hold(s, POOL_HOLD_SETTINGS);
	/* Default safe: what runs unseen (user functions, dynamic SQL) may have left any kind of state. */
	if (flags & (PF_USER_FUNC | PF_OPAQUE))
		hold(s, POOL_HOLD_FUNCTION);
}

void pool_txn_note_error(session *s)
{
	s->pool_release_void = true;
}

/* The transaction ended ('I'): its releases take effect unless it failed or was (partly) rolled back. */
static void settle_releases(session *s)
{
	if (!s->pool_release_void)
		s->pool_holds &= ~s->pool_release_due;
	s->pool_release_due = 0;
	s->pool_release_void = false;
}

/* Hold reasons now: the facts' sticky ones, plus names the server confirmed (they end exactly: Close, DEALLOCATE, CLOSE). */
static uint32_t holds_now(const session *s)
{
	unsigned named, portals;
	uint32_t h = s->pool_holds;

	stmt_table_counts(&s->tl.confirmed, &named, &portals);
	if (named > pool_stmts_movable((session *)s))
		h |= BIT(POOL_HOLD_PREPARED); /* an SQL PREPARE: it holds (protocol statements follow the client) */
	if (portals)
		h |= BIT(POOL_HOLD_CURSOR); /* only WITH HOLD cursors outlive a transaction */
	return h;
}

/* Nothing of the client is in flight on its connection, and its transaction is over. */
static bool between_transactions(const session *s)
{
	return !s->closing && s->client.phase == CLIENT_READY && s->up.phase == UPSTREAM_READY && !s->up.broken &&
	       s->up.txn_status == 'I' && s->tl.count == 0 && !s->tl.batch_open && TAILQ_EMPTY(&s->tl.changes) &&
	       s->tl.mode == TL_MODE_NORMAL && !s->tl.awaiting && !io_pending(&s->up.io) &&
	       evbuffer_get_length(s->hold) == 0 && !s->awaiting_flush && !s->client.copy_passthru && !s->up.passthru &&
	       evbuffer_get_length(s->up.io.in) == 0 && !s->parse_waiting && !s->catalog_waiting &&
	       !s->client.terminated;
}

/* Prepared statements and WITH HOLD cursors hold by name: each start is counted like a fact's. */
static void count_name_holds(session *s)
{
	uint32_t names = holds_now(s) & (BIT(POOL_HOLD_PREPARED) | BIT(POOL_HOLD_CURSOR));

	for (int r = 0; r < POOL_HOLD_N; r++)
		if ((names & ~s->pool_name_holds & ~s->pool_holds) & BIT(r))
			pool_count_hold(s->pool, r);
	s->pool_name_holds = names;
}

bool pool_txn_held_now(const session *s)
{
	return pool_txn_mode(s) && s->up.phase == UPSTREAM_READY && s->up.txn_status == 'I' && s->tl.count == 0 &&
	       holds_now(s) != 0;
}

bool pool_txn_can_go(const session *s)
{
	return between_transactions(s) && holds_now(s) == 0 && evbuffer_get_length(s->client.io.in) == 0;
}

void pool_txn_after_input(session *s)
{
	uint32_t before;

	if (!pool_txn_mode(s) || !between_transactions(s))
		return;
	before = s->pool_holds;
	settle_releases(s);
	count_name_holds(s);
	if (before & ~s->pool_holds)
		session_log(LOG_LVL_DEBUG, s, "pool: hold released (0x%x -> 0x%x)", before, s->pool_holds);
	if (holds_now(s) == 0)
		pool_park(s);
}
