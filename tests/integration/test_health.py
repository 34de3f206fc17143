"""test_health.py - health that means something (issue 13): /healthz reports each target's
upstream reachability and answers 200 only while pgwarden can serve; metrics for target state,
upstream connect failures, reload results and build info."""
import json
import signal
import time

import psycopg
import pytest

from audit_util import wait_for
from ops_util import http_get, metric, parse_metrics
from pgserver import free_port
from warden import Warden

pytestmark = pytest.mark.identity


def with_admin(factory, extra=""):
    port = free_port()
    w = factory(extra_config=f"admin_listen = 127.0.0.1:{port}\n{extra}")
    w.admin_port = port
    return w


def scrape(w):
    status, _, body = http_get(w.admin_port, "/metrics")
    assert status == 200
    return parse_metrics(body)


def health_json(w):
    status, ctype, body = http_get(w.admin_port, "/healthz?format=json")
    assert "json" in ctype, ctype
    return status, json.loads(body)


def dead_target(name):
    return (f"[target.{name}]\nconninfo = host=127.0.0.1 port={free_port()} dbname=x user=y\n"
            "environment = staging\n")


def test_healthz_reports_every_target(pgwarden_factory):
    w = with_admin(pgwarden_factory)
    status, _, body = http_get(w.admin_port, "/healthz")
    assert (status, body) == (200, "ok\n")  # CONTRACT §6: plain "ok" while all is well
    _, h = wait_for(lambda: (lambda r: r if all(t["state"] == "reachable" for t in r[1]["targets"]) else None)(
        health_json(w)), what="both targets probed")
    assert h["ok"] is True and {t["target"] for t in h["targets"]} == {"prod", "staging"}
    s, types = scrape(w)
    assert metric(s, "pgwarden_target_up", target="prod") == 1 and types["pgwarden_target_up"] == "gauge"
    assert metric(s, "pgwarden_build_info", version=w_version()) == 1


def w_version():
    import subprocess
    from warden import PGWARDEN
    return subprocess.run([str(PGWARDEN), "--version"], capture_output=True, text=True).stdout.split()[1]


def test_unreachable_target_degrades_but_serves(pgwarden_factory):
    w = with_admin(pgwarden_factory, dead_target("gone"))
    wait_for(lambda: metric(scrape(w)[0], "pgwarden_target_up", target="gone") == 0, what="probe of gone")
    status, _, body = http_get(w.admin_port, "/healthz")
    lines = body.splitlines()
    assert status == 200 and lines[0] == "ok", body  # the other targets can still be served
    gone = [x for x in lines if x.startswith("target gone unreachable: ")]
    assert len(gone) == 1 and "refused" in gone[0], body  # libpq's two-line message folded into one
    with pytest.raises(psycopg.OperationalError, match='could not connect to target "gone"'):
        psycopg.connect(w.dsn(dbname="gone"))
    s, types = scrape(w)
    assert metric(s, "pgwarden_upstream_connect_failures_total", target="gone") == 1
    assert metric(s, "pgwarden_upstream_connect_failures_total", target="prod") == 0
    assert types["pgwarden_upstream_connect_failures_total"] == "counter"
    with w.connect(dbname="prod") as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    log = w.stderr_text(200)
    assert "target gone is unreachable: " in log
    assert all("\t" not in line for line in log.splitlines())


def test_healthz_503_when_no_target_can_be_served(pg, tmp_path):
    w = Warden(pg, base=tmp_path)
    port = free_port()
    w.extra_config = f"admin_listen = 127.0.0.1:{port}"
    good = w.config_text()
    dead = free_port()
    w.config_text = lambda: good.replace(f"port={pg.port} ", f"port={dead} ")
    w.start()
    try:
        w.admin_port = port
        wait_for(lambda: http_get(port, "/healthz")[0] == 503, timeout=10, what="503")
        status, _, body = http_get(port, "/healthz")
        assert body.splitlines()[0] == "no target reachable"
        assert {line.split()[1] for line in body.splitlines()[1:]} == {"prod", "staging"}
        status, h = health_json(w)
        assert status == 503 and h["ok"] is False
        assert all(t["state"] == "unreachable" and t["error"] for t in h["targets"])
    finally:
        w.cleanup()


def test_reload_result_metrics(pgwarden_factory):
    w = with_admin(pgwarden_factory)
    s, _ = scrape(w)
    assert metric(s, "pgwarden_last_reload_timestamp_seconds") == 0
    good = w.config_path.read_text()
    w.config_path.write_text(good + "\n[bogus]\n")
    w.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: metric(scrape(w)[0], "pgwarden_reloads_total", result="rejected") == 1, what="rejected")
    s, _ = scrape(w)
    assert metric(s, "pgwarden_last_reload_success") == 0
    assert abs(metric(s, "pgwarden_last_reload_timestamp_seconds") - time.time()) < 30
    w.config_path.write_text(good)
    w.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: metric(scrape(w)[0], "pgwarden_reloads_total", result="accepted") == 1, what="accepted")
    assert metric(scrape(w)[0], "pgwarden_last_reload_success") == 1


def test_reload_adds_and_probes_a_target(pgwarden_factory):
    w = with_admin(pgwarden_factory)
    w.reload(extra_config=f"admin_listen = 127.0.0.1:{w.admin_port}\n" + dead_target("later"))
    wait_for(lambda: metric(scrape(w)[0], "pgwarden_target_up", target="later") == 0 and
             ("pgwarden_target_up", (("target", "later"),)) in scrape(w)[0], what="new target probed")
