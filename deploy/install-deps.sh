#!/usr/bin/env bash
# install-deps.sh - installs the Debian 12 packages pgwarden needs to build, test, bench and demo.
#
# Idempotent and quiet: dpkg-query decides what is missing; apt-get runs only when
# something is, so a machine that has everything finishes in well under a second.
# Works as root or (through sudo) as a normal user, with no stdin (CI=true).
set -euo pipefail

# One package a line; add new ones here. The comment says who needs it.
PACKAGES=(
	build-essential		# gcc, make, libc headers
	clang			# second compiler, libFuzzer (make fuzz)
	libclang-rt-14-dev	# libFuzzer and sanitizer runtimes (only recommended by clang)
	clang-format		# make format-check
	pkg-config		# Makefile finds library flags
	libevent-dev		# event loop, evbuffers, evhttp (admin)
	libssl-dev		# OpenSSL 3: TLS, SHA-256, SCRAM
	libpq-dev		# upstream connections
	libpg-query-dev		# PostgreSQL's own parser for policy
	libinih-dev		# INI config parser
	libcmocka-dev		# unit tests
	libpcre2-dev		# [rule.*] patterns
	libjansson-dev		# JSON reader for audit show/verify
	libidn-dev		# SASLprep for SCRAM (stringprep "SASLprep" profile)
	uthash-dev		# header-only hash tables (prepared statements, throttle)
	postgresql-15		# server + contrib: throwaway servers for tests, bench, demo
	postgresql-client-15	# psql, pgbench
	pgbouncer		# bench baseline
	python3			# integration tests
	python3-pytest
	python3-psycopg
	python3-asyncpg
	python3-psycopg-pool	# client-side pools over pgwarden (tests/integration/test_pool_scale.py)
	openssl			# CLI: test certificates
	procps			# ps, pgrep in tests and scripts
	util-linux		# runuser: start PostgreSQL as the postgres user when root
)

# missing_packages: print the packages dpkg does not report as installed, one a line.
# One dpkg-query call for all of them (fast); unknown packages print nothing, so
# anything not listed as "installed" is missing.
missing_packages() {
	local installed
	installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null |
		awk '$2 == "installed" { print $1 }' || true)
	local pkg
	for pkg in "${PACKAGES[@]}"; do
		grep -qxF -- "$pkg" <<<"$installed" || echo "$pkg"
	done
}

main() {
	if ! command -v dpkg-query >/dev/null 2>&1; then
		echo "install-deps: not a Debian system (no dpkg-query); install the packages by hand:" >&2
		echo "  ${PACKAGES[*]}" >&2
		exit 1
	fi
	local missing
	missing=$(missing_packages | tr '\n' ' ')
	missing=${missing% }
	if [ -z "$missing" ]; then
		echo "install-deps: all dependencies present"
		return 0
	fi

	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo=(sudo -n)	# -n: never prompt, CI has no stdin
		else
			echo "install-deps: missing packages ($missing) and not root, no sudo" >&2
			exit 1
		fi
	fi
	# Quiet apt, but keep its errors: output goes to a log shown only on failure.
	local log
	log=$(mktemp)
	# shellcheck disable=SC2086 # word splitting of $missing is wanted
	if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends $missing; } </dev/null >"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		echo "install-deps: apt-get failed installing: $missing" >&2
		exit 1
	fi
	rm -f "$log"
	echo "install-deps: installed $missing"
}

main "$@"
