"""Upstream pooling, session mode (CONTRACT §7): clients share a few upstream connections, and
nothing of one client (identity, settings, prepared statements, temp tables, LISTEN, locks,
cursors, random seed) reaches the next one on the same connection."""
import json
import socket
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import DIRECT
from pgserver import free_port

pytestmark = pytest.mark.skipif(DIRECT, reason="pooling is pgwarden's")

ONE = "pool_size = 1\npool_wait_timeout = 2"


def svc_pids(pg, db="app_staging"):
    """Client backends of pgwarden's service login on a database (any pgwarden's)."""
    return {r[0] for r in pg.sql(f"SELECT pid FROM pg_stat_activity WHERE usename = 'pgwarden_svc' "
                                 f"AND datname = '{db}' AND backend_type = 'client backend'")}


def svc_backends(pg, db="app_staging", besides=frozenset()):
    """How many of them are not in 'besides' (the backends other pgwardens of the run keep)."""
    return len(svc_pids(pg, db) - besides)


def one_value(pg, query):
    rows = pg.sql(query)
    return rows[0][0] if rows else None


def wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def ident(c):
    return c.execute("SELECT current_user, current_setting('app.actor_id'), current_setting('app.tenant_id'), "
                     "pg_backend_pid()").fetchone()


@pytest.fixture
def one(pgwarden_factory):
    """A pgwarden whose targets share a single upstream connection each."""
    return pgwarden_factory(target_config=ONE)


def test_login_costs_no_backend(pgwarden_factory, pg):
    """Logged-in clients that send nothing hold no backend; a pool keeps what it opened."""
    others = svc_pids(pg)
    w = pgwarden_factory(target_config="pool_size = 3")
    first = w.connect()  # a cold pool opens one connection to learn the server's parameters
    assert svc_backends(pg, besides=others) <= 1
    clients = [w.connect() for _ in range(30)]
    assert svc_backends(pg, besides=others) <= 1
    for c in clients + [first]:
        c.close()


def test_identity_and_state_never_cross(one, pg):
    """pool_size = 1: actors with different roles and tenants take turns on one backend;
    after every switch each sees its own identity and rows, and nothing the previous one left."""
    seen_pids = set()
    for round_ in range(2):
        for actor, tenant in (("user:jimmie", "acme"), ("user:ada", "globex"), ("agent:tally", "acme")):
            with one.connect(actor) as c:
                role, a, t, pid = ident(c)
                seen_pids.add(pid)
                assert (a, t) == (actor, tenant)
                assert role == ("agent_rw" if actor == "agent:tally" else "bookkeeper")
                assert c.execute("SELECT DISTINCT tenant FROM invoices").fetchall() in ([(tenant,)], [])
                # nothing of the previous client
                assert c.execute("SHOW work_mem").fetchone()[0] == "4MB"
                assert c.execute("SHOW TimeZone").fetchone()[0] != "Pacific/Chatham"
                assert c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
                assert c.execute("SELECT to_regclass('pg_temp.leftover')").fetchone()[0] is None
                assert c.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 0
                assert c.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                 "AND pid = pg_backend_pid()").fetchone()[0] == 0
                assert c.execute("SELECT count(*) FROM pg_cursors").fetchone()[0] == 0
                # leave everything behind
                c.execute("SET work_mem = '7MB'")
                c.execute("SET TimeZone = 'Pacific/Chatham'")
                c.execute("PREPARE leak AS SELECT 1")
                c.execute("CREATE TEMP TABLE leftover (x int)")
                c.execute("LISTEN leaky")
                c.execute("SELECT pg_advisory_lock(42)")
                c.execute("BEGIN")
                c.execute("DECLARE held CURSOR WITH HOLD FOR SELECT 1")
                c.execute("COMMIT")
    assert len(seen_pids) == 1, one.stderr_text()[-3000:]


def test_temp_table_cannot_shadow_a_real_table(one):
    """A temp table named like a real one, left behind, would shadow it for the next client."""
    with one.connect("user:jimmie") as c:
        n = c.execute("SELECT count(*) FROM invoices").fetchone()[0]
        c.execute("CREATE TEMP TABLE invoices (tenant text)")
        assert c.execute("SELECT count(*) FROM invoices").fetchone()[0] == 0
    with one.connect("user:jimmie") as c:
        assert c.execute("SELECT count(*) FROM invoices").fetchone()[0] == n


def test_reset_all_does_not_drop_role_and_next_client_is_own(one):
    """RESET ALL leaves role (GUC_NO_RESET_ALL): pgwarden re-pins; the next client is itself."""
    with one.connect("agent:tally") as c:
        c.execute("RESET ALL")
        assert ident(c)[:3] == ("agent_rw", "agent:tally", "acme")
        c.execute("DISCARD ALL")
        assert ident(c)[:3] == ("agent_rw", "agent:tally", "acme")
    with one.connect("user:ada") as c:
        assert ident(c)[:3] == ("bookkeeper", "user:ada", "globex")


def test_set_config_with_bind_parameters_does_not_leak(one):
    """set_config(..., false) answers SELECT, not SET, and with a bound value no text scan sees it."""
    with one.connect("user:jimmie") as c:
        c.execute("SELECT set_config('statement_timeout', %s, false)", ("123s",))
        assert c.execute("SHOW statement_timeout").fetchone()[0] == "123s"
    with one.connect("user:ada") as c:
        assert c.execute("SHOW statement_timeout").fetchone()[0] == "0"


def test_set_in_a_block_persists_after_commit_but_not_to_the_next_client(one):
    with one.connect("user:jimmie") as c:
        c.execute("BEGIN")
        c.execute("SET work_mem = '9MB'")
        c.execute("COMMIT")
        assert c.execute("SHOW work_mem").fetchone()[0] == "9MB"  # as on a connection of its own
    with one.connect("user:ada") as c:
        assert c.execute("SHOW work_mem").fetchone()[0] == "4MB"


def test_sql_prepare_does_not_leak(one):
    with one.connect("user:jimmie") as c:
        c.execute("PREPARE mine AS SELECT 'jimmie'")
    with one.connect("user:ada") as c:
        assert c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
        with pytest.raises(psycopg.Error):
            c.execute("EXECUTE mine")


def test_setseed_state_does_not_leak(one):
    """DISCARD ALL keeps the random seed: the next client must not predict random()."""
    with one.connect("user:jimmie") as c:
        c.execute("SELECT setseed(0.5)")
        predicted = c.execute("SELECT random()").fetchone()[0]
        c.execute("SELECT setseed(0.5)")
    with one.connect("user:ada") as c:
        assert c.execute("SELECT random()").fetchone()[0] != predicted


def test_startup_settings_follow_the_client(one):
    """Allowlisted startup parameters are the client's own on a shared backend, and RESET ALL
    brings them back, as on a connection of its own."""
    with one.connect("user:jimmie", options="-c TimeZone=Asia/Tokyo", application_name="app-one") as c:
        assert c.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
        assert c.execute("SHOW application_name").fetchone()[0] == "app-one"
        c.execute("SET TimeZone = 'UTC'")
        c.execute("RESET ALL")
        assert c.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
        assert c.info.parameter_status("application_name") == "app-one"
    with one.connect("user:ada") as c:
        assert c.execute("SHOW TimeZone").fetchone()[0] != "Asia/Tokyo"
        assert c.execute("SHOW application_name").fetchone()[0] != "app-one"


def test_idle_pooled_connection_is_nobody(one, pg):
    """Between clients the backend carries no role and empty pinned settings."""
    with one.connect("user:jimmie") as c:
        pid = ident(c)[3]
    assert wait_for(lambda: one_value(pg, f"SELECT state FROM pg_stat_activity WHERE pid = {pid}") == "idle")
    # what the reset left, seen from the server: the last statement is the reset's own
    q = one_value(pg, f"SELECT query FROM pg_stat_activity WHERE pid = {pid}")
    assert "setseed" in q


def test_abrupt_disconnect_mid_transaction(one, pg):
    """A client gone inside a transaction: nothing commits, the connection is not lent again
    dirty; the next client gets a clean one."""
    c = one.connect("agent:tally")
    c.execute("BEGIN")
    c.execute("UPDATE invoices SET note = 'pool-abrupt' WHERE id = (SELECT min(id) FROM invoices)")
    c.pgconn.socket and socket.socket(fileno=c.pgconn.socket).shutdown(socket.SHUT_RDWR)
    try:
        c.close()
    except Exception:
        pass
    with one.connect("agent:tally") as c2:
        assert c2.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert c2.execute("SELECT count(*) FROM invoices WHERE note = 'pool-abrupt'").fetchone()[0] == 0
        assert ident(c2)[:3] == ("agent_rw", "agent:tally", "acme")


def test_pool_exhaustion_then_recovery(pgwarden_factory):
    """pool_size = 1: a second client's statement waits pool_wait_timeout then fails 53300
    with a pgwarden: message; its session goes on and works once the connection is free."""
    w = pgwarden_factory(target_config="pool_size = 1\npool_wait_timeout = 1")
    a = w.connect("user:jimmie")
    a.execute("SELECT 1")  # session mode: a holds the connection until it disconnects
    b = w.connect("user:ada")
    t0 = time.monotonic()
    with pytest.raises(psycopg.errors.TooManyConnections) as e:
        b.execute("SELECT 1")
    assert 0.8 < time.monotonic() - t0 < 5
    assert str(e.value).startswith("pgwarden:")
    with pytest.raises(psycopg.errors.TooManyConnections):  # extended protocol too
        b.execute("SELECT %s::int", (1,))
    a.close()
    assert b.execute("SELECT current_setting('app.tenant_id')").fetchone() == ("globex",)
    b.close()


def test_waiters_are_served_first_come_first_served(pgwarden_factory):
    w = pgwarden_factory(target_config="pool_size = 1\npool_wait_timeout = 10")
    a = w.connect("user:jimmie")
    a.execute("SELECT 1")
    order = []

    def client(i):
        with w.connect("user:ada") as c:
            c.execute("SELECT 1")
            order.append(i)

    threads = []
    for i in range(3):
        threads.append(threading.Thread(target=client, args=(i,)))
        threads[-1].start()
        time.sleep(0.3)
    a.close()
    for t in threads:
        t.join(20)
    assert order == [0, 1, 2]


def test_cancel_reaches_only_its_own_query(pgwarden_factory):
    """Two clients on a pool of two: a cancel stops one client's query, never the other's;
    a late cancel (after the query ended and the client left) hits no later borrower."""
    w = pgwarden_factory(target_config="pool_size = 2")
    a, b = w.connect("user:jimmie"), w.connect("user:ada")
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
    # late: cancel after the statement is done, then leave; the next borrower is untouched
    a.execute("SELECT 1")
    a.cancel()
    a.close()
    with w.connect("user:jimmie") as c:
        assert c.execute("SELECT pg_sleep(0.5), 'ok'").fetchone()[1] == "ok"
    b.close()


def test_many_clients_on_a_small_pool(pgwarden_factory, pg):
    """60 concurrent clients on a pool of 4: none fails, at most 4 backends ever."""
    others = svc_pids(pg)
    w = pgwarden_factory(target_config="pool_size = 4\npool_wait_timeout = 60")
    errors, peak = [], [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], svc_backends(pg, besides=others))
            time.sleep(0.05)

    def client(i):
        actor = ("user:jimmie", "user:ada")[i % 2]
        try:
            with w.connect(actor) as c:
                for _ in range(3):
                    assert c.execute("SELECT current_setting('app.actor_id')").fetchone()[0] == actor
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(e))

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    watcher.join()
    assert errors == []
    assert 1 <= peak[0] <= 4


def test_reload_with_changed_conninfo_drains(pgwarden_factory, pg):
    """A changed conninfo: idle connections close, new borrows get new ones."""
    w = pgwarden_factory(target_config="pool_size = 2")
    with w.connect() as c:
        old = ident(c)[3]
    conf = w.config_text().replace("dbname=app_staging", "dbname=app_staging application_name=drained")
    assert "drained" in conf
    w.config_text = lambda: conf
    w.reload()
    assert wait_for(lambda: one_value(pg, f"SELECT count(*) FROM pg_stat_activity WHERE pid = {old}") == 0), w.stderr_text()[-2000:]
    with w.connect() as c:
        assert ident(c)[3] != old


@pytest.mark.parametrize("line", ["pool_mode = statement", "pool_size = 0"])
def test_unsupported_pool_settings_are_config_errors(pg, line):
    """Statement mode is not built, and a pool needs a size: a clear FILE:LINE error, never ignored."""
    import subprocess
    from warden import PGWARDEN, Warden
    w = Warden(pg, target_config=line)
    try:
        w.write_files()
        r = subprocess.run([str(PGWARDEN), "--check", "-c", str(w.config_path)], capture_output=True, text=True)
        assert r.returncode == 1
        assert f"{w.config_path}:" in r.stdout + r.stderr
        assert line.split()[0] in r.stdout + r.stderr
    finally:
        w.cleanup()


def test_pools_view_and_metrics(pgwarden_factory):
    port = free_port()
    w = pgwarden_factory(extra_config=f"admin_listen = 127.0.0.1:{port}", target_config="pool_size = 3")
    with w.connect() as c:
        c.execute("SELECT 1")
        pools = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/pools").read())
        staging = [p for p in pools if p["target"] == "staging"][0]
        assert staging["active"] == 1 and staging["pool_size"] == 3
    assert wait_for(lambda: [p for p in json.loads(urllib.request.urlopen(
        f"http://127.0.0.1:{port}/pools").read()) if p["target"] == "staging"][0]["idle"] == 1)
    m = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    assert 'pgwarden_pool_connections{target="staging",state="idle"} 1' in m
    assert 'pgwarden_pool_waiting_clients{target="staging"} 0' in m
    assert 'pgwarden_pool_wait_seconds_count{target="staging"} 1' in m


def test_read_only_default_follows_each_borrower(pgwarden_factory):
    """Production: one actor has an open window and writes, the next on the same backend has
    none and is read-only again (the pin carries the default as of each borrow)."""
    from datetime import datetime, timedelta, timezone
    now = datetime.now(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    window = (f"[window.pool-open]\ntarget = prod\nstart = {(now - timedelta(hours=1)).strftime(fmt)}\n"
              f"end = {(now + timedelta(hours=1)).strftime(fmt)}\napproved_by = ops:tests\n"
              f"reason = pool test\nactors = user:jimmie\n")
    w = pgwarden_factory(extra_config=window, target_config=ONE)
    for _ in range(2):
        with w.connect("user:jimmie", dbname="prod") as c:
            assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"
            pid = ident(c)[3]
        with w.connect("user:ada", dbname="prod") as c:
            assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
            assert ident(c)[3] == pid  # the same backend
            with pytest.raises(psycopg.Error):
                c.execute("UPDATE invoices SET note = note WHERE id = -1")


def test_statement_records_carry_backend_pid(pgwarden_factory):
    from audit_util import records
    w = pgwarden_factory(target_config=ONE)
    with w.connect("user:jimmie") as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    with w.connect("user:ada") as c:
        c.execute("SELECT 1")
    recs = [r for r in records(w.audit_path) if r["event"] == "statement"]
    assert [r["backend_pid"] for r in recs] == [pid, pid]
    assert all("backend_pid" not in r for r in records(w.audit_path) if r["event"] == "result")


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_on_a_small_pool(pgwarden_factory, pg, mode):
    """pgbench, 8 clients and a new connection per transaction (-C): 0 failures. A pool of 2 for
    simple and extended (clients wait their turn); prepared mode prepares with a blocking call
    (PQprepare) that stalls pgbench's whole thread while one client waits for a connection the
    others hold: any session-mode pooler deadlocks there, so it gets a pool as large as -c."""
    import re
    import subprocess
    size = 8 if mode == "prepared" else 2
    others = svc_pids(pg)
    w = pgwarden_factory(target_config=f"pool_size = {size}\npool_wait_timeout = 60")
    p = subprocess.run(["pgbench", "-n", "-C", "-M", mode, "-c", "8", "-j", "2", "-t", "20", "-f", "/dev/stdin",
                        w.dsn(dbname="staging")], input="SELECT count(*) FROM invoices;\n",
                       capture_output=True, text=True, timeout=180)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    assert m and m.group(1) == m.group(2) == "160", out
    assert svc_backends(pg, besides=others) <= size


def test_asyncpg_pools(pgwarden_factory):
    """Client-side pools over pgwarden's pool: two asyncpg pools (their RESET ALL / UNLISTEN on
    release is accepted and re-pinned), 20 acquisitions; each sees only its own actor."""
    import asyncio
    import asyncpg
    # session mode: each client-side connection keeps its backend while it lives, so size for both pools
    w = pgwarden_factory(target_config="pool_size = 6")

    async def main():
        pools = [await asyncpg.create_pool(min_size=1, max_size=3, **w.asyncpg_args(a, dbname="staging"))
                 for a in ("user:jimmie", "user:ada")]
        try:
            async def one(pool, actor):
                async with pool.acquire() as conn:
                    assert await conn.fetchval("SELECT current_setting('app.actor_id')") == actor
                    await conn.execute("SET work_mem = '5MB'")
            # each asyncpg pool holds at most 3 of our sessions
            await asyncio.wait_for(asyncio.gather(*[one(pools[i % 2], ("user:jimmie", "user:ada")[i % 2])
                                                    for i in range(20)]), 60)
        finally:
            for p in pools:
                await p.close()

    asyncio.run(main())
