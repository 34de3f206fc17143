"""test_audit_evidence.py - the log answers "under which approval" on its own (issue 13, CONTRACT §5).

start/reload records carry the config's SHA-256 and every window in force; a rejected reload is
recorded with its error; window_open/window_close are written when a window's state changes; a
denial records its message, an auth_fail its reason (the client still sees the uniform 28P01),
a connect its application_name. Checkpoints: signed records (HMAC or Ed25519), `audit verify
--key` checks them, `--expect-head` catches a cut tail, and a set that does not start at seq 1
or at a checkpoint is a warning (a fault with --key).
"""
import json
import re
import signal
import subprocess
import time

import psycopg
import pytest
from psycopg import errors

from audit_util import cli, raw_lines, records, sha256_hex, stmt_records, wait_records
from policy_helpers import rfc3339, window_section

pytestmark = pytest.mark.identity

WEEKLY = ("[window.j-weekly]\ntarget = prod\nweekly = tue,thu 22:00-23:30\ntimezone = America/Santiago\n"
          "approved_by = ops:larry\nreason = weekly maintenance\n\n")


def verify(*args):
    p = cli("audit", "verify", *map(str, args))
    return p.returncode, p.stdout, p.stderr


def of(recs, event):
    return [r for r in recs if r["event"] == event]


def hmac_key(d, name="audit.key"):
    path = d / name
    path.write_text("6f1d0c2b9a8e7f6d5c4b3a2918f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c\n")
    path.chmod(0o600)
    return path


# --- approval evidence ------------------------------------------------------------------------

def test_start_record_has_config_hash_and_windows(pgwarden_factory):
    now = int(time.time())
    extra = (window_section("j-open", now - 60, now + 3600, actors="user:ada, user:jimmie")
             + WEEKLY)
    w = pgwarden_factory(extra_config=extra)
    recs = wait_records(w.audit_path, lambda rs: of(rs, "window_open"))
    start = of(recs, "start")[0]
    assert start["config"] == sha256_hex(w.config_path.read_bytes())
    wins = {x["name"]: x for x in start["windows"]}
    assert set(wins) == {"j-open", "j-weekly"}
    assert wins["j-open"] == {"name": "j-open", "target": "prod", "start": rfc3339(now - 60),
                              "end": rfc3339(now + 3600), "approved_by": "ops:tests",
                              "reason": "policy integration test", "actors": ["user:ada", "user:jimmie"]}
    assert wins["j-weekly"] == {"name": "j-weekly", "target": "prod", "weekly": "tue,thu 22:00-23:30",
                                "timezone": "America/Santiago", "approved_by": "ops:larry",
                                "reason": "weekly maintenance", "actors": []}
    # The window open at start is recorded as opening, after the start record.
    op = of(recs, "window_open")
    assert [(r["window"], r["target"]) for r in op] == [("j-open", "prod")] and op[0]["seq"] > start["seq"]


def test_window_opens_and_closes_on_time(pgwarden_factory):
    w = pgwarden_factory()
    now = int(time.time())  # after the start, however long that took: the timer set at reload is tested
    w.reload(extra_config=window_section("j-soon", now + 2, now + 4), wait=0)
    recs = wait_records(w.audit_path, lambda rs: of(rs, "window_close"), timeout=12,
                        what="window_open and window_close records")
    op, cl = of(recs, "window_open"), of(recs, "window_close")
    assert len(op) == 1 and len(cl) == 1 and op[0]["seq"] < cl[0]["seq"]
    assert (op[0]["window"], op[0]["target"], cl[0]["window"]) == ("j-soon", "prod", "j-soon")
    # On time: not before the configured instants (the record's ts is when it was written).
    assert op[0]["ts"][:19] >= rfc3339(now + 2)[:19] and cl[0]["ts"][:19] >= rfc3339(now + 4)[:19]
    log = w.log_path.read_text()
    assert "window j-soon (target prod) opened" in log and "window j-soon (target prod) closed" in log


def test_reload_accepted_and_rejected(pgwarden_factory):
    now = int(time.time())
    w = pgwarden_factory()
    first_hash = sha256_hex(w.config_path.read_bytes())
    w.reload(extra_config=window_section("j-new", now - 10, now + 3600, actors="user:ada"))
    recs = wait_records(w.audit_path, lambda rs: of(rs, "reload"))
    ok = of(recs, "reload")[0]
    assert ok["accepted"] is True and "error" not in ok
    assert ok["config"] == sha256_hex(w.config_path.read_bytes()) != first_hash
    assert [x["name"] for x in ok["windows"]] == ["j-new"]
    assert [r["window"] for r in of(recs, "window_open")] == ["j-new"]
    # A rejected reload: recorded with its error; the windows in force stay the old ones.
    w.config_path.write_text(w.config_path.read_text() + "\n[window.broken]\ntarget = prod\nstart = yesterday\n")
    w.proc.send_signal(signal.SIGHUP)
    recs = wait_records(w.audit_path, lambda rs: len(of(rs, "reload")) == 2)
    bad = of(recs, "reload")[1]
    assert bad["accepted"] is False
    assert str(w.config_path) in bad["error"] and "start" in bad["error"], bad["error"]
    assert bad["config"] == sha256_hex(w.config_path.read_bytes())
    assert [x["name"] for x in bad["windows"]] == ["j-new"]
    assert not of(recs, "window_close"), "a rejected reload changes no window"
    # A reload that drops the window closes it.
    w.reload(extra_config="")
    recs = wait_records(w.audit_path, lambda rs: of(rs, "window_close"))
    assert [(r["window"], r["target"]) for r in of(recs, "window_close")] == [("j-new", "prod")]
    assert of(recs, "reload")[-1]["windows"] == []


def test_denial_auth_fail_and_application_name(pgwarden_factory):
    w = pgwarden_factory()
    with psycopg.connect(w.dsn("user:ada", dbname="prod", application_name="j-ticket-tool"),
                         autocommit=True) as c:
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            c.execute("INSERT INTO invoices (id) VALUES (424242)")
    said = ei.value.diag.message_primary
    answers = {}
    for actor, token, dbname in (("user:nobody-j", "x" * 20, "staging"), ("user:jimmie", "wrong-j", "staging"),
                                 ("user:expired", None, "staging"), ("agent:tally", None, "prod")):
        with pytest.raises(psycopg.OperationalError) as e2:
            psycopg.connect(w.dsn(actor, token=token, dbname=dbname))
        answers[actor] = str(e2.value)
    recs = wait_records(w.audit_path, lambda rs: len(of(rs, "auth_fail")) == 4)
    st = stmt_records(recs, sql="INSERT INTO invoices (id) VALUES (424242)")[0]
    assert st["decision"] == "deny" and st["reason"] == said and said.startswith("pgwarden:")
    allowed = [r for r in stmt_records(recs) if r["decision"] == "allow"]
    assert all("reason" not in r for r in allowed)
    reasons = {r["actor"]: r["reason"] for r in of(recs, "auth_fail")}
    assert reasons["user:nobody-j"] == "unknown actor"
    assert reasons["user:jimmie"] == "wrong token"
    assert reasons["user:expired"] == "token expired"
    assert reasons["agent:tally"] == "target not allowed for this token"
    # The client learns none of it: the same answer every time.
    for text in answers.values():
        assert "authentication failed" in text
        for r in reasons.values():
            assert r not in text
    conn = [r for r in of(recs, "connect") if r.get("actor") == "user:ada"]
    assert conn and conn[0]["application_name"] == "j-ticket-tool"
    assert all("reason" not in r for r in of(recs, "auth_ok"))


# --- the head and checkpoints -----------------------------------------------------------------

def test_verify_prints_head_and_checks_expected_head(pgwarden_factory):
    w = pgwarden_factory()
    with w.connect() as c:
        c.execute("SELECT 'j-head'")
    w.stop()
    lines = raw_lines(w.audit_path)
    last = json.loads(lines[-1])
    rc, out, _ = verify(w.audit_path)
    head = f"{last['seq']}:{sha256_hex(lines[-1])}"
    assert rc == 0 and f"head: {head}\n" in out, out
    assert verify("--expect-head", head, w.audit_path)[0] == 0
    mid = json.loads(lines[2])
    assert verify("--expect-head", f"{mid['seq']}:{sha256_hex(lines[2])}", w.audit_path)[0] == 0
    # The tail cut off: the expected head is gone.
    cut = w.dir / "cut.jsonl"
    cut.write_bytes(b"".join(x + b"\n" for x in lines[:-2]))
    rc, out, _ = verify("--expect-head", head, cut)
    assert rc == 1 and "truncated" in out and str(last["seq"]) in out, out
    assert verify(cut)[0] == 0, "without an anchor a cut tail is undetectable"
    # The head line edited: same seq, another hash.
    edited = w.dir / "edited.jsonl"
    edited.write_bytes(b"".join(x + b"\n" for x in lines[:-1]) + lines[-1].replace(b'"stop"', b'"stop" ') + b"\n")
    rc, out, _ = verify("--expect-head", head, edited)
    assert rc == 1 and "head mismatch" in out, out
    for bad in ("12", "x:" + "0" * 64, f"{last['seq']}:abc", f"0:{'0' * 64}"):
        p = cli("audit", "verify", "--expect-head", bad, w.audit_path)
        assert p.returncode == 2 and "--expect-head" in p.stderr, (bad, p.stderr)


def checkpoint_run(pgwarden_factory, key):
    """A pgwarden signing checkpoints with 'key'; a SIGHUP rotation midway; stopped at the end."""
    w = pgwarden_factory(extra_config=f"audit_checkpoint_key = {key}\n")
    with w.connect() as c:
        c.execute("SELECT 'j-cp-1'")
    old = w.audit_path.with_name("audit.jsonl.1")
    wait_records(w.audit_path, lambda rs: stmt_records(rs, sql="SELECT 'j-cp-1'"))
    w.audit_path.rename(old)
    w.proc.send_signal(signal.SIGHUP)
    wait_records(w.audit_path, lambda rs: of(rs, "reload"))
    with w.connect() as c:
        c.execute("SELECT 'j-cp-2'")
    w.stop()
    return dict(w=w, key=key, old=old, new=w.audit_path)


def check_signed_set(h, verify_key):
    w, old, new = h["w"], h["old"], h["new"]
    recs_old, recs_new = records(old), records(new)
    cps = of(recs_old, "checkpoint") + of(recs_new, "checkpoint")
    assert of(recs_old, "checkpoint"), "a checkpoint after start"
    assert recs_new[0]["event"] == "checkpoint", "a rotated file starts at a checkpoint"
    assert recs_new[-1]["event"] == "checkpoint" and recs_new[-2]["event"] == "stop", "a checkpoint at stop"
    assert all(re.fullmatch(r"[0-9a-f]+", c["sig"]) and c["alg"] in ("hmac-sha256", "ed25519") for c in cps)
    rc, out, err = verify("--key", verify_key, old, new)
    assert rc == 0 and "verified" in out, out + err
    # The newest file alone starts at a checkpoint: anchored.
    rc, out, err = verify("--key", verify_key, new)
    assert rc == 0 and "warning" not in err, out + err
    # A wrong key fails on the first checkpoint.
    wrong = w.dir / "wrong.key"
    wrong.write_text("another-secret-of-enough-length-0123456789\n")
    rc, out, _ = verify("--key", wrong, old, new)
    assert rc == 1 and "bad checkpoint" in out, out
    # A forged checkpoint (signature changed, chain recomputed is not needed: the last line).
    lines = raw_lines(new)
    forged = w.dir / "forged.jsonl"
    last = json.loads(lines[-1])
    sig = last["sig"]
    bad_sig = ("0" if sig[0] != "0" else "1") + sig[1:]
    forged.write_bytes(b"".join(x + b"\n" for x in lines[:-1]) + lines[-1].replace(sig.encode(), bad_sig.encode()) + b"\n")
    rc, out, _ = verify("--key", verify_key, old, forged)
    assert rc == 1 and "bad checkpoint" in out, out
    # A set whose first file was dropped and which starts elsewhere: a warning, a fault with --key.
    cut = w.dir / "nofirst.jsonl"
    cut.write_bytes(b"".join(x + b"\n" for x in raw_lines(old)[3:]))
    rc, out, err = verify(cut)
    assert rc == 0 and "warning" in err and "first file" in err, out + err
    rc, out, err = verify("--key", verify_key, cut, new)
    assert rc == 1 and "unanchored start" in out, out + err
    # The tail cut after the last checkpoint the auditor recorded: caught by --expect-head.
    rc, out, _ = verify("--key", verify_key, old, new)
    head = re.search(r"^head: (\S+)$", out, re.M).group(1)
    trunc = w.dir / "trunc.jsonl"
    trunc.write_bytes(b"".join(x + b"\n" for x in lines[:-3]))
    rc, out, _ = verify("--key", verify_key, "--expect-head", head, old, trunc)
    assert rc == 1 and "truncated" in out, out
    # ... or the whole last file dropped.
    rc, out, _ = verify("--key", verify_key, "--expect-head", head, old)
    assert rc == 1 and "truncated" in out, out


def test_checkpoints_hmac(pgwarden_factory, tmp_path):
    h = checkpoint_run(pgwarden_factory, hmac_key(tmp_path))
    assert all(c["alg"] == "hmac-sha256" for c in of(records(h["new"]), "checkpoint"))
    check_signed_set(h, h["key"])


def ed25519_key(d):
    priv = d / "audit_ed25519.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(priv)], check=True)
    subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout", "-out", str(d / "audit_ed25519.pub")],
                   check=True)
    return priv


def test_checkpoints_ed25519(pgwarden_factory, tmp_path):
    h = checkpoint_run(pgwarden_factory, ed25519_key(tmp_path))
    assert all(c["alg"] == "ed25519" and len(c["sig"]) == 128 for c in of(records(h["new"]), "checkpoint"))
    check_signed_set(h, tmp_path / "audit_ed25519.pub")
    # The private key verifies too; the public one cannot sign (a config error).
    assert verify("--key", h["key"], h["old"], h["new"])[0] == 0
    w = h["w"]
    w.extra_config = f"audit_checkpoint_key = {tmp_path / 'audit_ed25519.pub'}\n"
    w.write_files()
    p = cli("--check", "-c", w.config_path)
    assert p.returncode == 1 and "audit_checkpoint_key" in p.stderr, p.stderr


def test_bad_checkpoint_key_is_a_config_error(pgwarden_factory, tmp_path):
    w = pgwarden_factory()
    short = w.dir / "short.key"
    short.write_text("too-short\n")
    w.extra_config = f"audit_checkpoint_key = {short.name}\n"
    w.write_files()
    p = cli("--check", "-c", w.config_path)
    assert p.returncode == 1 and "audit_checkpoint_key" in p.stderr and re.search(r":\d+: ", p.stderr), p.stderr
    rsa = w.dir / "rsa.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024", "-out", str(rsa)],
                   check=True, capture_output=True)
    w.extra_config = f"audit_checkpoint_key = {rsa.name}\n"
    w.write_files()
    p = cli("--check", "-c", w.config_path)
    assert p.returncode == 1 and "Ed25519" in p.stderr, p.stderr
    p = cli("audit", "verify", "--key", short, w.audit_path)
    assert p.returncode == 2 and "short.key" in p.stderr, p.stderr


def test_rejected_reload_does_not_quote_a_connection_string(pgwarden_factory):
    w = pgwarden_factory()
    text = w.config_path.read_text()
    w.config_path.write_text(text + "\n[target.j-bad]\nconninfo = host=127.0.0.1 password=hunter2 sekrit-j\n"
                                    "environment = staging\n")
    w.proc.send_signal(signal.SIGHUP)
    recs = wait_records(w.audit_path, lambda rs: of(rs, "reload"))
    bad = of(recs, "reload")[0]
    assert bad["accepted"] is False and "conninfo" in bad["error"], bad
    assert "sekrit-j" not in bad["error"] and "hunter2" not in bad["error"]
    assert "sekrit-j" not in w.audit_path.read_text()


def test_periodic_checkpoints_only_with_activity(pgwarden_factory, tmp_path):
    key = hmac_key(tmp_path)
    w = pgwarden_factory(extra_config=f"audit_checkpoint_key = {key}\naudit_checkpoint_interval = 1\n")
    with w.connect() as c:
        c.execute("SELECT 'j-periodic'")
    recs = wait_records(w.audit_path, lambda rs: of(rs, "checkpoint")
                        and of(rs, "checkpoint")[-1]["seq"] > stmt_records(rs, sql="SELECT 'j-periodic'")[0]["seq"]
                        if stmt_records(rs, sql="SELECT 'j-periodic'") else False, timeout=10,
                        what="a periodic checkpoint after the statement")
    # Idle: no record was written since that checkpoint, so no more come.
    n = len(of(records(w.audit_path), "checkpoint"))
    time.sleep(2.5)
    recs = records(w.audit_path)
    assert len(of(recs, "checkpoint")) == n, "checkpoints while idle"
    assert recs[-1]["event"] == "checkpoint"
    rc, out, err = verify("--key", key, w.audit_path)
    assert rc == 0 and f"checkpoints: {n} verified" in out, out + err
