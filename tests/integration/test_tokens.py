"""test_tokens.py - actor tokens done properly (CONTRACT §3): SCRAM verifiers made by
PostgreSQL itself, channel binding over TLS, drivers doing SCRAM on their own, and every
failure cause answering the same 28P01."""
import asyncio
import secrets
import subprocess

import psycopg
import pytest

pytestmark = pytest.mark.identity


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-tokens")
    # RSA with SHA-256: the tls-server-end-point hash uses the certificate's digest
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(d / "server.key"), "-out", str(d / "server.crt")],
                   check=True, capture_output=True)
    return d / "server.crt", d / "server.key"


def pg_made_verifier(pg, password):
    """A SCRAM-SHA-256 verifier computed by PostgreSQL itself for 'password'."""
    role = "tokv_" + secrets.token_hex(4)
    with psycopg.connect(pg.admin_dsn(), autocommit=True) as c:
        c.execute("SET password_encryption = 'scram-sha-256'")
        c.execute(f"CREATE ROLE {role} PASSWORD %s".replace("%s", "'" + password.replace("'", "''") + "'"))
        (verifier,) = c.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
        c.execute(f"DROP ROLE {role}")
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    return verifier


@pytest.mark.parametrize("password", ["plain-ascii-token", "pässwörd with spaces", "\u2168 roman nine"])
def test_postgresql_made_verifier_logs_in(pg, pgwarden_factory, password):
    """A token record holding pg_authid.rolpassword authenticates the password PostgreSQL hashed
    (SASLprep included), and nothing else."""
    line = f"{pg_made_verifier(pg, password)} agent:pgv agent_rw acme"
    w = pgwarden_factory(extra_tokens=[line])
    with psycopg.connect(w.dsn("agent:pgv", token=password, dbname="staging")) as c:
        assert c.execute("SELECT current_user, current_setting('app.actor_id')").fetchone() == \
            ("agent_rw", "agent:pgv")
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(w.dsn("agent:pgv", token=password + "!", dbname="staging"))


def test_channel_binding_required_over_tls(pg, pgwarden_factory, tls_files):
    """libpq's channel_binding=require works against pgwarden's SCRAM-SHA-256-PLUS, and refuses
    to proceed without TLS (nothing for the binding to bind to)."""
    crt, key = tls_files
    password = secrets.token_urlsafe(20)
    line = f"{pg_made_verifier(pg, password)} agent:cb agent_rw acme"
    w = pgwarden_factory(extra_config=f"tls_cert_file = {crt}\ntls_key_file = {key}\nplaintext_auth = no\n",
                         extra_tokens=[line])
    with psycopg.connect(w.dsn("agent:cb", token=password, dbname="staging", sslmode="require",
                               channel_binding="require")) as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("SELECT current_setting('app.tenant_id')").fetchone() == ("acme",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(w.dsn("agent:cb", token=password, dbname="staging", sslmode="disable",
                              channel_binding="require"))
    # plain SCRAM over plaintext still works (SCRAM never reveals the token)
    with psycopg.connect(w.dsn("agent:cb", token=password, dbname="staging", sslmode="disable")) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_asyncpg_does_scram_itself(pg, pgwarden_factory):
    import asyncpg

    password = secrets.token_urlsafe(20)
    line = f"{pg_made_verifier(pg, password)} agent:apg agent_rw globex"
    w = pgwarden_factory(extra_tokens=[line])

    async def main():
        conn = await asyncpg.connect(host=w.host, port=w.port, user="agent:apg", password=password,
                                     database="staging", ssl=False)
        try:
            return await conn.fetchval("SELECT current_setting('app.tenant_id')")
        finally:
            await conn.close()

    assert asyncio.run(asyncio.wait_for(main(), 30)) == "globex"

    async def wrong():
        await asyncpg.connect(host=w.host, port=w.port, user="agent:apg", password=password + "x",
                              database="staging", ssl=False)

    with pytest.raises(asyncpg.exceptions.InvalidPasswordError, match="authentication failed"):
        asyncio.run(asyncio.wait_for(wrong(), 30))


def failure_of(dsn):
    try:
        psycopg.connect(dsn).close()
    except psycopg.OperationalError as e:
        return str(e).strip().splitlines()[-1]
    return None


def test_every_failure_cause_reads_the_same(pgwarden):
    """Unknown actor, wrong token, expired record, target not allowed: one answer."""
    causes = {
        "unknown actor": pgwarden.dsn("user:nobody", token="whatever", dbname="staging"),
        "wrong token": pgwarden.dsn("user:jimmie", token="not-the-token", dbname="staging"),
        "expired": pgwarden.dsn("user:expired", dbname="staging"),
        "target not allowed": pgwarden.dsn("agent:tally", dbname="prod"),
    }
    answers = {cause: failure_of(dsn) for cause, dsn in causes.items()}
    assert all(a is not None for a in answers.values()), answers
    assert len(set(answers.values())) == 1, answers
    assert "authentication failed" in next(iter(answers.values()))
    # and the same actor on an allowed target still works
    with psycopg.connect(pgwarden.dsn("agent:tally", dbname="staging")) as c:
        assert c.execute("SELECT current_user").fetchone() == ("agent_rw",)
