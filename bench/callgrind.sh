#!/usr/bin/env bash
# bench/callgrind.sh - instructions per transaction of each proxy build, counted by callgrind.
#
# Starts a private PostgreSQL 15 (pgbench -i -s 1), then for each VARIANT and WORKLOAD runs the
# proxy under `valgrind --tool=callgrind`, drives it with `pgbench -c 1 -t N` for two values of N,
# stops it, and prints (Ir(N2) - Ir(N1)) / (N2 - N1): start-up, login and shutdown cancel out.
# pgwarden is counted under its socket callback (io_event_cb) only: see count() below.
# Instruction counts are deterministic, unlike timings on a shared machine. See bench/README.md.
#
# Environment:
#   VARIANTS="full relay policy"  full: ./pgwarden, audit on; relay: ./pgwarden-relay (make
#             relay-bench-bin: no classification), audit off; policy: ./pgwarden, audit off;
#             relay-audit: ./pgwarden-relay, audit on; pgbouncer: PgBouncer session mode
#   WORKLOADS="select-simple select-prepared tpcb"
#   N1=200 N2=1200  transactions of the two runs (tpcb: a fifth of each)
#   PGWARDEN_BIN, PGWARDEN_RELAY_BIN  the binaries (./pgwarden, ./pgwarden-relay)
#   KEEP=1    keep the temp dir (callgrind.out.* files for callgrind_annotate)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=deploy/lib/pgtmp.sh
. "$REPO/deploy/lib/pgtmp.sh"

VARIANTS=${VARIANTS:-"full relay policy"}
WORKLOADS=${WORKLOADS:-"select-simple select-prepared tpcb"}
N1=${N1:-200}
N2=${N2:-1200}
PGWARDEN=${PGWARDEN_BIN:-$REPO/pgwarden}
PGWARDEN_RELAY=${PGWARDEN_RELAY_BIN:-$REPO/pgwarden-relay}

WORK=$(mktemp -d /tmp/pgwarden-callgrind.XXXXXX)
chmod 755 "$WORK"
PG_DIR=$WORK/pg
PROXY_PID=

cleanup() {
	[ -z "$PROXY_PID" ] || kill "$PROXY_PID" 2>/dev/null || true
	pgtmp_stop "$PG_DIR" immediate
	if [ "${KEEP:-0}" = 1 ]; then echo "callgrind: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() { echo "callgrind: $*" >&2; exit 1; }

SVC_PW=$(pgtmp_random_token)
PG_PORT=$(pgtmp_free_port)
TOKEN=$(pgtmp_random_token)
pgtmp_start "$PG_DIR" "$PG_PORT" "$SVC_PW" 50
ADMIN=(-h "$PG_DIR" -p "$PG_PORT" -U postgres)
psql -X -q "${ADMIN[@]}" -d postgres -c "CREATE DATABASE bench"
pgbench -i -q -s 1 "${ADMIN[@]}" bench >"$WORK/pgbench-init.log" 2>&1 || die "pgbench -i failed"
psql -X -q "${ADMIN[@]}" -d bench -c "GRANT SELECT, INSERT, UPDATE, DELETE ON pgbench_accounts,
	pgbench_branches, pgbench_tellers, pgbench_history TO pgwarden_svc, bookkeeper"

# write_config VARIANT DIR PORT: the proxy's config for a variant.
write_config() {
	local v=$1 dir=$2 port=$3
	mkdir -p "$dir"
	if [ "$v" = pgbouncer ]; then
		printf '"pgwarden_svc" "%s"\n' "$SVC_PW" >"$dir/userlist.txt"
		cat >"$dir/pgbouncer.ini" <<-EOT
			[databases]
			bench = host=127.0.0.1 port=$PG_PORT dbname=bench
			[pgbouncer]
			listen_addr = 127.0.0.1
			listen_port = $port
			unix_socket_dir =
			auth_type = scram-sha-256
			auth_file = $dir/userlist.txt
			pool_mode = session
			logfile = $dir/pgbouncer.log
			ignore_startup_parameters = extra_float_digits
		EOT
	else
		pgtmp_token_line "$TOKEN" user:bench bookkeeper acme >"$dir/tokens.txt"
		{
			echo "[pgwarden]"
			echo "listen = 127.0.0.1:$port"
			echo "tokens_file = tokens.txt"
			case $v in full | relay-audit) echo "audit_log = audit.jsonl" ;; esac
			echo "plaintext_auth = yes"
			echo "[target.bench]"
			echo "conninfo = host=127.0.0.1 port=$PG_PORT dbname=bench user=pgwarden_svc password=$SVC_PW"
			echo "environment = staging"
		} >"$dir/pgwarden.ini"
	fi
	pgtmp_own "$dir"
}

# proxy_cmd VARIANT DIR: the command line of the proxy.
proxy_cmd() {
	case $1 in
	pgbouncer) echo "pgbouncer $2/pgbouncer.ini" ;;
	relay | relay-audit) echo "$PGWARDEN_RELAY -c $2/pgwarden.ini" ;;
	full | policy) echo "$PGWARDEN -c $2/pgwarden.ini" ;;
	*) die "unknown variant $1" ;;
	esac
}

workload_args() {
	case $1 in
	select-simple) echo "-S -M simple" ;;
	select-prepared) echo "-S -M prepared" ;;
	tpcb) echo "-M simple" ;;
	tpcb-prepared) echo "-M prepared" ;;
	*) die "unknown workload $1" ;;
	esac
}

# count VARIANT WORKLOAD N: total instructions of one proxy life driving N transactions.
count() {
	local v=$1 wl=$2 n=$3 dir=$WORK/$1-$2-$3 port user pw out
	port=$(pgtmp_free_port)
	write_config "$v" "$dir" "$port"
	out=$dir/callgrind.out
	# pgwarden runs timers (health probes, catalog loads: whole SCRAM logins) whose count follows
	# the wall clock, not N: count only what runs under a socket's readiness callback, where
	# every message is read, judged, audited and written. PgBouncer has no such timers.
	collect=(--collect-atstart=no --toggle-collect=io_event_cb)
	[ "$v" != pgbouncer ] || collect=()
	# shellcheck disable=SC2046 # proxy_cmd is meant to split
	(cd "$dir" && pgtmp_exec_as_owner valgrind --tool=callgrind --callgrind-out-file="$out" "${collect[@]}" \
		$(proxy_cmd "$v" "$dir")) >"$dir/stderr.log" 2>&1 &
	PROXY_PID=$!
	pgtmp_wait_port "$port" 120 || { tail -n 20 "$dir/stderr.log" >&2; die "$v did not start"; }
	if [ "$v" = pgbouncer ]; then user=pgwarden_svc pw=$SVC_PW; else user=user:bench pw=$TOKEN; fi
	# shellcheck disable=SC2046
	pgbench -n $(workload_args "$wl") -c 1 -t "$n" \
		"host=127.0.0.1 port=$port dbname=bench user=$user password=$pw" >"$dir/pgbench.log" 2>&1 ||
		{ cat "$dir/pgbench.log" >&2; die "pgbench $wl via $v failed"; }
	kill -TERM "$PROXY_PID"
	wait "$PROXY_PID" || true
	PROXY_PID=
	awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

printf '%-16s %-12s %14s %14s\n' workload variant "Ir/txn" "Ir/statement"
for wl in $WORKLOADS; do
	n1=$N1 n2=$N2 stmts=1
	case $wl in tpcb*) n1=$((N1 / 5)) n2=$((N2 / 5)) stmts=7 ;; esac
	for v in $VARIANTS; do
		a=$(count "$v" "$wl" "$n1")
		b=$(count "$v" "$wl" "$n2")
		awk -v w="$wl" -v v="$v" -v a="$a" -v b="$b" -v n="$((n2 - n1))" -v s="$stmts" \
			'BEGIN { printf "%-16s %-12s %14.0f %14.0f\n", w, v, (b - a) / n, (b - a) / n / s }'
	done
done
