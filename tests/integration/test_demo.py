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
