"""test_roles.py - roles that must not change through pgwarden (issue 14, holes 3 and 4):
protected roles (protected_roles: anon, guest, public) by any means other than a plain GRANT -
renaming, re-creating, attributes, memberships, row policies, function bodies - and pgwarden's
own upstream login role (the `user` of each target's conninfo), which must not be altered,
renamed, dropped or lose the memberships pgwarden needs for SET ROLE.

After each attempt the role is checked as the database sees it: still there, same attributes.
"""
import psycopg
import pytest

from policy_helpers import assert_identity, expect_denied, run

pytestmark = pytest.mark.identity  # pgwarden's own behaviour: skipped in direct mode

ROLE_STATE_SQL = ("SELECT rolname, rolcanlogin, rolsuper, rolbypassrls, rolconnlimit, "
                  "rolvaliduntil, rolconfig FROM pg_roles WHERE rolname IN ('anon', 'guest', "
                  "'{svc}') ORDER BY 1")


def role_state(pg):
    return pg.sql(ROLE_STATE_SQL.format(svc=pg.svc_user))


PROTECTED_CHANGES = [
    "ALTER ROLE anon RENAME TO pol_anon2",
    "ALTER USER \"ANON\" RENAME TO pol_anon2",
    "ALTER ROLE pol_reader RENAME TO anon",
    "ALTER ROLE pol_reader RENAME TO \"GUEST\"",
    "ALTER ROLE anon LOGIN PASSWORD 'pol-secret'",
    "ALTER ROLE anon WITH LOGIN",
    "ALTER ROLE guest SUPERUSER",
    "ALTER ROLE anon BYPASSRLS",
    "ALTER ROLE anon CONNECTION LIMIT 5",
    "ALTER USER anon VALID UNTIL 'infinity'",
    "ALTER ROLE anon SET statement_timeout = 0",
    "ALTER ROLE anon IN DATABASE app SET search_path = billing",
    "ALTER ROLE guest RESET ALL",
    "CREATE ROLE anon",
    "CREATE USER guest PASSWORD 'x'",
    "CREATE ROLE pol_x IN ROLE anon",
    "CREATE ROLE pol_x IN GROUP guest",
    "CREATE ROLE pol_x USER anon",
    "DROP ROLE anon",
    "DROP ROLE IF EXISTS pol_nobody, guest",
    "DROP OWNED BY anon",
    "REASSIGN OWNED BY anon TO bookkeeper",
    "GRANT anon TO pol_reader",
    "REVOKE guest FROM pol_reader",
    "ALTER GROUP bookkeeper DROP USER anon",
    "CREATE POLICY pol_p ON billing.invoices TO anon USING (true)",
    "CREATE POLICY pol_p ON billing.invoices FOR SELECT TO bookkeeper, guest USING (true)",
    "CREATE POLICY pol_p ON billing.invoices USING (true)",
    "CREATE POLICY pol_p ON billing.invoices AS PERMISSIVE TO public USING (true)",
    "ALTER POLICY tenant_isolation ON billing.invoices TO anon",
    "ALTER POLICY tenant_isolation ON billing.invoices TO bookkeeper, \"ANON\" USING (true)",
    "CREATE DATABASE pol_db OWNER anon",
    "CREATE TABLESPACE pol_ts OWNER guest LOCATION '/nonexistent'",
    "CREATE USER MAPPING FOR anon SERVER pol_srv OPTIONS (user 'x')",
    "ALTER USER MAPPING FOR PUBLIC SERVER pol_srv OPTIONS (SET password 'x')",
    "DO $$ BEGIN ALTER ROLE anon LOGIN; END $$",
    "DO $$ BEGIN CREATE POLICY pol_p ON billing.invoices TO anon USING (true); END $$",
]


@pytest.mark.parametrize("dbname", ["staging", "prod"])
@pytest.mark.parametrize("sql", PROTECTED_CHANGES)
def test_protected_role_changes_denied(pgwarden, pg, sql, dbname):
    before = role_state(pg)
    with pgwarden.connect(dbname=dbname) as c:
        expect_denied(c, sql, "grant-to-protected-role")
        assert_identity(c)
    assert role_state(pg) == before


LOGIN_ROLE_CHANGES = [
    "ALTER ROLE {svc} CONNECTION LIMIT 0",
    "ALTER ROLE {svc} NOLOGIN",
    "ALTER ROLE {svc} PASSWORD 'pol-x'",
    "ALTER USER \"{svc}\" WITH ENCRYPTED PASSWORD 'pol-x'",
    "ALTER ROLE {svc} VALID UNTIL '2000-01-01'",
    "ALTER ROLE {svc} RENAME TO pol_svc2",
    "ALTER ROLE pol_reader RENAME TO {svc}",
    "ALTER ROLE {svc} SET default_transaction_read_only = off",
    "ALTER ROLE {svc} IN DATABASE app SET statement_timeout = 1",
    "ALTER ROLE {svc} RESET ALL",
    "ALTER ROLE ALL SET statement_timeout = 1",
    "ALTER ROLE SESSION_USER NOLOGIN",
    "DROP ROLE {svc}",
    "REVOKE bookkeeper FROM {svc}",
    "GRANT pol_reader TO {svc}",
    "REASSIGN OWNED BY {svc} TO bookkeeper",
    "DROP OWNED BY {svc}",
    "DO $$ BEGIN ALTER ROLE {svc} CONNECTION LIMIT 0; END $$",
]


@pytest.mark.parametrize("dbname", ["staging", "prod"])
@pytest.mark.parametrize("sql", LOGIN_ROLE_CHANGES)
def test_login_role_changes_denied(pgwarden, pg, sql, dbname):
    before = role_state(pg)
    with pgwarden.connect(dbname=dbname) as c:
        expect_denied(c, sql.format(svc=pg.svc_user), "identity-change")
        assert_identity(c)
    assert role_state(pg) == before
    with pgwarden.connect(dbname="prod") as c:  # pgwarden can still log in and pin
        assert_identity(c)


ACTOR_ROLE_CHANGES = [
    "ALTER ROLE bookkeeper RENAME TO pol_bk",
    "ALTER ROLE agent_rw NOLOGIN",
    "ALTER ROLE bookkeeper SET statement_timeout = 1",
    "DROP ROLE agent_rw",
    "GRANT pol_reader TO bookkeeper",
    "REVOKE bookkeeper FROM pol_reader",
    "CREATE ROLE pol_x IN ROLE bookkeeper",
]


@pytest.mark.parametrize("dbname", ["staging", "prod"])
@pytest.mark.parametrize("sql", ACTOR_ROLE_CHANGES)
def test_actor_role_changes_denied(pgwarden, sql, dbname):
    """The role of a token record is who those actors are upstream: not changed through pgwarden."""
    with pgwarden.connect(dbname=dbname) as c:
        expect_denied(c, sql, "identity-change")
        assert_identity(c)


def test_other_role_statements_reach_the_server(pgwarden):
    """A role that is neither protected nor a login role is not pgwarden's business on staging:
    the statement reaches the server (which refuses it: bookkeeper has no CREATEROLE)."""
    with pgwarden.connect(dbname="staging") as c:
        for sql in ("ALTER ROLE pol_reader CONNECTION LIMIT 3", "DROP ROLE pol_nobody",
                    "CREATE POLICY pol_p ON billing.invoices AS RESTRICTIVE TO anon USING (true)"):
            with pytest.raises(psycopg.Error) as ei:
                run(c, sql)
            assert not (ei.value.diag.message_primary or "").startswith("pgwarden:"), sql


def test_function_body_changing_a_protected_role(pgwarden, pg, _session_warden):
    """A function whose body alters anon (created behind pgwarden's back, read by a reload) is
    judged by its body: grant-to-protected-role on every call path."""
    body = "ALTER ROLE anon LOGIN; SELECT 1"
    for db in ("app", "app_staging"):
        pg.sql(f"CREATE OR REPLACE FUNCTION billing.pol_anon_login() RETURNS int LANGUAGE sql "
               f"SECURITY DEFINER AS $$ {body} $$", db)
        pg.sql("GRANT EXECUTE ON FUNCTION billing.pol_anon_login() TO bookkeeper", db)
    try:
        _session_warden.reload(wait=1.0)
        before = role_state(pg)
        for dbname in ("staging", "prod"):
            with pgwarden.connect(dbname=dbname) as c:
                expect_denied(c, "SELECT billing.pol_anon_login()", "grant-to-protected-role")
                expect_denied(c, "SELECT * FROM billing.pol_anon_login()", "grant-to-protected-role")
                assert_identity(c)
        assert role_state(pg) == before
    finally:
        for db in ("app", "app_staging"):
            pg.sql("DROP FUNCTION IF EXISTS billing.pol_anon_login()", db)
