#!/bin/sh
# bench/dnsprop.sh: sweep 1,000 names x 4 resolvers with dnsprop against local
# Unbound caches (stub zone on a local BIND primary, all on a reserved
# 127.A.B.0/24 block) and print the sweep time, questions/s and memory.
# Targets (issue 4): a sweep under 2 s, under 100 MB. Needs root, named, unbound.
# Extra arguments go to the program, e.g. -names 5000 -concurrency 32.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/dnsprop.sh: needs root (the lab runs in a network namespace of its own)" >&2
	exit 1
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/dnsprop-bench" ./bench/dnsprop
"$bin/dnsprop-bench" "$@"
