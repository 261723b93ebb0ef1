package dnsprop

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var wwwZone = []string{
	soa(7, 300, 60),
	"example.org. 300 IN NS ns1.example.org.",
	"ns1.example.org. 300 IN A 127.0.0.1",
	"www.example.org. 300 IN A 192.0.2.1",
}

// TestTruncationRetriesOverTCP: a truncated UDP reply is asked again over TCP
// and the TCP answer is used.
func TestTruncationRetriesOverTCP(t *testing.T) {
	t.Parallel()
	var many []string
	var manyAddrs []netip.Addr
	for i := range 200 {
		many = append(many, fmt.Sprintf("www.example.org. 300 IN A 192.0.2.%d", i+1))
		manyAddrs = append(manyAddrs, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
	}
	tests := []struct {
		desc    string
		records []string
		handle  func(z zone) func(*dns.Msg, string) *dns.Msg
		want    []netip.Addr
	}{
		{
			desc:    "TC flag on an empty UDP reply",
			records: wwwZone,
			handle: func(z zone) func(*dns.Msg, string) *dns.Msg {
				return func(req *dns.Msg, network string) *dns.Msg {
					m := z.reply(req)
					if network == "udp" {
						m.Answer, m.Ns, m.Extra, m.Truncated = nil, nil, nil, true
					}
					return m
				}
			},
			want: addrs("192.0.2.1"),
		},
		{
			desc:    "200 addresses do not fit 1232 bytes",
			records: append(slices.Clone(wwwZone[:3]), many...),
			handle: func(z zone) func(*dns.Msg, string) *dns.Msg {
				return func(req *dns.Msg, network string) *dns.Msg {
					m := z.reply(req)
					if network == "udp" {
						size := dns.MinMsgSize
						if o := req.IsEdns0(); o != nil {
							size = int(o.UDPSize())
						}
						m.Truncate(size)
					}
					return m
				}
			},
			want: manyAddrs,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			f := startFake(t, "127.0.0.1", 0, tc.handle(zone{aa: true, records: tc.records}))
			c := &Checker{Zone: "example.org.", Authoritative: []netip.AddrPort{f.addr}, QueryTimeout: time.Second}
			facts, err := c.Observe(context.Background(), []string{"www.example.org"})
			if err != nil {
				t.Fatal(err)
			}
			got := facts.Names[0].A
			if !got.Exists() || !slices.Equal(got.Addrs, normSet(tc.want)) || got.TTL != 300*time.Second {
				t.Errorf("A = %+v, want %d addresses with TTL 5m0s", got, len(tc.want))
			}
			udp, tcp := f.counts()
			if tc.desc == "TC flag on an empty UDP reply" && (udp != 3 || tcp != 3) {
				t.Errorf("udp %d tcp %d queries, want 3 and 3 (SOA, A, AAAA each retried over TCP)", udp, tcp)
			}
			if tc.desc != "TC flag on an empty UDP reply" && (tcp != 1) {
				t.Errorf("tcp %d queries, want 1 (only the big A answer)", tcp)
			}
		})
	}
}

// TestUnknownAnswers: timeouts (after the retries), SERVFAIL, REFUSED and
// other failures are "unknown", never converged; a timeout followed by an
// answer within the retries is a verdict.
func TestUnknownAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc    string
		handle  func(*dns.Msg, string) *dns.Msg
		retries int
		dropN   int    // drop the first dropN queries of each (name, type), then answer
		errA    string // Observation.Err of A; "" = converged
		queries int    // UDP queries the server got in the first round
	}{
		{desc: "timeout with retries", handle: drop, errA: "timeout after 3 attempts", queries: 6},
		{desc: "timeout without retries", handle: drop, retries: -1, errA: "timeout after 1 attempt", queries: 2},
		{desc: "SERVFAIL", handle: rcodeOnly(dns.RcodeServerFailure), errA: "SERVFAIL", queries: 2},
		{desc: "REFUSED", handle: rcodeOnly(dns.RcodeRefused), errA: "REFUSED", queries: 2},
		{desc: "NOTIMP", handle: rcodeOnly(dns.RcodeNotImplemented), errA: "NOTIMP", queries: 2},
		{desc: "two timeouts then an answer", dropN: 2, queries: 6},
		{desc: "three timeouts are unknown", dropN: 3, errA: "timeout after 3 attempts", queries: 6},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			h := tc.handle
			if tc.dropN > 0 {
				var mu sync.Mutex
				seen := map[string]int{}
				z := zone{records: wwwZone}
				h = func(req *dns.Msg, _ string) *dns.Msg {
					mu.Lock()
					defer mu.Unlock()
					k := req.Question[0].String()
					seen[k]++
					if seen[k] <= tc.dropN {
						return nil
					}
					return z.reply(req)
				}
			}
			f := startFake(t, "127.0.0.1", 0, h)
			c := &Checker{Resolvers: []netip.AddrPort{f.addr}, QueryTimeout: 60 * time.Millisecond, Retries: tc.retries}
			ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
			defer cancel()
			rep, err := c.WaitResolvers(ctx, []string{"www.example.org."}, Sets{A: addrs("192.0.2.9")}, Sets{A: addrs("192.0.2.1")}, nil)
			if udp, _ := f.counts(); udp != tc.queries {
				t.Errorf("server got %d UDP queries, want %d", udp, tc.queries)
			}
			if tc.errA == "" {
				if err != nil || !rep.Converged {
					t.Fatalf("WaitResolvers = %v, %v; want converged", lagging(rep), err)
				}
				return
			}
			s := serverString(f.addr)
			want := fmt.Sprintf("dnsprop: not converged: %s www.example.org. A unknown (%s); %s www.example.org. AAAA unknown (%s): context deadline exceeded", s, tc.errA, s, tc.errA)
			if err == nil || err.Error() != want {
				t.Fatalf("WaitResolvers error = %v\nwant %s", err, want)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error does not wrap context.DeadlineExceeded")
			}
			var nc *NotConvergedError
			if !errors.As(err, &nc) || nc.Report != rep || rep.Converged {
				t.Fatalf("error is not a *NotConvergedError carrying the returned, unconverged report")
			}
			if o := rep.Observations[0]; o.State != StateUnknown || o.Err != tc.errA {
				t.Errorf("A observation = %s %q, want unknown %q", o.State, o.Err, tc.errA)
			}
		})
	}
}

// TestClassifyWholeSets compares whole sets both ways, through a resolver.
func TestClassifyWholeSets(t *testing.T) {
	t.Parallel()
	old := Sets{A: addrs("192.0.2.1"), AAAA: addrs("2001:db8::1")}
	want := Sets{A: addrs("192.0.2.2", "192.0.2.3")}
	tests := []struct {
		desc      string
		records   []string
		a, aaaa   State
		aTTL      time.Duration
		converged bool
	}{
		{desc: "new set, any order", records: []string{"www 30 IN A 192.0.2.3", "www 30 IN A 192.0.2.2"}, a: StateNew, aaaa: StateNew, aTTL: 30 * time.Second, converged: true},
		{desc: "old sets", records: []string{"www 20 IN A 192.0.2.1", "www 20 IN AAAA 2001:db8::1"}, a: StateOld, aaaa: StateOld, aTTL: 20 * time.Second},
		{desc: "old and new at once", records: []string{"www 30 IN A 192.0.2.1", "www 30 IN A 192.0.2.2", "www 30 IN A 192.0.2.3"}, a: StateOther, aaaa: StateNew, aTTL: 30 * time.Second},
		{desc: "part of the new set", records: []string{"www 30 IN A 192.0.2.2"}, a: StateOther, aaaa: StateNew, aTTL: 30 * time.Second},
		{desc: "foreign address", records: []string{"www 30 IN A 198.51.100.1"}, a: StateOther, aaaa: StateNew, aTTL: 30 * time.Second},
		{desc: "AAAA left over", records: []string{"www 30 IN A 192.0.2.2", "www 30 IN A 192.0.2.3", "www 30 IN AAAA 2001:db8::1"}, a: StateNew, aaaa: StateOld, aTTL: 30 * time.Second},
		{desc: "NODATA for both", records: []string{"www 30 IN TXT x"}, a: StateMissing, aaaa: StateNew, aTTL: 45 * time.Second},
		{desc: "NXDOMAIN", records: nil, a: StateMissing, aaaa: StateNew, aTTL: 45 * time.Second},
		{desc: "CNAME to the new set", records: []string{"www 30 IN CNAME host", "host 10 IN A 192.0.2.2", "host 10 IN A 192.0.2.3"}, a: StateNew, aaaa: StateNew, aTTL: 10 * time.Second, converged: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			z := zone{records: append([]string{soa(1, 300, 45)}, withOrigin(tc.records)...)}
			f := startFake(t, "127.0.0.1", 0, serve(z))
			c := &Checker{Resolvers: []netip.AddrPort{f.addr}}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			rep, err := c.WaitResolvers(ctx, []string{"www.example.org."}, old, want, nil)
			if (err == nil) != tc.converged || rep.Converged != tc.converged {
				t.Fatalf("converged %v, err %v; want converged %v", rep.Converged, err, tc.converged)
			}
			a, aaaa := rep.Observations[0], rep.Observations[1]
			if a.State != tc.a || aaaa.State != tc.aaaa || a.TTL != tc.aTTL {
				t.Errorf("A %s ttl %s, AAAA %s; want A %s ttl %s, AAAA %s", a.State, a.TTL, aaaa.State, tc.a, tc.aTTL, tc.aaaa)
			}
		})
	}
}

// withOrigin makes relative zone lines absolute in example.org.
func withOrigin(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		f[0] += ".example.org."
		for i, x := range f {
			if i > 0 && (f[i-1] == "CNAME") {
				f[i] = x + ".example.org."
			}
		}
		out = append(out, strings.Join(f, " "))
	}
	return out
}

// TestNegativeTTL: NODATA and NXDOMAIN carry the negative TTL min(SOA TTL, SOA
// minimum) and are waited on like any TTL.
func TestNegativeTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc            string
		soaTTL, minimum uint32
		negTTL          time.Duration
	}{
		{desc: "minimum smaller", soaTTL: 300, minimum: 60, negTTL: 60 * time.Second},
		{desc: "SOA TTL smaller", soaTTL: 30, minimum: 60, negTTL: 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			recs := []string{soa(3, tc.soaTTL, tc.minimum), "example.org. 300 IN NS ns1.example.org.", "ns1.example.org. 300 IN A 127.0.0.1", "www.example.org. 300 IN A 192.0.2.1"}
			auth := startFake(t, "127.0.0.1", 0, serve(zone{aa: true, records: recs}))
			res := startFake(t, "127.0.0.1", 0, serve(zone{records: recs}))
			c := &Checker{Zone: "example.org.", Authoritative: []netip.AddrPort{auth.addr}, Resolvers: []netip.AddrPort{res.addr}}
			facts, err := c.Observe(context.Background(), []string{"www.example.org.", "gone.example.org."})
			if err != nil {
				t.Fatal(err)
			}
			wantFacts := fmt.Sprintf("%s neg %s [www.example.org. A {true [192.0.2.1] 5m0s} AAAA {false [] 0s}] [gone.example.org. A {false [] 0s} AAAA {false [] 0s}]",
				"example.org.", tc.negTTL)
			if got := factsString(facts); got != wantFacts {
				t.Errorf("facts = %s\nwant    %s", got, wantFacts)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err = c.WaitResolvers(ctx, []string{"www.example.org."}, Sets{A: addrs("192.0.2.1"), AAAA: addrs("2001:db8::1")}, Sets{A: addrs("192.0.2.1"), AAAA: addrs("2001:db8::2")}, nil)
			want := fmt.Sprintf("dnsprop: not converged: %s www.example.org. AAAA missing (ttl %s left): context deadline exceeded", serverString(res.addr), tc.negTTL)
			if err == nil || err.Error() != want {
				t.Errorf("WaitResolvers error = %v\nwant %s", err, want)
			}
		})
	}
}

func factsString(f *ZoneFacts) string {
	s := fmt.Sprintf("%s neg %s", f.Zone, f.NegativeTTL)
	for _, n := range f.Names {
		s += fmt.Sprintf(" [%s A {%v %v %s} AAAA {%v %v %s}]", n.Name, n.A.Exists(), n.A.Addrs, n.A.TTL, n.AAAA.Exists(), n.AAAA.Addrs, n.AAAA.TTL)
	}
	return s
}

// TestNotAuthoritative: an authoritative server that answers without the AA
// flag is refused by Observe and is "unknown" while waiting.
func TestNotAuthoritative(t *testing.T) {
	t.Parallel()
	f := startFake(t, "127.0.0.1", 0, serve(zone{aa: false, records: wwwZone}))
	c := &Checker{Zone: "example.org", Authoritative: []netip.AddrPort{f.addr}}
	_, err := c.Observe(context.Background(), []string{"www.example.org."})
	s := serverString(f.addr)
	want := fmt.Sprintf(`dnsprop: observe "example.org.": %s example.org. SOA: answer without AA flag; %s www.example.org. A: answer without AA flag; %s www.example.org. AAAA: answer without AA flag`, s, s, s)
	if err == nil || err.Error() != want {
		t.Fatalf("Observe error = %v\nwant %s", err, want)
	}
	if !errors.Is(err, ErrNotAuthoritative) {
		t.Errorf("Observe error does not match ErrNotAuthoritative")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.WaitAuthoritative(ctx, []string{"www.example.org."}, Sets{}, Sets{A: addrs("192.0.2.1")}, nil)
	want = fmt.Sprintf(`dnsprop: not converged: %s example.org. SOA unknown (answer without AA flag); %s www.example.org. A unknown (answer without AA flag); %s www.example.org. AAAA unknown (answer without AA flag): context deadline exceeded`, s, s, s)
	if err == nil || err.Error() != want {
		t.Fatalf("WaitAuthoritative error = %v\nwant %s", err, want)
	}
}

// TestDiscovery finds the zone by the SOA walk and the authoritative servers
// by NS, glue and address queries, all through the given resolver.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	auth1 := startFake(t, "127.0.0.4", 0, nil)
	auth2 := startFake(t, "127.0.0.5", auth1.addr.Port(), nil)
	recs := []string{
		soa(9, 300, 60),
		"example.org. 300 IN NS ns1.example.org.",
		"example.org. 300 IN NS ns2.example.org.",
		"ns1.example.org. 300 IN A 127.0.0.4",
		"ns2.example.org. 300 IN A 127.0.0.5",
		"www.sub.example.org. 300 IN A 192.0.2.1",
	}
	auth1.setHandle(serve(zone{aa: true, records: recs}))
	auth2.setHandle(serve(zone{aa: true, records: recs}))
	port := auth1.addr.Port()
	tests := []struct {
		desc string
		// resolver wraps the resolver's view of the zone
		resolver func(req *dns.Msg, z zone) *dns.Msg
		servers  string
		err      string
	}{
		{
			desc: "glue only, address queries refused",
			resolver: func(req *dns.Msg, z zone) *dns.Msg {
				if q := req.Question[0]; strings.HasPrefix(q.Name, "ns") && q.Qtype != dns.TypeNS {
					return rcodeOnly(dns.RcodeRefused)(req, "")
				}
				return z.reply(req)
			},
			servers: fmt.Sprintf("ns1.example.org.=127.0.0.4:%d ns2.example.org.=127.0.0.5:%d", port, port),
		},
		{
			desc: "no glue, addresses asked",
			resolver: func(req *dns.Msg, z zone) *dns.Msg {
				m := z.reply(req)
				m.Extra = nil
				return m
			},
			servers: fmt.Sprintf("ns1.example.org.=127.0.0.4:%d ns2.example.org.=127.0.0.5:%d", port, port),
		},
		{
			desc: "no address for ns2",
			resolver: func(req *dns.Msg, z zone) *dns.Msg {
				if q := req.Question[0]; strings.HasPrefix(q.Name, "ns2") {
					return rcodeOnly(dns.RcodeRefused)(req, "")
				}
				m := z.reply(req)
				m.Extra = nil
				return m
			},
			err: `dnsprop: authoritative server "ns2.example.org." of "example.org." has no address: no resolver answered ns2.example.org. A: RES REFUSED; no resolver answered ns2.example.org. AAAA: RES REFUSED`,
		},
		{
			desc:     "no SOA anywhere",
			resolver: func(req *dns.Msg, z zone) *dns.Msg { return rcodeOnly(dns.RcodeNameError)(req, "") },
			err:      `dnsprop: find zone of "www.sub.example.org.": no SOA found up to the root`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			z := zone{records: recs}
			res := startFake(t, "127.0.0.3", 0, func(req *dns.Msg, _ string) *dns.Msg { return tc.resolver(req, z) })
			c := &Checker{Resolvers: []netip.AddrPort{res.addr}, AuthoritativePort: port}
			facts, err := c.Observe(context.Background(), []string{"WWW.sub.example.org"})
			if tc.err != "" {
				want := strings.ReplaceAll(tc.err, "RES", serverString(res.addr))
				if err == nil || err.Error() != want {
					t.Fatalf("Observe error = %v\nwant %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range facts.Servers {
				got = append(got, s.Name+"="+s.Addr.String())
			}
			if strings.Join(got, " ") != tc.servers {
				t.Errorf("servers %q, want %q", strings.Join(got, " "), tc.servers)
			}
			if facts.Zone != "example.org." || facts.Serials[auth1.addr] != 9 || facts.Serials[auth2.addr] != 9 {
				t.Errorf("zone %q serials %v, want example.org. and 9 on both", facts.Zone, facts.Serials)
			}
			if a := facts.Names[0]; a.Name != "www.sub.example.org." || !slices.Equal(a.A.Addrs, addrs("192.0.2.1")) {
				t.Errorf("names = %+v", facts.Names)
			}
		})
	}
}
