"""pgserver.py - a throwaway PostgreSQL 15 cluster for the integration tests.

initdb in a temp dir as a non-root user (Debian's `postgres` via runuser when we are
root), listening on 127.0.0.1 and a unix socket in the temp dir, fsync off, trust
for everyone except pgwarden's login role, which must use SCRAM (so pgwarden's
upstream authentication is real). Loads tests/sql/demo_schema.sql.
"""
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests" / "sql" / "demo_schema.sql"
SVC_ROLE = "pgwarden_svc"

# pg_hba.conf: first match wins, so the SCRAM lines for pgwarden_svc come first.
HBA = f"""\
# written by tests/integration/pgserver.py
local all {SVC_ROLE} scram-sha-256
host  all {SVC_ROLE} 127.0.0.1/32 scram-sha-256
local all all trust
host  all all 127.0.0.1/32 trust
"""


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (small race, fine for tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout, alive=lambda: True):
    """Poll until host:port accepts a TCP connection; False on timeout or when alive() says no."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class PgServer:
    """One private cluster. Attributes: host, port, sockdir, datadir, svc_password."""

    def __init__(self, base=None, max_connections=500, extra_conf=""):
        self.tmp = Path(tempfile.mkdtemp(prefix="pgwarden-pg-", dir=base))
        self.datadir = self.tmp / "data"
        self.sockdir = self.tmp
        self.logfile = self.tmp / "postgres.log"
        self.host = "127.0.0.1"
        self.port = free_port()
        self.svc_user = SVC_ROLE
        self.svc_password = secrets.token_urlsafe(18)
        self.max_connections = max_connections
        self.extra_conf = extra_conf  # postgresql.conf lines, e.g. max_prepared_transactions
        self.started = False
        # As root we must not run postgres as root: hand the dir to the postgres user.
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = "postgres"
            pw = pwd.getpwnam("postgres")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            os.chmod(self.tmp, 0o755)  # root-run clients reach the socket anyway

    def _cmd(self, *args):
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return prefix + [str(a) for a in args]

    def _run(self, *args, **kw):
        return subprocess.run(self._cmd(*args), check=True, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, **kw)

    def start(self):
        """initdb, configure, start, load the demo schema. Raises with the server log on failure."""
        try:
            self._run(PG_BIN / "initdb", "-D", self.datadir, "-A", "trust", "-U", "postgres",
                      "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C.UTF-8")
            conf = (f"\n# written by tests/integration/pgserver.py\n"
                    f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.sockdir}'\n"
                    f"max_connections = {self.max_connections}\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "shared_buffers = 64MB\nlog_min_messages = warning\n"
                    "log_connections = off\nlog_line_prefix = '%m [%p] %u@%d '\n")
            conf += self._tls_conf() + self.extra_conf
            # Files are written as the user that owns the data dir (we may be root).
            self._write_as(self.datadir / "postgresql.conf", conf, append=True)
            self._write_as(self.datadir / "pg_hba.conf", HBA)
            self._run(PG_BIN / "pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60",
                      "start")
            self.started = True
            self.psql_file(SCHEMA, "postgres", svc_password=self.svc_password)
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"PostgreSQL setup failed: {e.cmd}\n{e.stdout}\n{e.stderr}\n"
                               f"{self.log_tail()}") from None
        return self

    def _tls_conf(self):
        """A self-signed certificate, so upstream TLS can be tested. Plain targets say
        sslmode=disable (svc_dsn), so only the tests that ask for TLS get it."""
        self._run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                  "-subj", "/CN=127.0.0.1", "-keyout", self.datadir / "server.key",
                  "-out", self.datadir / "server.crt")
        self._run("chmod", "600", self.datadir / "server.key")
        return "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"

    def _write_as(self, path, text, append=False):
        with open(path, "a" if append else "w") as f:
            f.write(text)

    def stop(self):
        """Stop immediately and remove everything; safe to call twice."""
        if self.started:
            subprocess.run(self._cmd(PG_BIN / "pg_ctl", "-D", self.datadir, "-m", "immediate",
                                     "-w", "stop"), capture_output=True, stdin=subprocess.DEVNULL)
            self.started = False
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, n=40):
        try:
            return "".join(self.logfile.read_text(errors="replace").splitlines(True)[-n:])
        except OSError:
            return ""

    # --- connecting as a superuser, directly (for setup and for checking on pgwarden) ---

    def admin_dsn(self, dbname="postgres"):
        """Superuser conninfo over the unix socket (trust)."""
        return f"host={self.sockdir} port={self.port} dbname={dbname} user=postgres"

    def svc_dsn(self, dbname="app", sslmode="disable"):
        """pgwarden_svc conninfo over TCP with its password (what pgwarden's conninfo holds)."""
        return (f"host={self.host} port={self.port} dbname={dbname} user={self.svc_user} "
                f"password={self.svc_password} sslmode={sslmode}")

    def psql_file(self, path, dbname, **variables):
        args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.admin_dsn(dbname), "-f", str(path)]
        for k, v in variables.items():
            args += ["-v", f"{k}={v}"]
        return subprocess.run(args, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def sql(self, query, dbname="postgres"):
        """Run one query as superuser; returns the rows (list of tuples)."""
        import psycopg
        with psycopg.connect(self.admin_dsn(dbname), autocommit=True) as c:
            cur = c.execute(query)
            return cur.fetchall() if cur.description else []
