"""Session-mode pooling at scale (CONTRACT §7): thousands of clients on a pool of 10, idle clients
that cost no backend and little memory, a reload under load, client-side pools (psycopg_pool,
asyncpg) and pgbench in every protocol mode through pgwarden: no failure anywhere."""
import asyncio
import re
import subprocess
import threading
import time

import pytest

from conftest import DIRECT
from pool_util import Admin, pool_pids, raise_nofile, svc_pids, wait_for
from warden import SANITIZED

pytestmark = pytest.mark.skipif(DIRECT, reason="pooling is pgwarden's")

ACTORS = ("user:jimmie", "user:ada")


class PeakWatch:
    """Polls pg_stat_activity for pgwarden's backends on app_staging (besides `others`) and keeps
    the peak: pool connections, and every service-login backend (catalog and health probes too)."""

    def __init__(self, pg, others_pool, others_svc):
        self.pg = Admin(pg)  # its own connection, opened before the clients' thousands of sockets
        self.others_pool, self.others_svc = others_pool, others_svc
        self.peak_pool = self.peak_svc = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak_pool = max(self.peak_pool, len(pool_pids(self.pg) - self.others_pool))
            self.peak_svc = max(self.peak_svc, len(svc_pids(self.pg) - self.others_svc))
            time.sleep(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)
        self.pg.close()


def test_2000_concurrent_clients_on_a_pool_of_10(pgwarden_factory, pg):
    """2,000 clients log in and stay logged in (0 backends for them), then all run their
    statements at once on a pool of 10: 0 failures, each sees only its own actor, and never more
    than 10 pool backends (plus pgwarden's own catalog and health connections) exist."""
    import asyncpg
    n = 2000
    assert raise_nofile(n + 1000) >= n + 200, "the test needs more open files than the hard limit allows"
    others_pool, others_svc = pool_pids(pg), svc_pids(pg)
    w = pgwarden_factory(target_config="pool_size = 10\npool_wait_timeout = 120")
    admin = Admin(pg)
    failures, served = [], []

    async def main():
        connecting = asyncio.Semaphore(50)  # a ramp, as applications do: below the per-address startup quota

        async def login(i):
            async with connecting:
                return await asyncpg.connect(**w.asyncpg_args(ACTORS[i % 2]), timeout=60)

        first = await login(0)  # a cold pool opens a connection to learn the server's parameters
        await first.close()
        assert wait_for(lambda: len(pool_pids(admin) - others_pool) == 1, 5)
        warm = pool_pids(admin)
        conns = await asyncio.gather(*[login(i) for i in range(n)])
        assert pool_pids(admin) == warm  # 2,000 logged in: not one backend more
        start = asyncio.Event()

        async def work(i, c):
            await start.wait()
            try:
                actor, pid = await c.fetchrow("SELECT current_setting('app.actor_id'), pg_backend_pid()")
                assert actor == ACTORS[i % 2]
                assert await c.fetchval("SELECT count(*) FROM invoices WHERE id > $1", 0) >= 0
                served.append(pid)
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                failures.append(repr(e))
            finally:
                await c.close()

        tasks = [asyncio.create_task(work(i, c)) for i, c in enumerate(conns)]
        start.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 150)

    try:
        with PeakWatch(pg, others_pool, others_svc) as watch:
            asyncio.run(main())
    finally:
        admin.close()
    assert failures == [], failures[:5]
    assert len(served) == n
    assert 1 <= watch.peak_pool <= 10, watch.peak_pool
    assert watch.peak_svc <= 10 + 2, watch.peak_svc  # + catalog loads and health probes
    assert len(set(served)) <= 10


def test_1000_idle_clients_hold_no_backend_and_little_memory(pgwarden_factory, pg):
    """1,000 logged-in clients that send nothing: 0 backends for them, and at most 2.5 KiB of
    pgwarden's memory each."""
    import asyncpg
    n = 1000
    raise_nofile(n + 500)
    admin = Admin(pg)
    w = pgwarden_factory(target_config="pool_size = 10")

    async def main():
        connecting = asyncio.Semaphore(50)

        async def login(i):
            async with connecting:
                return await asyncpg.connect(**w.asyncpg_args(ACTORS[i % 2]), timeout=60)

        warm = await asyncio.gather(*[login(i) for i in range(50)])  # allocator and pool warm
        await warm[0].fetchval("SELECT 1")
        for c in warm:
            await c.close()
        assert wait_for(lambda: len(pool_pids(admin)) > 0, 5)
        before = pool_pids(admin)
        rss0 = w.rss_kb()
        conns = await asyncio.gather(*[login(i) for i in range(n)])
        try:
            per_client = (w.rss_kb() - rss0) * 1024 / n
            assert pool_pids(admin) == before  # not one backend more
            return per_client
        finally:
            for c in conns:
                await c.close()

    try:
        per_client = asyncio.run(main())
    finally:
        admin.close()
    print(f"\nidle client: {per_client:.0f} bytes of RSS each ({n} clients)")
    if not SANITIZED:  # ASan's redzones and quarantine say nothing about pgwarden's memory
        assert per_client <= 2.5 * 1024, f"{per_client:.0f} bytes per idle client"


def test_reload_under_load_fails_nothing_and_closes_old_connections(pgwarden_factory, pg):
    """Threads run transactions (connect, BEGIN, reads, COMMIT, disconnect) while two SIGHUPs
    change the target's conninfo (application_name): 0 failed transactions, and every connection
    of the old conninfo is closed once returned."""
    import psycopg
    w = pgwarden_factory(target_config="pool_size = 4\npool_wait_timeout = 60")
    others = pool_pids(pg)
    base = w.config_text()
    stop = threading.Event()
    done, failures = [0], []

    def worker(i):
        actor = ACTORS[i % 2]
        while not stop.is_set():
            try:
                with psycopg.connect(w.dsn(actor)) as c:  # not autocommit: psycopg opens a block
                    assert c.execute("SELECT current_setting('app.actor_id')").fetchone()[0] == actor
                    c.execute("SELECT count(*) FROM invoices").fetchone()
                    c.commit()
                done[0] += 1
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                failures.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        for gen in ("reloaded1", "reloaded2"):
            time.sleep(1.5)
            conf = base.replace("dbname=app_staging", f"dbname=app_staging application_name={gen}")
            w.config_text = lambda conf=conf: conf
            w.reload(wait=0)
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == [], failures[:5]
    assert done[0] > 20, done[0]
    # the first two generations' connections are all gone; the pool now has only the newest
    assert wait_for(lambda: not (pool_pids(pg) - others) and not pool_pids(pg, app="reloaded1"), 5), \
        pg.sql("SELECT pid, application_name FROM pg_stat_activity WHERE usename = 'pgwarden_svc'")
    assert len(pool_pids(pg, app="reloaded2")) >= 1


def test_psycopg_pool_through_pgwarden(pgwarden_factory, pg):
    """psycopg_pool (one per actor) over pgwarden's pool: 40 threads, 400 borrowings, no failure,
    each borrowing sees its own actor, never more backends than pool_size."""
    from psycopg_pool import ConnectionPool
    others = pool_pids(pg)
    w = pgwarden_factory(target_config="pool_size = 8\npool_wait_timeout = 60")
    pools = {a: ConnectionPool(w.dsn(a), min_size=2, max_size=4, kwargs={"autocommit": True}, open=True)
             for a in ACTORS}
    failures, peak = [], [0]

    def worker(i):
        actor = ACTORS[i % 2]
        for _ in range(10):
            try:
                with pools[actor].connection(timeout=60) as c:
                    assert c.execute("SELECT current_setting('app.actor_id')").fetchone()[0] == actor
                    c.execute("SET work_mem = '6MB'")  # left behind: the pool's next borrower is the same client
                    peak[0] = max(peak[0], len(pool_pids(pg) - others))
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                failures.append(repr(e))

    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for p in pools.values():
            p.close()
    assert failures == [], failures[:5]
    assert 1 <= peak[0] <= 8


def test_asyncpg_create_pool_with_many_tasks(pgwarden_factory, pg):
    """asyncpg pools (its release runs RESET ALL, UNLISTEN *, advisory unlock, CLOSE ALL) with 400
    tasks over pgwarden's pool of 10: no failure, each task sees its own actor."""
    import asyncpg
    others = pool_pids(pg)
    w = pgwarden_factory(target_config="pool_size = 10\npool_wait_timeout = 60")
    failures = []

    async def main():
        pools = {a: await asyncpg.create_pool(min_size=2, max_size=5, **w.asyncpg_args(a)) for a in ACTORS}
        try:
            async def task(i):
                actor = ACTORS[i % 2]
                try:
                    async with pools[actor].acquire() as c:
                        async with c.transaction():
                            assert await c.fetchval("SELECT current_setting('app.actor_id')") == actor
                            await c.execute("SET LOCAL work_mem = '5MB'")
                            assert await c.fetchval("SELECT count(*) FROM invoices WHERE id > $1", i) >= 0
                except Exception as e:  # noqa: BLE001 - collected and asserted below
                    failures.append(repr(e))

            await asyncio.wait_for(asyncio.gather(*[task(i) for i in range(400)]), 120)
            assert len(pool_pids(pg) - others) <= 10
        finally:
            for p in pools.values():
                await p.close()

    asyncio.run(main())
    assert failures == [], failures[:5]


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_modes_through_a_session_pool(pgwarden_factory, pg, mode):
    """pgbench -M simple/extended/prepared, 16 clients that keep their connection (session mode:
    one backend each, pool_size 16), then 16 clients with a new connection per transaction (-C)
    on a pool of 4 (simple and extended; prepared with -C blocks pgbench's thread while it
    waits, see test_pool.py): 0 failed transactions."""
    others = pool_pids(pg)
    script = "\\set id random(1, 40)\nSELECT note FROM invoices WHERE id = :id;\n"
    runs = [("pool_size = 16", ["-c", "16", "-j", "2", "-T", "3"], 16)]
    if mode != "prepared":
        runs.append(("pool_size = 4\npool_wait_timeout = 60", ["-C", "-c", "16", "-j", "2", "-t", "20"], 4))
    for target_config, args, size in runs:
        w = pgwarden_factory(target_config=target_config)
        p = subprocess.run(["pgbench", "-n", "-M", mode, *args, "-f", "/dev/stdin", w.dsn(dbname="staging")],
                           input=script, capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        assert p.returncode == 0, out
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        assert m and int(m.group(1)) > 0, out
        if "-t" in args:
            assert m.group(1) == "320", out
        failed = re.search(r"number of failed transactions: (\d+)", out)
        assert failed is None or failed.group(1) == "0", out
        assert len(pool_pids(pg) - others) <= size
        w.stop()


def test_pgwarden_raises_its_open_files_limit(pgwarden_factory):
    """Started with a soft limit of 256 open files, pgwarden raises it to what max_client_conn and
    the pools need (up to the hard limit), so thousands of clients are not refused for want of
    descriptors; with the hard limit short too, it says so at start."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4000:
        pytest.skip(f"hard limit {hard} too low to show the raise")

    def max_open_files(pid):
        for line in open(f"/proc/{pid}/limits"):
            if line.startswith("Max open files"):
                return int(line.split()[3])

    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        w = pgwarden_factory(extra_config="max_client_conn = 3000", target_config="pool_size = 10")
        short = pgwarden_factory(extra_config="max_client_conn = 100000")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert max_open_files(w.pid) >= 3000 + 2 * 10
    assert "open files limit" not in w.stderr_text(200)
    if hard != resource.RLIM_INFINITY and hard < 100000:
        assert max_open_files(short.pid) == hard
        assert "open files limit is" in short.stderr_text(200)
