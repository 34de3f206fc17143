"""Red-team probes of transaction-mode pooling (issue 11, CONTRACT §7): a client sharing a
pool of 1 with clients of other actors and tenants tries to see or keep their state, to
escape its pin through state left on a connection, or to wedge the pool."""
import os
import socket
import struct
import time

import psycopg
import pytest

from conftest import DIRECT
from pgserver import free_port
from pool_util import pools, wait_for
from test_pool import ident

pytestmark = pytest.mark.skipif(DIRECT, reason="pooling is pgwarden's")

TXN = "pool_mode = transaction\n"


@pytest.fixture
def short(pgwarden_factory):
    """Transaction mode, pool_size = 1 and a 1 s wait: a held connection shows as 53300."""
    return pgwarden_factory(target_config=TXN + "pool_size = 1\npool_wait_timeout = 1")


def assert_waits_53300(c):
    with pytest.raises(psycopg.errors.TooManyConnections):
        c.execute("SELECT 1")


def denied(c, sql):
    """The statement is refused by pgwarden (42501), the session goes on."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        c.execute(sql)
    assert "pgwarden" in str(e.value)


@pytest.mark.parametrize("make", [
    "CREATE TABLE pg_temp.atk_t (x int)",
    "CREATE TABLE PG_TEMP.atk_t (x int)",
    "CREATE SEQUENCE pg_temp.atk_s",
    "CREATE VIEW pg_temp.atk_v AS SELECT 1 AS x",
    "SELECT 1 AS x INTO pg_temp.atk_t",
    "CREATE TABLE pg_temp.atk_t AS SELECT 1 AS x",
    "CREATE TYPE pg_temp.atk_ty AS (x int)",
    "CREATE TYPE pg_temp.atk_e AS ENUM ('a')",
    "CREATE DOMAIN pg_temp.atk_d AS int",
])
def test_schema_qualified_temp_objects_hold(short, make):
    """An object created in pg_temp by name is a temp object: it holds its client like
    CREATE TEMP does (else the next borrower's reset drops it under the client)."""
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute(make)
    assert_waits_53300(b)
    assert a.execute("SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) + "
                     "(SELECT count(*) FROM pg_type WHERE typnamespace = pg_my_temp_schema())").fetchone()[0] >= 1
    a.close()
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    b.close()


def test_sequence_currval_does_not_cross(short):
    """currval/lastval of one client's nextval are not another's on the same backend."""
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("CREATE TEMP SEQUENCE IF NOT EXISTS atk_seq")  # holds: drop it after
    a.execute("SELECT nextval('atk_seq')")
    a.execute("DISCARD ALL")
    pid = ident(a)[3]
    a.execute("SELECT 1")
    assert ident(b)[3] == pid
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        b.execute("SELECT lastval()")
    a.close()
    b.close()


@pytest.mark.parametrize("sql", [
    "SET app.tenant_id = 'globex'",
    "SET SESSION AUTHORIZATION DEFAULT",
    "SET ROLE NONE",
    "SELECT set_config('app.actor_id', 'user:ada', false)",
])
def test_denied_identity_changes_are_not_replayed(short, sql):
    """A denied change never reaches the read-back: after another client used the backend
    the attacker borrows again with its own pin, and the other keeps its own."""
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("SET work_mem = '7MB'")  # a read-back and replay happen
    denied(a, sql)
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")
    assert a.execute("SHOW work_mem").fetchone()[0] == "7MB"
    assert b.execute("SHOW work_mem").fetchone()[0] == "4MB"
    a.close()
    b.close()


def test_search_path_replay_keeps_pin_and_other_client(short):
    """A client's search_path (which could name a schema of its own functions and operators)
    follows it, never the next client; the pin runs qualified names."""
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("SET search_path = pg_temp, public, pg_catalog")
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert b.execute("SHOW search_path").fetchone()[0] != "pg_temp, public, pg_catalog"
    assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")
    assert a.execute("SHOW search_path").fetchone()[0] == "pg_temp, public, pg_catalog"
    a.close()
    b.close()


def test_terminate_mid_transaction_rolls_back_and_frees_the_pool(short, pg):
    """A client gone inside a block: its work is not committed, nobody inherits the open
    transaction or its locks, and the pool is not wedged."""
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("BEGIN")
    a.execute("SELECT pg_advisory_xact_lock(4242)")
    a.execute("SET LOCAL work_mem = '9MB'")
    pid = ident(a)[3]
    a.close()
    for _ in range(3):
        got = ident(b)
        assert got[:3] == ("bookkeeper", "user:ada", "globex")
        assert got[3] != pid  # closed, never lent with its open block
        assert b.execute("SHOW work_mem").fetchone()[0] == "4MB"
    # the old backend's exit frees its lock (it may take a moment to go)
    assert wait_for(lambda: b.execute("SELECT pg_try_advisory_xact_lock(4242)").fetchone()[0])
    b.close()


def test_temp_function_is_denied(short):
    """A pg_temp function cannot be verified: refused (it could otherwise shadow a name)."""
    a = short.connect("user:jimmie")
    denied(a, "CREATE FUNCTION pg_temp.atk_f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")
    a.close()


def test_rollback_to_savepoint_does_not_release_a_hold(short):
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("LISTEN atk_chan")
    a.execute("BEGIN")
    a.execute("SAVEPOINT s1")
    a.execute("UNLISTEN *")
    a.execute("ROLLBACK TO SAVEPOINT s1")
    a.execute("COMMIT")
    assert a.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 1
    assert_waits_53300(b)
    a.close()
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    b.close()


def test_failed_block_does_not_release_a_hold(short):
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("SELECT pg_advisory_lock(777)")
    a.execute("BEGIN")
    a.execute("SELECT pg_advisory_unlock_all()")
    with pytest.raises(psycopg.errors.DivisionByZero):
        a.execute("SELECT 1/0")
    a.execute("COMMIT")
    assert_waits_53300(b)
    a.close()
    assert b.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0] == 0
    b.close()


def test_protocol_prepared_statement_is_not_visible_to_another(short):
    """A's named protocol statement follows A, never appears in B's pg_prepared_statements,
    and B's Bind of A's name fails as on a connection of its own."""
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    for _ in range(3):
        a.execute("SELECT current_setting('app.tenant_id') WHERE %s::int = 1", (1,), prepare=True)
    name = a.execute("SELECT name FROM pg_prepared_statements").fetchall()
    assert b.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
    assert a.execute("SELECT current_setting('app.tenant_id') WHERE %s::int = 1", (1,),
                     prepare=True).fetchone()[0] == "acme"
    assert name
    a.close()
    b.close()


def test_pool_recovers_after_a_client_vanishes_while_waiting(short):
    """A waiter that disconnects does not leave a ghost in the queue or the counters."""
    a, b, c = (short.connect(t) for t in ("user:jimmie", "user:ada", "agent:tally"))
    a.execute("BEGIN")
    a.execute("SELECT 1")
    assert_waits_53300(b)
    b.close()
    a.execute("COMMIT")
    for _ in range(3):
        assert ident(c)[:3] == ("agent_rw", "agent:tally", "acme")
        assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")
    a.close()
    c.close()


# ---- abnormal paths: a client that vanishes at any point must not wedge or leak the pool ----

def vanish(c):
    """Drop the client's TCP connection without a Terminate."""
    s = socket.socket(fileno=os.dup(c.pgconn.socket))
    s.shutdown(socket.SHUT_RDWR)
    s.close()
    c.close()


def send_only(c, sql):
    """Send a simple Query without waiting for its answer."""
    c.pgconn.send_query(sql.encode())
    c.pgconn.flush()


def vanish_after_set(c):
    send_only(c, "SET work_mem = '5MB'")  # its settings read-back is on its way


def vanish_in_block(c):
    c.execute("BEGIN")
    c.execute("SELECT pg_advisory_xact_lock(1)")


def vanish_mid_query(c):
    send_only(c, "SELECT pg_sleep(0.3)")


def vanish_mid_copy(c):
    send_only(c, "COPY (SELECT 1) TO STDOUT")


def vanish_mid_copy_in(c):
    c.execute("CREATE TEMP TABLE IF NOT EXISTS v_ci (x int)")
    send_only(c, "COPY v_ci FROM STDIN")
    assert c.pgconn.get_result().status == 4  # COPY_IN
    c.pgconn.put_copy_data(b"1\n2\n")
    c.pgconn.flush()


def vanish_mid_batch(c):
    """An extended batch without its Sync: a transaction is open upstream."""
    c.pgconn.send_query_params(b"SELECT $1::int", [b"1"])  # Parse/Bind/Describe/Execute/Sync
    c.pgconn.flush()
    time.sleep(0.05)
    raw = b"P" + struct.pack("!I", 4 + 1 + 9 + 2) + b"\0SELECT 1\0" + struct.pack("!H", 0)
    s = socket.socket(fileno=os.dup(c.pgconn.socket))
    s.sendall(raw + b"B" + struct.pack("!I", 4 + 1 + 1 + 2 + 2 + 2) + b"\0\0" + struct.pack("!HHH", 0, 0, 0)
              + b"E" + struct.pack("!I", 4 + 1 + 4) + b"\0" + struct.pack("!I", 0) + b"H" + struct.pack("!I", 4))
    s.close()


def vanish_after_listen(c):
    c.execute("LISTEN v_chan")


def vanish_after_prepare(c):
    c.execute("SELECT %s::int", (1,), prepare=True)
    c.execute("PREPARE v_p AS SELECT 1")


@pytest.mark.parametrize("step", [vanish_after_set, vanish_in_block, vanish_mid_query, vanish_mid_copy,
                                  vanish_mid_copy_in, vanish_mid_batch, vanish_after_listen,
                                  vanish_after_prepare], ids=lambda f: f.__name__)
def test_vanishing_client_never_wedges_the_pool(pgwarden_factory, step):
    """pool_size = 1: after each abnormal end, repeated, the other client still borrows with its
    own identity, and /pools shows nothing stuck (no waiter, no reset, at most one open)."""
    port = free_port()
    w = pgwarden_factory(extra_config=f"admin_listen = 127.0.0.1:{port}",
                         target_config=TXN + "pool_size = 1\npool_wait_timeout = 5")
    b = w.connect("user:ada")
    b.prepare_threshold = None  # none of its own: any prepared statement it sees is someone else's
    for _ in range(4):
        a = w.connect("user:jimmie")
        assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")
        step(a)
        vanish(a)
        for _ in range(2):
            assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
            assert b.execute("SHOW work_mem").fetchone()[0] == "4MB"
            assert b.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 0
            assert b.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
    b.close()
    assert wait_for(lambda: (lambda p: p["waiting"] == 0 and p["resetting"] == 0 and p["open"] <= 1
                             and p["active"] == 0 and p["held"] == 0)(pools(port)))
    c = w.connect("agent:tally")
    assert ident(c)[:3] == ("agent_rw", "agent:tally", "acme")
    c.close()


def exec_prepared(c, name):
    r = c.pgconn.exec_prepared(name, [])
    return r.status, r.error_field(psycopg.pq.DiagnosticField.SQLSTATE), r.get_value(0, 0) if r.ntuples else None


@pytest.mark.parametrize("drop", ["DEALLOCATE atk", "DEALLOCATE ALL", "DISCARD ALL"])
def test_a_dropped_protocol_statement_is_not_resurrected_on_another_backend(pgwarden_factory, drop):
    """pool_size = 1 shared with another client: a named protocol statement the client
    dropped (SQL DEALLOCATE, DISCARD ALL or a protocol Close) is not Parsed again for it on
    the next borrow: its Bind fails (26000, or pgwarden's 42501 for a name it does not know)."""
    w = pgwarden_factory(target_config=TXN + "pool_size = 1\npool_wait_timeout = 3")
    a, b = w.connect("user:jimmie"), w.connect("user:ada")
    a.prepare_threshold = b.prepare_threshold = None
    assert a.pgconn.prepare(b"atk", b"SELECT current_setting('app.tenant_id')").status == 1
    assert exec_prepared(a, b"atk")[2] == b"acme"
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")  # moved: a's statement follows on demand
    assert exec_prepared(a, b"atk")[2] == b"acme"
    a.execute(drop)
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert exec_prepared(b, b"atk")[1] in (b"26000", b"42501")  # never b's (pgwarden refuses a Bind of a name it does not know)
    st, code, _ = exec_prepared(a, b"atk")
    assert code in (b"26000", b"42501")  # not run: the server's, or pgwarden's refusal of an unknown name
    assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")
    a.close()
    b.close()


def test_sql_prepare_over_a_protocol_name_is_not_replaced_by_the_old_parse(pgwarden_factory):
    """The server has one namespace: after DEALLOCATE and an SQL PREPARE of the same name,
    the statement the client runs is its SQL one, never the older protocol Parse."""
    w = pgwarden_factory(target_config=TXN + "pool_size = 1\npool_wait_timeout = 3")
    a, b = w.connect("user:jimmie"), w.connect("user:ada")
    a.prepare_threshold = b.prepare_threshold = None
    assert a.pgconn.prepare(b"atk2", b"SELECT 'protocol'").status == 1
    ident(b)
    a.execute("DEALLOCATE atk2")
    a.execute("PREPARE atk2 AS SELECT 'sql'")
    assert a.execute("EXECUTE atk2").fetchone()[0] == "sql"
    assert exec_prepared(a, b"atk2")[2] == b"sql"
    a.execute("DEALLOCATE atk2")
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert exec_prepared(a, b"atk2")[1] in (b"26000", b"42501")
    a.close()
    b.close()


def window_config(seconds):
    from datetime import datetime, timedelta, timezone
    now = datetime.now(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (f"[window.atk]\ntarget = prod\nstart = {(now - timedelta(hours=1)).strftime(fmt)}\n"
            f"end = {(now + timedelta(seconds=seconds)).strftime(fmt)}\napproved_by = ops:tests\n"
            f"reason = pool attack test\nactors = user:jimmie\n")


@pytest.mark.parametrize("size", [1, 2])
def test_window_closing_while_parked_makes_the_connection_read_only(pgwarden_factory, size):
    """An actor whose window closes while its connection is parked (still attached, or taken
    back and lent again): its next transaction runs read-only upstream too, and the other actor
    never had read-write."""
    w = pgwarden_factory(extra_config=window_config(4),
                         target_config=TXN + f"pool_size = {size}\npool_wait_timeout = 3")
    a, b = w.connect("user:jimmie", dbname="prod"), w.connect("user:ada", dbname="prod")
    a.execute("UPDATE invoices SET note = note WHERE id = -1")
    assert a.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
    assert b.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    time.sleep(5.5)
    assert a.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    with pytest.raises(psycopg.Error):
        a.execute("UPDATE invoices SET note = note WHERE id = -1")
    assert b.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    a.close()
    b.close()


@pytest.mark.parametrize("sql", ["SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
                                 "SET default_transaction_read_only = off",
                                 "RESET default_transaction_read_only",
                                 "SELECT set_config('default_transaction_read_only', 'off', false)"])
def test_read_only_default_cannot_be_turned_off_and_replayed(pgwarden_factory, sql):
    """Production outside a window: turning the read-only default off is refused, so no read-back
    can carry it to the next borrow; the other client's borrow is unaffected."""
    w = pgwarden_factory(target_config=TXN + "pool_size = 1\npool_wait_timeout = 3")
    a, b = w.connect("user:ada", dbname="prod"), w.connect("user:jimmie", dbname="prod")
    a.execute("SET work_mem = '6MB'")
    with pytest.raises(psycopg.Error):
        a.execute(sql)
    for c in (b, a, b, a):
        assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    with pytest.raises(psycopg.Error):
        a.execute("UPDATE invoices SET note = note WHERE id = -1")
    a.close()
    b.close()


def test_settings_read_back_runs_no_client_operator(short, pg):
    """pgwarden's own read-back of settings runs on the client's backend with the client's
    search_path: an operator the client defined (in a schema it may create in) must not be
    what its '=' or '<>' resolve to, or the client's function runs inside pgwarden's query,
    never judged nor audited."""
    pg.sql("CREATE SCHEMA IF NOT EXISTS atk AUTHORIZATION bookkeeper", dbname="app_staging")
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("CREATE TABLE atk.atk_log (n int)")
    a.execute("CREATE FUNCTION atk.atk_eq(text, text) RETURNS bool LANGUAGE sql "
              "AS 'INSERT INTO atk.atk_log VALUES (1) RETURNING true'")
    a.execute("CREATE OPERATOR atk.= (LEFTARG = text, RIGHTARG = text, FUNCTION = atk.atk_eq)")
    a.execute("CREATE OPERATOR atk.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = atk.atk_eq)")
    a.execute("CREATE OPERATOR atk.~~ (LEFTARG = text, RIGHTARG = text, FUNCTION = atk.atk_eq)")
    try:
        a.execute("SET search_path = atk, pg_catalog, public")
        a.execute("SET work_mem = '5MB'")
        assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")  # takes a's connection: a's read-back runs
        assert a.execute("SHOW work_mem").fetchone()[0] == "5MB"
        a.execute("SET search_path = public")
        assert a.execute("SELECT count(*) FROM atk.atk_log").fetchone()[0] == 0
    finally:  # the server is shared by the whole run: leave no operator behind
        pg.sql("DROP SCHEMA atk CASCADE", dbname="app_staging")
    a.close()
    b.close()


def test_wall_check_on_borrow_runs_no_client_operator(pgwarden_factory, pg):
    """Production (walled): the pin's check on every borrow runs under the client's search_path;
    an operator '=' in a schema the client names must not be the one it runs."""
    for q in ("CREATE SCHEMA IF NOT EXISTS atk", "GRANT USAGE ON SCHEMA atk TO PUBLIC",
              "CREATE TABLE IF NOT EXISTS atk.atk_log (n int)", "GRANT INSERT, SELECT ON atk.atk_log TO PUBLIC",
              "CREATE OR REPLACE FUNCTION atk.atk_eq(text, text) RETURNS bool LANGUAGE sql "
              "AS 'INSERT INTO atk.atk_log VALUES (1) RETURNING true'",
              "DROP OPERATOR IF EXISTS atk.= (text, text)",
              "CREATE OPERATOR atk.= (LEFTARG = text, RIGHTARG = text, FUNCTION = atk.atk_eq)"):
        pg.sql(q, dbname="app")
    try:
        w = pgwarden_factory(extra_config=window_config(600),
                             target_config=TXN + "pool_size = 1\npool_wait_timeout = 3")
        # both sessions of the windowed actor: the policy judges a '=' of another actor as a possible call of atk.=
        a, b = w.connect("user:jimmie", dbname="prod"), w.connect("user:jimmie", dbname="prod")
        a.execute("SET search_path = atk, pg_catalog, public")
        for _ in range(3):
            assert ident(b)[:3] == ("bookkeeper", "user:jimmie", "acme")
            assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")  # borrowed again: pinned and checked
        assert pg.sql("SELECT count(*) FROM atk.atk_log", dbname="app")[0][0] == 0
        a.close()
        b.close()
    finally:  # the server is shared by the whole run: leave no operator behind
        pg.sql("DROP SCHEMA atk CASCADE", dbname="app")


def test_statement_prepared_in_a_window_does_not_write_after_it_on_another_backend(pgwarden_factory):
    """A protocol statement Parsed while the actor's window was open is prepared again, unjudged,
    on the backend it borrows after the window closed: its Execute is still judged, and denied."""
    w = pgwarden_factory(extra_config=window_config(4),
                         target_config=TXN + "pool_size = 1\npool_wait_timeout = 3")
    a, b = w.connect("user:jimmie", dbname="prod"), w.connect("user:ada", dbname="prod")
    a.prepare_threshold = b.prepare_threshold = None
    assert a.pgconn.prepare(b"atk_w", b"UPDATE invoices SET note = note WHERE id = -1").status == 1
    assert exec_prepared(a, b"atk_w")[0] == 1  # COMMAND_OK inside the window
    time.sleep(5.5)
    b.execute("SELECT 1")  # takes a's connection: a's statement must be prepared again for it
    st, code, _ = exec_prepared(a, b"atk_w")
    assert code == b"42501"
    assert a.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    a.close()
    b.close()


def test_pipelines_across_syncs_stay_with_their_client(pgwarden_factory):
    """Two clients, each in its own thread, pipelining batches (a Sync after each) over one
    backend: every batch runs under its own client's identity and settings."""
    import threading
    w = pgwarden_factory(target_config=TXN + "pool_size = 1\npool_wait_timeout = 10")
    conns = {"acme": w.connect("user:jimmie"), "globex": w.connect("user:ada")}
    conns["acme"].execute("SET work_mem = '5MB'")
    want = {"acme": "5MB", "globex": "4MB"}
    bad = []

    def run(tenant):
        c = conns[tenant]
        for _ in range(10):
            with c.pipeline() as p:
                curs = []
                for _ in range(3):
                    curs.append(c.execute("SELECT current_setting('app.tenant_id'), current_setting('work_mem')"))
                    p.sync()
            got = {cur.fetchone() for cur in curs}
            if got != {(tenant, want[tenant])}:
                bad.append((tenant, got))

    ts = [threading.Thread(target=run, args=(t,)) for t in conns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not bad
    for c in conns.values():
        c.close()


def test_lock_taken_in_a_failed_statement_still_holds(short):
    """Session advisory locks survive the rollback of the statement that took them: the client
    stays held (the other waits) and the lock is never lent to the next borrower."""
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    with pytest.raises(psycopg.errors.DivisionByZero):
        a.execute("SELECT pg_advisory_lock(4711); SELECT 1/0")
    assert_waits_53300(b)
    a.close()
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert b.execute("SELECT pg_try_advisory_lock(4711)").fetchone()[0] is True
    b.execute("SELECT pg_advisory_unlock_all()")
    b.close()


def test_a_long_statement_name_follows_its_client_under_its_other_spelling(pgwarden_factory):
    """The server keys statement names by their first 63 bytes, so two spellings that differ
    after byte 63 are one statement. Moved to another backend, the client's statement is
    prepared again whichever spelling names it."""
    w = pgwarden_factory(target_config=TXN + "pool_size = 1\npool_wait_timeout = 3")
    a, b = w.connect("user:jimmie"), w.connect("user:ada")
    a.prepare_threshold = b.prepare_threshold = None
    one, other = b"l" * 63 + b"_one", b"l" * 63 + b"_other"
    assert a.pgconn.prepare(one, b"SELECT current_setting('app.tenant_id')").status == 1
    assert exec_prepared(a, one)[2] == b"acme"
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")  # a's backend is taken back and reset
    assert exec_prepared(a, other)[2] == b"acme"  # prepared again under the server's key
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert exec_prepared(a, one)[2] == b"acme"
    a.close()
    b.close()
