"""test_timeline_attack.py - red-team probes of the timeline (issue 10, issue 14's classes): sequences
under which pgwarden's picture of what a statement or portal name means could differ from
PostgreSQL's. Names longer than NAMEDATALEN-1 (63) bytes: the server keys its prepared statements
and portals by their first 63 bytes (dynahash HASH_STRINGS, keysize NAMEDATALEN), so two names that
differ only after byte 63 are one name upstream; pgwarden must see them as one too. Each test checks
what the client sees and, where a write could slip through on production, the database itself."""
import secrets
import struct

import pytest

from audit_util import stmt_records, records
from rawpg import RawConn, bind, close, errors_of, execute, login, msg, parse, query, rows_of, sqlstates, sync

pytestmark = pytest.mark.identity


def large_objects(pg):
    return pg.sql("SELECT count(*) FROM pg_largeobject_metadata", "app")[0][0]


def long_pair():
    """Two names that differ only after byte 63: one name on the server."""
    base = "n" + secrets.token_hex(31)  # 63 bytes
    assert len(base) == 63
    return base + "_reader", base + "_writer"


def test_long_statement_names_are_one_name_after_close(pgwarden, pg):
    """Parse A (read); Close S B (closes A upstream); Parse B lo_create (stored as A upstream);
    Bind A / Execute on production outside any window: the server runs lo_create, so pgwarden must
    judge it as lo_create and deny; no large object may appear."""
    a, b = long_pair()
    before = large_objects(pg)
    with login(pgwarden) as c:
        c.send(parse(a, "SELECT 1") + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(close(b"S", b) + parse(b, "SELECT lo_create(0)") + sync())
        c.read_until_ready()
        c.send(bind("", a) + execute() + sync())
        got = c.read_until_ready()
        assert "42501" in sqlstates(got), got
    assert large_objects(pg) == before


def test_long_statement_name_redefined_by_sql_deallocate(pgwarden, pg):
    """The same through SQL: DEALLOCATE of the other spelling (the parser truncates identifiers
    to 63 bytes too), then a protocol Parse of a write under it, then a protocol Bind of the first."""
    a, b = long_pair()
    before = large_objects(pg)
    with login(pgwarden) as c:
        c.send(parse(a, "SELECT 1") + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(query(f'DEALLOCATE "{b}"'))
        c.read_until_ready()
        c.send(parse(b, "SELECT lo_create(0)") + sync())
        c.read_until_ready()
        c.send(bind("", a) + execute() + sync())
        got = c.read_until_ready()
        assert "42501" in sqlstates(got), got
    assert large_objects(pg) == before


def test_long_portal_names_are_one_name(pgwarden, pg):
    """Portals too: Bind portal A to one read; Close P B (closes A upstream); Bind portal B to
    another read (becomes A upstream); Execute A runs the second, and the audit must name it."""
    a, b = long_pair()
    mark = "mark_" + secrets.token_hex(4)
    with login(pgwarden) as c:
        c.send(query("BEGIN"))
        c.read_until_ready()
        c.send(parse("r1", "SELECT 1") + parse("r2", f"SELECT '{mark}'") + sync())
        c.read_until_ready()
        c.send(bind(a, "r1") + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(close(b"P", b) + bind(b, "r2") + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(execute(a) + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == [] and rows_of(got) == [(mark,)], got
        c.send(query("ROLLBACK"))
        c.read_until_ready()
    last = [r for r in stmt_records(records(pgwarden.audit_path)) if r.get("protocol") == "extended"]
    assert mark in last[-1]["sql"], last[-1]


def test_multibyte_sql_name_cut_at_a_character_boundary(pgwarden, pg):
    """An SQL name of 62 ASCII bytes and a 2-byte character is cut by the server's lexer at the
    character boundary (62 bytes), not at byte 63. SQL PREPARE of a read under that name; a
    protocol Close and Parse of a write under the 62-byte name replace it upstream; an SQL
    EXECUTE of the long spelling then runs the write, so pgwarden must deny it."""
    short = "x" + secrets.token_hex(30) + "y"  # 62 bytes
    long_ = short + "\u00e9"                     # 64 bytes in UTF-8
    before = large_objects(pg)
    with login(pgwarden) as c:
        c.send(query(f'PREPARE "{long_}" AS SELECT 1'))
        assert sqlstates(c.read_until_ready()) == []
        c.send(close(b"S", short) + parse(short, "SELECT lo_create(0)") + sync())
        c.read_until_ready()
        c.send(query(f'EXECUTE "{long_}"'))
        got = c.read_until_ready()
        assert "42501" in sqlstates(got), got
    assert large_objects(pg) == before


def bind_nulls(portal, stmt, n):
    """Bind with n NULL parameters."""
    body = portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!HH", 0, n)
    body += struct.pack("!i", -1) * n + struct.pack("!H", 0)
    return msg(b"B", body)


# (PREPARE text, the body the server runs, its parameter count)
PREPARE_TRICKS = [
    ("PREPARE {n}(int) /* AS SELECT 'fake' */ AS SELECT 'real'", "SELECT 'real'", 1),
    ("PREPARE \"{n}\" AS SELECT 'real' -- AS SELECT 'fake'", "SELECT 'real'", 0),  # a trailing comment is not the statement's
    ("PREPARE {n} AS/**/SELECT $q$ AS SELECT 'fake' $q$ || 'real'", "SELECT $q$ AS SELECT 'fake' $q$ || 'real'", 0),
    ("PREPARE {n} AS SELECT E'\\' AS SELECT fake' || 'real'", "SELECT E'\\' AS SELECT fake' || 'real'", 0),
    ("PREPARE {n} (text, int) AS SELECT 'real' WHERE $2 IS NULL OR $1 IS NULL",
     "SELECT 'real' WHERE $2 IS NULL OR $1 IS NULL", 2),
    ("PREPARE {n} AS\n\tSELECT 'real' /* ; PREPARE x AS SELECT 'fake' */",
     "SELECT 'real'", 0),
    ("PREPARE {n} AS VALUES ('real')", "VALUES ('real')", 0),
]


@pytest.mark.parametrize("text,body,nparams", PREPARE_TRICKS)
def test_sql_prepare_body_bound_by_protocol_is_the_body_that_runs(pgwarden, text, body, nparams):
    """SQL PREPARE whose text hides another 'AS' (comments, dollar quotes, E'' strings, quoted
    names, parameter lists): a protocol Bind of its name runs the body after the real AS, and
    the audit must name exactly that body."""
    n = "pb_" + secrets.token_hex(4)
    with login(pgwarden) as c:
        c.send(query(text.format(n=n)))
        assert sqlstates(c.read_until_ready()) == []
        c.send(bind_nulls("", n, nparams) + execute() + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == [], got
        assert rows_of(got)[0][0].endswith("real"), got
    rec = [r for r in stmt_records(records(pgwarden.audit_path)) if r.get("protocol") == "extended"][-1]
    assert rec["sql"].strip() == body, rec


@pytest.mark.parametrize("body", [
    "SELECT set_config('app.tenant_id', 'evil', false)",
    "SELECT pg_advisory_lock(4711)",
    "SELECT lo_create(0)",
    "INSERT INTO pf_never(a) SELECT 1",
])
@pytest.mark.parametrize("route", ["plain", "failed-block", "two-spellings"])
def test_sql_prepare_of_forbidden_body_never_runs(pgwarden, pg, body, route):
    """A PREPARE whose body is an identity change, an advisory lock, a large object or a write,
    made plainly, inside a failed transaction block, or under a second spelling of a long name;
    then bound by the protocol and EXECUTEd by SQL: nothing of it may run on production."""
    n = "fb" + secrets.token_hex(31)  # 64 bytes: the server knows it by its first 63
    alias = n[:63] + "Z"
    before = large_objects(pg)
    with login(pgwarden) as c:
        if route == "failed-block":
            c.send(query("BEGIN"))
            c.read_until_ready()
            c.send(query("SELECT 1/0"))
            c.read_until_ready()
        c.send(query(f'PREPARE "{n}" AS {body}'))
        first = c.read_until_ready()
        assert sqlstates(first), first  # denied (or refused in the failed block)
        if route == "failed-block":
            c.send(query("ROLLBACK"))
            c.read_until_ready()
        name = alias if route == "two-spellings" else n
        c.send(bind("", name) + execute() + sync())
        assert sqlstates(c.read_until_ready()), "Bind of a PREPARE that never happened ran"
        c.send(query(f'EXECUTE "{name}"'))
        assert sqlstates(c.read_until_ready())
        c.send(query("SELECT current_setting('app.tenant_id'), "
                     "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory')"))
        got = rows_of(c.read_until_ready())
        assert got == [("acme", "0")], got
    assert large_objects(pg) == before
