package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// query sends one question to server over UDP.
func query(t *testing.T, server netip.AddrPort, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, server.String())
	if err != nil {
		t.Fatalf("query %s %s at %s: %v", name, dns.TypeToString[qtype], server, err)
	}
	return r
}

// answerA returns the A addresses and the smallest TTL of r's answer.
func answerA(r *dns.Msg) ([]netip.Addr, uint32) {
	var as []netip.Addr
	ttl := uint32(1 << 31)
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A.To4())
			as = append(as, ip)
			ttl = min(ttl, a.Hdr.Ttl)
		}
	}
	return as, ttl
}

// update replaces the A RRset of name with addr at server, signed with key (unsigned if key.Name
// is empty), and returns the response code (or the client's error).
func update(server netip.AddrPort, zone, name string, addr netip.Addr, key TSIG) string {
	m := new(dns.Msg)
	m.SetUpdate(zone)
	rr, _ := dns.NewRR(fmt.Sprintf("%s 3 IN A %s", name, addr))
	m.RemoveRRset([]dns.RR{rr})
	m.Insert([]dns.RR{rr})
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	if key.Name != "" {
		key.Sign(m)
		c.TsigSecret = key.SecretMap()
	}
	r, _, err := c.Exchange(m, server.String())
	if r != nil {
		return dns.RcodeToString[r.Rcode]
	}
	return "error: " + err.Error()
}

func onLo(t *testing.T, a netip.Addr) bool {
	t.Helper()
	ps, err := loAddrs()
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr() == a })
}

func alive(pid int) bool {
	_, zombie, err := procStart(pid)
	return err == nil && !zombie && syscall.Kill(pid, 0) == nil
}

func TestDNSLab(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	old, next := n.IP(10), n.IP(20)
	z := Zone{Origin: "example.org.", TTL: 3, Minimum: 2, Records: []string{"mail 3 IN A " + old.String()}}
	start := time.Now()
	d := NewDNSLab(t, n, z)
	t.Logf("DNSLab up in %s", time.Since(start).Round(time.Millisecond))
	zone, mail := "example.org.", "mail.example.org."

	t.Run("authoritative", func(t *testing.T) {
		for _, s := range d.Authoritative() {
			r := query(t, s, mail, dns.TypeA)
			got, ttl := answerA(r)
			if !r.Authoritative || r.Rcode != dns.RcodeSuccess || !slices.Equal(got, []netip.Addr{old}) || ttl != 3 {
				t.Errorf("%s: mail A: aa=%v rcode=%s addrs=%v ttl=%d, want aa, NOERROR, [%s], 3", s, r.Authoritative, dns.RcodeToString[r.Rcode], got, ttl, old)
			}
			for ns, want := range map[string]netip.Addr{"ns1.example.org.": n.IP(31), "ns2.example.org.": n.IP(32)} {
				if got, _ := answerA(query(t, s, ns, dns.TypeA)); !slices.Equal(got, []netip.Addr{want}) {
					t.Errorf("%s: %s A = %v, want [%s]", s, ns, got, want)
				}
			}
			r = query(t, s, zone, dns.TypeNS)
			if len(r.Answer) != 2 {
				t.Errorf("%s: NS answer %v, want ns1 and ns2", s, r.Answer)
			}
		}
		if d.Authoritative()[0] != netip.AddrPortFrom(n.IP(31), 53) || d.Authoritative()[1] != netip.AddrPortFrom(n.IP(32), 53) {
			t.Errorf("Authoritative() = %v", d.Authoritative())
		}
		if got := d.Resolvers(); !slices.Equal(got, []netip.AddrPort{netip.AddrPortFrom(n.IP(41), 53), netip.AddrPortFrom(n.IP(42), 53)}) {
			t.Errorf("Resolvers() = %v", got)
		}
	})

	t.Run("cache", func(t *testing.T) {
		c := d.Resolvers()[0]
		r1 := query(t, c, mail, dns.TypeA)
		got, ttl1 := answerA(r1)
		if r1.Rcode != dns.RcodeSuccess || !slices.Equal(got, []netip.Addr{old}) || r1.Authoritative {
			t.Fatalf("cache mail A: rcode=%s addrs=%v aa=%v, want NOERROR [%s] from cache (no aa)", dns.RcodeToString[r1.Rcode], got, r1.Authoritative, old)
		}
		time.Sleep(1100 * time.Millisecond)
		_, ttl2 := answerA(query(t, c, mail, dns.TypeA))
		if ttl2 >= ttl1 {
			t.Errorf("cached TTL did not decrease: %d then %d", ttl1, ttl2)
		}
		if err := d.Caches[0].Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, ttl3 := answerA(query(t, c, mail, dns.TypeA)); ttl3 != 3 {
			t.Errorf("TTL after Flush = %d, want the full 3", ttl3)
		}
		for _, name := range []string{"example.com.", "com.", ".", "org."} {
			if r := query(t, c, name, dns.TypeA); r.Rcode != dns.RcodeRefused {
				t.Errorf("cache %s A: rcode %s, want REFUSED (names outside the stub zone never leave the machine)", name, dns.RcodeToString[r.Rcode])
			}
		}
	})

	t.Run("update", func(t *testing.T) {
		wrong := NewTSIG("cutover-lab")
		tests := []struct {
			desc string
			key  TSIG
			want string
		}{
			{desc: "unsigned", key: TSIG{}, want: "REFUSED"},
			{desc: "wrong secret", key: wrong, want: "NOTAUTH"},
			{desc: "unknown key name", key: NewTSIG("intruder"), want: "NOTAUTH"},
			{desc: "lab key", key: d.Key, want: "NOERROR"},
		}
		for _, tc := range tests {
			if got := update(d.Primary.Addr, zone, mail, next, tc.key); got != tc.want {
				t.Errorf("%s: update = %q, want %q", tc.desc, got, tc.want)
			}
		}
		if got, _ := answerA(query(t, d.Primary.Addr, mail, dns.TypeA)); !slices.Equal(got, []netip.Addr{next}) {
			t.Errorf("primary after update: %v, want [%s]", got, next)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if s, err := d.Primary.Serial(ctx); err != nil || s != 2 {
			t.Fatalf("primary serial = %d, %v; want 2 (one accepted update)", s, err)
		}
		began := time.Now()
		for {
			s, err := d.Secondary.Serial(ctx)
			if err == nil && s == 2 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("secondary serial %d (%v) after %s, want 2 via NOTIFY", s, err, time.Since(began))
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("secondary reached serial 2 %s after the update", time.Since(began).Round(time.Millisecond))
		if got, _ := answerA(query(t, d.Secondary.Addr, mail, dns.TypeA)); !slices.Equal(got, []netip.Addr{next}) {
			t.Errorf("secondary after NOTIFY: %v, want [%s]", got, next)
		}
		if slog, err := os.ReadFile(d.Secondary.LogPath()); err != nil || !strings.Contains(string(slog), "notify from "+n.IP(31).String()) {
			t.Errorf("secondary log shows no NOTIFY from the primary (%v):\n%s", err, slog)
		}
		if plog, err := os.ReadFile(d.Primary.LogPath()); err != nil || !strings.Contains(string(plog), "transfer of 'example.org/IN': IXFR started") {
			t.Errorf("primary log shows no IXFR (%v):\n%s", err, plog)
		}
	})

	t.Run("transfer", func(t *testing.T) {
		tests := []struct {
			desc    string
			key     TSIG
			wantErr string
		}{
			{desc: "unsigned", wantErr: "dns: bad xfr rcode: 5"},                                 // REFUSED
			{desc: "wrong key", key: NewTSIG("cutover-lab"), wantErr: "dns: bad authentication"}, // NOTAUTH
			{desc: "lab key", key: d.Key},
		}
		for _, tc := range tests {
			for _, s := range d.Authoritative() {
				m := new(dns.Msg)
				m.SetAxfr(zone)
				tr := &dns.Transfer{}
				if tc.key.Name != "" {
					tc.key.Sign(m)
					tr.TsigSecret = tc.key.SecretMap()
				}
				env, err := tr.In(m, s.String())
				if err != nil {
					t.Fatalf("%s: %s: %v", tc.desc, s, err)
				}
				var rrs int
				var gotErr string
				for e := range env {
					if e.Error != nil {
						gotErr = e.Error.Error()
						break
					}
					rrs += len(e.RR)
				}
				if gotErr != tc.wantErr {
					t.Errorf("%s: AXFR from %s: error %q, want %q", tc.desc, s, gotErr, tc.wantErr)
				}
				if tc.wantErr == "" && rrs != 7 {
					t.Errorf("%s: AXFR from %s: %d RRs, want 7 (SOA, 2 NS, 2 glue, mail A, SOA)", tc.desc, s, rrs)
				}
			}
		}
	})

	t.Run("stop", func(t *testing.T) {
		var pids []int
		var dirs []string
		for _, b := range []*BIND{d.Primary, d.Secondary} {
			pids, dirs = append(pids, b.PID), append(dirs, b.Dir)
		}
		for _, c := range d.Caches {
			pids, dirs = append(pids, c.PID), append(dirs, c.Dir)
		}
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := d.Stop(); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		for _, pid := range pids {
			if alive(pid) {
				t.Errorf("pid %d still alive after Stop", pid)
			}
		}
		for _, dir := range dirs {
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("dir %s still there after Stop (%v)", dir, err)
			}
		}
		for _, h := range []byte{31, 32, 41, 42} {
			if onLo(t, n.IP(h)) {
				t.Errorf("%s still on lo after Stop", n.IP(h))
			}
		}
	})
}

func TestStartBINDFailure(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	Require(t, "named")
	key := NewTSIG("k")
	_, err := StartBIND(BINDOptions{Addr: n.IP(31), Key: key, Zone: Zone{Origin: "example.org.", Records: []string{"mail IN A not-an-address"}}})
	if err == nil {
		t.Fatal("StartBIND with a broken zone succeeded")
	}
	dir := regexp.MustCompile(`/[^ ]*/cutover-lab-named-[0-9]+`).FindString(err.Error())
	first, _, _ := strings.Cut(strings.ReplaceAll(err.Error(), dir, "DIR"), "\n")
	if want := fmt.Sprintf("lab: named primary %s failed to start; last lines of DIR/named.log:", n.IP(31)); first != want {
		t.Errorf("first line of error:\n got %q\nwant %q", first, want)
	}
	if !strings.Contains(err.Error(), "not-an-address") {
		t.Errorf("error lacks the log tail naming the bad record:\n%v", err)
	}
	if strings.Contains(err.Error(), key.Secret) {
		t.Errorf("error leaks the TSIG secret")
	}
	if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
		t.Errorf("%s left behind after a failed start", dir)
	}
	if onLo(t, n.IP(31)) {
		t.Errorf("%s left on lo after a failed start", n.IP(31))
	}
}

func TestStartValidation(t *testing.T) {
	t.Parallel()
	z := Zone{Origin: "example.org."}
	a := netip.MustParseAddr("127.100.0.31")
	tests := []struct {
		desc  string
		start func() error
		want  string
	}{
		{desc: "bind without address", start: func() error { _, err := StartBIND(BINDOptions{Zone: z}); return err },
			want: "lab: bind: no address given"},
		{desc: "bind off loopback", start: func() error {
			_, err := StartBIND(BINDOptions{Addr: netip.MustParseAddr("192.0.2.1"), Zone: z})
			return err
		}, want: `lab: bind: address "192.0.2.1" is not in 127.0.0.0/8`},
		{desc: "bind v6", start: func() error { _, err := StartBIND(BINDOptions{Addr: netip.IPv6Loopback(), Zone: z}); return err },
			want: `lab: bind: address "::1" is not in 127.0.0.0/8`},
		{desc: "bind without origin", start: func() error { _, err := StartBIND(BINDOptions{Addr: a}); return err },
			want: `lab: bind: Zone.Origin is required (e.g. "example.org.")`},
		{desc: "bind bad origin", start: func() error {
			_, err := StartBIND(BINDOptions{Addr: a, Zone: Zone{Origin: "a..b"}})
			return err
		}, want: `lab: bind: Zone.Origin "a..b" is not a domain name`},
		{desc: "secondary of a public primary", start: func() error {
			_, err := StartBIND(BINDOptions{Addr: a, Zone: z, Primary: netip.MustParseAddr("8.8.8.8")})
			return err
		}, want: `lab: bind: primary: address "8.8.8.8" is not in 127.0.0.0/8`},
		{desc: "unbound without stub zone", start: func() error { _, err := StartUnbound(UnboundOptions{Addr: a}); return err },
			want: `lab: unbound: StubZone is required (e.g. "example.org.")`},
		{desc: "unbound without stub servers", start: func() error {
			_, err := StartUnbound(UnboundOptions{Addr: a, StubZone: "example.org."})
			return err
		}, want: "lab: unbound: StubAddrs is required"},
		{desc: "unbound with a public stub", start: func() error {
			_, err := StartUnbound(UnboundOptions{Addr: a, StubZone: "example.org.", StubAddrs: []netip.AddrPort{netip.MustParseAddrPort("1.1.1.1:53")}})
			return err
		}, want: `lab: unbound: stub: address "1.1.1.1" is not in 127.0.0.0/8`},
	}
	for _, tc := range tests {
		err := tc.start()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %q", tc.desc, err, tc.want)
		}
	}
}

func TestTSIG(t *testing.T) {
	k := NewTSIG("Cutover-Lab")
	if k.Name != "cutover-lab." || k.Algorithm != "hmac-sha256" {
		t.Errorf("NewTSIG = %s, want name cutover-lab. and hmac-sha256", k)
	}
	if len(k.Secret) != 44 {
		t.Errorf("secret is %d base64 chars, want 44 (32 bytes)", len(k.Secret))
	}
	if k2 := NewTSIG("x"); k2.Secret == k.Secret {
		t.Error("two keys share a secret")
	}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v", k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%s", []TSIG{k})} {
		if strings.Contains(s, k.Secret) {
			t.Errorf("formatted key leaks its secret: %s", s)
		}
	}
	if got, want := k.String(), "TSIG{cutover-lab. hmac-sha256 secret redacted}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
