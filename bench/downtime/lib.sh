# Shared by the guide scripts of bench/downtime (sourced, not run). The operator's side: ssh with
# the lab's known_hosts and the operator's key (also held by the agent at $SSH_AUTH_SOCK, which
# `ssh -A` forwards so that OLD can reach NEW as the guides do). Every phase is marked on stdout
# as "@ <unix time> <phase>" for the benchmark.
set -eu
SSH="ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$KNOWN_HOSTS -i $KEY"
mark() { echo "@ $(date +%s.%N) $1"; }
on_old() { $SSH root@"$OLD" "$@"; }
on_old_a() { $SSH -A root@"$OLD" "$@"; }
on_new() { $SSH root@"$NEW" "$@"; }
swap_dns() {
	# Only A and AAAA change, to the new addresses, with the (already lowered) TTL.
	nsupdate -k "$NSUPDATE_KEY" <<NSU
server $DNS_SERVER 53
zone $ZONE
update delete $NAME A
update delete $NAME AAAA
update add $NAME $TTL A $NEW
update add $NAME $TTL AAAA $NEW6
send
NSU
}
