"""test_policy.py - every policy rule of CONTRACT §4 against the real PostgreSQL, through
./pgwarden: identity-change, RESET ALL / DISCARD ALL re-pinning, grant-to-protected-role,
write-outside-window (and the database-side read-only wall), read-write-override,
opaque-sql, fastpath, unparsable, [rule.NAME], and how a denial behaves (transaction
aborted, pipeline skipped to Sync, session goes on).

After each tamper attempt the identity is checked as the database sees it: current_user,
the pinned settings and an RLS-visible row count (policy_helpers.IDENTITY_SQL).

Several tests here first exposed bugs (statement names changed before the server accepted
them, a second RESET ALL in one Query, RESET ALL mid-pipeline, the read-only wall one
statement late after a reload); they now guard the fixes.
"""
import asyncio
import secrets
import struct
import time

import psycopg
import pytest
from psycopg import errors

from policy_helpers import (SET_CONFIG_OID, assert_denied, assert_identity, expect_denied,
                            function_call, identity, rfc3339, run, window_section)
from rawpg import RawConn, errors_of, msg, rows_of

pytestmark = pytest.mark.identity  # pgwarden's own behaviour: skipped in direct mode

PROTOCOLS = ["simple", "extended"]


def raw_login(w, dbname="staging"):
    params, pw = w.raw_login(dbname)
    c = RawConn(w.host, w.port)
    c.login(params, pw)
    return c


def result_sets(cur):
    """Rows of every result set of a multi-statement Query (None for a statement without rows)."""
    sets = []
    while True:
        sets.append(cur.fetchall() if cur.description else None)
        if not cur.nextset():
            return sets


def parse_msg(sql, name=b""):
    return msg(b"P", name + b"\0" + sql.encode() + b"\0" + struct.pack("!h", 0))


def bind_msg(stmt=b"", portal=b""):
    return msg(b"B", portal + b"\0" + stmt + b"\0" + struct.pack("!hhh", 0, 0, 0))


EXECUTE = msg(b"E", b"\0" + struct.pack("!i", 0))
SYNC = msg(b"S")


def status_of(messages):
    """ReadyForQuery transaction status byte of the last message."""
    kind, body = messages[-1]
    assert kind == b"Z"
    return body[:1]


POL_TOUCH = ("CREATE OR REPLACE PROCEDURE billing.pol_touch() LANGUAGE sql "
             "AS $$ UPDATE billing.invoices SET note = note WHERE id = -1 $$")


@pytest.fixture(scope="module")
def procedures(pg, _session_warden):
    """A writing procedure (for CALL) in both databases, and a role no policy protects. Made
    directly, behind pgwarden's back: a reload makes the shared pgwarden read the catalogs
    again (a function it has not read is opaque-sql, see test_function_created_out_of_band)."""
    for db in ("app", "app_staging"):
        pg.sql(POL_TOUCH, db)
        pg.sql("GRANT EXECUTE ON PROCEDURE billing.pol_touch() TO bookkeeper", db)
    if not pg.sql("SELECT 1 FROM pg_roles WHERE rolname = 'pol_reader'"):
        pg.sql("CREATE ROLE pol_reader NOLOGIN")
    _session_warden.reload(wait=1.0)


# --- identity-change ---------------------------------------------------------------------

IDENTITY_TAMPER = [
    "SET ROLE agent_rw",
    "SET LOCAL ROLE agent_rw",
    "SET SESSION ROLE agent_rw",
    "SET ROLE NONE",
    "RESET ROLE",
    "SET SESSION AUTHORIZATION DEFAULT",
    "SET SESSION AUTHORIZATION pgwarden_svc",
    "RESET SESSION AUTHORIZATION",
    "SET app.tenant_id = 'globex'",
    "SET app.tenant_id TO DEFAULT",
    "SET LOCAL app.tenant_id = 'globex'",
    "SET SESSION app.actor_id = 'user:ada'",
    "RESET app.tenant_id",
    "RESET app.actor_id",
    "SET \"APP\".\"TENANT_ID\" = 'globex'",
    "SET \"app\".\"tenant_id\" = 'globex'",
    "SET App.Tenant_Id = 'globex'",
    "SET \"app.tenant_id\" = 'globex'",
    "SET U&\"app\".U&\"tenant\\005fid\" = 'globex'",
    "SET/**/app/**/./**/tenant_id = 'globex'",
    "SET app.tenant_id = globex",
    "SELECT set_config('app.tenant_id', 'globex', false)",
    "SELECT set_config('app.tenant_id', 'globex', true)",
    "SELECT set_config('APP.TENANT_ID', 'globex', false)",
    "SELECT set_config('role', 'agent_rw', false)",
    "SELECT set_config('session_authorization', 'pgwarden_svc', false)",
    "SELECT pg_catalog.set_config('app.tenant_id', 'globex', false)",
    "SELECT \"pg_catalog\".\"set_config\"('app.tenant_id', 'globex', false)",
    "SELECT * FROM pg_catalog.set_config('app.tenant_id', 'globex', false)",
    "WITH x AS (SELECT set_config('app.tenant_id', 'globex', false)) SELECT * FROM x",
    "WITH x AS MATERIALIZED (SELECT 1) SELECT (SELECT set_config('app.tenant_id', 'globex', false))",
    "SELECT (SELECT set_config('app.tenant_id', 'globex', false))",
    "SELECT 1 WHERE EXISTS (SELECT set_config('app.tenant_id', 'globex', false))",
    "SELECT length(set_config('app.tenant_id', 'globex', false))",
    "SELECT lower(upper(set_config('app.tenant_id', 'globex', false)))",
    "SELECT count(*) FROM billing.invoices WHERE set_config('app.tenant_id', 'globex', false) <> ''",
    "SELECT CASE WHEN true THEN set_config('app.tenant_id', 'globex', false) END",
    "SELECT set_config(name, 'globex', false) FROM pg_settings WHERE name = 'app.tenant_id'",
    "SELECT set_config('app.' || 'tenant_id', 'globex', false)",
    "SELECT set_config(U&'app.tenant\\005fid', 'globex', false)",
    "SELECT set_config(E'app.tenant\\x5fid', 'globex', false)",
    "SELECT set_config($q$app.tenant_id$q$, 'globex', false)",
    "SELECT set_config('app.tenant_id'::text, 'globex', false)",
    "SELECT set_config(setting_name => 'app.tenant_id', new_value => 'globex', is_local => false)",
    "SELECT set_config(is_local => false, new_value => 'globex', setting_name => 'app.tenant_id')",
    "SELECT set_config(VARIADIC ARRAY['app.tenant_id', 'globex'])",
    "COPY (SELECT set_config('app.tenant_id', 'globex', false)) TO STDOUT",
    "EXPLAIN ANALYZE SELECT set_config('app.tenant_id', 'globex', false)",
    "DECLARE pol_c CURSOR WITH HOLD FOR SELECT set_config('app.tenant_id', 'globex', false)",
    "CREATE TEMP VIEW pol_v AS SELECT set_config('app.tenant_id', 'globex', false)",
    "CREATE TEMP TABLE pol_d (a text DEFAULT set_config('app.tenant_id', 'globex', false))",
    "CREATE TEMP TABLE pol_g AS SELECT set_config('app.tenant_id', 'globex', false)",
    "UPDATE pg_settings SET setting = 'globex' WHERE name = 'app.tenant_id'",
    "UPDATE pg_catalog.pg_settings SET setting = 'agent_rw' WHERE name = 'role'",
    "DO $$BEGIN PERFORM set_config('app.tenant_id', 'globex', false); END$$",
    "DO $$BEGIN SET app.tenant_id = 'globex'; END$$",
    "DO LANGUAGE plpgsql $$BEGIN SET ROLE agent_rw; END$$",
    "DO $$DECLARE t text := 'globex'; BEGIN PERFORM pg_catalog.set_config('app.tenant_id', t, false); END$$",
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("sql", IDENTITY_TAMPER)
def test_identity_change_denied(pgwarden, sql, protocol):
    with pgwarden.connect(dbname="staging") as c:
        expect_denied(c, sql, "identity-change", protocol)
        assert_identity(c)


@pytest.mark.parametrize("sql", ["SET ROLE agent_rw", "SELECT set_config('app.tenant_id', 'globex', false)",
                                 "RESET app.tenant_id"])
def test_identity_change_denied_on_prod(pgwarden, sql):
    with pgwarden.connect(dbname="prod") as c:
        expect_denied(c, sql, "identity-change")
        assert_identity(c)


def test_identity_change_in_multi_statement_query(pgwarden):
    """One denied statement in a Query: none of it runs (the SELECT before it returns nothing)."""
    with pgwarden.connect() as c:
        with pytest.raises(psycopg.Error) as ei:
            run(c, "SELECT 1; SET app.tenant_id = 'globex'; SELECT 2")
        assert_denied(ei.value, "identity-change")
        assert_identity(c)


def test_identity_change_with_bound_parameters(pgwarden):
    """Extended protocol: the setting name or value as a parameter ($1) cannot be judged safe."""
    with pgwarden.connect() as c:
        for sql, params in [("SELECT set_config(%s, %s, false)", ("app.tenant_id", "globex")),
                            ("SELECT set_config('app.tenant_id', %s, false)", ("globex",)),
                            ("SELECT set_config(%s::text, 'x', false)", ("role",))]:
            expect_denied(c, sql, "identity-change", "extended", params)
            assert_identity(c)
        # psycopg's prepared path (Parse once, named) is judged the same way
        with pytest.raises(psycopg.Error) as ei:
            c.execute("SELECT set_config(%s, %s, false)", ("app.tenant_id", "globex"), prepare=True)
        assert_denied(ei.value, "identity-change")
        assert_identity(c)


def test_identity_change_via_prepare_execute(pgwarden):
    with pgwarden.connect() as c:
        expect_denied(c, "PREPARE pol_tamper(text) AS SELECT set_config('app.tenant_id', $1, false)",
                      "identity-change")
        with pytest.raises(psycopg.Error) as ei:
            run(c, "EXECUTE pol_tamper('globex')")
        assert ei.value.sqlstate == "42501"
        assert ei.value.diag.message_primary.startswith("pgwarden:")
        assert_identity(c)


def test_identity_change_in_pipeline(pgwarden):
    with pgwarden.connect() as c:
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            with c.pipeline() as p:
                first = c.execute("SELECT 'before'")
                c.execute("SELECT set_config('app.tenant_id', 'globex', false)")
                c.execute("SET ROLE agent_rw")
                p.sync()
        assert_denied(ei.value, "identity-change")
        assert first.fetchone() == ("before",)
        assert_identity(c)
        with c.pipeline():
            cur = c.execute("SELECT current_setting('app.tenant_id')")
        assert cur.fetchone() == ("acme",)


def test_identity_change_via_user_function_staging(pgwarden):
    with pgwarden.connect(dbname="staging") as c:
        try:
            run(c, "SELECT billing.switch_tenant('globex')")
        except psycopg.Error as e:
            assert_denied(e, "identity-change")
        assert_identity(c)


def test_identity_change_via_temp_function_staging(pgwarden):
    """A pg_temp function that sets the tenant: refused (at CREATE or at the call), tenant intact."""
    with pgwarden.connect(dbname="staging") as c:
        with pytest.raises(psycopg.Error) as ei:
            run(c, "CREATE FUNCTION pg_temp.pol_sw() RETURNS text LANGUAGE sql "
                   "AS $$ SELECT set_config('app.tenant_id', 'globex', false) $$")
            run(c, "SELECT pg_temp.pol_sw()")
        rule = (ei.value.diag.message_detail or "").replace("rule: ", "")
        assert rule in ("identity-change", "opaque-sql")
        assert_denied(ei.value, rule)
        assert_identity(c)


# Two-step tampering through objects whose stored expressions run later. Whatever step pgwarden
# refuses, the tenant must be intact at the end.
STORED_TAMPER = [
    ["CREATE TEMP TABLE pol_t1 (a text)",
     "CREATE RULE pol_r AS ON INSERT TO pol_t1 DO ALSO SELECT set_config('app.tenant_id', 'globex', false)",
     "INSERT INTO pol_t1 VALUES ('x')"],
    ["CREATE TEMP TABLE pol_t2 (a text CHECK (set_config('app.tenant_id', 'globex', false) <> ''))",
     "INSERT INTO pol_t2 VALUES ('x')"],
    ["CREATE TEMP TABLE pol_t3 (a text, b text GENERATED ALWAYS AS (a) STORED)",
     "ALTER TABLE pol_t3 ALTER COLUMN a SET DEFAULT set_config('app.tenant_id', 'globex', false)",
     "INSERT INTO pol_t3 DEFAULT VALUES"],
    ["CREATE TEMP VIEW pol_v2 AS SELECT 1 AS a",
     "CREATE OR REPLACE TEMP VIEW pol_v2 AS SELECT 1 AS a, set_config('app.tenant_id', 'globex', false) AS b",
     "SELECT * FROM pol_v2"],
    ["CREATE TEMP TABLE pol_t4 (a text)",
     "CREATE FUNCTION pg_temp.pol_trg() RETURNS trigger LANGUAGE plpgsql AS "
     "$$BEGIN PERFORM set_config('app.tenant_id', 'globex', false); RETURN NEW; END$$",
     "CREATE TRIGGER pol_tr BEFORE INSERT ON pol_t4 FOR EACH ROW EXECUTE FUNCTION pg_temp.pol_trg()",
     "INSERT INTO pol_t4 VALUES ('x')"],
]


@pytest.mark.parametrize("steps", STORED_TAMPER, ids=lambda st: st[-2][:40])
def test_identity_change_via_stored_expressions(pgwarden, steps):
    with pgwarden.connect(dbname="staging") as c:
        refused = 0
        for sql in steps:
            try:
                run(c, sql)
            except psycopg.Error as e:
                if (e.diag.message_primary or "").startswith("pgwarden:"):
                    assert e.sqlstate == "42501"
                    refused += 1
        assert_identity(c)
        assert refused, "no step was refused by pgwarden"


@pytest.mark.parametrize("sql", ["SELECT billing.switch_tenant('globex')",
                                 "SELECT switch_tenant('globex')",
                                 "SELECT * FROM billing.switch_tenant('globex')",
                                 "SELECT 1 WHERE billing.switch_tenant('globex') IS NULL"])
def test_identity_change_via_user_function_prod(pgwarden, sql):
    with pgwarden.connect(dbname="prod") as c:
        expect_denied(c, sql, "identity-change")
        assert_identity(c)


def test_function_created_out_of_band(pgwarden_factory, pg):
    """A function made behind pgwarden's back after it read the catalog is not judged on an old
    view: denied (opaque-sql) until a reload reads it."""
    w = pgwarden_factory()
    with w.connect(dbname="staging") as c:
        assert c.execute("SELECT billing.tenant_total() > 0").fetchone() == (True,)
    pg.sql("CREATE OR REPLACE FUNCTION billing.pol_late() RETURNS int LANGUAGE sql STABLE "
           "AS $$ SELECT 7 $$", "app_staging")
    try:
        pg.sql("GRANT EXECUTE ON FUNCTION billing.pol_late() TO bookkeeper", "app_staging")
        with w.connect(dbname="staging") as c:
            expect_denied(c, "SELECT billing.pol_late()", "opaque-sql")
            assert_identity(c)
            w.reload(wait=1.0)
            assert run(c, "SELECT billing.pol_late()").fetchone() == (7,)
    finally:
        pg.sql("DROP FUNCTION billing.pol_late()", "app_staging")


def test_identity_via_view_over_pg_settings(pgwarden):
    """A temp view over pg_settings: whatever pgwarden decides, the tenant must not change."""
    with pgwarden.connect(dbname="staging") as c:
        for sql in ["CREATE TEMP VIEW pol_settings AS SELECT * FROM pg_settings",
                    "UPDATE pol_settings SET setting = 'globex' WHERE name = 'app.tenant_id'"]:
            try:
                run(c, sql)
            except psycopg.Error as e:
                assert e.sqlstate is not None
        assert_identity(c)


# --- RESET ALL / DISCARD ALL ---------------------------------------------------------------

@pytest.mark.parametrize("dbname", ["staging", "prod"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("sql", ["RESET ALL", "DISCARD ALL"])
def test_session_reset_repins(pgwarden, sql, protocol, dbname):
    with pgwarden.connect(dbname=dbname) as c:
        run(c, "SET application_name = 'pol-reset'", protocol)
        run(c, sql, protocol)
        assert_identity(c)
        ro = "on" if dbname == "prod" else "off"
        assert c.execute("SHOW default_transaction_read_only").fetchone() == (ro,)
        # the reset itself happened
        assert c.execute("SHOW application_name").fetchone() != ("pol-reset",)


@pytest.mark.parametrize("dbname", ["staging", "prod"])
def test_reset_all_then_statements_in_one_query(pgwarden, dbname):
    with pgwarden.connect(dbname=dbname) as c:
        cur = run(c, "RESET ALL; SELECT current_setting('app.tenant_id'), current_user::text, "
                     "current_setting('default_transaction_read_only')")
        ro = "on" if dbname == "prod" else "off"
        assert result_sets(cur) == [None, [("acme", "bookkeeper", ro)]]
        assert_identity(c)


def test_second_reset_all_in_one_query(pgwarden):
    with pgwarden.connect(dbname="prod") as c:
        cur = run(c, "RESET ALL; SELECT 1; RESET ALL; SELECT current_setting('app.tenant_id', true), "
                     "current_user::text, current_setting('default_transaction_read_only')")
        assert result_sets(cur)[-1] == [("acme", "bookkeeper", "on")]


def test_reset_all_in_pipeline_then_statement(pgwarden):
    with pgwarden.connect(dbname="prod") as c:
        with c.pipeline():
            c.execute("RESET ALL")
            cur = c.execute("SELECT current_setting('app.tenant_id', true), current_user::text, "
                            "current_setting('default_transaction_read_only')")
        assert cur.fetchone() == ("acme", "bookkeeper", "on")


def test_asyncpg_pool_reset_prod(pgwarden):
    """asyncpg's release runs pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL."""
    import asyncpg

    async def main():
        pool = await asyncpg.create_pool(min_size=1, max_size=1, **pgwarden.asyncpg_args(dbname="prod"))
        try:
            for _ in range(4):
                async with pool.acquire() as c:
                    got = await c.fetchrow("SELECT current_user::text, current_setting('app.tenant_id'), "
                                           "current_setting('default_transaction_read_only') AS ro, "
                                           "(SELECT count(*) FROM invoices WHERE id <= 5) AS n")
                    assert tuple(got) == ("bookkeeper", "acme", "on", 3)
                    await c.execute("SET application_name = 'pol-apg'")
            async with pool.acquire() as c:
                assert await c.fetchval("SHOW application_name") != "pol-apg"
        finally:
            await pool.close()

    asyncio.run(asyncio.wait_for(main(), 30))


# --- grant-to-protected-role ---------------------------------------------------------------

PROTECTED_GRANTS = [
    "GRANT SELECT ON invoices TO anon",
    "GRANT SELECT ON billing.invoices TO \"ANON\"",
    "GRANT SELECT ON invoices TO \"Anon\"",
    "GRANT SELECT ON invoices TO U&\"\\0061non\"",
    "GRANT SELECT ON invoices TO U&\"!0061non\" UESCAPE '!'",
    "GRANT SELECT ON invoices TO public",
    "GRANT SELECT ON invoices TO PUBLIC",
    "GRANT SELECT ON invoices TO \"public\"",
    "GRANT SELECT ON invoices TO guest",
    "GRANT SELECT ON invoices TO GUEST",
    "GRANT SELECT ON invoices TO pol_reader, anon",
    "GRANT SELECT (note) ON invoices TO anon",
    "GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA billing TO anon",
    "GRANT USAGE ON SCHEMA billing TO guest",
    "GRANT EXECUTE ON FUNCTION billing.tenant_total() TO public",
    "GRANT USAGE ON SEQUENCE billing.invoices_id_seq TO anon",
    "GRANT bookkeeper TO anon",
    "GRANT bookkeeper TO \"ANON\" WITH ADMIN OPTION",
    "GRANT bookkeeper, agent_rw TO guest",
    "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO anon",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA billing GRANT SELECT ON TABLES TO public",
    "ALTER DEFAULT PRIVILEGES FOR ROLE bookkeeper GRANT EXECUTE ON FUNCTIONS TO guest",
    "ALTER GROUP bookkeeper ADD USER anon",
    "ALTER GROUP bookkeeper ADD USER pol_reader, \"GUEST\"",
    "CREATE SCHEMA pol_s GRANT SELECT ON billing.invoices TO anon",
    "CREATE SCHEMA pol_s CREATE TABLE t (a int) GRANT SELECT ON t TO public",
    "CREATE ROLE pol_x ROLE anon",
    "CREATE ROLE pol_x ADMIN guest",
    "CREATE GROUP pol_g USER anon",
]


@pytest.mark.parametrize("dbname", ["staging", "prod"])
@pytest.mark.parametrize("sql", PROTECTED_GRANTS)
def test_grant_to_protected_role_denied(pgwarden, procedures, sql, dbname):
    with pgwarden.connect(dbname=dbname) as c:
        expect_denied(c, sql, "grant-to-protected-role")
        assert_identity(c)


def test_grant_to_protected_role_denied_in_open_window(pgwarden_factory, procedures):
    now = time.time()
    w = pgwarden_factory(extra_config=window_section("pol-open", now - 60, now + 3600))
    with w.connect(dbname="prod") as c:
        expect_denied(c, "GRANT SELECT ON invoices TO anon", "grant-to-protected-role")
        expect_denied(c, "GRANT bookkeeper TO guest", "grant-to-protected-role", "extended")


def test_grant_to_other_role_allowed_on_staging(pgwarden, pg, procedures):
    pg.sql("GRANT SELECT ON billing.invoices TO bookkeeper WITH GRANT OPTION", "app_staging")
    try:
        with pgwarden.connect(dbname="staging") as c:
            run(c, "GRANT SELECT ON invoices TO pol_reader")
            expect_denied(c, "GRANT SELECT ON invoices TO anon", "grant-to-protected-role")
        priv = "SELECT has_table_privilege('{}', 'billing.invoices', 'SELECT')"
        assert pg.sql(priv.format("pol_reader"), "app_staging") == [(True,)]
        assert pg.sql(priv.format("anon"), "app_staging") == [(False,)]
    finally:
        pg.sql("REVOKE SELECT ON billing.invoices FROM pol_reader CASCADE", "app_staging")
        pg.sql("REVOKE GRANT OPTION FOR SELECT ON billing.invoices FROM bookkeeper CASCADE", "app_staging")


# --- write-outside-window --------------------------------------------------------------------

PROD_WRITES = [
    "INSERT INTO invoices (tenant, amount, note) VALUES ('acme', 1, 'pol-write')",
    "UPDATE invoices SET note = note WHERE id = 1",
    "DELETE FROM invoices WHERE id = -1",
    "MERGE INTO invoices i USING (SELECT 1 AS id) s ON i.id = s.id "
    "WHEN MATCHED THEN UPDATE SET note = i.note",
    "SELECT * FROM invoices FOR UPDATE",
    "SELECT * FROM invoices FOR SHARE",
    "CALL billing.pol_touch()",
    "SELECT nextval('invoices_id_seq')",
    "SELECT setval('invoices_id_seq', 100)",
    "SELECT * INTO TEMP pol_copy FROM invoices",
    "CREATE TEMP TABLE pol_t AS SELECT * FROM invoices",
    "WITH d AS (DELETE FROM invoices WHERE id = -1 RETURNING *) SELECT count(*) FROM d",
    "EXPLAIN ANALYZE DELETE FROM invoices WHERE id = -1",
    "EXPLAIN (ANALYZE, COSTS OFF) UPDATE invoices SET note = note WHERE id = -1",
    "SELECT billing.add_invoice(1)",
    "SELECT pg_advisory_lock(42)",
    "LOCK TABLE invoices IN EXCLUSIVE MODE",
    "TRUNCATE invoices",
    "CREATE TEMP TABLE pol_tt (a int)",
    "NOTIFY pol_chan",
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("sql", PROD_WRITES)
def test_write_outside_window_denied_on_prod(pgwarden, procedures, sql, protocol):
    with pgwarden.connect(dbname="prod") as c:
        e = expect_denied(c, sql, "write-outside-window", protocol, hint=True)
        assert "no approved window" in e.diag.message_hint
        assert_identity(c)


def test_copy_from_stdin_denied_on_prod(pgwarden):
    with pgwarden.connect(dbname="prod") as c, c.cursor() as cur:
        with pytest.raises(psycopg.Error) as ei:
            with cur.copy("COPY invoices (tenant, amount, note) FROM STDIN") as cp:
                cp.write_row(("acme", 1, "pol-copy"))
        assert_denied(ei.value, "write-outside-window", hint=True)
        assert_identity(c)


# bookkeeper may not TRUNCATE, LOCK EXCLUSIVE or setval (no UPDATE on the sequence): the server
# itself refuses those, so staging runs the rest.
STAGING_WRITES = [s for s in PROD_WRITES if not s.startswith(("TRUNCATE", "LOCK", "SELECT setval"))] + [
    "LOCK TABLE invoices IN ROW EXCLUSIVE MODE"]


@pytest.mark.parametrize("sql", STAGING_WRITES)
def test_writes_allowed_on_staging(pgwarden, procedures, sql):
    with pgwarden.connect(dbname="staging") as c:
        run(c, "BEGIN")
        run(c, sql)
        run(c, "ROLLBACK")
        assert_identity(c)


def test_copy_from_stdin_allowed_on_staging(pgwarden):
    # (COPY FROM into invoices itself is refused by PostgreSQL: the table has row-level security)
    with pgwarden.connect(dbname="staging") as c, c.cursor() as cur:
        cur.execute("CREATE TEMP TABLE pol_ci (a int, b text)")
        with cur.copy("COPY pol_ci FROM STDIN") as cp:
            cp.write_row((1, "one"))
        assert cur.execute("SELECT count(*) FROM pol_ci").fetchone() == (1,)
        assert_identity(c)


PROD_READS = [
    "SELECT count(*) FROM invoices",
    "SELECT * FROM invoices i JOIN invoices j USING (id) WHERE i.amount > 1",
    "WITH x AS (SELECT tenant FROM invoices) SELECT DISTINCT tenant FROM x",
    "EXPLAIN SELECT * FROM invoices",
    "EXPLAIN (COSTS OFF) SELECT * FROM invoices WHERE id = 1",
    "SHOW default_transaction_read_only",
    "SHOW ALL",
    "SELECT current_setting('app.tenant_id')",
    "SELECT set_config('search_path', 'billing, public', false)",
    "SET statement_timeout = '5s'",
    "SET application_name = 'pol'",
    "SELECT 1",
    "VALUES (1), (2)",
    "TABLE invoices",
    "SELECT pg_advisory_unlock_all()",
    "LISTEN pol_chan",
    "UNLISTEN *",
    "CLOSE ALL",
]


@pytest.mark.parametrize("sql", PROD_READS)
def test_reads_allowed_on_prod(pgwarden, sql):
    with pgwarden.connect(dbname="prod") as c:
        run(c, sql)
        assert_identity(c)


@pytest.mark.parametrize("sql", ["SELECT billing.tenant_total()", "SELECT * FROM billing.whoami()"])
def test_read_only_user_function_allowed_on_prod(pgwarden, sql):
    with pgwarden.connect(dbname="prod") as c:
        run(c, sql)
        assert_identity(c)


def test_transactions_and_cursors_allowed_on_prod(pgwarden):
    with pgwarden.connect(dbname="prod") as c:
        cur = psycopg.ClientCursor(c)
        cur.execute("BEGIN")
        cur.execute("DECLARE pol_cur CURSOR FOR SELECT id FROM invoices ORDER BY id")
        assert cur.execute("FETCH 2 FROM pol_cur").fetchall() == [(1,), (2,)]
        cur.execute("MOVE NEXT FROM pol_cur")
        cur.execute("CLOSE pol_cur")
        cur.execute("SAVEPOINT s1")
        cur.execute("ROLLBACK TO SAVEPOINT s1")
        cur.execute("RELEASE SAVEPOINT s1")
        cur.execute("COMMIT")
        cur.execute("START TRANSACTION READ ONLY")
        assert cur.execute("SELECT count(*) FROM invoices").fetchone() == (3,)
        cur.execute("END")
        # server-side cursor through psycopg's named cursor (DECLARE/FETCH in a transaction)
    with pgwarden.connect(dbname="prod", autocommit=False) as c:
        with c.cursor("pol_named") as nc:
            nc.execute("SELECT id FROM invoices ORDER BY id")
            assert [r[0] for r in nc.fetchmany(2)] == [1, 2]
        c.rollback()
        assert_identity(c)


def test_prod_read_only_wall(pgwarden):
    """Outside a window, prod runs with default_transaction_read_only = on upstream."""
    with pgwarden.connect(dbname="prod") as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert c.execute("SHOW transaction_read_only").fetchone() == ("on",)


INSERT_ONE = "INSERT INTO invoices (tenant, amount, note) VALUES ('acme', 1, '{}')"


def window_config(now, actors="user:jimmie"):
    return (window_section("pol-open", now - 60, now + 3600, actors)
            + window_section("pol-later", now + 86400, now + 90000))


def test_open_window_allows_writes(pgwarden_factory, pg, procedures):
    now = time.time()
    w = pgwarden_factory(extra_config=window_config(now))
    tag = "pol-win-" + secrets.token_hex(4)
    with w.connect(dbname="prod") as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
        c.execute("INSERT INTO invoices (tenant, amount, note) VALUES ('acme', 1, %s)", (tag,))
        run(c, f"UPDATE invoices SET amount = 2 WHERE note = '{tag}'")
        run(c, "CALL billing.pol_touch()")
        run(c, "CREATE TEMP TABLE pol_wc (a int)")
        with c.cursor().copy("COPY pol_wc FROM STDIN") as cp:
            cp.write_row((1,))
        assert_identity(c)
    try:
        got = pg.sql(f"SELECT count(*), sum(amount) FROM billing.invoices WHERE note = '{tag}'", "app")
        assert got == [(1, 2)]
    finally:
        pg.sql(f"DELETE FROM billing.invoices WHERE note = '{tag}'", "app")
    # the window is jimmie's: ada (another actor) is still read-only, and the HINT names the
    # next window open to her
    with w.connect("user:ada", dbname="prod") as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        e = expect_denied(c, "INSERT INTO invoices (tenant, amount) VALUES ('globex', 1)",
                          "write-outside-window", hint=True)
        assert "pol-later" in e.diag.message_hint
        # and it says why the open one does not count, with the next one's close time
        hint = e.diag.message_hint
        assert "window pol-open is open until " in hint, hint
        assert "but actor user:ada is not on its actors list" in hint, hint
        assert f"pol-later opens {rfc3339(now + 86400)}, closes {rfc3339(now + 90000)}" in hint, hint
        expect_denied(c, "BEGIN READ WRITE", "read-write-override")
        assert_identity(c, "user:ada")


def test_window_for_other_actor_denies(pgwarden_factory):
    now = time.time()
    w = pgwarden_factory(extra_config=window_config(now, actors="user:ada"))
    with w.connect(dbname="prod") as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        expect_denied(c, "DELETE FROM invoices WHERE id = -1", "write-outside-window", hint=True)
        expect_denied(c, "SET default_transaction_read_only = off", "read-write-override")
        assert_identity(c)


def test_weekly_window_hint_in_its_zone_and_utc(pgwarden_factory):
    """The HINT shows a weekly window's next opening in its own zone and in UTC, with its close.
    Kolkata is UTC+05:30 all year; the window opens every day six hours from now."""
    opens = time.time() + 6 * 3600
    loc = time.gmtime(opens + 5.5 * 3600)
    start, end = f"{loc.tm_hour:02d}:{loc.tm_min:02d}", f"{(loc.tm_hour + 1) % 24:02d}:{loc.tm_min:02d}"
    section = ("[window.pol-weekly-{a}]\ntarget = prod\nweekly = mon,tue,wed,thu,fri,sat,sun {s}-{e}\n"
               "timezone = Asia/Kolkata\napproved_by = ops:tests\nreason = hint test\nactors = user:{a}\n\n")
    w = pgwarden_factory(extra_config=section.format(a="nobody", s=start, e=end)
                         + section.format(a="jimmie", s=start, e=end))
    with w.connect(dbname="prod") as c:
        hint = expect_denied(c, "DELETE FROM invoices WHERE id = -1", "write-outside-window",
                             hint=True).diag.message_hint
    utc_open, utc_close = time.gmtime(opens), time.gmtime(opens + 3600)
    assert f"next approved window: pol-weekly-jimmie opens {time.strftime('%Y-%m-%d', loc)}T{start}+05:30 " \
           f"Asia/Kolkata ({time.strftime('%Y-%m-%dT%H:%M', utc_open)}Z), closes " in hint, hint
    assert f"T{end}+05:30 ({time.strftime('%Y-%m-%dT%H:%M', utc_close)}Z)" in hint, hint


def test_window_closed_by_reload_denies_prepared_write(pgwarden_factory, pg):
    """PREPARE (SQL) and a psycopg prepared INSERT run in the window; after a reload that
    removes the window, their next EXECUTE / Execute is denied and nothing is written."""
    now = time.time()
    w = pgwarden_factory(extra_config=window_config(now))
    tag = "pol-prep-" + secrets.token_hex(4)
    sql = f"INSERT INTO invoices (tenant, amount, note) VALUES ('acme', %s, '{tag}')"
    try:
        with w.connect(dbname="prod") as c:
            run(c, f"PREPARE pol_ins AS {INSERT_ONE.format(tag)}")
            run(c, "EXECUTE pol_ins")
            c.execute(sql, (1,), prepare=True)
            c.execute(sql, (2,), prepare=True)
            w.reload(extra_config="")
            expect_denied(c, "EXECUTE pol_ins", "write-outside-window", hint=True)
            with pytest.raises(psycopg.Error) as ei:
                c.execute(sql, (3,), prepare=True)
            assert_denied(ei.value, "write-outside-window", hint=True)
            assert_identity(c)
            assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert pg.sql(f"SELECT count(*) FROM billing.invoices WHERE note = '{tag}'", "app") == [(3,)]
    finally:
        pg.sql(f"DELETE FROM billing.invoices WHERE note = '{tag}'", "app")


def test_explain_and_create_table_as_execute(pgwarden_factory, pg):
    """EXPLAIN EXECUTE and CREATE TABLE AS EXECUTE (issue 14 item 7) are judged by the prepared
    statement they run: a read is fine on prod, a write prepared in a window is denied after it."""
    now = time.time()
    w = pgwarden_factory(extra_config=window_config(now))
    tag = "pol-xex-" + secrets.token_hex(4)
    with w.connect(dbname="staging") as c:
        run(c, "PREPARE pol_r AS SELECT count(*) FROM invoices WHERE id <= 5")
        assert "Scan" in " ".join(r[0] for r in run(c, "EXPLAIN EXECUTE pol_r").fetchall())
        run(c, "CREATE TEMP TABLE pol_x AS EXECUTE pol_r")
        assert run(c, "SELECT * FROM pol_x").fetchone() == (3,)
    try:
        with w.connect(dbname="prod") as c:
            run(c, "PREPARE pol_r AS SELECT count(*) FROM invoices WHERE id <= 5")
            run(c, f"PREPARE pol_w AS {INSERT_ONE.format(tag)}")
            run(c, "EXPLAIN EXECUTE pol_r")
            run(c, "EXPLAIN (ANALYZE, COSTS OFF) EXECUTE pol_r")
            w.reload(extra_config="")
            run(c, "EXPLAIN (ANALYZE, COSTS OFF) EXECUTE pol_r")
            expect_denied(c, "EXPLAIN ANALYZE EXECUTE pol_w", "write-outside-window", hint=True)
            expect_denied(c, "CREATE TEMP TABLE pol_y AS EXECUTE pol_r", "write-outside-window")
            with pytest.raises(psycopg.Error) as ei:
                run(c, "EXPLAIN EXECUTE pol_unknown")
            assert ei.value.diag.message_primary.startswith("pgwarden:")
            assert_identity(c)
        assert pg.sql(f"SELECT count(*) FROM billing.invoices WHERE note = '{tag}'", "app") == [(0,)]
    finally:
        pg.sql(f"DELETE FROM billing.invoices WHERE note = '{tag}'", "app")


def test_failed_re_prepare_does_not_replace_tracked_statement(pgwarden_factory, pg):
    now = time.time()
    w = pgwarden_factory(extra_config=window_config(now))
    tag = "pol-reprep-" + secrets.token_hex(4)
    try:
        with w.connect(dbname="prod") as c:
            run(c, f"PREPARE pol_p AS {INSERT_ONE.format(tag)}")
            with pytest.raises(errors.DuplicatePreparedStatement):
                run(c, "PREPARE pol_p AS SELECT 1")
            w.reload(extra_config="")
            with pytest.raises(psycopg.Error) as ei:
                run(c, "EXECUTE pol_p")
            assert_denied(ei.value, "write-outside-window")
    finally:
        n = pg.sql(f"SELECT count(*) FROM billing.invoices WHERE note = '{tag}'", "app")[0][0]
        pg.sql(f"DELETE FROM billing.invoices WHERE note = '{tag}'", "app")
    assert n == 0


def test_read_only_wall_restored_right_after_reload(pgwarden_factory):
    now = time.time()
    w = pgwarden_factory(extra_config=window_config(now))
    with w.connect(dbname="prod") as c:
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
        w.reload(extra_config="")
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)


def test_prepare_of_write_on_prod(pgwarden, pg):
    """PREPARE of an INSERT outside a window: nothing can run it (EXECUTE is denied)."""
    with pgwarden.connect(dbname="prod") as c:
        try:
            run(c, f"PREPARE pol_w AS {INSERT_ONE.format('pol-pw')}")
        except psycopg.Error as e:
            assert_denied(e, "write-outside-window")
        with pytest.raises(psycopg.Error) as ei:
            run(c, "EXECUTE pol_w")
        assert ei.value.sqlstate == "42501" and ei.value.diag.message_primary.startswith("pgwarden:")
        assert_identity(c)
    assert pg.sql("SELECT count(*) FROM billing.invoices WHERE note = 'pol-pw'", "app") == [(0,)]


# --- read-write-override ----------------------------------------------------------------------

RW_OVERRIDES = [
    "BEGIN READ WRITE",
    "BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE",
    "START TRANSACTION READ WRITE",
    "SET TRANSACTION READ WRITE",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET default_transaction_read_only = off",
    "SET default_transaction_read_only = false",
    "SET default_transaction_read_only = 0",
    "SET default_transaction_read_only TO DEFAULT",
    "RESET default_transaction_read_only",
    "SET transaction_read_only = off",
    "SELECT set_config('transaction_read_only', 'off', false)",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT set_config('default_transaction_read_only', 'of' || 'f', false)",
]


@pytest.mark.parametrize("sql", RW_OVERRIDES)
def test_read_write_override_denied_on_prod(pgwarden, sql):
    with pgwarden.connect(dbname="prod") as c:
        expect_denied(c, sql, "read-write-override")
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert_identity(c)


def test_set_transaction_read_write_in_block_on_prod(pgwarden):
    with pgwarden.connect(dbname="prod") as c:
        run(c, "BEGIN")
        expect_denied(c, "SET TRANSACTION READ WRITE", "read-write-override")
        with pytest.raises(errors.InFailedSqlTransaction):
            run(c, "SELECT 1")
        run(c, "ROLLBACK")
        assert_identity(c)


@pytest.mark.parametrize("sql", ["BEGIN READ WRITE", "SET default_transaction_read_only = off"])
def test_read_write_allowed_on_staging(pgwarden, sql):
    with pgwarden.connect(dbname="staging") as c:
        run(c, sql)
        if sql.startswith("BEGIN"):
            run(c, "ROLLBACK")
        assert_identity(c)


# --- opaque-sql ---------------------------------------------------------------------------------

OPAQUE = [
    "DO $$BEGIN EXECUTE 'SELECT 1'; END$$",
    "DO $$DECLARE q text := 'SELECT 1'; BEGIN EXECUTE q; END$$",
    "DO $$BEGIN EXECUTE format('SELECT %s', 1); END$$",
    "SELECT query_to_xml('select 1', true, true, '')",
    "SELECT pg_catalog.query_to_xml('select 1', true, true, '')",
    "SELECT query_to_xmlschema('select 1', true, true, '')",
    "SELECT ts_stat('SELECT to_tsvector(''a'')')",
    "COPY invoices TO PROGRAM 'cat > /dev/null'",
    "COPY invoices FROM PROGRAM 'echo'",
    "COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'",
    "COPY invoices TO '/tmp/pol-out'",
    "SELECT pg_read_file('/etc/hostname')",
]


@pytest.mark.parametrize("dbname", ["staging", "prod"])
@pytest.mark.parametrize("sql", OPAQUE)
def test_opaque_sql_denied(pgwarden, sql, dbname):
    with pgwarden.connect(dbname=dbname) as c:
        expect_denied(c, sql, "opaque-sql")
        assert_identity(c)


def test_opaque_user_function_staging(pgwarden):
    with pgwarden.connect(dbname="staging") as c:
        try:
            run(c, "SELECT billing.run_sql($q$SELECT set_config('app.tenant_id', 'globex', false)$q$)")
        except psycopg.Error as e:
            assert_denied(e, "opaque-sql")
        assert_identity(c)


CURSOR_FN = """CREATE OR REPLACE FUNCTION billing.pol_cursor_total() RETURNS numeric LANGUAGE plpgsql STABLE AS $$
DECLARE
    c CURSOR (lim int) FOR SELECT amount FROM billing.invoices WHERE id <= lim;
    rc refcursor;
    label text COLLATE "C" := 'x';
    r record;
    total numeric := 0;
BEGIN
    FOR row IN c(5) LOOP total := total + row.amount; END LOOP;
    OPEN rc FOR SELECT amount FROM billing.invoices WHERE id <= 5;
    LOOP
        FETCH NEXT FROM rc INTO r;
        EXIT WHEN NOT FOUND;
        total := total + r.amount;
    END LOOP;
    CLOSE rc;
    RETURN total;
END $$"""


def test_plpgsql_cursors_and_collations(pgwarden, pg, _session_warden):
    """Valid PL/pgSQL that libpg_query's reader rejects without a catalog (refcursor variables,
    OPEN/FETCH/CLOSE, cursor FOR loops, COLLATE in a declaration) is read, in DO blocks and in
    function bodies: read-only on prod, a write still a write."""
    for db in ("app", "app_staging"):
        pg.sql(CURSOR_FN, db)
        pg.sql("GRANT EXECUTE ON FUNCTION billing.pol_cursor_total() TO bookkeeper", db)
    try:
        _session_warden.reload(wait=1.0)
        do = ("DO $$ DECLARE c refcursor; r record; t text COLLATE \"C\" := 'a'; BEGIN "
              "OPEN c FOR SELECT id FROM invoices; FETCH c INTO r; MOVE NEXT IN c; CLOSE c; END $$")
        with pgwarden.connect(dbname="prod") as c:
            run(c, do)
            total = run(c, "SELECT billing.pol_cursor_total()").fetchone()[0]
            assert total == 2 * run(c, "SELECT sum(amount) FROM invoices WHERE id <= 5").fetchone()[0]
            expect_denied(c, "DO $$ DECLARE c refcursor; BEGIN OPEN c FOR SELECT nextval('invoices_id_seq'); "
                             "END $$", "write-outside-window")
            expect_denied(c, "DO $$ DECLARE c refcursor; BEGIN OPEN c FOR "
                             "SELECT set_config('app.tenant_id', 'globex', false); END $$", "identity-change")
            assert_identity(c)
    finally:
        for db in ("app", "app_staging"):
            pg.sql("DROP FUNCTION IF EXISTS billing.pol_cursor_total()", db)


def test_plain_do_block_allowed_on_staging(pgwarden):
    with pgwarden.connect(dbname="staging") as c:
        run(c, "DO $$BEGIN PERFORM 1; END$$")
        assert_identity(c)


# --- fastpath -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dbname", ["staging", "prod"])
def test_fastpath_denied(pgwarden, dbname):
    with raw_login(pgwarden, dbname) as r:
        r.send(function_call(SET_CONFIG_OID, [b"app.tenant_id", b"globex", b"false"]))
        out = r.read_until_ready()
        errs = errors_of(out)
        assert len(errs) == 1 and errs[0]["C"] == "42501"
        assert errs[0]["M"].startswith("pgwarden:") and "fastpath" in errs[0]["D"]
        assert status_of(out) == b"I"
        assert not [k for k, _ in out if k == b"V"]  # no FunctionCallResponse
        # the session goes on, identity intact; inside a block the denial aborts it
        got = rows_of(r.simple("SELECT current_user, current_setting('app.tenant_id')"))
        assert got == [("bookkeeper", "acme")]
        assert status_of(r.simple("BEGIN")) == b"T"
        r.send(function_call(SET_CONFIG_OID, [b"role", b"agent_rw", b"false"]))
        out = r.read_until_ready()
        assert errors_of(out)[0]["C"] == "42501" and status_of(out) == b"E"
        assert status_of(r.simple("ROLLBACK")) == b"I"
        assert rows_of(r.simple("SELECT current_user")) == [("bookkeeper",)]


# --- unparsable --------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_syntax_error_is_the_parsers_answer(pgwarden, protocol):
    """CONTRACT §4: what PostgreSQL's parser rejects gets the parser's answer from pgwarden
    (42601 and the error position), not a denial; `unparsable` is for what is too large."""
    with pgwarden.connect() as c:
        with pytest.raises(psycopg.Error) as ei:
            run(c, "SELEC 1", protocol)
        e = ei.value
        assert e.sqlstate == "42601", f"{e.sqlstate}: {e.diag.message_primary}"
        assert e.diag.message_primary == 'syntax error at or near "SELEC"'
        assert e.diag.statement_position == "1"
        assert_identity(c)


@pytest.mark.parametrize("name,sql", [
    ("100k-terms", "SELECT " + "1+" * 100000 + "1"),
    ("50k-parens", "SELECT " + "(" * 50000 + "1" + ")" * 50000),
    ("20k-stmts", "SELECT 1;" * 20000),
])
def test_huge_statements_denied_without_killing_proxy(pgwarden, name, sql):
    pid = pgwarden.pid
    with pgwarden.connect() as c:
        t0 = time.monotonic()
        try:
            run(c, sql)
            denied = False
        except psycopg.Error as e:
            denied = True
            if name == "50k-parens":
                # PostgreSQL's own parser rejects this nesting (bison's stack): its answer, 42601
                assert e.sqlstate == "42601" and "memory exhausted" in e.diag.message_primary
            elif name != "20k-stmts":
                assert_denied(e, "unparsable")
        assert time.monotonic() - t0 < 20
        assert denied or name == "20k-stmts"
        assert_identity(c)
    assert pgwarden.alive() and pgwarden.pid == pid
    with pgwarden.connect() as c2:
        assert c2.execute("SELECT 'fresh'").fetchone() == ("fresh",)


# --- [rule.NAME] ---------------------------------------------------------------------------------------

RULES = r"""
[rule.no-file-access]
match = \bpg_(read|write)_\w*file\b
action = deny
message = server file access is not allowed through pgwarden

[rule.pol-watch]
match = (?i)\bpol_watch\b
action = log

[rule.staging-only]
match = \bpol_staging_marker\b
action = deny
targets = staging
"""


def test_operator_rules(pgwarden_factory):
    import json

    w = pgwarden_factory(extra_config=RULES)
    with w.connect(dbname="staging") as c:
        e = expect_denied(c, "SELECT 1 AS pg_read_binfile", "rule:no-file-access")
        assert e.diag.message_primary == "pgwarden: server file access is not allowed through pgwarden"
        expect_denied(c, "SELECT 1 AS pg_write_somefile", "rule:no-file-access", "extended")
        # per statement: one matching statement denies the whole Query
        expect_denied(c, "SELECT 1; SELECT 2 AS pg_read_xfile", "rule:no-file-access")
        expect_denied(c, "SELECT 1 AS pol_staging_marker", "rule:staging-only")
        # log: allowed, the audit record carries the rule
        assert run(c, "SELECT 'x' AS POL_WATCH").fetchone() == ("x",)
        assert_identity(c)
    with w.connect(dbname="prod") as c:
        assert run(c, "SELECT 1 AS pol_staging_marker").fetchone() == (1,)
        expect_denied(c, "SELECT 1 AS pg_read_binfile", "rule:no-file-access")
    recs = [json.loads(line) for line in w.audit_path.read_text().splitlines() if line.strip()]
    watched = [r for r in recs if r.get("event") == "statement" and "POL_WATCH" in (r.get("sql") or "")]
    assert watched and watched[0].get("decision") == "allow" and watched[0].get("rule") == "rule:pol-watch"
    denied = [r for r in recs if r.get("event") == "statement" and "pg_read_binfile" in (r.get("sql") or "")]
    assert denied and all(r.get("decision") == "deny" and r.get("rule") == "rule:no-file-access"
                          for r in denied)


# --- denial semantics -------------------------------------------------------------------------------

def test_denial_aborts_transaction_block(pgwarden, pg):
    tag = "pol-abort-" + secrets.token_hex(4)
    with pgwarden.connect(dbname="staging") as c:
        cur = psycopg.ClientCursor(c)
        cur.execute("BEGIN")
        cur.execute(f"INSERT INTO invoices (tenant, amount, note) VALUES ('acme', 1, '{tag}')")
        with pytest.raises(psycopg.Error) as ei:
            cur.execute("SET ROLE agent_rw")
        assert_denied(ei.value, "identity-change")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(errors.InFailedSqlTransaction):
            cur.execute("SELECT 1")
        cur.execute("COMMIT")
        assert cur.statusmessage == "ROLLBACK"
        assert_identity(c)
    assert pg.sql(f"SELECT count(*) FROM billing.invoices WHERE note = '{tag}'", "app_staging") == [(0,)]


def test_denial_aborts_transaction_block_extended(pgwarden, pg):
    tag = "pol-abort-x-" + secrets.token_hex(4)
    with pgwarden.connect(dbname="staging", autocommit=False) as c:
        c.execute("INSERT INTO invoices (tenant, amount, note) VALUES ('acme', 1, %s)", (tag,))
        with pytest.raises(psycopg.Error) as ei:
            c.execute("SELECT set_config('app.tenant_id', %s, false)", ("globex",))
        assert_denied(ei.value, "identity-change")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.commit()
        assert_identity(c)
    assert pg.sql(f"SELECT count(*) FROM billing.invoices WHERE note = '{tag}'", "app_staging") == [(0,)]


def test_denial_in_pipeline_skips_to_sync(pgwarden):
    with pgwarden.connect(dbname="prod") as c:
        # psycopg raises the error at the first call that sees it (a later execute or the sync)
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            with c.pipeline() as p:
                a = c.execute("SELECT 1")
                b = c.execute("SELECT %s::text", ("two",))
                c.execute("INSERT INTO invoices (tenant, amount) VALUES ('acme', 1)")
                c.execute("SELECT 4")
                p.sync()
        assert_denied(ei.value, "write-outside-window", hint=True)
        assert a.fetchone() == (1,)
        assert b.fetchone() == ("two",)
        # the session goes on: a new pipeline after the Sync runs normally
        with c.pipeline():
            x = c.execute("SELECT 5")
            y = c.execute("SELECT current_setting('app.tenant_id')")
        assert x.fetchone() == (5,) and y.fetchone() == ("acme",)
        assert_identity(c)


def test_ready_for_query_status_after_denial(pgwarden):
    with raw_login(pgwarden) as r:
        out = r.simple("SET ROLE agent_rw")
        assert errors_of(out)[0]["C"] == "42501" and status_of(out) == b"I"
        assert status_of(r.simple("BEGIN")) == b"T"
        out = r.simple("SET app.tenant_id = 'globex'")
        err = errors_of(out)
        assert len(err) == 1 and err[0]["C"] == "42501" and "identity-change" in err[0]["D"]
        assert status_of(out) == b"E"
        out = r.simple("SELECT 1")
        assert errors_of(out)[0]["C"] == "25P02" and status_of(out) == b"E"
        out = r.simple("COMMIT")
        assert (b"C", b"ROLLBACK\0") in out and status_of(out) == b"I"
        assert rows_of(r.simple("SELECT current_setting('app.tenant_id')")) == [("acme",)]


@pytest.mark.parametrize("dbname,denied_sql,expect", [
    # identity: the Parse itself is denied (no ParseComplete for it)
    ("staging", "SET ROLE agent_rw", [b"1", b"2", b"D", b"C", b"E", b"Z"]),
    # production write: the Parse passes (window rules are judged when it runs), the Bind is
    # denied (the server may refuse some already at Bind, e.g. FOR UPDATE: the client must see
    # pgwarden's denial there)
    ("prod", "DELETE FROM invoices WHERE id = -1", [b"1", b"2", b"D", b"C", b"1", b"E", b"Z"]),
])
def test_denial_in_extended_batch_raw(pgwarden, dbname, denied_sql, expect):
    """Extended protocol on the wire: one ErrorResponse for the denied statement, the rest up
    to Sync skipped, ReadyForQuery 'I'; then a normal batch works."""
    bind, execute, sync = bind_msg(), EXECUTE, SYNC
    with raw_login(pgwarden, dbname) as r:
        r.send(parse_msg("SELECT 1") + bind + execute + parse_msg(denied_sql) + bind + execute
               + parse_msg("SELECT 3") + bind + execute + sync)
        out = r.read_until_ready()
        kinds = [k for k, _ in out]
        assert kinds == expect, kinds
        assert errors_of(out)[0]["C"] == "42501" and status_of(out) == b"I"
        r.send(parse_msg("SELECT current_user") + bind + execute + sync)
        assert rows_of(r.read_until_ready()) == [("bookkeeper",)]


# --- prepared statements ---------------------------------------------------------------------------

def test_failed_re_parse_does_not_replace_tracked_statement(pgwarden, pg):
    locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
    with raw_login(pgwarden, "prod") as r:
        r.send(parse_msg("SELECT pg_advisory_lock(4242)", b"pol_s") + SYNC)
        assert [k for k, _ in r.read_until_ready()] == [b"1", b"Z"]
        r.send(parse_msg("SELECT 1", b"pol_s") + SYNC)
        assert errors_of(r.read_until_ready())[0]["C"] == "42P05"  # the server keeps the first
        r.send(bind_msg(b"pol_s") + EXECUTE + SYNC)
        out = r.read_until_ready()
        held = pg.sql(locks)[0][0]
        errs = errors_of(out)
        assert held == 0, "pg_advisory_lock ran on prod outside a window"
        assert errs and errs[0]["C"] == "42501" and "write-outside-window" in errs[0]["D"]



def test_unknown_prepared_statement_execute(pgwarden):
    with pgwarden.connect(dbname="prod") as c:
        with pytest.raises(psycopg.Error) as ei:
            run(c, "EXECUTE pol_never_prepared")
        assert ei.value.sqlstate == "42501"
        assert_identity(c)


def test_stale_parse_name_cannot_write_on_prod(pgwarden, pg):
    tag = "pol-chain-" + secrets.token_hex(4)

    def stale(r, name, real):
        r.send(parse_msg(real, name) + SYNC)
        r.read_until_ready()
        r.send(parse_msg("SELECT 1", name) + SYNC)
        r.read_until_ready()
        r.send(bind_msg(name) + EXECUTE + SYNC)
        return r.read_until_ready()

    try:
        with raw_login(pgwarden, "prod") as r:
            stale(r, b"pol_a", "SET default_transaction_read_only = off")
            stale(r, b"pol_b", f"INSERT INTO invoices (tenant, amount, note) VALUES ('acme', 1, '{tag}')")
            assert rows_of(r.simple("SHOW default_transaction_read_only")) == [("on",)]
        written = pg.sql(f"SELECT count(*) FROM billing.invoices WHERE note = '{tag}'", "app")[0][0]
    finally:
        pg.sql(f"DELETE FROM billing.invoices WHERE note = '{tag}'", "app")
    assert written == 0


# --- cache confusion ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dbname", ["staging", "prod"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_set_config_cache_confusion(pgwarden, protocol, dbname):
    ok = "SELECT set_config('search_path', 'public', false)"
    bad = "SELECT set_config('app.tenant_id', 'globex', false)"
    with pgwarden.connect(dbname=dbname) as c:
        run(c, ok, protocol)
        expect_denied(c, bad, "identity-change", protocol)
        run(c, ok, protocol)
        expect_denied(c, bad, "identity-change", protocol)
        assert_identity(c)
    with pgwarden.connect(dbname=dbname) as c:
        expect_denied(c, bad, "identity-change", protocol)
        run(c, ok, protocol)
        expect_denied(c, bad, "identity-change", protocol)
        assert_identity(c)
    with pgwarden.connect(dbname=dbname) as c:
        expect_denied(c, "SELECT set_config('app.tenant_id', 'acme', false)", "identity-change", protocol)
        run(c, "SELECT set_config('search_path', 'billing', false)", protocol)
        assert_identity(c)


def test_literal_values_do_not_share_verdicts(pgwarden):
    """Same shape, different literals: the read-only verdict for 'on' must not carry to 'off'."""
    with pgwarden.connect(dbname="prod") as c:
        run(c, "SET default_transaction_read_only = on")
        expect_denied(c, "SET default_transaction_read_only = off", "read-write-override")
        run(c, "SELECT set_config('default_transaction_read_only', 'on', false)")
        expect_denied(c, "SELECT set_config('default_transaction_read_only', 'off', false)",
                      "read-write-override")
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)


# --- lexing --------------------------------------------------------------------------------------------

LEXING = [
    "SET standard_conforming_strings = off",
    "SET standard_conforming_strings TO false",
    "SELECT set_config('standard_conforming_strings', 'off', false)",
    "SET client_encoding = 'SJIS'",
    "SET client_encoding TO 'BIG5'",
    "SET NAMES 'GBK'",
    "SELECT set_config('client_encoding', 'SJIS', false)",
    "SET backslash_quote = on",
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("sql", LEXING)
def test_lexing_changes_refused(pgwarden, sql, protocol):
    with pgwarden.connect() as c:
        e = expect_denied(c, sql, "", protocol)
        assert e.diag.message_detail.startswith("rule: ")
        assert c.execute("SHOW standard_conforming_strings").fetchone() == ("on",)
        assert c.execute("SHOW client_encoding").fetchone() == ("UTF8",)
        assert_identity(c)


def test_harmless_lexing_values_allowed(pgwarden):
    with pgwarden.connect() as c:
        run(c, "SET standard_conforming_strings = on")
        run(c, "SET client_encoding = 'UTF8'")
        assert_identity(c)


@pytest.mark.parametrize("options", ["-c app.tenant_id=globex", "-c role=agent_rw", "-crole=agent_rw",
                                     "-c search_path=public -c app.actor_id=user:ada",
                                     "-c session_authorization=postgres"])
def test_identity_in_startup_options_refused(pgwarden, options):
    with pytest.raises(psycopg.OperationalError):
        with psycopg.connect(pgwarden.dsn(options=options)) as c:
            got = identity(c)
            raise AssertionError(f"connected with options {options!r}: {got}")


@pytest.mark.parametrize("how", ["param", "options"])
def test_connect_with_sjis_refused(pgwarden, how):
    kw = {"client_encoding": "SJIS"} if how == "param" else {"options": "-c client_encoding=SJIS"}
    with pytest.raises(psycopg.OperationalError):
        with psycopg.connect(pgwarden.dsn(**kw)) as c:
            # should not get here; if it did, the session must not be in SJIS
            enc = c.execute("SHOW client_encoding").fetchone()[0]
            raise AssertionError(f"connected with client_encoding {enc}")
    with pgwarden.connect() as c:
        assert_identity(c)
