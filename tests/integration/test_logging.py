"""test_logging.py - the process log (issue 13): every event on one line (libpq's multi-line errors
folded), `log_format = json`, counts in English ("1 target")."""
import json
import re

import psycopg
import pytest

from audit_util import wait_for
from pgserver import free_port

pytestmark = pytest.mark.identity

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC (DEBUG|LOG|WARNING|ERROR): \S")


def dead_target():
    return (f"[target.gone]\nconninfo = host=127.0.0.1 port={free_port()} dbname=x user=y\n"
            "environment = staging\n")


def test_text_log_one_event_per_line(pgwarden_factory):
    w = pgwarden_factory(extra_config=dead_target())
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(w.dsn(dbname="gone"))
    with w.connect() as c:
        c.execute("SELECT 1")
    wait_for(lambda: "upstream connection failed for target gone" in w.stderr_text(400), what="failure line")
    lines = [x for x in w.stderr_text(400).splitlines() if x]
    bad = [x for x in lines if not TEXT_LINE.match(x)]
    assert not bad, bad  # a continuation line of a multi-line message would not start with a timestamp
    fail = [x for x in lines if "upstream connection failed for target gone" in x]
    assert "Connection refused Is the server running" in fail[0], fail
    assert re.search(r"LOG: s=\d+ user:jimmie staging 127\.0\.0\.1:\d+ login complete", "\n".join(lines))
    assert "ready: 3 targets" in "\n".join(lines)


def test_singular_counts(pgwarden_factory):
    w = pgwarden_factory(extra_config="[rule.one]\nmatch = zzz_never\naction = log\n")
    w.reload()
    log = w.stderr_text(200)
    assert "reload done: 2 targets, 0 windows, 1 rule, " in log, log
    assert "1 rules" not in log and "1 targets" not in log


def test_json_log_format(pgwarden_factory):
    w = pgwarden_factory(extra_config="log_format = json\n" + dead_target())
    with w.connect() as c:
        c.execute("SELECT 1")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(w.dsn(dbname="gone"))
    wait_for(lambda: "upstream connection failed" in w.stderr_text(400), what="failure line")
    recs = [json.loads(x) for x in w.stderr_text(400).splitlines() if x]  # every line is one JSON object
    assert all({"ts", "level", "msg"} <= set(r) for r in recs)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"]) for r in recs)
    login = [r for r in recs if r["msg"] == "login complete"]
    assert login and login[0]["actor"] == "user:jimmie" and login[0]["target"] == "staging"
    assert isinstance(login[0]["session"], int) and login[0]["client"].startswith("127.0.0.1:")
    fail = [r for r in recs if "upstream connection failed" in r["msg"]]
    assert fail[0]["level"] == "WARNING" and "\n" not in fail[0]["msg"] and "\t" not in fail[0]["msg"]


def test_log_format_is_validated(pgwarden, tmp_path):
    import subprocess
    from warden import PGWARDEN
    (tmp_path / "tokens.txt").write_text(pgwarden.tokens_path.read_text())
    bad = tmp_path / "f.ini"
    bad.write_text(pgwarden.config_text().replace("[pgwarden]\n", "[pgwarden]\nlog_format = xml\n"))
    p = subprocess.run([str(PGWARDEN), "--check", "-c", str(bad)], capture_output=True, text=True)
    assert p.returncode == 1 and 'f.ini:3: log_format: "xml" is not one of text, json' in p.stderr, p.stderr
