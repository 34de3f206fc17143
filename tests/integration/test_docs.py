"""test_docs.py - the README's config reference is checked against the code's key tables
(conf/config_keys.c), so the two cannot drift: every key the parser accepts is documented in its
section, and the README documents no key the parser would refuse."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECTIONS = {"main_keys": "pgwarden", "target_keys": "target.NAME", "window_keys": "window.NAME",
            "rule_keys": "rule.NAME"}


def code_keys():
    src = (REPO / "conf/config_keys.c").read_text()
    keys = {}
    for table, section in SECTIONS.items():
        m = re.search(rf"static const key_def {table}\[\] = \{{(.*?)\n\}};", src, re.S)
        assert m, f"{table} not found in conf/config_keys.c"
        keys[section] = set(re.findall(r'\{ "([a-z_]+)",', m.group(1)))
        assert keys[section], table
    return keys


def readme_keys():
    keys = {s: set() for s in SECTIONS.values()}
    for line in (REPO / "README.md").read_text().splitlines():
        m = re.match(r"\| (pgwarden|target\.NAME|window\.NAME|rule\.NAME) \| (.+?) \|", line)
        if m:
            keys[m.group(1)] |= set(re.findall(r"`([a-z_]+)`", m.group(2)))
    return keys


def test_readme_config_reference_matches_the_parser():
    code, doc = code_keys(), readme_keys()
    for section in SECTIONS.values():
        assert code[section] - doc[section] == set(), f"[{section}] keys missing from README"
        assert doc[section] - code[section] == set(), f"[{section}] README documents unknown keys"


def test_help_lists_every_command():
    import subprocess
    from warden import PGWARDEN
    out = subprocess.run([str(PGWARDEN), "--help"], capture_output=True, text=True, timeout=10).stdout
    for cmd in ("-c FILE", "--check", "--version", "--explain", "token new", "audit verify", "audit show"):
        assert cmd in out, cmd
