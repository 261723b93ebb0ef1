package powerdns_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/libdns/libdns"
	pdns "github.com/libdns/powerdns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/powerdns"
	"github.com/cutover-dev/cutover/providers/providertest"
)

const zone = "example.org."

func settings(url, env string) *config.ProviderSettings {
	return config.NewProviderSettings("dns", "powerdns", map[string]any{"server_url": url, "api_token": "env:" + env})
}

// open opens the powerdns provider on p's API through the registry, as
// cutover does.
func open(t *testing.T, p *lab.PowerDNS) *providers.Zone {
	t.Helper()
	t.Setenv("CUTOVER_TEST_PDNS", p.APIKey)
	z, err := providers.Open(settings(p.APIURL, "CUTOVER_TEST_PDNS"), providers.Env{Zone: zone})
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// TestConformancePowerDNS runs the suite against a real PowerDNS
// Authoritative Server (gsqlite3 backend) through its HTTP API.
func TestConformancePowerDNS(t *testing.T) {
	n := lab.NewNet(t)
	var p *lab.PowerDNS
	// other is a second client of the same API: the changes behind
	// cutover's back and the reads of the whole zone go through it.
	var other *pdns.Provider
	timeout := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	providertest.Run(t, providertest.Harness{
		Zone:   zone,
		Caps:   powerdns.Spec.Capabilities,
		TTL:    30 * time.Second,
		LowTTL: 5 * time.Second,
		Start: func(t *testing.T, seed []libdns.RR) providers.Client {
			p = lab.NewPowerDNS(t, lab.PowerDNSOptions{Addr: n.IP(33), Zone: lab.Zone{Origin: zone, TTL: 30, Records: providertest.ZoneLines(seed)}})
			other = &pdns.Provider{ServerURL: p.APIURL, APIToken: p.APIKey}
			return open(t, p).Client()
		},
		Change: func(t *testing.T, name, typ string, addrs []netip.Addr) {
			var recs []libdns.Record
			for _, a := range addrs {
				recs = append(recs, libdns.RR{Name: name, Type: typ, TTL: 30 * time.Second, Data: a.String()})
			}
			if _, err := other.SetRecords(timeout(t), zone, recs); err != nil {
				t.Fatalf("change behind the provider's back: %v", err)
			}
		},
		Read: func(t *testing.T) []libdns.RR {
			recs, err := other.GetRecords(timeout(t), zone)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]libdns.RR, len(recs))
			for i, r := range recs {
				out[i] = r.RR()
				// The API's content is presentation format: a TXT is quoted.
				if u, err := strconv.Unquote(out[i].Data); out[i].Type == "TXT" && err == nil {
					out[i].Data = u
				}
			}
			return out
		},
	})
	// Nothing of the above put the API key into pdns_server's log.
	if lb, err := os.ReadFile(p.LogPath()); err != nil {
		t.Error(err)
	} else {
		providertest.Secrets(t, p.APIKey, string(lb))
	}
}

// TestPowerDNSWrongKey: the API refuses a wrong key, nothing changes, and no
// error shows either key.
func TestPowerDNSWrongKey(t *testing.T) {
	n := lab.NewNet(t)
	p := lab.NewPowerDNS(t, lab.PowerDNSOptions{Addr: n.IP(34), Zone: lab.Zone{Origin: zone, Records: []string{"mail 30 IN A 192.0.2.1"}}})
	const wrong = "not-the-key-0123456789"
	t.Setenv("CUTOVER_TEST_WRONG", wrong)
	z, err := providers.Open(settings(p.APIURL, "CUTOVER_TEST_WRONG"), providers.Env{Zone: zone})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = z.Snapshot(ctx, []string{"mail." + zone})
	texts := []string{fmt.Sprint(err)}
	want := "providers: snapshot: get records: powerdns: get records: unexpected status code 401: " + p.APIURL + "/api/v1/servers/localhost/zones?zone=example.org. Unauthorized"
	if err == nil || err.Error() != want {
		t.Fatalf("snapshot with a wrong key: got %v\nwant %s", err, want)
	}
	snap := &dnsrec.Snapshot{Zone: zone, Names: []dnsrec.Name{{Name: "mail." + zone,
		A: dnsrec.RRset{Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, TTL: 30 * time.Second}}}}
	err = z.Swap(ctx, snap, providers.Target{A: netip.MustParseAddr("192.0.2.2")}, 5*time.Second)
	texts = append(texts, fmt.Sprint(err))
	if err == nil {
		t.Error("swap with a wrong key succeeded")
	}
	got, err := open(t, p).Snapshot(ctx, []string{"mail." + zone})
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Names[0].A.Addrs; len(a) != 1 || a[0] != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("zone changed by a swap with a wrong key: %v", a)
	}
	providertest.Secrets(t, wrong, texts...)
	providertest.Secrets(t, p.APIKey, texts...)
}
