package dnsprop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the EDNS0 UDP payload size advertised (the DNS flag day 2020 value).
const ednsSize = 1232

// counter counts the DNS messages sent to each server.
type counter struct {
	mu sync.Mutex
	n  map[netip.AddrPort]int
}

func (c *counter) add(s netip.AddrPort) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[netip.AddrPort]int{}
	}
	c.n[s]++
	c.mu.Unlock()
}

func (c *counter) snapshot() map[netip.AddrPort]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[netip.AddrPort]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// answer is a parsed reply to one (name, type) question.
type answer struct {
	msg    *dns.Msg
	rcode  int
	aa     bool
	exists bool          // records of the asked type (after any CNAME chain)
	addrs  []netip.Addr  // for A and AAAA, sorted and de-duplicated
	ttl    time.Duration // exists: smallest TTL in the answer chain; else negative TTL from the SOA
	ttlSet bool          // false: a negative answer without SOA
	soa    *dns.SOA      // the SOA in the answer (SOA queries) or authority section (negative answers)
	err    string        // set: no usable answer (timeout, SERVFAIL, REFUSED, not authoritative)
}

// exchange sends one question to server: UDP with EDNS0, TCP when the reply is
// truncated, each attempt bounded by timeout, retried on timeouts and network
// errors. rd asks for recursion (resolvers); authoritative queries do not.
// A nil error means a reply arrived (of any rcode).
func exchange(ctx context.Context, cnt *counter, server netip.AddrPort, name string, qtype uint16, rd bool, timeout time.Duration, retries int) (*dns.Msg, error) {
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.RecursionDesired = rd
		m.SetEdns0(ednsSize, false)
		r, err := exchangeOnce(ctx, cnt, "udp", server, m, timeout)
		if err == nil && r.Truncated {
			r, err = exchangeOnce(ctx, cnt, "tcp", server, m, timeout)
		}
		if err == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		last = err
	}
	n := fmt.Sprintf("%d attempts", retries+1)
	if retries == 0 {
		n = "1 attempt"
	}
	var ne net.Error
	if errors.As(last, &ne) && ne.Timeout() {
		return nil, fmt.Errorf("timeout after %s", n)
	}
	return nil, fmt.Errorf("%w (after %s)", last, n)
}

// exchangeOnce is one message over one transport. Cancelling ctx aborts it at
// once (miekg/dns only honours deadlines, so the connection's deadline is moved).
func exchangeOnce(ctx context.Context, cnt *counter, network string, server netip.AddrPort, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(qctx, network, server.String())
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	stop := context.AfterFunc(qctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	deadline, _ := qctx.Deadline()
	nc.SetDeadline(deadline)
	co := &dns.Conn{Conn: nc, UDPSize: ednsSize}
	cnt.add(server)
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	for {
		r, err := co.ReadMsg()
		if err != nil {
			if r != nil && r.Truncated && r.Id == m.Id {
				return r, nil // a truncated reply may not unpack completely
			}
			return nil, err
		}
		if r.Id != m.Id || !sameQuestion(r, m) {
			if network == "udp" {
				continue // a late reply to an earlier attempt
			}
			return nil, fmt.Errorf("reply does not match the query")
		}
		return r, nil
	}
}

func sameQuestion(r, m *dns.Msg) bool {
	if len(r.Question) == 0 {
		return true // some servers drop the question on errors
	}
	return len(r.Question) == 1 && r.Question[0].Qtype == m.Question[0].Qtype &&
		dns.CanonicalName(r.Question[0].Name) == dns.CanonicalName(m.Question[0].Name)
}

// query asks one question and parses the reply. Failures are in answer.err,
// never a Go error, except ctx's own.
func query(ctx context.Context, cnt *counter, server netip.AddrPort, name string, qtype uint16, auth bool, timeout time.Duration, retries int) (answer, error) {
	r, err := exchange(ctx, cnt, server, name, qtype, !auth, timeout, retries)
	if err != nil {
		if ctx.Err() != nil {
			return answer{}, ctx.Err()
		}
		return answer{err: err.Error()}, nil
	}
	return parse(r, name, qtype, auth), nil
}

func parse(r *dns.Msg, name string, qtype uint16, auth bool) answer {
	a := answer{msg: r, rcode: r.Rcode, aa: r.Authoritative}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		a.err = rcodeString(r.Rcode)
		return a
	}
	if auth && !r.Authoritative {
		a.err = ErrNotAuthoritative.Error()
		return a
	}
	// Follow the CNAME chain from name; collect the asked type at its end.
	owner := dns.CanonicalName(name)
	minTTL := uint32(0)
	seen := false
	note := func(ttl uint32) {
		if !seen || ttl < minTTL {
			minTTL = ttl
		}
		seen = true
	}
	for range 16 {
		next := ""
		for _, rr := range r.Answer {
			if c, ok := rr.(*dns.CNAME); ok && dns.CanonicalName(c.Hdr.Name) == owner && qtype != dns.TypeCNAME {
				next = dns.CanonicalName(c.Target)
				note(c.Hdr.Ttl)
			}
		}
		if next == "" {
			break
		}
		owner = next
	}
	for _, rr := range r.Answer {
		h := rr.Header()
		if h.Rrtype != qtype || dns.CanonicalName(h.Name) != owner {
			continue
		}
		switch v := rr.(type) {
		case *dns.A:
			if ip, ok := netip.AddrFromSlice(v.A); ok {
				a.addrs = append(a.addrs, ip.Unmap())
			}
		case *dns.AAAA:
			if ip, ok := netip.AddrFromSlice(v.AAAA); ok {
				a.addrs = append(a.addrs, ip)
			}
		case *dns.SOA:
			a.soa = v
		}
		a.exists = true
		note(h.Ttl)
	}
	a.addrs = normSet(a.addrs)
	if a.exists {
		a.ttl, a.ttlSet = time.Duration(minTTL)*time.Second, true
		return a
	}
	for _, rr := range r.Ns {
		if s, ok := rr.(*dns.SOA); ok {
			a.soa = s
			a.ttl, a.ttlSet = negativeTTL(s), true
			break
		}
	}
	return a
}

// negativeTTL is how long a negative answer may be cached: min(SOA TTL, SOA
// minimum) (RFC 2308 section 5).
func negativeTTL(s *dns.SOA) time.Duration {
	return time.Duration(min(s.Hdr.Ttl, s.Minttl)) * time.Second
}

func rcodeString(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", rc)
}

// typeName is "A", "AAAA", ...
func typeName(t uint16) string { return dns.TypeToString[t] }

// canonNames validates and canonicalises names (lower case, fully qualified),
// dropping duplicates but keeping order.
func canonNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errors.New("dnsprop: no names given")
	}
	var out []string
	for _, n := range names {
		c, err := CanonName(n)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// CanonName checks that name is a host name that can hold A and AAAA records
// and returns it in lower case, fully qualified. Labels are 1 to 63 letters,
// digits, '-' (not first or last) and '_'; the whole name at most 253
// characters without the final dot.
func CanonName(name string) (string, error) {
	c := dns.CanonicalName(name)
	bad := func(why string, args ...any) (string, error) {
		return "", fmt.Errorf("dnsprop: invalid name %q: %s", name, fmt.Sprintf(why, args...))
	}
	switch {
	case name == "" || c == ".":
		return bad("empty")
	case len(c) > 254:
		return bad("%d characters, at most 253 allowed", len(c)-1)
	}
	for _, l := range strings.Split(strings.TrimSuffix(c, "."), ".") {
		switch {
		case l == "":
			return bad("empty label")
		case len(l) > 63:
			return bad("label %q is longer than 63 characters", l)
		case strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-"):
			return bad("label %q starts or ends with '-'", l)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return bad("%q is not a letter, digit, '-' or '_'", r)
			}
		}
	}
	return c, nil
}
