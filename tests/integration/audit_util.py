"""audit_util.py - helpers for the audit and operations tests: reading and checking the audit
log independently of pgwarden (JSON, seq, SHA-256 chain), running the `pgwarden` CLI and psql,
waiting for records, and the marker tables those tests write to (so they never touch the demo
rows other test files count).
"""
import hashlib
import json
import re
import subprocess
import time

from warden import PGWARDEN

ZERO_PREV = "0" * 64
TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

# Tables owned by the superuser, writable by the app roles, without RLS. Created in both
# targets' databases ("app" is prod, "app_staging" is staging).
MARKER_TABLES_SQL = """
CREATE TABLE IF NOT EXISTS billing.j_markers (id bigserial PRIMARY KEY, marker text NOT NULL UNIQUE);
GRANT SELECT, INSERT ON billing.j_markers TO bookkeeper, agent_rw;
GRANT USAGE ON SEQUENCE billing.j_markers_id_seq TO bookkeeper, agent_rw;
"""


def ensure_marker_tables(pg):
    for db in ("app", "app_staging"):
        pg.sql(MARKER_TABLES_SQL, dbname=db)


def markers_in_db(pg, prefix, dbname="app_staging"):
    """Markers starting with prefix that are committed, read directly as superuser."""
    rows = pg.sql(f"SELECT marker FROM billing.j_markers WHERE marker LIKE '{prefix}%'", dbname=dbname)
    return {r[0] for r in rows}


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


def raw_lines(path):
    """The file's lines as bytes, without their newline (a last line without one is kept)."""
    return split_lines(path.read_bytes())


def split_lines(data):
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def records(path, settle=5.0):
    """Every line parsed as JSON (fails the test on a line that is not), once the file ends at a
    line boundary (waiting up to settle seconds: see settled_bytes)."""
    out = []
    for i, line in enumerate(split_lines(settled_bytes(path, settle)), 1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise AssertionError(f"{path}:{i}: not JSON ({e}): {line[:200]!r}") from None
        assert isinstance(rec, dict), f"{path}:{i}: not an object"
        out.append(rec)
    return out


def settled_bytes(path, timeout=5.0):
    """The file's bytes once they end at a line boundary. A reader of a live log can catch
    pgwarden in the middle of its write() (the kernel extends the file a page at a time), so a
    missing last newline only counts once it stays missing."""
    deadline = time.monotonic() + timeout
    while True:
        data = path.read_bytes()
        if data == b"" or data.endswith(b"\n") or time.monotonic() > deadline:
            return data
        time.sleep(0.02)


def check_chain(*paths, first_prev=ZERO_PREV, first_seq=1):
    """Recompute the chain over the files in order: every line ends in a newline, is JSON,
    has seq = previous + 1 and prev = SHA-256 of the previous line's bytes. Returns records."""
    prev, seq, out = first_prev, first_seq - 1, []
    for path in paths:
        data = settled_bytes(path)
        assert data == b"" or data.endswith(b"\n"), f"{path}: last line has no newline"
        for i, line in enumerate(split_lines(data), 1):
            rec = json.loads(line)
            where = f"{path.name}:{i}"
            if prev is not None:
                assert rec["prev"] == prev, f"{where}: prev {rec['prev']} != hash of previous line {prev}"
            if seq is not None:
                assert rec["seq"] == seq + 1, f"{where}: seq {rec['seq']} after {seq}"
            prev, seq = sha256_hex(line), rec["seq"]
            out.append(rec)
    return out


def cli(*args, timeout=30):
    return subprocess.run([str(PGWARDEN), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def verify(*paths, settle=True):
    """(exit status, stdout+stderr) of `pgwarden audit verify FILE...`. With settle, waits for
    each file to end at a line boundary first (see settled_bytes); pass settle=False for a file
    that is torn on purpose."""
    if settle:
        for path in paths:
            settled_bytes(path)
    p = cli("audit", "verify", *paths)
    return p.returncode, p.stdout + p.stderr


def psql(dsn, *args, check=True, env=None):
    p = subprocess.run(["psql", "-X", "-At", "-d", dsn, *args], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"psql failed ({p.returncode}): {p.stderr}")
    return p


def wait_for(pred, timeout=5.0, step=0.02, what="condition"):
    """Poll pred() until it returns something truthy; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def wait_records(path, pred, timeout=5.0, what="audit records"):
    """Wait until pred(records) is truthy (records re-read each time); returns the records."""
    def probe():
        try:
            recs = records(path, settle=0)  # a torn last line: this probe fails, the next retries
        except (AssertionError, OSError):
            return None
        return recs if pred(recs) else None
    return wait_for(probe, timeout, what=what)


def stmt_records(recs, **match):
    return [r for r in recs if r["event"] == "statement" and all(r.get(k) == v for k, v in match.items())]


def result_for(recs, stmt):
    """The result record whose ref is this statement's seq (None if there is none)."""
    found = [r for r in recs if r["event"] == "result" and r.get("ref") == stmt["seq"]]
    assert len(found) <= 1, f"several results for seq {stmt['seq']}: {found}"
    return found[0] if found else None
