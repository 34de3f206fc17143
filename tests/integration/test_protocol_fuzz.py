"""test_protocol_fuzz.py - the differential protocol fuzzer (protofuzz.py) as a smoke test, and
the known holes of issues 10 and 14 (and those the fuzzer found) as deterministic raw-protocol
sequences on the prod target outside any window. Each sequence states the fixed behaviour.
Raw protocol, no driver."""
import os
import struct

import pytest

import protofuzz as pf
from audit_util import records, stmt_records
from rawpg import RawConn, errors_of, rows_of

pytestmark = pytest.mark.identity

# Smoke budget: whichever runs out first. PROTOFUZZ_SEED replays another run's seed.
SMOKE_CASES = int(os.environ.get("PROTOFUZZ_CASES", "150"))
SMOKE_SECONDS = float(os.environ.get("PROTOFUZZ_SECONDS", "30"))
SMOKE_SEED = os.environ.get("PROTOFUZZ_SEED", "20261203")


@pytest.fixture
def prod(pgwarden, pg):
    """(pgwarden, pg) with the fuzzer's scratch table; large objects and scratch rows a test
    leaks are removed after it."""
    pf.setup(pg)
    los = {r[0] for r in pg.sql("SELECT oid::bigint FROM pg_largeobject_metadata", pf.DATABASE)}
    yield pgwarden, pg
    pf.Run(pg, pgwarden, None).cleanup(los)


def login(w):
    c = RawConn(w.host, w.port)
    c.login({"user": pf.ACTOR, "database": pf.TARGET}, w.tokens[pf.ACTOR])
    return c


def send(c, *messages):
    """Send pipeline messages ([kind, fields...], see protofuzz.encode) in one write and read
    one answer per message."""
    c.send(b"".join(pf.encode(m) for m in messages))
    return pf.read_answers(c, list(messages), 10)


def flat(answers):
    """The answers as one list of rawpg messages (kind as bytes)."""
    return [(k.encode(), body) for a in answers for k, body in a]


def sqlstates(answers):
    return [e.get("C") for e in errors_of(flat(answers))]


def large_objects(pg):
    return pg.sql("SELECT count(*) FROM pg_largeobject_metadata", pf.DATABASE)[0][0]


def last_extended(w, n=1):
    """The sql and decision of this run's last n extended-protocol statement records."""
    recs = stmt_records(records(w.audit_path), protocol="extended")
    return [(r.get("sql"), r.get("decision")) for r in recs[-n:]]


def differential(w, pg, pipeline):
    """Run a pipeline through pgwarden and the reference with every fuzzer check."""
    pf.Run(pg, w, pf.AuditReader(w.audit_path))(pipeline)


# --- the fuzzer ---------------------------------------------------------------------------

def test_differential_fuzz_smoke(prod):
    w, pg = prod
    reports = []
    found, n = pf.fuzz(pg, w, SMOKE_SEED, cases=SMOKE_CASES, seconds=SMOKE_SECONDS, shrink_budget=40,
                       out=reports.append)
    assert n > 0
    assert not found, f"{n} pipelines (seed {SMOKE_SEED}), {len(found)} discrepancy classes:\n" + \
        "\n".join(reports)


# The shrunk replays of every class the fuzzer found (issue 10), run with every check whatever the
# smoke's seed generates: a regression is caught even when the random run misses its shape.
FOUND_CLASSES = {
    "audit/wrong-sql": [[["P", "s1", "PREPARE s2 AS SELECT 3"], ["B", "p2", "s1"], ["E", "p2", 0],
                         ["B", "", "s2"], ["E", "", 0], ["S"]]],
    "denial/readonly-wall-at-B": [[["P", "", "SELECT id FROM billing.invoices FOR UPDATE"], ["E", "", 0],
                                   ["P", "", "SELECT current_setting('app.tenant_id')"], ["S"], ["B", "p2", ""],
                                   ["S"]]],
    "bind-failed-in-block": [[["Q", ["BEGIN"]], ["P", "s2", "SELECT 1/0"], ["B", "p1", "s2"], ["S"]],
                             [["E", "p1", 0], ["D", "P", "p1"], ["S"]], [["Q", ["ROLLBACK"]]]],
    "unnamed-parse-skipped-seed-1510": [[["P", "", "SELECT current_setting('app.tenant_id')"], ["H"]],
                                        [["P", "s2", "PREPARE s2 AS SELECT lo_create(0)"], ["P", "s2", "BEGIN"],
                                         ["P", "", "DECLARE p1 CURSOR FOR SELECT g FROM generate_series(1, 3) g"],
                                         ["S"], ["B", "p1", ""], ["E", "p1", 0], ["H"]], [["S"]]],
    "unnamed-parse-skipped-seed-1530": [[["P", "", "ROLLBACK"], ["S"]],
                                        [["P", "s1", "CLOSE p1"], ["B", "p1", "s1"], ["B", "p1", ""],
                                         ["P", "", "SELECT lo_create(0)"], ["S"], ["B", "p2", ""], ["S"]]],
    "named-parse-skipped-seed-1540": [[["P", "s2", "SELECT 1"], ["S"]],
                                      [["P", "s2", "SELECT count(*) FROM billing.invoices"], ["C", "S", "s2"],
                                       ["P", "s2", "SELECT pg_advisory_lock(4711)"], ["S"], ["B", "p2", "s2"], ["S"]]],
    "denied-bind-unnamed": [[["Q", ["BEGIN"]], ["P", "s1", "SELECT 1"], ["B", "", "s1"], ["S"]],
                            [["P", "s2", "SELECT lo_create(0)"], ["B", "", "s2"], ["S"]],
                            [["D", "P", ""], ["E", "", 0], ["S"]], [["Q", ["ROLLBACK"]]]],
    # names that differ only after byte 63 are one name upstream (NAMEDATALEN-1)
    "long-name-alias-statement": [[["P", pf.LONG_A, "SELECT 1"], ["S"], ["C", "S", pf.LONG_B],
                                   ["P", pf.LONG_B, "SELECT lo_create(0)"], ["S"], ["B", "", pf.LONG_A],
                                   ["E", "", 0], ["S"]]],
    "long-name-alias-portal": [[["Q", ["BEGIN"]], ["P", "", "SELECT 1"], ["B", pf.LONG_A, ""], ["S"],
                                ["C", "P", pf.LONG_B], ["P", "", "SELECT 2"], ["B", pf.LONG_B, ""], ["S"],
                                ["E", pf.LONG_A, 0], ["S"]], [["Q", ["ROLLBACK"]]]],
}


@pytest.mark.parametrize("name", sorted(FOUND_CLASSES))
def test_found_class_replays(prod, name):
    w, pg = prod
    differential(w, pg, FOUND_CLASSES[name])


def test_checker_passes_a_clean_pipeline_and_reports_a_mismatch(prod):
    """The checker is real: a plain read passes every check, and an answer that differs in
    kind from the reference's (rows on one side, an error on the other) is reported."""
    w, pg = prod
    audit = pf.AuditReader(w.audit_path)
    assert pf.run_one(pg, w, audit, [[["P", "s1", "SELECT 1"], ["B", "", "s1"], ["E", "", 0], ["S"]]]) is None
    a = [[("1", b""), ("2", b""), ("D", b"\0\x01\0\0\0\x011"), ("C", b"SELECT 1\0")]]
    b = [[("1", b""), ("E", b"C22012\0\0")]]
    with pytest.raises(pf.Discrepancy) as e:
        pf.compare(["E", "", 0], a[0], b[0], (0, 0))
    assert e.value.cls == "replies"


def test_splitter_carries_skip_over_flush():
    """After an error and a Flush, the server still skips to Sync: the next step's messages get
    no answer until its Sync."""
    sp = pf.Splitter([["E", "p9", 0], ["H"]])
    sp.feed(b"E", b"C34000\0\0")
    assert sp.done() and sp.skipping
    sp2 = pf.Splitter([["P", "", "SELECT 1"], ["S"]], skipping=True)
    assert sp2.answers == [[], []] and not sp2.done()
    sp2.feed(b"Z", b"I")
    assert sp2.done() and not sp2.skipping


# --- issue 10: names reused across Syncs in one pipeline ---------------------------------------

LO_SEQUENCE = [
    [["P", "S1", "SELECT 1"], ["S"]],
    [["P", "S1", "SELECT 2"], ["S"], ["C", "S", "S1"], ["P", "S1", "SELECT lo_create(0)"], ["S"]],
    [["B", "", "S1"], ["E", "", 0], ["S"]],
]


def test_a_reused_name_across_syncs_creates_no_large_object(prod):
    """Issue 10's sequence: the first Parse of the second batch fails (42P05), which must not
    put S1 back to SELECT 1 over the later Close and Parse: S1 is lo_create, so Execute is
    denied, no large object appears, and the audit names lo_create."""
    w, pg = prod
    before = large_objects(pg)
    with login(w) as c:
        assert sqlstates(send(c, *LO_SEQUENCE[0])) == []
        assert sqlstates(send(c, *LO_SEQUENCE[1])) == ["42P05"]
        got = send(c, *LO_SEQUENCE[2])
    assert large_objects(pg) == before
    assert sqlstates(got) == ["42501"], got
    assert last_extended(w) == [("SELECT lo_create(0)", "deny")]


def test_a_reused_name_across_syncs_differential(prod):
    w, pg = prod
    differential(w, pg, LO_SEQUENCE)


# Found by the fuzzer (seed 777): a portal rebound after a denied Parse and a Sync in the same
# write, executed after a Flush, runs lo_create while the relay still holds the old portal.
REBIND_SEQUENCE = [
    [["P", "s2", "SELECT 1"], ["B", "p2", "s2"], ["S"]],
    [["P", "s2", "SET app.tenant_id = 'globex'"], ["B", "p2", "s2"], ["S"],
     ["P", "s1", "SELECT lo_create(0)"], ["B", "p2", "s1"], ["H"]],
    [["E", "p2", 0], ["S"]],
]


def test_a_portal_rebound_after_a_denied_parse_creates_no_large_object(prod):
    w, pg = prod
    before = large_objects(pg)
    with login(w) as c:
        send(c, *REBIND_SEQUENCE[0])
        got = send(c, *REBIND_SEQUENCE[1]) + send(c, *REBIND_SEQUENCE[2])
    assert large_objects(pg) == before
    # the denied Parse, then lo_create denied at its Bind or at its Execute
    assert sqlstates(got) == ["42501", "42501"], got


def test_a_portal_rebound_after_a_denied_parse_differential(prod):
    w, pg = prod
    differential(w, pg, REBIND_SEQUENCE)


def test_a_refused_parse_in_the_same_batch_keeps_the_first_text_in_the_audit(prod):
    """Found by the fuzzer (seed 4242): Parse s2 = SELECT 2, then Parse s2 = another read in the
    same batch (42P05): the server keeps SELECT 2, and the audit of Execute must say so."""
    w, pg = prod
    differential(w, pg, [[["P", "s2", "SELECT 2"], ["P", "s2", "SELECT count(*) FROM billing.invoices"], ["S"],
                          ["B", "p1", "s2"], ["E", "p1", 0], ["S"]]])


def test_a_name_redefined_after_a_parse_the_server_refused_is_known(prod):
    """A Parse the server refuses (42P01) earlier in the batch leaves the name free, so a later
    Parse of it in the same write defines it: the Bind that names it is judged on the server's
    answer (the relay waits for it), not denied as an unknown statement."""
    w, pg = prod
    pipeline = [[["P", "s1", "SELECT * FROM pf_missing_table"], ["S"],
                 ["P", "s1", "SELECT g FROM generate_series(1, 5) g"], ["B", "p1", "s1"], ["E", "p1", 0],
                 ["S"]]]
    with login(w) as c:
        got = send(c, *pipeline[0])
    assert sqlstates(got) == ["42P01"], got
    assert len(rows_of(flat(got))) == 5
    assert last_extended(w) == [("SELECT g FROM generate_series(1, 5) g", "allow")]
    differential(w, pg, pipeline)


def test_a_name_redefined_after_a_duplicate_parse_differential(prod):
    """The same with 42P05: the second Parse of s2 fails, the third (after Sync and Close) wins."""
    w, pg = prod
    differential(w, pg, [[["P", "s2", "SELECT 2"], ["P", "s2", "SELECT 3"], ["S"], ["C", "S", "s2"],
                          ["P", "s2", "SELECT 4"], ["B", "p1", "s2"], ["E", "p1", 0], ["S"]]])


def test_c_portal_rebound_after_its_transaction_ended_is_known(prod):
    """Bind p2 again after the Sync that ended its transaction (the server dropped p2): the
    Execute that names it runs the new statement, it is not an unknown portal."""
    w, pg = prod
    differential(w, pg, [[["P", "s2", "SELECT current_setting('app.tenant_id')"], ["B", "p2", "s2"], ["S"],
                          ["P", "s1", "COMMIT"], ["B", "p2", "s1"], ["E", "p2", 2], ["S"]]])


@pytest.mark.parametrize("refused", ["SELEC 1", "SET app.tenant_id = 'globex'"], ids=["syntax-error", "denied"])
def test_a_refused_parse_of_the_unnamed_statement_drops_the_old_one(prod, refused):
    """PostgreSQL drops the unnamed statement before parsing a new one: after pgwarden refuses
    a Parse of it (its parser's error or a denial), Bind and Describe of the unnamed statement
    must fail as they would after the server's own error, not reach the old statement."""
    w, pg = prod
    pipeline = [[["P", "", "SELECT current_user::text"], ["S"]],
                [["P", "", refused], ["S"], ["B", "", ""], ["S"], ["D", "S", ""], ["S"]]]
    with login(w) as c:
        assert sqlstates(send(c, *pipeline[0])) == []
        got = send(c, *pipeline[1])
    states = sqlstates(got)
    assert len(states) == 3 and states[2] == "26000", got
    differential(w, pg, pipeline)


def test_a_sql_execute_of_a_name_a_refused_parse_left_alone_is_known(prod):
    """Found by the fuzzer (seed 1101): the second Parse of s2 is refused (42P05), so s2 is still
    SELECT 1 after the Sync, and a prepared `EXECUTE s2` is judged on it, not denied as unknown."""
    w, pg = prod
    differential(w, pg, [[["P", "s2", "SELECT 1"], ["P", "s2", "SELECT (1/(random()*0)::int)"], ["S"],
                          ["P", "s1", "EXECUTE s2"], ["S"]]])


def test_a_close_in_a_failed_transaction_keeps_the_portal(prod):
    """Found by the fuzzer (seed 1101): in a failed transaction block the server refuses CLOSE p1
    (25P02), so p1 still exists and Execute of it gets the server's 25P02, not a denial."""
    w, pg = prod
    differential(w, pg, [[["P", "s2", "BEGIN"], ["B", "", "s2"], ["E", "", 2],
                          ["P", "s1", "SELECT count(*) FROM billing.pf_scratch"], ["B", "p1", "s1"],
                          ["E", "p2", 0], ["S"]],
                         [["Q", ["CLOSE p1", "SELECT lo_create(0)", "SET default_transaction_read_only = off"]],
                          ["E", "p1", 1], ["S"]]])


def test_execute_of_a_portal_whose_bind_failed_in_a_block_has_no_result_record(prod):
    """Found by the fuzzer (seed 2202): a Bind that fails inside a transaction block leaves an
    empty portal upstream, and Execute of it gets EmptyQueryResponse: nothing ran, so the audit
    has no result record for the statement pgwarden judged."""
    w, pg = prod
    differential(w, pg, [[["P", "", "BEGIN"], ["B", "p2", ""], ["E", "p2", 0], ["P", "s1", "SELECT 1/0"],
                          ["B", "p1", "s1"], ["S"], ["E", "p1", 2], ["S"]]])


@pytest.mark.parametrize("pipeline", [
    [[["P", "s2", "BEGIN"], ["S"]], [["E", "p2", 2], ["C", "S", "s2"], ["S"], ["B", "p2", "s2"], ["S"]]],
    [[["P", "s2", "COMMIT"], ["P", "s2", "SELECT pg_advisory_lock(4711)"], ["C", "S", "s2"], ["S"],
      ["B", "p2", "s2"], ["S"]]],
], ids=["after-a-missing-portal", "after-a-duplicate-parse"])
def test_b_close_skipped_in_the_same_write_keeps_the_statement(prod, pipeline):
    """Found by the fuzzer (seeds 2202, 3303): a Close skipped after an earlier error in its batch
    deletes nothing, so a Bind of the name after the Sync, in the same write, binds it."""
    w, pg = prod
    differential(w, pg, pipeline)


def test_a_sql_execute_of_a_name_a_refused_parse_reused_creates_no_large_object(prod):
    """Found by the fuzzer (seed 4242): s2 = lo_create; a later Parse s2 = a read fails (42P05);
    SQL EXECUTE s2 runs lo_create on the server, so it must be denied as a write."""
    w, pg = prod
    before = large_objects(pg)
    with login(w) as c:
        send(c, ["P", "s2", "SELECT lo_create(0)"], ["S"])
        # one write: the refused Parse's answer arrives after EXECUTE s2 was judged
        got = send(c, ["P", "s2", "SELECT current_setting('app.tenant_id')"], ["S"],
                   ["P", "s1", "EXECUTE s2"], ["B", "p2", "s1"], ["E", "p2", 0], ["S"])
    assert large_objects(pg) == before
    assert sqlstates(got) == ["42P05", "42501"], got


def test_b_close_skipped_after_an_error_keeps_the_statement(prod):
    """A Close after an error in the same pipeline is skipped by the server: S1 keeps its
    definition (lo_create); the next Parse of S1 fails (42P05); Execute of S1 must be judged as
    lo_create (denied as a write, audited as lo_create), not as unknown or as the new text."""
    w, pg = prod
    before = large_objects(pg)
    with login(w) as c:
        assert sqlstates(send(c, ["P", "S1", "SELECT lo_create(0)"], ["S"])) == []
        got = send(c, ["P", "", "SELECT * FROM pf_missing_table"], ["C", "S", "S1"], ["S"],
                   ["P", "S1", "SELECT 1"], ["S"])
        assert sqlstates(got) == ["42P01", "42P05"], got
        got = send(c, ["B", "", "S1"], ["E", "", 0], ["S"])
    assert large_objects(pg) == before
    assert sqlstates(got) == ["42501"], got
    assert "write-outside-window" in errors_of(flat(got))[0].get("D", "")
    assert last_extended(w) == [("SELECT lo_create(0)", "deny")]


def test_b_close_skipped_differential(prod):
    """Passed before the timeline merge too (the old relay denied S1 as unknown, and a denial of
    a risky statement is allowed here); the audit and rule are checked by the test above."""
    w, pg = prod
    differential(w, pg, [
        [["P", "S1", "SELECT lo_create(0)"], ["S"]],
        [["P", "", "SELECT * FROM pf_missing_table"], ["C", "S", "S1"], ["S"], ["P", "S1", "SELECT 1"], ["S"]],
        [["B", "", "S1"], ["E", "", 0], ["S"]],
    ])


def test_c_portal_name_reused_after_its_transaction_ended(prod):
    """A portal bound to a write ends with its transaction (Sync); a cursor of the same name in
    a later transaction is a read: executing it runs SELECT 2, not a denial of the old write."""
    w, pg = prod
    with login(w) as c:
        # pgwarden may deny the write at Bind (then p1 never existed) or at Execute
        assert sqlstates(send(c, ["P", "s1", "SELECT lo_create(0)"], ["B", "p1", "s1"], ["S"])) in ([], ["42501"])
        assert sqlstates(send(c, ["Q", ["BEGIN"]], ["Q", ["DECLARE p1 CURSOR FOR SELECT 2"]])) == []
        got = send(c, ["E", "p1", 0], ["S"])
        send(c, ["Q", ["ROLLBACK"]])
    assert sqlstates(got) == [], got
    assert rows_of(flat(got)) == [("2",)]


def test_c_portal_name_reused_differential(prod):
    w, pg = prod
    differential(w, pg, [
        [["P", "s1", "SELECT lo_create(0)"], ["B", "p1", "s1"], ["S"]],
        [["Q", ["BEGIN"]], ["Q", ["DECLARE p1 CURSOR FOR SELECT g FROM generate_series(1, 3) g"]],
         ["E", "p1", 0], ["S"]],
        [["Q", ["ROLLBACK"]], ["S"]],
    ])


def test_d_declare_reusing_a_protocol_portal_name_is_audited_as_the_cursor(prod):
    """Issue 14 item 5: portal p1 (SELECT 1) ends with its transaction; DECLARE p1 CURSOR FOR
    SELECT 2 reuses the name; Execute p1 runs the cursor, and its audit record must say so."""
    w, pg = prod
    with login(w) as c:
        assert sqlstates(send(c, ["P", "s1", "SELECT 1"], ["B", "p1", "s1"], ["E", "p1", 0], ["S"])) == []
        assert sqlstates(send(c, ["Q", ["BEGIN"]], ["Q", ["DECLARE p1 CURSOR FOR SELECT 2"]])) == []
        got = send(c, ["E", "p1", 0], ["S"])
        send(c, ["Q", ["ROLLBACK"]])
    assert sqlstates(got) == [] and rows_of(flat(got)) == [("2",)], got
    (sql, decision), = last_extended(w)
    assert decision == "allow" and pf.same_sql(sql, "SELECT 2"), sql


def test_d_sql_close_then_declare_in_one_transaction_differential(prod):
    """Inside one transaction: SQL CLOSE ends protocol portal p1, DECLARE p1 takes its name."""
    w, pg = prod
    differential(w, pg, [
        [["Q", ["BEGIN"]], ["P", "s1", "SELECT 1"], ["B", "p1", "s1"], ["S"]],
        [["Q", ["CLOSE p1", "DECLARE p1 CURSOR FOR SELECT 2"]], ["E", "p1", 0], ["S"]],
        [["Q", ["ROLLBACK"]], ["S"]],
    ])


# --- issue 14 item 8: protocol fidelity ------------------------------------------------------

def test_e_prepare_execute_deallocate_in_one_query(prod):
    w, _ = prod
    with login(w) as c:
        got = c.simple("PREPARE pf_q AS SELECT 3; EXECUTE pf_q; DEALLOCATE pf_q")
    assert errors_of(got) == [], got
    assert [k for k, _ in got] == [b"C", b"T", b"D", b"C", b"C", b"Z"], got
    assert rows_of(got) == [("3",)]


def test_f_denied_statement_after_begin_in_one_query_leaves_a_failed_block(prod):
    """BEGIN; INSERT ...; SET ROLE ... in one Query: the server would be in a failed transaction
    block (E) after it; a client that goes on must not be running in autocommit."""
    w, pg = prod
    with login(w) as c:
        got = c.simple(f"BEGIN; INSERT INTO {pf.SCRATCH} VALUES (1); SET ROLE postgres")
        assert [e.get("C") for e in errors_of(got)] == ["42501"], got
        assert got[-1] == (b"Z", b"E"), got
        got = c.simple("SELECT 1")
        assert [e.get("C") for e in errors_of(got)] == ["25P02"], got
        c.simple("ROLLBACK")
    assert pg.sql(f"SELECT count(*) FROM {pf.SCRATCH}", pf.DATABASE)[0][0] == 0


def test_g_select_for_update_extended_is_pgwardens_denial(prod):
    w, _ = prod
    with login(w) as c:
        got = send(c, ["P", "", "SELECT id FROM billing.invoices FOR UPDATE"], ["B", "", ""], ["E", "", 0], ["S"])
    errs = errors_of(flat(got))
    assert [e.get("C") for e in errs] == ["42501"], got
    assert errs[0]["M"].startswith("pgwarden:")


def huge_header_closes(host, port, params, pw):
    """Send a Query whose length field is 2^30 (and a few body bytes): PostgreSQL refuses the
    length at once and closes (it logs "invalid message length" and tells the client nothing);
    it does not wait for a gigabyte. Returns (closed, ErrorResponse fields or None)."""
    with RawConn(host, port) as c:
        c.login(params, pw)
        c.send(b"Q" + struct.pack("!I", 1 << 30) + b"SELECT 1")
        return c.wait_closed(5)


def test_h_message_length_2_30_postgres_itself(prod):
    """What PostgreSQL does (the yardstick for the next test)."""
    _, pg = prod
    closed, err = huge_header_closes(pg.host, pg.port, {"user": "postgres", "database": "app"}, None)
    assert closed and err is None, err


def test_h_message_length_2_30_rejected(prod):
    w, _ = prod
    closed, err = huge_header_closes(w.host, w.port, {"user": pf.ACTOR, "database": pf.TARGET},
                                     w.tokens[pf.ACTOR])
    assert closed, "pgwarden waited for a 1 GiB message instead of refusing its length"
    assert err is None or err.get("C") == "08P01", err
