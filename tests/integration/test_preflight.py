"""test_preflight.py - `pgwarden --check --connect` against the real PostgreSQL: every token's role
exists and the login role can SET ROLE to it, the login role's attributes, windows that are over,
window actors without a token, unreachable targets. Errors fail (exit 1), warnings do not."""
import re
import subprocess

import pytest

from pgserver import free_port
from warden import PGWARDEN, Warden, token_line

pytestmark = pytest.mark.identity


def preflight(pg, tmp_path, extra_config="", extra_tokens=(), connect=True):
    w = Warden(pg, extra_config=extra_config, extra_tokens=extra_tokens, base=tmp_path)
    w.write_files()
    args = [str(PGWARDEN), "--check", *(["--connect"] if connect else []), "-c", str(w.config_path)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return w, p


def line_no(path, needle):
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_preflight_ok_on_the_test_setup(pg, tmp_path):
    _, p = preflight(pg, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "ok\n" and p.stderr == "", (p.stdout, p.stderr)


def test_preflight_finds_bad_token_roles(pg, tmp_path):
    w, p = preflight(pg, tmp_path, extra_tokens=[
        token_line("user:norole", "t1", "no_such_role_pf", "acme"),
        token_line("user:notmember", "t2", "postgres", "acme", "targets=staging"),
    ])
    assert p.returncode == 1 and p.stdout == "", (p.stdout, p.stderr)
    tokens = str(w.tokens_path)
    n1, n2 = line_no(w.tokens_path, "user:norole"), line_no(w.tokens_path, "user:notmember")
    # the role missing on both targets; the non-member role only on its one target
    assert p.stderr.count(f'{tokens}:{n1}: role "no_such_role_pf" of actor "user:norole" does not exist') == 2
    assert re.search(rf'{re.escape(tokens)}:{n2}: the login role cannot SET ROLE to "postgres" .*"staging"',
                     p.stderr), p.stderr
    assert '"postgres" (actor "user:notmember") on target "prod"' not in p.stderr
    # without --connect the same files are valid: only the live check sees this
    _, p2 = preflight(pg, tmp_path, extra_tokens=[
        token_line("user:norole", "t1", "no_such_role_pf", "acme")], connect=False)
    assert p2.returncode == 0 and p2.stdout == "ok\n"


def test_preflight_warns_on_login_role_attributes(pg, tmp_path):
    pg.sql("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pf_strong') THEN "
           "CREATE ROLE pf_strong LOGIN BYPASSRLS CREATEROLE PASSWORD 'pf-pass'; END IF; END$$")
    pg.sql("GRANT bookkeeper, agent_rw TO pf_strong")
    w = Warden(pg, base=tmp_path)
    w.write_files()
    text = w.config_path.read_text().replace(f"user={pg.svc_user} password={pg.svc_password}",
                                             "user=pf_strong password=pf-pass")
    w.config_path.write_text(text)
    p = subprocess.run([str(PGWARDEN), "--check", "--connect", "-c", str(w.config_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == "ok\n", p.stderr  # warnings do not fail the check
    assert p.stderr.count('warning: target.prod: login role "pf_strong" is BYPASSRLS') == 1, p.stderr
    assert 'warning: target.staging: login role "pf_strong" is CREATEROLE' in p.stderr
    assert "superuser" not in p.stderr


def test_preflight_warns_on_superuser_login(pg, tmp_path):
    w = Warden(pg, base=tmp_path)
    w.write_files()
    text = w.config_path.read_text()
    text = re.sub(r"conninfo = .*dbname=app .*", f"conninfo = {pg.admin_dsn('app')}", text, count=1)
    w.config_path.write_text(text)
    p = subprocess.run([str(PGWARDEN), "--check", "--connect", "-c", str(w.config_path)],
                       capture_output=True, text=True, timeout=60)
    assert 'warning: target.prod: login role "postgres" is superuser' in p.stderr, p.stderr


def test_preflight_windows_and_unreachable_target(pg, tmp_path):
    extra = ("[window.old]\ntarget = prod\nstart = 2020-01-01T00:00:00Z\nend = 2020-01-02T00:00:00Z\n"
             "approved_by = ops:j\nreason = long gone\n\n"
             "[window.ghosts]\ntarget = prod\nweekly = mon 01:00-02:00\ntimezone = UTC\n"
             "approved_by = ops:j\nreason = r\nactors = user:jimmie, user:ghost\n\n"
             f"[target.gone]\nconninfo = host=127.0.0.1 port={free_port()} dbname=x user=y connect_timeout=2\n"
             "environment = staging\n")
    w, p = preflight(pg, tmp_path, extra_config=extra)
    cfg = str(w.config_path)
    assert p.returncode == 1, p.stderr  # the unreachable target is an error
    assert f"{cfg}:{line_no(w.config_path, '[window.old]')}: warning: window.old is over: it ended " \
           "2020-01-02T00:00:00Z" in p.stderr, p.stderr
    assert f'{cfg}:{line_no(w.config_path, "[window.ghosts]")}: warning: window.ghosts: actor "user:ghost" ' \
           "has no token record" in p.stderr
    assert '"user:jimmie" has no token' not in p.stderr
    m = re.search(rf"{re.escape(cfg)}:{line_no(w.config_path, '[target.gone]')}: target.gone: cannot connect: (.*)",
                  p.stderr)
    assert m and "\n" not in m.group(1) and "\t" not in m.group(1), p.stderr  # libpq's lines folded


def test_connect_without_check_is_a_usage_error(pg, tmp_path):
    p = subprocess.run([str(PGWARDEN), "--connect", "-c", "x.ini"], capture_output=True, text=True)
    assert p.returncode == 2
