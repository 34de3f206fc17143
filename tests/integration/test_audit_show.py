"""test_audit_show.py - `pgwarden audit show` (CONTRACT §1): seq, session and window columns, --wide,
filters (target, session, window, event, rule), strict values, relative times, and results shown on
their statement's line. Input: the scripted log of report_script.py, and a live session."""
import json
import os
import subprocess

import pytest

from audit_util import wait_records, stmt_records
from report_script import write_log
from warden import PGWARDEN


def show(*args, columns="200"):
    env = dict(os.environ, COLUMNS=columns)
    p = subprocess.run([str(PGWARDEN), "audit", "show", *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=30, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path)
    return path


def seqs(out):
    return [json.loads(x)["seq"] for x in out.splitlines()]


def test_columns_and_results_on_statement_lines(log):
    rc, out, err = show(log)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "SESSION", "ACTOR", "TARGET", "WINDOW", "DECISION", "RULE",
                                "RESULT", "STATEMENT"]
    upd = [x for x in lines if x.startswith("12 ")][0]
    assert " 7 " in upd and " sec-42 " in upd and "UPDATE 17 20.0ms" in upd, upd
    err_line = [x for x in lines if x.startswith("16 ")][0]
    assert "ERROR 22012 800us" in err_line
    # The result records themselves are not printed again.
    assert not [x for x in lines if x.startswith(("13 ", "17 "))]
    assert not any("[result" in x for x in lines)
    # A denied statement has no result: its RESULT cell is "-".
    denied = [x for x in lines if x.startswith("4 ")][0]
    assert "write-outside-window      -  " in denied, denied


def test_wide_keeps_the_whole_statement(log):
    long_sql = "ALTER TABLE invoices ENABLE ROW LEVEL SECURITY"
    rc, out, _ = show("--session", "7", "--event", "statement", log, columns="180")
    assert long_sql not in out and "\u2026" in out
    rc, out, _ = show("--session", "7", "--event", "statement", "--wide", log, columns="180")
    assert long_sql in out and "\u2026" not in out


def test_filters(log):
    assert seqs(show("--json", "--session", "7", log)[1]) == [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 19, 23]
    assert seqs(show("--json", "--target", "staging", log)[1]) == [21, 22]
    assert seqs(show("--json", "--window", "sec-42", log)[1]) == [7, 10, 12, 14, 16, 20]
    assert seqs(show("--json", "--event", "window_close", log)[1]) == [20]
    assert seqs(show("--json", "--rule", "grant-to-protected-role", log)[1]) == [19]
    assert seqs(show("--json", "--decision", "deny", "--actor", "user:jimmie", log)[1]) == [4, 18]
    assert seqs(show("--json", "--since", "2026-11-24T23:40:00Z", log)[1]) == [21, 22, 23, 24, 25, 26]
    assert seqs(show("--json", "--event", "reload", log)[1]) == [24, 25]
    assert seqs(show("--json", "--since", "2h", log)[1]) == [], "the scripted log is from 2026-11-24"


@pytest.mark.parametrize("args,names", [
    (["--decision", "allowed"], "allow, deny"),
    (["--decision", "DENY"], "allow, deny"),
    (["--event", "statements"], "statement, result"),
    (["--session", "abc"], "--session"),
    (["--session", "-3"], "--session"),
    (["--since", "2 hours"], "30m, 2h, 1d"),
    (["--until", "5w"], "30m, 2h, 1d"),
])
def test_strict_values(log, args, names):
    rc, out, err = show(*args, log)
    assert rc == 2 and names in err and out == "", (args, err)


def test_relative_time_on_a_live_log(pgwarden_factory):
    w = pgwarden_factory()
    with w.connect() as c:
        c.execute("SELECT 'j-show-recent'")
    wait_records(w.audit_path, lambda rs: stmt_records(rs, sql="SELECT 'j-show-recent'"))
    rc, out, _ = show("--json", "--since", "30m", "--event", "statement", w.audit_path)
    assert rc == 0 and "j-show-recent" in out
    rc, out, _ = show("--json", "--until", "1h", w.audit_path)
    assert rc == 0 and out == ""
    rc, out, _ = show("--wide", "--since", "1d", w.audit_path)
    line = [x for x in out.splitlines() if "j-show-recent" in x][0]
    assert "SELECT 1" in line and " allow " in line
