#!/usr/bin/env bash
# bench/many_clients.sh - thousands of clients on a pool of 10: pgwarden (session pooling) vs PgBouncer.
#
# Starts a private PostgreSQL 15 (pgbench -i -s SCALE), one PgBouncer with two pools of POOL
# connections on the same database (session mode and transaction mode), and pgwarden with
# pool_size = POOL, in a temp dir removed on exit. Then, ROUNDS times interleaved, on each path:
#   pgbench -n -C -S -M simple -c CLIENTS -j THREADS -T DURATION --log
# (a new connection per transaction: in session mode a client that kept its connection would keep
# its pool slot, so CLIENTS > POOL persistent clients cannot all be served by any session pooler).
# Prints per path: median tps, p99 and p50 transaction latency (from pgbench's per-transaction
# log; queueing for a pooled connection is inside it), failed transactions (any fails the bench).
#
# Environment: CLIENTS=2000 POOL=10 ROUNDS=2 DURATION=10 THREADS=2 SCALE=10 KEEP=0
#   PATHS="pgbouncer-session pgbouncer-transaction pgwarden"
#   PGWARDEN_TARGET_CONFIG   extra lines for pgwarden's [target.bench] (e.g. server_check_delay = 0)
#   BOUNCER_AUTH=scram-sha-256 (as bench/run.sh) | plain: PgBouncer's client login then costs what
#     pgwarden's sha256 token login costs (a cleartext compare); with SCRAM every new connection
#     pays PBKDF2 twice (pgbench's libpq and PgBouncer, which holds the plain password), which is
#     what a connect-per-transaction run mostly measures.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deploy/lib/pgtmp.sh
. "$REPO/deploy/lib/pgtmp.sh"

CLIENTS=${CLIENTS:-2000}
POOL=${POOL:-10}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
PGWARDEN=${PGWARDEN_BIN:-$REPO/pgwarden}
read -r -a PATHS <<<"${PATHS:-pgbouncer-session pgbouncer-transaction pgwarden}"

WORK=$(mktemp -d /tmp/pgwarden-many.XXXXXX)
chmod 755 "$WORK"
PIDS=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	pgtmp_stop "$WORK/pg" immediate
	if [ "${KEEP:-0}" = 1 ]; then echo "many_clients: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "many_clients: $*" >&2; exit 1; }

[ -x "$PGWARDEN" ] || die "$PGWARDEN not built (run make)"
command -v pgbouncer >/dev/null || die "pgbouncer not installed (make deps)"
# every client is a socket in pgbench and in the proxy
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -gt $((CLIENTS + 200)) ] || die "ulimit -n $(ulimit -n) is too small for $CLIENTS clients"

SVC_PW=$(pgtmp_random_token)
PG_PORT=$(pgtmp_free_port)
echo "many_clients: PostgreSQL on $PG_PORT, scale $SCALE" >&2
pgtmp_start "$WORK/pg" "$PG_PORT" "$SVC_PW" $((POOL * 4 + 40))
ADMIN=(-h "$WORK/pg" -p "$PG_PORT" -U postgres)
psql -X -q "${ADMIN[@]}" -d postgres -c "CREATE DATABASE bench"
pgbench -i -q -s "$SCALE" "${ADMIN[@]}" bench >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; die "pgbench -i"; }
psql -X -q "${ADMIN[@]}" -d bench -c "GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers,
	pgbench_history TO pgwarden_svc, bookkeeper"

# --- PgBouncer: one pool per mode, POOL server connections each ------------------------------
BOUNCER_PORT=$(pgtmp_free_port)
mkdir -p "$WORK/pgbouncer"
printf '"pgwarden_svc" "%s"\n' "$SVC_PW" >"$WORK/pgbouncer/userlist.txt"
cat >"$WORK/pgbouncer/pgbouncer.ini" <<EOT
; written by bench/many_clients.sh
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench pool_mode=session
bench_tx = host=127.0.0.1 port=$PG_PORT dbname=bench pool_mode=transaction
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = ${BOUNCER_AUTH:-scram-sha-256}
auth_file = $WORK/pgbouncer/userlist.txt
max_client_conn = $((CLIENTS + 100))
default_pool_size = $POOL
logfile = $WORK/pgbouncer/pgbouncer.log
ignore_startup_parameters = extra_float_digits
EOT
pgtmp_own "$WORK/pgbouncer"
chmod 600 "$WORK/pgbouncer/userlist.txt"
(pgtmp_exec_as_owner pgbouncer "$WORK/pgbouncer/pgbouncer.ini") >"$WORK/pgbouncer/stdout.log" 2>&1 &
BOUNCER_PID=$!
PIDS+=("$BOUNCER_PID")
pgtmp_wait_port "$BOUNCER_PORT" || { cat "$WORK/pgbouncer/"*.log >&2; die "pgbouncer did not start"; }

# --- pgwarden: session pooling, pool_size = POOL ----------------------------------------------
TOKEN=$(pgtmp_random_token)
WARDEN_PORT=$(pgtmp_free_port)
mkdir -p "$WORK/pgwarden"
pgtmp_token_line "$TOKEN" user:bench bookkeeper acme >"$WORK/pgwarden/tokens.txt"
cat >"$WORK/pgwarden/pgwarden.ini" <<EOT
; written by bench/many_clients.sh
[pgwarden]
listen = 127.0.0.1:$WARDEN_PORT
tokens_file = tokens.txt
audit_log = audit.jsonl
plaintext_auth = yes
max_client_conn = $((CLIENTS + 100))

[target.bench]
conninfo = host=127.0.0.1 port=$PG_PORT dbname=bench user=pgwarden_svc password=$SVC_PW
environment = staging
pool_size = $POOL
pool_wait_timeout = 120
${PGWARDEN_TARGET_CONFIG:-}
EOT
chmod 600 "$WORK/pgwarden/tokens.txt" "$WORK/pgwarden/pgwarden.ini"
pgtmp_own "$WORK/pgwarden"
(cd "$WORK/pgwarden" && pgtmp_exec_as_owner "$PGWARDEN" -c "$WORK/pgwarden/pgwarden.ini") >"$WORK/pgwarden/stderr.log" 2>&1 &
PIDS+=("$!")
pgtmp_wait_port "$WARDEN_PORT" || { tail -n 30 "$WORK/pgwarden/stderr.log" >&2; die "pgwarden did not start"; }

dsn() {
	case $1 in
	pgbouncer-session) echo "host=127.0.0.1 port=$BOUNCER_PORT dbname=bench user=pgwarden_svc password=$SVC_PW" ;;
	pgbouncer-transaction) echo "host=127.0.0.1 port=$BOUNCER_PORT dbname=bench_tx user=pgwarden_svc password=$SVC_PW" ;;
	pgwarden) echo "host=127.0.0.1 port=$WARDEN_PORT dbname=bench user=user:bench password=$TOKEN" ;;
	*) die "unknown path $1" ;;
	esac
}

# run PATH ROUND: one pgbench run; appends "PATH tps p50_ms p99_ms" to results.
run() {
	local dir=$WORK/logs/$1.$2 out tps failed
	mkdir -p "$dir"
	out=$(cd "$dir" && pgbench -n -C -S -M simple -c "$CLIENTS" -j "$THREADS" -T "$DURATION" --log \
		--log-prefix=tx "$(dsn "$1")" 2>&1) || { echo "$out" >&2; die "pgbench via $1 failed"; }
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	[ "${failed:-0}" = 0 ] || { echo "$out" >&2; die "$1: $failed failed transactions"; }
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -n 1)
	[ -n "$tps" ] || { echo "$out" >&2; die "no tps in pgbench output"; }
	# per-transaction log: client tx_no latency_us script epoch_s epoch_us
	cat "$dir"/tx.* | sort -n -k3,3 | awk -v p="$1" -v tps="$tps" '
		{ lat[NR] = $3 }
		END { printf "%s %s %.2f %.2f\n", p, tps, lat[int(NR * 0.50)] / 1000, lat[int(NR * 0.99)] / 1000 }' \
		>>"$WORK/results.txt"
	rm -rf "$dir"
	tail -n 1 "$WORK/results.txt" >&2
}

mkdir -p "$WORK/logs"
: >"$WORK/results.txt"
for ((r = 1; r <= ROUNDS; r++)); do
	for path in "${PATHS[@]}"; do
		run "$path" "$r"
	done
done

echo
echo "$CLIENTS clients, pool of $POOL, pgbench -C -S -M simple -j $THREADS -T $DURATION, $ROUNDS rounds (median)," \
	"PgBouncer auth_type ${BOUNCER_AUTH:-scram-sha-256}:"
printf '%-22s %10s %10s %10s\n' path tps p50_ms p99_ms
for path in "${PATHS[@]}"; do
	awk -v p="$path" '$1 == p { t[++n] = $2; a[n] = $3; b[n] = $4 }
		function med(x, n,   i, j, s) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
			if (x[j] < x[i]) { s = x[i]; x[i] = x[j]; x[j] = s }; return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2 }
		END { printf "%-22s %10.1f %10.2f %10.2f\n", p, med(t, n), med(a, n), med(b, n) }' "$WORK/results.txt"
done
