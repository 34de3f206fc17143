"""test_demo.py - `make run`'s demo, exercised non-interactively (DEMO_CHECK=1): a fresh
PostgreSQL under a temp dir, the demo schema, pgwarden, and every copy-paste command the demo
prints (tenant isolation, denied production write with the next window, staging write, denied
GRANT to anon, audit show/verify)."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.identity


def test_demo_checks_pass():
    # not pytest's tmp_path: that is 0700 root, and PostgreSQL runs as the postgres user
    base = tempfile.mkdtemp(prefix="pgwarden-demo-")
    os.chmod(base, 0o755)
    env = dict(os.environ, DEMO_CHECK="1", DEMO_DIR=os.path.join(base, "demo"))
    try:
        p = subprocess.run(["bash", str(REPO / "deploy/demo/run.sh")], env=env, capture_output=True, text=True,
                           timeout=180, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert "demo: all checks passed" in out
    # the demo's own audit log verifies
    assert "denied: write-outside-window" in out and "denied: grant-to-protected-role" in out


def test_readme_connection_examples_work_against_the_demo():
    """The README's psql and URI examples, as printed, with the demo's token and port (issue 13):
    sslmode=require needs the TLS the demo now serves."""
    import re
    readme = (REPO / "README.md").read_text()
    m = re.search(r'^psql "(host=127\.0\.0\.1 port=6432 dbname=prod user=user:jimmie password=\$TOKEN '
                  r'sslmode=require)"$', readme, re.M)
    assert m, "README's connection example changed: keep this test in step"
    uri = re.search(r"`(postgresql://user%3Ajimmie:\$TOKEN@127\.0\.0\.1:6432/prod\?sslmode=require)`", readme)
    assert uri, "README's URI example changed"
    base = tempfile.mkdtemp(prefix="pgwarden-demo-")
    os.chmod(base, 0o755)
    demo = os.path.join(base, "demo")
    port = __import__("pgserver").free_port()
    env = dict(os.environ, DEMO_DIR=demo, PGWARDEN_PORT=str(port))
    proc = subprocess.Popen(["bash", str(REPO / "deploy/demo/run.sh")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        printed = ""
        for line in proc.stdout:  # the demo prints the commands once pgwarden listens
            printed += line
            if "Ctrl-C stops" in line:
                break
        token = re.search(r"^TOKEN=(\S+)$", printed, re.M).group(1)
        assert f'psql "host=127.0.0.1 port={port} dbname=prod user=user:jimmie password=$TOKEN sslmode=require"' \
            in printed, printed
        for dsn in (m.group(1), uri.group(1)):
            dsn = dsn.replace("$TOKEN", token).replace("6432", str(port))
            out = subprocess.run(["psql", "-X", "-At", "-d", dsn, "-c", "SELECT current_user, ssl FROM pg_stat_ssl "
                                  "RIGHT JOIN (SELECT 1) x ON true LIMIT 1"], capture_output=True, text=True,
                                 timeout=30)
            assert out.returncode == 0 and out.stdout.startswith("bookkeeper|"), (dsn, out.stdout, out.stderr)
        plain = m.group(1).replace("$TOKEN", token).replace("6432", str(port)).replace("require", "disable")
        out = subprocess.run(["psql", "-X", "-d", plain, "-c", "SELECT 1"], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and "TLS is required" in out.stderr  # the demo does not take tokens in clear
    finally:
        os.killpg(proc.pid, 2)  # Ctrl-C, as a user would
        proc.wait(60)
        shutil.rmtree(base, ignore_errors=True)
