"""test_calls.py - pgwarden judges what PostgreSQL really runs (issue 14, holes 1 and 2, item 7):
attribute notation is a call (ParseFuncOrColumn), operators, casts, domains, triggers, defaults
and policies run functions without a call in the text, and built-ins are judged from pg_proc's
own facts. Every harmful statement is checked at the database too: identity, tenant, rows,
large objects, advisory locks and sequences must not have moved."""
import secrets

import psycopg
import pytest
from psycopg import errors

from test_functions import identity_of, rule_of, wait_for_catalog

pytestmark = pytest.mark.identity


def superuser(pg, db):
    return psycopg.connect(pg.admin_dsn(db), autocommit=True)


def denied(c, sql, rule=None):
    """Run sql; it must be denied by pgwarden (42501, message pgwarden:) under rule if given."""
    with pytest.raises(errors.InsufficientPrivilege) as ei:
        c.execute(sql)
    assert ei.value.diag.message_primary.startswith("pgwarden:"), sql
    if rule:
        assert rule in rule_of(ei.value), (sql, rule_of(ei.value), ei.value.diag.message_primary)
    return ei.value


def db_state(pg, db):
    """What a harmful call could leave behind, read as the superuser."""
    with superuser(pg, db) as c:
        return c.execute("SELECT (SELECT count(*) FROM pg_largeobject_metadata), "
                         "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'), "
                         "(SELECT last_value FROM billing.invoices_id_seq), "
                         "(SELECT count(*) FROM billing.invoices)").fetchone()


@pytest.fixture
def fresh(pgwarden_factory):
    w = pgwarden_factory()
    wait_for_catalog(w, "prod", 0)
    wait_for_catalog(w, "staging", 0)
    return w


# ---- hole 1: attribute notation is a function call ----

ATTR_TENANT = [
    "SELECT ('globex'::text).switch_tenant",
    "SELECT (('globex'::text)).switch_tenant",
    "SELECT v.t.switch_tenant FROM (SELECT 'globex'::text AS t) v",
    "SELECT (v.t).switch_tenant FROM (SELECT 'globex'::text AS t) v",
    "SELECT 1 WHERE ('globex'::text).switch_tenant IS NOT NULL",
]


@pytest.mark.parametrize("dbname", ["prod", "staging"])
@pytest.mark.parametrize("sql", ATTR_TENANT)
def test_attribute_notation_tenant_setter_is_identity_change(fresh, dbname, sql):
    with psycopg.connect(fresh.dsn(dbname=dbname), autocommit=True) as c:
        before = identity_of(c)
        denied(c, sql, "identity-change")
        assert identity_of(c) == before
        assert c.execute("SELECT count(*) FROM invoices").fetchone() == (3,)


def test_attribute_notation_ts_stat_cannot_set_the_role(fresh):
    with psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as c:
        before = identity_of(c)
        denied(c, "SELECT (('SELECT set_config(''role'', ''pgwarden_svc'', false)::text::tsvector')::text)"
                  ".ts_stat", "opaque-sql")
        assert identity_of(c) == before


@pytest.mark.parametrize("sql", [
    "SELECT (0::oid).lo_create",
    "SELECT (4242::bigint).pg_advisory_lock",
    "SELECT (4242::bigint).pg_advisory_xact_lock",
    "SELECT ('billing.invoices_id_seq'::regclass).nextval",
    "SELECT (5::numeric).add_invoice",
    "SELECT x.a.add_invoice FROM (SELECT 5::numeric AS a) x",
])
def test_attribute_notation_writes_need_a_window_on_production(fresh, pg, sql):
    before = db_state(pg, "app")
    with psycopg.connect(fresh.dsn(dbname="prod"), autocommit=True) as c:
        denied(c, sql, "write-outside-window")
        # the session is still read-only, and nothing was left behind
        assert c.execute("SHOW transaction_read_only").fetchone() == ("on",)
    assert db_state(pg, "app") == before


def test_ordinary_column_references_are_not_calls(fresh):
    with psycopg.connect(fresh.dsn(dbname="prod"), autocommit=True) as c:
        for sql in ("SELECT i.id, i.amount, i.note FROM invoices i ORDER BY i.id",
                    "SELECT (i).id, billing.invoices.tenant FROM billing.invoices i, billing.invoices",
                    "SELECT s.x FROM (SELECT 1 AS x) s",
                    "SELECT i.id FROM invoices i WHERE i.amount BETWEEN 1 AND 500 AND i.id IN (1, 2, 3)"):
            c.execute(sql)


# ---- item 7: built-ins judged from pg_proc ----

PURE_BUILTINS = [
    "SELECT numrange(1, 5)", "SELECT int4range(1, 5, '[]')", "SELECT nummultirange(numrange(1, 2))",
    "SELECT jsonb_path_query_tz('{\"a\": 1}', '$.a')", "SELECT ts_lexize('simple', 'Word')",
    "SELECT box(point(0, 0), point(1, 1))", "SELECT hashtext('x')", "SELECT int4send(1)",
    "SELECT jsonb('{}')", "SELECT inet('10.0.0.1')", "SELECT regrole('bookkeeper')",
    "SELECT '{}'::jsonb", "SELECT CAST('1' AS int8)", "SELECT ('1.5'::text).numeric",
    "SELECT (now()).date", "SELECT (i.tenant).length FROM invoices i",
]


@pytest.mark.parametrize("sql", PURE_BUILTINS)
def test_pure_builtins_run_on_production(fresh, sql):
    with psycopg.connect(fresh.dsn(dbname="prod"), autocommit=True) as c:
        c.execute(sql)


@pytest.mark.parametrize("sql", ["SELECT pg_terminate_backend(0)", "SELECT txid_current()",
                                 "SELECT lo_create(0)", "SELECT setval('billing.invoices_id_seq', 1)",
                                 "SELECT pg_notify('x', 'y')"])
def test_volatile_builtins_stay_writes(fresh, sql):
    with psycopg.connect(fresh.dsn(dbname="prod"), autocommit=True) as c:
        denied(c, sql, "write-outside-window")


# ---- hole 2: implicit calls, resolved from the catalog ----

@pytest.fixture
def hooks(pg, pgwarden_factory):
    """In app_staging: a schema with a tenant setter bound to an operator, a cast, a domain, a
    trigger, a default, a policy and a rule; then a pgwarden that read it."""
    s = "hk_" + secrets.token_hex(3)
    with superuser(pg, "app_staging") as c:
        c.execute(f"""
            CREATE SCHEMA {s};
            GRANT USAGE ON SCHEMA {s} TO bookkeeper;
            CREATE FUNCTION {s}.set_t(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
              BEGIN PERFORM set_config('app.tenant_id', b, false); RETURN true; END $$;
            CREATE FUNCTION {s}.set_t1(b text) RETURNS boolean LANGUAGE sql
              AS $$ SELECT {s}.set_t('', b) $$;
            CREATE FUNCTION {s}.trg() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN PERFORM set_config('app.tenant_id', 'globex', false); RETURN NEW; END $$;
            CREATE OPERATOR {s}.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = {s}.set_t);
            CREATE DOMAIN {s}.d AS text CHECK ({s}.set_t1(VALUE));
            CREATE TYPE {s}.ct AS (a text);
            CREATE FUNCTION {s}.ct_bool({s}.ct) RETURNS boolean LANGUAGE sql
              AS $$ SELECT {s}.set_t1('globex') $$;
            CREATE CAST ({s}.ct AS boolean) WITH FUNCTION {s}.ct_bool({s}.ct);
            CREATE TABLE {s}.trig (a int);
            CREATE TRIGGER t BEFORE INSERT ON {s}.trig FOR EACH ROW EXECUTE FUNCTION {s}.trg();
            CREATE TABLE {s}.deflt (a int, b boolean DEFAULT {s}.set_t1('globex'));
            CREATE TABLE {s}.pol (a int);
            ALTER TABLE {s}.pol ENABLE ROW LEVEL SECURITY;
            CREATE POLICY p ON {s}.pol USING ({s}.set_t1('globex'));
            CREATE TABLE {s}.ruled (a int);
            CREATE RULE r AS ON INSERT TO {s}.ruled DO ALSO INSERT INTO {s}.trig VALUES (NEW.a);
            CREATE TABLE {s}.parent (a int PRIMARY KEY);
            CREATE TABLE {s}.child (a int REFERENCES {s}.parent ON DELETE CASCADE);
            CREATE TRIGGER t BEFORE DELETE ON {s}.child FOR EACH ROW EXECUTE FUNCTION {s}.trg();
            CREATE FUNCTION {s}.writes_trig() RETURNS int LANGUAGE sql
              AS $$ INSERT INTO {s}.trig VALUES (1) RETURNING a $$;
            CREATE TABLE {s}.plain (a int);
            GRANT ALL ON ALL TABLES IN SCHEMA {s} TO bookkeeper;
            GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} TO bookkeeper;
        """)
    w = pgwarden_factory()
    wait_for_catalog(w, "staging", 0)
    yield w, s
    with superuser(pg, "app_staging") as c:
        c.execute(f"DROP SCHEMA {s} CASCADE")


def implicit_cases(s):
    return [
        f"SELECT 'a' OPERATOR({s}.===) 'globex'",
        f"SELECT 1 WHERE 'a' OPERATOR({s}.===) ANY (ARRAY['globex'])",
        f"SELECT 'globex'::{s}.d",
        f"SELECT CAST('globex' AS {s}.d)",
        f"SELECT ROW('x')::{s}.ct::boolean",
        f"INSERT INTO {s}.trig VALUES (1)",
        f"INSERT INTO {s}.deflt (a) VALUES (1)",
        f"SELECT * FROM {s}.pol",
        f"INSERT INTO {s}.ruled VALUES (1)",
        f"DELETE FROM {s}.parent",
        f"SELECT {s}.writes_trig()",
        f"COPY {s}.trig FROM STDIN",
    ]


@pytest.mark.parametrize("case", range(12))
def test_implicit_calls_are_judged(hooks, case):
    w, s = hooks
    sql = implicit_cases(s)[case]
    with psycopg.connect(w.dsn(dbname="staging"), autocommit=True) as c:
        before = identity_of(c)
        denied(c, sql, "identity-change")
        assert identity_of(c) == before


def test_tables_without_harmful_hooks_are_untouched(hooks):
    w, s = hooks
    with psycopg.connect(w.dsn(dbname="staging")) as c:
        c.execute(f"INSERT INTO {s}.plain VALUES (1)")
        c.execute(f"SELECT a FROM {s}.plain WHERE a = 1 ORDER BY a")
        c.rollback()


@pytest.fixture
def own_schema(pg):
    """A schema in app_staging the app role owns (it may create functions, tables, triggers)."""
    s = "own_" + secrets.token_hex(3)
    with superuser(pg, "app_staging") as c:
        c.execute(f"CREATE SCHEMA {s} AUTHORIZATION bookkeeper")
        c.execute(f"GRANT USAGE ON SCHEMA {s} TO pgwarden_svc")
    yield s
    with superuser(pg, "app_staging") as c:
        c.execute(f"DROP SCHEMA {s} CASCADE")


def test_hooks_made_through_pgwarden_are_judged_after_and_when_re_pointed(fresh, own_schema):
    """A trigger made and later re-pointed (CREATE OR REPLACE FUNCTION) through pgwarden: the catalog is
    read again after each DDL, so the next write to the table is judged with the new definition."""
    s = own_schema
    with psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as ddl, \
            psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as c:
        ddl.execute(f"CREATE FUNCTION {s}.trg() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RETURN NEW; END $$")
        ddl.execute(f"CREATE TABLE {s}.t (a int)")
        ddl.execute(f"CREATE TRIGGER tg BEFORE INSERT ON {s}.t FOR EACH ROW EXECUTE FUNCTION {s}.trg()")
        c.execute(f"INSERT INTO {s}.t VALUES (1)")  # a harmless trigger: allowed
        ddl.execute(f"CREATE OR REPLACE FUNCTION {s}.trg() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN PERFORM set_config('app.tenant_id', 'globex', false); RETURN NEW; END $$")
        ddl.execute("SELECT 1")  # the DDL session waited for the new catalog
        before = identity_of(c)
        denied(c, f"INSERT INTO {s}.t VALUES (2)", "identity-change")
        assert identity_of(c) == before
        # binding a tenant setter is judged as its call; re-pointing a harmless one is caught at the write
        ddl.execute(f"CREATE FUNCTION {s}.set_t() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$")
        ddl.execute(f"CREATE TABLE {s}.d (a int, b text DEFAULT {s}.set_t())")
        c.execute(f"INSERT INTO {s}.d (a) VALUES (1)")
        ddl.execute(f"CREATE OR REPLACE FUNCTION {s}.set_t() RETURNS text LANGUAGE sql AS "
                    "$$ SELECT set_config('app.tenant_id', 'globex', false) $$")
        ddl.execute("SELECT 1")
        denied(c, f"INSERT INTO {s}.d (a) VALUES (2)", "identity-change")
        assert identity_of(c) == before


# ---- the crash: SIGTERM while a catalog loader thread is inside libpq ----

class HoldingProxy:
    """TCP relay to PostgreSQL. While held, server bytes wait; release() lets them through at
    once, so a catalog loader's TLS handshake runs at a moment the test chooses."""

    def __init__(self, host, port):
        import socket
        import threading
        self.target = (host, port)
        self.gate = threading.Event()
        self.gate.set()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(c, s, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, True), daemon=True).start()

    def _pipe(self, src, dst, from_server):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_server:
                    self.gate.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for x in (src, dst):
                try:
                    x.close()
                except OSError:
                    pass

    def close(self):
        self.gate.set()
        self.sock.close()


def test_sigterm_during_a_catalog_load_exits_cleanly(pg, pgwarden_factory):
    """Issue 14 item 7: SIGSEGV when SIGTERM arrived while a loader thread was in PQconnectdbParams
    (OpenSSL's exit handler freed its state under the thread's TLS handshake)."""
    import random
    import signal
    import threading
    import time
    proxy = HoldingProxy(pg.host, pg.port)
    conninfo = pg.svc_dsn("app_staging", sslmode="require").replace(f"port={pg.port}", f"port={proxy.port}")
    try:
        for attempt in range(12):
            proxy.gate.set()
            w = pgwarden_factory(extra_config=f"[target.slow]\nconninfo = {conninfo}\nenvironment = staging\n")
            wait_for_catalog(w, "slow", 0)
            proxy.gate.clear()
            w.proc.send_signal(signal.SIGHUP)  # every catalog is read again, the slow one through the proxy
            time.sleep(0.2)
            # the handshake resumes around the moment the process exits
            threading.Timer(random.uniform(0.0, 0.03), proxy.gate.set).start()
            rc = w.stop(signal.SIGTERM, timeout=15)
            assert rc == 0, f"attempt {attempt}: exit {rc}\n{w.stderr_text(20)}"
    finally:
        proxy.close()


def test_function_ddl_loop_does_not_stop_other_functions(fresh, own_schema):
    """Issue 14 item 6: a session re-running CREATE OR REPLACE FUNCTION in a loop made the catalog stale
    for everyone (99.7% of other sessions' calls denied). Only the names the DDL touches are stale now:
    calls of other functions, and reads, go on; calls of the replaced one wait for the new catalog."""
    import threading
    import time
    s = own_schema
    with psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as ddl:
        ddl.execute(f"CREATE FUNCTION {s}.churn() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
    stop = threading.Event()

    def churn():
        with psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as c:
            i = 0
            while not stop.is_set():
                i += 1
                c.execute(f"CREATE OR REPLACE FUNCTION {s}.churn() RETURNS int LANGUAGE sql AS $$ SELECT {i} $$")

    t = threading.Thread(target=churn)
    t.start()
    denied_other = total = denied_churn = 0
    try:
        with psycopg.connect(fresh.dsn(dbname="staging"), autocommit=True) as c:
            deadline = time.time() + 3
            while time.time() < deadline:
                total += 1
                try:
                    c.execute("SELECT billing.tenant_total(), i.id FROM invoices i WHERE i.id = 1")
                except errors.InsufficientPrivilege:
                    denied_other += 1
                try:
                    c.execute(f"SELECT {s}.churn()")
                except errors.InsufficientPrivilege as e:
                    assert "opaque-sql" in rule_of(e)
                    denied_churn += 1
    finally:
        stop.set()
        t.join()
    print(f"other calls denied {denied_other}/{total}, churned function denied {denied_churn}/{total}")
    assert total > 20
    assert denied_other == 0


def test_wall_schema_is_vouched_for_only_on_walled_targets(pg, pgwarden_factory):
    """deploy/walls.sql's schema is trusted where the walls are required (and verified at start);
    on a target without walls anybody with CREATE on the database could make a schema of that
    name, so its functions are judged like any other."""
    with superuser(pg, "app_staging") as su:
        su.execute("CREATE SCHEMA IF NOT EXISTS pgwarden_wall")
        # Dynamic SQL: opaque to pgwarden, which a trusted function is let off (the walls' are).
        su.execute("CREATE OR REPLACE FUNCTION pgwarden_wall.pf_switch(t text) RETURNS text LANGUAGE plpgsql "
                   "AS $$ BEGIN EXECUTE 'SELECT set_config(''app.tenant_id'', ' || quote_literal(t) || ', false)'; "
                   "RETURN t; END $$")
        su.execute("GRANT USAGE ON SCHEMA pgwarden_wall TO PUBLIC")
    try:
        w = pgwarden_factory()
        wait_for_catalog(w, "staging", 0)
        with psycopg.connect(w.dsn(dbname="staging"), autocommit=True) as c:
            before = identity_of(c)
            denied(c, "SELECT pgwarden_wall.pf_switch('globex')", "opaque-sql")
            denied(c, "SELECT ('globex'::text).pf_switch", "opaque-sql")
            assert identity_of(c) == before
    finally:
        with superuser(pg, "app_staging") as su:
            su.execute("DROP SCHEMA pgwarden_wall CASCADE")
