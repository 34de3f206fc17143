"""test_console.py - the operator console (issue 13): HTTP + JSON on admin_listen and the
`pgwarden admin` CLI: sessions (actor, target, client, state, since, current statement), kill,
PAUSE/RESUME of a target, windows, stats, pools; actions need admin_token."""
import json
import subprocess
import threading
import time
import urllib.request

import psycopg
import pytest

from audit_util import wait_for
from ops_util import http_get
from pgserver import free_port
from warden import PGWARDEN

pytestmark = pytest.mark.identity

TOKEN = "console-test-token-0123456789"


def console(factory, token=TOKEN, extra=""):
    port = free_port()
    w = factory(extra_config=f"admin_listen = 127.0.0.1:{port}\n" + (f"admin_token = {token}\n" if token else "")
                + extra)
    w.admin_port = port
    return w


def admin(w, *args, token=None):
    """`pgwarden admin -c CONFIG ...` -> (exit code, parsed JSON or stderr text)."""
    env = {"PATH": "/usr/bin:/bin"}
    if token:
        env["PGWARDEN_ADMIN_TOKEN"] = token
    p = subprocess.run([str(PGWARDEN), "admin", "-c", str(w.config_path), *args], capture_output=True, text=True,
                       timeout=30, env=env)
    return p.returncode, json.loads(p.stdout) if p.returncode == 0 else p.stderr


def post(w, path, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{w.admin_port}{path}", data=b"", method="POST")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def by_actor(sessions, actor):
    return [s for s in sessions if s["actor"] == actor]


def test_sessions_show_actor_target_state_statement(pgwarden_factory):
    w = console(pgwarden_factory)
    with w.connect() as idle, w.connect(actor="user:ada", dbname="prod") as busy:
        idle.execute("SELECT 'hello from jimmie'")
        t = threading.Thread(target=lambda: busy.execute("SELECT pg_sleep(1.5), 'ada sleeping'"))
        t.start()
        try:
            rc, sessions = wait_for(lambda: (lambda r: r if r[0] == 0 and by_actor(r[1], "user:ada") and
                                             by_actor(r[1], "user:ada")[0]["state"] == "active" else None)(admin(w, "sessions")),
                                    what="ada active")
            j, a = by_actor(sessions, "user:jimmie")[0], by_actor(sessions, "user:ada")[0]
            assert j["target"] == "staging" and j["state"] == "idle" and j["role"] == "bookkeeper"
            assert j["statement"] == "SELECT 'hello from jimmie'" and j["client"].startswith("127.0.0.1:")
            assert a["target"] == "prod" and a["statement"] == "SELECT pg_sleep(1.5), 'ada sleeping'"
            for s in (j, a):
                assert s["since"] >= s["connected"] and s["connected"].endswith("Z") and isinstance(s["id"], int)
        finally:
            t.join()
        idle.execute("BEGIN")
        wait_for(lambda: by_actor(admin(w, "sessions")[1], "user:jimmie")[0]["state"] == "idle in transaction",
                 what="idle in transaction")


def test_kill_session_needs_token(pgwarden_factory):
    w = console(pgwarden_factory)
    with w.connect() as victim, w.connect(actor="user:ada") as bystander:
        victim.execute("SELECT 1")
        sid = by_actor(admin(w, "sessions")[1], "user:jimmie")[0]["id"]
        assert post(w, f"/sessions/{sid}/kill")[0] == 401
        assert post(w, f"/sessions/{sid}/kill", token="wrong" + TOKEN)[0] == 401
        rc, err = admin(w, "kill", str(sid), token="not-the-token-at-all")
        assert rc == 1 and "admin_token required" in err
        assert victim.execute("SELECT 2").fetchone() == (2,)  # nothing happened
        rc, out = admin(w, "kill", str(sid), token=TOKEN)
        assert rc == 0 and out == {"killed": sid}
        with pytest.raises(psycopg.OperationalError, match="terminating connection due to administrator command"):
            victim.execute("SELECT 3")
        assert bystander.execute("SELECT 4").fetchone() == (4,)
        assert post(w, "/sessions/999/kill", token=TOKEN)[0] == 404
    status, _, _ = http_get(w.admin_port, "/sessions")  # with admin_token set, listing needs it too
    assert status == 401


def test_without_admin_token_actions_are_off(pgwarden_factory):
    w = console(pgwarden_factory, token=None)
    with w.connect() as c:
        c.execute("SELECT 1")
        status, _, body = http_get(w.admin_port, "/sessions")  # loopback peer: listing allowed
        assert status == 200 and by_actor(json.loads(body), "user:jimmie")
        sid = by_actor(json.loads(body), "user:jimmie")[0]["id"]
        status, out = post(w, f"/sessions/{sid}/kill", token="anything-at-all-here")
        assert status == 403 and "set admin_token" in out["error"]
        assert post(w, "/targets/staging/pause")[0] == 403
        assert c.execute("SELECT 2").fetchone() == (2,)


def test_pause_and_resume_target(pgwarden_factory):
    w = console(pgwarden_factory)
    with w.connect() as idle, w.connect(actor="user:ada") as in_txn, w.connect(dbname="prod") as other:
        in_txn.execute("BEGIN")
        in_txn.execute("SELECT 1")
        rc, out = admin(w, "pause", "staging", token=TOKEN)
        assert rc == 0 and out == {"target": "staging", "paused": True}
        done = {}
        t = threading.Thread(target=lambda: done.setdefault("v", idle.execute("SELECT 'after resume'").fetchone()))
        t.start()
        time.sleep(1.0)
        assert "v" not in done, "a new statement on a paused target must wait"
        staging = next(x for x in admin(w, "stats")[1]["targets"] if x["target"] == "staging")
        assert staging["busy"] == 1  # the open transaction: maintenance waits for busy == 0
        assert in_txn.execute("SELECT 2").fetchone() == (2,)  # a transaction under way finishes
        in_txn.execute("COMMIT")
        wait_for(lambda: next(x for x in admin(w, "stats")[1]["targets"] if x["target"] == "staging")["busy"] == 0,
                 what="no busy session left")
        assert other.execute("SELECT 3").fetchone() == (3,)  # other targets are not paused
        st = admin(w, "sessions")[1]
        assert by_actor(st, "user:jimmie") and any(s["state"] == "paused" for s in st)
        assert next(x for x in admin(w, "stats")[1]["targets"] if x["target"] == "staging")["paused"] is True
        rc, out = admin(w, "resume", "staging", token=TOKEN)
        assert rc == 0 and out == {"target": "staging", "paused": False}
        t.join(5)
        assert done.get("v") == ("after resume",)
        assert idle.execute("SELECT 4").fetchone() == (4,)
    assert post(w, "/targets/nosuch/pause", token=TOKEN)[0] == 404


def test_paused_session_is_not_idle_timed_out(pgwarden_factory):
    w = console(pgwarden_factory, extra="client_idle_timeout = 1\n")
    with w.connect() as c:
        assert admin(w, "pause", "staging", token=TOKEN)[0] == 0
        done = {}
        t = threading.Thread(target=lambda: done.setdefault("v", c.execute("SELECT 5").fetchone()))
        t.start()
        time.sleep(2.0)
        assert admin(w, "resume", "staging", token=TOKEN)[0] == 0
        t.join(5)
        assert done.get("v") == (5,)


def test_stats_pools_windows_health(pgwarden_factory):
    w = console(pgwarden_factory, extra="[window.w1]\ntarget = prod\nweekly = mon 01:00-02:00\ntimezone = UTC\n"
                                         "approved_by = ops:j\nreason = r\n")
    with w.connect() as c:
        for i in range(3):
            c.execute(f"SELECT {i}")
        rc, stats = admin(w, "stats")
        staging = next(x for x in stats["targets"] if x["target"] == "staging")
        assert rc == 0 and staging["sessions"] == 1 and staging["statements_allowed"] >= 3
        assert stats["client_connections"] >= 1
    code, pools = admin(w, "pools")  # one entry per target whose pool has been used (pool.c)
    assert code == 0 and [p["target"] for p in pools] == ["staging"] and pools[0]["idle"] + pools[0]["resetting"] == 1
    rc, windows = admin(w, "windows")
    assert rc == 0 and [x["name"] for x in windows] == ["w1"]
    rc, health = admin(w, "health")
    assert rc == 0 and health["ok"] is True


def test_admin_cli_usage_errors(pgwarden_factory):
    for args in (["admin"], ["admin", "--url", "127.0.0.1:1"], ["admin", "--url", "127.0.0.1:1", "kill"],
                 ["admin", "--url", "127.0.0.1:1", "frobnicate"]):
        assert subprocess.run([str(PGWARDEN), *args], capture_output=True).returncode == 2, args
    p = subprocess.run([str(PGWARDEN), "admin", "--url", f"127.0.0.1:{free_port()}", "stats"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and "no answer" in p.stderr
