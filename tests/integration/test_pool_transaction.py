"""Upstream pooling, transaction mode (CONTRACT §7): clients borrow a connection for one
transaction and hold none between transactions, unless session state that cannot move
(temp tables, LISTEN, advisory locks, WITH HOLD cursors, prepared statements, settings)
holds them on it. Identity and state never cross between clients sharing one backend."""
import re
import socket
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import DIRECT
from pgserver import free_port
# The session-mode isolation tests, run again here over transaction mode (the `one` fixture below).
from test_pool import (ident, one_value, svc_pids, wait_for,  # noqa: F401 - helpers and re-run tests
                       test_abrupt_disconnect_mid_transaction, test_identity_and_state_never_cross,
                       test_idle_pooled_connection_is_nobody, test_reset_all_does_not_drop_role_and_next_client_is_own,
                       test_set_config_with_bind_parameters_does_not_leak,
                       test_set_in_a_block_persists_after_commit_but_not_to_the_next_client,
                       test_setseed_state_does_not_leak, test_sql_prepare_does_not_leak,
                       test_startup_settings_follow_the_client, test_temp_table_cannot_shadow_a_real_table)

pytestmark = pytest.mark.skipif(DIRECT, reason="pooling is pgwarden's")

TXN = "pool_mode = transaction\n"
ONE = TXN + "pool_size = 1\npool_wait_timeout = 2"


@pytest.fixture
def one(pgwarden_factory):
    """A transaction-mode pgwarden whose targets share a single upstream connection each."""
    return pgwarden_factory(target_config=ONE)


@pytest.fixture
def short(pgwarden_factory):
    """pool_size = 1 with a short wait: a held connection shows as 53300 for the other client."""
    return pgwarden_factory(target_config=TXN + "pool_size = 1\npool_wait_timeout = 1")


def test_two_clients_share_one_backend_between_transactions(one):
    """Both connected at once, pool_size = 1: statements alternate on the same backend,
    each under its own identity, tenant rows and startup settings."""
    a = one.connect("user:jimmie", application_name="app-a")
    b = one.connect("agent:tally", options="-c TimeZone=Asia/Tokyo")
    pids = set()
    for _ in range(3):
        ra, rb = ident(a), ident(b)
        pids |= {ra[3], rb[3]}
        assert ra[:3] == ("bookkeeper", "user:jimmie", "acme")
        assert rb[:3] == ("agent_rw", "agent:tally", "acme")
        assert a.execute("SELECT DISTINCT tenant FROM invoices").fetchall() in ([("acme",)], [])
        c = one.connect("user:ada")
        assert c.execute("SELECT DISTINCT tenant FROM invoices").fetchall() in ([("globex",)], [])
        c.close()
        assert a.execute("SHOW application_name").fetchone()[0] == "app-a"
        assert b.execute("SHOW application_name").fetchone()[0] != "app-a"
        assert b.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
        assert a.execute("SHOW TimeZone").fetchone()[0] != "Asia/Tokyo"
    assert len(pids) == 1
    a.close()
    b.close()


def metrics(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()


def metric(port, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}{{{re.escape(want)}}} (\S+)$", metrics(port), re.M)
    return float(m.group(1)) if m else None


def assert_waits_53300(c):
    """The other client cannot borrow: its statement fails 53300 after pool_wait_timeout, its session goes on."""
    with pytest.raises(psycopg.errors.TooManyConnections) as e:
        c.execute("SELECT 1")
    assert str(e.value).startswith("pgwarden:")


def cursor_with_hold(c):
    c.execute("BEGIN")
    c.execute("DECLARE held_c CURSOR WITH HOLD FOR SELECT 1")
    c.execute("COMMIT")


HOLDS = [
    # (make the state, end it, reason label)
    ("CREATE TEMP TABLE tx_t (x int)", "DISCARD TEMP", "temp_table"),
    ("CREATE TEMP TABLE tx_t2 AS SELECT 1 AS x", "DISCARD ALL", "temp_table"),
    ("SELECT 1 AS x INTO TEMP tx_t3", "DISCARD ALL", "temp_table"),
    ("CREATE TEMP VIEW tx_v AS SELECT 1", "DISCARD TEMP", "temp_table"),
    ("LISTEN tx_chan", "UNLISTEN *", "listen"),
    ("SELECT pg_advisory_lock(4711)", "SELECT pg_advisory_unlock_all()", "advisory_lock"),
    ("SELECT pg_try_advisory_lock_shared(4712)", "DISCARD ALL", "advisory_lock"),
    ("PREPARE tx_p AS SELECT 1", "DEALLOCATE tx_p", "prepared_statement"),
    (cursor_with_hold, "CLOSE held_c", "cursor"),
    ("DO $$BEGIN CREATE TEMP TABLE tx_do (x int); END$$", "DISCARD ALL", "temp_table"),
]


@pytest.mark.parametrize("make,end,reason", HOLDS, ids=[h[2] + "-" + str(i) for i, h in enumerate(HOLDS)])
def test_state_that_cannot_move_holds_until_it_is_gone(pgwarden_factory, make, end, reason):
    """Session state that cannot follow a client keeps it on its connection (the other client
    waits: 53300), counted by reason; once it is gone the connection is shared again."""
    port = free_port()
    w = pgwarden_factory(extra_config=f"admin_listen = 127.0.0.1:{port}",
                         target_config=TXN + "pool_size = 1\npool_wait_timeout = 1")
    a, b = w.connect("user:jimmie"), w.connect("user:ada")
    assert ident(a)[3] == ident(b)[3]  # shared while nothing holds
    make(a) if callable(make) else a.execute(make)
    assert metric(port, "pgwarden_pool_holds_total", target="staging", reason=reason) == 1
    assert metric(port, "pgwarden_pool_connections", target="staging", state="held") == 1
    assert_waits_53300(b)
    assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")  # the holder goes on
    a.execute(end)
    assert metric(port, "pgwarden_pool_connections", target="staging", state="held") == 0
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert b.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 0
    assert b.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                     "AND pid = pg_backend_pid()").fetchone()[0] == 0
    assert b.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
    assert b.execute("SHOW work_mem").fetchone()[0] == "4MB"
    a.close()
    b.close()


def test_a_rolled_back_release_keeps_the_hold(short):
    """UNLISTEN * inside a block that rolls back ends nothing: still held."""
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("LISTEN tx_keep")
    a.execute("BEGIN")
    a.execute("UNLISTEN *")
    a.execute("ROLLBACK")
    assert a.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 1
    assert_waits_53300(b)
    a.close()
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    b.close()


def test_a_release_in_a_committed_block_counts(short):
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("CREATE TEMP TABLE tx_gone (x int)")
    assert_waits_53300(b)
    a.execute("BEGIN")
    a.execute("DISCARD TEMP")
    a.execute("COMMIT")
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    a.close()
    b.close()


def test_set_local_and_plain_statements_do_not_hold(short):
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("BEGIN")
    a.execute("SET LOCAL work_mem = '6MB'")
    a.execute("SELECT count(*) FROM invoices")
    a.execute("COMMIT")
    a.execute("SELECT pg_advisory_xact_lock(99)")
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert a.execute("SHOW work_mem").fetchone()[0] == "4MB"
    a.close()
    b.close()


def test_an_open_transaction_keeps_the_connection_until_it_ends(short):
    """Explicit block: the other client waits until COMMIT, then borrows the same backend."""
    a, b = short.connect("agent:tally"), short.connect("user:ada")
    a.execute("BEGIN")
    a.execute("SELECT 1")
    assert_waits_53300(b)
    a.execute("COMMIT")
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    a.close()
    b.close()


def test_waiting_client_is_served_when_the_transaction_ends(pgwarden_factory):
    """A waiter is not refused: it runs as soon as the holder's transaction commits."""
    w = pgwarden_factory(target_config=TXN + "pool_size = 1\npool_wait_timeout = 10")
    a, b = w.connect("user:jimmie"), w.connect("user:ada")
    a.execute("BEGIN")
    a.execute("SELECT 1")
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("b", ident(b)))
    t.start()
    time.sleep(0.5)
    assert "b" not in got
    a.execute("COMMIT")
    t.join(10)
    assert got["b"][:3] == ("bookkeeper", "user:ada", "globex")
    a.close()
    b.close()


def test_cancel_reaches_only_the_query_of_its_client(pgwarden_factory):
    """pool_size = 2: a cancel stops its client's running query and no other; a cancel sent
    while the client holds no connection does nothing, and never hits the next borrower."""
    w = pgwarden_factory(target_config=TXN + "pool_size = 2\npool_wait_timeout = 10")
    a, b, c = w.connect("user:jimmie"), w.connect("user:ada"), w.connect("agent:tally")
    results = {}

    def run_b():
        results["b"] = b.execute("SELECT pg_sleep(1.5), 'b'").fetchone()[1]

    t = threading.Thread(target=run_b)
    t.start()
    timer = threading.Timer(0.5, a.cancel)
    timer.start()
    with pytest.raises(psycopg.errors.QueryCanceled):
        a.execute("SELECT pg_sleep(5)")
    t.join(10)
    assert results["b"] == "b"
    # a late cancel: a holds no connection now; c's query on the shared backends runs to its end
    a.execute("SELECT 1")
    done = {}
    t = threading.Thread(target=lambda: done.setdefault("c", c.execute("SELECT pg_sleep(1), 'ok'").fetchone()[1]))
    t.start()
    time.sleep(0.3)
    for _ in range(3):
        a.cancel()
    t.join(10)
    assert done["c"] == "ok"
    assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")
    for x in (a, b, c):
        x.close()


def test_connection_lost_mid_transaction_ends_only_that_client(one, pg):
    """The backend of a client's open transaction dies: that client gets FATAL 08006;
    the other client sharing the pool goes on, on a new backend."""
    a, b = one.connect("user:jimmie"), one.connect("user:ada")
    assert ident(b)[2] == "globex"
    a.execute("BEGIN")
    pid = ident(a)[3]
    pg.sql(f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(psycopg.OperationalError) as e:
        a.execute("SELECT 1")
        a.execute("SELECT 1")
    assert e.value.sqlstate in ("08006", "57P01", None), e.value
    r = ident(b)
    assert r[:3] == ("bookkeeper", "user:ada", "globex") and r[3] != pid
    b.close()


def test_abrupt_disconnect_leaves_nothing_for_the_client_sharing_the_backend(one):
    """A client vanishes inside its transaction: its write is rolled back, and the client that
    shares the backend (connected all along) gets a clean one."""
    b = one.connect("user:ada")
    assert ident(b)[2] == "globex"
    a = one.connect("agent:tally")
    a.execute("BEGIN")
    a.execute("UPDATE invoices SET note = 'txn-abrupt' WHERE id = (SELECT min(id) FROM invoices)")
    socket.socket(fileno=a.pgconn.socket).shutdown(socket.SHUT_RDWR)
    try:
        a.close()
    except Exception:  # noqa: BLE001 - the socket is gone under psycopg
        pass
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert b.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert b.execute("SELECT count(*) FROM invoices WHERE note = 'txn-abrupt'").fetchone()[0] == 0
    b.close()


def test_read_only_default_is_each_borrowers_own(pgwarden_factory):
    """Production, one shared backend: an actor with an open window writes; the other actor,
    connected at the same time and alternating with it, stays read-only."""
    from datetime import datetime, timedelta, timezone
    now = datetime.now(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    window = (f"[window.txn-open]\ntarget = prod\nstart = {(now - timedelta(hours=1)).strftime(fmt)}\n"
              f"end = {(now + timedelta(hours=1)).strftime(fmt)}\napproved_by = ops:tests\n"
              f"reason = pool test\nactors = user:jimmie\n")
    w = pgwarden_factory(extra_config=window, target_config=ONE)
    a, b = w.connect("user:jimmie", dbname="prod"), w.connect("user:ada", dbname="prod")
    for _ in range(2):
        assert a.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
        assert b.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        assert ident(a)[3] == ident(b)[3]
        with pytest.raises(psycopg.Error):
            b.execute("UPDATE invoices SET note = note WHERE id = -1")
        a.execute("UPDATE invoices SET note = note WHERE id = -1")
    a.close()
    b.close()


def test_statement_records_name_the_backend_of_each_borrow(pgwarden_factory):
    from audit_util import records
    w = pgwarden_factory(target_config=ONE)
    a, b = w.connect("user:jimmie"), w.connect("user:ada")
    pid = a.execute("SELECT pg_backend_pid()").fetchone()[0]
    b.execute("SELECT 1")
    a.execute("SELECT 2")
    recs = [r for r in records(w.audit_path) if r["event"] == "statement"]
    assert [r["backend_pid"] for r in recs] == [pid, pid, pid]
    a.close()
    b.close()


def test_pools_view_reports_transaction_mode(pgwarden_factory):
    import json
    port = free_port()
    w = pgwarden_factory(extra_config=f"admin_listen = 127.0.0.1:{port}", target_config=TXN + "pool_size = 3")
    with w.connect() as c:
        c.execute("SELECT 1")
        pools = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/pools").read())
        staging = [p for p in pools if p["target"] == "staging"][0]
        assert staging["mode"] == "transaction"
        assert staging["active"] == 0 and staging["held"] == 0 and staging["idle"] == 1  # between transactions
        c.execute("LISTEN x")
        pools = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/pools").read())
        assert [p for p in pools if p["target"] == "staging"][0]["held"] == 1


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_shares_a_small_pool(pgwarden_factory, pg, mode):
    """pgbench, 8 clients on a pool of 2 in transaction mode: 0 failures, at most 2 backends
    (-M prepared: its named statements are prepared again on whichever backend a client borrows)."""
    import subprocess
    size = 2
    others = svc_pids(pg)
    w = pgwarden_factory(target_config=TXN + f"pool_size = {size}\npool_wait_timeout = 60")
    p = subprocess.run(["pgbench", "-n", "-M", mode, "-c", "8", "-j", "2", "-t", "30", "-f", "/dev/stdin",
                        w.dsn(dbname="staging")],
                       input="SELECT count(*) FROM invoices;\nSELECT current_setting('app.actor_id');\n",
                       capture_output=True, text=True, timeout=180)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    assert m and m.group(1) == m.group(2) == "240", out
    assert "failed" not in out or re.search(r"number of failed transactions: 0 ", out), out
    assert len(svc_pids(pg) - others) <= size


@pytest.mark.parametrize("threshold", [0, 2])
def test_psycopg_automatic_prepare(pgwarden_factory, threshold):
    """psycopg prepares a statement after prepare_threshold uses (0: at once): the client is held
    while its prepared statements live, and sees only its own identity throughout."""
    w = pgwarden_factory(target_config=TXN + "pool_size = 2\npool_wait_timeout = 10")
    conns = [w.connect(a) for a in ("user:jimmie", "user:ada", "agent:tally")]
    for c in conns:
        c.prepare_threshold = threshold
    for _ in range(5):
        for c, actor in zip(conns[:2], ("user:jimmie", "user:ada")):
            assert c.execute("SELECT current_setting('app.actor_id'), %s::int", (1,)).fetchone() == (actor, 1)
    conns[0].close()  # its backend is reset and lent to the third client
    assert conns[2].execute("SELECT current_setting('app.actor_id'), %s::int", (2,)).fetchone() == ("agent:tally", 2)
    for c in conns[1:]:
        c.close()


def test_psycopg_pool_and_pipeline(pgwarden_factory):
    """A psycopg connection pool and pipeline mode over a transaction-mode pool of 2."""
    from psycopg_pool import ConnectionPool
    w = pgwarden_factory(target_config=TXN + "pool_size = 2\npool_wait_timeout = 20")
    errors = []
    with ConnectionPool(w.dsn("user:ada"), min_size=4, max_size=4, kwargs={"autocommit": True},
                        open=True) as pool:
        def work(i):
            try:
                with pool.connection() as c:
                    with c.pipeline():
                        c.execute("SELECT 1")
                        cur = c.execute("SELECT current_setting('app.tenant_id'), %s::int", (i,))
                    assert cur.fetchone() == ("globex", i)
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(e))
        threads = [threading.Thread(target=work, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []


def test_asyncpg_statement_cache(pgwarden_factory):
    """asyncpg prepares every statement (its statement cache): those statements are prepared
    again on whichever backend a client borrows; two asyncpg pools of 3 share a pool of 2, each
    acquisition sees only its own actor (asyncpg's release reset is accepted and re-pinned)."""
    import asyncio
    import asyncpg
    w = pgwarden_factory(target_config=TXN + "pool_size = 2\npool_wait_timeout = 30")

    async def main():
        pools = [await asyncpg.create_pool(min_size=1, max_size=3, **w.asyncpg_args(a, dbname="staging"))
                 for a in ("user:jimmie", "user:ada")]
        try:
            async def one(pool, actor):
                async with pool.acquire() as conn:
                    assert await conn.fetchval("SELECT current_setting('app.actor_id')") == actor
                    assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
            await asyncio.wait_for(asyncio.gather(*[one(pools[i % 2], ("user:jimmie", "user:ada")[i % 2])
                                                    for i in range(20)]), 60)
        finally:
            for p in pools:
                await p.close()

    asyncio.run(main())


def test_protocol_prepared_statements_follow_each_client(one):
    """pool_size = 1, two clients each prepare "s1" (different text) and a statement of its own
    through the protocol (PQprepare): each executes its own after every switch, never the other's."""
    a, b = one.connect("user:jimmie"), one.connect("user:ada")
    for c, text in ((a, b"SELECT 'a:' || current_setting('app.actor_id')"),
                    (b, b"SELECT 'b:' || current_setting('app.actor_id')")):
        r = c.pgconn.prepare(b"s1", text)
        assert r.status == psycopg.pq.ExecStatus.COMMAND_OK, r.error_message
    r = a.pgconn.prepare(b"only_a", b"SELECT $1::int * 2")
    assert r.status == psycopg.pq.ExecStatus.COMMAND_OK
    for _ in range(3):
        assert a.pgconn.exec_prepared(b"s1", []).get_value(0, 0) == b"a:user:jimmie"
        assert b.pgconn.exec_prepared(b"s1", []).get_value(0, 0) == b"b:user:ada"
        assert a.pgconn.exec_prepared(b"only_a", [b"21"]).get_value(0, 0) == b"42"
        r = b.pgconn.exec_prepared(b"only_a", [b"21"])
        assert r.status == psycopg.pq.ExecStatus.FATAL_ERROR and b"prepared statement" in r.error_message
        assert a.pgconn.describe_prepared(b"only_a").nparams == 1
        ident(b)
        assert a.execute("EXECUTE s1").fetchone()[0] == "a:user:jimmie"  # SQL EXECUTE of a protocol statement
    assert ident(a)[3] == ident(b)[3]  # still one shared backend: nothing held
    # closed for good: not prepared again anywhere
    a.pgconn.close_prepared(b"only_a") if hasattr(a.pgconn, "close_prepared") else a.execute("DEALLOCATE only_a")
    ident(b)
    r = a.pgconn.exec_prepared(b"only_a", [b"1"])
    assert r.status == psycopg.pq.ExecStatus.FATAL_ERROR
    a.close()
    b.close()


def test_settings_follow_each_client_across_switches(one):
    """pool_size = 1, both connected: each client's SET, RESET, set_config(..., false) with a bound
    value, and SET inside a committed block stay its own after every switch; a rolled-back SET
    is gone; SET LOCAL ends with its transaction. Nothing holds: the backend stays shared."""
    a, b = one.connect("user:jimmie"), one.connect("user:ada", options="-c TimeZone=Asia/Tokyo")
    a.execute("SET work_mem = '5MB'")
    b.execute("SELECT set_config('statement_timeout', %s, false)", ("123s",))
    assert a.execute("SHOW statement_timeout").fetchone()[0] == "0"
    assert b.execute("SHOW work_mem").fetchone()[0] == "4MB"
    assert a.execute("SHOW work_mem").fetchone()[0] == "5MB"
    assert b.execute("SHOW statement_timeout").fetchone()[0] == "123s"
    b.execute("BEGIN")
    b.execute("SET search_path = pg_catalog, public")
    b.execute("COMMIT")
    a.execute("BEGIN")
    a.execute("SET work_mem = '7MB'")
    a.execute("ROLLBACK")
    a.execute("BEGIN")
    a.execute("SET LOCAL enable_seqscan = off")
    a.execute("COMMIT")
    for _ in range(2):
        assert b.execute("SHOW search_path").fetchone()[0] == "pg_catalog, public"
        assert b.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
        assert a.execute("SHOW work_mem").fetchone()[0] == "5MB"
        assert a.execute("SHOW search_path").fetchone()[0] != "pg_catalog, public"
        assert a.execute("SHOW enable_seqscan").fetchone()[0] == "on"
        assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")
        assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    b.execute("RESET statement_timeout")
    b.execute("SET TimeZone = 'UTC'")
    assert a.execute("SHOW statement_timeout").fetchone()[0] == "0"
    assert b.execute("SHOW statement_timeout").fetchone()[0] == "0"
    assert b.execute("SHOW TimeZone").fetchone()[0] == "UTC"
    b.execute("RESET ALL")  # back to its startup settings, as on a connection of its own
    ident(a)
    assert b.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
    assert b.execute("SHOW search_path").fetchone()[0] != "pg_catalog, public"
    assert ident(a)[3] == ident(b)[3]
    a.close()
    b.close()


class Model:
    """What one client must see, as on a connection of its own."""

    def __init__(self, actor, tenant, role):
        self.actor, self.tenant, self.role = actor, tenant, role
        self.work_mem = "4MB"
        self.pending = None   # work_mem SET inside the open block
        self.in_block = False
        self.stmts = {}       # protocol-level prepared statement name -> the value it returns
        self.temp = False     # a temp table exists (held)
        self.listening = False

    @property
    def holds(self):
        return self.in_block or self.temp or self.listening


ACTORS3 = (("user:jimmie", "acme", "bookkeeper"), ("user:ada", "globex", "bookkeeper"),
           ("agent:tally", "acme", "agent_rw"))


def check_client(c, m):
    """Everything this client sees is its own."""
    role, actor, tenant, _ = ident(c)
    assert (role, actor, tenant) == (m.role, m.actor, m.tenant)
    assert c.execute("SELECT current_setting('app.actor_id') = %s", (m.actor,)).fetchone()[0]
    assert c.execute("SHOW work_mem").fetchone()[0] == (m.pending or m.work_mem)
    assert c.execute("SELECT to_regclass('pg_temp.mine') IS NOT NULL").fetchone()[0] == m.temp
    assert c.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == int(m.listening)
    for name, value in m.stmts.items():
        r = c.pgconn.exec_prepared(name.encode(), [])
        assert r.status == psycopg.pq.ExecStatus.TUPLES_OK, r.error_message
        assert r.get_value(0, 0).decode() == value
    rows = c.execute("SELECT DISTINCT tenant FROM invoices").fetchall()
    assert rows in ([(m.tenant,)], [])


def step(rng, c, m, i):
    """One random action of this client, applied to the model too."""
    choices = ["set", "error", "prepare", "extended", "simple"]
    choices += ["commit", "rollback", "set_in_block"] if m.in_block else ["begin"]
    choices += ["drop_temp"] if m.temp else ["temp"]
    choices += ["unlisten"] if m.listening else ["listen"]
    what = rng.choice(choices)
    if what == "set":
        v = f"{rng.randint(1, 64)}MB"
        c.execute(f"SET work_mem = '{v}'")
        if m.in_block:
            m.pending = v
        else:
            m.work_mem = v
    elif what == "set_in_block":
        m.pending = f"{rng.randint(1, 64)}MB"
        c.execute("SELECT set_config('work_mem', %s, false)", (m.pending,))
    elif what == "error":
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1 / 0")
        if m.in_block:
            c.execute("ROLLBACK")
            m.in_block, m.pending = False, None
    elif what == "prepare":
        name, value = f"st{rng.randint(1, 3)}", f"{m.actor}#{i}"
        if name in m.stmts:
            c.pgconn.exec_(f"DEALLOCATE {name}".encode())
        r = c.pgconn.prepare(name.encode(), f"SELECT '{value}'::text".encode())
        assert r.status == psycopg.pq.ExecStatus.COMMAND_OK, r.error_message
        m.stmts[name] = value
    elif what == "extended":
        assert c.execute("SELECT %s::text || current_setting('app.tenant_id')", ("t:",)).fetchone()[0] == \
            "t:" + m.tenant
    elif what == "simple":
        assert c.execute("SELECT current_user").fetchone()[0] == m.role
    elif what == "begin":
        c.execute("BEGIN")
        m.in_block = True
    elif what in ("commit", "rollback"):
        c.execute(what.upper())
        if what == "commit" and m.pending:
            m.work_mem = m.pending
        m.in_block, m.pending = False, None
    elif what == "temp":
        c.execute("CREATE TEMP TABLE mine (x int)")
        m.temp = True
    elif what == "drop_temp":
        c.execute("DISCARD TEMP")
        m.temp = False
    elif what == "listen":
        c.execute("LISTEN mine")
        m.listening = True
    elif what == "unlisten":
        c.execute("UNLISTEN *")
        m.listening = False
    return what


@pytest.mark.parametrize("mode,seed,size", [("transaction", 1, 1), ("transaction", 2, 2), ("transaction", 3, 1),
                                           ("session", 4, 3)])
def test_property_random_interleavings_keep_every_client_to_itself(pgwarden_factory, mode, seed, size):
    """Seeded random interleavings of three clients' messages (simple and extended, SET,
    protocol prepared statements, BEGIN/COMMIT/ROLLBACK, temp tables, LISTEN, errors) over a
    pool of 1 or 2 connections: after every step every client sees only its own identity and
    state. A client holding a connection (open block, temp table, LISTEN) is the only one that
    acts while no other connection is free, as a real client would wait."""
    import random
    rng = random.Random(seed)
    w = pgwarden_factory(target_config=f"pool_mode = {mode}\npool_size = {size}\npool_wait_timeout = 10")
    models = [Model(*a) for a in ACTORS3]
    conns = [w.connect(m.actor) for m in models]
    for c in conns:
        c.prepare_threshold = None  # psycopg's own DEALLOCATE ALL after a ROLLBACK would drop the model's statements
    trail = []
    try:
        for i in range(40):
            holders = [k for k, m in enumerate(models) if m.holds]
            free = size - len(holders)
            candidates = holders if free <= 0 else list(range(3))
            k = rng.choice(candidates)
            m = models[k]
            what = step(rng, conns[k], m, i)
            trail.append((k, what, dict(m.stmts), m.work_mem, m.pending))
            # transaction control inside a block is kept out of the model: end the block first
            if m.in_block and what in ("temp", "drop_temp", "listen", "unlisten"):
                conns[k].execute("COMMIT")
                m.work_mem = m.pending or m.work_mem
                m.in_block, m.pending = False, None
            # every client that can borrow now checks everything it sees
            for j, (c, mj) in enumerate(zip(conns, models)):
                others_hold = len([x for n, x in enumerate(models) if x.holds and n != j])
                if mj.holds or others_hold < size:
                    if mj.in_block:
                        continue  # a check inside the block would be part of it; checked after it ends
                    try:
                        check_client(c, mj)
                    except AssertionError as e:
                        raise AssertionError(f"client {j} after {trail}: {e}") from e
            # never more holders than connections less one: release the oldest hold
            while len([x for x in models if x.holds]) >= size and size > 1 or \
                    len([x for x in models if x.holds]) > 1:
                h = next(n for n, x in enumerate(models) if x.holds)
                release(conns[h], models[h])
    finally:
        for c in conns:
            c.close()


def release(c, m):
    if m.in_block:
        c.execute("COMMIT")
        m.work_mem = m.pending or m.work_mem
        m.in_block, m.pending = False, None
    if m.temp:
        c.execute("DISCARD TEMP")
        m.temp = False
    if m.listening:
        c.execute("UNLISTEN *")
        m.listening = False


def test_reload_drains_parked_connections(pgwarden_factory, pg):
    """A changed conninfo: a connected client's parked backend (between its transactions) is
    closed within the sweep; its next transaction runs on a new one."""
    w = pgwarden_factory(target_config=TXN + "pool_size = 2")
    c = w.connect("user:ada")
    old = ident(c)[3]
    conf = w.config_text().replace("dbname=app_staging", "dbname=app_staging application_name=drained")
    assert "drained" in conf
    w.config_text = lambda: conf
    w.reload()
    assert wait_for(lambda: one_value(pg, f"SELECT count(*) FROM pg_stat_activity WHERE pid = {old}") == 0), \
        w.stderr_text()[-2000:]
    r = ident(c)
    assert r[:3] == ("bookkeeper", "user:ada", "globex") and r[3] != old
    c.close()
