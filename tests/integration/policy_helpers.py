"""policy_helpers.py - shared checks for test_policy.py: what a pgwarden denial looks like
(CONTRACT §4: SQLSTATE 42501, message starting "pgwarden:", DETAIL naming the rule id) and
what the pinned identity of user:jimmie is, as the database sees it.
"""
import struct
import time

import psycopg
import pytest

from rawpg import msg

# user:jimmie's pinned identity (tests/integration/warden.py ACTORS) and the RLS-visible count
# of the seeded rows (tests/sql/demo_schema.sql: acme owns 3 of ids 1..5). Schema-qualified so
# a test that changes search_path can still check it.
IDENTITY_SQL = ("SELECT current_user::text, current_setting('app.actor_id', true), "
                "current_setting('app.tenant_id', true), "
                "(SELECT count(*) FROM billing.invoices WHERE id <= 5)")
PINNED = {
    "user:jimmie": ("bookkeeper", "user:jimmie", "acme", 3),
    "user:ada": ("bookkeeper", "user:ada", "globex", 2),
}

SET_CONFIG_OID = 2078  # pg_catalog.set_config(text, text, boolean)


def identity(conn):
    """(current_user, actor, tenant, visible seeded rows) on a psycopg connection; rolls back
    a failed transaction first so the check itself can run."""
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
        conn.rollback() if not conn.autocommit else conn.execute("ROLLBACK")
    return conn.execute(IDENTITY_SQL).fetchone()


def assert_identity(conn, actor="user:jimmie"):
    assert identity(conn) == PINNED[actor]


def assert_denied(exc, rule, hint=False):
    """exc is a pgwarden denial naming rule (CONTRACT §4)."""
    diag = exc.diag
    assert exc.sqlstate == "42501", f"{exc.sqlstate}: {diag.message_primary}"
    assert (diag.message_primary or "").startswith("pgwarden:"), diag.message_primary
    assert rule in (diag.message_detail or ""), (diag.message_detail, diag.message_primary)
    if hint:
        assert diag.message_hint, "production write denial without a HINT"


def run(conn, sql, protocol="simple", params=None):
    """Run sql through the simple (ClientCursor: one Query message) or extended protocol."""
    if protocol == "simple":
        return psycopg.ClientCursor(conn).execute(sql, params)
    return conn.cursor().execute(sql, params)


def expect_denied(conn, sql, rule, protocol="simple", params=None, hint=False):
    """Run sql, expect a pgwarden denial for rule; returns the exception."""
    with pytest.raises(psycopg.Error) as ei:
        run(conn, sql, protocol, params)
    assert_denied(ei.value, rule, hint)
    return ei.value


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def window_section(name, start, end, actors=None, target="prod"):
    """A one-off [window.NAME] section (CONTRACT §2); start/end in epoch seconds."""
    text = (f"[window.{name}]\ntarget = {target}\nstart = {rfc3339(start)}\nend = {rfc3339(end)}\n"
            f"approved_by = ops:tests\nreason = policy integration test\n")
    if actors:
        text += f"actors = {actors}\n"
    return text + "\n"


def function_call(oid, args, result_format=0):
    """A FunctionCall ('F') message with text arguments."""
    body = struct.pack("!Ih", oid, 0) + struct.pack("!h", len(args))
    for a in args:
        body += struct.pack("!i", len(a)) + a
    return msg(b"F", body + struct.pack("!h", result_format))
