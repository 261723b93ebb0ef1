package dnsprop

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ParseServer parses a DNS server address: "host", "host:port", "[v6]:port",
// "[v6]" or "v6". The port defaults to 53. The host must be an IP literal:
// dnsprop never resolves server names through the system resolver.
func ParseServer(s string) (netip.AddrPort, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return netip.AddrPort{}, fmt.Errorf("dnsprop: server %q: empty", s)
	}
	host, port := in, "53"
	switch {
	case strings.HasPrefix(in, "["):
		end := strings.Index(in, "]")
		if end < 0 {
			return netip.AddrPort{}, fmt.Errorf("dnsprop: server %q: missing ']'", s)
		}
		host = in[1:end]
		rest := in[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return netip.AddrPort{}, fmt.Errorf("dnsprop: server %q: unexpected %q after ']'", s, rest)
			}
			port = rest[1:]
		}
	case strings.Count(in, ":") == 1:
		var err error
		host, port, err = net.SplitHostPort(in)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("dnsprop: server %q: %w", s, err)
		}
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("dnsprop: server %q: host must be an IP address", s)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("dnsprop: server %q: invalid port %q", s, port)
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(p)), nil
}

// serverString is how messages name a server: the bare address on port 53,
// address:port otherwise.
func serverString(ap netip.AddrPort) string {
	if ap.Port() == 53 {
		return ap.Addr().String()
	}
	return ap.String()
}
