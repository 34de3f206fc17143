"""test_functions.py - function-aware policy (CONTRACT §4 "Function calls are judged by what
the function does"): pgwarden reads each target's pg_proc and judges a call by the function's
body, recursively, so SELECT f() cannot hide an identity change, a write or dynamic SQL."""
import re
import secrets
import subprocess
import time

import psycopg
import pytest
from psycopg import errors

from warden import PGWARDEN

pytestmark = pytest.mark.identity


def rule_of(exc):
    return exc.diag.message_detail or ""


def identity_of(c):
    return c.execute("SELECT current_user, current_setting('app.tenant_id'), "
                     "current_setting('app.actor_id')").fetchone()


def wait_for_catalog(w, target, since_lines, timeout=10):
    """Wait until pgwarden logged a catalog load for target after the first since_lines lines."""
    deadline = time.time() + timeout
    pat = re.compile(rf"catalog {target}: \d+ user functions analysed")
    while time.time() < deadline:
        lines = w.log_path.read_text(errors="replace").splitlines()[since_lines:]
        if any(pat.search(line) for line in lines):
            return
        time.sleep(0.05)
    raise AssertionError(f"no catalog load for {target}:\n" + w.stderr_text(20))


def log_len(w):
    return len(w.log_path.read_text(errors="replace").splitlines())


@pytest.fixture
def fresh(pgwarden_factory):
    """A pgwarden of its own whose catalogs have loaded."""
    w = pgwarden_factory()
    wait_for_catalog(w, "prod", 0)
    wait_for_catalog(w, "staging", 0)
    return w


def test_read_only_helper_runs_on_production(fresh):
    with psycopg.connect(fresh.dsn(dbname="prod"), autocommit=True) as c:
        assert c.execute("SELECT * FROM whoami()").fetchone() == ("user:jimmie", "acme", "bookkeeper")
        c.execute("SELECT billing.tenant_total()")


@pytest.mark.parametrize("dbname", ["prod", "staging"])
def test_function_that_sets_the_tenant_is_identity_change(fresh, dbname):
    with psycopg.connect(fresh.dsn(dbname=dbname), autocommit=True) as c:
        before = identity_of(c)
        for sql in ("SELECT switch_tenant('globex')", "SELECT billing.switch_tenant('globex')",
                    "SELECT 1 WHERE switch_tenant('globex') IS NOT NULL",
                    "WITH x AS (SELECT switch_tenant('globex')) SELECT * FROM x"):
            with pytest.raises(errors.InsufficientPrivilege) as ei:
                c.execute(sql)
            assert "identity-change" in rule_of(ei.value), sql
            assert ei.value.diag.message_primary.startswith("pgwarden:")
            assert "switch_tenant" in ei.value.diag.message_primary
        assert identity_of(c) == before
        assert c.execute("SELECT count(*) FROM invoices").fetchone() == (3,)


def test_dynamic_sql_function_is_opaque_unless_trusted(fresh, pgwarden_factory):
    with psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as c:
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            c.execute("SELECT run_sql('SELECT 1')")
        assert "opaque-sql" in rule_of(ei.value)
    trusted = pgwarden_factory(extra_config="trusted_functions = billing.run_sql\n")
    wait_for_catalog(trusted, "staging", 0)
    with psycopg.connect(trusted.dsn(dbname="staging"), autocommit=True) as c:
        c.execute("SELECT run_sql('SELECT 1')")


def test_writing_function_needs_a_window_on_production(fresh):
    with psycopg.connect(fresh.dsn(dbname="prod"), autocommit=True) as c:
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            c.execute("SELECT add_invoice(5)")
        assert "write-outside-window" in rule_of(ei.value)
    with psycopg.connect(fresh.dsn(dbname="staging")) as c:  # a transaction, rolled back
        assert c.execute("SELECT add_invoice(5)").fetchone()[0] > 0
        c.rollback()


def superuser(pg, db):
    return psycopg.connect(pg.admin_dsn(db), autocommit=True)


@pytest.fixture
def scratch(pg):
    """A schema in app_staging where the app role may create functions, with a few test functions
    made directly on the database; dropped afterwards."""
    schema = "fx_" + secrets.token_hex(3)
    with superuser(pg, "app_staging") as c:
        c.execute(f"CREATE SCHEMA {schema} AUTHORIZATION bookkeeper")
        c.execute(f"GRANT USAGE ON SCHEMA {schema} TO pgwarden_svc")
        c.execute(f"""
            CREATE FUNCTION {schema}.inner_set(t text) RETURNS text LANGUAGE plpgsql AS $$
              BEGIN PERFORM set_config('app.tenant_id', t, false); RETURN t; END $$;
            CREATE FUNCTION {schema}.outer_set(t text) RETURNS text LANGUAGE sql
              AS $$ SELECT {schema}.inner_set(t) $$;
            CREATE FUNCTION {schema}.ovl(i int) RETURNS int LANGUAGE sql AS $$ SELECT i $$;
            CREATE FUNCTION {schema}.ovl(t text) RETURNS int LANGUAGE sql
              AS $$ INSERT INTO billing.invoices (tenant, amount, note) VALUES ('acme', 1, t) RETURNING 1 $$;
            CREATE FUNCTION {schema}.definer() RETURNS text LANGUAGE sql SECURITY DEFINER
              SET app.tenant_id = 'globex' AS $$ SELECT current_setting('app.tenant_id') $$;
            CREATE FUNCTION {schema}.plain() RETURNS int LANGUAGE sql STABLE AS $$ SELECT 42 $$;
            GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO bookkeeper;
        """)
    yield schema
    with superuser(pg, "app_staging") as c:
        c.execute(f"DROP SCHEMA {schema} CASCADE")


def test_calls_judged_through_two_levels_overloads_and_proconfig(fresh, scratch):
    n = log_len(fresh)
    fresh.reload()  # functions made directly on the database are seen at the next load
    wait_for_catalog(fresh, "staging", n)
    with psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as c:
        before = identity_of(c)
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            c.execute(f"SELECT {scratch}.outer_set('globex')")  # sql -> plpgsql -> set_config
        assert "identity-change" in rule_of(ei.value)
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            c.execute(f"SELECT {scratch}.definer()")  # SECURITY DEFINER ... SET app.tenant_id
        assert "identity-change" in rule_of(ei.value)
        assert c.execute(f"SELECT {scratch}.plain()").fetchone() == (42,)
        assert identity_of(c) == before
    with psycopg.connect(fresh.dsn(dbname="prod"), autocommit=True) as c:
        # ovl(int) only reads but ovl(text) writes: an ambiguous name counts as its worst overload
        # (prod's database has no such schema, so there it is unknown: opaque)
        with pytest.raises(errors.InsufficientPrivilege):
            c.execute(f"SELECT {scratch}.ovl(1)")


def test_view_calling_an_identity_changing_function_is_denied(fresh, scratch, pg):
    # SELECT * FROM v runs v's definition: a view over switch_tenant() changes identity
    # (set_config works even in a read-only transaction), one level or two.
    with superuser(pg, "app_staging") as su:
        su.execute(f"""
            CREATE VIEW {scratch}.v_switch AS SELECT billing.switch_tenant('globex') AS t;
            CREATE VIEW {scratch}.v_over AS SELECT * FROM {scratch}.v_switch;
            CREATE VIEW {scratch}.v_plain AS SELECT 42 AS answer;
            GRANT SELECT ON ALL TABLES IN SCHEMA {scratch} TO bookkeeper;
        """)
    n = log_len(fresh)
    fresh.reload()  # views made directly on the database are seen at the next load
    wait_for_catalog(fresh, "staging", n)
    with psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as c:
        before = identity_of(c)
        for view in ("v_switch", "v_over"):
            with pytest.raises(errors.InsufficientPrivilege) as ei:
                c.execute(f"SELECT * FROM {scratch}.{view}")
            assert "identity-change" in rule_of(ei.value), view
            msg = ei.value.diag.message_primary
            assert f"view {scratch}.{view}" in msg and "switch_tenant" in msg, msg
        assert identity_of(c) == before
        assert c.execute(f"SELECT * FROM {scratch}.v_plain").fetchone() == (42,)
        assert identity_of(c) == before


def test_function_unknown_to_the_catalog_is_denied(fresh, scratch):
    # created directly on the database after the catalog was read: pgwarden cannot know it
    with psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as c:
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            c.execute(f"SELECT {scratch}.plain()")
        assert "opaque-sql" in rule_of(ei.value)


def test_create_or_replace_mid_session_is_seen_by_the_next_call(fresh, scratch):
    with psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as c:
        c.execute(f"CREATE FUNCTION {scratch}.mine() RETURNS text LANGUAGE sql AS $$ SELECT 'ok'::text $$")
        assert c.execute(f"SELECT {scratch}.mine()").fetchone() == ("ok",)
        c.execute(f"""CREATE OR REPLACE FUNCTION {scratch}.mine() RETURNS text LANGUAGE sql
                      AS $$ SELECT set_config('app.tenant_id', 'globex', false) $$""")
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            c.execute(f"SELECT {scratch}.mine()")
        assert "identity-change" in rule_of(ei.value)
        assert identity_of(c)[1] == "acme"
        # and back to harmless
        c.execute(f"CREATE OR REPLACE FUNCTION {scratch}.mine() RETURNS text LANGUAGE sql "
                  "AS $$ SELECT 'again'::text $$")
        assert c.execute(f"SELECT {scratch}.mine()").fetchone() == ("again",)


def test_explain_names_the_function_and_why(fresh):
    p = subprocess.run([str(PGWARDEN), "--explain", "-c", str(fresh.config_path), "--target", "staging",
                        "SELECT switch_tenant('x')"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "identity-change" in p.stdout and "switch_tenant" in p.stdout
    p = subprocess.run([str(PGWARDEN), "--explain", "-c", str(fresh.config_path), "--target", "prod",
                        "SELECT * FROM whoami()"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "allow" in p.stdout


def test_catalog_counts_on_metrics(pgwarden_factory):
    import urllib.request
    from pgserver import free_port
    port = free_port()
    w = pgwarden_factory(extra_config=f"admin_listen = 127.0.0.1:{port}\n")
    wait_for_catalog(w, "staging", 0)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search(r'pgwarden_user_functions\{target="staging",class="analysed"\} (\d+)', body)
    assert m and int(m.group(1)) >= 5, body
    assert re.search(r'pgwarden_user_functions\{target="staging",class="identity"\} [1-9]', body)
