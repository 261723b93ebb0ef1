package manual_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/manual"
	"github.com/cutover-dev/cutover/providers/providertest"
)

const zone = "example.org."

type rrKey struct{ name, typ string }

type rrData struct {
	data []string
	ttl  uint32
}

// authServer is an in-process authoritative server for zone whose answers
// the test (the "operator") changes.
type authServer struct {
	mu      sync.Mutex
	data    map[rrKey]rrData
	addr    netip.AddrPort
	queries int
}

func startAuth(t *testing.T, listen string) *authServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", listen)
	if err != nil {
		t.Fatal(err)
	}
	s := &authServer{data: map[rrKey]rrData{}, addr: netip.MustParseAddrPort(pc.LocalAddr().String())}
	srv := &dns.Server{PacketConn: pc, Handler: s}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return s
}

func (s *authServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries++
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	known := false
	for k := range s.data {
		if k.name == name {
			known = true
		}
	}
	if d, ok := s.data[rrKey{name, dns.TypeToString[q.Qtype]}]; ok {
		for _, v := range d.data {
			rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", name, d.ttl, dns.TypeToString[q.Qtype], v))
			if err == nil {
				m.Answer = append(m.Answer, rr)
			}
		}
	}
	soa, _ := dns.NewRR(zone + " 30 IN SOA ns1." + zone + " hostmaster." + zone + " 1 5 2 3600 5")
	if name == zone && q.Qtype == dns.TypeSOA {
		m.Answer = append(m.Answer, soa)
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, soa)
		if !known && name != zone {
			m.Rcode = dns.RcodeNameError
		}
	}
	_ = w.WriteMsg(m)
}

func (s *authServer) set(name, typ string, ttl uint32, data []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := rrKey{strings.ToLower(name), typ}
	if len(data) == 0 {
		delete(s.data, k)
		return
	}
	s.data[k] = rrData{data: data, ttl: ttl}
}

func (s *authServer) remove(name, typ, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := rrKey{strings.ToLower(name), typ}
	d := s.data[k]
	d.data = slices.DeleteFunc(d.data, func(v string) bool { return v == value })
	if len(d.data) == 0 {
		delete(s.data, k)
		return
	}
	s.data[k] = d
}

// operator reads the instructions the provider prints and carries them out
// on each server in turn, lag apart, the way a person at a web console and
// secondaries catching up would.
type operator struct {
	t       *testing.T
	mu      sync.Mutex
	servers []*authServer
	lag     time.Duration
	idle    bool // do nothing (timeout tests)
	ttlOff  int  // added to every TTL the operator types (a typo)
	out     strings.Builder
	line    []byte
	changes []func(*authServer)
	mode    string
	wg      sync.WaitGroup
}

func (o *operator) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.out.Write(p)
	for _, c := range p {
		if c != '\n' {
			o.line = append(o.line, c)
			continue
		}
		o.handle(string(o.line))
		o.line = o.line[:0]
	}
	return len(p), nil
}

func (o *operator) handle(line string) {
	f := strings.Fields(line)
	switch {
	case strings.HasPrefix(line, "  SET "):
		o.mode = "set"
		name, typ := f[1], f[2]
		o.changes = append(o.changes, func(s *authServer) { s.set(name, typ, 0, nil) })
	case line == "  DELETE:":
		o.mode = "delete"
	case strings.HasPrefix(line, "    ") && len(f) == 5:
		name, typ, value := f[0], f[3], f[4]
		ttl, err := strconv.Atoi(f[1])
		ttl += o.ttlOff
		if err != nil {
			o.t.Errorf("operator: bad record line %q", line)
			return
		}
		if o.mode == "delete" {
			o.changes = append(o.changes, func(s *authServer) { s.remove(name, typ, value) })
			return
		}
		o.changes = append(o.changes, func(s *authServer) {
			s.mu.Lock()
			k := rrKey{strings.ToLower(name), typ}
			d := s.data[k]
			d.data, d.ttl = append(d.data, value), uint32(ttl)
			s.data[k] = d
			s.mu.Unlock()
		})
	case strings.HasPrefix(line, "manual: waiting"):
		changes := o.changes
		o.changes, o.mode = nil, ""
		if o.idle {
			return
		}
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			for _, s := range o.servers {
				time.Sleep(o.lag)
				for _, c := range changes {
					c(s)
				}
			}
		}()
	}
}

func (o *operator) transcript() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.out.String()
}

func open(t *testing.T, op *operator, kv map[string]any, env providers.Env) *providers.Zone {
	t.Helper()
	env.Zone, env.Out = zone, op
	for _, s := range op.servers {
		env.Authoritative = append(env.Authoritative, s.addr)
	}
	z, err := providers.Open(config.NewProviderSettings("dns", "manual", kv), env)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestConformance(t *testing.T) {
	op := &operator{t: t, servers: []*authServer{startAuth(t, "127.0.0.1:0"), startAuth(t, "127.0.0.1:0")}, lag: 20 * time.Millisecond}
	defer op.wg.Wait()
	providertest.Run(t, providertest.Harness{
		Zone:   zone,
		Caps:   manual.Spec.Capabilities,
		TTL:    30 * time.Second,
		LowTTL: 5 * time.Second,
		Start: func(t *testing.T, seed []libdns.RR) providers.Client {
			for _, s := range op.servers {
				s.mu.Lock()
				for _, r := range seed {
					k := rrKey{r.Name + "." + zone, r.Type}
					d := s.data[k]
					v := r.Data
					if r.Type == "TXT" {
						v = strconv.Quote(v)
					}
					d.data, d.ttl = append(d.data, v), uint32(r.TTL.Seconds())
					s.data[k] = d
				}
				s.mu.Unlock()
			}
			return open(t, op, map[string]any{"timeout": "10s"}, providers.Env{}).Client()
		},
		Change: func(t *testing.T, name, typ string, addrs []netip.Addr) {
			var vs []string
			for _, a := range addrs {
				vs = append(vs, a.String())
			}
			for _, s := range op.servers {
				s.set(name+"."+zone, typ, 30, vs)
			}
		},
		Read: func(t *testing.T) []libdns.RR {
			s := op.servers[0]
			s.mu.Lock()
			defer s.mu.Unlock()
			var out []libdns.RR
			for k, d := range s.data {
				for _, v := range d.data {
					if k.typ == "TXT" {
						v, _ = strconv.Unquote(v)
					}
					out = append(out, libdns.RR{Name: libdns.RelativeName(k.name, zone), Type: k.typ, TTL: time.Duration(d.ttl) * time.Second, Data: v})
				}
			}
			return out
		},
	})
}

func TestInstructionsAndWaiting(t *testing.T) {
	s1, s2 := startAuth(t, "127.0.0.1:0"), startAuth(t, "127.0.0.1:0")
	for _, s := range []*authServer{s1, s2} {
		s.set("mail."+zone, "A", 30, []string{"192.0.2.1"})
		s.set("mail."+zone, "AAAA", 30, []string{"2001:db8::1"})
	}
	ctx := context.Background()
	to := providers.Target{A: netip.MustParseAddr("198.51.100.2")}
	tests := []struct {
		desc  string
		kv    map[string]any
		idle  bool
		typo  int // the operator's TTL typo
		wait  func(*[][]providers.Expect) providers.WaitFunc
		want  string // transcript
		err   string
		calls string // what the hook was asked to wait for
	}{
		{
			desc: "swap to a host without IPv6, second server lagging",
			kv:   map[string]any{},
			want: "manual: please change zone example.org. at your DNS host:\n" +
				"  SET mail.example.org. A (replace every A record of this name) to:\n" +
				"    mail.example.org. 5 IN A 198.51.100.2\n" +
				"manual: waiting up to 1h0m0s until every authoritative server (S1, S2) serves exactly that\n" +
				"manual: every authoritative server serves it\n" +
				"manual: please change zone example.org. at your DNS host:\n" +
				"  DELETE:\n" +
				"    mail.example.org. 30 IN AAAA 2001:db8::1\n" +
				"manual: waiting up to 1h0m0s until every authoritative server (S1, S2) serves exactly that\n" +
				"manual: every authoritative server serves it\n",
		},
		{
			desc: "nobody makes the change",
			kv:   map[string]any{"timeout": "4s"}, // dnsprop asks every 1 s: two rounds at least make the answer stable
			idle: true,
			err: "providers: swap: set records: manual: waiting for the change: " +
				"dnsprop: not converged: S1 mail.example.org. A other {192.0.2.1} ttl 30s, want {198.51.100.2} ttl 5s (stable: at serial 1, the newest); " +
				"S2 mail.example.org. A other {192.0.2.1} ttl 30s, want {198.51.100.2} ttl 5s (stable: at serial 1, the newest): context deadline exceeded",
		},
		{
			desc: "the addresses are right but the TTL is not",
			kv:   map[string]any{"timeout": "4s"},
			typo: 1,
			err: "providers: swap: set records: manual: waiting for the change: " +
				"dnsprop: not converged: S1 mail.example.org. A other {198.51.100.2} ttl 6s, want {198.51.100.2} ttl 5s (stable: at serial 1, the newest); " +
				"S2 mail.example.org. A other {198.51.100.2} ttl 6s, want {198.51.100.2} ttl 5s (stable: at serial 1, the newest): context deadline exceeded",
		},
		{
			desc: "the injected wait is used and its error returned",
			kv:   map[string]any{"timeout": "2s"},
			idle: true,
			wait: func(calls *[][]providers.Expect) providers.WaitFunc {
				return func(ctx context.Context, want []providers.Expect) error {
					*calls = append(*calls, want)
					if _, ok := ctx.Deadline(); !ok {
						return errors.New("no deadline from the timeout setting")
					}
					return errors.New("dnsprop: not converged")
				}
			},
			err:   "providers: swap: set records: manual: waiting for the change: dnsprop: not converged",
			calls: "[[{Name:mail.example.org. Type:A Addrs:[198.51.100.2] TTL:5s}]]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			for _, s := range []*authServer{s1, s2} {
				s.set("mail."+zone, "A", 30, []string{"192.0.2.1"})
				s.set("mail."+zone, "AAAA", 30, []string{"2001:db8::1"})
			}
			op := &operator{t: t, servers: []*authServer{s1, s2}, lag: 150 * time.Millisecond, idle: tc.idle, ttlOff: tc.typo}
			var calls [][]providers.Expect
			env := providers.Env{}
			if tc.wait != nil {
				env.WaitAuthoritative = tc.wait(&calls)
			}
			z := open(t, op, tc.kv, env)
			snap, err := z.Snapshot(ctx, []string{"mail." + zone})
			if err != nil {
				t.Fatal(err)
			}
			err = z.Swap(ctx, snap, to, 5*time.Second)
			op.wg.Wait()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if want := strings.NewReplacer("S1", s1.addr.String(), "S2", s2.addr.String()).Replace(tc.err); got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			if tc.want != "" {
				want := strings.NewReplacer("S1", s1.addr.String(), "S2", s2.addr.String()).Replace(tc.want)
				if tr := op.transcript(); tr != want {
					t.Fatalf("printed:\n%s\nwant:\n%s", tr, want)
				}
			}
			if c := fmt.Sprintf("%+v", calls); tc.calls != "" && c != tc.calls {
				t.Fatalf("hook asked to wait for %s, want %s", c, tc.calls)
			}
		})
	}
}

// TestDiscoverAuthoritative finds the authoritative server through a
// resolver (NS, then the NS host's address) when none is configured. The
// discovered server listens on port 53 of a reserved lab address.
func TestDiscoverAuthoritative(t *testing.T) {
	n := lab.NewNet(t)
	auth := startAuth(t, netip.AddrPortFrom(n.IP(53), 53).String())
	auth.set("mail."+zone, "A", 30, []string{"192.0.2.1"})
	res := startAuth(t, "127.0.0.1:0")
	res.set(zone, "NS", 30, []string{"ns1." + zone})
	res.set("ns1."+zone, "A", 30, []string{n.IP(53).String()})
	z, err := providers.Open(config.NewProviderSettings("dns", "manual", nil), providers.Env{Zone: zone, Out: &strings.Builder{}, Resolvers: []netip.AddrPort{res.addr}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := z.Snapshot(context.Background(), []string{"mail." + zone})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(snap.Names[0].A); got != "{[192.0.2.1] 30s}" {
		t.Fatalf("snapshot A %s", got)
	}
	auth.mu.Lock()
	defer auth.mu.Unlock()
	if auth.queries == 0 {
		t.Fatal("the discovered server was never asked")
	}
}

func TestOpenAndCheck(t *testing.T) {
	tests := []struct {
		desc string
		kv   map[string]any
		env  providers.Env
		want string
	}{
		{desc: "bad settings", kv: map[string]any{"timeout": "soon", "poll": "5s", "server": "x"},
			want: "config: 3 problems:\n  providers.dns.timeout: \"soon\" is not a duration (examples: \"90s\", \"5m\", \"1h30m\", \"2d\")\n" +
				"  providers.dns.poll: unknown key for provider type \"manual\"\n  providers.dns.server: unknown key for provider type \"manual\""},
		{desc: "no output", env: providers.Env{Authoritative: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}},
			want: "manual: nowhere to print the instructions (no output given)"},
		{desc: "no servers", env: providers.Env{Out: &strings.Builder{}},
			want: "manual: needs [dns] authoritative servers, or [dns] resolvers to find them"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			tc.env.Zone = zone
			_, err := providers.Open(config.NewProviderSettings("dns", "manual", tc.kv), tc.env)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
	if ps := providers.Check(config.NewProviderSettings("dns", "manual", map[string]any{"timeout": "2h"})); len(ps) != 0 {
		t.Fatalf("Check of a good table: %v", ps)
	}
}

// TestReadDisagree: reading asks every authoritative server; two that serve
// different RRsets (addresses or TTL) make the read fail, naming both.
func TestReadDisagree(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		ttl2      uint32
		addrs2    []string
		wantErr   string // %[1]s and %[2]s: the servers
		wantAddrs string
	}{
		{desc: "they agree", ttl2: 30, addrs2: []string{"192.0.2.1"}, wantAddrs: "{[192.0.2.1] 30s}"},
		{desc: "other addresses", ttl2: 30, addrs2: []string{"192.0.2.9"},
			wantErr: "providers: snapshot: get records: manual: authoritative servers disagree on mail.example.org. A: %[1]s serves {192.0.2.1} (ttl 30s), %[2]s serves {192.0.2.9} (ttl 30s)"},
		{desc: "another TTL", ttl2: 60, addrs2: []string{"192.0.2.1"},
			wantErr: "providers: snapshot: get records: manual: authoritative servers disagree on mail.example.org. A: %[1]s serves {192.0.2.1} (ttl 30s), %[2]s serves {192.0.2.1} (ttl 1m0s)"},
		{desc: "nothing on one", addrs2: nil,
			wantErr: "providers: snapshot: get records: manual: authoritative servers disagree on mail.example.org. A: %[1]s serves {192.0.2.1} (ttl 30s), %[2]s serves nothing"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s1, s2 := startAuth(t, "127.0.0.1:0"), startAuth(t, "127.0.0.1:0")
			s1.set("mail."+zone, "A", 30, []string{"192.0.2.1"})
			s2.set("mail."+zone, "A", tc.ttl2, tc.addrs2)
			z, err := providers.Open(config.NewProviderSettings("dns", "manual", nil),
				providers.Env{Zone: zone, Out: &strings.Builder{}, Authoritative: []netip.AddrPort{s1.addr, s2.addr}})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := z.Snapshot(context.Background(), []string{"mail." + zone})
			want := ""
			if tc.wantErr != "" {
				want = fmt.Sprintf(tc.wantErr, s1.addr, s2.addr)
			}
			if got := fmt.Sprint(err); err != nil && got != want || err == nil && want != "" {
				t.Fatalf("error %v\nwant  %s", err, want)
			}
			if err == nil && fmt.Sprint(snap.Names[0].A) != tc.wantAddrs {
				t.Fatalf("snapshot A %v, want %s", snap.Names[0].A, tc.wantAddrs)
			}
		})
	}
}
