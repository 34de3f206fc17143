"""test_relay.py - real clients through pgwarden: everything a PostgreSQL client does must
still work (CONTRACT §4 "Any PostgreSQL client library works"), and the session must carry
the token's identity (role, actor, tenant) so RLS does its job.

These tests pass against PostgreSQL directly too (PGWARDEN_TESTS_DIRECT=1), which is how
they are validated independently of the proxy.
"""
import asyncio
import re
import subprocess
import threading
import time
from decimal import Decimal

import psycopg
import pytest
from psycopg import errors


def psql(dsn, *args, check=True):
    """Run psql non-interactively; returns CompletedProcess (stdout/stderr text)."""
    p = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-d", dsn, *args],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"psql failed ({p.returncode}): {p.stderr}")
    return p


# --- identity as seen by the database -------------------------------------------------

def test_rls_sees_token_tenant(pgwarden):
    """acme's actor sees only acme rows on prod; globex's only globex rows."""
    with pgwarden.connect("user:jimmie", dbname="prod") as c:
        rows = c.execute("SELECT DISTINCT tenant FROM invoices").fetchall()
        assert rows == [("acme",)]
        assert c.execute("SELECT count(*) FROM invoices").fetchone()[0] == 3
    with pgwarden.connect("user:ada", dbname="prod") as c:
        assert c.execute("SELECT tenant, count(*) FROM invoices GROUP BY 1").fetchall() == [("globex", 2)]


def test_pinned_role_and_settings(pgwarden):
    with pgwarden.connect("user:jimmie", dbname="prod") as c:
        row = c.execute("SELECT current_user, current_setting('app.actor_id'), "
                        "current_setting('app.tenant_id'), session_user").fetchone()
        assert row[:3] == ("bookkeeper", "user:jimmie", "acme")
        assert row[3] == "pgwarden_svc"
    with pgwarden.connect("agent:tally", dbname="staging") as c:
        assert c.execute("SELECT current_user").fetchone()[0] == "agent_rw"


def test_readonly_function_sees_identity(pgwarden):
    """A read-only user-defined SQL function (allowed on prod, CONTRACT §4) sees the pins."""
    with pgwarden.connect("user:jimmie", dbname="prod") as c:
        assert c.execute("SELECT * FROM whoami()").fetchone() == ("user:jimmie", "acme", "bookkeeper")
        assert c.execute("SELECT tenant_total()").fetchone()[0] > 0


def test_tenantless_actor_sees_nothing(pgwarden):
    """tenant '-' in the token: no tenant pinned, the RLS policy matches no row."""
    with pgwarden.connect("user:notenant", dbname="prod") as c:
        assert c.execute("SELECT count(*) FROM invoices").fetchone()[0] == 0


def test_prod_is_read_only_upstream(pgwarden):
    with pgwarden.connect(dbname="prod") as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    with pgwarden.connect(dbname="staging") as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone()[0] == "off"


# --- psql -------------------------------------------------------------------------------

def test_psql_queries(pgwarden):
    dsn = pgwarden.dsn("user:jimmie", dbname="prod")
    out = psql(dsn, "-c", "SELECT count(*) FROM invoices", "-c", "SELECT current_user").stdout
    assert out.split() == ["3", "bookkeeper"]


def test_psql_script_with_transaction_and_copy(pgwarden, tmp_path):
    script = tmp_path / "s.sql"
    script.write_text(
        "BEGIN;\n"
        "CREATE TEMP TABLE t (a int, b text);\n"
        "\\copy t FROM STDIN\n1\tone\n2\ttwo\n\\.\n"
        "SELECT sum(a) FROM t;\n"
        "INSERT INTO invoices (tenant, amount, note) VALUES ('acme', 1, 'psql') RETURNING tenant;\n"
        "ROLLBACK;\n"
        "SELECT count(*) FROM invoices;\n")
    out = psql(pgwarden.dsn(dbname="staging"), "-q", "-f", str(script)).stdout.split()
    assert out == ["3", "acme", "3"]


def test_psql_error_then_continue(pgwarden):
    p = psql(pgwarden.dsn(dbname="staging"), "-v", "ON_ERROR_STOP=0",
             "-c", "SELECT 1/0", "-c", "SELECT 42", check=False)
    assert "division by zero" in p.stderr
    assert p.stdout.strip() == "42"


# --- psycopg ----------------------------------------------------------------------------

def test_simple_protocol_multi_statement(pgwarden):
    """ClientCursor sends a Query message (simple protocol); several statements in one."""
    with pgwarden.connect() as c:
        cur = psycopg.ClientCursor(c)
        cur.execute("SELECT 1; SELECT 'two', 2; SELECT tenant FROM invoices ORDER BY id LIMIT 1")
        assert cur.fetchall() == [(1,)]
        assert cur.nextset()
        assert cur.fetchall() == [("two", 2)]
        assert cur.nextset()
        assert cur.fetchall() == [("acme",)]
        assert not cur.nextset()
        cur.execute("SELECT %s::text || %s", ("a'b", "c"))  # client-side quoting
        assert cur.fetchone() == ("a'bc",)


def test_server_error_keeps_session(pgwarden):
    with pgwarden.connect(autocommit=False) as c:
        with pytest.raises(errors.DivisionByZero):
            c.execute("SELECT 1/0")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        assert c.execute("SELECT 7").fetchone() == (7,)


def test_extended_protocol_params(pgwarden):
    with pgwarden.connect() as c:
        row = c.execute("SELECT %s::int + %s::int, %s::text, %s::numeric, %s::bytea",
                        (40, 2, "héllo\u2603", "12.50", b"\x00\x01\xff")).fetchone()
        assert row == (42, "héllo\u2603", Decimal("12.50"), b"\x00\x01\xff")
        # NULLs and binary format both ways
        cur = c.cursor(binary=True)
        assert cur.execute("SELECT %s::int, %b::text", (None, "x")).fetchone() == (None, "x")
        rows = c.execute("SELECT id, amount FROM invoices WHERE amount > %s ORDER BY id", (80,)).fetchall()
        assert [r[0] for r in rows] == [1, 2]


def test_named_prepared_statements(pgwarden):
    with pgwarden.connect() as c:
        for i in range(8):  # psycopg prepares after prepare_threshold (5) executions
            assert c.execute("SELECT %s::int * 2", (i,)).fetchone() == (i * 2,)
        for i in range(3):
            assert c.execute("SELECT count(*) FROM invoices WHERE amount > %s", (i,),
                             prepare=True).fetchone() == (3,)
        names = c.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
        assert names >= 1
        c.execute("DEALLOCATE ALL")


def test_large_values_both_ways(pgwarden):
    blob = bytes(range(256)) * 8192  # 2 MB
    with pgwarden.connect() as c:
        got = c.execute("SELECT %s::bytea, length(repeat('x', 3000000))", (blob,)).fetchone()
        assert got == (blob, 3000000)
        assert len(c.execute("SELECT repeat('y', 5000000)").fetchone()[0]) == 5000000


def test_pipeline_mode(pgwarden):
    with pgwarden.connect() as c:
        with c.pipeline():
            curs = [c.execute("SELECT %s::int", (i,)) for i in range(20)]
            cur_t = c.execute("SELECT tenant FROM invoices WHERE id = %s", (1,))
        assert [cur.fetchone()[0] for cur in curs] == list(range(20))
        assert cur_t.fetchone() == ("acme",)


def test_pipeline_error_mid_pipeline(pgwarden):
    """An error inside a pipeline fails the rest up to the Sync; the session goes on."""
    with pgwarden.connect() as c:
        with pytest.raises(errors.DivisionByZero):
            with c.pipeline() as p:
                c.execute("SELECT 1")
                c.execute("SELECT 1/0")
                c.execute("SELECT 3")
                p.sync()
        with c.pipeline():
            cur = c.execute("SELECT 4")
        assert cur.fetchone() == (4,)


def test_copy_out(pgwarden):
    with pgwarden.connect(dbname="prod") as c, c.cursor() as cur:
        with cur.copy("COPY (SELECT id, tenant FROM invoices ORDER BY id) TO STDOUT") as cp:
            rows = [tuple(r) for r in cp.rows()]
        assert rows == [("1", "acme"), ("2", "acme"), ("3", "acme")]
        with cur.copy("COPY (SELECT g, md5(g::text) FROM generate_series(1, 50000) g) TO STDOUT") as cp:
            n = sum(1 for _ in cp)
        assert n > 0
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_copy_in(pgwarden):
    with pgwarden.connect(dbname="staging") as c, c.cursor() as cur:
        cur.execute("CREATE TEMP TABLE ci (a int, b text)")
        with cur.copy("COPY ci (a, b) FROM STDIN") as cp:
            for i in range(20000):
                cp.write_row((i, f"row {i}"))
        assert cur.execute("SELECT count(*), sum(a) FROM ci").fetchone() == (20000, sum(range(20000)))
        # bad data: the server's error comes back, the session survives
        with pytest.raises(errors.InvalidTextRepresentation):
            with cur.copy("COPY ci (a) FROM STDIN") as cp:
                cp.write(b"1\nnot-a-number\n")
        assert cur.execute("SELECT count(*) FROM ci").fetchone() == (20000,)


def test_copy_in_binary(pgwarden):
    with pgwarden.connect(dbname="staging") as c, c.cursor() as cur:
        cur.execute("CREATE TEMP TABLE cb (a int, b bytea)")
        with cur.copy("COPY cb (a, b) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int4", "bytea"])
            for i in range(100):
                cp.write_row((i, bytes([i % 256]) * 1000))
        assert cur.execute("SELECT count(*), sum(length(b)) FROM cb").fetchone() == (100, 100000)


def test_listen_notify(pgwarden):
    got = []
    with pgwarden.connect() as listener, pgwarden.connect("user:ada") as sender:
        listener.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
        listener.execute("LISTEN pgw_chan")
        sender.execute("NOTIFY pgw_chan, 'hello'")
        sender.execute("SELECT pg_notify('pgw_chan', 'world')")
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            listener.execute("SELECT 1")  # notifications arrive with the next server message
            time.sleep(0.05)
        assert got == [("pgw_chan", "hello"), ("pgw_chan", "world")]


def test_notify_while_idle_arrives_via_generator(pgwarden):
    """A notification for an idle session is pushed by the server unprompted: the proxy must
    relay it without waiting for the client to send something."""
    with pgwarden.connect() as listener, pgwarden.connect() as sender:
        listener.execute("LISTEN pgw_idle")
        result = []

        def recv():
            for n in listener.notifies():
                result.append(n.payload)
                break

        t = threading.Thread(target=recv, daemon=True)
        t.start()
        time.sleep(0.2)
        sender.execute("NOTIFY pgw_idle, 'pushed'")
        t.join(5)
        assert result == ["pushed"]


def test_cancel(pgwarden):
    with pgwarden.connect() as c:
        t = threading.Timer(0.5, c.cancel)
        t.start()
        start = time.monotonic()
        with pytest.raises(errors.QueryCanceled):
            c.execute("SELECT pg_sleep(20)")
        assert time.monotonic() - start < 10
        t.join()
        assert c.execute("SELECT 'after cancel'").fetchone() == ("after cancel",)


def test_cancel_does_not_hit_other_session(pgwarden):
    """Cancelling one session's query must not cancel another session's."""
    with pgwarden.connect() as a, pgwarden.connect() as b:
        out = {}

        def run_b():
            out["b"] = b.execute("SELECT pg_sleep(1.5), 'b done'").fetchone()[1]

        tb = threading.Thread(target=run_b)
        tb.start()
        threading.Timer(0.4, a.cancel).start()
        with pytest.raises(errors.QueryCanceled):
            a.execute("SELECT pg_sleep(20)")
        tb.join(10)
        assert out.get("b") == "b done"


def test_transaction_status_relayed(pgwarden):
    with pgwarden.connect(dbname="staging", autocommit=False) as c:
        c.execute("INSERT INTO invoices (tenant, amount, note) VALUES ('acme', 5, 'tx test')")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        c.rollback()
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert c.execute("SELECT count(*) FROM invoices WHERE note = 'tx test'").fetchone() == (0,)


def test_parameter_status_and_encoding(pgwarden):
    with pgwarden.connect() as c:
        assert c.info.parameter_status("server_version").startswith("15")
        assert c.info.encoding == "utf-8"
        assert c.execute("SELECT %s::text", ("ünïcødé ✓",)).fetchone() == ("ünïcødé ✓",)


def test_application_name_honoured(pgwarden):
    with pgwarden.connect(application_name="pgw-test-app") as c:
        assert c.execute("SHOW application_name").fetchone() == ("pgw-test-app",)
        me = c.execute("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        assert me.fetchone() == ("pgw-test-app",)


def test_concurrent_sessions(pgwarden):
    errs = []

    def worker(actor, tenant):
        try:
            with pgwarden.connect(actor, dbname="prod") as c:
                for _ in range(30):
                    assert c.execute("SELECT DISTINCT tenant FROM invoices").fetchall() == [(tenant,)]
        except Exception as e:  # noqa: BLE001 - collected and re-raised below
            errs.append(e)

    ts = [threading.Thread(target=worker, args=(a, t))
          for a, t in [("user:jimmie", "acme"), ("user:ada", "globex")] * 4]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errs, errs


# --- pgbench ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pgbench_tables(pg):
    """pgbench tables in both databases, made directly as superuser, usable by the app roles."""
    for db in ("app", "app_staging"):
        subprocess.run(["pgbench", "-i", "-s", "1", "-n", "-q", pg.admin_dsn(db)], check=True,
                       capture_output=True, stdin=subprocess.DEVNULL)
        pg.sql("GRANT SELECT, INSERT, UPDATE, DELETE ON pgbench_accounts, pgbench_branches, "
               "pgbench_tellers, pgbench_history TO bookkeeper, agent_rw", db)


def pgbench(dsn, *args):
    p = subprocess.run(["pgbench", "-n", *args, dsn], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    m = re.search(r"number of transactions actually processed: (\d+)/(\d+)", out)
    assert m and m.group(1) == m.group(2), out
    m = re.search(r"number of failed transactions: (\d+)", out)
    assert m is None or m.group(1) == "0", out
    return out


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_tpcb_staging(pgwarden, pgbench_tables, mode):
    pgbench(pgwarden.dsn(dbname="staging"), "-M", mode, "-c", "4", "-j", "2", "-t", "25")


@pytest.mark.parametrize("mode", ["simple", "prepared"])
def test_pgbench_select_only_prod(pgwarden, pgbench_tables, mode):
    pgbench(pgwarden.dsn(dbname="prod"), "-S", "-M", mode, "-c", "2", "-t", "100")


# --- asyncpg ----------------------------------------------------------------------------

def test_asyncpg(pgwarden):
    import asyncpg

    async def main():
        conn = await asyncpg.connect(**pgwarden.asyncpg_args("user:jimmie", dbname="staging"))
        try:
            assert await conn.fetchval("SELECT current_user") == "bookkeeper"
            rows = await conn.fetch("SELECT id, tenant FROM invoices WHERE amount > $1 ORDER BY id", 80)
            assert [(r["id"], r["tenant"]) for r in rows] == [(1, "acme"), (2, "acme")]
            stmt = await conn.prepare("SELECT $1::int + $2::int")
            assert [await stmt.fetchval(i, 1) for i in range(5)] == [1, 2, 3, 4, 5]
            tr = conn.transaction()
            await tr.start()
            await conn.execute("INSERT INTO invoices (tenant, amount, note) VALUES ($1, $2, 'apg')",
                               "acme", 3)
            assert await conn.fetchval("SELECT count(*) FROM invoices WHERE note = 'apg'") == 1
            await tr.rollback()
            assert await conn.fetchval("SELECT count(*) FROM invoices WHERE note = 'apg'") == 0
            # executemany uses a pipelined extended-protocol batch
            await conn.execute("CREATE TEMP TABLE am (a int)")
            await conn.executemany("INSERT INTO am VALUES ($1)", [(i,) for i in range(50)])
            assert await conn.fetchval("SELECT count(*) FROM am") == 50
            # copy_records_to_table uses COPY FROM STDIN binary
            await conn.copy_records_to_table("am", records=[(i,) for i in range(10)])
            assert await conn.fetchval("SELECT count(*) FROM am") == 60
            # asyncpg's pool resets sessions with RESET ALL / DISCARD-like statements
            await conn.reset()
            assert await conn.fetchval("SELECT current_setting('app.tenant_id')") == "acme"
        finally:
            await conn.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_asyncpg_pool(pgwarden):
    import asyncpg

    async def main():
        pool = await asyncpg.create_pool(min_size=2, max_size=4, **pgwarden.asyncpg_args(dbname="prod"))
        try:
            async def one(i):
                async with pool.acquire() as c:
                    return await c.fetchval("SELECT count(*) + $1 FROM invoices", i)
            got = await asyncio.gather(*(one(i) for i in range(20)))
            assert got == [3 + i for i in range(20)]
        finally:
            await pool.close()

    asyncio.run(asyncio.wait_for(main(), 60))
