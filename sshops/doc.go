// Package sshops owns everything cutover does on the OLD and NEW hosts over SSH: connecting
// with verified host keys (known_hosts by address and port, typed errors for unknown and
// mismatched keys), running commands with their output streamed into the log line by line,
// copying the synced paths from old to new (rsync pushed by old with a one-time key, rsync with
// the operator's forwarded agent, or a tar stream relayed through this machine), verifying the
// copy with manifests, fixing ownership on new, preflight checks, and removing what a crashed run
// left behind.
//
// Synced paths are directories with the same absolute path on both hosts. The package does not
// read cutover's configuration: the caller fills Endpoint, Auth and Entry.
package sshops
