"""warden.py - runs ./pgwarden for the integration tests, or stands in for it (direct mode).

Warden writes a config and a token file into a temp dir, starts `./pgwarden -c FILE`,
and hands out connection strings for actors. DirectWarden has the same interface but
points everything at PostgreSQL itself as pgwarden_svc, pinning role and settings
through startup options the way pgwarden pins them, so the relay tests can be
checked against the real server before (and independently of) the proxy.
"""
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgserver import REPO, free_port, wait_port

PGWARDEN = Path(os.environ.get("PGWARDEN_BIN", REPO / "pgwarden"))
# `make asan` builds pgwarden-asan; its memory use says nothing about pgwarden's (redzones, quarantine).
SANITIZED = "asan" in PGWARDEN.name

# Actor -> (role, tenant or None, extra token-file keys). Tokens are random per run.
ACTORS = {
    "user:jimmie": ("bookkeeper", "acme", ""),
    "user:ada": ("bookkeeper", "globex", ""),
    "agent:tally": ("agent_rw", "acme", "targets=staging"),
    "user:expired": ("bookkeeper", "acme", "expires=2020-01-01T00:00:00Z"),
    "user:notenant": ("bookkeeper", None, ""),
}

# Target name (the client's dbname) -> (database, environment).
TARGETS = {
    "prod": ("app", "production"),
    "staging": ("app_staging", "staging"),
}


def conninfo_quote(v):
    """Quote a libpq conninfo value when it needs it."""
    v = str(v)
    if v and all(ch not in v for ch in " '\\"):
        return v
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def make_conninfo(**kw):
    return " ".join(f"{k}={conninfo_quote(v)}" for k, v in kw.items() if v is not None)


def token_line(actor, token, role, tenant, extra=""):
    """A sha256 token-file record (CONTRACT §3)."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f"sha256:{digest}  {actor}  {role}  {tenant or '-'}  {extra}".rstrip()


class Warden:
    """A running ./pgwarden. Use dsn()/connect() to reach it as an actor."""

    direct = False

    def __init__(self, pg, extra_config="", extra_tokens=(), auth_timeout=2, base=None, binary=None,
                 target_config=""):
        self.pg = pg
        self.binary = Path(binary) if binary else PGWARDEN  # e.g. ./pgwarden-relay (test_walls.py)
        self.target_config = target_config  # lines added to every [target.*] section (pool keys)
        self.dir = Path(tempfile.mkdtemp(prefix="pgwarden-run-", dir=base))
        self.host = "127.0.0.1"
        self.port = free_port()
        self.config_path = self.dir / "pgwarden.ini"
        self.tokens_path = self.dir / "tokens.txt"
        self.audit_path = self.dir / "audit.jsonl"
        self.log_path = self.dir / "pgwarden.stderr"
        self.auth_timeout = auth_timeout
        self.extra_config = extra_config
        self.tokens = {a: secrets.token_urlsafe(24) for a in ACTORS}
        self.extra_tokens = list(extra_tokens)
        self.proc = None
        self._logf = None

    # --- files ---

    def settings(self):
        """[pgwarden] keys: the test defaults, overridden by `key = value` lines at the top of
        extra_config (so a test can change a default without writing a duplicate key)."""
        kv = {
            "listen": f"{self.host}:{self.port}",
            "tokens_file": self.tokens_path.name,
            "audit_log": self.audit_path.name,
            "plaintext_auth": "yes",
            "auth_timeout": str(self.auth_timeout),
        }
        for line in self._extra_split()[0]:
            if "=" in line and not line.lstrip().startswith((";", "#")):
                k, v = line.split("=", 1)
                kv[k.strip()] = v.strip()
        return kv

    def _extra_split(self):
        """(lines before the first section header, the rest as text)."""
        lines = self.extra_config.strip("\n").splitlines()
        for i, line in enumerate(lines):
            if line.lstrip().startswith("["):
                return lines[:i], "\n".join(lines[i:])
        return lines, ""

    def config_text(self):
        text = "; written by tests/integration/warden.py\n[pgwarden]\n"
        text += "".join(f"{k} = {v}\n" for k, v in self.settings().items())
        for name, (db, env) in TARGETS.items():
            text += (f"\n[target.{name}]\n"
                     f"conninfo = {self.pg.svc_dsn(db)}\n"
                     f"environment = {env}\n"
                     + (self.target_config.strip("\n") + "\n" if self.target_config else ""))
        sections = self._extra_split()[1]
        return text + ("\n" + sections + "\n" if sections else "")

    def write_files(self):
        self.config_path.write_text(self.config_text())
        lines = ["# written by tests/integration/warden.py"]
        for actor, (role, tenant, extra) in ACTORS.items():
            lines.append(token_line(actor, self.tokens[actor], role, tenant, extra))
        lines += self.extra_tokens
        self.tokens_path.write_text("\n".join(lines) + "\n")
        os.chmod(self.tokens_path, 0o600)

    # --- process ---

    def start(self, timeout=10):
        if not self.binary.exists():
            raise RuntimeError(f"{self.binary} not built (run make)")
        self.write_files()
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(self.binary), "-c", str(self.config_path)], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=self._logf, stderr=self._logf)
        if not wait_port(self.host, self.port, timeout, alive=self.alive):
            msg = "exited" if not self.alive() else "did not listen"
            self.stop()
            raise RuntimeError(f"pgwarden {msg} (port {self.port}):\n{self.stderr_text()}")
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=5):
        """Stop the process; returns its exit code (None if it was not started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        if self._logf:
            self._logf.close()
            self._logf = None
        if SANITIZED:
            self._check_sanitizer_reports()
        return rc

    def _check_sanitizer_reports(self):
        """Under `make asan` a sanitizer report in pgwarden's stderr fails the test that ran it
        (UBSan and ASan abort the process; LeakSanitizer reports at exit, with the process gone)."""
        text = self.stderr_text(tail=100000)
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in text:
                at = text.index(marker)
                raise AssertionError(f"sanitizer report in pgwarden's stderr:\n{text[max(0, at - 200):at + 3000]}")

    def restart(self, extra_config=None):
        """Stop and start again, optionally with new extra config lines."""
        self.stop()
        if extra_config is not None:
            self.extra_config = extra_config
        self.port = free_port()
        return self.start()

    def reload(self, extra_config=None, wait=0.5):
        """Rewrite the files (optionally with new extra config) and send SIGHUP."""
        if extra_config is not None:
            self.extra_config = extra_config
        self.write_files()
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(wait)

    def cleanup(self):
        """Stop and remove the run dir (kept, and named on stderr, with PGWARDEN_TESTS_KEEP=1)."""
        self.stop()
        if os.environ.get("PGWARDEN_TESTS_KEEP", "") not in ("", "0"):
            print(f"\nkept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def stderr_text(self, tail=60):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def rss_kb(self):
        """Resident set size of the pgwarden process in kB (from /proc)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def idle_rss_per_session(self, connect, n=100):
        """kB of RSS each of n idle sessions adds: connect() opens one (psycopg), which first
        fetches a result big enough to need full-size TLS records. The sessions are closed after."""
        rss0 = self.rss_kb()
        conns = []
        try:
            for _ in range(n):
                conns.append(connect())
                conns[-1].execute("SELECT repeat('w', 100000)")
            return (self.rss_kb() - rss0) / n
        finally:
            for c in conns:
                c.close()

    # --- connecting ---

    def dsn(self, actor="user:jimmie", token=None, dbname="staging", **kw):
        """libpq conninfo for an actor on a target; token defaults to the actor's own."""
        if token is None:
            token = self.tokens.get(actor, "no-such-token")
        params = dict(host=self.host, port=self.port, dbname=dbname, user=actor, password=token,
                      sslmode="disable", connect_timeout=10)
        params.update(kw)
        return make_conninfo(**params)

    def connect(self, actor="user:jimmie", dbname="staging", autocommit=True, **kw):
        import psycopg
        return psycopg.connect(self.dsn(actor, dbname=dbname, **kw), autocommit=autocommit)

    def asyncpg_args(self, actor="user:jimmie", dbname="staging", token=None):
        """Keyword arguments for asyncpg.connect()."""
        return dict(host=self.host, port=self.port, user=actor, database=dbname,
                    password=token if token is not None else self.tokens[actor], ssl=False)

    def raw_login(self, dbname="staging"):
        """(startup parameters, password) for a raw-protocol client."""
        return {"user": "user:jimmie", "database": dbname}, self.tokens["user:jimmie"]


class DirectWarden(Warden):
    """Stands in for pgwarden: connections go straight to PostgreSQL as pgwarden_svc, with
    the actor's role and settings pinned through startup options (as pgwarden would)."""

    direct = True

    def __init__(self, pg, **kw):
        super().__init__(pg, **kw)
        self.host, self.port = pg.host, pg.port

    def start(self, timeout=10):
        self.write_files()
        return self

    def alive(self):
        return True

    def stop(self, sig=None, timeout=None):
        return None

    def _check_sanitizer_reports(self):
        """Under `make asan` a sanitizer report in pgwarden's stderr fails the test that ran it
        (UBSan and ASan abort the process; LeakSanitizer reports at exit, with the process gone)."""
        text = self.stderr_text(tail=100000)
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in text:
                at = text.index(marker)
                raise AssertionError(f"sanitizer report in pgwarden's stderr:\n{text[max(0, at - 200):at + 3000]}")

    def restart(self, extra_config=None):
        return self

    def reload(self, extra_config=None, wait=0):
        pass

    @property
    def pid(self):
        return None

    def pinned_options(self, actor, dbname):
        role, tenant, _ = ACTORS[actor]
        opts = f"-c role={role} -c app.actor_id={actor}"
        if tenant:
            opts += f" -c app.tenant_id={tenant}"
        if TARGETS.get(dbname, (None, None))[1] == "production":
            opts += " -c default_transaction_read_only=on"
        return opts

    def dsn(self, actor="user:jimmie", token=None, dbname="staging", **kw):
        params = dict(host=self.pg.host, port=self.pg.port, dbname=TARGETS.get(dbname, (dbname,))[0],
                      user=self.pg.svc_user, password=self.pg.svc_password, sslmode="disable",
                      connect_timeout=10, options=self.pinned_options(actor, dbname))
        params.update(kw)
        return make_conninfo(**params)

    def asyncpg_args(self, actor="user:jimmie", dbname="staging", token=None):
        role, tenant, _ = ACTORS[actor]
        settings = {"role": role, "app.actor_id": actor}
        if tenant:
            settings["app.tenant_id"] = tenant
        return dict(host=self.pg.host, port=self.pg.port, user=self.pg.svc_user,
                    database=TARGETS[dbname][0], password=self.pg.svc_password, ssl=False,
                    server_settings=settings)

    def raw_login(self, dbname="staging"):
        # Raw clients speak only cleartext/trust; the superuser has trust over TCP.
        return {"user": "postgres", "database": TARGETS[dbname][0]}, None
