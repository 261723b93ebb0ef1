package providertest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/dnsprop"
	"github.com/cutover-dev/cutover/internal/selftest"
	"github.com/cutover-dev/cutover/providers"
)

// SelftestName is the scratch name Selftest uses, relative to the zone.
const SelftestName = "cutover-selftest"

// Selftest runs `cutover dns selftest` (package selftest) with z on
// SelftestName, asking auth as the zone's one authoritative server, and
// fails t unless every operation passed and nothing was left behind, at
// the provider or at auth.
func Selftest(t *testing.T, z *providers.Zone, auth netip.AddrPort, lowTTL time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := SelftestName + "." + z.Name()
	chk := &dnsprop.Checker{Zone: z.Name(), Authoritative: []netip.AddrPort{auth}}
	st := &selftest.Test{Zone: z, Checker: chk, Name: name, LoweredTTL: lowTTL, Timeout: 30 * time.Second}
	rep, err := st.Run(ctx)
	if err != nil {
		t.Fatalf("selftest: %v", err)
	}
	var ops []string
	for _, op := range rep.Ops {
		if op.OK {
			ops = append(ops, op.Op)
		}
	}
	if got, want := strings.Join(ops, " "), "create lower-ttl replace remove-aaaa delete"; got != want || !rep.Passed {
		t.Errorf("operations passed: %q, want %q (passed %v)", got, want, rep.Passed)
	}
	if rep.Cleanup != "nothing left behind" || time.Duration(rep.LowestTTL) != lowTTL {
		t.Errorf("cleanup %q, lowest TTL accepted %s", rep.Cleanup, time.Duration(rep.LowestTTL))
	}
	snap, err := z.Snapshot(ctx, []string{name})
	if err != nil {
		t.Fatal(err)
	}
	f, err := chk.Observe(ctx, []string{name})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append(snap.Names, f.Names...) {
		if n.A.Exists() || n.AAAA.Exists() {
			t.Errorf("left behind: %s", selftest.Describe(n))
		}
	}
}

// Serve is an authoritative server for a fake API, on 127.0.0.1: it
// answers A, AAAA and SOA questions for zone (AA set) from what read
// returns (names relative to zone), so that what the API holds can be
// checked the way real DNS servers are. Stopped at the end of the test.
func Serve(t *testing.T, zone string, read func() []libdns.RR) netip.AddrPort {
	t.Helper()
	zone = dns.CanonicalName(zone)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		soa := &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns: "ns1." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 5, Retry: 2, Expire: 3600, Minttl: 0}
		qn := dns.CanonicalName(q.Question[0].Name)
		if !dns.IsSubDomain(zone, qn) {
			m.Rcode, m.Authoritative = dns.RcodeRefused, false
			_ = w.WriteMsg(m)
			return
		}
		exists := qn == zone
		for _, r := range read() {
			if dns.CanonicalName(libdns.AbsoluteName(r.Name, zone)) != qn {
				continue
			}
			exists = true
			if dns.TypeToString[q.Question[0].Qtype] != r.Type {
				continue
			}
			hdr := dns.RR_Header{Name: qn, Rrtype: q.Question[0].Qtype, Class: dns.ClassINET, Ttl: uint32(r.TTL / time.Second)}
			switch ip := net.ParseIP(r.Data); r.Type {
			case "A":
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip})
			case "AAAA":
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip})
			}
		}
		switch {
		case q.Question[0].Qtype == dns.TypeSOA && qn == zone:
			m.Answer = append(m.Answer, soa)
		case len(m.Answer) == 0:
			m.Ns = append(m.Ns, soa)
			if !exists {
				m.Rcode = dns.RcodeNameError
			}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}
