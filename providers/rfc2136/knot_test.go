package rfc2136_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/providertest"
	"github.com/cutover-dev/cutover/providers/rfc2136"
)

// TestConformanceKnot runs the suite against a real Knot DNS primary with TSIG-signed updates
// and AXFR (issue 3: the provider works with BIND 9 and Knot).
func TestConformanceKnot(t *testing.T) {
	n := lab.NewNet(t)
	var k *lab.Knot
	providertest.Run(t, providertest.Harness{
		Zone:   zone,
		Caps:   rfc2136.Spec.Capabilities,
		TTL:    30 * time.Second,
		LowTTL: 5 * time.Second,
		Start: func(t *testing.T, seed []libdns.RR) providers.Client {
			k = lab.NewKnot(t, lab.KnotOptions{Addr: n.IP(32), Zone: lab.Zone{Origin: zone, TTL: 30, Records: providertest.ZoneLines(seed)}})
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
	snap := &dnsrec.Snapshot{Zone: zone, Names: []dnsrec.Name{{Name: "mail." + zone}}}
	err = providers.NewZone(z.Client(), zone, rfc2136.Spec.Capabilities).Swap(ctx, snap, providers.Target{A: netip.MustParseAddr("192.0.2.2")}, 5*time.Second)
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
