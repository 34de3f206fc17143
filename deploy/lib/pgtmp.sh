# shellcheck shell=bash
# pgtmp.sh - shell functions for a private PostgreSQL 15 cluster (bench/run.sh, deploy/demo/run.sh).
#
# Source it; nothing runs on load. Mirrors tests/integration/pgserver.py: initdb as a
# non-root user (Debian's postgres when we are root), 127.0.0.1 + a unix socket in the
# cluster dir, fsync off, trust for everyone except pgwarden_svc (SCRAM), and the demo
# schema from tests/sql/demo_schema.sql.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PGTMP_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# pgtmp_free_port: print a TCP port on 127.0.0.1 that is free right now.
pgtmp_free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pgtmp_as_owner CMD...: run CMD as the cluster owner (postgres when root, else ourselves).
# setpriv execs (no fork), so "$!" of a backgrounded call is the command's own pid.
pgtmp_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
	else
		"$@"
	fi
}

# pgtmp_own PATH...: give paths to the cluster owner (no-op unless root).
pgtmp_own() {
	if [ "$(id -u)" -eq 0 ]; then
		chown -R postgres:postgres "$@"
	fi
}

# pgtmp_start DIR PORT SVC_PASSWORD [MAX_CONNECTIONS]: create the cluster in DIR/data if it
# is not there yet (and load the demo schema into it), then start it. Idempotent: an
# existing cluster is only started. The socket is in DIR. Returns non-zero on failure
# after printing the server log tail.
pgtmp_start() {
	local dir=$1 port=$2 svc_pw=$3 maxconn=${4:-200} fresh=0
	mkdir -p "$dir"
	pgtmp_own "$dir"
	chmod 755 "$dir"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		fresh=1
		(cd / && pgtmp_as_owner "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync \
			--no-instructions -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1) ||
			{ cat "$dir/initdb.log" >&2; return 1; }
		cat >>"$dir/data/postgresql.conf" <<-CONF
			# written by deploy/lib/pgtmp.sh
			listen_addresses = '127.0.0.1'
			unix_socket_directories = '$dir'
			max_connections = $maxconn
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			shared_buffers = 128MB
		CONF
		cat >"$dir/data/pg_hba.conf" <<-HBA
			# written by deploy/lib/pgtmp.sh: pgwarden's login role must use SCRAM
			local all pgwarden_svc scram-sha-256
			host  all pgwarden_svc 127.0.0.1/32 scram-sha-256
			local all all trust
			host  all all 127.0.0.1/32 trust
		HBA
	fi
	# The port may change between runs: pass it on the command line, not in the file.
	(cd / && pgtmp_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
		-o "-p $port" start >/dev/null) || { tail -n 30 "$dir/postgres.log" >&2; return 1; }
	if [ "$fresh" = 1 ]; then
		psql -X -q -v ON_ERROR_STOP=1 -v "svc_password=$svc_pw" -h "$dir" -p "$port" -U postgres \
			-d postgres -f "$PGTMP_REPO/tests/sql/demo_schema.sql" >/dev/null
	fi
}

# pgtmp_stop DIR [MODE]: stop the cluster in DIR (default mode fast); quiet if not running.
pgtmp_stop() {
	local dir=$1 mode=${2:-fast}
	[ -f "$dir/data/postmaster.pid" ] || return 0
	(cd / && pgtmp_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null 2>&1) || true
}

# pgtmp_wait_port PORT [SECONDS]: wait until 127.0.0.1:PORT accepts connections.
pgtmp_wait_port() {
	local port=$1 secs=${2:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# pgtmp_token_line TOKEN ACTOR ROLE TENANT [EXTRA]: a sha256 token-file record (CONTRACT §3).
pgtmp_token_line() {
	local hash
	hash=$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)
	printf 'sha256:%s  %s  %s  %s  %s\n' "$hash" "$2" "$3" "$4" "${5:-}"
}

# pgtmp_random_token: a fresh random token (URL-safe, 32 chars).
pgtmp_random_token() {
	openssl rand -base64 24 | tr '+/' '-_'
}

# pgtmp_rss_kb PID: resident set size of PID in kB.
pgtmp_rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# pgtmp_exec_as_owner CMD...: like pgtmp_as_owner but replaces the calling (sub)shell, so
# `(pgtmp_exec_as_owner prog ...) &` leaves the program's own pid in "$!".
pgtmp_exec_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
	else
		exec "$@"
	fi
}
