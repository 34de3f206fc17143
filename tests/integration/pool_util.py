"""pool_util.py - helpers for the pool operations tests: counting pgwarden's upstream backends in
pg_stat_activity, the /pools view, waiting, and the open-files limit for thousands of clients."""
import json
import resource
import time
import urllib.request


def raise_nofile(need):
    """Raise this process's RLIMIT_NOFILE soft limit (inherited by the pgwarden it starts) to at
    least `need`, up to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(max(soft, need), hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Admin:
    """One superuser connection to the test server, opened before a test opens thousands of
    sockets: psycopg 3.1 waits with select(), which cannot take a descriptor above 1023."""

    def __init__(self, pg):
        import psycopg
        self.conn = psycopg.connect(pg.admin_dsn(), autocommit=True)

    def sql(self, query):
        cur = self.conn.execute(query)
        return cur.fetchall() if cur.description else []

    def close(self):
        self.conn.close()


def pool_pids(pg, db="app_staging", app="pgwarden"):
    """Pids of pool connections (pgwarden's fallback application_name) on a database; pg is a
    PgServer or an Admin."""
    return {r[0] for r in pg.sql(
        "SELECT pid FROM pg_stat_activity WHERE usename = 'pgwarden_svc' AND backend_type = 'client backend' "
        f"AND datname = '{db}' AND application_name = '{app}'")}


def svc_pids(pg, db="app_staging"):
    """Every backend of pgwarden's service login on a database (pool, catalog, health probes)."""
    return {r[0] for r in pg.sql(
        "SELECT pid FROM pg_stat_activity WHERE usename = 'pgwarden_svc' AND backend_type = 'client backend' "
        f"AND datname = '{db}'")}


def wait_for(cond, timeout=5.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def pools(port, target="staging"):
    """The /pools entry of one target."""
    data = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/pools", timeout=5).read())
    return [p for p in data if p["target"] == target][0]


def metrics(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
