#!/bin/sh
# cutover's window (final-sync, verify, fixup) vs the chatmail guide's commands (tar of the small
# dirs, rsync -azH of the mailboxes, three chown -R) on the same lab tree and delta, at 10,000 and
# 100,000 message files; prints each step, the ratio and cutover's peak RSS. Needs root, sshd,
# rsync, tar, unshare, nsenter (see internal/lab and bench/window/main.go).
# Usage: bench/window.sh [-million] [-sizes N,N] [-v]
set -e
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"
go build -o /var/tmp/cutover-bench-window ./bench/window
if [ "$(id -u)" != 0 ]; then
	exec sudo /var/tmp/cutover-bench-window "$@"
fi
exec /var/tmp/cutover-bench-window "$@"
