package dnsprop

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fake is an in-process DNS server listening on UDP and TCP at the same
// address. handle returns the reply to send, or nil to drop the query (the
// client times out).
type fake struct {
	addr   netip.AddrPort
	mu     sync.Mutex
	udp    int
	tcp    int
	handle func(req *dns.Msg, network string) *dns.Msg
}

// startFake starts a fake on ip (any 127.0.0.0/8 address) at port (0: any
// free port, the same for UDP and TCP).
func startFake(t *testing.T, ip string, port uint16, handle func(req *dns.Msg, network string) *dns.Msg) *fake {
	t.Helper()
	f := &fake{handle: handle}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for try := 0; ; try++ {
		pc, err = net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		p := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err = net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(p)))
		if err == nil {
			f.addr = netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(p))
			break
		}
		pc.Close()
		if port != 0 || try > 20 {
			t.Fatalf("listen tcp: %v", err)
		}
	}
	h := func(network string) dns.HandlerFunc {
		return func(w dns.ResponseWriter, req *dns.Msg) {
			f.mu.Lock()
			if network == "udp" {
				f.udp++
			} else {
				f.tcp++
			}
			handle := f.handle
			f.mu.Unlock()
			if r := handle(req, network); r != nil {
				_ = w.WriteMsg(r)
			}
		}
	}
	us := &dns.Server{PacketConn: pc, Handler: h("udp")}
	ts := &dns.Server{Listener: ln, Handler: h("tcp")}
	for _, s := range []*dns.Server{us, ts} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("fake DNS server did not start")
		}
	}
	t.Cleanup(func() {
		_ = us.Shutdown()
		_ = ts.Shutdown()
	})
	return f
}

func (f *fake) counts() (udp, tcp int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.udp, f.tcp
}

func (f *fake) setHandle(h func(req *dns.Msg, network string) *dns.Msg) {
	f.mu.Lock()
	f.handle = h
	f.mu.Unlock()
}

// zone is the content of a fake authoritative server or the view of a fake
// resolver: zone-file lines, the first of which is the SOA.
type zone struct {
	aa      bool
	records []string
}

// reply answers req from z: the matching records; else NODATA (the name has
// other records) or NXDOMAIN, with the SOA in the authority section. A CNAME
// at the name is followed inside the zone.
func (z zone) reply(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = z.aa
	m.RecursionAvailable = !z.aa
	var rrs []dns.RR
	for _, l := range z.records {
		rr, err := dns.NewRR(l)
		if err != nil {
			panic(err)
		}
		rrs = append(rrs, rr)
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	exists := false
	for range 8 {
		next := ""
		for _, rr := range rrs {
			h := rr.Header()
			if dns.CanonicalName(h.Name) != name {
				continue
			}
			exists = true
			if h.Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				m.Answer = append(m.Answer, rr)
				next = dns.CanonicalName(c.Target)
			}
		}
		if next == "" {
			break
		}
		name = next
	}
	if q.Qtype == dns.TypeNS {
		for _, a := range m.Answer {
			ns := dns.CanonicalName(a.(*dns.NS).Ns)
			for _, rr := range rrs {
				if dns.CanonicalName(rr.Header().Name) == ns && (rr.Header().Rrtype == dns.TypeA || rr.Header().Rrtype == dns.TypeAAAA) {
					m.Extra = append(m.Extra, rr)
				}
			}
		}
	}
	if len(m.Answer) == 0 || m.Answer[len(m.Answer)-1].Header().Rrtype != q.Qtype {
		if len(m.Answer) == 0 && !exists {
			m.Rcode = dns.RcodeNameError
		}
		m.Ns = append(m.Ns, rrs[0])
	}
	return m
}

// serve returns a handler answering from z.
func serve(z zone) func(*dns.Msg, string) *dns.Msg {
	return func(req *dns.Msg, _ string) *dns.Msg { return z.reply(req) }
}

// rcodeOnly returns a handler that answers every query with rcode.
func rcodeOnly(rc int) func(*dns.Msg, string) *dns.Msg {
	return func(req *dns.Msg, _ string) *dns.Msg {
		m := new(dns.Msg)
		m.SetRcode(req, rc)
		return m
	}
}

// drop never answers.
func drop(*dns.Msg, string) *dns.Msg { return nil }

// soa is the SOA line of the fake zone example.org.
func soa(serial uint32, ttl, minimum uint32) string {
	return fmt.Sprintf("example.org. %d IN SOA ns1.example.org. hostmaster.example.org. %d 5 2 3600 %d", ttl, serial, minimum)
}

// fakeClock is a Clock that moves only when after is called: after(d) moves
// it forward by d and fires at once.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return ch
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, x := range s {
		out = append(out, netip.MustParseAddr(x))
	}
	return out
}

// lagging joins a report's Lagging lines for comparison.
func lagging(r *Report) string {
	if r == nil {
		return "<nil report>"
	}
	return strings.Join(r.Lagging, "\n")
}
