"""protofuzz.py - differential protocol fuzzer: pgwarden's prod target against PostgreSQL itself.

A pipeline is a list of steps; a step is a list of frontend messages sent in one write and
answered before the next step. Each pipeline runs twice, step by step and interleaved:

  pgwarden   as user:jimmie on the prod target, no window open;
  reference  straight to the same database as the same role with the same pinned settings and
             default_transaction_read_only = on (superuser login, role set at startup).

Wherever pgwarden denied a message, the reference gets a "poison" in its place: a message the
server refuses at the same point (a Parse of a missing table, for a Bind the same cut-short Bind
pgwarden sends upstream, which fails after creating its portal, an Execute of a missing portal, a
Query statement reading a missing table). A denial must
behave like a server error, so both runs then take the same consequences (skip to Sync,
failed transaction block) and everything else can be compared strictly.

After every step it checks (discrepancy classes in CLASSES):
  replies    message for message: types, order, counts, tags, rows, ReadyForQuery status and
             SQLSTATEs are equal; only a pgwarden denial (42501, "pgwarden: ...") may stand where
             the reference has its poison error. ParameterStatus and notices are not compared.
  denial     pgwarden only denies what may be denied (a statement the catalog marks risky, or
             a name the server does not know); it never lets the server's own read-only wall
             (25006) answer for it; a statement the server itself rejects (a syntax error) gets
             the server's answer, not a denial; a Query is not denied before statements the
             server would have run.
  audit      each CommandComplete (and PortalSuspended, recorded with tag SUSPENDED) pgwarden
             relayed has its `result` record, whose `statement` names the SQL the server ran
             (tracked by ServerModel from the reference's replies; a cursor may be named by
             its DECLARE).
  effects    on the database itself: no scratch-table row, no new large object, no advisory
             lock outside the reference's backend; and after the last step, the pinned
             role/tenant/actor/read-only still in force in pgwarden's session (mid-pipeline,
             the catalog's reads of current_user and the tenant are compared with the
             reference's rows).
  hang       every message answered within the timeout.

Pipelines come from random.Random(f"{seed}:{n}"): `--seed S --case N` replays one exactly;
a failing case is shrunk and printed as JSON that `--pipeline` replays. Run for a while:

  python3 tests/integration/protofuzz.py --minutes 60 [--seed S] [--exclude REGEX]

(--exclude leaves out statements, to get past a known bug class to the ones behind it.)
"""
import argparse
import json
import os
import random
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rawpg import Closed, RawConn, msg, parse_error, rows_of  # noqa: E402

ACTOR, ROLE, TENANT, TARGET, DATABASE = "user:jimmie", "bookkeeper", "acme", "prod", "app"
SCRATCH = "billing.pf_scratch"
SETUP_SQL = f"""
CREATE TABLE IF NOT EXISTS {SCRATCH} (a int);
GRANT SELECT, INSERT ON {SCRATCH} TO bookkeeper;
"""
CHECK_SQL = ("SELECT current_user::text, current_setting('app.tenant_id', true), "
             "current_setting('app.actor_id', true), "
             "current_setting('default_transaction_read_only') /* pf_check */")
IDENTITY = (ROLE, TENANT, ACTOR, "on")

# What the reference gets where pgwarden denied: refused by the server at the same message.
POISON_SQL = "SELECT * FROM pf_denied_by_pgwarden"
POISON_NAME = "pf_denied_by_pgwarden"

# Two spellings of one name: the server keys names by their first 63 bytes (NAMEDATALEN-1).
LONG_A = "l" * 63 + "_a"
LONG_B = "l" * 63 + "_b"
STMT_NAMES = ["", "s1", "s2", LONG_A]
PORTAL_NAMES = ["", "p1", "p2", LONG_B]

# The statement catalog: SQL text -> True when pgwarden may (and on prod outside a window
# must) deny it. Everything else must run as on the server.
READS = [
    "SELECT 1", "SELECT 2",
    "SELECT g FROM generate_series(1, 5) g",
    "SELECT current_setting('app.tenant_id')", "SELECT current_user::text",
    "SELECT count(*) FROM billing.invoices",
    f"SELECT count(*) FROM {SCRATCH}",
]
FAILS = [
    "SELECT 1/0",                                  # fails at Bind (constant folding in planning)
    "SELECT (1/(random()*0)::int)",               # fails at Execute
    "SELECT * FROM pf_missing_table",              # fails at Parse (analysis)
    "SELEC 1",                                     # syntax error
]
PARSER_ERRORS = {"SELEC 1"}  # a Query holding one fails whole, before any statement runs
RISKY = [
    f"INSERT INTO {SCRATCH} VALUES (1)",
    "SELECT lo_create(0)",
    "SELECT pg_advisory_lock(4711)",
    "SELECT pg_advisory_xact_lock(4712)",
    "SELECT set_config('app.tenant_id', 'globex', false)",
    "SET app.tenant_id = 'globex'",
    "SET ROLE postgres",
    "SET default_transaction_read_only = off",
    "SELECT id FROM billing.invoices FOR UPDATE",
    "DECLARE p2 CURSOR FOR SELECT lo_create(0)",
    "PREPARE s2 AS SELECT lo_create(0)",
]
TXN = ["BEGIN", "COMMIT", "ROLLBACK"]
# SQL-level names share the server's tables with the protocol's: cursors are portals (p1, p2
# are also protocol portal names), prepared statements are statements (s2 also).
CURSORS = [
    "DECLARE p1 CURSOR FOR SELECT g FROM generate_series(1, 3) g",
    "DECLARE c1 CURSOR FOR SELECT 2",
    "FETCH 1 FROM p1", "FETCH 2 FROM c1", "CLOSE p1", "CLOSE c1",
    "PREPARE s2 AS SELECT 3", "EXECUTE s2", "DEALLOCATE s2",
    "PREPARE s1 AS SELECT 4", "DEALLOCATE ALL",
]
# Never in a Parse: PostgreSQL 15.18 itself crashes (SIGSEGV, every backend restarts) on
#   Parse "" "FETCH 1 FROM p1" while portal p1 exists; Sync (p1 ends); Describe S ""
# (the statement's result description points into the dropped portal). Only sent in Queries.
SIMPLE_ONLY = {"FETCH 1 FROM p1", "FETCH 2 FROM c1"}
CATALOG = {**{s: False for s in READS + FAILS + TXN + CURSORS}, **{s: True for s in RISKY},
           "SELECT g FROM generate_series(1, 3) g": False, "SELECT 3": False, "SELECT 4": False,
           "SELECT lo_create(0)": True}
# What a completed SQL statement does to the name tables: (regex, action).
SQL_EFFECTS = [
    (re.compile(r"DECLARE (\w+) CURSOR FOR (.*)$", re.I | re.S), "declare"),
    (re.compile(r"CLOSE (\w+)$", re.I), "close"),
    (re.compile(r"PREPARE (\w+) AS (.*)$", re.I | re.S), "prepare"),
    (re.compile(r"DEALLOCATE (?:PREPARE )?(\w+)$", re.I), "deallocate"),
]

CLASSES = ("replies", "denial", "audit", "effects", "hang")


class Discrepancy(AssertionError):
    """One failed check: cls is one of CLASSES, key a finer label of the bug class (what
    failed, on which message kind); where is (step, message index) or None."""

    def __init__(self, cls, text, where=None, key=""):
        super().__init__(f"[{cls}/{key}] {text}")
        self.cls, self.text, self.where, self.key = cls, text, where, key


# --- messages ---------------------------------------------------------------------------

def encode(m):
    """Bytes of one pipeline message: [kind, fields...] (JSON-friendly)."""
    k = m[0]
    z = lambda s: s.encode() + b"\0"  # noqa: E731
    if k == "P":
        return msg(b"P", z(m[1]) + z(m[2]) + struct.pack("!H", 0))
    if k == "B":
        return msg(b"B", z(m[1]) + z(m[2]) + struct.pack("!HHH", 0, 0, 0))
    if k == "Bx":  # the poison for a denied Bind: one result format announced and none sent (08P01
        # after CreatePortal, before planning), the same bytes pgwarden sends upstream in its place
        return msg(b"B", z(m[1]) + z(m[2]) + struct.pack("!HHH", 0, 0, 1))
    if k == "D":
        return msg(b"D", m[1].encode() + z(m[2]))
    if k == "E":
        return msg(b"E", z(m[1]) + struct.pack("!I", m[2]))
    if k == "C":
        return msg(b"C", m[1].encode() + z(m[2]))
    if k == "S":
        return msg(b"S")
    if k == "H":
        return msg(b"H")
    if k == "Q":
        return msg(b"Q", z(";".join(m[1])))
    raise ValueError(f"unknown message {m!r}")


def show(m):
    return " ".join(json.dumps(x) if isinstance(x, (str, list)) else str(x) for x in m)


# --- the generator ----------------------------------------------------------------------

def gen_sql(rnd, simple=False):
    pool = rnd.choices([READS, FAILS, RISKY, TXN, CURSORS], weights=[5, 2, 4, 2, 2])[0]
    sql = rnd.choice(pool)
    return gen_sql(rnd, simple) if not simple and sql in SIMPLE_ONLY else sql


def gen_message(rnd):
    k = rnd.choices("PBDECQH", weights=[6, 6, 2, 6, 2, 2, 1])[0]
    if k == "P":
        return ["P", rnd.choice(STMT_NAMES), gen_sql(rnd)]
    if k == "B":
        return ["B", rnd.choice(PORTAL_NAMES), rnd.choice(STMT_NAMES)]
    if k == "D":
        return ["D", "S", rnd.choice(STMT_NAMES)] if rnd.random() < .5 else ["D", "P", rnd.choice(PORTAL_NAMES)]
    if k == "E":
        return ["E", rnd.choice(PORTAL_NAMES), rnd.choice([0, 0, 1, 2])]
    if k == "C":
        return ["C", "S", rnd.choice(STMT_NAMES)] if rnd.random() < .5 else ["C", "P", rnd.choice(PORTAL_NAMES + ["c1"])]
    if k == "Q":
        return ["Q", [gen_sql(rnd, True) for _ in range(rnd.choice([1, 1, 1, 2, 3]))]]
    return ["H"]


def gen_sql_prepare_bound(rnd):
    """SQL PREPARE run through the protocol, then a protocol Bind of the SQL name (one
    namespace upstream)."""
    st, po, po2 = rnd.choice(STMT_NAMES), rnd.choice(PORTAL_NAMES), rnd.choice(PORTAL_NAMES)
    body = rnd.choice(["PREPARE s2 AS SELECT 3", "PREPARE s1 AS SELECT 4", "PREPARE s2 AS SELECT lo_create(0)"])
    name = body.split()[1]
    return [["P", st, body], ["B", po, st], ["E", po, 0]] + rnd.choice([[], [["S"]]]) + \
        [["B", po2, name], ["E", po2, 0]]


def gen_denial_then_redefine(rnd):
    """A denial mid-batch (Execute of a portal never bound), then a name redefined before the
    Sync (Parse, Close, DECLARE through the protocol: the server skips them all), then the name
    used after the Sync."""
    st, po = rnd.choice(STMT_NAMES), rnd.choice(PORTAL_NAMES)
    redefine = rnd.choice([
        [["P", st, gen_sql(rnd)]],
        [["C", "S", st]],
        [["C", "P", po]],
        [["P", "", "DECLARE p1 CURSOR FOR SELECT g FROM generate_series(1, 3) g"], ["B", "", ""], ["E", "", 0]],
    ])
    return [["E", "pz", 0]] + redefine + [["S"], ["B", po, st], ["E", po, 0]]


def gen_bind_fails_in_block(rnd):
    """A transaction block where a Bind fails (at planning, or denied by pgwarden), then the
    portal it named is executed, described and closed."""
    po = rnd.choice(PORTAL_NAMES)
    bad = rnd.choice(["SELECT 1/0", "SELECT id FROM billing.invoices FOR UPDATE", "SELECT lo_create(0)"])
    return [["Q", ["BEGIN"]], ["P", "", "SELECT 1"], ["B", "", ""], ["S"], ["P", "s1", bad], ["B", po, "s1"],
            ["S"], ["E", po, 0], ["D", "P", po], rnd.choice([["C", "P", po], ["E", "", 0]]), ["S"],
            ["Q", [rnd.choice(["ROLLBACK", "COMMIT"])]]]


def gen_long_name_alias(rnd):
    """Two names that differ only after byte 63 (one name upstream): one defined as a read,
    the other closed and redefined (maybe as a write), then the first used."""
    a, b = rnd.sample([LONG_A, LONG_B], 2)
    if rnd.random() < .5:
        return [["P", a, "SELECT 1"], ["S"], ["C", "S", b], ["P", b, gen_sql(rnd)], ["S"], ["B", "", a], ["E", "", 0]]
    return [["P", "", "SELECT 1"], ["B", a, ""], ["S"], ["C", "P", b], ["P", "", gen_sql(rnd)], ["B", b, ""], ["S"],
            ["E", a, 0]]


def gen_step(rnd, last):
    """Parse/Bind/Execute runs (the usual shape) mixed with random single messages, sometimes
    with a Sync in the middle (names reused across a Sync inside one write), and now and then
    one of the shapes above."""
    out = []
    for _ in range(rnd.randint(1, 5)):
        if out and rnd.random() < .25:
            out.append(["S"])
        r = rnd.random()
        if r < .08:
            out += rnd.choice([gen_sql_prepare_bound, gen_denial_then_redefine, gen_bind_fails_in_block,
                               gen_long_name_alias])(rnd)
        elif r < .15:  # one name redefined: Parse, maybe a Sync or Close between, Parse again
            st = rnd.choice(STMT_NAMES)
            out.append(["P", st, gen_sql(rnd)])
            out += rnd.choice([[], [["S"]], [["C", "S", st]], [["S"], ["C", "S", st]]])
            out.append(["P", st, gen_sql(rnd)])
        elif r < .55:
            st, po = rnd.choice(STMT_NAMES), rnd.choice(PORTAL_NAMES)
            out += [["P", st, gen_sql(rnd)], ["B", po, st], ["E", po, rnd.choice([0, 0, 2])]]
        else:
            out.append(gen_message(rnd))
    # always a Sync or Flush last: a Query after an error is skipped and would not answer
    out.append(["H"] if not last and rnd.random() < .15 else ["S"])
    return out


def gen_pipeline(seed, n):
    rnd = random.Random(f"{seed}:{n}")
    k = rnd.randint(1, 5)
    return [gen_step(rnd, i == k - 1) for i in range(k)]


# --- reading answers --------------------------------------------------------------------

class Splitter:
    """Cuts a reply stream into one answer per frontend message, by the protocol alone: each
    answer is self-delimiting, and after an ErrorResponse the server answers nothing until
    Sync (protocol docs, 55.2.3 "Extended Query": "discards messages until Sync")."""

    ENDS = {"P": "1", "B": "2", "C": "3"}

    def __init__(self, messages, skipping=False):
        """skipping: the connection was already skipping to Sync (an error before a Flush)."""
        self.messages, self.answers, self.i, self.skipping = messages, [], 0, skipping
        self._next()

    def _next(self):
        """Close answers that need no reply (skipped messages, Flush)."""
        while self.i < len(self.messages):
            k = self.messages[self.i][0]
            if k == "H" or (self.skipping and k != "S"):
                self.answers.append([])
                self.i += 1
                continue
            self.answers.append([])
            return

    def done(self):
        return self.i >= len(self.messages)

    def feed(self, kind, body):
        kind = kind.decode()
        if kind in "NSA":  # notices, ParameterStatus, notifications: not compared
            return
        if self.done():
            raise Discrepancy("replies", f"unexpected {kind} after every message was answered",
                              key="unexpected")
        m, ans = self.messages[self.i], self.answers[self.i]
        ans.append((kind, body))
        if self._complete(m[0], kind, ans):
            if kind == "E" and m[0] != "Q":
                self.skipping = True
            if kind == "Z":
                self.skipping = False
            self.i += 1
            self._next()

    def _complete(self, k, kind, ans):
        if k == "Bx":
            return kind == "E"
        if k in "SQ":
            return kind == "Z"
        if kind == "E":
            return True
        if k in self.ENDS:
            return kind == self.ENDS[k]
        if k == "D":
            return kind in "Tn"
        if k == "E":
            return kind in "CsI"
        raise Discrepancy("replies", f"{kind} in answer to {k}", key=f"{kind}-answers-{k}")


def read_answers(conn, messages, timeout):
    """One answer per message; conn.skipping carries skip-to-Sync over a Flush-ended step."""
    sp = Splitter(messages, getattr(conn, "skipping", False))
    try:
        while not sp.done():
            sp.feed(*conn.read_msg(timeout))
    except (socket.timeout, TimeoutError):
        raise Discrepancy("hang", f"no answer to message {sp.i} ({show(messages[sp.i])}) within {timeout}s",
                          sp.i, key=messages[sp.i][0]) from None
    except (Closed, ConnectionResetError):
        d = Discrepancy("replies", f"connection closed at message {sp.i}", sp.i, key="closed")
        d.answers = sp.answers  # what came before (the last one partial)
        raise d from None
    conn.skipping = sp.skipping
    return sp.answers


def is_denial(ans):
    for kind, body in ans:
        if kind == "E":
            f = parse_error(body)
            return f.get("C") == "42501" and f.get("M", "").startswith("pgwarden:")
    return False


def sqlstate(ans):
    return next((parse_error(b).get("C") for k, b in ans if k == "E"), None)


def error_text(ans):
    return next((parse_error(b).get("M") for k, b in ans if k == "E"), None)


def completions(ans):
    """How many statements of a simple Query finished before its error."""
    n = 0
    for kind, _ in ans:
        if kind == "E":
            return n
        n += kind in "CI"
    return n


# --- a model of the server's name tables ------------------------------------------------

def norm(sql):
    return re.sub(r"\s+", " ", sql.strip().rstrip(";").strip())


def server_key(name):
    """The server keys statement and portal names by their first 63 bytes (NAMEDATALEN-1)."""
    return name.encode()[:63]


class NameMap(dict):
    """A name table keyed as the server keys it: names equal in their first 63 bytes are one."""

    def __getitem__(self, k):
        return dict.__getitem__(self, server_key(k))

    def __setitem__(self, k, v):
        dict.__setitem__(self, server_key(k), v)

    def get(self, k, default=None):
        return dict.get(self, server_key(k), default)

    def pop(self, k, *default):
        return dict.pop(self, server_key(k), *default)


class ServerModel:
    """Statements and portals as the server holds them, moved by the reference's answers (the
    server says whether each Parse, Bind, Close and statement succeeded). Cursors are portals and
    SQL PREPAREs are statements (one namespace each upstream); portals end with the transaction."""

    def __init__(self):
        self.stmts, self.portals = NameMap(), NameMap()

    def refers(self, m):
        """The SQL a message acts on (None if the server has no such name)."""
        k = m[0]
        if k == "P":
            return m[2]
        if k == "B" or (k in "DC" and m[1] == "S"):
            return self.stmts.get(m[2])
        if k == "E":
            return self.portals.get(m[1])
        if k in "DC":
            return self.portals.get(m[2])
        return None

    def risky(self, sql, depth=0):
        """May pgwarden deny this SQL? Risky catalog entries, SQL EXECUTE of a risky or unknown
        statement (or of itself: Parse s2 "EXECUTE s2"), and None (a name the server does not
        know: it would fail anyway)."""
        if sql is None or depth > 3:
            return True
        if sql.startswith("EXECUTE "):
            return self.risky(self.stmts.get(sql.split()[1]), depth + 1)
        return CATALOG.get(sql, False)

    def apply(self, m, ans):
        """Move the model by one message and its reference answer; returns [(sql, tag)] of the
        statements that completed (CommandComplete), in order."""
        k, kinds = m[0], [a for a, _ in ans]
        if not ans:
            return []
        if k == "P":
            if m[1] == "":
                self.stmts.pop("", None)  # dropped before parsing, even when the Parse fails
            if kinds[-1] == "1":
                self.stmts[m[1]] = m[2]
        elif k == "B" and kinds[-1] == "2":
            self.portals[m[1]] = self.stmts.get(m[2])
        elif k in ("B", "Bx") and kinds[-1] == "E":
            self.bind_failed(m[1], sqlstate(ans))
        elif k == "C" and kinds[-1] == "3":
            (self.stmts if m[1] == "S" else self.portals).pop(m[2], None)
        elif k == "E":
            sql = self.portals.get(m[1])
            if kinds[-1] == "C":
                tag = tag_of(ans[-1][1])
                self.sql_effect(sql, tag)
                return [(sql, tag)]
            if kinds[-1] == "s":  # it ran: pgwarden writes a result tagged SUSPENDED
                return [(sql, "SUSPENDED")]
        elif k == "Q":
            return self.query(m[1], ans)
        elif k == "S":
            self.txn_status(ans[-1][1])
        return []

    def bind_failed(self, portal, state):
        """A Bind that failed from CreatePortal on (exec_bind_message) dropped the old unnamed
        portal; its own portal stays behind, failed (in a transaction block), running nothing.
        Errors that may come before CreatePortal (08P01...) leave the unnamed portal unknown."""
        if portal == "" and state not in ("26000", "25P02", "42P03"):
            self.portals.pop("", None)

    def query(self, stmts, ans):
        self.stmts.pop("", None)
        self.portals.pop("", None)
        done, i = [], 0
        for kind, body in ans:
            if kind in "CI":
                tag = tag_of(body) if kind == "C" else ""
                if kind == "C":
                    self.sql_effect(stmts[i], tag)
                    done.append((stmts[i], tag))
                i += 1
            elif kind == "Z":
                self.txn_status(body)
        return done

    def sql_effect(self, sql, tag):
        """A completed statement's effect on the name tables (COMMIT/ROLLBACK end the portals)."""
        if tag in ("COMMIT", "ROLLBACK"):
            self.portals.clear()
            return
        for rx, action in SQL_EFFECTS:
            hit = rx.match(norm(sql or ""))
            if not hit:
                continue
            name = hit.group(1).lower()  # an SQL identifier, folded (the protocol's are not)
            if action == "declare":
                self.portals[name] = hit.group(2)
            elif action == "close":
                self.portals.pop(name, None)
            elif action == "prepare":
                self.stmts[name] = hit.group(2)
            elif name == "all":  # every named statement; the unnamed one is kept apart upstream
                self.stmts = NameMap({k: v for k, v in self.stmts.items() if k == b""})
            else:
                self.stmts.pop(name, None)
            return

    def txn_status(self, body):
        if body == b"I":  # no transaction: every (non-holdable) portal and cursor is gone
            self.portals.clear()


def tag_of(body):
    return body.rstrip(b"\0").decode()


# --- the two sessions -------------------------------------------------------------------

def login_pgwarden(warden, app):
    c = RawConn(warden.host, warden.port)
    c.login({"user": ACTOR, "database": TARGET, "application_name": app}, warden.tokens[ACTOR])
    return c


def login_reference(pg):
    c = RawConn(pg.host, pg.port)
    opts = (f"-c role={ROLE} -c app.actor_id={ACTOR} -c app.tenant_id={TENANT} "
            "-c default_transaction_read_only=on")
    out = c.login({"user": "postgres", "database": DATABASE, "options": opts}, None)
    c.pid = next(struct.unpack("!I", b[:4])[0] for k, b in out if k == b"K")
    return c


def poisoned(m, ans):
    """The message the reference gets in place of one pgwarden denied."""
    k = m[0]
    if k == "P":
        return ["P", m[1], POISON_SQL]
    if k == "B":
        return ["Bx", m[1], m[2]]
    if k == "E":
        return ["E", POISON_NAME, 0]
    if k == "D":
        return ["D", "S", POISON_NAME]
    if k == "Q":
        n = completions(ans)
        return ["Q", m[1][:n] + [POISON_SQL] + m[1][n + 1:]]
    return m


class Run:
    """One pipeline through pgwarden and the reference, checked after every step."""

    def __init__(self, pg, warden, audit, timeout=8):
        self.pg, self.warden, self.audit, self.timeout = pg, warden, audit, timeout

    def __call__(self, pipeline):
        base = {r[0] for r in self.pg.sql("SELECT oid::bigint FROM pg_largeobject_metadata", DATABASE)}
        self.ref_oids = set()
        app = f"pf_{os.getpid()}_{time.monotonic_ns()}"
        w = login_pgwarden(self.warden, app)
        try:
            r = login_reference(self.pg)
        except Exception:
            w.close()
            raise
        try:
            self.session = self.audit.session_of(app)
            self.model, self.last = ServerModel(), len(pipeline) - 1
            for si, step in enumerate(pipeline):
                if self.step(si, step, w, r, base):
                    break  # the server ended both sessions alike
        finally:
            w.close()
            r.close()
            self.cleanup(base)

    def step(self, si, step, w, r, base):
        """One step to pgwarden, then (poisoned where pgwarden denied) to the reference. Checked
        in order of gravity: the database, the answers message by message, the audit, and after
        the last step the session's identity. A failure carries both sides' answers. True when
        the server ended both sessions at the same message (the pipeline stops there)."""
        w.send(b"".join(encode(m) for m in step))
        try:
            wa = read_answers(w, step, self.timeout)
        except Discrepancy as d:
            if d.key == "closed" and self.reference_closes_too(r, step, d):
                self.check_effects(si, r, base)
                return True
            raise
        ref_step = [poisoned(m, a) if is_denial(a) else m for m, a in zip(step, wa)]
        r.send(b"".join(encode(m) for m in ref_step))
        ra = read_answers(r, ref_step, self.timeout)
        first, ran = None, []
        for mi, (m, a, b) in enumerate(zip(step, wa, ra)):
            self.note_ref_oids(b)
            if first is None:
                try:
                    self.check_denial(m, a, (si, mi))
                    compare(m, a, b, (si, mi))
                except Discrepancy as d:
                    first = d
                ran += self.model.apply(m, b)
        try:
            self.check_effects(si, r, base)
            if first:
                raise first
            self.check_audit(si, ran)
            # Identity at the end only: the check's own Sync would end an implicit transaction
            # and hide a relay that forgets to (the reads of current_user and the tenant in
            # READS catch a change mid-pipeline, against the reference's rows).
            if si == self.last and wa[-1] and wa[-1][-1] in (("Z", b"I"), ("Z", b"T")):
                self.check_identity(si, w)
        except Discrepancy as d:
            d.args = (d.args[0] + "\n" + trace(si, step, ref_step, wa, ra),)
            raise

    def reference_closes_too(self, r, step, d):
        """pgwarden's connection ended at message d.where: so does the reference's, when the
        server itself ends the session there (a FATAL, e.g. PostgreSQL's "BeginTransactionBlock:
        unexpected state" for EXECUTE of a prepared BEGIN inside a Query's implicit block)."""
        wa = d.answers + [[]] * (len(step) - len(d.answers))
        ref_step = [poisoned(m, a) if is_denial(a) else m for m, a in zip(step, wa)]
        r.send(b"".join(encode(m) for m in ref_step))
        try:
            read_answers(r, ref_step, self.timeout)
        except Discrepancy as e:
            return e.key == "closed" and e.where == d.where
        return False

    def check_denial(self, m, a, where):
        state = sqlstate(a)
        if state == "25006":
            raise Discrepancy("denial", f"{show(m)}: the server's read-only wall answered (25006), "
                              "pgwarden let it through", where, key=f"readonly-wall-at-{m[0]}")
        if not is_denial(a):
            return
        if m[0] == "Q":
            k = completions(a)
            sql = m[1][k] if k < len(m[1]) else None
            if sql is not None and not self.model.risky(sql) and any(map(self.model.risky, m[1][k + 1:])):
                raise Discrepancy("denial", f"{show(m)}: denied at statement {k} ({sql!r}); the server would "
                                  "have run it and failed only at a later, risky statement", where,
                                  key="query-denied-before-its-statement")
        else:
            sql = self.model.refers(m)
        if m[0] == "Q" and any(x in PARSER_ERRORS for x in m[1]):
            sql = next(x for x in m[1] if x in PARSER_ERRORS)  # the server parses the whole string first
        if m[0] in "PQ" and sql in FAILS:
            raise Discrepancy("denial", f"{show(m)}: the server rejects {sql!r} itself, but pgwarden answered "
                              f"with a denial: {error_text(a)}", where,
                              key=f"server-error-as-denial-at-{m[0]}")
        if not self.model.risky(sql):
            raise Discrepancy("denial", f"{show(m)} denied, but it acts on {sql!r}, which the server "
                              f"runs read-only: {error_text(a)}", where,
                              key=f"false-denial-at-{m[0]}")

    def check_effects(self, si, r, base):
        """Nothing pgwarden's session did may show on the database: scratch rows, large objects
        (other than those the reference created, whose oids it saw returned), advisory locks."""
        rows, los, locks = self.pg.sql(
            f"SELECT (SELECT count(*) FROM {SCRATCH}), (SELECT array_agg(oid::bigint) FROM pg_largeobject_metadata), "
            f"(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid <> {r.pid})", DATABASE)[0]
        created = set(los or ()) - base - self.ref_oids
        if rows or created or locks:
            raise Discrepancy("effects", f"after step {si}: scratch rows {rows}, new large objects {sorted(created)}, "
                              f"advisory locks held through pgwarden {locks}", (si, None),
                              key="database-changed")

    def note_ref_oids(self, ans):
        for k, body in ans:
            if k == "D":
                for v in rows_of([(b"D", body)])[0]:
                    if v and v.isdigit():
                        self.ref_oids.add(int(v))

    def check_identity(self, si, w):
        w.send(encode(["P", "pf_check", CHECK_SQL]) + encode(["B", "pf_checkp", "pf_check"]) +
               encode(["E", "pf_checkp", 0]) + encode(["S"]))
        got = w.read_until_ready(self.timeout)
        rows = rows_of(got)
        if rows != [IDENTITY]:
            raise Discrepancy("effects", f"after step {si}: pgwarden's session is {rows} "
                              f"(errors {[parse_error(b) for k, b in got if k == 'E']}), "
                              f"pinned {IDENTITY}", (si, None), key="identity")

    def check_audit(self, si, ran):
        """The new result records of this session: each CommandComplete pgwarden relayed, in
        order, with the SQL the server ran under that name."""
        got = self.audit.results(self.session, want=len(ran))
        want = [(sql, tag) for sql, tag in ran]
        for i, (w_, g) in enumerate(zip(want, got)):
            if w_[1] != g[1] or not same_sql(g[0], w_[0]):
                raise Discrepancy("audit", f"step {si}: completion {i} ran {w_[0]!r} ({w_[1]}), "
                                  f"but the audit says {g[0]!r} ({g[1]})", (si, None), key="wrong-sql")
        if len(got) != len(want):
            raise Discrepancy("audit", f"step {si}: {len(want)} statements completed, "
                              f"{len(got)} result records: {got} vs {want}", (si, None), key="count")

    def cleanup(self, base):
        wait_ready(self.pg)
        keep = ",".join(str(o) for o in base) or "0"
        self.pg.sql(f"SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid::bigint NOT IN ({keep})",
                    DATABASE)
        self.pg.sql(f"TRUNCATE {SCRATCH}", DATABASE)


def trace(si, step, ref_step, wa, ra):
    """The failing step, message by message: what pgwarden and PostgreSQL answered."""
    lines = [f"    step {si} answers (message | pgwarden | PostgreSQL, poison in [brackets]):"]
    for m, rm, a, b in zip(step, ref_step, wa, ra):
        poison = f" [{show(rm)}]" if rm is not m else ""
        lines.append(f"      {show(m)}{poison} | {fmt_answer(a)} | {fmt_answer(b)}")
    return "\n".join(lines)


def same_sql(audited, ran):
    """The audit names what ran: the same text, or the DECLARE that made the cursor."""
    if ran is None:
        return False
    a, r = norm(audited), norm(ran)
    return a == r or (a.upper().startswith("DECLARE ") and a.endswith(" FOR " + r))


def compare(m, a, b, where):
    """pgwarden's answer a against the reference's answer b to message m."""
    if is_denial(a):
        if sqlstate(b) is None:
            raise Discrepancy("replies", f"{show(m)}: pgwarden denied, the reference's poison did not fail: {b}",
                              where, key="poison")
        a, b = strip_error(a), strip_error(b)
    ka, kb = "".join(k for k, _ in a), "".join(k for k, _ in b)
    if ka != kb:
        raise Discrepancy("replies", f"{show(m)}: pgwarden answered {ka or '-'} "
                          f"{fmt_answer(a)}, PostgreSQL {kb or '-'} {fmt_answer(b)}", where,
                          key=f"shape-at-{m[0]}")
    for (k, x), (_, y) in zip(a, b):
        same = sqlstate([(k, x)]) == sqlstate([(k, y)]) if k in "EN" else x == y
        if not same:
            raise Discrepancy("replies", f"{show(m)}: {k} differs: pgwarden {fmt_answer([(k, x)])}, "
                              f"PostgreSQL {fmt_answer([(k, y)])}", where,
                              key=f"{k}-differs-at-{m[0]}")


def strip_error(ans):
    """The answer with its error's fields dropped (the kind stays in place)."""
    return [(k, b"" if k == "E" else body) for k, body in ans]


def fmt_answer(ans):
    out = []
    for k, body in ans:
        if k == "E":
            f = parse_error(body)
            out.append(f"E({f.get('C')} {f.get('M', '')[:60]})")
        elif k in "CZ":
            out.append(f"{k}({tag_of(body)})")
        else:
            out.append(k)
    return "[" + " ".join(out) + "]"


# --- the audit log ----------------------------------------------------------------------

class AuditReader:
    """Follows pgwarden's audit log: the session of a connection (by its application_name) and,
    per session, the result records with a CommandComplete tag, each with its statement's SQL."""

    def __init__(self, path):
        self.path, self.offset, self.stmts, self.pending = path, 0, {}, {}
        self.sessions = {}

    def _read(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a torn last line is read next time
        self.offset += end
        for line in data[:end].splitlines():
            rec = json.loads(line)
            ev, sess = rec.get("event"), rec.get("session")
            if ev == "connect" and rec.get("application_name"):
                self.sessions[rec["application_name"]] = sess
            elif ev == "statement":
                self.stmts[rec["seq"]] = rec.get("sql", "")
            elif ev == "result" and rec.get("tag") is not None and "pf_check" not in self.stmts.get(rec.get("ref"), ""):
                self.pending.setdefault(sess, []).append((self.stmts.get(rec.get("ref"), "?"), rec["tag"]))

    def session_of(self, app, timeout=5):
        """The session id of the connection just made with application_name app (unique per
        run). Not by client address: an earlier test's connection from the same port may have
        its connect record in the log while this one's is still on its way (written lazily)."""
        deadline = time.monotonic() + timeout
        while True:
            self._read()
            if app in self.sessions:
                return self.sessions[app]
            if time.monotonic() > deadline:
                raise Discrepancy("audit", f"no connect record for application_name {app}", key="connect")
            time.sleep(0.01)

    def results(self, session, want=0, timeout=2):
        """The session's (sql, tag) results since the last call, waiting up to timeout for want."""
        deadline = time.monotonic() + timeout
        while True:
            self._read()
            if len(self.pending.get(session, ())) >= want or time.monotonic() > deadline:
                return self.pending.pop(session, [])
            time.sleep(0.01)


# --- driving it -------------------------------------------------------------------------

def setup(pg):
    for sql in SETUP_SQL.strip().split(";\n"):
        pg.sql(sql, DATABASE)


def run_one(pg, warden, audit, pipeline):
    """None if the pipeline passes every check, else its Discrepancy (a lost connection also
    carries the tails of the server's and pgwarden's logs)."""
    try:
        Run(pg, warden, audit)(pipeline)
    except Discrepancy as d:
        if d.key == "closed":
            d.args = (f"{d.args[0]}\n--- postgres log:\n{pg.log_tail(8)}\n--- pgwarden stderr:\n"
                      f"{warden.stderr_text(8)}",)
            wait_ready(pg)
        return d
    return None


def wait_ready(pg, timeout=30):
    """Wait out the server's crash recovery, if a backend crashed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pg.sql("SELECT 1")
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def shrink(pg, warden, audit, pipeline, d, budget=150, deadline=None):
    """A smaller pipeline that fails with the same discrepancy class (greedy: drop a step, then
    one message at a time; every step keeps its closing Sync or Flush, the last its Sync)."""
    runs = 0
    changed = True
    while changed and runs < budget and (deadline is None or time.monotonic() < deadline):
        changed = False
        candidates = [pipeline[:i] + pipeline[i + 1:] for i in range(len(pipeline))]
        candidates += [pipeline[:i] + [st[:j] + st[j + 1:]] + pipeline[i + 1:]
                       for i, st in enumerate(pipeline) for j in range(len(st) - 1)]
        for cand in candidates:
            if not cand or cand[-1][-1] != ["S"] or runs >= budget:
                continue
            runs += 1
            e = run_one(pg, warden, audit, cand)
            if e is not None and key_of(e) == key_of(d):
                pipeline, d, changed = cand, e, True
                break
    return pipeline, d


def report(seed, n, pipeline, d):
    steps = "\n".join("  step %d: %s" % (i, " | ".join(show(m) for m in st)) for i, st in enumerate(pipeline))
    return (f"{d}\n  seed {seed} case {n}; replay: python3 tests/integration/protofuzz.py "
            f"--pipeline '{json.dumps(pipeline)}'\n{steps}")


def fuzz(pg, warden, seed, cases=None, seconds=None, shrink_budget=150, out=print):
    """Run generated pipelines until cases or seconds (shrinking included) run out. Returns
    ({class: (n, pipeline, discrepancy)} with the first, shrunk failure of each class, the
    number of pipelines run)."""
    audit = AuditReader(warden.audit_path)
    found, n = {}, 0
    deadline = time.monotonic() + seconds if seconds is not None else None
    while (cases is None or n < cases) and (deadline is None or time.monotonic() < deadline):
        pipeline = gen_pipeline(seed, n)
        d = run_one(pg, warden, audit, pipeline)
        if d is not None and key_of(d) not in found:
            small, sd = shrink(pg, warden, audit, pipeline, d, shrink_budget, deadline)
            found[key_of(d)] = (n, small, sd)
            out(report(seed, n, small, sd))
        n += 1
    return found, n


def key_of(d):
    """A discrepancy's bug class: distinct keys are reported apart."""
    return f"{d.cls}/{d.key}"


def exclude(rx):
    """Drop matching statements from the generator's pools."""
    for pool in (READS, FAILS, RISKY, TXN, CURSORS):
        pool[:] = [x for x in pool if not rx.search(x)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0, help="how long to fuzz (default 1)")
    ap.add_argument("--seed", default=None, help="seed (default: random, printed)")
    ap.add_argument("--case", type=int, default=None, help="replay case N of --seed only")
    ap.add_argument("--pipeline", default=None, help="replay this JSON pipeline only")
    ap.add_argument("--no-shrink", action="store_true", help="report failures unshrunk")
    ap.add_argument("--exclude", default=None, metavar="REGEX",
                    help="leave out statements matching REGEX (to get past a known bug class)")
    args = ap.parse_args(argv)
    if args.exclude:
        exclude(re.compile(args.exclude))
    from pgserver import PgServer
    from warden import Warden
    seed = args.seed or str(random.randrange(1 << 32))
    pg = PgServer().start()
    warden = None
    try:
        warden = Warden(pg).start()
        setup(pg)
        audit = AuditReader(warden.audit_path)
        if args.pipeline or args.case is not None:
            pipeline = json.loads(args.pipeline) if args.pipeline else gen_pipeline(seed, args.case)
            d = run_one(pg, warden, audit, pipeline)
            print(report(seed, args.case, pipeline, d) if d else "pass")
            return 1 if d else 0
        print(f"seed {seed}, {args.minutes} min", flush=True)
        found, n = fuzz(pg, warden, seed, seconds=args.minutes * 60,
                        shrink_budget=0 if args.no_shrink else 150, out=lambda s: print(s, flush=True))
        print(f"{n} pipelines, {len(found)} discrepancy classes: {sorted(found)}")
        return 1 if found else 0
    finally:
        if warden:
            warden.cleanup()
        pg.stop()


if __name__ == "__main__":
    sys.exit(main())
