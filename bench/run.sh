#!/usr/bin/env bash
# bench/run.sh - pgbench through nothing, PgBouncer (session and transaction mode) and pgwarden builds, interleaved.
#
# Starts a private PostgreSQL 15 (pgbench -i -s SCALE), PgBouncer twice (session, transaction mode)
# and pgwarden in several variants in a temp dir, runs each workload ROUNDS times per path in
# interleaved order (so drift hits all paths alike), prints tps and proxy CPU per transaction
# (medians, with each round's ratio to PgBouncer), optional latency at -c 1, and RSS per idle
# connection. Everything it starts is stopped and removed on exit. See bench/README.md.
#
# Paths (BENCH_PATHS; default: all of the first six that can run):
#   direct            pgbench straight to PostgreSQL
#   pgbouncer         PgBouncer 1.18, pool_mode = session
#   pgbouncer_tx      PgBouncer, pool_mode = transaction (-M prepared is n/a: 1.18 cannot)
#   pgwarden          pgwarden, policy and audit on (everything on)
#   pgwarden_relay    PGWARDEN_RELAY_BIN (make relay-bench-bin: no classification), audit off
#   pgwarden_noaudit  pgwarden, policy on, audit off
#   pgwarden_tx       only with PGWARDEN_POOL_MODE=transaction: pgwarden, everything on, that pool mode
#                     (left out with a message when pgwarden rejects the config)
#   pgwarden_base     only with PGWARDEN_BASELINE_BIN=path: that binary, everything on (before/after)
#   pgwarden_b/_c     only with PGWARDEN_B_CONFIG / _BIN / _AUDIT (and _C_): free variants
#
# Environment:
#   ROUNDS=3 DURATION=10 CLIENTS=8 THREADS=2 SCALE=10 IDLE_CONNS=200
#   WORKLOADS="select-simple select-prepared tpcb select-connect" (also tpcb-prepared)
#   LATENCY=1               also run -S -M simple at -c 1 per path and round (LATENCY_DURATION s,
#                           default DURATION) and print median and p99 latency per round trip, and
#                           what each proxy adds over PgBouncer session mode (pgbench --log)
#   PGWARDEN_TARGET_CONFIG  extra lines for pgwarden's [target.bench] (pool_size = ..., CONTRACT §7)
#   IDLE_QUERY=1            idle probe: each idle client first runs SELECT 1 (0: log in only)
#   PGWARDEN_EXTRA_CONFIG   extra lines for every pgwarden's config ([pgwarden] keys or sections)
#   PGWARDEN_AUDIT=0        run the main pgwarden without an audit log
#   KEEP=1                  keep the temp dir (logs, configs, results.txt)
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
WORKLOADS=${WORKLOADS:-"select-simple select-prepared tpcb select-connect"}
PGWARDEN=${PGWARDEN_BIN:-$REPO/pgwarden}
PGWARDEN_RELAY=${PGWARDEN_RELAY_BIN:-$REPO/pgwarden-relay}

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

# The paths asked for (see the header); those that cannot start are left out later.
read -r -a WANTED <<<"${BENCH_PATHS:-direct pgbouncer pgbouncer_tx pgwarden pgwarden_relay pgwarden_noaudit}"
[ -z "${PGWARDEN_POOL_MODE:-}" ] || WANTED+=(pgwarden_tx)
[ -z "${PGWARDEN_BASELINE_BIN:-}" ] || WANTED+=(pgwarden_base)
for v in B C; do
	cfg_var="PGWARDEN_${v}_CONFIG" bin_var="PGWARDEN_${v}_BIN" audit_var="PGWARDEN_${v}_AUDIT"
	[ -z "${!cfg_var+set}${!bin_var+set}${!audit_var+set}" ] || WANTED+=("pgwarden_${v,,}")
done

# --- PostgreSQL with a pgbench database --------------------------------------------------
echo "bench: starting PostgreSQL on port $PG_PORT (scale $SCALE)" >&2
# room for: every path's pgbench clients and idle probe (the proxies keep those connections
# pooled after the clients leave) + slack
pgtmp_start "$PG_DIR" "$PG_PORT" "$SVC_PW" $(((IDLE_CONNS + CLIENTS) * ${#WANTED[@]} + 20))
ADMIN=(-h "$PG_DIR" -p "$PG_PORT" -U postgres)
psql -X -q "${ADMIN[@]}" -d postgres -c "CREATE DATABASE bench"
pgbench -i -q -s "$SCALE" "${ADMIN[@]}" bench >"$WORK/pgbench-init.log" 2>&1 ||
	{ cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
# Every path logs in as pgwarden_svc; pgwarden then does SET ROLE bookkeeper. Both get the rights.
psql -X -q "${ADMIN[@]}" -d bench -c "GRANT SELECT, INSERT, UPDATE, DELETE ON pgbench_accounts,
	pgbench_branches, pgbench_tellers, pgbench_history TO pgwarden_svc, bookkeeper"

# --- the paths -------------------------------------------------------------------------------
# Every path sets PORT_<path> (and PID_<path> for a proxy); dsn() and path_pid() read them.
# shellcheck disable=SC2034 # read by dsn() through ${!p}
PORT_direct=$PG_PORT
TOKEN=$(pgtmp_random_token)

# start_bouncer NAME POOL_MODE: a PgBouncer in $WORK/NAME, pool size larger than every client count.
start_bouncer() {
	local name=$1 mode=$2 dir=$WORK/$1 port pid
	port=$(pgtmp_free_port)
	mkdir -p "$dir"
	printf '"pgwarden_svc" "%s"\n' "$SVC_PW" >"$dir/userlist.txt"
	cat >"$dir/pgbouncer.ini" <<-EOT
		; written by bench/run.sh
		[databases]
		bench = host=127.0.0.1 port=$PG_PORT dbname=bench
		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $port
		unix_socket_dir =
		auth_type = scram-sha-256
		auth_file = $dir/userlist.txt
		pool_mode = $mode
		max_client_conn = $((IDLE_CONNS + CLIENTS + 50))
		default_pool_size = $((IDLE_CONNS + CLIENTS + 10))
		logfile = $dir/pgbouncer.log
		ignore_startup_parameters = extra_float_digits
	EOT
	pgtmp_own "$dir"
	chmod 600 "$dir/userlist.txt"
	# PgBouncer refuses to run as root: it runs as postgres (exec, so $! is its pid).
	(pgtmp_exec_as_owner pgbouncer "$dir/pgbouncer.ini") >"$dir/stdout.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	pgtmp_wait_port "$port" || { cat "$dir/"*.log >&2; die "$name did not start"; }
	printf -v "PORT_$name" '%s' "$port"
	printf -v "PID_$name" '%s' "$pid"
}

# start_pgwarden NAME EXTRA_CONFIG BINARY AUDIT(1|0) [POOL_MODE]: start a pgwarden in $WORK/NAME;
# sets PORT_<NAME> and PID_<NAME>. Returns 1 (after printing why) if it does not start.
start_pgwarden() {
	local name=$1 extra=$2 bin=$3 audit=$4 mode=${5:-} port dir=$WORK/$1 pid
	[ -x "$bin" ] || { echo "bench: $name: $bin not built" >&2; return 1; }
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
		[ -z "$mode" ] || echo "pool_mode = $mode"
		# The same pool size as PgBouncer's (every client and idle probe gets a connection), unless set.
		[[ "${PGWARDEN_TARGET_CONFIG:-}" == *pool_size* ]] || echo "pool_size = $((IDLE_CONNS + CLIENTS + 10))"
		[ -n "${PGWARDEN_TARGET_CONFIG:-}" ] && printf '%s\n' "$PGWARDEN_TARGET_CONFIG"
	} >"$dir/pgwarden.ini"
	# An older binary (PGWARDEN_BASELINE_BIN from before pooling) rejects pool_size: then it runs
	# without (each client has its own upstream connection there anyway).
	local check
	check=$("$bin" --check -c "$dir/pgwarden.ini" 2>&1) || true
	if [[ $check == *'"pool_size"'* ]]; then
		sed -i '/^pool_size = /d' "$dir/pgwarden.ini"
		echo "bench: $name: $bin has no pool_size; running it without" >&2
	fi
	chmod 600 "$dir/tokens.txt" "$dir/pgwarden.ini"
	pgtmp_own "$dir"
	# pgwarden runs as the same user as PgBouncer, so the two are compared alike.
	(cd "$dir" && pgtmp_exec_as_owner "$bin" -c "$dir/pgwarden.ini") >"$dir/stderr.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	# a config pgwarden rejects (say, a pool_mode it does not have yet) ends it at once
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		kill -0 "$pid" 2>/dev/null || break
		pgtmp_wait_port "$port" 1 && break
	done
	if ! kill -0 "$pid" 2>/dev/null || ! pgtmp_wait_port "$port" 1; then
		echo "bench: $name did not start; its log ends:" >&2
		tail -n 5 "$dir/stderr.log" | sed 's/^/    /' >&2
		return 1
	fi
	printf -v "PORT_$name" '%s' "$port"
	printf -v "PID_$name" '%s' "$pid"
}

# start_path PATH: start what a path needs; 1 if it cannot run (the path is then left out).
start_path() {
	local v cfg bin audit
	case $1 in
	direct) ;;
	pgbouncer) start_bouncer pgbouncer session ;;
	pgbouncer_tx) start_bouncer pgbouncer_tx transaction ;;
	pgwarden) start_pgwarden pgwarden "${PGWARDEN_EXTRA_CONFIG:-}" "$PGWARDEN" "${PGWARDEN_AUDIT:-1}" ;;
	pgwarden_relay) start_pgwarden pgwarden_relay "${PGWARDEN_EXTRA_CONFIG:-}" "$PGWARDEN_RELAY" 0 ;;
	pgwarden_noaudit) start_pgwarden pgwarden_noaudit "${PGWARDEN_EXTRA_CONFIG:-}" "$PGWARDEN" 0 ;;
	pgwarden_tx)
		start_pgwarden pgwarden_tx "${PGWARDEN_EXTRA_CONFIG:-}" "$PGWARDEN" 1 "${PGWARDEN_POOL_MODE:-transaction}" ;;
	pgwarden_base) start_pgwarden pgwarden_base "${PGWARDEN_EXTRA_CONFIG:-}" "$PGWARDEN_BASELINE_BIN" 1 ;;
	pgwarden_b | pgwarden_c)
		v=${1#pgwarden_}
		v=${v^^}
		cfg="PGWARDEN_${v}_CONFIG" bin="PGWARDEN_${v}_BIN" audit="PGWARDEN_${v}_AUDIT"
		start_pgwarden "$1" "${!cfg:-}" "${!bin:-$PGWARDEN}" "${!audit:-1}" ;;
	*) die "unknown path $1" ;;
	esac
}

PATHS=()
for path in "${WANTED[@]}"; do
	if start_path "$path"; then
		PATHS+=("$path")
	else
		echo "bench: $path left out of this run" >&2
	fi
done
[[ " ${PATHS[*]} " == *" pgbouncer "* ]] || echo "bench: no pgbouncer path: ratios to PgBouncer are left empty" >&2

# dsn PATH: the connection string pgbench and the idle-connection probe use for a path.
dsn() {
	local p="PORT_$1"
	case $1 in
	direct | pgbouncer*) echo "host=127.0.0.1 port=${!p} dbname=bench user=pgwarden_svc password=$SVC_PW" ;;
	pgwarden*) echo "host=127.0.0.1 port=${!p} dbname=bench user=user:bench password=$TOKEN" ;;
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

# supported PATH WORKLOAD: false for what a path cannot run (PgBouncer 1.18's transaction mode
# does not carry protocol-level prepared statements from one server connection to the next).
supported() {
	! [[ $1 == pgbouncer_tx && $2 == *-prepared ]]
}

# path_pid PATH: the proxy's pid for a path ("" for direct).
path_pid() {
	local v="PID_$1"
	echo "${!v:-}"
}

# cpu_ticks PID: "user system" CPU of the whole process (every thread), in clock ticks.
cpu_ticks() {
	awk '{ print $14, $15 }' "/proc/$1/stat"
}
CLK_TCK=$(getconf CLK_TCK)

# run_pgbench PATH WORKLOAD [EXTRA...]: print "tps transactions" of one run (fails the bench on
# failed transactions).
run_pgbench() {
	local path=$1 wl=$2 out tps failed
	shift 2
	# shellcheck disable=SC2046 # workload_args is meant to split
	out=$(pgbench -n $(workload_args "$wl") "$@" -T "$DURATION" "$(dsn "$path")" 2>&1) ||
		{ echo "$out" >&2; die "pgbench $wl via $path failed"; }
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
	[ "${failed:-0}" = 0 ] || { echo "$out" >&2; die "pgbench $wl via $path: $failed failed transactions"; }
	# -C (select-connect) reports "including reconnection times": connecting is what it measures
	tps=$(sed -n 's/^tps = \([0-9.]*\) (\(without initial connection time\|including reconnection times\))/\1/p' <<<"$out")
	[ -n "$tps" ] || { echo "$out" >&2; die "no tps in pgbench output"; }
	echo "$tps $(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")"
}

# HOLD=1: no runs; print where everything listens and wait, for profiling by hand.
if [ "${HOLD:-0}" = 1 ]; then
	for path in "${PATHS[@]}"; do
		pid=$(path_pid "$path")
		printf '%-17s pid %-7s %s\n' "$path" "${pid:--}" "$(dsn "$path")"
	done
	echo "bench: holding; interrupt to stop and clean up" >&2
	sleep infinity &
	PIDS+=("$!")
	wait "$!" # a signal interrupts wait at once (not a foreground sleep): the EXIT trap cleans up
fi

# --- throughput: every workload on every path, interleaved, ROUNDS times ---------------------
RESULTS=$WORK/results.txt # lines: workload path round tps cpu_us_per_txn user_us sys_us
: >"$RESULTS"
total=$((ROUNDS * $(wc -w <<<"$WORKLOADS") * ${#PATHS[@]}))
n=0
echo "bench: $total runs of ${DURATION}s (-c $CLIENTS -j $THREADS), paths: ${PATHS[*]}" >&2
for ((round = 1; round <= ROUNDS; round++)); do
	for wl in $WORKLOADS; do
		for path in "${PATHS[@]}"; do
			n=$((n + 1))
			supported "$path" "$wl" || continue
			pid=$(path_pid "$path")
			[ -z "$pid" ] || ticks0=$(cpu_ticks "$pid")
			out=$(run_pgbench "$path" "$wl" -c "$CLIENTS" -j "$THREADS") # its own line: a failure stops the bench
			read -r tps txns <<<"$out"
			# The proxy's own CPU per transaction: on a shared machine tps moves with whatever
			# else runs; the proxy's work per query moves less (contention still inflates it).
			cpu_us="- - -" # total, user, system per transaction
			[ -z "$pid" ] || cpu_us=$(awk -v a="$ticks0" -v b="$(cpu_ticks "$pid")" -v hz="$CLK_TCK" \
				-v n="$txns" 'BEGIN { split(a, x, " "); split(b, y, " "); u = (y[1] - x[1]) * 1e6 / hz / n
					s = (y[2] - x[2]) * 1e6 / hz / n; printf "%.1f %.1f %.1f", u + s, u, s }')
			printf '%s %s %s %s %s\n' "$wl" "$path" "$round" "$tps" "$cpu_us" >>"$RESULTS"
			printf 'bench: [%d/%d] round %d %-16s %-17s %10.1f tps %8s us CPU/txn\n' "$n" "$total" \
				"$round" "$wl" "$path" "$tps" "${cpu_us%% *}" >&2
		done
	done
done

# --- latency at -c 1: one client, one round trip per transaction ----------------------------
LATENCY_RESULTS=$WORK/latency.txt # lines: path round median_us p99_us
: >"$LATENCY_RESULTS"
if [ "${LATENCY:-0}" = 1 ]; then
	for ((round = 1; round <= ROUNDS; round++)); do
		for path in "${PATHS[@]}"; do
			ldir=$WORK/latency/$path-$round
			mkdir -p "$ldir"
			# --log writes one line per transaction; its third field is the latency in us.
			(cd "$ldir" && DURATION=${LATENCY_DURATION:-$DURATION} run_pgbench "$path" select-simple \
				-c 1 -j 1 --log --log-prefix=lat) >/dev/null
			sort -n -k3,3 <(cat "$ldir"/lat.*) | awk -v p="$path" -v r="$round" '{ v[NR] = $3 }
				END { printf "%s %s %d %d\n", p, r, v[int((NR + 1) / 2)], v[int(NR * 0.99 + 0.5)] }' \
				>>"$LATENCY_RESULTS"
			printf 'bench: latency round %d %-17s median %s us p99 %s us\n' "$round" "$path" \
				"$(tail -n 1 "$LATENCY_RESULTS" | cut -d' ' -f3)" "$(tail -n 1 "$LATENCY_RESULTS" | cut -d' ' -f4)" >&2
		done
	done
fi

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

# --- the tables ------------------------------------------------------------------------------
# median FILE MATCH_AWK COLUMN: the median of a column over the lines the awk condition selects.
median() {
	awk "$2"' && $'"$3"' != "-" { print $'"$3"' }' "$1" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
			else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# round_ratios WORKLOAD PATH COLUMN: "r1/r2/..." of PATH over pgbouncer (session) per round.
round_ratios() {
	awk -v w="$1" -v p="$2" -v c="$3" '$1 == w && $2 == p { a[$3] = $c } $1 == w && $2 == "pgbouncer" { b[$3] = $c }
		END { for (r = 1; r in a || r in b; r++) { s = s (r > 1 ? "/" : "");
			s = s ((r in a) && (r in b) && a[r] != "-" && b[r] > 0 ? sprintf("%.2f", a[r] / b[r]) : "-") }
			print (s == "" ? "-" : s) }' "$RESULTS"
}

echo
echo "== throughput: median tps (and pgwarden path / PgBouncer session, per round)"
printf '%-17s' "workload"
for path in "${PATHS[@]}"; do printf '%18s' "$path"; done
echo
for wl in $WORKLOADS; do
	printf '%-17s' "$wl"
	for path in "${PATHS[@]}"; do
		printf '%18s' "$(median "$RESULTS" "\$1 == \"$wl\" && \$2 == \"$path\"" 4)"
	done
	echo
	for path in "${PATHS[@]}"; do
		case $path in pgwarden* | pgbouncer_tx)
			printf '  %-26s tps %-22s CPU/txn %s\n' "$path/pgbouncer" "$(round_ratios "$wl" "$path" 4)" \
				"$(round_ratios "$wl" "$path" 5)" ;;
		esac
	done
done
echo "(median of $ROUNDS runs of ${DURATION}s each, -c $CLIENTS -j $THREADS, scale $SCALE; ratios per round r1/r2/...)"

echo
echo "== proxy CPU per transaction, us: median total (median user / median system) of the proxy process, all threads"
printf '%-17s' "workload"
for path in "${PATHS[@]}"; do [ "$path" = direct ] || printf '%22s' "$path"; done
echo
for wl in $WORKLOADS; do
	printf '%-17s' "$wl"
	for path in "${PATHS[@]}"; do
		[ "$path" = direct ] && continue
		sel="\$1 == \"$wl\" && \$2 == \"$path\""
		printf '%22s' "$(median "$RESULTS" "$sel" 5) ($(median "$RESULTS" "$sel" 6)/$(median "$RESULTS" "$sel" 7))"
	done
	echo
done
echo "(lower is better; '-' = not run: PgBouncer 1.18's transaction mode has no -M prepared)"

if [ "${LATENCY:-0}" = 1 ]; then
	echo
	echo "== latency per round trip at -c 1 (-S -M simple), us: median / p99 (medians over rounds)"
	# shellcheck disable=SC2016 # awk conditions, not shell
	bm=$(median "$LATENCY_RESULTS" '$1 == "pgbouncer"' 3)
	bp=$(median "$LATENCY_RESULTS" '$1 == "pgbouncer"' 4)
	for path in "${PATHS[@]}"; do
		m=$(median "$LATENCY_RESULTS" "\$1 == \"$path\"" 3)
		p=$(median "$LATENCY_RESULTS" "\$1 == \"$path\"" 4)
		# per round: this path's median and p99 minus PgBouncer session's of the same round
		added=$(awk -v p="$path" '$1 == "pgbouncer" { bm[$2] = $3; bp[$2] = $4 } $1 == p { m[$2] = $3; q[$2] = $4 }
			END { for (i = 1; i in m; i++) s = s (i > 1 ? " " : "") ((i in bm) ? sprintf("%+d/%+d", m[i] - bm[i], q[i] - bp[i]) : "-")
				print s }' "$LATENCY_RESULTS")
		printf '  %-17s %6s / %-6s' "$path" "$m" "$p"
		case $path in direct | pgbouncer) echo ;; *) echo "  added vs PgBouncer per round: $added" ;; esac
	done
	echo "  (PgBouncer session: median $bm us, p99 $bp us)"
fi

echo
echo "memory per idle connection ($IDLE_CONNS idle sessions):"
for path in "${PATHS[@]}"; do
	pid=$(path_pid "$path")
	[ -n "$pid" ] || continue
	before=$(pgtmp_rss_kb "$pid")
	during=$(idle_rss_per_conn "$pid" "$path")
	awk -v p="$path" -v b="$before" -v d="$during" -v n="$IDLE_CONNS" \
		'BEGIN { printf "  %-17s RSS %7d kB -> %7d kB   %6.1f kB/connection\n", p, b, d, (d - b) / n }'
done
