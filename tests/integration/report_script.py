"""report_script.py - a scripted audit log, record by record as pgwarden writes them (CONTRACT §5),
with a valid hash chain: the input of `audit report`'s golden-output tests."""
import hashlib
import json

ZERO = "0" * 64

WINDOWS = [
    {"name": "sec-42", "target": "prod", "start": "2026-11-24T22:00:00Z", "end": "2026-11-24T23:30:00Z",
     "approved_by": "ops:larry", "reason": "RLS hardening SEC-42 <b>&\"'", "actors": ["user:brent"]},
    {"name": "weekly", "target": "prod", "weekly": "tue,thu 22:00-23:30", "timezone": "America/Santiago",
     "approved_by": "ops:larry", "reason": "weekly maintenance", "actors": []},
]
IDENT = {"brent": dict(actor="user:brent", role="dba", tenant="acme"),
         "jimmie": dict(actor="user:jimmie", role="bookkeeper", tenant="acme")}


def session(n, who, target="prod"):
    return dict(session=n, **IDENT[who], client="127.0.0.1:5000", target=target,
                environment="production" if target == "prod" else "staging")


def script():
    """(ts, fields) of each record, in order."""
    b = session(7, "brent")
    j = session(8, "jimmie")
    js = session(9, "jimmie", "staging")
    cfg = "ab" * 32
    recs = [
        ("2026-11-24T21:00:00.000000Z", dict(event="start", config=cfg, windows=WINDOWS)),
        ("2026-11-24T21:10:00.000000Z", dict(event="connect", **j, application_name="psql")),
        ("2026-11-24T21:10:00.100000Z", dict(event="auth_ok", **j)),
        ("2026-11-24T21:10:01.000000Z", dict(event="statement", **j, protocol="simple",
                                              sql="UPDATE invoices SET paid = true", decision="deny",
                                              rule="write-outside-window",
                                              reason="pgwarden: writes to production need an approved window")),
        ("2026-11-24T21:10:02.000000Z", dict(event="statement", **j, protocol="simple",
                                              sql="SELECT count(*) FROM invoices", decision="allow")),
        ("2026-11-24T21:10:02.001000Z", dict(event="result", **j, ref=5, tag="SELECT 1", duration_us=900)),
        ("2026-11-24T22:00:00.005000Z", dict(event="window_open", window="sec-42", target="prod")),
        ("2026-11-24T22:01:00.000000Z", dict(event="connect", **b)),
        ("2026-11-24T22:01:00.100000Z", dict(event="auth_ok", **b)),
        ("2026-11-24T22:02:00.000000Z", dict(event="statement", **b, protocol="simple",
                                              sql="ALTER TABLE invoices ENABLE ROW LEVEL SECURITY",
                                              decision="allow", window="sec-42")),
        ("2026-11-24T22:02:00.050000Z", dict(event="result", **b, ref=10, tag="ALTER TABLE", duration_us=50000)),
        ("2026-11-24T22:03:00.000000Z", dict(event="statement", **b, protocol="extended",
                                              sql="UPDATE invoices SET tenant = $1 WHERE tenant IS NULL",
                                              decision="allow", window="sec-42")),
        ("2026-11-24T22:03:00.020000Z", dict(event="result", **b, ref=12, tag="UPDATE 17", duration_us=20000)),
        ("2026-11-24T22:04:00.000000Z", dict(event="statement", **b, protocol="simple",
                                              sql="INSERT INTO audit_notes VALUES ('<script>x</script>')",
                                              decision="allow", window="sec-42")),
        ("2026-11-24T22:04:00.010000Z", dict(event="result", **b, ref=14, tag="INSERT 0 2", duration_us=10000)),
        ("2026-11-24T22:05:00.000000Z", dict(event="statement", **b, protocol="simple",
                                              sql="UPDATE invoices SET paid = 1/0", decision="allow",
                                              window="sec-42")),
        ("2026-11-24T22:05:00.010000Z", dict(event="result", **b, ref=16, sqlstate="22012", duration_us=800)),
        ("2026-11-24T22:06:00.000000Z", dict(event="statement", **j, protocol="simple",
                                              sql="DELETE FROM invoices\nWHERE id = 3", decision="deny",
                                              rule="write-outside-window",
                                              reason="pgwarden: window sec-42 is open but user:jimmie is not "
                                                     "on its actors list")),
        ("2026-11-24T22:07:00.000000Z", dict(event="statement", **b, protocol="simple",
                                              sql="GRANT SELECT ON invoices TO anon", decision="deny",
                                              rule="grant-to-protected-role",
                                              reason="pgwarden: granting to protected role \"anon\" is not allowed")),
        ("2026-11-24T23:30:00.005000Z", dict(event="window_close", window="sec-42", target="prod")),
        ("2026-11-24T23:40:00.000000Z", dict(event="statement", **js, protocol="simple",
                                              sql="INSERT INTO j_markers VALUES ('x')", decision="allow")),
        ("2026-11-24T23:40:00.001000Z", dict(event="result", **js, ref=21, tag="INSERT 0 1", duration_us=700)),
        ("2026-11-24T23:41:00.000000Z", dict(event="disconnect", **b)),
        ("2026-11-24T23:41:30.000000Z", dict(event="reload", config="cd" * 32, windows=[
            dict(WINDOWS[0], reason="RLS hardening SEC-42, extended to SEC-43"), WINDOWS[1]], accepted=True)),
        ("2026-11-24T23:41:40.000000Z", dict(event="reload", config="ef" * 32, windows=[], accepted=False,
                                             error="pgwarden.ini:9: start: \"x\" is not an RFC 3339 time")),
        ("2026-11-24T23:42:00.000000Z", dict(event="stop")),
    ]
    return recs


def write_log(path):
    """Write the scripted log with its chain; returns the lines (bytes, without newlines)."""
    prev, out = ZERO, []
    for seq, (ts, fields) in enumerate(script(), 1):
        rec = {"ts": ts, "seq": seq, **fields, "prev": prev}
        line = json.dumps(rec, separators=(",", ":"), ensure_ascii=False).encode()
        out.append(line)
        prev = hashlib.sha256(line).hexdigest()
    path.write_bytes(b"".join(x + b"\n" for x in out))
    return out
