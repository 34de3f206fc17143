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
