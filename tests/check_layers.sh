#!/usr/bin/env bash
# check_layers.sh - the includes form a strict stack: core (conf/core) <- conf <- protocol <- policy
# <- audit <- proxy (proxy/cli included). A file may include headers of its own layer and the layers
# below it, never above. Prints FILE:LINE: message for each violation; exit 1 if any. `make test` and
# `make format-check` run it.
set -euo pipefail
cd "$(dirname "$0")/.."

# The layer of a path: its rank in the stack, or nothing for files outside it (tests, bench).
layer_of() {
	case $1 in
	conf/core/*) echo 0 ;;
	conf/*) echo 1 ;;
	protocol/*) echo 2 ;;
	policy/*) echo 3 ;;
	audit/*) echo 4 ;;
	proxy/*) echo 5 ;;
	esac
}
names=(core conf protocol policy audit proxy)

bad=0
while IFS= read -r file; do
	from=$(layer_of "$file")
	while IFS=: read -r line inc; do
		to=$(layer_of "$inc")
		if [[ -z $to ]]; then
			echo "$file:$line: includes \"$inc\", which is in no layer"
			bad=1
		elif ((to > from)); then
			echo "$file:$line: ${names[from]} includes \"$inc\" from ${names[to]}, a layer above it"
			bad=1
		fi
	done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" |
		sed 's/^\([0-9]*\):[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1:\2/')
done < <(find conf protocol policy audit proxy -name '*.[ch]' | sort)
if ((bad)); then
	echo "check_layers: a lower layer includes a higher one (see README, \"Internals map\")" >&2
	exit 1
fi
echo "check_layers: ok"
