"""Upstream pooling, transaction mode (CONTRACT §7): clients borrow a connection for one
transaction and hold none between transactions, unless session state that cannot move
(temp tables, LISTEN, advisory locks, WITH HOLD cursors, prepared statements, settings)
holds them on it. Identity and state never cross between clients sharing one backend."""
import re
import socket
import threading
import time
import urllib.request

import psycopg
import pytest

from conftest import DIRECT
from pgserver import free_port
# The session-mode isolation tests, run again here over transaction mode (the `one` fixture below).
from test_pool import (ident, one_value, svc_pids, wait_for,  # noqa: F401 - helpers and re-run tests
                       test_abrupt_disconnect_mid_transaction, test_identity_and_state_never_cross,
                       test_idle_pooled_connection_is_nobody, test_reset_all_does_not_drop_role_and_next_client_is_own,
                       test_set_config_with_bind_parameters_does_not_leak,
                       test_set_in_a_block_persists_after_commit_but_not_to_the_next_client,
                       test_setseed_state_does_not_leak, test_sql_prepare_does_not_leak,
                       test_startup_settings_follow_the_client, test_temp_table_cannot_shadow_a_real_table)

pytestmark = pytest.mark.skipif(DIRECT, reason="pooling is pgwarden's")

TXN = "pool_mode = transaction\n"
ONE = TXN + "pool_size = 1\npool_wait_timeout = 2"


@pytest.fixture
def one(pgwarden_factory):
    """A transaction-mode pgwarden whose targets share a single upstream connection each."""
    return pgwarden_factory(target_config=ONE)


@pytest.fixture
def short(pgwarden_factory):
    """pool_size = 1 with a short wait: a held connection shows as 53300 for the other client."""
    return pgwarden_factory(target_config=TXN + "pool_size = 1\npool_wait_timeout = 1")


def test_two_clients_share_one_backend_between_transactions(one):
    """Both connected at once, pool_size = 1: statements alternate on the same backend,
    each under its own identity, tenant rows and startup settings."""
    a = one.connect("user:jimmie", application_name="app-a")
    b = one.connect("agent:tally", options="-c TimeZone=Asia/Tokyo")
    pids = set()
    for _ in range(3):
        ra, rb = ident(a), ident(b)
        pids |= {ra[3], rb[3]}
        assert ra[:3] == ("bookkeeper", "user:jimmie", "acme")
        assert rb[:3] == ("agent_rw", "agent:tally", "acme")
        assert a.execute("SHOW application_name").fetchone()[0] == "app-a"
        assert b.execute("SHOW application_name").fetchone()[0] != "app-a"
        assert b.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
        assert a.execute("SHOW TimeZone").fetchone()[0] != "Asia/Tokyo"
    assert len(pids) == 1
    a.close()
    b.close()


def metrics(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()


def metric(port, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}{{{re.escape(want)}}} (\S+)$", metrics(port), re.M)
    return float(m.group(1)) if m else None


def assert_waits_53300(c):
    """The other client cannot borrow: its statement fails 53300 after pool_wait_timeout, its session goes on."""
    with pytest.raises(psycopg.errors.TooManyConnections) as e:
        c.execute("SELECT 1")
    assert str(e.value).startswith("pgwarden:")


def cursor_with_hold(c):
    c.execute("BEGIN")
    c.execute("DECLARE held_c CURSOR WITH HOLD FOR SELECT 1")
    c.execute("COMMIT")


HOLDS = [
    # (make the state, end it, reason label)
    ("CREATE TEMP TABLE tx_t (x int)", "DISCARD TEMP", "temp_table"),
    ("CREATE TEMP TABLE tx_t2 AS SELECT 1 AS x", "DISCARD ALL", "temp_table"),
    ("SELECT 1 AS x INTO TEMP tx_t3", "DISCARD ALL", "temp_table"),
    ("CREATE TEMP VIEW tx_v AS SELECT 1", "DISCARD TEMP", "temp_table"),
    ("LISTEN tx_chan", "UNLISTEN *", "listen"),
    ("SELECT pg_advisory_lock(4711)", "SELECT pg_advisory_unlock_all()", "advisory_lock"),
    ("SELECT pg_try_advisory_lock_shared(4712)", "DISCARD ALL", "advisory_lock"),
    ("PREPARE tx_p AS SELECT 1", "DEALLOCATE tx_p", "prepared_statement"),
    (cursor_with_hold, "CLOSE held_c", "cursor"),
    ("SET work_mem = '5MB'", "RESET ALL", "settings"),
    ("SELECT set_config('work_mem', '5MB', false)", "RESET ALL", "settings"),
    ("DO $$BEGIN CREATE TEMP TABLE tx_do (x int); END$$", "DISCARD ALL", "temp_table"),
]


@pytest.mark.parametrize("make,end,reason", HOLDS, ids=[h[2] + "-" + str(i) for i, h in enumerate(HOLDS)])
def test_state_that_cannot_move_holds_until_it_is_gone(pgwarden_factory, make, end, reason):
    """Session state that cannot follow a client keeps it on its connection (the other client
    waits: 53300), counted by reason; once it is gone the connection is shared again."""
    port = free_port()
    w = pgwarden_factory(extra_config=f"admin_listen = 127.0.0.1:{port}",
                         target_config=TXN + "pool_size = 1\npool_wait_timeout = 1")
    a, b = w.connect("user:jimmie"), w.connect("user:ada")
    assert ident(a)[3] == ident(b)[3]  # shared while nothing holds
    make(a) if callable(make) else a.execute(make)
    assert metric(port, "pgwarden_pool_holds_total", target="staging", reason=reason) == 1
    assert metric(port, "pgwarden_pool_connections", target="staging", state="held") == 1
    assert_waits_53300(b)
    assert ident(a)[:3] == ("bookkeeper", "user:jimmie", "acme")  # the holder goes on
    a.execute(end)
    assert metric(port, "pgwarden_pool_connections", target="staging", state="held") == 0
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert b.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 0
    assert b.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                     "AND pid = pg_backend_pid()").fetchone()[0] == 0
    assert b.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
    assert b.execute("SHOW work_mem").fetchone()[0] == "4MB"
    a.close()
    b.close()


def test_a_rolled_back_release_keeps_the_hold(short):
    """UNLISTEN * inside a block that rolls back ends nothing: still held."""
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("LISTEN tx_keep")
    a.execute("BEGIN")
    a.execute("UNLISTEN *")
    a.execute("ROLLBACK")
    assert a.execute("SELECT count(*) FROM pg_listening_channels()").fetchone()[0] == 1
    assert_waits_53300(b)
    a.close()
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    b.close()


def test_set_local_and_plain_statements_do_not_hold(short):
    a, b = short.connect("user:jimmie"), short.connect("user:ada")
    a.execute("BEGIN")
    a.execute("SET LOCAL work_mem = '6MB'")
    a.execute("SELECT count(*) FROM invoices")
    a.execute("COMMIT")
    a.execute("SELECT pg_advisory_xact_lock(99)")
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    assert a.execute("SHOW work_mem").fetchone()[0] == "4MB"
    a.close()
    b.close()


def test_an_open_transaction_keeps_the_connection_until_it_ends(short):
    """Explicit block: the other client waits until COMMIT, then borrows the same backend."""
    a, b = short.connect("agent:tally"), short.connect("user:ada")
    a.execute("BEGIN")
    a.execute("SELECT 1")
    assert_waits_53300(b)
    a.execute("COMMIT")
    assert ident(b)[:3] == ("bookkeeper", "user:ada", "globex")
    a.close()
    b.close()


def test_waiting_client_is_served_when_the_transaction_ends(pgwarden_factory):
    """A waiter is not refused: it runs as soon as the holder's transaction commits."""
    w = pgwarden_factory(target_config=TXN + "pool_size = 1\npool_wait_timeout = 10")
    a, b = w.connect("user:jimmie"), w.connect("user:ada")
    a.execute("BEGIN")
    a.execute("SELECT 1")
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("b", ident(b)))
    t.start()
    time.sleep(0.5)
    assert "b" not in got
    a.execute("COMMIT")
    t.join(10)
    assert got["b"][:3] == ("bookkeeper", "user:ada", "globex")
    a.close()
    b.close()
