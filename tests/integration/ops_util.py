"""ops_util.py - helpers for the operations tests: the admin HTTP endpoints, a Prometheus
text-format parser, raw logins from a chosen loopback source address, and config editing."""
import re
import socket
import struct
import time
import urllib.error
import urllib.request

from rawpg import Closed, RawConn, parse_error, password, startup_packet

METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def http_get(port, path, timeout=5):
    """(status, content type, body text) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def parse_metrics(text):
    """Prometheus text format -> ({(name, ((label, value), ...)): float}, {name: type}).
    Fails on any line that is neither a comment nor a well-formed sample."""
    samples, types = {}, {}
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), line
                types[parts[2]] = parts[3]
            continue
        m = METRIC_LINE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = tuple(sorted(LABEL.findall(m.group(3) or "")))
        key = (m.group(1), labels)
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = float(m.group(4))
    return samples, types


def metric(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class SourceConn(RawConn):
    """RawConn whose socket is bound to a chosen source address (loopback has all 127/8)."""

    def __init__(self, host, port, source, timeout=10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""


def try_login(host, port, source, user, token, database="staging", timeout=10):
    """Startup + cleartext password from `source`. Returns ("ok", secs), ("error", secs, fields),
    ("closed", secs) or ("timeout", secs)."""
    t0 = time.monotonic()
    try:
        with SourceConn(host, port, source, timeout) as c:
            c.send(startup_packet({"user": user, "database": database}))
            while True:
                kind, body = c.read_msg(timeout)
                if kind == b"R" and struct.unpack("!I", body[:4])[0] == 3:
                    c.send(password(token))
                elif kind == b"E":
                    return "error", time.monotonic() - t0, parse_error(body)
                elif kind == b"Z":
                    return "ok", time.monotonic() - t0
    except (Closed, ConnectionResetError, BrokenPipeError):
        return "closed", time.monotonic() - t0
    except (socket.timeout, TimeoutError):
        return "timeout", time.monotonic() - t0


def line_of(path, needle):
    """1-based number of the first line of a file containing needle."""
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")
