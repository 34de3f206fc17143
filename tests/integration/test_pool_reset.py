"""What a pooled connection's reset covers (CONTRACT §7, README "What the reset covers"): one test
per kind of session state PostgreSQL 15 keeps, each with pool_size = 1, so the second client runs
on the very backend the first one left; and what DISCARD ALL does not cover: prepared two-phase
transactions (refused), dblink connections (refused), setseed() (pgwarden reseeds)."""
import psycopg
import pytest

from conftest import DIRECT
from pgserver import PgServer

pytestmark = pytest.mark.skipif(DIRECT, reason="pooling is pgwarden's")

ONE = "pool_size = 1\npool_wait_timeout = 5"


@pytest.fixture(scope="module")
def pg():
    """This module's own server: prepared transactions enabled (PostgreSQL's default, 0, would
    refuse PREPARE TRANSACTION itself and hide what pgwarden does) and dblink installed."""
    server = PgServer(extra_conf="max_prepared_transactions = 4\n")
    try:
        server.start()
        server.sql("CREATE EXTENSION IF NOT EXISTS dblink", dbname="app_staging")
        yield server
    finally:
        server.stop()


@pytest.fixture
def one(pgwarden_factory):
    return pgwarden_factory(target_config=ONE)


def pid_of(c):
    return c.execute("SELECT pg_backend_pid()").fetchone()[0]


def handover(w, leave, check, first="agent:tally", second="user:jimmie"):
    """`first` runs leave(conn) and disconnects; `second` gets the same backend and runs check(conn)."""
    with w.connect(first) as a:
        pid = pid_of(a)
        leave(a)
    with w.connect(second) as b:
        assert pid_of(b) == pid, "pool_size = 1: the same backend"
        check(b)


def denied(c, sql, rule, prepare=False):
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
        c.execute(sql, prepare=prepare)
    assert str(e.value).startswith("pgwarden:")
    assert rule in (e.value.diag.message_detail or "")


# ---- what DISCARD ALL does not cover --------------------------------------------------------------

@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_prepared_two_phase_transactions_are_refused(one, pg, prepare):
    """PREPARE TRANSACTION detaches a transaction from the session: it outlives the client and the
    pooled connection (DISCARD ALL does not touch it), keeps its locks, and any session of the same
    role may commit it. pgwarden refuses it, and COMMIT / ROLLBACK PREPARED, on every target."""
    with one.connect("agent:tally", autocommit=False) as a:
        a.execute("SELECT 1")
        denied(a, "PREPARE TRANSACTION 'left_behind'", "opaque-sql", prepare)
        a.rollback()
        a.execute("SELECT 1")
        denied(a, "prepare   transaction 'left_behind'", "opaque-sql", prepare)
        a.rollback()
    assert pg.sql("SELECT count(*) FROM pg_prepared_xacts")[0][0] == 0
    # someone else's prepared transaction (made directly, as a superuser) cannot be finished through pgwarden
    with psycopg.connect(pg.admin_dsn("app_staging")) as admin:
        admin.execute("SELECT 1")  # psycopg opened a transaction block
        admin.execute("PREPARE TRANSACTION 'admins_own'")
    try:
        with one.connect("user:jimmie") as b:
            denied(b, "COMMIT PREPARED 'admins_own'", "opaque-sql", prepare)
            denied(b, "ROLLBACK PREPARED 'admins_own'", "opaque-sql", prepare)
        with one.connect("user:jimmie", dbname="prod") as b:
            denied(b, "ROLLBACK PREPARED 'admins_own'", "opaque-sql", prepare)
        assert pg.sql("SELECT gid FROM pg_prepared_xacts") == [("admins_own",)]
    finally:
        pg.sql("ROLLBACK PREPARED 'admins_own'", "app_staging")


def test_dblink_connections_cannot_be_opened(one):
    """A dblink connection lives in the backend until dblink_disconnect; DISCARD ALL leaves it. It
    cannot exist: every dblink function runs SQL given as text (opaque-sql)."""
    def leave(a):
        denied(a, "SELECT dblink_connect('kept', 'dbname=app_staging')", "opaque-sql")
        denied(a, "SELECT dblink_connect_u('kept', 'dbname=app_staging')", "opaque-sql", prepare=True)

    def check(b):
        denied(b, "SELECT dblink_get_connections()", "opaque-sql")
        denied(b, "SELECT * FROM dblink('kept', 'select 1') AS t(a int)", "opaque-sql")

    handover(one, leave, check)


def test_setseed_state_is_reseeded(one):
    """setseed() survives DISCARD ALL; pgwarden's reset reseeds from a random value, so the next
    client cannot predict random()."""
    predicted = []

    def leave(a):
        a.execute("SELECT setseed(0.25)")
        predicted.append(a.execute("SELECT random(), random()").fetchone())
        a.execute("SELECT setseed(0.25)")

    handover(one, leave, lambda b: b.execute("SELECT random(), random()").fetchone() != predicted[0] or
             pytest.fail("random() predictable after the handover"))


# ---- what DISCARD ALL covers, checked on the next client ---------------------------------------------

def test_sequence_currval_and_lastval_are_forgotten(one):
    def leave(a):
        a.execute("SELECT nextval('billing.invoices_id_seq')")
        assert a.execute("SELECT currval('billing.invoices_id_seq') = lastval()").fetchone()[0]

    def check(b):
        for sql in ("SELECT currval('billing.invoices_id_seq')", "SELECT lastval()"):
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
                b.execute(sql)

    handover(one, leave, check)


def test_session_advisory_locks_are_released(one, pg):
    def leave(a):
        a.execute("SELECT pg_advisory_lock(770001), pg_advisory_lock_shared(770002), pg_advisory_lock(7, 7)")

    def check(b):
        assert b.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                         "AND pid = pg_backend_pid()").fetchone()[0] == 0
        # and from another session: free
        assert pg.sql("SELECT pg_try_advisory_lock(770001), pg_try_advisory_lock(7, 7), "
                      "pg_advisory_unlock(770001), pg_advisory_unlock(7, 7)")[0][:2] == (True, True)

    handover(one, leave, check)


def test_listen_registrations_are_dropped(one, pg):
    def leave(a):
        a.execute("LISTEN pool_reset_channel")
        a.execute('LISTEN "Other Channel"')

    def check(b):
        assert b.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 0
        pg.sql("NOTIFY pool_reset_channel, 'for the first client'", "app_staging")
        b.execute("SELECT pg_sleep(0.2)")
        assert b.pgconn.notifies() is None

    handover(one, leave, check)


def test_temp_tables_and_temp_objects_are_dropped(one):
    def leave(a):
        a.execute("CREATE TEMP TABLE left_rows (secret text)")
        a.execute("INSERT INTO left_rows VALUES ('tally')")
        a.execute("CREATE TEMP VIEW left_view AS SELECT * FROM left_rows")

    def check(b):
        assert b.execute("SELECT to_regclass('pg_temp.left_rows'), to_regclass('pg_temp.left_view')").fetchone() == \
            (None, None)
        assert b.execute("SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.UndefinedTable):
            b.execute("SELECT * FROM left_rows")

    handover(one, leave, check)


def test_with_hold_cursors_are_closed(one):
    def leave(a):
        a.execute("BEGIN")
        a.execute("DECLARE kept CURSOR WITH HOLD FOR SELECT generate_series(1, 10)")
        a.execute("COMMIT")
        assert a.execute("FETCH 1 FROM kept").fetchone() == (1,)

    def check(b):
        assert b.execute("SELECT count(*) FROM pg_cursors").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InvalidCursorName):
            b.execute("FETCH 1 FROM kept")

    handover(one, leave, check)


def test_prepared_statements_sql_and_protocol_are_deallocated(one):
    def leave(a):
        a.execute("PREPARE sql_level AS SELECT 'tally'")
        a.execute("SELECT %s::text", ("protocol-level",), prepare=True)  # a named protocol statement

    def check(b):
        assert b.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
        with pytest.raises(psycopg.Error):  # pgwarden knows this session prepared nothing; the server neither
            b.execute("EXECUTE sql_level")

    handover(one, leave, check)


def test_settings_are_reset_including_those_set_in_a_block(one):
    def leave(a):
        a.execute("SET work_mem = '11MB'")
        a.execute("BEGIN")
        a.execute("SET search_path = pg_catalog")  # without LOCAL: survives COMMIT
        a.execute("COMMIT")
        a.execute("SELECT set_config('statement_timeout', '77s', false)")

    def check(b):
        assert b.execute("SELECT current_setting('work_mem'), current_setting('statement_timeout')").fetchone() == \
            ("4MB", "0")
        assert "pg_catalog" != b.execute("SHOW search_path").fetchone()[0]

    handover(one, leave, check)


def test_role_and_session_authorization_are_the_next_clients_own(one):
    """The role cannot be changed by a client (identity-change), and the reset's RESET ROLE plus
    DISCARD ALL's SET SESSION AUTHORIZATION DEFAULT leave the backend as nobody: the next client
    runs as its own role, never the previous one's."""
    def leave(a):
        assert a.execute("SELECT current_user").fetchone()[0] == "agent_rw"
        for sql in ("SET ROLE bookkeeper", "RESET ROLE", "SET SESSION AUTHORIZATION DEFAULT",
                    "SELECT set_config('role', 'bookkeeper', false)", "SET LOCAL ROLE NONE"):
            denied(a, sql, "identity-change")

    def check(b):
        assert b.execute("SELECT current_user, session_user, current_setting('app.actor_id')").fetchone() == \
            ("bookkeeper", "pgwarden_svc", "user:jimmie")

    handover(one, leave, check)


def test_custom_setting_names_survive_but_not_their_values(one):
    """A limit of RESET ALL worth knowing: a custom setting a client created (SET myapp.x) is reset
    to empty, but its name stays defined for the backend's life. The value never crosses."""
    def leave(a):
        a.execute("SET myapp.secret = 'tally-only'")

    def check(b):
        assert b.execute("SELECT current_setting('myapp.secret', true)").fetchone()[0] in ("", None)

    handover(one, leave, check)
