"""conftest.py - fixtures for pgwarden's integration tests.

  pg               session: a throwaway PostgreSQL 15 with tests/sql/demo_schema.sql loaded
  pgwarden         session: ./pgwarden in front of pg (or, with PGWARDEN_TESTS_DIRECT=1, a
                   stand-in that connects straight to pg, to validate the tests themselves)
  pgwarden_factory function: start extra pgwarden processes with custom config
  direct           true when running in direct mode

Tests marked `identity` check pgwarden's own behaviour (auth, startup policy, limits) and
are skipped in direct mode; everything else must pass both ways.
"""
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from pgserver import PgServer  # noqa: E402
from warden import DirectWarden, Warden  # noqa: E402

DIRECT = os.environ.get("PGWARDEN_TESTS_DIRECT", "") not in ("", "0", "no")


# Per-test wall-clock limit (seconds): a proxy that stops answering must fail one test, not
# hang CI. SIGALRM interrupts psycopg's and the raw client's waits in the main thread.
TEST_TIMEOUT = int(os.environ.get("PGWARDEN_TEST_TIMEOUT", "90"))


@pytest.fixture(autouse=True)
def _test_timeout(request):
    def on_alarm(signum, frame):
        raise TimeoutError(f"{request.node.name} took longer than {TEST_TIMEOUT} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def pytest_collection_modifyitems(config, items):
    if not DIRECT:
        return
    skip = pytest.mark.skip(reason="PGWARDEN_TESTS_DIRECT=1: tests pgwarden itself")
    for item in items:
        if "identity" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def direct():
    return DIRECT


@pytest.fixture(scope="session")
def pg():
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _session_warden(pg):
    w = (DirectWarden if DIRECT else Warden)(pg)
    try:
        w.start()
        yield w
    finally:
        w.cleanup()


@pytest.fixture
def pgwarden(_session_warden, request):
    """The shared pgwarden. After each test it must still be alive: a crash fails the test
    that caused it (with pgwarden's stderr) and the process is restarted for the next one."""
    w = _session_warden
    yield w
    if not w.alive():
        rc = w.proc.returncode if w.proc else None
        err = w.stderr_text()
        w.proc = None
        w.extra_config = ""
        w.start()
        pytest.fail(f"pgwarden died during {request.node.name} (exit {rc}); stderr:\n{err}")


@pytest.fixture
def pgwarden_factory(pg, request):
    """start(extra_config="", extra_tokens=(), auth_timeout=2) -> a new running Warden
    (DirectWarden in direct mode). All are stopped at the end of the test; one that died
    fails the test."""
    started = []

    def start(**kw):
        w = (DirectWarden if DIRECT else Warden)(pg, **kw)
        started.append(w)
        return w.start()

    yield start
    dead = [w for w in started if w.proc is not None and not w.alive()]
    msgs = [f"pgwarden ({w.config_path}) died (exit {w.proc.returncode}):\n{w.stderr_text()}"
            for w in dead]
    for w in started:
        w.cleanup()
    if msgs:
        pytest.fail("\n".join(msgs))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of pgwarden's stderr to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when in ("call", "teardown"):
        w = item.funcargs.get("pgwarden") if hasattr(item, "funcargs") else None
        if w is not None and not w.direct:
            rep.sections.append(("pgwarden stderr (tail)", w.stderr_text(12)))
