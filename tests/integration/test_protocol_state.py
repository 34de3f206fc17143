"""test_protocol_state.py - pgwarden's view of the server's protocol state must never drift from
the server's own: statement and portal names after refused or skipped requests, a denial while
the server skips to Sync, COPY FROM STDIN in the extended protocol (Syncs the server ignores),
and a Terminate with answers still owed. Each case ends with a check that would let a write
through on production, or hang, if the two views had drifted. Raw protocol, no driver."""
import secrets
import time

import pytest

from rawpg import bind, errors_of, execute, msg, parse, query, rows_of, sync, terminate
from test_timeline import login, sqlstates

pytestmark = pytest.mark.identity


def test_refused_then_skipped_parse_keeps_the_first_definition(pgwarden, pg):
    """Parse n = write; Parse n = SELECT 1 (42P05, name in use) and Parse n = SELECT 2 (skipped):
    the server still has the write under n, so executing n on production must be denied."""
    name = "st_" + secrets.token_hex(4)
    with login(pgwarden) as c:
        c.send(parse(name, "SELECT pg_advisory_lock(4242)") + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(parse(name, "SELECT 1") + parse(name, "SELECT 2") + sync())
        assert sqlstates(c.read_until_ready()) == ["42P05"]
        c.send(bind("", name) + execute() + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == ["42501"], got
        assert "write-outside-window" in errors_of(got)[0].get("D", "")
    assert pg.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242")[0][0] == 0


def test_refused_bind_keeps_the_portal(pgwarden, pg):
    """A named portal bound to a write; a second Bind of the same portal name is refused (42P03):
    Execute of that portal must still be judged as the write."""
    name, portal = "sw_" + secrets.token_hex(4), "pw_" + secrets.token_hex(4)
    with login(pgwarden, "staging") as c:
        c.send(query("BEGIN"))
        c.read_until_ready()
        c.send(parse(name, "SELECT 1") + parse(name + "_w", "SELECT pg_advisory_xact_lock(4343)") + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(bind(portal, name + "_w") + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(query("SAVEPOINT a"))
        c.read_until_ready()
        c.send(bind(portal, name) + sync())
        assert sqlstates(c.read_until_ready()) == ["42P03"]
        c.send(query("ROLLBACK TO a"))
        c.read_until_ready()
        # the audit must name what the server runs: the write, not SELECT 1
        c.send(execute(portal) + sync())
        c.read_until_ready()
        c.send(query("ROLLBACK"))
        c.read_until_ready()
    lines = [line for line in pgwarden.audit_path.read_text().splitlines() if '"event":"statement"' in line]
    assert "pg_advisory_xact_lock(4343)" in lines[-2] or "pg_advisory_xact_lock(4343)" in lines[-1], lines[-3:]


def test_denied_query_while_server_skips_to_sync(pgwarden):
    """An extended-protocol error, then a denied simple Query before the Sync: the server ignores
    both the Query and its stand-in; after the Sync everything lines up again."""
    with login(pgwarden) as c:
        c.send(parse("", "SELECT 1/0") + bind("", "") + execute() + query("SET ROLE postgres") + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == ["22012"], got
        # the next requests get their own answers, denials included
        c.send(query("SET ROLE postgres"))
        got = c.read_until_ready()
        assert sqlstates(got) == ["42501"] and got[-1][1] == b"I", got
        assert rows_of(c.simple("SELECT current_user::text, current_setting('app.tenant_id')")) == \
            [("bookkeeper", "acme")]


def test_extended_copy_from_stdin_then_more_work(pgwarden, pg):
    """COPY FROM STDIN through Parse/Bind/Execute/Sync (what PQexecParams does): the Sync sent
    before the client knew it was a COPY is ignored by the server; later answers must still
    match their requests."""
    table = "cp_" + secrets.token_hex(4)
    pg.sql(f"CREATE TABLE billing.{table} (a int); GRANT ALL ON billing.{table} TO bookkeeper", "app_staging")
    try:
        with login(pgwarden, "staging") as c:
            c.send(parse("", f"COPY billing.{table} FROM STDIN") + bind("", "") + execute() + sync())
            kinds = []
            while not kinds or kinds[-1] not in (b"G", b"E", b"Z"):
                kinds.append(c.read_msg()[0])
            assert kinds == [b"1", b"2", b"G"], kinds
            c.send(msg(b"d", b"1\n2\n3\n") + msg(b"c") + sync())
            got = c.read_until_ready()
            assert [k for k, _ in got if k == b"C"] == [b"C"], got
            # then: a denial and a normal query, each answered as itself
            c.send(query("SET ROLE postgres"))
            assert sqlstates(c.read_until_ready()) == ["42501"]
            assert rows_of(c.simple(f"SELECT count(*) FROM billing.{table}")) == [("3",)]
    finally:
        pg.sql(f"DROP TABLE billing.{table}", "app_staging")


def test_terminate_with_unsynced_batch_closes(pgwarden, pg):
    """Parse without Sync, then Terminate: pgwarden must not wait forever for answers the server
    keeps buffered; the upstream backend goes away."""
    tag = "tx_" + secrets.token_hex(4)
    c = login(pgwarden, "staging")
    c.send(query(f"SELECT 1 /* {tag} */"))
    c.read_until_ready()
    c.send(parse("", f"SELECT 2 /* {tag} */") + terminate())
    c.close()

    def backends():
        return pg.sql(f"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{tag}%' "
                      "AND pid <> pg_backend_pid()")[0][0]

    deadline = time.monotonic() + 8
    while backends() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert backends() == 0


def test_stray_copy_done_does_not_shift_later_copies(pgwarden, pg):
    """CopyDone outside any COPY is ignored by the server; it must not make pgwarden think a
    later COPY already ended (the Sync sent during that COPY would then owe an answer)."""
    table = "cs_" + secrets.token_hex(4)
    pg.sql(f"CREATE TABLE billing.{table} (a int); GRANT ALL ON billing.{table} TO bookkeeper", "app_staging")
    try:
        with login(pgwarden, "staging") as c:
            c.send(msg(b"c") + msg(b"c"))
            assert rows_of(c.simple("SELECT 1")) == [("1",)]
            c.send(parse("", f"COPY billing.{table} FROM STDIN") + bind("", "") + execute() + sync())
            kinds = []
            while not kinds or kinds[-1] not in (b"G", b"E", b"Z"):
                kinds.append(c.read_msg()[0])
            assert kinds[-1] == b"G", kinds
            # a Sync in the middle of the copy is ignored by the server: it owes nothing
            c.send(msg(b"d", b"7\n") + sync() + msg(b"c") + sync())
            got = c.read_until_ready()
            assert [k for k, _ in got if k == b"C"] == [b"C"], got
            c.send(query("SET ROLE postgres"))
            assert sqlstates(c.read_until_ready()) == ["42501"]
            assert rows_of(c.simple(f"SELECT count(*) FROM billing.{table}")) == [("1",)]
    finally:
        pg.sql(f"DROP TABLE billing.{table}", "app_staging")
