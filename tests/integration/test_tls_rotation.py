"""test_tls_rotation.py - client TLS certificate rotation on SIGHUP (issue 13): new handshakes get
the new certificate, live TLS sessions keep theirs and go on, and a bad new certificate or key is
rejected with the reload (logged), the old one staying in force."""
import signal
import socket
import ssl
import struct
import subprocess

import psycopg
import pytest

from audit_util import wait_for
from ops_util import http_get, metric, parse_metrics
from pgserver import free_port

pytestmark = pytest.mark.identity


def make_cert(d, cn):
    crt, key = d / f"{cn}.crt", d / f"{cn}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    return crt.read_bytes(), key.read_bytes()


def served_cert(w):
    """DER of the certificate a new TLS handshake with pgwarden gets."""
    with socket.create_connection((w.host, w.port), timeout=5) as raw:
        raw.sendall(struct.pack("!II", 8, 80877103))  # SSLRequest
        assert raw.recv(1) == b"S"
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            return t.getpeercert(binary_form=True)


def der(pem):
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def test_sighup_rotates_certificate_without_dropping_sessions(pgwarden_factory, tmp_path):
    a_crt, a_key = make_cert(tmp_path, "alpha")
    b_crt, b_key = make_cert(tmp_path, "beta")
    crt, key = tmp_path / "server.crt", tmp_path / "server.key"
    crt.write_bytes(a_crt)
    key.write_bytes(a_key)
    from warden import PGWARDEN
    out = subprocess.run([str(PGWARDEN), "token", "new", "--actor", "agent:plus", "--role", "agent_rw", "--tenant",
                          "acme", "--scram"], capture_output=True, text=True, check=True).stdout.splitlines()
    port = free_port()
    w = pgwarden_factory(extra_tokens=[out[1]], extra_config=f"admin_listen = 127.0.0.1:{port}\ntls_cert_file = {crt}\n"
                                      f"tls_key_file = {key}\nclient_tls = require\n")
    assert served_cert(w) == der(a_crt)
    live = psycopg.connect(w.dsn(sslmode="require"), autocommit=True)
    try:
        assert live.execute("SELECT 1").fetchone() == (1,)
        crt.write_bytes(b_crt)
        key.write_bytes(b_key)
        w.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: served_cert(w) == der(b_crt), what="the new certificate")
        assert live.execute("SELECT 2").fetchone() == (2,)  # the live session keeps its TLS session
        # SCRAM-SHA-256-PLUS binds to the certificate this connection was served: the new one
        with psycopg.connect(w.dsn("agent:plus", token=out[0], sslmode="require", channel_binding="require")) as c:
            assert c.execute("SELECT 3").fetchone() == (3,)
        # a key that does not match the certificate: the reload is rejected, B stays
        key.write_bytes(a_key)
        w.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload rejected: the TLS certificate or key cannot be used" in w.stderr_text(100),
                 what="rejection logged")
        assert served_cert(w) == der(b_crt)
        samples = parse_metrics(http_get(port, "/metrics")[2])[0]
        assert metric(samples, "pgwarden_reloads_total", result="rejected") == 1
        assert metric(samples, "pgwarden_last_reload_success") == 0
        # garbage instead of a certificate: rejected as well
        key.write_bytes(b_key)
        crt.write_bytes(b"not a certificate\n")
        w.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: metric(parse_metrics(http_get(port, "/metrics")[2])[0], "pgwarden_reloads_total",
                                result="rejected") == 2, what="second rejection")
        assert served_cert(w) == der(b_crt)
        assert live.execute("SELECT 4").fetchone() == (4,)
        with psycopg.connect(w.dsn(sslmode="require")) as c:
            assert c.execute("SELECT 5").fetchone() == (5,)
    finally:
        live.close()
