"""test_walls.py - the walls inside the database (deploy/walls.sql) hold with classification off.

Most tests put ./pgwarden-relay (built with -DPGW_RELAY_ONLY: statements are audited and relayed but
never classified, so every escape reaches PostgreSQL) in front of app_walled, the production copy
of the demo schema that tests/sql/demo_schema.sql hardens with deploy/walls.sql. Whatever pgwarden's
classifier would have missed, the database must keep the promises: the tenant never changes and no
other tenant's row is ever visible, production refuses writes outside a window, and nothing is
granted to a protected role. A control test runs the same escape against the unwalled prod target,
so the method is shown to see a breach when there is one.
"""
import os
import secrets
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from pgserver import REPO
from policy_helpers import window_section

pytestmark = pytest.mark.identity

RELAY_BIN = Path(os.environ.get("PGWARDEN_RELAY_BIN", REPO / "pgwarden-relay"))
OTHER_TENANT = "globex"  # user:jimmie is acme; globex rows must never show


@pytest.fixture(scope="module")
def relay_bin():
    """./pgwarden-relay, built (incrementally) by `make relay-bench-bin` unless given."""
    if "PGWARDEN_RELAY_BIN" not in os.environ:
        subprocess.run(["make", "-s", "relay-bench-bin"], cwd=REPO, check=True, capture_output=True)
    assert RELAY_BIN.exists()
    return RELAY_BIN


@pytest.fixture(scope="module")
def wall_key(pg, tmp_path_factory):
    """A fresh wall key, stored in app_walled (as walls.sql's set_key does) and in a 0600 file."""
    key = secrets.token_hex(32)
    path = tmp_path_factory.mktemp("walls") / "walled.key"
    path.write_text(key + "\n")
    os.chmod(path, 0o600)
    pg.sql(f"SELECT pgwarden_wall.set_key('{key}')", "app_walled")
    return path


def walled_target(pg, key_path, name="walled", db="app_walled", environment="production"):
    return (f"[target.{name}]\nconninfo = {pg.svc_dsn(db)}\nenvironment = {environment}\n"
            f"walls = required\nwall_key_file = {key_path}\n\n")


def open_window(target="walled", seconds=3600):
    now = int(time.time())
    return window_section(f"{target}-now", now - 60, now + seconds, target=target)


@pytest.fixture
def relay(pg, pgwarden_factory, relay_bin, wall_key):
    """pgwarden-relay with the walled target, no window open."""
    return pgwarden_factory(extra_config=walled_target(pg, wall_key), binary=relay_bin)


@pytest.fixture
def relay_in_window(pg, pgwarden_factory, relay_bin, wall_key):
    """pgwarden-relay with the walled target inside an open window."""
    return pgwarden_factory(extra_config=walled_target(pg, wall_key) + open_window(), binary=relay_bin)


def try_sql(conn, sql):
    """Run sql; return None, or the error's message (the escape attempt may fail either way)."""
    try:
        conn.execute(sql)
        return None
    except psycopg.Error as e:
        return str(e)


def visible_tenants(conn, table="billing.invoices"):
    """The tenants of the rows this session can see; none when it may not read the table at all
    (after RESET ROLE the login role itself holds no privilege)."""
    try:
        return {r[0] for r in conn.execute(f"SELECT tenant FROM {table}").fetchall()}
    except psycopg.errors.InsufficientPrivilege:
        conn.rollback()
        return set()


def invoice_count(pg):
    return pg.sql("SELECT count(*) FROM billing.invoices", "app_walled")[0][0]


# --- the pin is signed and verified --------------------------------------------------------------


def test_pin_is_verified_by_the_database(relay):
    with relay.connect("user:jimmie", dbname="walled") as c:
        row = c.execute("SELECT pgwarden_wall.pin_status(), pgwarden_wall.tenant_id(), "
                        "pgwarden_wall.actor_id(), current_user::text").fetchone()
        assert row == ("ok", "acme", "user:jimmie", "bookkeeper")
        assert visible_tenants(c) == {"acme"}
    with relay.connect("user:ada", dbname="walled") as c:
        assert visible_tenants(c) == {"globex"}


# --- identity and tenant escapes: each one fails at the database --------------------------------

# The escapes of issue 14 hole 1 (and their plain forms), sent through a proxy that classifies
# nothing. Each is tried in a fresh session of user:jimmie (tenant acme).
ESCAPES = {
    "set_config tenant": "SELECT set_config('app.tenant_id', 'globex', false)",
    "SET tenant": "SET app.tenant_id = 'globex'",
    "set_config tenant local": "BEGIN; SELECT set_config('app.tenant_id', 'globex', true); "
                               "SELECT tenant FROM billing.invoices; COMMIT",
    "set_config role": "SELECT set_config('role', 'agent_rw', false)",
    "SET ROLE other app role": "SET ROLE agent_rw",
    "RESET ROLE": "RESET ROLE",
    "user function": "SELECT billing.switch_tenant('globex')",
    "user function, attribute notation": "SELECT ('globex'::text).switch_tenant",
    "user function, attribute notation on a column": "SELECT (x.t).switch_tenant FROM (SELECT 'globex'::text AS t) x",
    "ts_stat running set_config tenant":
        "SELECT * FROM ts_stat('SELECT set_config(''app.tenant_id'', ''globex'', false)::tsvector')",
    "ts_stat, attribute notation, setting role":
        "SELECT ('SELECT set_config(''role'', ''agent_rw'', false)::tsvector'::text).ts_stat",
    "DO block": "DO $$ BEGIN PERFORM set_config('app.tenant_id', 'globex', false); END $$",
    "actor and tenant together": "SELECT set_config('app.actor_id', 'user:ada', false), "
                                 "set_config('app.tenant_id', 'globex', false)",
    "RESET ALL then tenant": "RESET ALL; SET app.tenant_id = 'globex'",
}


def assert_tenant_held(c):
    """After an escape: no other tenant's row, and the verified tenant is acme or nothing."""
    if c.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        c.execute("ROLLBACK")
    tenants = visible_tenants(c)
    assert OTHER_TENANT not in tenants, tenants
    assert tenants <= {"acme"}
    wall = c.execute("SELECT pgwarden_wall.tenant_id()").fetchone()[0]
    assert wall in ("acme", None)
    assert visible_tenants(c, "billing.notes") <= {"acme"}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_identity_escape_fails_at_the_database(relay, escape):
    with relay.connect("user:jimmie", dbname="walled") as c:
        assert visible_tenants(c) == {"acme"}
        try_sql(c, ESCAPES[escape])
        assert_tenant_held(c)
        # And the escape left the session with an identity the database does not vouch for,
        # or with the original one (when PostgreSQL itself refused the escape).
        status = c.execute("SELECT pgwarden_wall.pin_status()").fetchone()[0]
        assert status in ("ok", "mismatch", "unsigned")
        if status == "ok":
            assert c.execute("SELECT pgwarden_wall.tenant_id()").fetchone()[0] == "acme"


def test_trigger_that_sets_the_tenant(relay_in_window):
    """An INSERT whose row trigger switches the tenant (inside a window, so the write itself is
    allowed): the switched tenant is no longer the signed one, so the row's tenant check fails and
    the statement, the switch with it, is rolled back."""
    with relay_in_window.connect("user:jimmie", dbname="walled") as c:
        err = try_sql(c, "INSERT INTO billing.notes (body) VALUES ('trigger escape')")
        assert err is not None and "row-level security" in err, err
        assert_tenant_held(c)
        assert c.execute("SELECT pgwarden_wall.pin_status()").fetchone()[0] == "ok"
        # The same trigger with the switch kept (a subtransaction that commits, then a read):
        try_sql(c, "BEGIN; SAVEPOINT a; INSERT INTO billing.notes (body) VALUES ('x'); "
                   "ROLLBACK TO a; SELECT set_config('app.tenant_id', 'globex', false); COMMIT")
        assert_tenant_held(c)


def test_signature_from_another_session_does_not_work(relay):
    """ada's own signature, copied into jimmie's session with ada's actor and tenant: it is bound
    to ada's backend, so jimmie still gets no globex rows."""
    with relay.connect("user:ada", dbname="walled") as ada, \
            relay.connect("user:jimmie", dbname="walled") as jim:
        sig = ada.execute("SELECT current_setting('pgwarden.pin')").fetchone()[0]
        assert len(sig) == 64
        jim.execute("SELECT set_config('app.actor_id', 'user:ada', false), "
                    "set_config('app.tenant_id', 'globex', false), set_config('pgwarden.pin', %s, false)",
                    (sig,))
        assert_tenant_held(jim)
        assert jim.execute("SELECT pgwarden_wall.pin_status()").fetchone()[0] == "mismatch"


def test_the_wall_functions_give_nothing_to_sign_with(relay):
    """The signing function and the key are out of reach of every role pgwarden can become,
    and of pgwarden_svc itself."""
    with relay.connect("user:jimmie", dbname="walled") as c:
        for sql in ("SELECT pgwarden_wall.mac('x')", "SELECT * FROM pgwarden_wall.key",
                    "SELECT pgwarden_wall.set_key(repeat('0', 64))",
                    "RESET ROLE; SELECT * FROM pgwarden_wall.key",
                    "RESET ROLE; SELECT pgwarden_wall.mac('x')"):
            err = try_sql(c, sql)
            assert err is not None and "permission denied" in err, (sql, err)


def test_key_hidden_even_from_pg_read_all_data(pg, relay):
    """A role that may read every table (pg_read_all_data) still sees no key row: forced RLS."""
    pg.sql("GRANT pg_read_all_data TO bookkeeper")
    try:
        with relay.connect("user:jimmie", dbname="walled") as c:
            assert c.execute("SELECT count(*) FROM pgwarden_wall.key").fetchone()[0] == 0
            assert c.execute("SELECT pgwarden_wall.pin_status()").fetchone()[0] == "ok"
    finally:
        pg.sql("REVOKE pg_read_all_data FROM bookkeeper")


def test_signatures_stay_out_of_statement_statistics(pg):
    """pg_stat_statements would show the pin's SET texts to every session of the role."""
    rows = pg.sql("SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
                  "WHERE d.datname = 'app_walled' AND s.setrole = 'pgwarden_svc'::regrole")
    assert ["pg_stat_statements.track_utility=off"] in [r[0] for r in rows]


def test_control_without_walls_the_same_escape_succeeds(pg, pgwarden_factory, relay_bin):
    """The method can see a breach: on the unwalled prod target, the relay lets the escape
    through and globex rows become visible. (This is what the walls prevent.)"""
    w = pgwarden_factory(binary=relay_bin)
    with w.connect("user:jimmie", dbname="prod") as c:
        assert visible_tenants(c) == {"acme"}
        c.execute("SELECT ('globex'::text).switch_tenant")
        assert visible_tenants(c) == {"globex"}
        # And a production write goes through once the read-only default is off (rolled back here).
        c.execute("BEGIN; SET LOCAL transaction_read_only = off")
        c.execute("INSERT INTO billing.invoices (tenant, amount) VALUES ('globex', 1)")
        c.execute("ROLLBACK")


# --- production writes ---------------------------------------------------------------------------

# Writes on production outside a window, each after turning the read-only default off (which a
# classifier miss allows): the database's write wall refuses them all.
WRITES = {
    "INSERT": "INSERT INTO billing.invoices (tenant, amount) VALUES ('acme', 1)",
    "UPDATE": "UPDATE billing.invoices SET amount = amount + 1",
    "DELETE": "DELETE FROM billing.invoices",
    "INSERT via trigger table": "INSERT INTO billing.notes (body) VALUES ('x')",
    "writing function": "SELECT billing.add_invoice(1)",
    "writing function, attribute notation": "SELECT (1::numeric).add_invoice",
    "writable CTE": "WITH x AS (INSERT INTO billing.invoices (tenant, amount) VALUES ('acme', 2) "
                    "RETURNING 1) SELECT * FROM x",
    "CREATE TABLE": "CREATE TABLE billing.sneaky (i int)",
    "CREATE FUNCTION": "CREATE FUNCTION billing.sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE TABLE AS": "CREATE TABLE billing.sneaky AS SELECT 1 AS i",
    "COMMENT": "COMMENT ON SCHEMA billing IS 'x'",
    "lo_create": "SELECT lo_create(0)",
    "lo_create, attribute notation": "SELECT (0::oid).lo_create",
    "lo_from_bytea": "SELECT lo_from_bytea(0, 'x')",
    "setval": "SELECT setval('billing.invoices_id_seq', 1)",
    "MERGE": "MERGE INTO billing.invoices t USING (SELECT 1 AS id) s ON t.id = s.id "
             "WHEN MATCHED THEN UPDATE SET amount = 0",
    "INSERT ... ON CONFLICT": "INSERT INTO billing.invoices (id, tenant, amount) VALUES (1, 'acme', 0) "
                              "ON CONFLICT (id) DO UPDATE SET amount = 0",
    "pg_logical_emit_message": "SELECT pg_logical_emit_message(false, 'x', 'y')",
    "pg_terminate_backend (after RESET ROLE)": "RESET ROLE; SELECT pg_terminate_backend(0)",
}


@pytest.mark.parametrize("write", sorted(WRITES))
def test_production_write_outside_window_fails_at_the_database(pg, relay, write):
    before = invoice_count(pg)
    with relay.connect("user:jimmie", dbname="walled") as c:
        c.execute("SET default_transaction_read_only = off")
        err = try_sql(c, WRITES[write])
        assert err is not None, f"{write} went through"
        assert "pgwarden wall" in err or "permission denied" in err, err
    assert invoice_count(pg) == before
    assert pg.sql("SELECT count(*) FROM pg_class WHERE relname = 'sneaky'", "app_walled")[0][0] == 0
    assert pg.sql("SELECT count(*) FROM pg_largeobject_metadata", "app_walled")[0][0] == 0


def test_copy_from_outside_window_fails_at_the_database(pg, relay):
    """COPY FROM (refused by PostgreSQL on RLS tables anyway) into a plain table created after
    walls.sql: the event trigger gave it the guard, which fires for COPY too."""
    pg.sql("CREATE TABLE billing.plain (v int); GRANT INSERT, SELECT ON billing.plain TO bookkeeper",
           "app_walled")
    try:
        with relay.connect("user:jimmie", dbname="walled") as c:
            c.execute("SET default_transaction_read_only = off")
            with pytest.raises(psycopg.Error) as ei:
                with c.cursor().copy("COPY billing.plain (v) FROM STDIN") as cp:
                    cp.write_row((7,))
            assert "pgwarden wall" in str(ei.value)
        assert pg.sql("SELECT count(*) FROM billing.plain", "app_walled")[0][0] == 0
    finally:
        pg.sql("DROP TABLE billing.plain", "app_walled")


def test_production_write_inside_window_succeeds(pg, relay_in_window):
    before = invoice_count(pg)
    with relay_in_window.connect("user:jimmie", dbname="walled") as c:
        assert c.execute("SELECT pgwarden_wall.write_granted()").fetchone()[0] is True
        c.execute("INSERT INTO billing.invoices (tenant, amount, note) VALUES ('acme', 5, 'walls: in window')")
        c.execute("CREATE TABLE billing.in_window (i int)")
        c.execute("INSERT INTO billing.in_window VALUES (1)")
        # The new table got the write guard as it was created.
        assert c.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'billing.in_window'::regclass "
                         "AND tgname = 'pgwarden_wall_guard'").fetchone()[0] == 1
        c.execute("DROP TABLE billing.in_window")
        c.execute("DELETE FROM billing.invoices WHERE note = 'walls: in window'")
    assert invoice_count(pg) == before


def test_write_grant_expires_with_the_window(pg, pgwarden_factory, relay_bin, wall_key):
    """The grant carries the window's close: a session that outlives its window cannot write,
    though nothing re-pinned it."""
    w = pgwarden_factory(extra_config=walled_target(pg, wall_key) + open_window(seconds=3),
                         binary=relay_bin)
    with w.connect("user:jimmie", dbname="walled") as c:
        assert c.execute("SELECT pgwarden_wall.write_granted()").fetchone()[0] is True
        time.sleep(4.2)
        c.execute("SET default_transaction_read_only = off")
        err = try_sql(c, "INSERT INTO billing.invoices (tenant, amount) VALUES ('acme', 1)")
        assert err is not None and "pgwarden wall" in err


def test_write_grant_for_a_window_that_opens_later(pg, pgwarden_factory, relay_bin, wall_key):
    """A session pinned before its window holds a grant for it: refused before the window opens,
    accepted once it is open, with no re-pin in between."""
    now = int(time.time())
    w = pgwarden_factory(extra_config=walled_target(pg, wall_key) +
                         window_section("later", now + 3, now + 3600, target="walled"), binary=relay_bin)
    with w.connect("user:jimmie", dbname="walled") as c:
        c.execute("SET default_transaction_read_only = off")
        insert = "INSERT INTO billing.invoices (tenant, amount, note) VALUES ('acme', 1, 'walls: later')"
        err = try_sql(c, insert)
        assert err is not None and "pgwarden wall" in err
        time.sleep(max(0.0, now + 3.3 - time.time()))
        assert try_sql(c, insert) is None
        c.execute("DELETE FROM billing.invoices WHERE note = 'walls: later'")


def test_forged_write_grant_is_refused(relay):
    with relay.connect("user:jimmie", dbname="walled") as c:
        c.execute("SET default_transaction_read_only = off")
        c.execute("SELECT set_config('pgwarden.write', %s, false)",
                  (f"{int(time.time()) - 60}:{int(time.time()) + 3600}:{'0' * 64}",))
        err = try_sql(c, "INSERT INTO billing.invoices (tenant, amount) VALUES ('acme', 1)")
        assert err is not None and "pgwarden wall" in err


def test_write_grant_is_lost_with_the_role(relay_in_window):
    """Inside a window, a session that changes its role loses its write grant."""
    with relay_in_window.connect("user:jimmie", dbname="walled") as c:
        c.execute("SET ROLE agent_rw")
        err = try_sql(c, "INSERT INTO billing.invoices (tenant, amount) VALUES ('acme', 1)")
        assert err is not None and "pgwarden wall" in err


# --- grants to protected roles -------------------------------------------------------------------

GRANTS = {
    "GRANT TO anon": "GRANT SELECT ON billing.mine TO anon",
    "GRANT TO quoted ANON": 'GRANT SELECT ON billing.mine TO "anon"',
    "GRANT TO PUBLIC": "GRANT SELECT ON billing.mine TO PUBLIC",
    "GRANT column TO guest": "GRANT SELECT (i) ON billing.mine TO guest",
    "CREATE POLICY TO anon": "CREATE POLICY p ON billing.mine TO anon USING (true)",
    "ALTER DEFAULT PRIVILEGES TO guest": "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO guest",
    "GRANT EXECUTE TO anon": "GRANT EXECUTE ON FUNCTION billing.mine_f() TO anon",
}


@pytest.mark.parametrize("grant", sorted(GRANTS))
def test_grant_to_protected_role_fails_at_the_database(pg, relay_in_window, grant):
    """Inside a window (so the DDL wall lets DDL through), on a table the app role owns."""
    with relay_in_window.connect("user:jimmie", dbname="walled") as c:
        c.execute("DROP TABLE IF EXISTS billing.mine; CREATE TABLE billing.mine (i int)")
        c.execute("CREATE OR REPLACE FUNCTION billing.mine_f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        try:
            err = try_sql(c, GRANTS[grant])
            assert err is not None and "pgwarden wall" in err and "protected role" in err, err
            # An ordinary grant to an app role still works.
            assert try_sql(c, "GRANT SELECT ON billing.mine TO agent_rw") is None
        finally:
            c.execute("DROP TABLE billing.mine; DROP FUNCTION billing.mine_f()")
    assert pg.sql("SELECT count(*) FROM pg_default_acl", "app_walled")[0][0] == 0


def test_renamed_protected_role_stays_protected(pg, relay_in_window):
    """The wall keeps protected roles by OID: anon under another name is still anon."""
    pg.sql("ALTER ROLE anon RENAME TO anon_renamed")
    try:
        with relay_in_window.connect("user:jimmie", dbname="walled") as c:
            c.execute("DROP TABLE IF EXISTS billing.mine; CREATE TABLE billing.mine (i int)")
            err = try_sql(c, "GRANT SELECT ON billing.mine TO anon_renamed")
            assert err is not None and "protected role" in err, err
            c.execute("DROP TABLE billing.mine")
    finally:
        pg.sql("ALTER ROLE anon_renamed RENAME TO anon")


# --- pgwarden's checks ---------------------------------------------------------------------------


def refused_first_statement(w, dbname):
    """Log in (pgwarden answers alone) and run a first statement: the borrow's signed pin is
    verified on the lent backend, and a refusal ends the session."""
    with w.connect("user:jimmie", dbname=dbname) as c:
        c.execute("SELECT 1")


def test_wrong_key_is_detected_at_start(pg, pgwarden_factory, wall_key, tmp_path):
    """The database holds wall_key; pgwarden is given another one."""
    bad = tmp_path / "wrong.key"
    bad.write_text(secrets.token_hex(32) + "\n")
    os.chmod(bad, 0o600)
    w = pgwarden_factory(extra_config=walled_target(pg, bad))
    assert "target walled: walls = required but the database's wall key is not the one in wall_key_file" \
        in w.stderr_text()
    # A login costs no backend (CONTRACT §7): the pin of the first statement's borrow is refused.
    with pytest.raises(psycopg.OperationalError) as ei:
        refused_first_statement(w, "walled")
    assert "identity" in str(ei.value)
    # Other targets are served.
    with w.connect("user:jimmie", dbname="staging") as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1


def test_reload_checks_the_walls_again(pg, pgwarden_factory, wall_key, tmp_path):
    """A reload to another key: the check runs again (logged), and sessions are refused."""
    w = pgwarden_factory(extra_config=walled_target(pg, wall_key))
    with w.connect("user:jimmie", dbname="walled") as c:
        assert visible_tenants(c) == {"acme"}
    bad = tmp_path / "other.key"
    bad.write_text(secrets.token_hex(32) + "\n")
    os.chmod(bad, 0o600)
    w.reload(extra_config=walled_target(pg, bad), wait=1.5)
    assert w.stderr_text().count("target walled: walls = required but the database's wall key is not") == 1
    with pytest.raises(psycopg.OperationalError):
        refused_first_statement(w, "walled")
    assert "the database says the pin is mismatch" in w.stderr_text()


def test_unguarded_tables_are_named_at_start(pg, pgwarden_factory, wall_key):
    pg.sql("ALTER TABLE billing.notes DISABLE TRIGGER pgwarden_wall_guard", "app_walled")
    try:
        w = pgwarden_factory(extra_config=walled_target(pg, wall_key))
        assert "target walled: tables without the walls' write guard (re-run deploy/walls.sql): billing.notes" \
            in w.stderr_text()
    finally:
        pg.sql("ALTER TABLE billing.notes ENABLE TRIGGER pgwarden_wall_guard", "app_walled")


def test_missing_walls_are_detected(pg, pgwarden_factory, wall_key):
    """walls = required on a database without deploy/walls.sql: logged at start, sessions refused."""
    w = pgwarden_factory(extra_config=walled_target(pg, wall_key, name="bare", db="app_staging",
                                                    environment="staging"))
    assert "target bare: walls = required but the walls are not installed" in w.stderr_text()
    with pytest.raises(psycopg.OperationalError):
        refused_first_statement(w, "bare")


def test_key_file_must_be_private_and_well_formed(pg, tmp_path):
    from warden import Warden
    for text, mode, why in ((secrets.token_hex(32), 0o644, "open to other users"),
                            ("not-hex", 0o600, "must hold 64 hex digits")):
        key = tmp_path / "k.key"
        key.write_text(text)
        os.chmod(key, mode)
        w = Warden(pg, extra_config=walled_target(pg, key))
        try:
            w.write_files()
            r = subprocess.run([str(w.binary), "--check", "-c", str(w.config_path)], capture_output=True,
                               text=True)
            assert r.returncode == 1 and why in r.stderr, r.stderr
        finally:
            w.cleanup()


# --- the full pgwarden with walls on: normal use is unchanged ----------------------------------


def test_full_pgwarden_with_walls(pg, pgwarden_factory, wall_key):
    w = pgwarden_factory(extra_config=walled_target(pg, wall_key))
    assert "target walled: walls verified" in w.stderr_text()
    with w.connect("user:jimmie", dbname="walled") as c:
        assert visible_tenants(c) == {"acme"}
        assert c.execute("SELECT billing.tenant_total()").fetchone()[0] > 0
        # Extended protocol, parameters, a prepared statement.
        row = c.execute("SELECT count(*) FROM billing.invoices WHERE amount > %s", (0,), prepare=True).fetchone()
        assert row[0] == 3
        # The classifier still answers first, with pgwarden's own denial.
        with pytest.raises(psycopg.Error) as ei:
            c.execute("INSERT INTO billing.invoices (tenant, amount) VALUES ('acme', 1)")
        assert ei.value.diag.message_primary.startswith("pgwarden:")
        # Calling the wall is itself judged read-only on production.
        assert c.execute("SELECT pgwarden_wall.tenant_id(), pgwarden_wall.pin_status()").fetchone() == ("acme", "ok")
        # RESET ALL (pools send it) clears the signature with the settings: pgwarden's re-pin
        # signs them again, in the simple and the extended protocol, so the session goes on as it was.
        c.execute("RESET ALL")
        assert visible_tenants(c) == {"acme"}
        assert c.execute("SELECT pgwarden_wall.pin_status()").fetchone()[0] == "ok"
        c.execute("RESET ALL", prepare=True)
        assert c.execute("SELECT pgwarden_wall.tenant_id()", prepare=True).fetchone()[0] == "acme"
        c.execute("RESET ALL; SELECT 1")
        assert visible_tenants(c) == {"acme"}
    with w.connect("user:ada", dbname="walled") as c:
        assert visible_tenants(c) == {"globex"}


def test_full_pgwarden_writes_in_a_window_with_walls(pg, pgwarden_factory, wall_key):
    """Normal use of a walled production target: a session opened before its window writes once
    the window opens (pgwarden lifts the read-only default, the database honours the grant it
    pinned ahead), and pgwarden's own denial still answers before it opens."""
    now = int(time.time())
    w = pgwarden_factory(extra_config=walled_target(pg, wall_key) +
                         window_section("soon", now + 3, now + 3600, target="walled"))
    before = invoice_count(pg)
    with w.connect("user:jimmie", dbname="walled") as c:
        insert = "INSERT INTO billing.invoices (tenant, amount, note) VALUES ('acme', 1, 'walls: full')"
        with pytest.raises(psycopg.Error) as ei:
            c.execute(insert)
        assert ei.value.diag.message_primary.startswith("pgwarden:")
        time.sleep(max(0.0, now + 3.3 - time.time()))
        c.execute(insert)
        assert c.execute("SELECT count(*) FROM billing.invoices WHERE note = 'walls: full'").fetchone()[0] == 1
        c.execute("DELETE FROM billing.invoices WHERE note = 'walls: full'")
    assert invoice_count(pg) == before
