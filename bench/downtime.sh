#!/bin/sh
# Mail downtime seen by a sending MTA: cutover vs the current and the older chatmail guide run as
# plain shell scripts, on the same lab data with the same lowered TTL; prints the downtimes, the
# ratios and the physical floor. Needs root, bind9, unbound, openssh, rsync, nsupdate (see
# internal/lab and bench/downtime/main.go). Usage: bench/downtime.sh [-only a,b,b\',c]
set -e
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"
if [ "$(id -u)" != 0 ]; then
	exec sudo env PATH="$PATH" go run ./bench/downtime "$@"
fi
exec go run ./bench/downtime "$@"
