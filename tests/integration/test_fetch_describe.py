"""test_fetch_describe.py - Describe of a prepared FETCH whose cursor is gone crashes PostgreSQL 15
(FetchStatementTargetList in pquery.c guards the cursor lookup with an Assert only), which
restarts the whole cluster; pgwarden refuses Describe of a prepared FETCH so no client can
trigger it. The crash itself is reproduced on a cluster of this module's own, so the shared one
of the other tests never restarts. Raw protocol, no driver."""
import time

import pytest

import protofuzz as pf
from pgserver import PgServer
from rawpg import Closed, RawConn, errors_of
from warden import Warden

pytestmark = pytest.mark.identity

# The sequence: p1 is alive when FETCH is parsed (so its result columns are known) and
# gone, with its transaction, at the Describe.
CRASH = [["P", "s", "SELECT 1"], ["B", "p1", "s"], ["P", "", "FETCH 1 FROM p1"], ["S"],
         ["D", "S", ""], ["S"]]


@pytest.fixture(scope="module")
def own():
    """A cluster and a pgwarden in front of it, for this module only."""
    server = PgServer()
    server.start()
    w = Warden(server)
    try:
        w.start()
        pf.setup(server)
        yield w, server
    finally:
        w.cleanup()
        server.stop()


def postmaster_start(pg):
    return pg.sql("SELECT pg_postmaster_start_time()::text")[0][0]


def wait_recovered(pg, timeout=60):
    end = time.monotonic() + timeout
    while True:
        try:
            return postmaster_start(pg)
        except Exception:
            if time.monotonic() > end:
                raise
            time.sleep(0.5)


def run(c, messages):
    """Send the messages in one write; every message received until the last ReadyForQuery (one
    per Sync or Query),
    or the connection's end (True when it ended)."""
    c.send(b"".join(pf.encode(m) for m in messages))
    got, syncs = [], sum(1 for m in messages if m[0] in ("S", "Q"))
    try:
        while syncs:
            k, body = c.read_msg()
            got.append((k, body))
            syncs -= k == b"Z"
    except (Closed, OSError):
        return got, True
    return got, False


def test_postgres_itself_crashes_on_describe_of_a_fetch_whose_cursor_is_gone(own):
    """The hole is real: straight to PostgreSQL, the sequence kills the backend, and every
    other session with it (the postmaster restarts the cluster)."""
    w, pg = own
    before = postmaster_start(pg)
    bystander = pf.login_reference(pg)
    c = pf.login_reference(pg)
    got, ended = run(c, CRASH)
    assert ended, got
    # the postmaster terminates every other backend (57P02 at most, then the socket closes);
    # under load that may come a moment after the crash
    end = time.monotonic() + 20
    ended = False
    while not ended and time.monotonic() < end:
        got, ended = run(bystander, [["Q", ["SELECT 1"]]])
        time.sleep(0.2)
    assert ended, got
    # a crash restart reinitialises shared memory; the other sessions were terminated
    assert wait_recovered(pg) == before  # crash recovery, not a new postmaster
    for conn in (c, bystander):
        conn.close()


@pytest.mark.parametrize("fetch", ["FETCH 1 FROM p1", "FETCH ALL IN p1", "fetch forward 5 p1"])
def test_describe_of_a_prepared_fetch_is_refused_and_the_cluster_survives(own, fetch):
    w, pg = own
    wait_recovered(pg)
    bystander = pf.login_pgwarden(w, "bystander")
    with pf.login_pgwarden(w, "crash") as c:
        got, ended = run(c, [m if m[:2] != ["P", ""] else ["P", "", fetch] for m in CRASH])
        assert not ended, got
        errs = errors_of(got)
        assert [e.get("C") for e in errs] == ["42501"], got
        assert "Describe of a prepared FETCH" in errs[0]["M"]
        # the session goes on, and so does everyone else's
        got, ended = run(c, [["Q", ["SELECT 1"]]])
        assert not ended and not errors_of(got)
    got, ended = run(bystander, [["Q", ["SELECT 2"]]])
    assert not ended and not errors_of(got), got
    bystander.close()


def test_move_and_the_fetch_portal_are_still_described(own):
    """Only Describe of the prepared FETCH is refused: a prepared MOVE (no result columns) and
    Describe of the FETCH's portal (what drivers send) are answered by the server."""
    w, pg = own
    wait_recovered(pg)
    with pf.login_pgwarden(w, "move") as c:
        got, ended = run(c, [["Q", ["BEGIN"]], ["Q", ["DECLARE k CURSOR FOR SELECT 1 AS one"]],
                             ["P", "m", "MOVE 1 IN k"], ["D", "S", "m"], ["S"],
                             ["P", "f", "FETCH 1 FROM k"], ["B", "fp", "f"], ["D", "P", "fp"], ["E", "fp", 0],
                             ["S"], ["Q", ["COMMIT"]]])
        assert not ended and not errors_of(got), got
        kinds = [k for k, _ in got]
        assert b"n" in kinds and b"T" in kinds and b"D" in kinds, kinds


# Found by the fuzzer (seed 4404): a simple Query's statement that fails inside a transaction
# block leaves the unnamed portal behind pointing at freed memory; Execute "" crashes PostgreSQL
# (a use after free: whether it crashes depends on what reused the memory, so the exact sequence).
STALE_PORTAL = [[["P", "s1", "SELECT current_user::text"], ["B", "", "s1"], ["Q", ["BEGIN", "CLOSE c1"]], ["S"]],
                [["P", "s1", "SELECT (1/(random()*0)::int)"], ["S"], ["H"]], [["E", "", 2], ["S"]]]


def test_postgres_itself_crashes_on_execute_of_the_portal_a_failed_query_left(own):
    w, pg = own
    before = wait_recovered(pg)
    c = pf.login_reference(pg)
    ended = False
    for step in STALE_PORTAL:
        got, ended = run(c, step)
    assert ended, got
    c.close()
    assert wait_recovered(pg) == before


def test_execute_of_the_portal_a_failed_query_left_is_refused(own):
    w, pg = own
    wait_recovered(pg)
    with pf.login_pgwarden(w, "stale") as c:
        for step in STALE_PORTAL:
            got, ended = run(c, step)
            assert not ended, got
        assert [e.get("C") for e in errors_of(got)] == ["42501"], got
        got, ended = run(c, [["Q", ["ROLLBACK"]], ["Q", ["SELECT 1"]]])
        assert not ended and not errors_of(got), got
