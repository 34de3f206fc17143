#!/usr/bin/env bash
# run.sh - build the libFuzzer targets with clang (fuzzer + ASan + UBSan) into build-fuzz/ and run
# each for FUZZ_SECONDS (default 20) on a copy of its seed corpus. Exits non-zero on a build failure
# or a crash. `make fuzz` calls it.
#   FUZZ_SECONDS=60 bash tests/fuzz/run.sh            all targets, 60 s each
#   bash tests/fuzz/run.sh fuzz_startup               one target
#   FUZZ_BUILD_ONLY=1 bash tests/fuzz/run.sh          build, do not run
# Crash inputs are left in build-fuzz/artifacts/<target>/; reproduce with build-fuzz/<target> <file>.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${FUZZ_OUT:-$ROOT/build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-20}
CC=${FUZZ_CC:-clang}
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter -I$ROOT"
CFLAGS+=" $(pkg-config --cflags libpq)"
PKGS="libevent_core libevent_openssl libevent_extra libevent_pthreads openssl libpq libpcre2-8 inih"

# Sources each target compiles directly (instrumented), so a half-written file elsewhere cannot break it.
declare -A SRCS=(
	[fuzz_startup]="protocol/frame.c protocol/startup.c protocol/pktread.c"
	[fuzz_frontend]="protocol/frame.c protocol/pktread.c protocol/bind.c protocol/femsg.c proxy/pipeline.c proxy/stmt_table.c"
	[fuzz_auth]="protocol/auth.c protocol/scram.c protocol/saslprep.c protocol/pktbuf.c protocol/pktread.c
		     conf/tokens.c conf/errors.c conf/rfc3339.c conf/config.c conf/config_ini.c conf/config_keys.c conf/config_check.c conf/windows.c conf/window_parse.c conf/core/random.c conf/core/arr.c audit/audit_sign.c"
)
declare -A LIBS=(
	[fuzz_startup]=""
	[fuzz_frontend]=""
	[fuzz_auth]="-lcrypto -lidn -linih -lpq -lpcre2-8"
)
TARGETS=(fuzz_startup fuzz_frontend fuzz_auth)

# fuzz_classify.c (the policy module's target), fuzz_fastscan.c (the fast scanner against
# pg_query_scan) and fuzz_audit.c (the audit log readers) link against the whole library, built
# instrumented.
LIB_TARGETS=" fuzz_classify fuzz_fastscan fuzz_audit "
TARGETS+=(fuzz_classify fuzz_fastscan fuzz_audit)
if [[ $# -gt 0 ]]; then
	TARGETS=("$@")
fi

mkdir -p "$OUT"

build_library() {
	echo "== building instrumented libpgwarden.a in $OUT"
	make --no-print-directory -s BUILD="$OUT/lib" CC="$CC" SANITIZER=address,undefined \
		CFLAGS="-O1 -g -fsanitize=fuzzer-no-link" "$OUT/lib/libpgwarden.a"
}

build_target() {
	local t=$1
	echo "== building $t"
	if [[ $LIB_TARGETS == *" $t "* ]]; then
		build_library
		# shellcheck disable=SC2046
		$CC $CFLAGS $SAN $(pkg-config --cflags $PKGS) -o "$OUT/$t" tests/fuzz/$t.c \
			"$OUT/lib/libpgwarden.a" \
			$(pkg-config --libs $PKGS) -lpg_query -lpthread -lm -lidn -ljansson
	else
		# shellcheck disable=SC2086
		$CC $CFLAGS $SAN -o "$OUT/$t" tests/fuzz/$t.c ${SRCS[$t]} ${LIBS[$t]}
	fi
}

run_target() {
	local t=$1 corpus="$OUT/corpus/$t" art="$OUT/artifacts/$t"
	mkdir -p "$corpus" "$art"
	# seeds are copied so the checked-in corpus only ever holds the hand-made inputs
	if [[ -d tests/fuzz/corpus/$t ]]; then
		cp -n tests/fuzz/corpus/$t/* "$corpus/" 2>/dev/null || true
	fi
	local dict=()
	# a target's token dictionary, when it has one, steers mutations toward its grammar
	if [[ -f tests/fuzz/$t.dict ]]; then
		dict=(-dict="tests/fuzz/$t.dict")
	fi
	echo "== running $t for ${SECONDS_EACH}s"
	if ! "$OUT/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
		-print_final_stats=1 "${dict[@]}" -artifact_prefix="$art/" "$corpus" >"$OUT/$t.log" 2>&1; then
		echo "!! $t FAILED; last lines of $OUT/$t.log:"
		tail -n 40 "$OUT/$t.log"
		return 1
	fi
	grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$OUT/$t.log" | tr '\n' ' '
	echo
}

failed=()
for t in "${TARGETS[@]}"; do
	build_target "$t" || { failed+=("$t(build)"); continue; }
	if [[ -z ${FUZZ_BUILD_ONLY:-} ]]; then
		run_target "$t" || failed+=("$t")
	fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
	echo "fuzz: FAILED: ${failed[*]}"
	exit 1
fi
echo "fuzz: all targets ok"
