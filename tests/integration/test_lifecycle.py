"""test_lifecycle.py - the process as an operator sees it (CONTRACT §1, §2): --check,
--version, SIGHUP reload (a bad config changes nothing), SIGTERM."""
import re
import signal
import subprocess

import psycopg
import pytest

from warden import PGWARDEN, token_line

pytestmark = pytest.mark.identity


def run(*args):
    return subprocess.run([str(PGWARDEN), *args], capture_output=True, text=True, timeout=30)


def test_version():
    p = run("--version")
    assert p.returncode == 0
    assert re.fullmatch(r"pgwarden \d+\.\d+\.\d+\n", p.stdout), p.stdout


def test_check_valid_and_invalid(pgwarden, tmp_path):
    assert run("--check", "-c", str(pgwarden.config_path)).returncode == 0
    bad = tmp_path / "bad.ini"
    text = pgwarden.config_text().replace("[pgwarden]\n", "[pgwarden]\nno_such_key = 1\n")
    bad.write_text(text)
    (tmp_path / "tokens.txt").write_text(pgwarden.tokens_path.read_text())
    p = run("--check", "-c", str(bad))
    assert p.returncode == 1
    assert re.search(r"bad\.ini:3: .*no_such_key", p.stdout + p.stderr), p.stdout + p.stderr


def test_check_says_ok(pgwarden):
    p = run("--check", "-c", str(pgwarden.config_path))
    assert p.returncode == 0 and p.stdout == "ok\n", (p.stdout, p.stderr)


def test_workers_other_than_1_is_a_config_error(pgwarden, tmp_path):
    """workers is not implemented beyond one event loop: a parsed-but-ignored value would mislead."""
    (tmp_path / "tokens.txt").write_text(pgwarden.tokens_path.read_text())
    for value in ("2", "8"):
        bad = tmp_path / "w.ini"
        bad.write_text(pgwarden.config_text().replace("[pgwarden]\n", f"[pgwarden]\nworkers = {value}\n"))
        p = run("--check", "-c", str(bad))
        assert p.returncode == 1 and p.stdout == ""
        assert re.search(r"w\.ini:3: workers: only 1 is supported", p.stderr), p.stderr
    ok = tmp_path / "ok.ini"
    ok.write_text(pgwarden.config_text().replace("[pgwarden]\n", "[pgwarden]\nworkers = 1\n"))
    assert run("--check", "-c", str(ok)).returncode == 0


def test_usage_error_exit_2():
    assert run("--no-such-flag").returncode == 2


def test_reload_bad_config_keeps_old(pgwarden_factory):
    w = pgwarden_factory()
    good = w.config_path.read_text()
    w.config_path.write_text(good + "\n[pgwarden_typo]\nx = 1\n")
    w.proc.send_signal(signal.SIGHUP)
    with psycopg.connect(w.dsn(dbname="prod")) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    assert w.alive()


def test_reload_new_token_and_session_survives(pgwarden_factory):
    w = pgwarden_factory()
    with psycopg.connect(w.dsn(dbname="prod"), autocommit=True) as c:
        w.extra_tokens = [token_line("user:late", "late-token", "bookkeeper", "globex")]
        w.reload()
        with psycopg.connect(w.dsn("user:late", token="late-token", dbname="prod")) as c2:
            assert c2.execute("SELECT DISTINCT tenant FROM invoices").fetchall() == [("globex",)]
        assert c.execute("SELECT DISTINCT tenant FROM invoices").fetchall() == [("acme",)]


def test_sigterm_idle_exits_cleanly(pgwarden_factory):
    w = pgwarden_factory()
    with psycopg.connect(w.dsn()) as c:
        c.execute("SELECT 1")
    assert w.stop(signal.SIGTERM, timeout=10) == 0
