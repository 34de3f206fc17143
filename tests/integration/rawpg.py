"""rawpg.py - a minimal PostgreSQL v3 wire-protocol client on a plain socket.

No library between the test and the bytes: it builds frames with struct, can send
them whole, split or coalesced, and reads backend messages with a timeout. Only
trust and cleartext-password authentication (what pgwarden asks of clients with
plaintext_auth = yes, and what the superuser gets directly).
"""
import socket
import struct
import time

PROTOCOL_V3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


def startup_packet(params):
    body = struct.pack("!I", PROTOCOL_V3)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def msg(kind, body=b""):
    """A typed frontend message: kind byte, int32 length (self-inclusive), body."""
    return kind + struct.pack("!I", len(body) + 4) + body


def query(sql):
    return msg(b"Q", sql.encode() + b"\0")


def password(pw):
    return msg(b"p", pw.encode() + b"\0")


def terminate():
    return msg(b"X")


# Extended-protocol messages with no parameters and text results (what the protocol tests send).
def parse(name, sql):
    return msg(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))


def bind(portal, stmt):
    return msg(b"B", portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!HHH", 0, 0, 0))


def execute(portal=""):
    return msg(b"E", portal.encode() + b"\0" + struct.pack("!I", 0))


def close(what, name):
    """Close of a statement (what=b"S") or portal (b"P")."""
    return msg(b"C", what + name.encode() + b"\0")


def sync():
    return msg(b"S")


def parse_error(body):
    """ErrorResponse/NoticeResponse fields as a dict keyed by the field letter."""
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


class Closed(Exception):
    """The server closed the connection."""


class RawConn:
    def __init__(self, host, port, timeout=10, rcvbuf=None):
        if rcvbuf:
            # set before connect so the TCP window is small from the start
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n, timeout):
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed()
            self.buf += chunk

    def read_byte(self, timeout=10):
        """One raw byte (the answer to SSLRequest/GSSENCRequest)."""
        self._fill(1, timeout)
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def read_msg(self, timeout=10):
        """(kind, body) of the next backend message. Raises Closed on EOF."""
        self._fill(5, timeout)
        kind = self.buf[:1]
        (length,) = struct.unpack("!I", self.buf[1:5])
        self._fill(1 + length, timeout)
        body = self.buf[5:1 + length]
        self.buf = self.buf[1 + length:]
        return kind, body

    def read_until_ready(self, timeout=10):
        """All messages up to and including ReadyForQuery."""
        out = []
        while True:
            m = self.read_msg(timeout)
            out.append(m)
            if m[0] == b"Z":
                return out

    def login(self, params, pw):
        """Startup + auth (trust or cleartext) up to the first ReadyForQuery. Returns messages."""
        self.send(startup_packet(params))
        out = []
        while True:
            kind, body = self.read_msg()
            out.append((kind, body))
            if kind == b"R":
                (code,) = struct.unpack("!I", body[:4])
                if code == 3:
                    self.send(password(pw))
                elif code != 0:
                    raise AssertionError(f"unsupported auth request {code}")
            elif kind == b"E":
                raise AssertionError(f"login failed: {parse_error(body)}")
            elif kind == b"Z":
                return out

    def simple(self, sql, timeout=10):
        self.send(query(sql))
        return self.read_until_ready(timeout)

    def wait_closed(self, timeout):
        """True if the server closes within timeout (any data read on the way is dropped
        except an ErrorResponse, which is returned as the second element)."""
        deadline = time.monotonic() + timeout
        err = None
        while time.monotonic() < deadline:
            try:
                kind, body = self.read_msg(timeout=max(0.05, deadline - time.monotonic()))
                if kind == b"E":
                    err = parse_error(body)
            except Closed:
                return True, err
            except (socket.timeout, TimeoutError):
                return False, err
            except ConnectionResetError:
                return True, err
        return False, err


def rows_of(messages):
    """Decoded text values of the DataRows in a message list."""
    rows = []
    for kind, body in messages:
        if kind != b"D":
            continue
        (n,) = struct.unpack("!H", body[:2])
        pos, row = 2, []
        for _ in range(n):
            (ln,) = struct.unpack("!i", body[pos:pos + 4])
            pos += 4
            if ln < 0:
                row.append(None)
            else:
                row.append(body[pos:pos + ln].decode())
                pos += ln
        rows.append(tuple(row))
    return rows


def errors_of(messages):
    return [parse_error(b) for k, b in messages if k == b"E"]


def login(w, dbname="prod"):
    """A RawConn logged in to pgwarden w (its raw_login actor) on target dbname."""
    params, pw = w.raw_login(dbname)
    c = RawConn(w.host, w.port)
    c.login(params, pw)
    return c


def sqlstates(msgs):
    """The SQLSTATE of every ErrorResponse among msgs, in order."""
    return [e.get("C") for e in errors_of(msgs)]
