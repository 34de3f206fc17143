"""test_audit_report.py - `pgwarden audit report` (CONTRACT §1): per window its approval, who wrote
what and what was refused; per actor the same outside windows; the chain verified and said so at
the top. Golden outputs of a scripted log (report_script.py), the HTML checked for
well-formedness and escaping, filters, a broken chain, and a report of a live session.
"""
import html.parser
import json
import re
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from audit_util import cli, records, wait_records
from policy_helpers import window_section
from report_script import write_log

GOLDEN = Path(__file__).parent / "golden"


def report(*args):
    p = cli("audit", "report", *map(str, args))
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def scripted_log(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path)
    return path


def test_golden_text(scripted_log):
    rc, out, err = report(scripted_log)
    assert rc == 0, err
    assert out == (GOLDEN / "audit_report.txt").read_text()


def test_golden_json(scripted_log):
    rc, out, err = report("--format", "json", scripted_log)
    assert rc == 0, err
    assert json.loads(out) == json.loads((GOLDEN / "audit_report.json").read_text())
    doc = json.loads(out)
    sec = doc["windows"][0]
    assert sec["name"] == "sec-42" and sec["approval"]["approved_by"] == "ops:larry"
    assert {(w["kind"], w["rows"]) for w in sec["writes"]} == {("ALTER TABLE", None), ("UPDATE", 17),
                                                               ("INSERT", 2), ("error 22012", None)}
    assert [r["rule"] for r in sec["refused"]] == ["write-outside-window", "grant-to-protected-role"]
    assert doc["chain"]["verified"] is True and doc["chain"]["start"] == "seq1"
    # The approval as it stood at each start/reload that changed it, and every config change.
    assert [(a["seq"], a["approval"]["reason"]) for a in sec["approvals"]] == [
        (1, "RLS hardening SEC-42 <b>&\"'"), (24, "RLS hardening SEC-42, extended to SEC-43")]
    assert sec["approval"]["reason"] == "RLS hardening SEC-42, extended to SEC-43"
    assert len(doc["windows"][1]["approvals"]) == 1, "an unchanged approval is listed once"
    assert [(c["seq"], c["event"], c["accepted"]) for c in doc["configuration"]] == [
        (1, "start", None), (24, "reload", True), (25, "reload", False)]
    assert "RFC 3339" in doc["configuration"][2]["error"]


class StrictHTML(html.parser.HTMLParser):
    """Well-formedness as we write it: every element closed in order, no script, no outside
    resource, no raw '<' in text, entities only the five we emit or numeric ones."""
    VOID = {"meta", "br"}

    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.stack, self.errors, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "link", "img"):
            self.errors.append(f"<{tag}> is not allowed")
        for k, v in attrs:
            if k.startswith("on") or k in ("src", "href") or (v and "url(" in v):
                self.errors.append(f"attribute {k}={v!r}")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close {self.stack[-1:] or 'anything'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if "<" in data or ">" in data:
            self.errors.append(f"raw angle bracket in text: {data!r}")
        self.text.append(data)

    def handle_entityref(self, name):
        if name not in ("amp", "lt", "gt", "quot"):
            self.errors.append(f"entity &{name};")
        self.text.append(html.unescape(f"&{name};"))

    def handle_charref(self, name):
        self.text.append(html.unescape(f"&#{name};"))


def check_html(doc):
    assert doc.startswith("<!DOCTYPE html>\n")
    p = StrictHTML()
    p.feed(doc)
    p.close()
    assert not p.errors, p.errors
    assert p.stack == [], f"unclosed: {p.stack}"
    assert "url(" not in doc and "@import" not in doc and "http" not in doc.lower()
    return "".join(p.text)


def test_golden_html_well_formed_and_escaped(scripted_log):
    rc, out, err = report("--format", "html", scripted_log)
    assert rc == 0, err
    assert out == (GOLDEN / "audit_report.html").read_text()
    text = check_html(out)
    # What the log says comes out as text, never as markup.
    assert "<script>" not in out
    assert "RLS hardening SEC-42 <b>&\"'" in text and "<b>" not in out
    assert "DELETE FROM invoices\nWHERE id = 3" in text


def test_hostile_values_stay_text(tmp_path):
    path = tmp_path / "hostile.jsonl"
    nasty = "x</td></tr></table><script>alert(1)</script><img src=x onerror=y>\x01\u202e&amp;"
    lines = write_log(path)
    # Append a hostile denial to a valid chain: the report must still be well-formed.
    import hashlib
    rec = {"ts": "2026-11-24T23:50:00.000000Z", "seq": len(lines) + 1, "event": "statement",
           "actor": nasty, "target": "prod", "protocol": "simple", "sql": nasty, "decision": "deny",
           "rule": "rule:" + nasty, "reason": nasty, "prev": hashlib.sha256(lines[-1]).hexdigest()}
    with open(path, "ab") as f:
        f.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
    rc, out, err = report("--format", "html", path)
    assert rc == 0, err
    text = check_html(out)
    assert "<script>alert(1)</script>" in text and "\\x01" in text
    rc, out, _ = report(path)
    assert "\x01" not in out and "\\x01" in out


def test_filters(scripted_log):
    rc, out, _ = report("--format", "json", "--window", "sec-42", scripted_log)
    doc = json.loads(out)
    assert [w["name"] for w in doc["windows"]] == ["sec-42"] and "outside" not in doc
    rc, out, _ = report("--format", "json", "--target", "staging", scripted_log)
    doc = json.loads(out)
    assert doc["windows"] == []
    assert [(w["actor"], w["target"], w["kind"]) for w in doc["outside"]["writes"]] == [
        ("user:jimmie", "staging", "INSERT")]
    assert doc["outside"]["refused"] == []
    rc, out, _ = report("--format", "json", "--since", "2026-11-24T22:03:00Z", "--until",
                        "2026-11-24T22:06:30Z", scripted_log)
    doc = json.loads(out)
    assert {w["kind"] for w in doc["windows"][0]["writes"]} == {"UPDATE", "INSERT", "error 22012"}
    assert [r["seq"] for r in doc["windows"][0]["refused"]] == [18]
    rc, out, _ = report("--format", "json", "--since", "1d", scripted_log)  # relative: nothing that recent
    assert json.loads(out)["outside"] == {"writes": [], "refused": []}
    for bad in (["--format", "xml"], ["--since", "yesterday"], ["--bogus", "1"], ["--window"]):
        p = cli("audit", "report", *bad, scripted_log) if bad != ["--window"] else cli("audit", "report", "--window")
        assert p.returncode == 2 and "usage" in p.stderr, (bad, p.stderr)


def test_broken_chain_is_said_at_the_top(scripted_log, tmp_path):
    lines = scripted_log.read_bytes().splitlines()
    lines[9] = lines[9].replace(b"ENABLE ROW LEVEL SECURITY", b"DISABLE ROW LEVEL SECURITY")
    bad = tmp_path / "edited.jsonl"
    bad.write_bytes(b"\n".join(lines) + b"\n")
    rc, out, _ = report(bad)
    assert rc == 1
    head = out.splitlines()[:3]
    assert any("NOT VERIFIED" in x and "edited" in x for x in head), head
    rc, out, _ = report("--format", "json", bad)
    assert json.loads(out)["chain"]["verified"] is False
    # A set that starts mid-chain is flagged.
    mid = tmp_path / "mid.jsonl"
    mid.write_bytes(b"\n".join(scripted_log.read_bytes().splitlines()[5:]) + b"\n")
    rc, out, _ = report(mid)
    assert rc == 0 and "does not start at seq 1 or at a checkpoint" in out


def test_report_of_a_live_session(pgwarden_factory):
    now = int(time.time())
    w = pgwarden_factory(extra_config=window_section("j-rep", now - 60, now + 3600, actors="user:ada"))
    with w.connect("user:ada", dbname="prod") as c:
        c.execute("CREATE TEMP TABLE j_rep (x int)")
        c.execute("INSERT INTO j_rep SELECT generate_series(1, 5)")
        c.execute("UPDATE j_rep SET x = x + 1 WHERE x > 2")
    with w.connect("user:jimmie", dbname="prod") as c:
        with pytest.raises(errors.InsufficientPrivilege) as ei:
            c.execute("CREATE TEMP TABLE j_rep2 (x int)")
    w.stop()
    rc, out, err = report("--format", "json", w.audit_path)
    assert rc == 0, err
    doc = json.loads(out)
    sec = [x for x in doc["windows"] if x["name"] == "j-rep"][0]
    assert sec["approval"]["actors"] == ["user:ada"] and sec["openings"][0]["close"] is None
    got = {(x["actor"], x["kind"]): x["rows"] for x in sec["writes"]}
    assert got[("user:ada", "INSERT")] == 5 and got[("user:ada", "UPDATE")] == 3, got
    assert ("user:ada", "CREATE TABLE") in got
    ref = sec["refused"]
    assert len(ref) == 1 and ref[0]["actor"] == "user:jimmie"
    assert ref[0]["reason"] == ei.value.diag.message_primary
    assert doc["chain"]["verified"] is True and doc["chain"]["start"] == "seq1"
