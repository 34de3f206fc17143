#!/usr/bin/env bash
# bench/run.sh - pgbench through nothing, PgBouncer (session mode) and pgwarden, interleaved.
#
# Starts a private PostgreSQL 15 (pgbench -i -s SCALE), PgBouncer and pgwarden in a temp dir,
# runs each workload ROUNDS times per path in interleaved order (so drift hits all paths
# alike), prints tps medians with ratios, and RSS per idle connection for both proxies.
# Everything it starts is stopped and removed on exit. See bench/README.md.
#
# Environment:
#   ROUNDS=3 DURATION=10 CLIENTS=8 THREADS=2 SCALE=10 IDLE_CONNS=200
#   WORKLOADS="select-simple select-prepared tpcb"   (also: select-connect = -C -S, a new
#                           connection per transaction; tpcb-prepared)
#   PGWARDEN_TARGET_CONFIG  extra lines for pgwarden's [target.bench] (pool_size = ..., CONTRACT §7)
#   IDLE_QUERY=1            idle probe: each idle client first runs SELECT 1 (0: log in only; a
#                           pooled pgwarden or PgBouncer then holds no backend for it)
#   PGWARDEN_EXTRA_CONFIG   extra lines for pgwarden's config ([pgwarden] keys or whole sections)
#   PGWARDEN_AUDIT=0        run the main pgwarden without an audit log
#   PGWARDEN_B_CONFIG / PGWARDEN_B_BIN / PGWARDEN_B_AUDIT (and _C_): if any is set, another
#                           pgwarden "pgwarden_b" (_c) with these extra lines, binary and audit
#                           switch is benchmarked too, e.g. PGWARDEN_B_BIN=./pgwarden-relay (make
#                           relay-bench-bin: no classification) to measure the policy engine
#   BENCH_PATHS="direct pgbouncer"  only these paths (default: direct pgbouncer pgwarden)
#   KEEP=1                  keep the temp dir (logs, configs) for inspection
#   HOLD=1                  start everything, print each path's pid and connection string, and
#                           wait (no runs): for profiling by hand
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deploy/lib/pgtmp.sh
. "$REPO/deploy/lib/pgtmp.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
IDLE_CONNS=${IDLE_CONNS:-200}
WORKLOADS=${WORKLOADS:-"select-simple select-prepared tpcb"}
PGWARDEN=${PGWARDEN_BIN:-$REPO/pgwarden}

WORK=$(mktemp -d /tmp/pgwarden-bench.XXXXXX)
chmod 755 "$WORK"
PG_DIR=$WORK/pg
PIDS=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	pgtmp_stop "$PG_DIR" immediate
	if [ "${KEEP:-0}" = 1 ]; then
		echo "bench: kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "bench: $*" >&2; exit 1; }

[ -x "$PGWARDEN" ] || [ -n "${BENCH_PATHS:-}" ] || die "$PGWARDEN not built (run make)"
command -v pgbouncer >/dev/null || die "pgbouncer not installed (make deps)"

SVC_PW=$(pgtmp_random_token)
PG_PORT=$(pgtmp_free_port)

# --- PostgreSQL with a pgbench database --------------------------------------------------
echo "bench: starting PostgreSQL on port $PG_PORT (scale $SCALE)" >&2
# room for: IDLE_CONNS through each proxy + pgbench clients + slack
pgtmp_start "$PG_DIR" "$PG_PORT" "$SVC_PW" $((IDLE_CONNS * 3 + CLIENTS * 2 + 20))
ADMIN=(-h "$PG_DIR" -p "$PG_PORT" -U postgres)
psql -X -q "${ADMIN[@]}" -d postgres -c "CREATE DATABASE bench"
pgbench -i -q -s "$SCALE" "${ADMIN[@]}" bench >"$WORK/pgbench-init.log" 2>&1 ||
	{ cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
# Every path logs in as pgwarden_svc; pgwarden then does SET ROLE bookkeeper. Both get the rights.
psql -X -q "${ADMIN[@]}" -d bench -c "GRANT SELECT, INSERT, UPDATE, DELETE ON pgbench_accounts,
	pgbench_branches, pgbench_tellers, pgbench_history TO pgwarden_svc, bookkeeper"

# --- PgBouncer, session mode ---------------------------------------------------------------
BOUNCER_PORT=$(pgtmp_free_port)
mkdir -p "$WORK/pgbouncer"
printf '"pgwarden_svc" "%s"\n' "$SVC_PW" >"$WORK/pgbouncer/userlist.txt"
cat >"$WORK/pgbouncer/pgbouncer.ini" <<EOT
; written by bench/run.sh
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/pgbouncer/userlist.txt
pool_mode = session
max_client_conn = $((IDLE_CONNS + CLIENTS + 50))
default_pool_size = $((IDLE_CONNS + CLIENTS + 10))
logfile = $WORK/pgbouncer/pgbouncer.log
ignore_startup_parameters = extra_float_digits
EOT
pgtmp_own "$WORK/pgbouncer"
chmod 600 "$WORK/pgbouncer/userlist.txt"
# PgBouncer refuses to run as root: pgtmp_as_owner runs it as postgres (exec, so $! is its pid).
(pgtmp_exec_as_owner pgbouncer "$WORK/pgbouncer/pgbouncer.ini") >"$WORK/pgbouncer/stdout.log" 2>&1 &
BOUNCER_PID=$!
PIDS+=("$BOUNCER_PID")
pgtmp_wait_port "$BOUNCER_PORT" || { cat "$WORK/pgbouncer/"*.log >&2; die "pgbouncer did not start"; }

# --- pgwarden ------------------------------------------------------------------------------
TOKEN=$(pgtmp_random_token)

# start_pgwarden NAME EXTRA_CONFIG [BINARY] [AUDIT 1|0]: start a pgwarden in $WORK/NAME;
# sets PORT_<NAME> and PID_<NAME>.
start_pgwarden() {
	local name=$1 extra=$2 bin=${3:-$PGWARDEN} audit=${4:-1} port dir=$WORK/$1
	port=$(pgtmp_free_port)
	mkdir -p "$dir"
	pgtmp_token_line "$TOKEN" user:bench bookkeeper acme >"$dir/tokens.txt"
	{
		echo "; written by bench/run.sh"
		echo "[pgwarden]"
		echo "listen = 127.0.0.1:$port"
		echo "tokens_file = tokens.txt"
		[ "$audit" = 0 ] || echo "audit_log = audit.jsonl"
		echo "plaintext_auth = yes"
		[ -n "$extra" ] && printf '%s\n' "$extra"
		echo
		echo "[target.bench]"
		echo "conninfo = host=127.0.0.1 port=$PG_PORT dbname=bench user=pgwarden_svc password=$SVC_PW"
		echo "environment = staging"
		# The same pool size as PgBouncer's (every client and idle probe gets a connection), unless set.
		[[ "${PGWARDEN_TARGET_CONFIG:-}" == *pool_size* ]] || echo "pool_size = $((IDLE_CONNS + CLIENTS + 10))"
		[ -n "${PGWARDEN_TARGET_CONFIG:-}" ] && printf '%s\n' "$PGWARDEN_TARGET_CONFIG"
	} >"$dir/pgwarden.ini"
	chmod 600 "$dir/tokens.txt" "$dir/pgwarden.ini"
	pgtmp_own "$dir"
	# pgwarden runs as the same user as PgBouncer, so the two are compared alike.
	(cd "$dir" && pgtmp_exec_as_owner "$bin" -c "$dir/pgwarden.ini") >"$dir/stderr.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	pgtmp_wait_port "$port" || { tail -n 30 "$dir/stderr.log" >&2; die "$name did not start"; }
	printf -v "PORT_$name" '%s' "$port"
	printf -v "PID_$name" '%s' "$pid"
}
# BENCH_PATHS="direct pgbouncer" benchmarks the baselines alone (to check the harness).
read -r -a PATHS <<<"${BENCH_PATHS:-direct pgbouncer pgwarden}"
if [[ " ${PATHS[*]} " == *" pgwarden "* ]]; then
	start_pgwarden pgwarden "${PGWARDEN_EXTRA_CONFIG:-}" "$PGWARDEN" "${PGWARDEN_AUDIT:-1}"
fi
# Variants B and C: any of *_CONFIG, *_BIN or *_AUDIT set adds the path.
for v in B C; do
	cfg_var="PGWARDEN_${v}_CONFIG" bin_var="PGWARDEN_${v}_BIN" audit_var="PGWARDEN_${v}_AUDIT"
	if [ -n "${!cfg_var+set}${!bin_var+set}${!audit_var+set}" ]; then
		name=pgwarden_${v,,}
		start_pgwarden "$name" "${!cfg_var:-}" "${!bin_var:-$PGWARDEN}" "${!audit_var:-1}"
		PATHS+=("$name")
	fi
done

# dsn PATH: the connection string pgbench and the idle-connection probe use for a path.
dsn() {
	case $1 in
	direct) echo "host=127.0.0.1 port=$PG_PORT dbname=bench user=pgwarden_svc password=$SVC_PW" ;;
	pgbouncer) echo "host=127.0.0.1 port=$BOUNCER_PORT dbname=bench user=pgwarden_svc password=$SVC_PW" ;;
	pgwarden | pgwarden_b | pgwarden_c)
		local p="PORT_$1"
		echo "host=127.0.0.1 port=${!p} dbname=bench user=user:bench password=$TOKEN" ;;
	esac
}

# workload_args NAME: pgbench options of a workload.
workload_args() {
	case $1 in
	select-simple) echo "-S -M simple" ;;
	select-prepared) echo "-S -M prepared" ;;
	select-connect) echo "-C -S -M simple" ;;
	tpcb) echo "-M simple" ;;
	tpcb-prepared) echo "-M prepared" ;;
	*) die "unknown workload $1" ;;
	esac
}

# path_pid PATH: the proxy's pid for a path ("" for direct).
path_pid() {
	local v
	case $1 in
	pgbouncer) echo "$BOUNCER_PID" ;;
	pgwarden*) v="PID_$1"; echo "${!v}" ;;
	esac
}

# cpu_ticks PID: user + system CPU of the whole process (every thread), in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}
CLK_TCK=$(getconf CLK_TCK)

# run_pgbench PATH WORKLOAD: print "tps transactions" of one run (fails the bench on failed transactions).
run_pgbench() {
	local out tps failed
	# shellcheck disable=SC2046 # workload_args is meant to split
	out=$(pgbench -n $(workload_args "$2") -c "$CLIENTS" -j "$THREADS" -T "$DURATION" "$(dsn "$1")" 2>&1) ||
		{ echo "$out" >&2; die "pgbench $2 via $1 failed"; }
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	[ "${failed:-0}" = 0 ] || { echo "$out" >&2; die "pgbench $2 via $1: $failed failed transactions"; }
	# -C (select-connect) reports "including reconnection times": connecting is what it measures
	tps=$(sed -n 's/^tps = \([0-9.]*\) (\(without initial connection time\|including reconnection times\))/\1/p' <<<"$out")
	[ -n "$tps" ] || { echo "$out" >&2; die "no tps in pgbench output"; }
	echo "$tps $(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
}

# HOLD=1: no runs; print where everything listens and wait, for profiling by hand.
if [ "${HOLD:-0}" = 1 ]; then
	for path in "${PATHS[@]}"; do
		pid=$(path_pid "$path")
		printf '%-11s pid %-7s %s\n' "$path" "${pid:--}" "$(dsn "$path")"
	done
	echo "bench: holding; interrupt to stop and clean up" >&2
	sleep infinity &
	PIDS+=("$!")
	wait "$!" # a signal interrupts wait at once (not a foreground sleep): the EXIT trap cleans up
fi

RESULTS=$WORK/results.txt
: >"$RESULTS"
total=$((ROUNDS * $(wc -w <<<"$WORKLOADS") * ${#PATHS[@]}))
n=0
echo "bench: $total runs of ${DURATION}s (-c $CLIENTS -j $THREADS)" >&2
for ((round = 1; round <= ROUNDS; round++)); do
	for wl in $WORKLOADS; do
		for path in "${PATHS[@]}"; do
			n=$((n + 1))
			pid=$(path_pid "$path")
			[ -z "$pid" ] || ticks0=$(cpu_ticks "$pid")
			out=$(run_pgbench "$path" "$wl") # its own line: a failed run must stop the bench (set -e)
			read -r tps txns <<<"$out"
			# The proxy's own CPU per transaction: on a shared machine tps moves with whatever
			# else runs; the proxy's work per query moves less (contention still inflates it).
			cpu_us=-
			[ -z "$pid" ] || cpu_us=$(awk -v a="$ticks0" -v b="$(cpu_ticks "$pid")" -v hz="$CLK_TCK" \
				-v n="$txns" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')
			printf '%s %s %s %s\n' "$wl" "$path" "$tps" "$cpu_us" >>"$RESULTS"
			printf 'bench: [%d/%d] round %d %-16s %-11s %10.1f tps %8s us CPU/txn\n' "$n" "$total" \
				"$round" "$wl" "$path" "$tps" "$cpu_us" >&2
		done
	done
done

# idle_rss_per_conn PID PATH: open IDLE_CONNS idle sessions through a proxy; print kB per session.
idle_rss_per_conn() {
	local pid=$1
	/usr/bin/python3 - "$(dsn "$2")" "$IDLE_CONNS" "$pid" "${IDLE_QUERY:-1}" <<'PY'
import sys, time, psycopg
dsn, n, pid, query = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
conns = [psycopg.connect(dsn, autocommit=True) for _ in range(n)]
for c in conns:
    if query:
        c.execute("SELECT 1")
time.sleep(0.5)
# the caller reads RSS while we hold the sessions: print it here to avoid a handshake
for line in open(f"/proc/{pid}/status"):
    if line.startswith("VmRSS:"):
        print(line.split()[1])
for c in conns:
    c.close()
PY
}

# median WORKLOAD PATH COLUMN: the median of a RESULTS column (3 = tps, 4 = CPU us/txn).
median() {
	awk -v w="$1" -v p="$2" -v c="$3" '$1 == w && $2 == p && $c != "-" { print $c }' "$RESULTS" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
			else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo >&2
printf '%-17s' "workload"
for path in "${PATHS[@]}"; do printf '%16s' "$path tps"; done
for path in "${PATHS[@]}"; do
	case $path in pgwarden*) printf '%20s%20s' "$path/direct" "$path/bouncer" ;; esac
done
echo
for wl in $WORKLOADS; do
	printf '%-17s' "$wl"
	declare -A med=()
	for path in "${PATHS[@]}"; do
		med[$path]=$(median "$wl" "$path" 3)
		printf '%16.1f' "${med[$path]}"
	done
	for path in "${PATHS[@]}"; do
		case $path in pgwarden*)
			awk -v a="${med[$path]}" -v d="${med[direct]:-0}" -v b="${med[pgbouncer]:-0}" \
				'BEGIN { printf "%20.2f%20.2f", (d > 0 ? a / d : 0), (b > 0 ? a / b : 0) }' ;;
		esac
	done
	echo
	unset med
done
echo "(median of $ROUNDS runs of ${DURATION}s each, -c $CLIENTS -j $THREADS, scale $SCALE)"

echo
printf '%-17s' "proxy CPU us/txn"
for path in "${PATHS[@]}"; do [ "$path" = direct ] || printf '%16s' "$path"; done
for path in "${PATHS[@]}"; do case $path in pgwarden*) printf '%20s' "$path/bouncer" ;; esac; done
echo
for wl in $WORKLOADS; do
	printf '%-17s' "$wl"
	declare -A med=()
	for path in "${PATHS[@]}"; do
		[ "$path" = direct ] && continue
		med[$path]=$(median "$wl" "$path" 4)
		printf '%16.1f' "${med[$path]}"
	done
	for path in "${PATHS[@]}"; do
		case $path in pgwarden*)
			awk -v a="${med[$path]}" -v b="${med[pgbouncer]:-0}" 'BEGIN { printf "%20.2f", (b > 0 ? a / b : 0) }' ;;
		esac
	done
	echo
	unset med
done
echo "(user + system CPU of the proxy process, all threads, per transaction: lower is better)"

echo
echo "memory per idle connection ($IDLE_CONNS idle sessions):"
for path in pgbouncer "${PATHS[@]:2}"; do
	if [ "$path" = pgbouncer ]; then pid=$BOUNCER_PID; else v="PID_$path"; pid=${!v}; fi
	before=$(pgtmp_rss_kb "$pid")
	during=$(idle_rss_per_conn "$pid" "$path")
	awk -v p="$path" -v b="$before" -v d="$during" -v n="$IDLE_CONNS" \
		'BEGIN { printf "  %-12s RSS %7d kB -> %7d kB   %6.1f kB/connection\n", p, b, d, (d - b) / n }'
done
