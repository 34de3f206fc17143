"""test_audit.py - the audit log as an auditor relies on it (CONTRACT §5, §1 `audit verify|show`).

A scripted session (psql and psycopg: simple, multi-statement, extended with parameters,
pipeline, COPY, a denial, errors, a bad token) is checked record by record; the file is checked
independently of pgwarden (every line JSON, seq +1, SHA-256 chain recomputed here, no token
anywhere); `audit verify` must pass it and catch an edited, a deleted and a swapped line; the
chain must continue across a restart and a SIGHUP rotation; audit_params; `audit show` filters;
write-ahead (a full disk denies, nothing reaches the database unaudited); crash consistency
under kill -9.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import psycopg
import pytest
from psycopg import errors

from audit_util import (TS_RE, ZERO_PREV, check_chain, cli, ensure_marker_tables, markers_in_db, psql,
                        raw_lines, records, result_for, sha256_hex, stmt_records, verify,
                        wait_for, wait_records)
from ops_util import http_get
from pgserver import free_port
from rawpg import RawConn, errors_of, msg, query
from warden import PGWARDEN, Warden

pytestmark = pytest.mark.identity

BAD_TOKEN = "wrong-token-J-7f3c9e1d"
EXT_ERROR_SQL = "SELECT 1 / (count(*) - count(*)) AS div_j FROM j_markers WHERE marker = %s"


# --- the scripted session -------------------------------------------------------------------

def run_script(w):
    """Drive one pgwarden through every kind of client traffic; returns what the tests check."""
    out = {}
    # psql: -c sends one Query message, so two statements arrive together.
    psql(w.dsn(dbname="staging"), "-c", "SELECT 1 AS a; SELECT 2 AS b",
         "-c", "INSERT INTO j_markers (marker) VALUES ('aud-psql-1')")
    with w.connect("user:jimmie", dbname="staging") as c:
        out["jimmie_pid"] = c.info.backend_pid
        cur = psycopg.ClientCursor(c)
        cur.execute("SELECT 10; SELECT 20")
        assert c.execute("SELECT %s::int + %s::int", (40, 2)).fetchone() == (42,)
        for v in ("p1", "p2", "p3"):  # a named prepared statement, executed three times
            assert c.execute("SELECT %s::text AS prepared_j", (v,), prepare=True).fetchone() == (v,)
        with c.pipeline():
            curs = [c.execute("SELECT %s::int AS pipe_j", (i,)) for i in range(3)]
        assert [k.fetchone()[0] for k in curs] == [0, 1, 2]
        with c.cursor().copy("COPY j_markers (marker) FROM STDIN") as cp:
            for i in range(3):
                cp.write_row((f"aud-copy-{i}",))
        with c.cursor().copy("COPY (SELECT marker FROM j_markers WHERE marker LIKE 'aud-copy-%') TO STDOUT") as cp:
            assert len(list(cp.rows())) == 3
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            c.execute("GRANT SELECT ON j_markers TO anon")
        out["deny_msg"] = str(ei.value)
        with pytest.raises(errors.InsufficientPrivilege):
            c.execute("GRANT SELECT ON j_markers TO guest", prepare=True)
        with pytest.raises(errors.DivisionByZero):
            c.execute("SELECT 1/0")
        with pytest.raises(errors.DivisionByZero):  # fails at Execute (nothing to fold at Bind)
            c.execute(EXT_ERROR_SQL, ("no-such-marker",))
        c.execute("INSERT INTO j_markers (marker) VALUES (%s)", ("aud-ext-1",))
    with w.connect("user:ada", dbname="prod") as c:
        c.execute("SELECT count(*) FROM invoices").fetchone()
        with pytest.raises(errors.InsufficientPrivilege):
            c.execute("INSERT INTO j_markers (marker) VALUES ('aud-prod-denied')")
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(w.dsn("user:jimmie", token=BAD_TOKEN, dbname="staging"))
    out["bad_token_err"] = str(ei.value)
    return out


@pytest.fixture(scope="module")
def scripted(pg, tmp_path_factory):
    """One pgwarden, the scripted session run through it, and a copy of its finished audit log."""
    ensure_marker_tables(pg)
    w = Warden(pg)
    try:
        w.start()
        out = run_script(w)
        # Every connection has ended, the port probe's too: each connect has its disconnect.
        # The failed login's records are written within 10 ms of its answer (nothing waits on them):
        # wait for them too, or the copy may be taken before that session is in the file at all.
        wait_records(w.audit_path, lambda rs: sum(r["event"] == "disconnect" for r in rs) >= 4
                     and any(r["event"] == "auth_fail" for r in rs)
                     and sum(r["event"] == "connect" for r in rs)
                     == sum(r["event"] == "disconnect" for r in rs),
                     what="all sessions' disconnect records")
        keep = tmp_path_factory.mktemp("audit-scripted")
        log = keep / "audit.jsonl"
        shutil.copy(w.audit_path, log)
    finally:
        w.cleanup()
    return dict(log=log, recs=records(log), out=out, tokens=dict(w.tokens), dir=keep)


def one(rs, what):
    assert len(rs) == 1, f"expected exactly one {what}, got {len(rs)}: {rs}"
    return rs[0]


def test_every_line_json_seq_and_chain(scripted):
    recs = check_chain(scripted["log"])
    assert recs[0]["event"] == "start" and recs[0]["prev"] == ZERO_PREV and recs[0]["seq"] == 1
    for line in raw_lines(scripted["log"]):
        # CONTRACT/audit.h order: ts, seq, event first; prev last.
        assert line.startswith(b'{"ts":"') and re.match(rb'\{"ts":"[^"]+","seq":\d+,"event":"', line), line
        assert re.search(rb',"prev":"[0-9a-f]{64}"\}$', line), line
    last_ts = ""
    for r in recs:
        assert TS_RE.fullmatch(r["ts"]), r
        assert r["ts"] >= last_ts, f"ts goes backwards at seq {r['seq']}"
        last_ts = r["ts"]
        assert r["event"] in ("start", "stop", "reload", "connect", "auth_ok", "auth_fail", "statement",
                              "result", "disconnect", "window_open", "window_close", "checkpoint"), r


def test_no_token_in_log(scripted):
    data = scripted["log"].read_bytes()
    for actor, tok in scripted["tokens"].items():
        assert tok.encode() not in data, f"token of {actor} is in the audit log"
        assert sha256_hex(tok.encode()).encode() not in data, f"token hash of {actor} is in the audit log"
    assert BAD_TOKEN.encode() not in data
    assert b"password" not in data.lower()


def test_session_events(scripted):
    recs = scripted["recs"]
    events = {r["event"] for r in recs}
    assert {"start", "connect", "auth_ok", "auth_fail", "statement", "result", "disconnect"} <= events
    connects = [r for r in recs if r["event"] == "connect"]
    sessions = [r["session"] for r in connects]
    assert len(sessions) == len(set(sessions)), "session ids must be unique per connection"
    for r in connects:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", r["client"]), r
    # Each logged-in session: connect < auth_ok < statements/results < disconnect, same identity.
    for ok in (r for r in recs if r["event"] == "auth_ok"):
        s = ok["session"]
        mine = [r for r in recs if r.get("session") == s]
        assert [r["event"] for r in mine][:2] == ["connect", "auth_ok"], mine[:2]
        assert mine[-1]["event"] == "disconnect"
        for r in mine[1:]:
            for k in ("actor", "role", "tenant", "client", "target", "environment"):
                assert r.get(k) == ok.get(k), (k, r)
    jim = [r for r in recs if r["event"] == "auth_ok" and r["actor"] == "user:jimmie"]
    assert jim and all(r["role"] == "bookkeeper" and r["tenant"] == "acme" and r["target"] == "staging"
                       and r["environment"] == "staging" for r in jim)
    ada = one([r for r in recs if r["event"] == "auth_ok" and r["actor"] == "user:ada"], "ada login")
    assert (ada["tenant"], ada["target"], ada["environment"]) == ("globex", "prod", "production")


def test_auth_fail_record(scripted):
    recs = scripted["recs"]
    assert "authentication failed" in scripted["out"]["bad_token_err"]
    fail = one([r for r in recs if r["event"] == "auth_fail"], "auth_fail")
    assert fail["actor"] == "user:jimmie"
    assert "role" not in fail and "tenant" not in fail, "a failed login has no identity from a token"
    mine = [r["event"] for r in recs if r.get("session") == fail["session"]]
    assert mine == ["connect", "auth_fail", "disconnect"], mine
    assert not any(r["event"] == "statement" and r["session"] == fail["session"] for r in recs)


def test_statement_and_result_records(scripted):
    recs = scripted["recs"]
    # Multi-statement Query (psql -c and ClientCursor): one record per statement, exact text.
    for a, b in (("SELECT 1 AS a", "SELECT 2 AS b"), ("SELECT 10", "SELECT 20")):
        sa, sb = one(stmt_records(recs, sql=a), a), one(stmt_records(recs, sql=b), b)
        assert sa["protocol"] == sb["protocol"] == "simple"
        assert sa["session"] == sb["session"] and sb["seq"] > sa["seq"]
        assert sa["decision"] == "allow" and "rule" not in sa
        for s in (sa, sb):
            assert result_for(recs, s)["tag"] == "SELECT 1"
    ins = one(stmt_records(recs, sql="INSERT INTO j_markers (marker) VALUES ('aud-psql-1')"), "psql insert")
    assert result_for(recs, ins)["tag"] == "INSERT 0 1"

    # Extended protocol: recorded at Execute with the prepared text; no params by default.
    ext = one(stmt_records(recs, sql="SELECT $1::int + $2::int"), "extended select")
    assert ext["protocol"] == "extended" and "params" not in ext
    assert result_for(recs, ext)["tag"] == "SELECT 1"
    prep = stmt_records(recs, sql="SELECT $1::text AS prepared_j")
    assert len(prep) == 3, "a named statement is recorded at each Execute"
    assert all(p["protocol"] == "extended" and result_for(recs, p)["tag"] == "SELECT 1" for p in prep)
    pipe = stmt_records(recs, sql="SELECT $1::int AS pipe_j")
    assert len(pipe) == 3 and all(result_for(recs, p)["tag"] == "SELECT 1" for p in pipe)
    ext_ins = one(stmt_records(recs, sql="INSERT INTO j_markers (marker) VALUES ($1)"), "extended insert")
    assert result_for(recs, ext_ins)["tag"] == "INSERT 0 1"

    # COPY: the statement, then its tag with the row count.
    cin = one(stmt_records(recs, sql="COPY j_markers (marker) FROM STDIN"), "copy in")
    assert cin["protocol"] == "copy"
    assert result_for(recs, cin)["tag"] == "COPY 3"
    cout = [r for r in stmt_records(recs) if r["sql"].startswith("COPY (SELECT marker")]
    assert one(cout, "copy out")["protocol"] == "copy"
    assert result_for(recs, one(cout, "copy out"))["tag"] == "COPY 3"

    # Errors: a result with the SQLSTATE and no tag.
    for sql in ("SELECT 1/0", EXT_ERROR_SQL.replace("%s", "$1")):
        st = one(stmt_records(recs, sql=sql), sql)
        assert st["decision"] == "allow"
        res = result_for(recs, st)
        assert res["sqlstate"] == "22012" and "tag" not in res, res


def test_denial_records(scripted):
    recs = scripted["recs"]
    assert scripted["out"]["deny_msg"].startswith("pgwarden:")
    g = one(stmt_records(recs, sql="GRANT SELECT ON j_markers TO anon"), "simple denial")
    assert (g["decision"], g["rule"], g["protocol"]) == ("deny", "grant-to-protected-role", "simple")
    ge = one(stmt_records(recs, sql="GRANT SELECT ON j_markers TO guest"), "extended denial")
    assert (ge["decision"], ge["rule"], ge["protocol"]) == ("deny", "grant-to-protected-role", "extended")
    w = one(stmt_records(recs, sql="INSERT INTO j_markers (marker) VALUES ('aud-prod-denied')"), "prod write")
    assert (w["decision"], w["rule"], w["target"]) == ("deny", "write-outside-window", "prod")
    assert "window" not in w
    for d in (g, ge, w):
        res = result_for(recs, d)
        assert res is None or (res.get("sqlstate") == "42501" and "tag" not in res), res


def test_results_reference_their_statements(scripted):
    recs = scripted["recs"]
    by_seq = {r["seq"]: r for r in recs}
    results = [r for r in recs if r["event"] == "result"]
    assert len(results) >= 18
    for res in results:
        st = by_seq.get(res["ref"])
        assert st is not None and st["event"] == "statement", f"result {res['seq']}: ref {res['ref']}"
        assert st["seq"] < res["seq"] and st["session"] == res["session"]
        assert isinstance(res["duration_us"], int) and 0 <= res["duration_us"] < 30_000_000, res
        assert ("tag" in res) != ("sqlstate" in res), res
        for k in ("sql", "decision", "params"):
            assert k not in res
    # Every allowed statement got exactly one result.
    for st in stmt_records(recs, decision="allow"):
        assert result_for(recs, st) is not None, f"no result for statement {st['seq']}: {st['sql']}"


def test_verify_accepts_real_log(scripted):
    rc, out = verify(scripted["log"])
    n = len(scripted["recs"])
    assert rc == 0, out
    last = raw_lines(scripted["log"])[-1]
    assert out.strip() == f"ok: {n} records, seq 1..{n}\nhead: {n}:{sha256_hex(last)}", out


def tampered(scripted, name, mutate):
    lines = raw_lines(scripted["log"])
    path = scripted["dir"] / name
    lines = mutate(list(lines))
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def line_no(scripted, pred):
    for i, r in enumerate(scripted["recs"], 1):
        if pred(r):
            return i
    raise AssertionError("no such record")


def test_verify_catches_edit(scripted):
    k = line_no(scripted, lambda r: r.get("sql") == "GRANT SELECT ON j_markers TO anon")

    def edit(lines):  # a denial made to look allowed: still valid JSON
        lines[k - 1] = lines[k - 1].replace(b'"decision":"deny"', b'"decision":"allow"')
        return lines
    path = tampered(scripted, "edited.jsonl", edit)
    rc, out = verify(path)
    assert rc == 1, out
    assert out.startswith(f"{path}:{k}: edited"), out


def test_verify_catches_deletion(scripted):
    k = line_no(scripted, lambda r: r.get("sql") == "SELECT 1/0")

    def delete(lines):
        del lines[k - 1]
        return lines
    path = tampered(scripted, "deleted.jsonl", delete)
    rc, out = verify(path)
    assert rc == 1, out
    assert out.startswith(f"{path}:{k}: deleted"), out


def test_verify_catches_swap(scripted):
    k = line_no(scripted, lambda r: r.get("sql") == "SELECT 10")

    def swap(lines):
        lines[k - 1], lines[k] = lines[k], lines[k - 1]
        return lines
    path = tampered(scripted, "swapped.jsonl", swap)
    rc, out = verify(path)
    assert rc == 1, out
    assert out.startswith(f"{path}:{k}: reordered"), out


def test_verify_catches_truncated_and_garbage(scripted):
    lines = raw_lines(scripted["log"])
    torn = scripted["dir"] / "torn.jsonl"
    torn.write_bytes(b"".join(x + b"\n" for x in lines) + lines[-1][:40])
    rc, out = verify(torn, settle=False)
    assert rc == 1 and out.startswith(f"{torn}:{len(lines) + 1}: truncated"), out
    junk = tampered(scripted, "junk.jsonl", lambda ls: ls[:5] + [b"not json at all"] + ls[5:])
    rc, out = verify(junk)
    assert rc == 1 and out.startswith(f"{junk}:6: not JSON"), out
    assert cli("audit", "verify").returncode == 2


def test_verify_waits_for_a_line_being_written(scripted):
    """verify on a live log: a last line whose write is still under way is read again before it
    counts as truncated; one that stays cut is reported (test above)."""
    lines = raw_lines(scripted["log"])
    live = scripted["dir"] / "live.jsonl"
    live.write_bytes(b"".join(x + b"\n" for x in lines[:-1]) + lines[-1][:40])
    p = subprocess.Popen([str(PGWARDEN), "audit", "verify", str(live)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    time.sleep(0.15)  # verify has read the cut line by now and is waiting to read it again
    with open(live, "ab") as f:
        f.write(lines[-1][40:] + b"\n")
    out, _ = p.communicate(timeout=10)
    assert p.returncode == 0 and out.startswith(f"ok: {len(lines)} records"), out
    # A pipe cannot be read again: it is checked as it streams.
    with open(scripted["log"], "rb") as f:
        p = subprocess.run([str(PGWARDEN), "audit", "verify", "/dev/stdin"], stdin=f, capture_output=True,
                           text=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith(f"ok: {len(lines)} records"), p.stdout + p.stderr


def test_show_filters(scripted):
    log = scripted["log"]
    p = cli("audit", "show", "--actor", "user:ada", "--json", log)
    assert p.returncode == 0, p.stderr
    got = [json.loads(x) for x in p.stdout.splitlines()]
    want = [r for r in scripted["recs"] if r.get("actor") == "user:ada"]
    assert got == want and len(got) >= 5
    p = cli("audit", "show", "--decision", "deny", "--json", log)
    got = [json.loads(x) for x in p.stdout.splitlines()]
    assert {r["sql"] for r in got} == {"GRANT SELECT ON j_markers TO anon", "GRANT SELECT ON j_markers TO guest",
                                        "INSERT INTO j_markers (marker) VALUES ('aud-prod-denied')"}
    p = cli("audit", "show", "--decision", "deny", "--actor", "user:ada", "--wide", log)
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and lines[0].split() == ["SEQ", "TIME", "SESSION", "ACTOR", "TARGET", "WINDOW",
                                                      "DECISION", "RULE", "RESULT", "STATEMENT"]
    assert len(lines) == 2 and "write-outside-window" in lines[1] and "aud-prod-denied" in lines[1], lines
    # Time filters: since <= ts < until.
    ts = scripted["recs"][5]["ts"]
    p = cli("audit", "show", "--json", "--since", ts, log)
    assert [json.loads(x)["seq"] for x in p.stdout.splitlines()][0] == 6
    p = cli("audit", "show", "--json", "--until", ts, log)
    assert [json.loads(x)["seq"] for x in p.stdout.splitlines()] == [1, 2, 3, 4, 5]
    assert cli("audit", "show", "--since", "yesterday", log).returncode == 2
    assert cli("audit", "show", "--bogus", log).returncode == 2


# --- chain across restart and rotation ------------------------------------------------------

def run_some(w, tag, dbname="staging"):
    with w.connect(dbname=dbname) as c:
        c.execute(f"SELECT '{tag}'")


def test_chain_continues_after_restart(pg, pgwarden_factory):
    w = pgwarden_factory()
    run_some(w, "before-restart")
    assert w.stop(signal.SIGTERM) == 0
    before = records(w.audit_path)
    assert before[-1]["event"] == "stop"
    last_line = raw_lines(w.audit_path)[-1]
    w.restart()
    run_some(w, "after-restart")
    recs = wait_records(w.audit_path, lambda rs: stmt_records(rs, sql="SELECT 'after-restart'"))
    first_new = recs[len(before)]
    assert first_new["event"] == "start"
    assert first_new["seq"] == before[-1]["seq"] + 1 and first_new["prev"] == sha256_hex(last_line)
    check_chain(w.audit_path)
    assert verify(w.audit_path)[0] == 0


def test_chain_continues_after_sighup_rotation(pg, pgwarden_factory):
    w = pgwarden_factory()
    run_some(w, "before-rotation")
    wait_records(w.audit_path, lambda rs: stmt_records(rs, sql="SELECT 'before-rotation'"))
    with w.connect() as live:  # a session that spans the rotation
        live.execute("SELECT 'live-1'")
        old = w.audit_path.with_name("audit.jsonl.1")
        os.rename(w.audit_path, old)
        w.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: w.audit_path.exists(), what="new audit file after SIGHUP")
        live.execute("SELECT 'live-2'")
        run_some(w, "after-rotation")
    recs_new = wait_records(w.audit_path, lambda rs: stmt_records(rs, sql="SELECT 'after-rotation'"))
    recs_old = records(old)
    assert stmt_records(recs_old, sql="SELECT 'live-1'") and not stmt_records(recs_old, sql="SELECT 'live-2'")
    assert stmt_records(recs_new, sql="SELECT 'live-2'")
    assert recs_new[0]["event"] == "reload"
    assert recs_new[0]["seq"] == recs_old[-1]["seq"] + 1
    assert recs_new[0]["prev"] == sha256_hex(raw_lines(old)[-1])
    check_chain(old, w.audit_path)
    rc, out = verify(old, w.audit_path)
    assert rc == 0, out
    assert verify(w.audit_path)[0] == 0, "a set may start mid-chain (older files not given)"
    rc, out = verify(w.audit_path, old)
    assert rc == 1, "files in the wrong order must not verify"


# --- audit_params ---------------------------------------------------------------------------

def test_audit_params(pgwarden_factory):
    w = pgwarden_factory(extra_config="audit_params = yes")
    huge = "a" + "\u00e9" * 50000  # 100001 bytes; byte 4096 falls inside a 2-byte character
    blob = bytes(range(16))
    with w.connect() as c:
        assert c.execute("SELECT %t::int, %t::text, %t::text IS NULL AS pj1",
                         (7, "h\u00e9llo \"q\"", None)).fetchone() == (7, "h\u00e9llo \"q\"", True)
        assert c.execute("SELECT length(%s::text) AS pj2", (huge,)).fetchone() == (50001,)
        assert c.cursor(binary=True).execute("SELECT %b::bytea AS pj3", (blob,)).fetchone() == (blob,)
        c.execute("SELECT 'simple has no params' AS pj4")
    recs = wait_records(w.audit_path, lambda rs: any(r["event"] == "disconnect" and "actor" in r for r in rs))
    p1 = one([r for r in stmt_records(recs) if r["sql"].endswith("AS pj1")], "pj1")
    assert p1["params"] == ["7", "h\u00e9llo \"q\"", None]
    p2 = one([r for r in stmt_records(recs) if r["sql"].endswith("AS pj2")], "pj2")
    (big,) = p2["params"]
    assert big["truncated"] is True and big["len"] == len(huge.encode())
    prefix = big["prefix"].encode()
    assert 4093 <= len(prefix) <= 4096 and huge.encode().startswith(prefix), len(prefix)
    assert result_for(recs, p2)["tag"] == "SELECT 1", "a huge parameter must not drop the result"
    p3 = one([r for r in stmt_records(recs) if r["sql"].endswith("AS pj3")], "pj3")
    assert p3["params"] == ["\\x" + blob.hex()]
    p4 = one([r for r in stmt_records(recs) if r["sql"].endswith("AS pj4")], "pj4")
    assert "params" not in p4
    check_chain(w.audit_path)


# --- write-ahead: an unwritable log denies -------------------------------------------------

def insert_marker(c, marker):
    c.execute(f"INSERT INTO j_markers (marker) VALUES ('{marker}')")


def assert_audit_failure_denies(w, pg, c, marker):
    """The statement must fail (the session is closed) and never reach the database."""
    with pytest.raises(psycopg.Error) as ei:
        insert_marker(c, marker)
    assert getattr(ei.value, "sqlstate", None) in ("58030", None), ei.value
    assert markers_in_db(pg, marker) == set(), "a statement whose record was not written reached the database"


def test_full_disk_denies_statements(pg, pgwarden_factory, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs for the audit log")
    ensure_marker_tables(pg)
    mnt = tmp_path / "auditfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {r.stderr.strip()}")
    try:
        port = free_port()
        w = pgwarden_factory(extra_config=f"audit_log = {mnt}/audit.jsonl\naudit_fsync = always\n"
                             f"admin_listen = 127.0.0.1:{port}")
        c = w.connect()
        insert_marker(c, "wa-ok-1")
        filler = mnt / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"x" * 1024) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        # The log's last page may still hold a few records: write until one cannot be recorded.
        ok = {"wa-ok-1"}
        for i in range(60):
            marker = f"wa-fill-{i}"
            try:
                insert_marker(c, marker)
            except psycopg.Error as e:
                assert getattr(e, "sqlstate", None) in ("58030", None), e
                break
            ok.add(marker)
        else:
            pytest.fail("60 statements went through with the audit file system full")
        assert markers_in_db(pg, "wa-") == ok, "a statement whose record was not written reached the database"
        c.close()
        # A new login on a full disk must not let statements through unaudited either. (A failed
        # write is truncated back, which can free a little space: a small record may then fit, and
        # then its statement may run - but only with its record in the log.)
        try:
            c2 = w.connect()
        except psycopg.Error:
            c2 = None
        if c2 is not None:
            try:
                insert_marker(c2, "wa-denied-2")
                went_through = True
            except psycopg.Error as e:
                assert getattr(e, "sqlstate", None) in ("58030", None), e
                went_through = False
            in_db = markers_in_db(pg, "wa-denied-2") == {"wa-denied-2"}
            recorded = any("wa-denied-2" in line for line in (mnt / "audit.jsonl").read_text().splitlines())
            assert in_db == went_through
            assert not in_db or recorded, "a statement whose record was not written reached the database"
            if went_through:
                ok.add("wa-denied-2")
            c2.close()
        metrics = http_get(port, "/metrics")[2]
        m = re.search(r"^pgwarden_audit_write_errors_total (\d+)$", metrics, re.M)
        assert m and int(m.group(1)) >= 1, metrics
        assert w.alive()
        # Space again: pgwarden recovers, and the file never kept a partial line.
        filler.unlink()
        with w.connect() as c3:
            insert_marker(c3, "wa-ok-2")
        assert markers_in_db(pg, "wa-") == ok | {"wa-ok-2"}
        log = mnt / "audit.jsonl"
        recs = wait_records(log, lambda rs: stmt_records(rs, sql="INSERT INTO j_markers (marker) VALUES ('wa-ok-2')"))
        # nothing that did not run is recorded as a statement that ran later (no stale batch resent)
        assert not any(f"'{marker}'" in r.get("sql", "") for r in recs), "the refused statement was recorded"
        assert not any("wa-denied" in r.get("sql", "") for r in recs if "wa-denied-2" not in ok)
        for m in ok:
            assert stmt_records(recs, sql=f"INSERT INTO j_markers (marker) VALUES ('{m}')"), m
        assert verify(log)[0] == 0, verify(log)[1]
        check_chain(log)
        w.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_unwritable_log_after_reopen_denies(pg, pgwarden_factory):
    """Without root: rotate the log onto /dev/full (every write fails with ENOSPC)."""
    ensure_marker_tables(pg)
    w = pgwarden_factory()
    c = w.connect()
    insert_marker(c, "dv-ok-1")
    os.rename(w.audit_path, w.audit_path.with_name("audit.jsonl.1"))
    os.symlink("/dev/full", w.audit_path)
    w.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert_audit_failure_denies(w, pg, c, "dv-denied-1")
    c.close()
    assert w.alive()
    assert markers_in_db(pg, "dv-") == {"dv-ok-1"}
    assert "audit log" in w.stderr_text(), "the write failure must be logged"


# --- crash consistency ----------------------------------------------------------------------

def test_kill9_every_committed_write_was_audited(pg, pgwarden_factory):
    ensure_marker_tables(pg)
    w = pgwarden_factory()
    stop = threading.Event()
    acked = []

    def writer(n, simple):
        try:
            with w.connect() as c:
                cur = psycopg.ClientCursor(c) if simple else c.cursor()
                i = 0
                while not stop.is_set():
                    m = f"crash-{n}-{i}"
                    cur.execute(f"INSERT INTO j_markers (marker) VALUES ('{m}')")
                    acked.append(m)
                    i += 1
        except psycopg.Error:
            pass  # the proxy died under us

    threads = [threading.Thread(target=writer, args=(n, n % 2 == 0), daemon=True) for n in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    os.kill(w.pid, signal.SIGKILL)
    w.proc.wait(5)
    stop.set()
    for t in threads:
        t.join(10)
    committed = markers_in_db(pg, "crash-")
    assert len(committed) > 20, "the workload did not run"
    assert set(acked) <= committed
    logged = set()
    for line in raw_lines(w.audit_path):
        m = re.search(rb"VALUES \('(crash-\d+-\d+)'\)", line)
        if m:
            logged.add(m.group(1).decode())
    missing = committed - logged
    assert not missing, f"committed but never audited: {sorted(missing)[:10]}"
    # The log verifies as it is (or has only a torn last line); a new start repairs and continues.
    rc, out = verify(w.audit_path, settle=False)
    assert rc == 0 or ": truncated:" in out, out
    n_before = len(raw_lines(w.audit_path))
    # Simulate a crash in the middle of a write on top, then start on the same log.
    with open(w.audit_path, "ab") as f:
        f.write(b'{"ts":"2026-01-01T00:00:00.000000Z","seq":99999,"event":"stat')
    assert verify(w.audit_path, settle=False)[0] == 1
    w.restart()
    run_some(w, "after-crash")
    recs = wait_records(w.audit_path, lambda rs: stmt_records(rs, sql="SELECT 'after-crash'"))
    assert recs[n_before]["event"] == "start"
    assert "incomplete" in w.stderr_text()
    check_chain(w.audit_path)
    rc, out = verify(w.audit_path)
    assert rc == 0, out


def test_skipped_executes_get_results(pg, pgwarden_factory):
    ensure_marker_tables(pg)
    w = pgwarden_factory()
    with w.connect() as c:
        with pytest.raises(errors.DivisionByZero):
            c.execute("SELECT %s::int / 0 AS bind_err_j", (7,))  # folded, fails at Bind
        with pytest.raises(errors.DivisionByZero):
            with c.pipeline() as p:
                c.execute("SELECT %s::int AS pipe_ok_j", (1,))
                c.execute("SELECT 1 / (count(*) - count(*)) AS pipe_err_j FROM j_markers WHERE marker = %s",
                          ("x",))
                c.execute("SELECT %s::int AS pipe_skipped_j", (3,))
                p.sync()
        c.execute("SELECT 'end'")
    recs = wait_records(w.audit_path, lambda rs: stmt_records(rs, sql="SELECT 'end'")
                        and any(r["event"] == "disconnect" and "actor" in r for r in rs))
    for suffix in ("bind_err_j", "pipe_ok_j", "pipe_err_j FROM j_markers WHERE marker = $1"):
        st = one([r for r in stmt_records(recs) if r["sql"].endswith(suffix)], suffix)
        assert result_for(recs, st) is not None, f"statement {st['sql']!r} (allow) has no result record"
    # The statement behind the error: when its messages reach pgwarden before the error does, it is
    # judged and recorded, and its result says it failed with the batch; when they come after it,
    # pgwarden knows the server ignores them until Sync and drops them unjudged, as the server does.
    skipped = [r for r in stmt_records(recs) if r["sql"].endswith("pipe_skipped_j")]
    assert len(skipped) <= 1, skipped
    for st in skipped:
        res = result_for(recs, st)
        assert res is not None and res.get("sqlstate"), f"skipped statement {st!r} has result {res!r}"


def test_revoked_session_has_one_disconnect(pgwarden_factory):
    w = pgwarden_factory()
    ada = w.connect("user:ada", dbname="prod")
    ada.execute("SELECT 1")
    lines = [x for x in w.tokens_path.read_text().splitlines() if " user:ada " not in x]
    w.tokens_path.write_text("\n".join(lines) + "\n")
    w.proc.send_signal(signal.SIGHUP)
    time.sleep(0.4)
    with pytest.raises(psycopg.OperationalError):
        ada.execute("SELECT 1")
    ada.close()
    recs = wait_records(w.audit_path, lambda rs: any(r.get("rule") == "token-revoked" for r in rs))
    time.sleep(0.2)
    recs = records(w.audit_path)
    sess = one([r for r in recs if r.get("rule") == "token-revoked"], "revocation record")["session"]
    events = [(r["event"], r.get("rule")) for r in recs if r.get("session") == sess]
    assert events[-1] == ("disconnect", "token-revoked") and \
        sum(e == "disconnect" for e, _ in events) == 1, events


def test_reload_changes_the_identity_fields_of_live_sessions(pgwarden_factory):
    """A session renders its identity fields once (audit_hooks.c); a reload that changes one of
    them (here the target's environment) must show in the session's next records, not the old."""
    w = pgwarden_factory()
    with w.connect("user:jimmie", dbname="staging") as c:
        c.execute("SELECT 'ident-before'")
        text = w.config_path.read_text()
        assert text.count("environment = staging") == 1
        w.config_path.write_text(text.replace("environment = staging", "environment = development"))
        w.proc.send_signal(signal.SIGHUP)
        wait_records(w.audit_path, lambda rs: any(r["event"] == "reload" for r in rs))
        c.execute("SELECT 'ident-after'")
    recs = wait_records(w.audit_path, lambda rs: any(result_for(rs, x) for x in stmt_records(rs, sql="SELECT 'ident-after'")))
    before = one(stmt_records(recs, sql="SELECT 'ident-before'"), "statement before the reload")
    after = one(stmt_records(recs, sql="SELECT 'ident-after'"), "statement after the reload")
    assert before["environment"] == "staging" and after["environment"] == "development"
    assert result_for(recs, after)["environment"] == "development"
    for r in (before, after):
        assert (r["actor"], r["role"], r["tenant"], r["target"]) == ("user:jimmie", "bookkeeper", "acme", "staging")
        assert r["session"] == before["session"] and r["client"] == before["client"]
    check_chain(w.audit_path)


def test_awkward_statement_text(pgwarden_factory):
    """Any statement text gives one valid JSON line: quotes, newlines, control and bidi characters,
    bytes that are not UTF-8 (written as \\u00XX, per audit.h), a 1 MB statement. `audit show`
    never passes terminal control characters through."""
    w = pgwarden_factory()
    odd = "SELECT 'esc\x1b[31mred' AS e, 'bidi\u202eevil' AS b, 'q\"\\\\ \t\n nl' AS q, '\u2603' AS u"
    big = "SELECT length('" + "y" * 1_000_000 + "') AS big_j"
    with w.connect() as c:
        cur = psycopg.ClientCursor(c)
        cur.execute(odd)
        cur.execute(big)
        c.execute("SELECT 'after'")
    with RawConn(w.host, w.port) as r:
        r.login(*w.raw_login())
        bad = b"SELECT '\xff\xfe' AS bad_utf8_j"
        r.send(b"Q" + (len(bad) + 5).to_bytes(4, "big") + bad + b"\0")
        assert [e["C"] for e in errors_of(r.read_until_ready())] == ["22021"]
    recs = wait_records(w.audit_path, lambda rs: any(r.get("sql", "").endswith("bad_utf8_j") for r in rs))
    assert one(stmt_records(recs, sql=odd), "odd text")["sql"] == odd
    assert result_for(recs, one(stmt_records(recs, sql=big), "1 MB statement"))["tag"] == "SELECT 1"
    assert one([r for r in stmt_records(recs) if r["sql"].endswith("bad_utf8_j")], "bad utf8")["sql"] \
        == "SELECT '\u00ff\u00fe' AS bad_utf8_j"
    check_chain(w.audit_path)
    assert verify(w.audit_path)[0] == 0
    out = cli("audit", "show", w.audit_path).stdout
    assert "\x1b" not in out and "\u202e" not in out and "\\x1b" in out


def test_copy_statements_have_protocol_copy(pgwarden_factory):
    """A COPY statement is recorded with protocol "copy" whether a Query or a Parse carried it, and
    when it is denied; a DO block that contains a COPY is not itself a COPY."""
    w = pgwarden_factory()
    ext_sql = "COPY (SELECT 'ext-copy-j') TO STDOUT"
    with RawConn(w.host, w.port) as r:
        r.login(*w.raw_login())
        r.send(msg(b"P", b"\0" + ext_sql.encode() + b"\0\0\0") + msg(b"B", b"\0\0" + b"\0\0" * 3)
               + msg(b"E", b"\0\0\0\0\0") + msg(b"S"))
        got = r.read_until_ready()
        kinds = [k for k, _ in got]
        assert b"H" in kinds and (b"d", b"ext-copy-j\n") in got, got
        assert (b"C", b"COPY 1\0") in got, got
        assert not errors_of(got)
        r.send(query("COPY (SELECT 1) TO PROGRAM 'true'"))
        assert [e["C"] for e in errors_of(r.read_until_ready())] == ["42501"]
        r.send(query("DO $$BEGIN PERFORM 1; END$$"))
        r.read_until_ready()
    recs = wait_records(w.audit_path, lambda rs: stmt_records(rs, sql="DO $$BEGIN PERFORM 1; END$$"))
    ext = one(stmt_records(recs, sql=ext_sql), "extended COPY")
    assert ext["protocol"] == "copy" and ext["decision"] == "allow"
    assert result_for(recs, ext)["tag"] == "COPY 1"
    prog = one(stmt_records(recs, sql="COPY (SELECT 1) TO PROGRAM 'true'"), "denied COPY")
    assert (prog["protocol"], prog["decision"]) == ("copy", "deny")
    assert one(stmt_records(recs, sql="DO $$BEGIN PERFORM 1; END$$"), "DO")["protocol"] == "simple"


def test_many_params_not_silently_dropped(pgwarden_factory):
    w = pgwarden_factory(extra_config="audit_params = yes")
    n = 300
    with w.connect() as c:
        c.execute("SELECT " + ", ".join(["%s::text"] * n) + " AS many_j", [str(i) for i in range(n)])
        c.execute("SELECT 'end'")
    recs = wait_records(w.audit_path, lambda rs: stmt_records(rs, sql="SELECT 'end'"))
    params = one([r for r in stmt_records(recs) if r["sql"].endswith("AS many_j")], "many_j")["params"]
    marked = isinstance(params[-1], dict) and params[-1].get("truncated")
    assert len(params) == n or marked, f"{len(params)} of {n} parameters recorded, no truncation marker"


def test_healthz_reports_unwritable_audit_log(pg, pgwarden_factory):
    port = free_port()
    w = pgwarden_factory(extra_config=f"admin_listen = 127.0.0.1:{port}")
    c = w.connect()
    c.execute("SELECT 1")
    os.rename(w.audit_path, w.audit_path.with_name("audit.jsonl.1"))
    os.symlink("/dev/full", w.audit_path)
    w.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    with pytest.raises(psycopg.Error):
        c.execute("SELECT 2")
    c.close()
    status, _, body = http_get(port, "/healthz")
    assert status != 200, f"/healthz says {status} {body.strip()!r} with an unwritable audit log"
