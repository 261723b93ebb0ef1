package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// axfrA transfers zone from server signed with key and returns the A records of name as
// "ADDR TTL", sorted.
func axfrA(t *testing.T, server netip.AddrPort, zone, name string, key TSIG) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetAxfr(zone)
	tr := &dns.Transfer{TsigSecret: key.SecretMap()}
	env, err := tr.In(key.Sign(m), server.String())
	if err != nil {
		t.Fatalf("axfr %s at %s: %v", zone, server, err)
	}
	var got []string
	for e := range env {
		if e.Error != nil {
			t.Fatalf("axfr %s at %s: %v", zone, server, e.Error)
		}
		for _, rr := range e.RR {
			if a, ok := rr.(*dns.A); ok && strings.EqualFold(a.Hdr.Name, name) {
				got = append(got, fmt.Sprintf("%s %d", a.A, a.Hdr.Ttl))
			}
		}
	}
	slices.Sort(got)
	return got
}

func TestKnot(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	ip := n.IP(41)
	const zone = "example.org."
	k := NewKnot(t, KnotOptions{Addr: ip, Zone: Zone{Origin: zone, TTL: 30, Records: []string{"mail 30 IN A 192.0.2.1"}}})
	if k.Addr != netip.AddrPortFrom(ip, 53) || k.PID == 0 || k.Key.Name != "cutover-lab." || k.Key.Algorithm != "hmac-sha256" {
		t.Fatalf("got Addr %s PID %d Key %s", k.Addr, k.PID, k.Key)
	}

	r := query(t, k.Addr, "mail."+zone, dns.TypeA)
	if as, ttl := answerA(r); !r.Authoritative || !slices.Equal(as, []netip.Addr{netip.MustParseAddr("192.0.2.1")}) || ttl != 30 {
		t.Fatalf("mail A: aa=%v %v ttl %d", r.Authoritative, as, ttl)
	}
	r = query(t, k.Addr, "ns1."+zone, dns.TypeA)
	if as, _ := answerA(r); !slices.Equal(as, []netip.Addr{ip}) {
		t.Fatalf("ns1 A: %v, want %s", as, ip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := k.Serial(ctx); err != nil || s != 1 {
		t.Fatalf("serial: %d %v, want 1", s, err)
	}

	newA := netip.MustParseAddr("198.51.100.2")
	tests := []struct {
		desc string
		key  TSIG
		want string
	}{
		{desc: "unsigned update", key: TSIG{}, want: "NOTAUTH"},
		{desc: "update signed with another key", key: TSIG{Name: k.Key.Name, Algorithm: "hmac-sha256", Secret: NewTSIG("x").Secret}, want: "NOTAUTH"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := update(k.Addr, zone, "mail."+zone, newA, tc.key); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	if got := update(k.Addr, zone, "mail."+zone, newA, k.Key); got != "NOERROR" {
		t.Fatalf("signed update: %s", got)
	}
	if got, want := axfrA(t, k.Addr, zone, "mail."+zone, k.Key), []string{"198.51.100.2 3"}; !slices.Equal(got, want) {
		t.Fatalf("axfr after update: %q, want %q", got, want)
	}
	if s, err := k.Serial(ctx); err != nil || s != 2 {
		t.Fatalf("serial after update: %d %v, want 2", s, err)
	}
	// The update is written back to the zone file (zonefile-sync 0, in the background).
	var zf []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if zf, _ = os.ReadFile(filepath.Join(k.Dir, "zone.db")); strings.Contains(string(zf), "198.51.100.2") {
			break
		}
	}
	if !strings.Contains(string(zf), "198.51.100.2") {
		t.Errorf("zone file not written back after 5s:\n%s", zf)
	}
	// Unsigned AXFR is refused.
	ax := new(dns.Msg)
	ax.SetAxfr(zone)
	env, err := (&dns.Transfer{}).In(ax, k.Addr.String())
	if err == nil {
		for e := range env {
			err = e.Error
		}
	}
	if err == nil {
		t.Fatal("unsigned AXFR succeeded")
	}

	log, err := os.ReadFile(k.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), k.Key.Secret) {
		t.Fatal("knotd's log holds the TSIG secret")
	}

	stopTwice(t, "knotd", &k.daemon, ip)
}

func TestKnotBadZone(t *testing.T) {
	t.Parallel()
	Require(t, "root", "ip", "knotd")
	n := NewNet(t)
	ip := n.IP(42)
	k, err := StartKnot(KnotOptions{Addr: ip, Zone: Zone{Origin: "example.org.", Records: []string{"mail 30 IN A not-an-address"}}})
	if err == nil {
		_ = k.Stop()
		t.Fatal("a zone that does not parse started")
	}
	prefix := "lab: knotd " + ip.String() + " failed to start; last lines of /tmp/cutover-lab-knotd-"
	if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), "line 6 (invalid address character)") {
		t.Fatalf("got %v\nwant %s.../knotd.log: ... line 6 (invalid address character) ...", err, prefix)
	}
	if onLo(t, ip) {
		t.Errorf("%s still on lo after a failed start", ip)
	}
}
