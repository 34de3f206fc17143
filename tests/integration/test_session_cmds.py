"""test_session_cmds.py - ordinary session commands on production outside a window (issue 13):
SETs of session-local settings, SET CONSTRAINTS, LOCK ... IN ACCESS SHARE MODE, LOAD 'plpgsql'
and CALL of a procedure that only reads are not writes; what changes shared state still is.
Then the real tools: pg_dump (plain and custom format) and a psql script, on both targets.
"""
import os
import subprocess

import psycopg
import pytest

from policy_helpers import assert_identity, expect_denied, run

pytestmark = pytest.mark.identity  # pgwarden's own behaviour: skipped in direct mode

PG_BIN = "/usr/lib/postgresql/15/bin"

SESSION_COMMANDS = [
    "SET statement_timeout = '5s'",
    "SET lock_timeout = 0",
    "SET idle_in_transaction_session_timeout = 0",
    "SET search_path = billing, public",
    "SET extra_float_digits TO 3",
    "SET synchronize_seqscans TO off",
    "SET DateStyle = ISO",
    "SET enable_seqscan = off",
    "SET work_mem = '8MB'",
    "SET vacuum_cost_delay = 0",
    "SET plpgsql.variable_conflict = use_column",
    "SET app.request_id = 'req-1'",
    "RESET app.request_id",
    "SET quote_all_identifiers = true",
    "SET row_security = on",
    "SELECT set_config('app.request_id', 'req-2', false)",
    "SELECT pg_catalog.set_config('search_path', '', false)",
    "SET CONSTRAINTS ALL DEFERRED",
    "CALL billing.pol_peek()",
]


@pytest.fixture(scope="module")
def peek_procedure(pg, _session_warden):
    """A procedure that only reads, in both databases, read by a reload."""
    for db in ("app", "app_staging"):
        pg.sql("CREATE OR REPLACE PROCEDURE billing.pol_peek() LANGUAGE sql "
               "AS $$ SELECT count(*) FROM billing.invoices $$", db)
        pg.sql("GRANT EXECUTE ON PROCEDURE billing.pol_peek() TO bookkeeper", db)
    _session_warden.reload(wait=1.0)
    yield
    for db in ("app", "app_staging"):
        pg.sql("DROP PROCEDURE IF EXISTS billing.pol_peek()", db)


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_session_commands_allowed_on_prod(pgwarden, peek_procedure, protocol):
    with pgwarden.connect(dbname="prod") as c:
        for sql in SESSION_COMMANDS:
            run(c, sql, protocol)
        run(c, "RESET ALL")
        assert_identity(c)


@pytest.mark.parametrize("sql", ["LOAD 'plpgsql'", "LOAD '$libdir/plpgsql'"])
def test_load_plpgsql_reaches_the_server_on_prod(pgwarden, sql):
    """pgwarden lets it through; PostgreSQL itself refuses LOAD to non-superusers outside
    $libdir/plugins (so the answer is the server's, not pgwarden's)."""
    with pgwarden.connect(dbname="prod") as c:
        try:
            run(c, sql)
        except psycopg.Error as e:
            assert not (e.diag.message_primary or "").startswith("pgwarden:"), e.diag.message_primary
        assert_identity(c)


def test_load_other_library_denied_on_prod(pgwarden):
    with pgwarden.connect(dbname="prod") as c:
        expect_denied(c, "LOAD 'auto_explain'", "write-outside-window", hint=True)


def test_access_share_lock_allowed_on_prod(pgwarden):
    with pgwarden.connect(dbname="prod", autocommit=False) as c:
        run(c, "LOCK TABLE billing.invoices IN ACCESS SHARE MODE")
        assert run(c, "SELECT count(*) FROM billing.invoices WHERE id <= 5").fetchone() == (3,)
        c.rollback()


SHARED_STATE = [
    "ANALYZE billing.invoices",
    "VACUUM billing.invoices",
    "REINDEX TABLE billing.invoices",
    "CLUSTER billing.invoices",
    "LOCK TABLE billing.invoices IN ROW SHARE MODE",
    "LOCK TABLE billing.invoices IN SHARE MODE",
    "LOCK TABLE billing.invoices",
    "NOTIFY pol_chan",
    "SELECT lo_create(0)",
    "SET session_replication_role = replica",
]


@pytest.mark.parametrize("sql", SHARED_STATE)
def test_shared_state_still_denied_on_prod(pgwarden, sql):
    with pgwarden.connect(dbname="prod") as c:
        expect_denied(c, sql, "write-outside-window", hint=True)
        assert_identity(c)


@pytest.mark.parametrize("sql", ["SET default_transaction_read_only = off", "SET TRANSACTION READ WRITE",
                                 "SET transaction_read_only = off"])
def test_read_only_overrides_still_denied_on_prod(pgwarden, sql):
    with pgwarden.connect(dbname="prod", autocommit=False) as c:
        expect_denied(c, sql, "read-write-override")


@pytest.fixture(scope="module")
def dumpable(pg):
    """pg_dump reads every sequence it dumps: let bookkeeper read invoices' (behind pgwarden)."""
    for db in ("app", "app_staging"):
        pg.sql("GRANT SELECT ON SEQUENCE billing.invoices_id_seq TO bookkeeper", db)
    yield
    for db in ("app", "app_staging"):
        pg.sql("REVOKE SELECT ON SEQUENCE billing.invoices_id_seq FROM bookkeeper", db)


def tool_env(w, actor="user:jimmie"):
    env = dict(os.environ)
    env.update(PGHOST=w.host, PGPORT=str(w.port), PGUSER=actor, PGPASSWORD=w.tokens[actor],
               PGSSLMODE="disable", PGCONNECT_TIMEOUT="10")
    return env


@pytest.mark.parametrize("dbname", ["staging", "prod"])
@pytest.mark.parametrize("fmt", ["p", "c"])
def test_pg_dump_through_pgwarden(pgwarden, dumpable, dbname, fmt, tmp_path):
    out = tmp_path / f"dump.{fmt}"
    r = subprocess.run([f"{PG_BIN}/pg_dump", "-d", dbname, "-F", fmt, "-t", "billing.invoices", "--enable-row-security",
                        "-f", str(out)],
                       env=tool_env(pgwarden), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    if fmt == "c":
        r = subprocess.run([f"{PG_BIN}/pg_restore", "-f", "-", str(out)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        text = r.stdout
    else:
        text = out.read_text()
    # one table (other tests leave objects in billing that bookkeeper may not read); its sequence
    # and policies come along, and pg_dump's catalog queries are all the same
    assert "CREATE TABLE billing.invoices" in text
    assert "CREATE POLICY tenant_isolation" in text
    assert "COPY billing.invoices" in text
    assert "\tacme\t" in text and "\tglobex\t" not in text  # row-level security held


@pytest.mark.parametrize("dbname", ["staging", "prod"])
def test_psql_script_through_pgwarden(pgwarden, dbname, tmp_path):
    script = tmp_path / "report.sql"
    script.write_text("\\set ON_ERROR_STOP on\n"
                      "SET statement_timeout = '30s';\n"
                      "SET search_path = billing, public;\n"
                      "SET application_name = 'nightly report';\n"
                      "BEGIN READ ONLY;\n"
                      "LOCK TABLE invoices IN ACCESS SHARE MODE;\n"
                      "SELECT count(*) AS n FROM invoices WHERE id <= 5;\n"
                      "COMMIT;\n"
                      "RESET statement_timeout;\n")
    r = subprocess.run([f"{PG_BIN}/psql", "-X", "-d", dbname, "-At", "-f", str(script)],
                       env=tool_env(pgwarden), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "\n3\n" in "\n" + r.stdout


PSQL_META = [r"\dt billing.*", r"\d+ billing.invoices", r"\df billing.*", r"\dn", r"\du", r"\l", r"\dv",
             r"\di", r"\ds", r"\dp billing.*", r"\dx", r"\dT", r"\dd", r"\dD", r"\do", r"\dF",
             r"\dconfig", r"\sf billing.tenant_total", r"\dS+ pg_class"]


@pytest.mark.parametrize("cmd", PSQL_META)
def test_psql_meta_commands_on_prod(pgwarden, cmd):
    """psql's backslash commands read the catalog with built-in functions: none is a write."""
    r = subprocess.run([f"{PG_BIN}/psql", "-X", "-d", "prod", "-c", cmd], env=tool_env(pgwarden),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "pgwarden" not in r.stderr, r.stderr


def test_set_config_from_pg_settings_pinned_to_one_name(pgwarden):
    """pg_dump 15.18's form: the name comes from a column, but the WHERE clause pins it to one
    constant that is not pinned by pgwarden."""
    sql = ("SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings "
           "WHERE name = 'restrict_nonsystem_relation_kind'")
    with pgwarden.connect(dbname="prod") as c:
        try:
            run(c, sql)
        except psycopg.Error as e:  # a server without the setting: not pgwarden's answer
            assert not (e.diag.message_primary or "").startswith("pgwarden:"), e.diag.message_primary
        assert_identity(c)
