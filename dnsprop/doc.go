// Package dnsprop owns everything cutover knows about DNS propagation: finding a
// zone's authoritative servers (SOA, then NS, then every address of every NS),
// querying them and a given set of recursive resolvers directly (EDNS0, UDP with
// a TCP retry on truncation, per-query timeouts and retries), classifying what
// each server serves against the old and the expected address sets, and waiting,
// TTL-aware, until the authoritative set and a quorum of resolvers serve the new
// sets. It also owns the live view of that wait used by `cutover watch`.
//
// dnsprop never reads /etc/resolv.conf and never uses net.DefaultResolver: every
// server it talks to is named by the caller or discovered through the resolvers
// the caller named. It knows nothing of DNS providers, SSH or schedules.
package dnsprop
