"""test_timeline.py - pgwarden's timeline of the server (proxy/pipeline.c) against a real PostgreSQL:
names reused across Syncs inside one pipeline, Close undone by an error, portals that end with
their transaction, DECLARE reusing a portal name, COPY ended early, a denial at every message
kind, a denial mid-Query after BEGIN, SELECT ... FOR UPDATE refused at Bind, PREPARE / EXECUTE /
DEALLOCATE in one Query, PostgreSQL's message length limits, and syntax errors answered as the
server's parser would; and the fuzzer's classes of issue 10 (SQL PREPARE bound by the protocol,
messages after a denial in their batch, a Bind failing or denied inside a transaction block),
each against a direct connection. Each checks what the client sees and what the audit log says was run;
the ones that could let a write through on production also check the database itself."""
import secrets
import struct
import time

import psycopg
import pytest

from audit_util import records, stmt_records, wait_records
from rawpg import RawConn, bind, close, errors_of, execute, login, msg, parse, query, rows_of, sqlstates, sync

pytestmark = pytest.mark.identity


def status(msgs):
    assert msgs[-1][0] == b"Z", msgs
    return msgs[-1][1]


def read_syncs(c, n):
    out = []
    for _ in range(n):
        out += c.read_until_ready()
    return out


def large_objects(pg):
    return pg.sql("SELECT count(*) FROM pg_largeobject_metadata", "app")[0][0]


def audited(w, needle):
    """Statement records whose SQL contains needle (after the log has them)."""
    recs = wait_records(w.audit_path, lambda rs: stmt_records(rs) and any(
        needle in (r.get("sql") or "") for r in stmt_records(rs)), what=needle)
    return [r for r in stmt_records(recs) if needle in (r.get("sql") or "")]


# ---- issue 10: names reused across Syncs in one pipeline ------------------------------------------

def test_issue10_refused_parse_does_not_resurrect_old_meaning(pgwarden, pg):
    """The reproduced fail-open: Parse S1 "SELECT 1"; then Parse S1 (42P05), Sync, Close S1,
    Parse S1 lo_create, Sync; then Bind/Execute S1 on production outside any window. The Execute
    must be judged (and audited) as lo_create and denied; no large object may appear."""
    s1 = "s1_" + secrets.token_hex(4)
    before = large_objects(pg)
    with login(pgwarden) as c:
        c.send(parse(s1, "SELECT 1") + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(parse(s1, "SELECT 2") + sync() + close(b"S", s1) + parse(s1, "SELECT lo_create(0)") + sync())
        got = read_syncs(c, 2)
        assert sqlstates(got) == ["42P05"], got
        c.send(bind("", s1) + execute() + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == ["42501"], got
        assert "write-outside-window" in errors_of(got)[0].get("D", "")
    assert large_objects(pg) == before
    denied = audited(pgwarden, "lo_create(0)")
    assert denied[-1]["decision"] == "deny", denied[-1]
    later = [r for r in stmt_records(records(pgwarden.audit_path)) if r["seq"] > denied[-1]["seq"]
             and r.get("session") == denied[-1].get("session")]
    assert later == [], later


def test_issue10_answers_pipelined_before_they_arrive(pgwarden, pg):
    """The same sequence sent as ONE pipeline, Bind and Execute included, before any answer came
    back: pgwarden's prediction must already say lo_create."""
    s1 = "s1_" + secrets.token_hex(4)
    before = large_objects(pg)
    with login(pgwarden) as c:
        c.send(parse(s1, "SELECT 1") + sync() + parse(s1, "SELECT 2") + sync() + close(b"S", s1)
               + parse(s1, "SELECT lo_create(0)") + sync() + bind("", s1) + execute() + sync())
        got = read_syncs(c, 4)
        assert sqlstates(got) == ["42P05", "42501"], got
    assert large_objects(pg) == before


def test_close_skipped_after_error_is_undone(pgwarden, pg):
    """A Close skipped after an error did not happen: the statement still exists on the server
    and must still be judged as itself (a write, denied on production)."""
    name = "cw_" + secrets.token_hex(4)
    with login(pgwarden) as c:
        c.send(parse(name, "SELECT pg_advisory_lock(4711)") + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(parse("", "SELECT 1/0") + bind("", "") + execute() + close(b"S", name) + sync())
        assert sqlstates(c.read_until_ready()) == ["22012"]
        c.send(bind("", name) + execute() + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == ["42501"], got
        assert "write-outside-window" in errors_of(got)[0].get("D", "")
    assert pg.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4711")[0][0] == 0


def test_name_reused_across_sync_in_one_pipeline(pgwarden, pg):
    """Parse n; Sync; Close n; Parse n = write; Sync; Bind/Execute n: all in one pipeline."""
    name = "rn_" + secrets.token_hex(4)
    with login(pgwarden) as c:
        c.send(parse(name, "SELECT 1") + sync() + close(b"S", name) + parse(name, "SELECT pg_advisory_lock(4712)")
               + sync() + bind("", name) + execute() + sync())
        got = read_syncs(c, 3)
        assert sqlstates(got) == ["42501"], got
    assert pg.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4712")[0][0] == 0


# ---- issue 14 item 5: portals end with their transaction; DECLARE shares their names --------------

def test_portal_gone_after_transaction_then_declare_reuses_name(pgwarden):
    """A named protocol portal dies with its transaction; DECLARE p then creates another portal
    of that name, and Execute p runs the cursor: the audit must name the cursor's SQL."""
    stmt, portal = "ps_" + secrets.token_hex(4), "pc_" + secrets.token_hex(4)
    marker = secrets.token_hex(4)
    with login(pgwarden) as c:
        c.send(parse(stmt, "SELECT 1 AS old_meaning") + bind(portal, stmt) + execute(portal) + sync())
        got = c.read_until_ready()
        assert rows_of(got) == [("1",)] and status(got) == b"I", got
        c.send(query("BEGIN"))
        c.read_until_ready()
        c.send(query(f"DECLARE {portal} CURSOR FOR SELECT '{marker}' AS cursor_row"))
        assert sqlstates(c.read_until_ready()) == []
        c.send(execute(portal) + sync())
        got = c.read_until_ready()
        assert rows_of(got) == [(marker,)], got
        c.send(query("COMMIT"))
        c.read_until_ready()
    recs = wait_records(pgwarden.audit_path, lambda rs: sum(
        1 for r in stmt_records(rs) if marker in (r.get("sql") or "")) >= 2, what="cursor records")
    runs = [r for r in stmt_records(recs) if marker in (r.get("sql") or "")]
    assert runs[-1]["protocol"] == "extended" and "old_meaning" not in runs[-1]["sql"], runs[-1]


def test_execute_of_portal_after_its_transaction_is_refused(pgwarden):
    """The portal is gone on the server after Sync ended its implicit transaction: pgwarden must
    not judge an Execute of it by the dead portal's statement."""
    stmt, portal = "pg_" + secrets.token_hex(4), "pp_" + secrets.token_hex(4)
    with login(pgwarden) as c:
        c.send(parse(stmt, "SELECT 1") + bind(portal, stmt) + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(execute(portal) + sync())
        got = c.read_until_ready()
        assert len(sqlstates(got)) == 1 and rows_of(got) == [], got
        assert rows_of(c.simple("SELECT 2")) == [("2",)]


def test_declare_in_pipeline_reusing_portal_name(pgwarden):
    """Bind p; Execute p; Sync (p ends); BEGIN; DECLARE p; Execute p, all pipelined. Until the
    Sync's answer says the transaction ended, pgwarden cannot know whether p is the old portal
    or the cursor (the DECLARE could fail with 42P03): the Execute waits for the server's
    answers and is judged then, never judged or audited as the old statement. It runs the
    cursor, as it does straight to PostgreSQL."""
    stmt, portal = "dp_" + secrets.token_hex(4), "dq_" + secrets.token_hex(4)
    marker = secrets.token_hex(4)
    with login(pgwarden) as c:
        c.send(parse(stmt, f"SELECT 1 AS old_{marker}") + bind(portal, stmt) + execute(portal) + sync()
               + query(f"BEGIN; DECLARE {portal} CURSOR FOR SELECT '{marker}'") + execute(portal) + sync())
        got = read_syncs(c, 3)
        assert rows_of(got) == [("1",), (marker,)] and sqlstates(got) == [], got
        assert status(got) == b"T", got
        c.simple("COMMIT")
    olds = [r for r in stmt_records(records(pgwarden.audit_path)) if f"old_{marker}" in (r.get("sql") or "")]
    assert len(olds) == 1, olds


def test_with_hold_cursor_outlives_its_transaction(pgwarden):
    marker = secrets.token_hex(4)
    with login(pgwarden) as c:
        c.send(query(f"BEGIN; DECLARE hc CURSOR WITH HOLD FOR SELECT '{marker}'; COMMIT"))
        assert sqlstates(c.read_until_ready()) == []
        c.send(execute("hc") + sync())
        got = c.read_until_ready()
        assert rows_of(got) == [(marker,)], got
        c.send(query("CLOSE hc"))
        c.read_until_ready()
        c.send(execute("hc") + sync())
        assert len(sqlstates(c.read_until_ready())) == 1


# ---- COPY ended before its CopyInResponse -----------------------------------------------------------

@pytest.fixture
def copy_table(pg):
    table = "tl_" + secrets.token_hex(4)
    pg.sql(f"CREATE TABLE billing.{table} (a int); GRANT ALL ON billing.{table} TO bookkeeper", "app_staging")
    yield table
    pg.sql(f"DROP TABLE billing.{table}", "app_staging")


def test_copy_with_early_copy_done(pgwarden, copy_table):
    with login(pgwarden, "staging") as c:
        c.send(query(f"COPY billing.{copy_table} FROM STDIN") + msg(b"d", b"1\n2\n") + msg(b"c")
               + query(f"SELECT count(*) FROM billing.{copy_table}"))
        got = read_syncs(c, 2)
        assert sqlstates(got) == [] and rows_of(got) == [("2",)], got


def test_copy_with_early_copy_fail(pgwarden, copy_table):
    with login(pgwarden, "staging") as c:
        c.send(query(f"COPY billing.{copy_table} FROM STDIN") + msg(b"d", b"1\n") + msg(b"f", b"nope\0")
               + query(f"SELECT count(*) FROM billing.{copy_table}"))
        got = read_syncs(c, 2)
        assert sqlstates(got) == ["57014"] and rows_of(got) == [("0",)], got


def test_extended_copy_with_early_copy_done(pgwarden, copy_table):
    """Parse/Bind/Execute/Sync of a COPY, its data and CopyDone and a Sync, all before any answer:
    the first Sync is swallowed by the COPY on the server, the second answers."""
    with login(pgwarden, "staging") as c:
        c.send(parse("", f"COPY billing.{copy_table} FROM STDIN") + bind("", "") + execute() + sync()
               + msg(b"d", b"5\n") + msg(b"c") + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == [] and [k for k, _ in got if k == b"C"] == [b"C"], got
        assert rows_of(c.simple(f"SELECT count(*) FROM billing.{copy_table}")) == [("1",)]


# ---- a denial at every message kind -----------------------------------------------------------------

def test_denial_at_each_message_kind(pgwarden):
    """Query, Parse, Bind, Execute and FunctionCall each denied, each answered 42501 in its place,
    the extended ones making the server skip to Sync; the session goes on after each."""
    fn_call = msg(b"F", struct.pack("!IHHIH", 1, 0, 0, 0, 0))
    cases = [
        ("Query", query("SET ROLE postgres")),
        ("Parse", parse("", "SET ROLE postgres") + bind("", "") + execute() + sync()),
        ("Bind", parse("", "SELECT pg_advisory_lock(4713)") + bind("", "") + execute() + sync()),
        ("Execute", execute("no_such_portal_" + secrets.token_hex(4)) + sync()),
        ("FunctionCall", fn_call),
    ]
    with login(pgwarden) as c:
        for what, data in cases:
            c.send(data)
            got = c.read_until_ready()
            assert sqlstates(got) == ["42501"], (what, got)
            assert status(got) == b"I", (what, got)
            assert rows_of(c.simple("SELECT 7")) == [("7",)], what


def test_denial_inside_transaction_block_aborts_it(pgwarden):
    """A denied extended message inside BEGIN: the block is aborted (E) as the server would."""
    with login(pgwarden) as c:
        c.send(query("BEGIN"))
        c.read_until_ready()
        c.send(parse("", "SET ROLE postgres") + bind("", "") + execute() + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == ["42501"] and status(got) == b"E", got
        got = c.simple("SELECT 1")
        assert sqlstates(got) == ["25P02"], got
        assert status(c.simple("ROLLBACK")) == b"I"


# ---- issue 14 item 8 ------------------------------------------------------------------------------

def test_prepare_execute_deallocate_in_one_query(pgwarden):
    with login(pgwarden) as c:
        got = c.simple("PREPARE q8 AS SELECT 8; EXECUTE q8; DEALLOCATE q8")
        assert sqlstates(got) == [] and rows_of(got) == [("8",)], got
        got = c.simple("EXECUTE q8")
        assert sqlstates(got) == ["42501"], got  # gone: pgwarden cannot know what it would run


def test_prepare_of_a_write_executed_in_the_same_query_is_denied(pgwarden, pg):
    with login(pgwarden) as c:
        got = c.simple("PREPARE w8 AS SELECT pg_advisory_lock(4714); EXECUTE w8")
        assert sqlstates(got) == ["42501"], got
    assert pg.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4714")[0][0] == 0


def test_denied_statement_after_begin_in_one_query_leaves_failed_block(pgwarden, pg, copy_table):
    """BEGIN; INSERT ...; <denied> in one Query: the server would run BEGIN and the INSERT, fail
    the third statement and leave a failed transaction block (E); nothing is committed."""
    with login(pgwarden, "staging") as c:
        got = c.simple(f"BEGIN; INSERT INTO billing.{copy_table} VALUES (1); SET ROLE postgres")
        assert sqlstates(got) == ["42501"], got
        assert [b.split(b"\0")[0] for k, b in got if k == b"C"] == [b"BEGIN", b"INSERT 0 1"], got
        assert status(got) == b"E", got
        assert sqlstates(c.simple("SELECT 1")) == ["25P02"]
        assert status(c.simple("ROLLBACK")) == b"I"
        assert rows_of(c.simple(f"SELECT count(*) FROM billing.{copy_table}")) == [("0",)]


def test_denied_statement_mid_query_outside_block_rolls_back(pgwarden, copy_table):
    with login(pgwarden, "staging") as c:
        got = c.simple(f"INSERT INTO billing.{copy_table} VALUES (1); SET ROLE postgres; SELECT 99")
        assert sqlstates(got) == ["42501"] and status(got) == b"I" and rows_of(got) == [], got
        assert rows_of(c.simple(f"SELECT count(*) FROM billing.{copy_table}")) == [("0",)]


def test_select_for_update_extended_on_prod_gets_the_denial(pgwarden):
    """The server refuses FOR UPDATE in a read-only transaction already at Bind (25006); the
    client must see pgwarden's 42501 denial, not the server's error."""
    with login(pgwarden) as c:
        c.send(parse("", "SELECT id FROM invoices FOR UPDATE") + bind("", "") + execute() + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == ["42501"], got
        assert "write-outside-window" in errors_of(got)[0].get("D", ""), got


def test_message_length_limits_match_postgresql(pgwarden):
    """PostgreSQL 15 reads the length word before the body and refuses one above
    PQ_LARGE_MESSAGE_LIMIT (2^30 - 2) for a Query, and above 10000 for a Sync."""
    for kind, length in ((b"Q", 2**30 - 1), (b"Q", 2**30), (b"S", 10001)):
        with login(pgwarden, "staging") as c:
            c.send(kind + struct.pack("!I", length))
            closed, err = c.wait_closed(5)
            assert closed and err and err.get("C") == "08P01", (kind, length, err)
    with login(pgwarden, "staging") as c:
        c.send(b"y" + struct.pack("!I", 2**30 - 2))  # an unknown type is refused before its length
        closed, err = c.wait_closed(5)
        assert closed and err and err.get("C") == "08P01" and "message type" in err.get("M", ""), err
    with login(pgwarden, "staging") as c:
        c.send(b"Q" + struct.pack("!I", 2**30 - 2) + b"SELECT 1")  # allowed: the body is awaited
        closed, err = c.wait_closed(1)
        assert not closed and err is None


# ---- syntax errors are PostgreSQL's own answer ----------------------------------------------------

def server_error(pg, sql):
    with psycopg.connect(pg.admin_dsn("app_staging"), autocommit=True) as conn:
        try:
            conn.execute(sql)
        except psycopg.Error as e:
            return e.sqlstate, e.diag.message_primary, e.diag.statement_position
    raise AssertionError(f"{sql!r} did not fail on the server")


@pytest.mark.parametrize("sql", [
    "SELEC 1",
    "SELECT 1; SELEC 2",
    "SELECT 'unterminated",
    "SELECT (1",
    "/* ü */ SELECT ü ü ü FROM",
    "SELECT U&'\\zzzz'",
    "SELECT U&'\\d800'",
    'SELECT ""',
    "SELECT 1e",
    "SELECT $$abc",
    "SELECT U&'x' UESCAPE '+'x",
    "SELECT (((",
    "PREPARE q AS SELEC 1",
])
def test_syntax_error_is_the_parsers_answer(pgwarden, pg, sql):
    state, message, position = server_error(pg, sql)
    with login(pgwarden, "staging") as c:
        got = c.simple(sql)
        errs = errors_of(got)
        assert len(errs) == 1, got
        assert (errs[0].get("C"), errs[0].get("M"), errs[0].get("P")) == (state, message, position)
        assert rows_of(got) == []


def test_syntax_error_never_reaches_the_server(pgwarden, pg):
    tag = secrets.token_hex(4)
    with login(pgwarden, "staging") as c:
        c.simple(f"SELECT 1; SELEC '{tag}'")
    assert pg.sql(f"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%SELEC ''{tag}%' "
                  "AND pid <> pg_backend_pid()")[0][0] == 0


def test_syntax_error_in_transaction_block_aborts_it(pgwarden):
    with login(pgwarden, "staging") as c:
        c.simple("BEGIN")
        got = c.simple("SELEC 1")
        assert sqlstates(got) == ["42601"] and status(got) == b"E", got
        assert sqlstates(c.simple("SELECT 1")) == ["25P02"]
        c.simple("ROLLBACK")


def test_syntax_error_in_parse_skips_to_sync(pgwarden):
    with login(pgwarden, "staging") as c:
        c.send(parse("", "SELEC 1") + bind("", "") + execute() + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == ["42601"] and errors_of(got)[0].get("P") == "1", got
        assert rows_of(c.simple("SELECT 3")) == [("3",)]


# ---- more variants ----------------------------------------------------------------------------------

def test_portal_close_skipped_after_error_is_undone(pgwarden):
    """Inside a block: Close P skipped after an error did not happen; after ROLLBACK TO SAVEPOINT
    the portal still runs its own statement and is audited as it."""
    marker = secrets.token_hex(4)
    stmt, portal = "cs_" + secrets.token_hex(4), "cp_" + secrets.token_hex(4)
    with login(pgwarden, "staging") as c:
        c.simple("BEGIN")
        c.send(parse(stmt, f"SELECT '{marker}'") + bind(portal, stmt) + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.simple("SAVEPOINT a")
        c.send(parse("", "SELECT 1/0") + bind("", "") + execute() + close(b"P", portal) + sync())
        assert sqlstates(c.read_until_ready()) == ["22012"]
        c.simple("ROLLBACK TO a")
        c.send(execute(portal) + sync())
        got = c.read_until_ready()
        assert rows_of(got) == [(marker,)], got
        c.simple("COMMIT")
    assert audited(pgwarden, marker)[-1]["decision"] == "allow"


def test_denied_parse_in_unsynced_pipeline_gives_one_error(pgwarden):
    with login(pgwarden) as c:
        c.send(parse("", "SET ROLE postgres") + bind("", "") + execute() + parse("", "SELECT 5") + bind("", "")
               + execute() + sync() + parse("", "SELECT 6") + bind("", "") + execute() + sync())
        got = read_syncs(c, 2)
        assert sqlstates(got) == ["42501"] and rows_of(got) == [("6",)], got


def test_deallocate_all_then_execute_is_unknown(pgwarden):
    with login(pgwarden) as c:
        c.simple("PREPARE da AS SELECT 1")
        got = c.simple("DEALLOCATE ALL; EXECUTE da")
        assert sqlstates(got) == ["42501"], got
        assert "unknown prepared statement" in errors_of(got)[0]["M"]


def test_sql_close_of_cursor_ends_its_portal(pgwarden):
    with login(pgwarden) as c:
        c.simple("BEGIN")
        c.simple("DECLARE cc CURSOR FOR SELECT 1")
        c.simple("CLOSE cc")
        c.send(execute("cc") + sync())
        got = c.read_until_ready()
        assert len(sqlstates(got)) == 1 and rows_of(got) == [], got
        c.simple("ROLLBACK")


def test_extended_copy_with_early_copy_fail(pgwarden, copy_table):
    with login(pgwarden, "staging") as c:
        c.send(parse("", f"COPY billing.{copy_table} FROM STDIN") + bind("", "") + execute() + sync()
               + msg(b"d", b"5\n") + msg(b"f", b"abandon\0") + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == ["57014"], got
        assert rows_of(c.simple(f"SELECT count(*) FROM billing.{copy_table}")) == [("0",)]


def test_syntax_error_after_begin_in_same_query_runs_nothing(pgwarden):
    """The parser rejects the whole Query before anything runs: BEGIN does not run either."""
    with login(pgwarden, "staging") as c:
        got = c.simple("BEGIN; SELEC 1")
        assert sqlstates(got) == ["42601"] and status(got) == b"I", got
        assert errors_of(got)[0]["P"] == "8", got


# ---- issue 14 item 6: large statements are parsed off the event loop ------------------------------

def big_in_list(n=60000):
    return "SELECT count(*) FROM (SELECT 1) t WHERE 1 IN (" + ",".join(str(i) for i in range(n)) + ")"


def test_large_statement_is_judged_and_answered(pgwarden):
    with pgwarden.connect(dbname="prod") as c:
        assert c.execute(big_in_list()).fetchone() == (1,)
        with pytest.raises(psycopg.Error) as ei:
            c.execute("SELECT pg_advisory_lock(4715) WHERE 1 IN (" + ",".join(str(i) for i in range(60000)) + ")")
        assert ei.value.sqlstate == "42501"
        with pytest.raises(psycopg.Error) as ei:
            c.execute(big_in_list() + " SELEC")
        assert ei.value.sqlstate == "42601"
        assert c.execute("SELECT 2").fetchone() == (2,)


def test_large_statements_do_not_stall_other_sessions(pgwarden):
    """One client streams large statements (a 400 kB IN list); another's SELECT 1 must not wait
    for their parses: its p99 latency stays far below one parse's time."""
    import threading
    stop = threading.Event()
    parses = []

    def stream():
        with pgwarden.connect(dbname="staging", prepare_threshold=None) as c:
            n = 0
            while not stop.is_set():
                n += 1
                big = big_in_list(50000) + f" /* {n} */"  # a new text each time: no cache answers it
                t0 = time.monotonic()
                c.execute(big).fetchone()
                parses.append(time.monotonic() - t0)

    t = threading.Thread(target=stream)
    t.start()
    lat = []
    try:
        with pgwarden.connect(dbname="staging") as c:
            time.sleep(0.3)
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                c.execute("SELECT 1").fetchone()
                lat.append(time.monotonic() - t0)
                time.sleep(0.005)
    finally:
        stop.set()
        t.join()
    lat.sort()
    p99 = lat[int(len(lat) * 0.99) - 1]
    one_parse = sorted(parses)[len(parses) // 2]
    print(f"\nSELECT 1 p99 {p99 * 1000:.1f} ms over {len(lat)}; large statement median {one_parse * 1000:.0f} ms")
    assert p99 < max(0.05, one_parse / 3), (p99, one_parse)


# ---- issue 10, fuzzer classes: the timeline's model of the server must be the server's ----------
# Each runs the pipeline through pgwarden AND straight to PostgreSQL (protofuzz's differential
# Run: replies message for message, the audit's SQL for every completion, the database), then
# states the fixed behaviour explicitly.

import protofuzz as pf  # noqa: E402


@pytest.fixture
def prod(pgwarden, pg):
    """(pgwarden, pg) with the fuzzer's scratch table; large objects a test leaks are removed."""
    pf.setup(pg)
    los = {r[0] for r in pg.sql("SELECT oid::bigint FROM pg_largeobject_metadata", pf.DATABASE)}
    yield pgwarden, pg
    pf.Run(pg, pgwarden, None).cleanup(los)


def fuzz_login(w):
    c = RawConn(w.host, w.port)
    c.login({"user": pf.ACTOR, "database": pf.TARGET}, w.tokens[pf.ACTOR])
    return c


def steps(c, *pipeline):
    """Send each step in one write; the answers, one list per message, per step."""
    out = []
    for step in pipeline:
        c.send(b"".join(pf.encode(m) for m in step))
        out.append(pf.read_answers(c, step, 10))
    return out


def kinds(answer):
    return "".join(k for k, _ in answer)


def differential(w, pg, pipeline):
    pf.Run(pg, w, pf.AuditReader(w.audit_path))(pipeline)


# class audit/wrong-sql: SQL PREPARE through the protocol, then a protocol Bind of the SQL name

SQL_PREPARE_BOUND = [[["P", "s1", "PREPARE s2 AS SELECT 3"], ["B", "p2", "s1"], ["E", "p2", 0],
                      ["B", "", "s2"], ["E", "", 0], ["S"]]]


def test_sql_prepare_bound_by_the_protocol_is_audited_as_its_body(prod):
    """The fuzzer's replay: the Execute of the SQL-prepared s2 ran SELECT 3, so its audit record
    says SELECT 3, not the PREPARE."""
    w, pg = prod
    differential(w, pg, SQL_PREPARE_BOUND)
    rec = audited(w, "SELECT 3")[-1]
    assert rec["sql"] == "SELECT 3" and rec["decision"] == "allow", rec


def test_sql_prepare_in_a_query_then_protocol_bind_runs_and_audits_the_body(prod):
    """PREPARE by a simple Query (with a parameter list and comments around AS), then Bind and
    Execute of that name: the audit record names the body only."""
    w, pg = prod
    name = "q_" + secrets.token_hex(4)
    marker = secrets.token_hex(4)
    with fuzz_login(w) as c:
        c.send(query(f"PREPARE {name} (text) /* AS not here */ AS SELECT '{marker}'::text AS m"))
        assert sqlstates(c.read_until_ready()) == []
        c.send(bind("", name) + execute() + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == ["08P01"], got  # the parameter is missing: the server's own answer
        c.send(query(f"PREPARE {name}_b AS SELECT '{marker}'::text AS m"))
        assert sqlstates(c.read_until_ready()) == []
        c.send(bind("", f"{name}_b") + execute() + sync())
        got = c.read_until_ready()
        assert rows_of(got) == [(marker,)], got
    rec = audited(w, marker)[-1]
    assert rec["sql"] == f"SELECT '{marker}'::text AS m" and rec["protocol"] == "extended", rec


def test_sql_prepare_of_a_write_bound_by_the_protocol_is_denied(prod):
    """The body decides: a PREPARE whose body writes, bound and executed by the protocol, is
    denied on production outside a window; no large object appears."""
    w, pg = prod
    before = large_objects(pg)
    differential(w, pg, [[["P", "s1", "PREPARE s2 AS SELECT lo_create(0)"], ["B", "p2", "s1"], ["E", "p2", 0],
                          ["S"], ["B", "", "s2"], ["E", "", 0], ["S"]]])
    assert large_objects(pg) == before


@pytest.mark.parametrize("pipeline", [
    [[["Q", ["PREPARE s2 AS SELECT 3", "SELECT 1/0"]]], [["B", "", "s2"], ["E", "", 0], ["S"]]],
    [[["Q", ["BEGIN"]], ["Q", ["PREPARE s2 AS SELECT 3"]], ["Q", ["ROLLBACK"]]], [["B", "", "s2"], ["E", "", 0], ["S"]]],
    [[["Q", ["PREPARE s2 AS SELECT 3"]], ["Q", ["BEGIN"]], ["Q", ["DEALLOCATE s2"]], ["Q", ["ROLLBACK"]]],
     [["B", "", "s2"], ["E", "", 0], ["S"]]],
], ids=["query-fails-after-prepare", "prepare-rolled-back", "deallocate-rolled-back"])
def test_sql_prepare_and_deallocate_are_not_transactional(prod, pipeline):
    """SQL PREPARE and DEALLOCATE are not undone when their transaction (or the rest of their
    Query) fails or rolls back: the name keeps what they made it, as on the server."""
    w, pg = prod
    differential(w, pg, pipeline)
    with fuzz_login(w) as c:
        c.send(query("DEALLOCATE ALL"))
        c.read_until_ready()
        got = steps(c, *pipeline)
        if "DEALLOCATE s2" in str(pipeline):
            assert pf.is_denial(got[-1][0]), got[-1]  # gone for good: unknown
        else:
            assert kinds(got[-1][1]) == "DC", got[-1]  # still there: SELECT 3 runs


def test_deallocate_all_keeps_the_unnamed_statement(prod):
    """DEALLOCATE ALL (run through the protocol: a simple Query would drop the unnamed statement
    itself) drops every named statement but not the unnamed one, which the server keeps apart:
    Bind of the unnamed statement after it runs as on a direct connection."""
    w, pg = prod
    pipeline = [[["P", "s1", "SELECT 1"], ["P", "s2", "DEALLOCATE ALL"], ["B", "p1", "s2"], ["P", "", "SELECT 2"],
                 ["E", "p1", 0], ["S"]],
                [["B", "", ""], ["E", "", 0], ["S"]], [["B", "", "s1"], ["S"]]]
    differential(w, pg, pipeline)
    with fuzz_login(w) as c:
        got = steps(c, *pipeline)
        assert kinds(got[1][1]) == "DC", got[1]
        assert pf.is_denial(got[2][0]), got[2]  # s1 is gone: unknown, never guessed


def test_simple_query_drops_the_unnamed_statement(prod):
    """A simple Query drops the unnamed statement (exec_simple_query): a Bind of it afterwards
    is unknown, not judged as the old text."""
    w, pg = prod
    pipeline = [[["P", "", "SELECT 2"], ["S"]], [["Q", ["SELECT 1"]]], [["B", "", ""], ["E", "", 0], ["S"]]]
    differential(w, pg, pipeline)
    with fuzz_login(w) as c:
        got = steps(c, *pipeline)
        assert pf.is_denial(got[2][0]), got[2]


def test_discard_all_forgets_prepared_statements_and_portals(prod):
    """DISCARD ALL deallocates every named statement (SQL and protocol) and closes every portal,
    WITH HOLD cursors too: an EXECUTE of a statement prepared before it is unknown."""
    w, pg = prod
    name = "d_" + secrets.token_hex(4)
    with fuzz_login(w) as c:
        c.send(query(f"PREPARE {name} AS SELECT 5") + query("DISCARD ALL"))
        assert sqlstates(read_syncs(c, 2)) == []
        c.send(query(f"EXECUTE {name}"))
        got = c.read_until_ready()
        assert sqlstates(got) == ["42501"], got
        assert "unknown prepared statement" in errors_of(got)[0]["M"]


# class denial/readonly-wall-at-B: messages after an extended-protocol denial, up to Sync, never ran

DENIAL_THEN_PARSE = [[["P", "", "SELECT id FROM billing.invoices FOR UPDATE"], ["E", "", 0],
                      ["P", "", "SELECT current_setting('app.tenant_id')"], ["S"], ["B", "p2", ""], ["S"]]]


def test_parse_after_a_denial_in_its_batch_does_not_name_the_statement(prod):
    """The fuzzer's replay: the Parse after the denied Execute was skipped by the server, so the
    Bind after the Sync binds the FOR UPDATE and must get pgwarden's denial, not the server's
    read-only wall (25006)."""
    w, pg = prod
    differential(w, pg, DENIAL_THEN_PARSE)
    with fuzz_login(w) as c:
        got = steps(c, *DENIAL_THEN_PARSE)[0]
        assert kinds(got[2]) == "", got  # skipped, as by the server
        err = errors_of([(b"E", b) for k, b in got[4] if k == "E"])
        assert [e["C"] for e in err] == ["42501"] and "write-outside-window" in err[0]["D"], got


def test_parse_of_a_write_skipped_after_a_denial_creates_no_large_object(prod):
    """The same hole with a write: the unnamed statement is lo_create, a denied message and then
    a harmless Parse of the unnamed statement before the Sync (skipped by the server); Bind and
    Execute after the Sync would run lo_create if pgwarden judged them by the skipped Parse."""
    w, pg = prod
    before = large_objects(pg)
    pipeline = [[["P", "", "SELECT lo_create(0)"], ["S"]],
                [["E", "pz", 0], ["P", "", "SELECT 1"], ["S"], ["B", "", ""], ["E", "", 0], ["S"]]]
    differential(w, pg, pipeline)
    with fuzz_login(w) as c:
        got = steps(c, *pipeline)[1]
        assert "42501" in [pf.sqlstate(a) for a in got[3:5]], got
    assert large_objects(pg) == before


@pytest.mark.parametrize("redefine", [
    [["C", "S", "s1"]],
    [["C", "P", "p1"]],
    [["P", "", "DECLARE p1 CURSOR FOR SELECT g FROM generate_series(1, 3) g"], ["B", "", ""], ["E", "", 0]],
], ids=["close-statement", "close-portal", "declare"])
def test_close_and_declare_after_a_denial_in_their_batch_never_happened(prod, redefine):
    """Close and DECLARE through the extended protocol after a denial in the same batch are
    skipped by the server: the names keep their meaning, checked against a direct connection,
    inside a transaction block (portals and cursors live until it ends)."""
    w, pg = prod
    differential(w, pg, [[["Q", ["BEGIN"]], ["P", "s1", "SELECT 11"], ["B", "p1", "s1"], ["S"]],
                         [["E", "pz", 0]] + redefine + [["S"]],
                         [["Q", ["ROLLBACK"]], ["B", "p1", "s1"], ["E", "p1", 0], ["S"]]])


def test_messages_after_a_denial_are_not_audited(prod):
    """What the server skips after a denial never ran: no statement record for it."""
    w, pg = prod
    marker = secrets.token_hex(4)
    with fuzz_login(w) as c:
        steps(c, [["E", "pz", 0], ["P", "", f"SELECT '{marker}'"], ["B", "", ""], ["E", "", 0], ["S"]])
        steps(c, [["Q", ["SELECT 'after'"]]])
    recs = stmt_records(records(w.audit_path))
    assert not [r for r in recs if marker in (r.get("sql") or "")], recs[-3:]


# class 3: a Bind that fails inside a transaction block

@pytest.mark.parametrize("portal", ["", "p1"], ids=["unnamed", "named"])
def test_portal_of_a_bind_failed_in_a_block_is_the_servers(prod, portal):
    """A Bind that fails at planning inside a transaction block leaves its portal behind,
    failed and empty (CreatePortal comes before planning): Execute answers EmptyQueryResponse,
    Describe NoData, as on a direct connection, and nothing is audited as run."""
    w, pg = prod
    pipeline = [[["Q", ["BEGIN"]]], [["P", "s1", "SELECT 1"], ["B", "", "s1"], ["S"]],
                [["P", "s2", "SELECT 1/0"], ["B", portal, "s2"], ["S"]],
                [["E", portal, 0], ["D", "P", portal], ["S"]], [["Q", ["ROLLBACK"]]]]
    differential(w, pg, pipeline)
    with fuzz_login(w) as c:
        got = steps(c, *pipeline)
        assert pf.sqlstate(got[2][1]) == "22012", got[2]
        assert kinds(got[3][0]) == "I" and kinds(got[3][1]) == "n", got[3]


def test_bind_refused_in_a_failed_block_keeps_the_old_unnamed_portal(prod):
    """In a failed transaction block a Bind is refused (25P02) before CreatePortal: the old
    unnamed portal stays, and Execute of it is judged as its statement (the server answers 25P02)."""
    w, pg = prod
    pipeline = [[["Q", ["BEGIN"]]], [["P", "s1", "SELECT 7"], ["B", "", "s1"], ["S"]],
                [["P", "s2", "SELECT 1/0"], ["B", "p9", "s2"], ["S"]],
                [["B", "", "s1"], ["S"]], [["E", "", 0], ["S"]], [["Q", ["ROLLBACK"]]]]
    differential(w, pg, pipeline)
    with fuzz_login(w) as c:
        got = steps(c, *pipeline)
        assert pf.sqlstate(got[3][0]) == "25P02" and pf.sqlstate(got[4][0]) == "25P02", got


def test_rollback_portal_bound_in_a_failed_block_runs(prod):
    """A statement that ends the transaction may be bound in a failed block: its portal is the
    server's, and Execute runs the ROLLBACK (audited as such)."""
    w, pg = prod
    differential(w, pg, [[["Q", ["BEGIN"]], ["Q", ["SELECT 1/0"]]], [["P", "s1", "ROLLBACK"], ["B", "", "s1"], ["S"]],
                         [["E", "", 0], ["S"]]])


# class 4: a denied Bind "" drops the old unnamed portal, as the server's failed Bind does

DENIED_BIND_UNNAMED = [[["Q", ["BEGIN"]]], [["P", "s1", "SELECT 1"], ["B", "", "s1"], ["S"]],
                       [["P", "s2", "SELECT lo_create(0)"], ["B", "", "s2"], ["S"]],
                       [["D", "P", ""], ["S"]], [["E", "", 0], ["S"]], [["Q", ["ROLLBACK"]]]]


def test_denied_bind_of_the_unnamed_portal_drops_the_old_one(prod):
    """A denied Bind "" in a transaction block: upstream the old unnamed portal (SELECT 1) must be
    gone, as the server's own failed Bind drops it: Describe answers NoData for the failed, empty
    portal left behind (not SELECT 1's RowDescription), and Execute "" runs nothing."""
    w, pg = prod
    before = large_objects(pg)
    differential(w, pg, DENIED_BIND_UNNAMED)
    with fuzz_login(w) as c:
        got = steps(c, *DENIED_BIND_UNNAMED)
        assert pf.is_denial(got[2][1]), got[2]
        assert kinds(got[3][0]) == "n", got[3]
        assert kinds(got[4][0]) in ("E", "I") and not [a for a in got[4][0] if a[0] in "DC"], got[4]
    assert large_objects(pg) == before


def test_denied_bind_outside_a_block_leaves_no_portal(prod):
    """Outside a transaction block the same denial ends with the batch: afterwards Execute ""
    runs nothing and the old portal's SELECT 1 is not audited again."""
    w, pg = prod
    differential(w, pg, [[["P", "s1", "SELECT 1"], ["B", "", "s1"], ["P", "s2", "SELECT lo_create(0)"],
                          ["B", "", "s2"], ["S"]], [["E", "", 0], ["D", "P", ""], ["S"]]])


def test_denied_bind_with_a_parameter_sends_no_value_and_leaves_a_failed_portal(prod):
    """A denied Bind carrying a parameter, inside a transaction block: no large object, the
    value never reaches the server, and the unnamed portal left is the failed empty one
    (Describe: NoData), not the old SELECT 1 portal."""
    w, pg = prod
    before = large_objects(pg)
    value = b"4"
    bind_one = msg(b"B", b"\0s9\0" + struct.pack("!HHH", 1, 0, 1) + struct.pack("!I", len(value)) + value
                   + struct.pack("!H", 0))
    with fuzz_login(w) as c:
        c.send(query("BEGIN"))
        c.read_until_ready()
        c.send(parse("s9", "SELECT lo_create($1::int)") + parse("s8", "SELECT 1") + bind("", "s8") + sync())
        assert sqlstates(c.read_until_ready()) == []
        c.send(bind_one + sync())
        got = c.read_until_ready()
        assert sqlstates(got) == ["42501"] and status(got) == b"E", got
        c.send(msg(b"D", b"P\0") + sync())
        got = c.read_until_ready()
        assert [k for k, _ in got] == [b"n", b"Z"], got
        c.send(query("ROLLBACK"))
        c.read_until_ready()
    assert large_objects(pg) == before


# found by the hour's fuzzing (seeds 1510, 1530): an error mid-batch skips a later unnamed Parse,
# so the unnamed statement keeps its OLD meaning; a message of a later batch, sent before the
# error came back, must wait for it instead of trusting the skipped Parse

@pytest.mark.parametrize("pipeline", [
    [[["P", "", "SELECT current_setting('app.tenant_id')"], ["H"]],
     [["P", "s2", "PREPARE s2 AS SELECT lo_create(0)"], ["P", "s2", "BEGIN"],
      ["P", "", "DECLARE p1 CURSOR FOR SELECT g FROM generate_series(1, 3) g"], ["S"], ["B", "p1", ""], ["E", "p1", 0],
      ["H"]], [["S"]]],
    [[["P", "", "ROLLBACK"], ["S"]],
     [["P", "s1", "CLOSE p1"], ["B", "p1", "s1"], ["B", "p1", ""], ["P", "", "SELECT lo_create(0)"], ["S"],
      ["B", "p2", ""], ["S"]]],
], ids=["audit-wrong-sql-seed-1510", "false-denial-seed-1530"])
def test_unnamed_parse_skipped_after_an_error_of_its_batch(prod, pipeline):
    w, pg = prod
    differential(w, pg, pipeline)


def test_runtime_error_mid_batch_then_unnamed_parse_creates_no_large_object(prod):
    """The unnamed statement is lo_create (accepted at Parse, judged when bound); an Execute in
    the same batch fails at run time, so the server skips the harmless Parse "" after it. A
    Bind and Execute "" after the Sync, in the same write, would run lo_create if pgwarden
    trusted the skipped Parse: they wait for the answer and are denied."""
    w, pg = prod
    before = large_objects(pg)
    pipeline = [[["P", "", "SELECT lo_create(0)"], ["P", "s9", "SELECT (1/(random()*0)::int)"], ["B", "p9", "s9"],
                 ["E", "p9", 0], ["P", "", "SELECT 1"], ["S"], ["B", "", ""], ["E", "", 0], ["S"]]]
    differential(w, pg, pipeline)
    with fuzz_login(w) as c:
        got = steps(c, *pipeline)[0]
        assert pf.sqlstate(got[3]) == "22012" and pf.is_denial(got[6]), got
    assert large_objects(pg) == before


def test_close_and_parse_skipped_after_a_refused_parse_creates_no_large_object(prod):
    """Found by fuzzing (seed 1540) as a false denial; its dangerous twin: s2 is lo_create, then
    in one batch a Parse of s2 (refused: 42P05), Close s2 and Parse s2 harmless (both skipped),
    Sync, and Bind/Execute of s2 in the same write: s2 still is lo_create on the server, so the
    Bind waits for the answers and is denied."""
    w, pg = prod
    before = large_objects(pg)
    pipeline = [[["P", "s2", "SELECT lo_create(0)"], ["S"]],
                [["P", "s2", "SELECT 2"], ["C", "S", "s2"], ["P", "s2", "SELECT 1"], ["S"], ["B", "", "s2"],
                 ["E", "", 0], ["S"]]]
    differential(w, pg, pipeline)
    with fuzz_login(w) as c:
        got = steps(c, *pipeline)[1]
        assert pf.sqlstate(got[0]) == "42P05" and pf.is_denial(got[4]), got
    assert large_objects(pg) == before

