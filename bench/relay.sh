#!/bin/sh
# Relay-mode throughput vs `ssh old 'tar c P' | ssh new 'tar x -C /'` on two lab hosts with the
# same ~1 GB of mixed-size files. Needs root, sshd, unshare, nsenter (see internal/lab).
# Usage: bench/relay.sh [-rounds N] [-scale F]
set -e
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
exec go run ./bench/relay "$@"
