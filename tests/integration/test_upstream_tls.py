"""test_upstream_tls.py - a target whose conninfo asks for TLS (sslmode=require, as in production).

pgwarden relays such a session through libpq's own SSL object, so everything that moves bytes
is exercised here over TLS: large results and uploads (records bigger than one TLS record),
COPY both ways, pipelining, cancel, and closing without leaving the backend behind.
"""
import hashlib
import os
import secrets
import socket
import threading
import time

import psycopg
import pytest
from psycopg import errors

from audit_util import wait_for
from warden import SANITIZED


@pytest.fixture
def tls_warden(pg, pgwarden_factory):
    w = pgwarden_factory(extra_config=("[target.tls_staging]\n"
                                       f"conninfo = {pg.svc_dsn('app_staging', sslmode='require')}\n"
                                       "environment = staging\n"
                                       # room for idle_rss_per_session's 100 active clients (session pooling)
                                       "pool_size = 150\n"))
    if w.direct:
        pytest.skip("pgwarden's upstream TLS has no direct-mode equivalent")
    return w


def backends(pg, app):
    return pg.sql(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'",
                  dbname="postgres")[0][0]


def upstream_ssl(pg, app):
    """Whether the backend serving application_name app uses TLS (read as superuser: the
    session's own role may not see its pg_stat_ssl row once SET ROLE has run)."""
    return pg.sql("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                  f"WHERE a.application_name = '{app}'", dbname="postgres")


def test_upstream_session_runs_over_tls(tls_warden, pg):
    app = f"tls_{secrets.token_hex(4)}"
    with tls_warden.connect(dbname="tls_staging", application_name=app) as c:
        assert c.execute("SELECT current_user, current_setting('app.tenant_id')").fetchone() \
            == ("bookkeeper", "acme")
        assert upstream_ssl(pg, app) == [(True,)]
    with tls_warden.connect(dbname="staging", application_name=app) as c:  # the plain target stays plain
        c.execute("SELECT 1")
        assert upstream_ssl(pg, app) == [(False,)]


def test_large_transfers_over_tls(tls_warden):
    big = "z" * 2_000_000
    with tls_warden.connect(dbname="tls_staging") as c:
        got = c.execute("SELECT repeat('x', 3000000)").fetchone()[0]
        assert len(got) == 3000000 and hashlib.md5(got.encode()).digest() == hashlib.md5(b"x" * 3000000).digest()
        rows = c.execute("SELECT g, repeat('y', 100) FROM generate_series(1, 50000) g").fetchall()
        assert len(rows) == 50000 and rows[-1] == (50000, "y" * 100)
        assert c.execute("SELECT length(%s::text)", (big,)).fetchone() == (len(big),)
        with c.pipeline():
            curs = [c.execute("SELECT %s::int * 2", (i,)) for i in range(200)]
        assert [cur.fetchone()[0] for cur in curs] == [i * 2 for i in range(200)]


def test_copy_over_tls(tls_warden):
    with tls_warden.connect(dbname="tls_staging") as c:
        c.execute("CREATE TEMP TABLE tls_copy (n int, s text)")
        with c.cursor().copy("COPY tls_copy FROM STDIN") as cp:
            for i in range(20000):
                cp.write_row((i, f"row-{i}"))
        assert c.execute("SELECT count(*), sum(n) FROM tls_copy").fetchone() == (20000, sum(range(20000)))
        out = []
        with c.cursor().copy("COPY (SELECT n FROM tls_copy ORDER BY n) TO STDOUT") as cp:
            for row in cp.rows():
                out.append(int(row[0]))
        assert out == list(range(20000))


def test_cancel_and_close_over_tls(tls_warden, pg):
    app = f"tls_{secrets.token_hex(4)}"
    c = tls_warden.connect(dbname="tls_staging", application_name=app)
    assert backends(pg, app) == 0  # a login costs no backend (CONTRACT §7)
    c.execute("SELECT 1")  # the first statement borrows one and sets the client's application_name
    assert backends(pg, app) == 1
    timer = threading.Timer(0.5, c.cancel)
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(errors.QueryCanceled):
        c.execute("SELECT pg_sleep(10)")
    assert time.monotonic() - t0 < 5
    assert c.execute("SELECT 'after cancel'").fetchone() == ("after cancel",)
    c.close()
    # returned to the pool and reset: application_name is no longer the client's
    wait_for(lambda: backends(pg, app) == 0, what="the upstream backend to be reset after close")
    # A client that vanishes without Terminate: the backend goes too.
    c2 = tls_warden.connect(dbname="tls_staging", application_name=app)
    c2.execute("SELECT 1")
    # Cut the connection under psycopg without closing its descriptor (psycopg still owns it).
    socket.socket(fileno=os.dup(c2.pgconn.socket)).shutdown(socket.SHUT_RDWR)
    wait_for(lambda: backends(pg, app) == 0, what="the upstream backend to be released after the client vanished")
    with pytest.raises((psycopg.Error, OSError)):
        c2.execute("SELECT 1")



def test_idle_tls_upstream_sessions_memory(tls_warden):
    """What an idle session with a TLS upstream costs. libpq keeps the connection (it owns the
    SSL object) and builds an SSL_CTX per connection: about 87 kB each, against 3 kB for a plain
    upstream. The bound catches buffers that are never given back."""
    per_conn = tls_warden.idle_rss_per_session(lambda: tls_warden.connect(dbname="tls_staging"))
    print(f"pgwarden RSS per idle TLS-upstream session: {per_conn:.1f} kB")
    assert SANITIZED or per_conn < 128, f"{per_conn:.1f} kB per idle TLS-upstream session"
