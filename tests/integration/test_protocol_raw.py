"""test_protocol_raw.py - the wire protocol at byte level, with no client library in the way:
bad frames, odd packet boundaries, the SSL/GSS negotiation traps, timeouts, many
connections, clients that vanish or read slowly. The rule under test: bad input costs one
connection, never the process (the `pgwarden` fixture fails a test that kills it).

Tests marked `identity` check pgwarden-specific answers (PostgreSQL itself answers some of
these differently, e.g. it closes without an ErrorResponse); the rest also pass direct.
"""
import secrets
import socket
import struct
import threading
import time

import pytest

from rawpg import (CANCEL_REQUEST, GSSENC_REQUEST, SSL_REQUEST, Closed, RawConn, errors_of,
                   msg, parse_error, query, rows_of, startup_packet, terminate)
from warden import SANITIZED


def login(w, dbname="staging", **kw):
    params, pw = w.raw_login(dbname)
    c = RawConn(w.host, w.port, **kw)
    c.login(params, pw)
    return c


def still_serves(w):
    """A fresh session still gets an answer."""
    with login(w) as c:
        assert rows_of(c.simple("SELECT 'still here'")) == [("still here",)]


def backend_count(pg, tag):
    return pg.sql(f"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{tag}%' "
                  "AND pid <> pg_backend_pid()")[0][0]


def wait_for(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


# --- framing ----------------------------------------------------------------------------

BAD_FRAMES = {
    "length-3": b"Q" + struct.pack("!I", 3),
    "length-0": b"Q" + struct.pack("!I", 0),
    "length-negative": b"Q" + struct.pack("!I", 0x80000000),
    "oversized": b"Q" + struct.pack("!I", 0x7FFFFFF0) + b"SELECT 1",
    "unknown-type": msg(b"\x01", b"junk"),
}


def test_query_without_nul_is_an_error(pgwarden):
    """Framing is fine but the body is malformed: PostgreSQL answers 08P01 and goes on;
    pgwarden may do the same or close the connection, but must not forward it."""
    with login(pgwarden) as c:
        c.send(msg(b"Q", b"SELECT 1"))
        try:
            msgs = c.read_until_ready(5)
        except Closed:
            msgs = None
        if msgs is not None:
            assert [e["C"] for e in errors_of(msgs)] == ["08P01"], msgs
            assert not rows_of(msgs)
            assert rows_of(c.simple("SELECT 2")) == [("2",)]
    still_serves(pgwarden)


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_malformed_frame_closes_connection(pgwarden, name):
    rss0 = pgwarden.rss_kb() if pgwarden.pid else None
    with login(pgwarden) as c:
        c.send(BAD_FRAMES[name])
        closed, err = c.wait_closed(5)
        assert closed, "connection should be closed after a malformed frame"
        if not pgwarden.direct:
            # pgwarden says why (PostgreSQL only logs it for length errors)
            assert err is not None and err["C"] == "08P01", err
    if rss0 is not None:
        assert pgwarden.rss_kb() - rss0 < 20_000, "a bad length must not be allocated"
    still_serves(pgwarden)


@pytest.mark.identity
def test_oversized_startup_packet(pgwarden):
    with RawConn(pgwarden.host, pgwarden.port) as c:
        c.send(struct.pack("!II", 0x7FFFFFF0, 196608) + b"user\0x\0")
        assert c.wait_closed(5)[0]
    still_serves(pgwarden)


@pytest.mark.parametrize("packet", [
    struct.pack("!I", 2),                                     # length < 4
    struct.pack("!II", 8, 0x00020000),                        # protocol 2.0
    struct.pack("!II", 16, 196608) + b"user\0x\0\0\0",        # length disagrees with contents
    struct.pack("!II", 9, 196608) + b"\0",                    # no user
], ids=["short", "proto2", "garbled", "no-user"])
def test_bad_startup_packet(pgwarden, packet):
    with RawConn(pgwarden.host, pgwarden.port) as c:
        c.send(packet)
        closed, _ = c.wait_closed(5)
        assert closed
    still_serves(pgwarden)


def test_split_messages_one_byte_at_a_time(pgwarden):
    params, pw = pgwarden.raw_login()
    with RawConn(pgwarden.host, pgwarden.port) as c:
        for b in startup_packet(params):   # even the startup packet arrives byte by byte
            c.send(bytes([b]))
            time.sleep(0.001)
        while True:
            kind, body = c.read_msg()
            if kind == b"R" and struct.unpack("!I", body[:4])[0] == 3:
                data = msg(b"p", pw.encode() + b"\0")
                for i in range(len(data)):
                    c.send(data[i:i + 1])
            elif kind == b"Z":
                break
            assert kind != b"E", parse_error(body)
        for b in query("SELECT 'split', 42"):
            c.send(bytes([b]))
            time.sleep(0.002)
        assert rows_of(c.read_until_ready()) == [("split", "42")]


def extended_batch(sql, params):
    """Parse/Bind/Describe/Execute/Sync for an unnamed statement with text parameters."""
    parse = msg(b"P", b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))
    bind = struct.pack("!H", 0) + struct.pack("!H", len(params))
    for p in params:
        bind += struct.pack("!I", len(p)) + p.encode()
    bind = msg(b"B", b"\0\0" + bind + struct.pack("!H", 0))
    return parse + bind + msg(b"D", b"P\0") + msg(b"E", b"\0" + struct.pack("!I", 0)) + msg(b"S")


def test_split_extended_messages_odd_boundaries(pgwarden):
    with login(pgwarden) as c:
        data = extended_batch("SELECT $1::int + $2::int", ["40", "2"])
        for i in range(0, len(data), 3):
            c.send(data[i:i + 3])
            time.sleep(0.002)
        assert rows_of(c.read_until_ready()) == [("42",)]


@pytest.mark.parametrize("kb", [1100, 2048, 4096])
def test_large_bind_message(pgwarden, kb):
    """A Bind larger than the proxy's relay high-water mark, followed by Describe/Execute/Sync
    in the same stream: the client must be read again once the upstream drains."""
    big = "y" * (kb << 10)
    with login(pgwarden) as c:
        sender = threading.Thread(target=c.send, args=(extended_batch("SELECT length($1::text)", [big]),))
        sender.start()
        try:
            assert rows_of(c.read_until_ready(20)) == [(str(len(big)),)]
        finally:
            sender.join(20)


def test_coalesced_messages(pgwarden):
    with login(pgwarden) as c:
        c.send(query("SELECT 1") + query("SELECT 2; SELECT 3") + query("SELECT 4"))
        got = []
        for _ in range(3):
            got += rows_of(c.read_until_ready())
        assert got == [("1",), ("2",), ("3",), ("4",)]
        # extended batches, a Query, and Terminate in one segment
        c.send(extended_batch("SELECT $1::text", ["a"]) + extended_batch("SELECT $1::text", ["b"])
               + query("SELECT 'c'") + terminate())
        got = []
        for _ in range(3):
            got += rows_of(c.read_until_ready())
        assert got == [("a",), ("b",), ("c",)]
        assert c.wait_closed(5)[0]


def test_error_in_coalesced_batch(pgwarden):
    with login(pgwarden) as c:
        c.send(query("SELECT 1/0") + query("SELECT 'next'"))
        first = c.read_until_ready()
        assert errors_of(first)[0]["C"] == "22012"
        assert rows_of(c.read_until_ready()) == [("next",)]


# --- negotiation ------------------------------------------------------------------------

def test_ssl_request_then_plaintext_in_same_packet(pgwarden):
    """CVE-2021-23214 class: bytes that arrive with the SSLRequest, before any TLS handshake,
    must not be processed as if they came over TLS (or at all)."""
    params, pw = pgwarden.raw_login()
    with RawConn(pgwarden.host, pgwarden.port) as c:
        c.send(struct.pack("!II", 8, SSL_REQUEST) + startup_packet(params))
        assert c.read_byte() in (b"N", b"S")
        closed, _ = c.wait_closed(5)
        assert closed
    still_serves(pgwarden)


def test_ssl_request_refused_then_plaintext_startup(pgwarden):
    """What libpq sslmode=prefer does against a server without TLS: SSLRequest, 'N', startup."""
    params, pw = pgwarden.raw_login()
    with RawConn(pgwarden.host, pgwarden.port) as c:
        c.send(struct.pack("!II", 8, SSL_REQUEST))
        assert c.read_byte() == b"N"
        c.login(params, pw)
        assert rows_of(c.simple("SELECT 5")) == [("5",)]


@pytest.mark.identity
def test_gssenc_request_answered_n(pgwarden):
    params, pw = pgwarden.raw_login()
    with RawConn(pgwarden.host, pgwarden.port) as c:
        c.send(struct.pack("!II", 8, GSSENC_REQUEST))
        assert c.read_byte() == b"N"
        c.login(params, pw)
        assert rows_of(c.simple("SELECT 6")) == [("6",)]


def test_bogus_cancel_request_is_harmless(pgwarden):
    with login(pgwarden) as busy:
        busy.send(query("SELECT pg_sleep(0.5), 'not cancelled'"))
        with RawConn(pgwarden.host, pgwarden.port) as c:
            c.send(struct.pack("!IIII", 16, CANCEL_REQUEST, 12345, 67890))
            assert c.wait_closed(5)[0]
        msgs = busy.read_until_ready()
        assert not errors_of(msgs)
        assert rows_of(msgs)[0][1] == "not cancelled"


@pytest.mark.identity
def test_startup_that_never_completes_times_out(pgwarden):
    """auth_timeout (2 s in the test config) closes connections that stall at any point of
    the startup: nothing sent, half a packet, or no answer to the password request."""
    params, pw = pgwarden.raw_login()
    silent = RawConn(pgwarden.host, pgwarden.port)
    half = RawConn(pgwarden.host, pgwarden.port)
    half.send(startup_packet(params)[:10])
    no_pw = RawConn(pgwarden.host, pgwarden.port)
    no_pw.send(startup_packet(params))
    kind, _ = no_pw.read_msg()
    assert kind == b"R"
    start = time.monotonic()
    try:
        for c in (silent, half, no_pw):
            closed, _ = c.wait_closed(pgwarden.auth_timeout + 4 - (time.monotonic() - start))
            assert closed, "startup that never completes must be closed after auth_timeout"
        assert time.monotonic() - start < pgwarden.auth_timeout + 4
    finally:
        for c in (silent, half, no_pw):
            c.close()
    still_serves(pgwarden)


# --- load and misbehaving clients ---------------------------------------------------------

def test_many_idle_connections(pgwarden):
    conns = []
    unauth = []
    rss0 = pgwarden.rss_kb() if pgwarden.pid else None
    try:
        for _ in range(200):
            conns.append(login(pgwarden))
        if rss0 is not None:
            # PgBouncer needs about 1 kB; pgwarden about 3.5 kB (21 kB while every session kept
            # its libpq connection and buffers). The bound catches that coming back.
            per_conn = (pgwarden.rss_kb() - rss0) / 200
            print(f"pgwarden RSS per idle session: {per_conn:.1f} kB")
            assert SANITIZED or per_conn < 8, f"{per_conn:.1f} kB per idle session"
        for _ in range(50):  # and some that never send anything
            unauth.append(socket.create_connection((pgwarden.host, pgwarden.port), timeout=5))
        still_serves(pgwarden)
        # every idle session is still alive and independent
        for i in (0, 99, 199):
            assert rows_of(conns[i].simple(f"SELECT {i}")) == [(str(i),)]
    finally:
        for c in conns:
            c.close()
        for s in unauth:
            s.close()


def test_client_vanishes_mid_query(pgwarden, pg):
    """The client closes its socket during a long query: the upstream backend must go away
    soon (not after the query ends), and the proxy must survive."""
    tag = f"vanish_{secrets.token_hex(4)}"
    params, pw = pgwarden.raw_login()
    if pgwarden.direct:
        # PostgreSQL alone notices a vanished client mid-query only with this setting
        params["options"] = "-c client_connection_check_interval=200"
    c = RawConn(pgwarden.host, pgwarden.port)
    c.login(params, pw)
    c.send(query(f"SELECT pg_sleep(60) /* {tag} */"))
    assert wait_for(lambda: backend_count(pg, tag) == 1, 5), "query did not start upstream"
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    c.close()
    assert wait_for(lambda: backend_count(pg, tag) == 0, 5), \
        "upstream backend still running 5 s after the client vanished"
    still_serves(pgwarden)


def test_client_vanishes_idle_in_transaction(pgwarden, pg):
    tag = f"idletx_{secrets.token_hex(4)}"
    c = login(pgwarden)
    c.simple("BEGIN")
    c.simple(f"SELECT 1 /* {tag} */")
    assert backend_count(pg, tag) == 1
    c.close()
    assert wait_for(lambda: backend_count(pg, tag) == 0, 5)


def test_slow_reader_memory_bounded(pgwarden):
    """~125 MB result read by a client that first stalls, then reads slowly: the proxy must
    apply backpressure (stop reading upstream) instead of buffering the result."""
    n = 2_000_000
    c = login(pgwarden, rcvbuf=65536)
    try:
        rss0 = pgwarden.rss_kb() if pgwarden.pid else None
        c.send(query(f"SELECT i, repeat('x', 40) FROM generate_series(1, {n}) i"))
        peak = rss0
        for _ in range(12):  # stall 3 s: PostgreSQL could produce it all by now
            time.sleep(0.25)
            if rss0 is not None:
                peak = max(peak, pgwarden.rss_kb())
        # now read, throttled, only looking at the tail for CommandComplete + ReadyForQuery
        c.sock.settimeout(30)
        tail = b""
        total = 0
        reads = 0
        while not (tail.endswith(b"Z\0\0\0\x05I") and b"SELECT %d\0" % n in tail):
            chunk = c.sock.recv(262144)
            if not chunk:
                raise Closed()
            total += len(chunk)
            tail = (tail + chunk)[-64:]
            reads += 1
            if reads % 16 == 0:
                time.sleep(0.01)
                if rss0 is not None:
                    peak = max(peak, pgwarden.rss_kb())
        assert total > n * 60
        if rss0 is not None:
            grew = peak - rss0
            print(f"pgwarden RSS growth during slow read: {grew} kB")
            assert SANITIZED or grew < 48_000, f"proxy RSS grew by {grew} kB for a slow reader"
        assert rows_of(c.simple("SELECT 'done'")) == [("done",)]
    finally:
        c.close()


def test_concurrent_raw_clients(pgwarden):
    errs = []

    def worker(i):
        try:
            with login(pgwarden) as c:
                for j in range(20):
                    assert rows_of(c.simple(f"SELECT {i} * 100 + {j}")) == [(str(i * 100 + j),)]
        except Exception as e:  # noqa: BLE001 - collected and re-raised below
            errs.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errs, errs
