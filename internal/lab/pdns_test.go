package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// pdnsPatch sends one RRset REPLACE of name A to the API with key and returns the HTTP status.
func pdnsPatch(t *testing.T, p *PowerDNS, key, name string, addr netip.Addr) int {
	t.Helper()
	body := fmt.Sprintf(`{"rrsets":[{"name":%q,"type":"A","ttl":3,"changetype":"REPLACE","records":[{"content":%q,"disabled":false}]}]}`, name, addr)
	req, err := http.NewRequest(http.MethodPatch, p.APIURL+"/api/v1/servers/localhost/zones/"+p.zone, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestPowerDNS(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	ip := n.IP(43)
	const zone = "example.org."
	p := NewPowerDNS(t, PowerDNSOptions{Addr: ip, Zone: Zone{Origin: zone, TTL: 30, Records: []string{"mail 30 IN A 192.0.2.1"}}})
	if p.Addr != netip.AddrPortFrom(ip, 53) || p.PID == 0 || p.APIURL != "http://"+ip.String()+":8081" || len(p.APIKey) != 48 {
		t.Fatalf("got Addr %s PID %d APIURL %s key of %d characters", p.Addr, p.PID, p.APIURL, len(p.APIKey))
	}
	r := query(t, p.Addr, "mail."+zone, dns.TypeA)
	if as, ttl := answerA(r); !r.Authoritative || !slices.Equal(as, []netip.Addr{netip.MustParseAddr("192.0.2.1")}) || ttl != 30 {
		t.Fatalf("mail A: aa=%v %v ttl %d", r.Authoritative, as, ttl)
	}
	r = query(t, p.Addr, "ns1."+zone, dns.TypeA)
	if as, _ := answerA(r); !slices.Equal(as, []netip.Addr{ip}) {
		t.Fatalf("ns1 A: %v, want %s", as, ip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := p.Serial(ctx); err != nil || s != 1 {
		t.Fatalf("serial: %d %v, want 1", s, err)
	}

	newA := netip.MustParseAddr("198.51.100.2")
	if got := pdnsPatch(t, p, "wrong-key", "mail."+zone, newA); got != http.StatusUnauthorized {
		t.Fatalf("PATCH with a wrong key: status %d, want 401", got)
	}
	if got := pdnsPatch(t, p, p.APIKey, "mail."+zone, newA); got != http.StatusNoContent {
		t.Fatalf("PATCH: status %d, want 204", got)
	}
	r = query(t, p.Addr, "mail."+zone, dns.TypeA)
	if as, ttl := answerA(r); !slices.Equal(as, []netip.Addr{newA}) || ttl != 3 {
		t.Fatalf("mail A after PATCH: %v ttl %d, want %s ttl 3", as, ttl, newA)
	}
	if s, err := p.Serial(ctx); err != nil || s != 2 {
		t.Fatalf("serial after PATCH: %d %v, want 2 (SOA-EDIT-API INCREASE)", s, err)
	}

	log, err := os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), p.APIKey) {
		t.Fatal("pdns_server's log holds the API key")
	}

	stopTwice(t, "pdns_server", &p.daemon, ip)
}

// stopTwice stops d twice (Stop is idempotent) and checks that its process,
// its directory and its address on lo are gone.
func stopTwice(t *testing.T, what string, d *daemon, ip netip.Addr) {
	t.Helper()
	pid, dir := d.PID, d.Dir
	for range 2 {
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if alive(pid) {
		t.Errorf("%s %d alive after Stop", what, pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir %s left behind: %v", dir, err)
	}
	if onLo(t, ip) {
		t.Errorf("%s still on lo after Stop", ip)
	}
}

func TestPowerDNSBadZone(t *testing.T) {
	t.Parallel()
	Require(t, "root", "ip", "pdns", "sqlite3")
	n := NewNet(t)
	ip := n.IP(44)
	p, err := StartPowerDNS(PowerDNSOptions{Addr: ip, Zone: Zone{Origin: "example.org.", Records: []string{"mail 30 IN A not-an-address"}}})
	if err == nil {
		_ = p.Stop()
		t.Fatal("a zone that does not parse started")
	}
	prefix := "lab: pdns_server " + ip.String() + ": pdnsutil: exit status 1: Creating 'example.org'\n"
	const why = "Bad record content in record for mail.example.org|A"
	if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), why) {
		t.Fatalf("got %v\nwant %s...%s...", err, prefix, why)
	}
	if onLo(t, ip) {
		t.Errorf("%s still on lo after a failed start", ip)
	}
}
