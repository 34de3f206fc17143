#!/usr/bin/env bash
# deploy/demo/run.sh - `make run`: a private PostgreSQL + pgwarden with demo actors, in ./demo/.
#
# First run: initdb under demo/pg and load tests/sql/demo_schema.sql; later runs reuse it.
# Every run installs deploy/walls.sql in both databases (key in demo/wall.key).
# Writes demo/pgwarden.ini (targets prod and staging, a weekly window) and demo/tokens.txt
# (tokens kept in demo/tokens.env so the printed commands stay valid across runs), starts
# pgwarden in the foreground and prints psql commands to try. Ctrl-C stops what it started.
#
# DEMO_CHECK=1: run the commands instead, print their output, check the expected outcomes,
# stop everything and exit (0 when every check held). For CI.
# PGWARDEN_PORT (default 6432, or a free port if taken).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
# shellcheck source=deploy/lib/pgtmp.sh
. deploy/lib/pgtmp.sh

DEMO=${DEMO_DIR:-$REPO/demo}
# how the printed commands name the demo directory: relative to the repository when inside it
DEMO_SHOW=${DEMO#"$REPO"/}
PG_DIR=$DEMO/pg
PGWARDEN=${PGWARDEN_BIN:-$REPO/pgwarden}
PGWARDEN_PID=
CHECK=${DEMO_CHECK:-0}

die() { echo "demo: $*" >&2; exit 1; }

cleanup() {
	if [ -n "$PGWARDEN_PID" ]; then
		kill "$PGWARDEN_PID" 2>/dev/null || true
		wait "$PGWARDEN_PID" 2>/dev/null || true
	fi
	pgtmp_stop "$PG_DIR"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM

[ -x "$PGWARDEN" ] || die "$PGWARDEN not built (run make)"
mkdir -p "$DEMO"

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- state kept across runs: upstream password, tokens, PostgreSQL port -------------------
if [ ! -f "$DEMO/tokens.env" ]; then
	umask 077
	{
		echo "# demo secrets, made by deploy/demo/run.sh; delete demo/ to start over"
		echo "SVC_PASSWORD=$(pgtmp_random_token)"
		echo "JIMMIE_TOKEN=$(pgtmp_random_token)"
		echo "ADA_TOKEN=$(pgtmp_random_token)"
		echo "AGENT_TOKEN=$(pgtmp_random_token)"
	} >"$DEMO/tokens.env"
	umask 022
fi
# shellcheck source=/dev/null
. "$DEMO/tokens.env"

PG_PORT=$(cat "$DEMO/pg.port" 2>/dev/null || true)
if [ -z "$PG_PORT" ] || ! port_free "$PG_PORT"; then
	PG_PORT=$(pgtmp_free_port)
	echo "$PG_PORT" >"$DEMO/pg.port"
fi
PORT=${PGWARDEN_PORT:-6432}
port_free "$PORT" || PORT=$(pgtmp_free_port)

# --- PostgreSQL ----------------------------------------------------------------------------
[ -f "$PG_DIR/data/PG_VERSION" ] && fresh="reusing" || fresh="creating"
echo "demo: $fresh PostgreSQL in $DEMO_SHOW/pg (port $PG_PORT)" >&2
# A cluster left running by a killed demo is stopped first, so the port is ours.
pgtmp_stop "$PG_DIR"
pgtmp_start "$PG_DIR" "$PG_PORT" "$SVC_PASSWORD" 100

# --- client TLS: a self-signed certificate, kept across runs -------------------------------
# The demo serves TLS like a production setup, so the README's sslmode=require examples work as printed.
if [ ! -f "$DEMO/server.crt" ] || [ ! -f "$DEMO/server.key" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
		-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$DEMO/server.key" -out "$DEMO/server.crt" 2>/dev/null || die "openssl could not make a certificate"
	chmod 600 "$DEMO/server.key"
fi

# --- the walls inside the database (deploy/walls.sql) ----------------------------------------
# One key for both demo databases (kept in demo/wall.key, 0600). walls.sql is idempotent, so it
# runs on every start; prod gets the write wall too (production=1), staging only the identity and
# grant walls. The invoices table is put behind the verified tenant.
if [ ! -f "$DEMO/wall.key" ]; then
	(umask 077 && openssl rand -hex 32 >"$DEMO/wall.key")
fi
apply_walls() {
	psql -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$1" -v production="$2" \
		-v wall_key="$(cat "$DEMO/wall.key")" -f deploy/walls.sql \
		-c "SELECT pgwarden_wall.protect_table('billing.invoices', 'tenant')" >/dev/null
}
apply_walls app 1
apply_walls app_staging 0

# --- pgwarden config and tokens ------------------------------------------------------------
# The weekly window opens two days from now (Santiago time), so right now prod is read-only
# and the denied write shows the next window in its HINT.
WINDOW_DAY=$(TZ=America/Santiago date -d '+2 days' +%a | tr '[:upper:]' '[:lower:]')
cat >"$DEMO/pgwarden.ini" <<EOT
; pgwarden demo config, written by deploy/demo/run.sh (rewritten on every run)
[pgwarden]
listen = 127.0.0.1:$PORT
tokens_file = tokens.txt
audit_log = audit.jsonl
tls_cert_file = server.crt       ; self-signed, made by the demo (sslrootcert=$DEMO_SHOW/server.crt to verify it)
tls_key_file = server.key
client_tls = require             ; tokens travel only over TLS

[target.prod]
conninfo = host=127.0.0.1 port=$PG_PORT dbname=app user=pgwarden_svc password=$SVC_PASSWORD
environment = production
walls = required                 ; deploy/walls.sql is installed: pins are signed and checked
wall_key_file = wall.key

[target.staging]
conninfo = host=127.0.0.1 port=$PG_PORT dbname=app_staging user=pgwarden_svc password=$SVC_PASSWORD
environment = staging
walls = required
wall_key_file = wall.key

[window.weekly]
target = prod
weekly = $WINDOW_DAY 22:00-23:30
timezone = America/Santiago
approved_by = ops:larry
reason = weekly maintenance
EOT
{
	echo "# demo tokens, written by deploy/demo/run.sh (secrets are in demo/tokens.env)"
	pgtmp_token_line "$JIMMIE_TOKEN" user:jimmie bookkeeper acme
	pgtmp_token_line "$ADA_TOKEN" user:ada bookkeeper globex
	pgtmp_token_line "$AGENT_TOKEN" agent:tally agent_rw acme targets=staging
} >"$DEMO/tokens.txt"
chmod 600 "$DEMO/pgwarden.ini" "$DEMO/tokens.txt"

"$PGWARDEN" --check -c "$DEMO/pgwarden.ini" >&2 || die "config check failed"

# --- start pgwarden --------------------------------------------------------------------------
if [ "$CHECK" = 1 ]; then
	# keep the check transcript readable: pgwarden's log goes to a file, shown at the end
	"$PGWARDEN" -c "$DEMO/pgwarden.ini" 2>"$DEMO/pgwarden.log" &
else
	"$PGWARDEN" -c "$DEMO/pgwarden.ini" &
fi
PGWARDEN_PID=$!
pgtmp_wait_port "$PORT" 10 || die "pgwarden did not start listening on $PORT"

conn() { echo "host=127.0.0.1 port=$PORT dbname=$1 user=$2 password=$3 sslmode=require"; }
JIMMIE_PROD=$(conn prod user:jimmie "$JIMMIE_TOKEN")
ADA_PROD=$(conn prod user:ada "$ADA_TOKEN")
JIMMIE_STAGING=$(conn staging user:jimmie "$JIMMIE_TOKEN")
AGENT_PROD=$(conn prod agent:tally "$AGENT_TOKEN")

# The demo steps: title | psql connection | SQL | expected (ok, or text the output must contain).
STEPS=(
	"tenant isolation: jimmie (acme) sees only acme rows|$JIMMIE_PROD|SELECT tenant, count(*) FROM invoices GROUP BY tenant|acme"
	"tenant isolation: ada (globex) sees only globex rows|$ADA_PROD|SELECT tenant, count(*) FROM invoices GROUP BY tenant|globex"
	"who am I upstream|$JIMMIE_PROD|SELECT current_user, current_setting('app.actor_id') AS actor, current_setting('app.tenant_id') AS tenant|bookkeeper"
	"the database itself verifies pgwarden's signed pin (the wall RLS uses)|$JIMMIE_PROD|SELECT pgwarden_wall.pin_status() AS pin, pgwarden_wall.tenant_id() AS verified_tenant|acme"
	"write on production outside the window: denied, HINT names the next window|$JIMMIE_PROD|UPDATE invoices SET amount = amount + 1 WHERE id = 1|pgwarden:"
	"write on staging: allowed|$JIMMIE_STAGING|UPDATE invoices SET note = 'edited through pgwarden' WHERE id = 1 RETURNING id, tenant, note|UPDATE 1"
	"GRANT to a protected role: denied on every target|$JIMMIE_STAGING|GRANT SELECT ON invoices TO anon|grant-to-protected-role"
	"changing the pinned tenant: denied|$JIMMIE_STAGING|SET app.tenant_id = 'globex'|identity-change"
	"the agent's token is limited to staging|$AGENT_PROD|SELECT 1|authentication failed"
	"TLS verified against the demo's own certificate|$JIMMIE_PROD sslmode=verify-full sslrootcert=$DEMO/server.crt host=localhost|SELECT 'verified certificate' AS tls|verified certificate"
)

print_commands() {
	local step title dsn sql
	echo
	echo "pgwarden is listening on 127.0.0.1:$PORT (pid $PGWARDEN_PID). Try, in another terminal:"
	for step in "${STEPS[@]}"; do
		IFS='|' read -r title dsn sql _ <<<"$step"
		echo
		echo "# $title"
		printf 'psql "%s" -c "%s"\n' "$dsn" "$sql"
	done
	echo
	echo "# the README's example (TOKEN is in $DEMO_SHOW/tokens.env)"
	echo "TOKEN=$JIMMIE_TOKEN"
	echo "psql \"host=127.0.0.1 port=$PORT dbname=prod user=user:jimmie password=\$TOKEN sslmode=require\""
	echo
	echo "# the audit trail, and its hash chain"
	echo "./pgwarden audit show $DEMO_SHOW/audit.jsonl"
	echo "./pgwarden audit verify $DEMO_SHOW/audit.jsonl"
	echo
	echo "Ctrl-C stops pgwarden and the demo PostgreSQL."
}

run_checks() {
	local step title dsn sql expect out failed=0
	for step in "${STEPS[@]}"; do
		IFS='|' read -r title dsn sql expect <<<"$step"
		echo "== $title"
		echo "\$ psql ... -c \"$sql\""
		out=$(psql -X -d "$dsn" -c "$sql" 2>&1 </dev/null) || true
		echo "$out"
		if [[ "$out" != *"$expect"* ]]; then
			echo "!! expected output containing: $expect"
			failed=$((failed + 1))
		fi
	done
	echo "== ./pgwarden audit show $DEMO_SHOW/audit.jsonl"
	"$PGWARDEN" audit show "$DEMO/audit.jsonl" || failed=$((failed + 1))
	echo "== ./pgwarden audit verify $DEMO_SHOW/audit.jsonl"
	"$PGWARDEN" audit verify "$DEMO/audit.jsonl" || failed=$((failed + 1))
	kill -0 "$PGWARDEN_PID" 2>/dev/null || { echo "!! pgwarden died"; failed=$((failed + 1)); }
	echo "== pgwarden's log ($DEMO_SHOW/pgwarden.log)"
	cat "$DEMO/pgwarden.log"
	if [ "$failed" -ne 0 ]; then
		echo "demo: $failed check(s) failed"
		return 1
	fi
	echo "demo: all checks passed"
}

if [ "$CHECK" = 1 ]; then
	run_checks
	exit $?
fi
print_commands
wait "$PGWARDEN_PID" || true
