package rfc2136_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/providertest"
	"github.com/cutover-dev/cutover/providers/rfc2136"
)

// seedLines turns the suite's seed into zone-file lines.
func seedLines(seed []libdns.RR) []string {
	var lines []string
	for _, r := range seed {
		data := r.Data
		if r.Type == "TXT" {
			data = fmt.Sprintf("%q", data)
		}
		lines = append(lines, fmt.Sprintf("%s %d IN %s %s", r.Name, int(r.TTL.Seconds()), r.Type, data))
	}
	return lines
}

// replaceRRset replaces name/typ (relative to zone) with addrs at server by a TSIG-signed
// update, behind the provider's back.
func replaceRRset(t *testing.T, server netip.AddrPort, key lab.TSIG, name, typ string, addrs []netip.Addr) {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate(zone)
	fq := name + "." + zone
	m.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: fq, Rrtype: dns.StringToType[typ], Class: dns.ClassINET}}})
	var ins []dns.RR
	for _, a := range addrs {
		rr, err := dns.NewRR(fmt.Sprintf("%s 30 IN %s %s", fq, typ, a))
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, rr)
	}
	m.Insert(ins)
	c := &dns.Client{Net: "tcp", TsigSecret: key.SecretMap()}
	r, _, err := c.Exchange(key.Sign(m), server.String())
	if err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("update behind the provider's back: %v %v", err, r)
	}
}

// transferZone reads the whole zone from server by a TSIG-signed AXFR.
func transferZone(t *testing.T, server netip.AddrPort, key lab.TSIG) []libdns.RR {
	t.Helper()
	tr := &dns.Transfer{TsigSecret: key.SecretMap()}
	m := new(dns.Msg)
	m.SetAxfr(zone)
	env, err := tr.In(key.Sign(m), server.String())
	if err != nil {
		t.Fatal(err)
	}
	var out []libdns.RR
	for e := range env {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		for _, rr := range e.RR {
			h := rr.Header()
			r := libdns.RR{Name: libdns.RelativeName(h.Name, zone), TTL: time.Duration(h.Ttl) * time.Second, Type: dns.TypeToString[h.Rrtype]}
			switch v := rr.(type) {
			case *dns.A:
				r.Data = v.A.String()
			case *dns.AAAA:
				r.Data = v.AAAA.String()
			case *dns.TXT:
				r.Data = strings.Join(v.Txt, "")
			default:
				r.Data = strings.TrimPrefix(rr.String(), h.String())
			}
			out = append(out, r)
		}
	}
	return out
}

// TestConformanceKnot runs the suite against a real Knot DNS primary with TSIG-signed updates
// and AXFR (issue 3: the provider works with BIND 9 and Knot).
func TestConformanceKnot(t *testing.T) {
	n := lab.NewNet(t)
	var k *lab.Knot
	providertest.Run(t, providertest.Harness{
		Zone:   zone,
		Caps:   rfc2136.Caps,
		TTL:    30 * time.Second,
		LowTTL: 5 * time.Second,
		Start: func(t *testing.T, seed []libdns.RR) providers.Client {
			k = lab.NewKnot(t, lab.KnotOptions{Addr: n.IP(32), Zone: lab.Zone{Origin: zone, TTL: 30, Records: seedLines(seed)}})
			t.Setenv("CUTOVER_TEST_TSIG", k.Key.Secret)
			z, err := providers.Open(settings(k.Addr.String(), k.Key, "CUTOVER_TEST_TSIG"), providers.Env{Zone: zone})
			if err != nil {
				t.Fatal(err)
			}
			return z.Client()
		},
		Change: func(t *testing.T, name, typ string, addrs []netip.Addr) {
			replaceRRset(t, k.Addr, k.Key, name, typ, addrs)
		},
		Read: func(t *testing.T) []libdns.RR { return transferZone(t, k.Addr, k.Key) },
	})
	// Nothing of the above put the key into knotd's log.
	if lb, err := os.ReadFile(k.LogPath()); err != nil {
		t.Error(err)
	} else {
		providertest.Secrets(t, k.Key.Secret, string(lb))
	}
}

// TestKnotWrongKey: a Knot primary with another key refuses the provider's AXFR and updates,
// and no error shows the secret.
func TestKnotWrongKey(t *testing.T) {
	key := lab.NewTSIG("cutover-lab")
	wrong := lab.NewTSIG("cutover-lab")
	t.Setenv("CUTOVER_TEST_WRONG", wrong.Secret)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := lab.NewNet(t)
	k := lab.NewKnot(t, lab.KnotOptions{Addr: n.IP(32), Key: key, Zone: lab.Zone{Origin: zone, Records: []string{"mail 30 IN A 192.0.2.1"}}})
	z, err := providers.Open(settings(k.Addr.String(), key, "CUTOVER_TEST_WRONG"), providers.Env{Zone: zone})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	_, err = z.Snapshot(ctx, []string{"mail." + zone})
	if want := "providers: snapshot: get records: rfc2136: get records: zone transfer: dns: bad authentication"; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	texts = append(texts, fmt.Sprint(err))
	snap := &providers.Snapshot{Zone: zone, Names: []providers.NameRecords{{Name: "mail." + zone}}}
	err = providers.NewZone(z.Client(), zone, rfc2136.Caps).Swap(ctx, snap, providers.Target{A: netip.MustParseAddr("192.0.2.2")}, 5*time.Second)
	texts = append(texts, fmt.Sprint(err))
	if err == nil {
		t.Error("swap with the wrong key succeeded")
	}
	if got := transferZone(t, k.Addr, key); !containsRR(got, "mail", "A", "192.0.2.1") || containsRR(got, "mail", "A", "192.0.2.2") {
		t.Errorf("zone changed by a swap with the wrong key: %v", got)
	}
	if lb, rerr := os.ReadFile(k.LogPath()); rerr == nil {
		texts = append(texts, string(lb))
	}
	providertest.Secrets(t, key.Secret, texts...)
	providertest.Secrets(t, wrong.Secret, texts...)
}

func containsRR(rrs []libdns.RR, name, typ, data string) bool {
	for _, r := range rrs {
		if r.Name == name && r.Type == typ && r.Data == data {
			return true
		}
	}
	return false
}
