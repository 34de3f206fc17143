"""walls_overhead.py - what the database walls (deploy/walls.sql) cost per statement.

    /usr/bin/python3 bench/walls_overhead.py [N]

Starts a private PostgreSQL 15 with the demo schema (app: RLS on the tenant setting; app_walled: the
same plus walls.sql and the verified-tenant policy) and ./pgwarden with both as production targets, then
runs N (default 3000) `SELECT count(*) FROM billing.invoices` round trips as user:jimmie on each, interleaved
in 5 rounds, and prints the median per-statement time of each and their difference. It also prints the
connect-to-first-row time (the walled pin adds two settings and the pin check) and the database-side cost
of one verification, pgwarden_wall.tenant_id(), measured inside the server.
"""
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from pgserver import PgServer  # noqa: E402
from warden import Warden  # noqa: E402

SQL = "SELECT count(*) FROM billing.invoices"


def per_statement_us(conn, n, prepare=False):
    t0 = time.perf_counter()
    for _ in range(n):
        conn.execute(SQL, prepare=prepare).fetchone()
    return (time.perf_counter() - t0) / n * 1e6


def connect_us(w, dbname, n=30):
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        with w.connect("user:jimmie", dbname=dbname) as c:
            c.execute("SELECT 1").fetchone()
        t.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(t)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    pg = PgServer().start()
    key = secrets.token_hex(32)
    w = None
    try:
        pg.sql(f"SELECT pgwarden_wall.set_key('{key}')", "app_walled")
        keyfile = Path(pg.tmp) / "wall.key"
        keyfile.write_text(key)
        os.chmod(keyfile, 0o600)
        w = Warden(pg, extra_config=f"[target.walled]\nconninfo = {pg.svc_dsn('app_walled')}\n"
                                    f"environment = production\nwalls = required\nwall_key_file = {keyfile}\n")
        w.start()
        plain, walled, plain_p, walled_p = [], [], [], []
        with w.connect("user:jimmie", dbname="prod") as cp, w.connect("user:jimmie", dbname="walled") as cw:
            for _ in range(5):
                plain.append(per_statement_us(cp, n))
                walled.append(per_statement_us(cw, n))
                plain_p.append(per_statement_us(cp, n, prepare=True))
                walled_p.append(per_statement_us(cw, n, prepare=True))
            notices = []
            cw.add_notice_handler(lambda d: notices.append(d.message_primary))
            cw.execute("DO $$ DECLARE t0 timestamptz := clock_timestamp(); x text; BEGIN "
                       "FOR i IN 1..5000 LOOP x := pgwarden_wall.tenant_id(); END LOOP; "
                       "RAISE NOTICE '%', round((extract(epoch FROM clock_timestamp() - t0) * 1e6 / 5000)::numeric, 1); "
                       "END $$")
            inside = notices[-1]
        mp, mw = statistics.median(plain), statistics.median(walled)
        print(f"per statement through pgwarden ({n} x 5 rounds, medians): "
              f"RLS on setting {mp:.1f} us, walled {mw:.1f} us, difference {mw - mp:+.1f} us ({(mw / mp - 1) * 100:+.1f}%)")
        mp, mw = statistics.median(plain_p), statistics.median(walled_p)
        print(f"the same, prepared (extended protocol, plan cached): "
              f"RLS on setting {mp:.1f} us, walled {mw:.1f} us, difference {mw - mp:+.1f} us")
        print(f"connect + first row: plain {connect_us(w, 'prod') / 1000:.2f} ms, "
              f"walled {connect_us(w, 'walled') / 1000:.2f} ms")
        print(f"one pgwarden_wall.tenant_id() call inside the server: {inside} us")
    finally:
        if w:
            w.cleanup()
        pg.stop()


if __name__ == "__main__":
    main()
