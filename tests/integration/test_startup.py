"""test_startup.py - what a client sees while connecting (CONTRACT §3, §4): targets by dbname,
token authentication with one indistinguishable failure, the startup-parameter allowlist,
and client TLS. Almost all of it is pgwarden's own behaviour (marked `identity`).
"""
import subprocess

import psycopg
import pytest

from rawpg import RawConn, parse_error, rows_of, startup_packet
from warden import SANITIZED, token_line

pytestmark = pytest.mark.identity


def startup_result(w, params, password=None):
    """Send a startup packet, answer a cleartext password request with `password`, and return
    (error fields or None, ParameterStatus dict). An error must be followed by a close."""
    status = {}
    with RawConn(w.host, w.port) as c:
        c.send(startup_packet(params))
        while True:
            kind, body = c.read_msg()
            if kind == b"R":
                code = int.from_bytes(body[:4], "big")
                if code == 3:
                    c.send(b"p" + (len(password or "") + 5).to_bytes(4, "big")
                           + (password or "").encode() + b"\0")
                else:
                    assert code == 0, f"unexpected auth request {code}"
            elif kind == b"S":
                k, v = body.rstrip(b"\0").split(b"\0")
                status[k.decode()] = v.decode()
            elif kind == b"E":
                err = parse_error(body)
                closed, _ = c.wait_closed(5)
                assert closed, "connection must close after a startup error"
                return err, status
            elif kind == b"Z":
                return None, status


def visible(err):
    """The parts of an ErrorResponse a client sees (no source file/line)."""
    return {k: v for k, v in err.items() if k in "SVCMDH"}


# --- targets and authentication ------------------------------------------------------------

def test_unknown_dbname_is_3D000(pgwarden):
    err, _ = startup_result(pgwarden, {"user": "user:jimmie", "database": "nosuchtarget"},
                            pgwarden.tokens["user:jimmie"])
    assert err is not None and err["C"] == "3D000", err
    assert err["S"] == "FATAL"


def test_unknown_dbname_without_valid_token_is_28P01(pgwarden):
    """Target names cannot be probed without a token: an unknown dbname answers exactly what a
    wrong token for a real target answers (CONTRACT §4); only a valid token learns 3D000."""
    jimmie = pgwarden.tokens["user:jimmie"]
    cases = {
        "wrong token, real target": ({"user": "user:jimmie", "database": "prod"}, "wrong-" + jimmie),
        "wrong token, unknown target": ({"user": "user:jimmie", "database": "nosuchtarget"}, "wrong-" + jimmie),
        "unknown actor, unknown target": ({"user": "user:nobody", "database": "nosuchtarget"}, jimmie),
        "expired token, unknown target": ({"user": "user:expired", "database": "nosuch"},
                                          pgwarden.tokens["user:expired"]),
        "no password, unknown target": ({"user": "user:jimmie", "database": "nosuch"}, ""),
    }
    seen = {}
    for name, (params, pw) in cases.items():
        err, _ = startup_result(pgwarden, params, pw)
        assert err is not None, name
        seen[name] = visible(err)
    assert all(v == seen["wrong token, real target"] for v in seen.values()), seen
    assert seen["wrong token, real target"]["C"] == "28P01"


def test_missing_dbname_defaults_or_fails_cleanly(pgwarden):
    """No database parameter: PostgreSQL would use the user name (here no such target)."""
    err, _ = startup_result(pgwarden, {"user": "user:jimmie"}, pgwarden.tokens["user:jimmie"])
    assert err is not None and err["C"] in ("3D000", "28P01", "08P01"), err


def test_auth_failures_are_indistinguishable(pgwarden):
    jimmie = pgwarden.tokens["user:jimmie"]
    cases = {
        "wrong token": ({"user": "user:jimmie", "database": "prod"}, "wrong-" + jimmie),
        "unknown actor": ({"user": "user:nobody", "database": "prod"}, jimmie),
        "other actor's token": ({"user": "user:ada", "database": "prod"}, jimmie),
        "expired token": ({"user": "user:expired", "database": "prod"}, pgwarden.tokens["user:expired"]),
        "target not allowed": ({"user": "agent:tally", "database": "prod"}, pgwarden.tokens["agent:tally"]),
        "empty password": ({"user": "user:jimmie", "database": "prod"}, ""),
    }
    seen = {}
    for name, (params, pw) in cases.items():
        err, _ = startup_result(pgwarden, params, pw)
        assert err is not None, f"{name}: login succeeded"
        assert err["C"] == "28P01", (name, err)
        assert err["M"] == "authentication failed", (name, err)
        seen[name] = visible(err)
    first = next(iter(seen.values()))
    for name, v in seen.items():
        assert v == first, f"{name} answers differently: {v} vs {first}"


def test_wrong_token_with_psycopg(pgwarden):
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(pgwarden.dsn("user:jimmie", token="not-the-token"))
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(pgwarden.dsn("user:nobody", token="whatever"))


def test_token_rotation_both_records_work(pgwarden_factory):
    """An actor may have several sha256 records (rotation)."""
    w = pgwarden_factory(extra_tokens=[token_line("user:rot", "old-token-1", "bookkeeper", "acme"),
                                       token_line("user:rot", "new-token-2", "bookkeeper", "acme")])
    for tok in ("old-token-1", "new-token-2"):
        with psycopg.connect(w.dsn("user:rot", token=tok, dbname="prod")) as c:
            assert c.execute("SELECT current_setting('app.actor_id')").fetchone() == ("user:rot",)


def test_revoked_token_after_reload(pgwarden_factory):
    w = pgwarden_factory(extra_tokens=[token_line("user:temp", "temp-token", "bookkeeper", "acme")])
    with psycopg.connect(w.dsn("user:temp", token="temp-token")) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    w.extra_tokens = []
    w.reload()
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(w.dsn("user:temp", token="temp-token"))


def test_psql_login(pgwarden):
    p = subprocess.run(["psql", "-X", "-At", "-w", "-d", pgwarden.dsn(dbname="prod"),
                        "-c", "SELECT current_setting('app.actor_id')"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "user:jimmie"


# --- startup parameters ---------------------------------------------------------------------

@pytest.mark.parametrize("options,name", [
    ("-c role=postgres", "role"),
    ("-c app.tenant_id=globex", "app.tenant_id"),
    ("-c app.actor_id=user:ada", "app.actor_id"),
    ("-c session_authorization=postgres", "session_authorization"),
    ("-c default_transaction_read_only=off", "default_transaction_read_only"),
    ("-c search_path=public -c role=postgres", "role"),
    ("-crole=postgres", "role"),
    ("--role=postgres", "role"),
    ("-c App.Actor_Id=user:ada", "App.Actor_Id"),
    ("-c APP.TENANT_ID=globex", "APP.TENANT_ID"),
    ("-c transaction_read_only=off", "transaction_read_only"),
    ("-c default_transaction_read_only=on", "default_transaction_read_only"),
    ("-c standard_conforming_strings=off", "standard_conforming_strings"),
    ("-c standard_conforming_strings=on", "standard_conforming_strings"),
    ("-c backslash_quote=on", "backslash_quote"),
    ("-c session_replication_role=replica", "session_replication_role"),
    ("-c local_preload_libraries=auto_explain", "local_preload_libraries"),
    ("-c statement_timeout=5s -c client_min_messages=debug1 -c role=postgres", "role"),
    ("-c statement_timeout", "statement_timeout"),
    ("-x", "options"),
])
def test_forbidden_options_rejected(pgwarden, options, name):
    err, _ = startup_result(pgwarden, {"user": "user:jimmie", "database": "prod", "options": options},
                            pgwarden.tokens["user:jimmie"])
    assert err is not None, f"options {options!r} accepted"
    assert err["S"] == "FATAL" and err["C"] == "42501", err
    assert name in err["M"] or "options" in err["M"], f"message does not name the parameter: {err}"


def test_options_allow_what_set_allows(pgwarden):
    """options (JDBC ?options=) may set what a session may SET (issue 13): timeouts, planner and
    vacuum settings, custom non-pinned settings, plpgsql.*; the pinned identity is unaffected."""
    opts = ("-c statement_timeout=5s -c lock_timeout=2s -c work_mem=8MB -c enable_seqscan=off "
            "-c vacuum_cost_delay=1 -c app.request_id=req-7 -c plpgsql.variable_conflict=use_column "
            "--idle-in-transaction-session-timeout=60s")
    with pgwarden.connect(dbname="prod", options=opts) as c:
        assert c.execute("SHOW statement_timeout").fetchone() == ("5s",)
        assert c.execute("SHOW lock_timeout").fetchone() == ("2s",)
        assert c.execute("SHOW work_mem").fetchone() == ("8MB",)
        assert c.execute("SHOW enable_seqscan").fetchone() == ("off",)
        assert c.execute("SHOW idle_in_transaction_session_timeout").fetchone() == ("1min",)
        assert c.execute("SELECT current_setting('app.request_id')").fetchone() == ("req-7",)
        assert c.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert c.execute("SELECT current_user, current_setting('app.tenant_id')").fetchone() == \
            ("bookkeeper", "acme")


@pytest.mark.parametrize("param,value", [
    ("replication", "database"),
    ("replication", "true"),
    ("role", "postgres"),
    ("app.tenant_id", "globex"),
    ("session_authorization", "postgres"),
    ("default_transaction_read_only", "off"),
    ("_pq_.something", "1"),
])
def test_forbidden_startup_parameters_rejected(pgwarden, param, value):
    err, _ = startup_result(pgwarden, {"user": "user:jimmie", "database": "prod", param: value},
                            pgwarden.tokens["user:jimmie"])
    assert err is not None, f"startup parameter {param} accepted"
    assert err["S"] == "FATAL" and err["C"] == "42501", err
    assert param in err["M"], f"message does not name {param}: {err}"


def test_allowlisted_startup_parameters_honoured(pgwarden):
    with pgwarden.connect(dbname="prod", application_name="pgw-startup",
                          options="-c search_path=public,billing -c TimeZone=Asia/Tokyo "
                                  "-c extra_float_digits=2") as c:
        assert c.execute("SHOW application_name").fetchone() == ("pgw-startup",)
        # PostgreSQL keeps a startup value as written, SET normalises it: compare without spaces
        assert c.execute("SHOW search_path").fetchone()[0].replace(" ", "") == "public,billing"
        assert c.execute("SHOW TimeZone").fetchone() == ("Asia/Tokyo",)
        assert c.execute("SHOW extra_float_digits").fetchone() == ("2",)
        # the pinned identity is unaffected
        assert c.execute("SELECT current_user, current_setting('app.tenant_id')").fetchone() == \
            ("bookkeeper", "acme")
    params = {"user": "user:jimmie", "database": "prod", "DateStyle": "German, DMY",
              "IntervalStyle": "iso_8601", "client_encoding": "LATIN1", "TimeZone": "UTC"}
    err, status = startup_result(pgwarden, params, pgwarden.tokens["user:jimmie"])
    assert err is None, err
    assert status.get("DateStyle") == "German, DMY"
    assert status.get("IntervalStyle") == "iso_8601"
    assert status.get("client_encoding") == "LATIN1"
    assert status.get("TimeZone") == "UTC"
    assert status.get("session_authorization") == "pgwarden_svc"


def test_backend_key_data_and_parameter_status_sent(pgwarden):
    params, pw = pgwarden.raw_login()
    with RawConn(pgwarden.host, pgwarden.port) as c:
        msgs = c.login(params, pw)
        kinds = [k for k, _ in msgs]
        assert b"K" in kinds, "BackendKeyData needed for cancel"
        assert kinds[-1] == b"Z"
        names = {b.split(b"\0")[0].decode() for k, b in msgs if k == b"S"}
        assert {"server_version", "client_encoding", "standard_conforming_strings",
                "integer_datetimes"} <= names
        assert rows_of(c.simple("SELECT 1")) == [("1",)]


# --- client TLS ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(d / "server.key"),
                    "-out", str(d / "server.crt")], check=True, capture_output=True)
    return d / "server.crt", d / "server.key"


def tls_config(tls_files, client_tls="allow", plaintext_auth="no"):
    crt, key = tls_files
    return (f"tls_cert_file = {crt}\ntls_key_file = {key}\nclient_tls = {client_tls}\n"
            f"plaintext_auth = {plaintext_auth}\n")


def test_tls_login_and_query(pgwarden_factory, tls_files):
    w = pgwarden_factory(extra_config=tls_config(tls_files, plaintext_auth="yes"))
    with psycopg.connect(w.dsn(dbname="prod", sslmode="require")) as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("SELECT count(*) FROM invoices").fetchone() == (3,)
        big = c.execute("SELECT repeat('z', 2000000)").fetchone()[0]
        assert len(big) == 2000000


def test_idle_tls_sessions_give_buffers_back(pgwarden_factory, tls_files):
    """An idle client TLS session holds no 16 kB record buffers (SSL_MODE_RELEASE_BUFFERS):
    about 21 kB of RSS each, 35 kB without."""
    # each client runs a query, so in session pooling each holds a connection: room for all 100
    w = pgwarden_factory(extra_config=tls_config(tls_files, plaintext_auth="yes"), target_config="pool_size = 150")
    per_conn = w.idle_rss_per_session(lambda: psycopg.connect(w.dsn(sslmode="require")))
    print(f"pgwarden RSS per idle client-TLS session: {per_conn:.1f} kB")
    assert SANITIZED or per_conn < 32, f"{per_conn:.1f} kB per idle TLS session"


def test_plaintext_auth_no_needs_tls(pgwarden_factory, tls_files):
    """plaintext_auth = no: a cleartext token only travels inside TLS."""
    w = pgwarden_factory(extra_config=tls_config(tls_files, plaintext_auth="no"))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(w.dsn(sslmode="disable"))
    with psycopg.connect(w.dsn(sslmode="require")) as c:
        assert c.execute("SELECT current_user").fetchone() == ("bookkeeper",)


def test_tls_ssl_request_then_plaintext_closed(pgwarden_factory, tls_files):
    """With TLS on, pgwarden answers 'S'; plaintext bytes that came with the SSLRequest
    must be refused, not read as if they were inside TLS (CVE-2021-23214)."""
    w = pgwarden_factory(extra_config=tls_config(tls_files))
    params, _ = w.raw_login()
    with RawConn(w.host, w.port) as c:
        c.send((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big") + startup_packet(params))
        assert c.read_byte() == b"S"
        closed, _ = c.wait_closed(5)
        assert closed


def test_tls_require_refuses_plaintext(pgwarden_factory, tls_files):
    w = pgwarden_factory(extra_config=tls_config(tls_files, client_tls="require", plaintext_auth="yes"))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(w.dsn(sslmode="disable"))
    with psycopg.connect(w.dsn(sslmode="require")) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


# --- tokens made by the CLI (CONTRACT §1 `token new`, §3) -----------------------------------

def token_new(*args):
    from warden import PGWARDEN
    p = subprocess.run([str(PGWARDEN), "token", "new", *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 2, p.stdout
    return lines[0], lines[1]


def test_cli_tokens_sha256_and_scram(pgwarden_factory):
    sha_tok, sha_line = token_new("--actor", "user:cli", "--role", "bookkeeper", "--tenant", "globex")
    scram_tok, scram_line = token_new("--actor", "agent:scram", "--role", "agent_rw", "--tenant", "acme",
                                      "--scram")
    assert sha_line.startswith("sha256:") and "user:cli" in sha_line
    assert scram_line.startswith("SCRAM-SHA-256$") and sha_tok not in sha_line and scram_tok not in scram_line
    w = pgwarden_factory(extra_tokens=[sha_line, scram_line])
    with psycopg.connect(w.dsn("user:cli", token=sha_tok, dbname="prod")) as c:
        assert c.execute("SELECT tenant FROM invoices LIMIT 1").fetchone() == ("globex",)
    # libpq answers the SCRAM exchange itself
    with psycopg.connect(w.dsn("agent:scram", token=scram_tok, dbname="staging")) as c:
        assert c.execute("SELECT current_user, current_setting('app.tenant_id')").fetchone() == \
            ("agent_rw", "acme")
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(w.dsn("agent:scram", token=scram_tok + "x", dbname="staging"))


def test_cli_token_expires_and_targets(pgwarden_factory):
    tok, line = token_new("--actor", "user:limited", "--role", "bookkeeper", "--tenant", "acme",
                          "--expires", "2099-01-01T00:00:00Z", "--targets", "staging")
    assert line.endswith(" expires=2099-01-01T00:00:00Z targets=staging"), line
    w = pgwarden_factory(extra_tokens=[line])
    with psycopg.connect(w.dsn("user:limited", token=tok, dbname="staging")) as c:
        assert c.execute("SELECT current_user").fetchone() == ("bookkeeper",)
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(w.dsn("user:limited", token=tok, dbname="prod"))  # not one of its targets


def test_cli_token_new_refuses_bad_records(pgwarden):
    from warden import PGWARDEN

    def refused(*args):
        p = subprocess.run([str(PGWARDEN), "token", "new", "--actor", "user:x", *args], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 1 and p.stdout == "", (args, p.stdout)  # no token printed
        return p.stderr

    for role in ("anon", "GUEST", "public"):
        assert "protected role" in refused("--role", role)
    assert "not an RFC 3339 time" in refused("--role", "bookkeeper", "--expires", "tomorrow")
    assert "in the past" in refused("--role", "bookkeeper", "--expires", "2020-01-01T00:00:00Z")
    assert "comma list" in refused("--role", "bookkeeper", "--targets", "a,,b")
    # with -c, the config's targets and protected_roles are the reference
    cfg = str(pgwarden.config_path)
    assert 'no target "nosuch"' in refused("--role", "bookkeeper", "--targets", "prod,nosuch", "-c", cfg)


def test_failed_set_role_is_reported_as_such(pgwarden_factory):
    """A token whose role the login role cannot enter: the client is told that, with the server's
    SQLSTATE, not 'could not connect to target'."""
    w = pgwarden_factory(extra_tokens=[token_line("user:norole", "norole-token", "no_such_role_x", "acme"),
                                       token_line("user:notmember", "nm-token", "postgres", "acme")])
    # A login costs no backend (CONTRACT §7): the pin of the first statement's borrow is refused.
    with psycopg.connect(w.dsn("user:norole", token="norole-token", dbname="staging")) as c:
        with pytest.raises(psycopg.Error) as ei:
            c.execute("SELECT 1")
    msg = str(ei.value)
    assert "could not pin the session's identity" in msg and "no_such_role_x" in msg, msg
    assert "could not connect" not in msg
    with psycopg.connect(w.dsn("user:notmember", token="nm-token", dbname="staging")) as c:
        with pytest.raises(psycopg.Error) as ei:
            c.execute("SELECT 1")
    # FATAL with the server's SQLSTATE (42501); psycopg reports it as the connection's end
    assert "permission denied to set role" in str(ei.value), ei.value


def test_unknown_dbname_with_scram_token(pgwarden_factory):
    """SCRAM records too: the exchange runs to its end before the target is looked at."""
    tok, line = token_new("--actor", "agent:scram2", "--role", "agent_rw", "--tenant", "acme", "--scram")
    w = pgwarden_factory(extra_tokens=[line])
    with pytest.raises(psycopg.OperationalError) as ei:
        psycopg.connect(w.dsn("agent:scram2", token=tok, dbname="nosuch_scram"))
    assert 'database "nosuch_scram" does not exist' in str(ei.value)
    for actor, token in (("agent:scram2", tok + "x"), ("agent:nobody", tok)):
        with pytest.raises(psycopg.OperationalError) as ei:
            psycopg.connect(w.dsn(actor, token=token, dbname="nosuch_scram"))
        assert "authentication failed" in str(ei.value) and "nosuch_scram" not in str(ei.value)


def test_unknown_dbname_failure_takes_as_long_as_a_real_one(pgwarden_factory):
    """Timing tells nothing either: a wrong token for an unknown target runs the same exchange
    as for a real target (interleaved medians, each attempt from its own address and actor so
    the failure back-off does not apply)."""
    import statistics
    from ops_util import try_login
    w = pgwarden_factory()
    times = {"prod": [], "nosuch_target": []}
    for i in range(16):
        for db in times:
            res = try_login(w.host, w.port, f"127.0.{10 + i}.{1 if db == 'prod' else 2}", f"user:probe{i}{db}",
                            "wrong-token", database=db, timeout=5)
            assert res[0] == "error" and res[2]["C"] == "28P01", res
            times[db].append(res[1])
    known, unknown = statistics.median(times["prod"]), statistics.median(times["nosuch_target"])
    assert unknown <= 2 * known + 0.005 and known <= 2 * unknown + 0.005, (known, unknown)
