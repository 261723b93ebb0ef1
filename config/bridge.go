package config

import (
	"fmt"
	"path"
	"slices"
)

// Bridge is a handover through old: new is activated right after fixup
// and old forwards these TCP ports to the same ports on new while DNS
// moves, so the downtime no longer waits for DNS caches.
type Bridge struct {
	Ports         []uint16 // in the order written, each once
	ProxyProtocol bool     // new gets a PROXY v2 header with each client's address
	Binary        string   // a cutover build for old's OS and architecture; empty: this binary
	Dir           string   // on old: the forwarder's binary, pid file and log (made private, mode 0700)
}

// DefaultBridgeDir is where the forwarder lives on old unless [bridge] dir says otherwise.
const DefaultBridgeDir = "/var/lib/cutover/bridge"

// bridge reads the [bridge] table; nil when there is none.
func (l *loader) bridge(m map[string]any, cfg *Config) *Bridge {
	if m == nil {
		return nil
	}
	l.table(m, "bridge", "ports", "proxy_protocol", "binary", "dir")
	b := &Bridge{ProxyProtocol: l.boolean(m, "bridge", "proxy_protocol"), Binary: l.path(m, "bridge", "binary", "")}
	b.Dir, _ = l.str(m, "bridge", "dir", DefaultBridgeDir)
	if !path.IsAbs(b.Dir) || path.Clean(b.Dir) != b.Dir || b.Dir == "/" || hasControl(b.Dir) {
		l.problem("bridge.dir", "%q: want an absolute, clean path on old other than /, e.g. %q", b.Dir, DefaultBridgeDir)
	}
	switch v := m["ports"].(type) {
	case nil:
		l.problem("bridge.ports", "required: the TCP ports old forwards to new, e.g. ports = [25, 143, 465, 587, 993]")
	case []any:
		if len(v) == 0 {
			l.problem("bridge.ports", "is empty: list the TCP ports old forwards to new")
		}
		for i, e := range v {
			key := fmt.Sprintf("bridge.ports[%d]", i)
			n, ok := e.(int64)
			if !ok {
				l.problem(key, "must be a port number, not %s", typeName(e))
				continue
			}
			if n < 1 || n > 65535 {
				l.problem(key, "%d is not a port (1 to 65535)", n)
				continue
			}
			if slices.Contains(b.Ports, uint16(n)) {
				l.problem(key, "%d is listed twice", n)
				continue
			}
			b.Ports = append(b.Ports, uint16(n))
		}
	default:
		l.problem("bridge.ports", "must be an array of port numbers, not %s", typeName(v))
	}
	if cfg.Hooks.Deactivate == nil {
		l.problem("bridge", "needs [hooks] deactivate: the command that undoes activate on new, run when a failure rolls back before any connection was forwarded")
	}
	return b
}
