"""Keeping a pool ready (CONTRACT §7): pool_min_idle connections opened in the background and
refilled, spared by server_idle_timeout, rebuilt on a conninfo reload; the health check of idle
connections before lending (server_check_delay), so a dead or hung backend never reaches a client."""
import os
import signal
import subprocess
import time

import pytest

from conftest import DIRECT
from pgserver import free_port
from pool_util import pool_pids, pools, wait_for
from warden import PGWARDEN, Warden

pytestmark = pytest.mark.skipif(DIRECT, reason="pooling is pgwarden's")


def started(factory, target_config, **kw):
    port = free_port()
    w = factory(extra_config=f"admin_listen = 127.0.0.1:{port}", target_config=target_config, **kw)
    w.admin_port = port
    return w


def test_min_idle_connections_open_in_the_background(pgwarden_factory, pg):
    """No client at all: each target's pool opens pool_min_idle connections by itself, nobody's
    (no role set), and keeps that many idle while clients hold others, never beyond pool_size."""
    others, others_prod = pool_pids(pg), pool_pids(pg, "app")  # other pgwardens' of this test run
    w = started(pgwarden_factory, "pool_size = 4\npool_min_idle = 2")
    assert wait_for(lambda: len(pool_pids(pg) - others) == 2, 5), w.stderr_text()
    assert wait_for(lambda: len(pool_pids(pg, "app") - others_prod) == 2, 5)  # prod too
    assert pools(w.admin_port)["idle"] == 2 and pools(w.admin_port)["min_idle"] == 2
    # two clients borrow the two idle ones: two more open to keep two idle (4 = pool_size)
    a, b = w.connect("user:jimmie"), w.connect("user:ada")
    a.execute("SELECT 1"), b.execute("SELECT 1")
    assert wait_for(lambda: pools(w.admin_port)["idle"] == 2, 5)
    assert len(pool_pids(pg) - others) == 4
    # a third client takes one; pool_size caps the refill
    c = w.connect("user:jimmie")
    c.execute("SELECT 1")
    time.sleep(1.5)
    assert pools(w.admin_port)["open"] == 4 and len(pool_pids(pg) - others) == 4
    for x in (a, b, c):
        x.close()


def test_min_idle_refilled_after_backends_die(pgwarden_factory, pg):
    others = pool_pids(pg)
    w = started(pgwarden_factory, "pool_size = 5\npool_min_idle = 3")
    assert wait_for(lambda: len(pool_pids(pg) - others) == 3, 5), w.stderr_text()
    old = pool_pids(pg) - others
    for pid in old:
        pg.sql(f"SELECT pg_terminate_backend({pid})")
    assert wait_for(lambda: len(pool_pids(pg) - others - old) == 3, 8), w.stderr_text()
    assert pools(w.admin_port)["idle"] == 3
    with w.connect("user:jimmie") as c:
        assert c.execute("SELECT pg_backend_pid()").fetchone()[0] not in old


def test_min_idle_spared_by_server_idle_timeout(pgwarden_factory, pg):
    """server_idle_timeout closes idle connections beyond pool_min_idle, never the min_idle ones."""
    others = pool_pids(pg)
    w = started(pgwarden_factory, "pool_size = 6\npool_min_idle = 2\nserver_idle_timeout = 1")
    clients = [w.connect("user:jimmie") for _ in range(5)]
    for c in clients:
        c.execute("SELECT 1")
    assert wait_for(lambda: len(pool_pids(pg) - others) == 6, 5)  # 5 lent + refill up to pool_size
    for c in clients:
        c.close()
    assert wait_for(lambda: len(pool_pids(pg) - others) == 2, 6), w.stderr_text()
    kept = pool_pids(pg) - others
    time.sleep(2.5)  # well past server_idle_timeout: the min_idle ones stay
    assert pool_pids(pg) - others == kept
    assert pools(w.admin_port)["idle"] == 2


def test_min_idle_rebuilt_on_conninfo_reload(pgwarden_factory, pg):
    others = pool_pids(pg)
    w = started(pgwarden_factory, "pool_size = 4\npool_min_idle = 2")
    assert wait_for(lambda: len(pool_pids(pg) - others) == 2, 5)
    conf = w.config_text().replace("dbname=app_staging", "dbname=app_staging application_name=rebuilt")
    w.config_text = lambda: conf
    w.reload()
    assert wait_for(lambda: len(pool_pids(pg) - others) == 0, 5), w.stderr_text()
    assert wait_for(lambda: len(pool_pids(pg, app="rebuilt")) == 2, 8), w.stderr_text()
    with w.connect("user:jimmie") as c:
        assert c.execute("SELECT pg_backend_pid()").fetchone()[0] in pool_pids(pg, app="rebuilt")


@pytest.mark.parametrize("lines,message", [
    ("pool_size = 3\npool_min_idle = 4", "pool_min_idle (4) is larger than pool_size (3)"),
    ("pool_min_idle = -1", "pool_min_idle"),
    ("pool_min_idle = two", "pool_min_idle"),
    ("pool_min_idle = 10001", "pool_min_idle"),
    ("server_check_delay = -1", "server_check_delay"),
])
def test_pool_upkeep_config_errors(pg, lines, message):
    w = Warden(pg, target_config=lines)
    try:
        w.write_files()
        r = subprocess.run([str(PGWARDEN), "--check", "-c", str(w.config_path)], capture_output=True, text=True)
        out = r.stdout + r.stderr
        assert r.returncode == 1, out
        key = [n for n, line in enumerate(w.config_text().splitlines(), 1) if line.startswith(lines.split()[-3])]
        assert f"{w.config_path}:{key[0]}:" in out, out
        assert message in out
    finally:
        w.cleanup()


def test_min_idle_is_valid_config(pg):
    w = Warden(pg, target_config="pool_size = 3\npool_min_idle = 3\nserver_check_delay = 0")
    try:
        w.write_files()
        r = subprocess.run([str(PGWARDEN), "--check", "-c", str(w.config_path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        w.cleanup()


# ---- health check before lending -------------------------------------------------------------

def idle_pid(w, pg, others):
    """The backend pid of a pool_size = 1 pool's one connection, once it is idle again."""
    with w.connect("user:jimmie") as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
    assert wait_for(lambda: pools(w.admin_port)["idle"] == 1, 5), (pools(w.admin_port), w.stderr_text(40))
    return pid


def test_terminated_idle_backend_never_reaches_a_client(pgwarden_factory, pg):
    """pg_terminate_backend on the pool's idle backend from a direct connection, and at once a
    client: its first statement succeeds, on another backend. server_check_delay = 0 checks every
    connection before lending, so even a kill whose FATAL is still on its way is caught."""
    w = started(pgwarden_factory, "pool_size = 1\nserver_check_delay = 0")
    others = pool_pids(pg)
    for _ in range(5):
        pid = idle_pid(w, pg, others)
        assert pg.sql(f"SELECT pg_terminate_backend({pid})") == [(True,)]
        with w.connect("user:ada") as c:  # at once: no waiting for the backend to be gone
            got = c.execute("SELECT pg_backend_pid(), current_setting('app.actor_id')").fetchone()
        assert got[0] != pid and got[1] == "user:ada"


def test_terminated_idle_backend_with_the_default_check_delay(pgwarden_factory, pg):
    """With the default server_check_delay (30 s, checks only after a long idle) the pool still
    drops a killed idle backend as soon as the server closes it (it watches idle sockets, and
    peeks before lending): the next client is served by another backend."""
    w = started(pgwarden_factory, "pool_size = 1")
    others = pool_pids(pg)
    for _ in range(3):
        pid = idle_pid(w, pg, others)
        assert pg.sql(f"SELECT pg_terminate_backend({pid})") == [(True,)]
        assert wait_for(lambda: not pg.sql(f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}"), 5)
        with w.connect("user:ada") as c:
            got = c.execute("SELECT pg_backend_pid(), current_setting('app.actor_id')").fetchone()
        assert got[0] != pid and got[1] == "user:ada"


def test_hung_idle_backend_is_replaced_transparently(pgwarden_factory, pg):
    """An idle backend that no longer answers (stopped with SIGSTOP: no FATAL, no closed socket,
    nothing the pool could notice while it idles): the check before lending times out, the
    connection is closed, and the client gets a new one; its statement succeeds."""
    w = started(pgwarden_factory, "pool_size = 1\nserver_check_delay = 1\npool_wait_timeout = 20")
    others = pool_pids(pg)
    pid = idle_pid(w, pg, others)
    time.sleep(1.2)  # idle longer than server_check_delay
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with w.connect("user:ada") as c:
            got = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        took = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert got != pid
    assert took < 10
    assert pools(w.admin_port)["checks_failed"] == 1
    assert "failed its health check" in w.stderr_text(200)


def test_check_after_long_idle_passes_and_keeps_the_backend(pgwarden_factory, pg):
    """A healthy connection idle past server_check_delay passes its check and is lent: same backend."""
    w = started(pgwarden_factory, "pool_size = 1\nserver_check_delay = 1")
    pid = idle_pid(w, pg, pool_pids(pg))
    time.sleep(1.5)
    with w.connect("user:ada") as c:
        assert c.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
    assert pools(w.admin_port)["checks_failed"] == 0
