package selftest_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsprop"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/internal/selftest"
	"github.com/cutover-dev/cutover/providers"
	_ "github.com/cutover-dev/cutover/providers/all" // every provider registers itself
	"github.com/cutover-dev/cutover/providers/providertest"
)

const zone = "example.org."

// interrupted stands for SIGINT arriving while the at-th write is in
// flight: it cancels the selftest's context and the write fails.
type interrupted struct {
	providers.Client
	n, at  int
	cancel context.CancelFunc
}

func (c *interrupted) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if c.n++; c.n == c.at {
		c.cancel()
		return nil, ctx.Err()
	}
	return c.Client.SetRecords(ctx, zone, recs)
}

// undeletable is a client whose deletes fail.
type undeletable struct{ providers.Client }

func (undeletable) DeleteRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, errors.New("test: no deletes today")
}

// labServer is one real authoritative server of zone and the provider
// that changes it.
type labServer struct {
	addr netip.AddrPort
	zone *providers.Zone
}

func openZone(t *testing.T, s *config.ProviderSettings) *providers.Zone {
	t.Helper()
	z, err := providers.Open(s, providers.Env{Zone: zone})
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// labServers starts BIND and Knot (rfc2136) and PowerDNS (its API), each
// serving zone with one A record at "taken".
func labServers(t *testing.T) map[string]labServer {
	n := lab.NewNet(t)
	z := lab.Zone{Origin: zone, TTL: 30, Records: []string{"taken 30 IN A 192.0.2.9", "notes 30 IN TXT \"hello\"", "notes 30 IN MX 10 mx.example.org."}}
	rfc2136 := func(addr netip.AddrPort, key lab.TSIG, env string) *providers.Zone {
		t.Setenv(env, key.Secret)
		return openZone(t, config.NewProviderSettings("dns", "rfc2136", map[string]any{
			"server": addr.String(), "key_name": key.Name, "key_alg": key.Algorithm, "key": "env:" + env}))
	}
	b := lab.NewBIND(t, lab.BINDOptions{Addr: n.IP(31), Zone: z})
	k := lab.NewKnot(t, lab.KnotOptions{Addr: n.IP(32), Zone: z})
	p := lab.NewPowerDNS(t, lab.PowerDNSOptions{Addr: n.IP(33), Zone: z})
	t.Setenv("CUTOVER_TEST_PDNS", p.APIKey)
	return map[string]labServer{
		"bind": {b.Addr, rfc2136(b.Addr, b.Key, "CUTOVER_TEST_BIND")},
		"knot": {k.Addr, rfc2136(k.Addr, k.Key, "CUTOVER_TEST_KNOT")},
		"powerdns": {p.Addr, openZone(t, config.NewProviderSettings("dns", "powerdns", map[string]any{
			"server_url": p.APIURL, "api_token": "env:CUTOVER_TEST_PDNS"}))},
	}
}

// TestSelftest runs the selftest against real servers: it passes on each,
// and fails clearly, leaving nothing behind, against a provider that drops
// records, when interrupted, and on a name that exists.
func TestSelftest(t *testing.T) {
	servers := labServers(t)
	for _, desc := range []string{"bind", "knot", "powerdns"} {
		t.Run(desc+" passes", func(t *testing.T) {
			providertest.Selftest(t, servers[desc].zone, servers[desc].addr, 5*time.Second)
		})
	}
	const name = providertest.SelftestName + "." + zone
	tests := []struct {
		desc    string
		server  string
		name    string
		wrap    func(c providers.Client, cancel context.CancelFunc) providers.Client
		ops     []string // "op ok" or "op FAIL"
		err     string
		cleanup string
		leaves  bool // the selftest could not clean up: the test does
	}{
		{
			desc:    "a provider that drops the second record of a set",
			server:  "bind",
			wrap:    func(c providers.Client, _ context.CancelFunc) providers.Client { return providertest.Lossy(c) },
			ops:     []string{"create FAIL"},
			err:     "selftest: create failed: providers: read-back of " + name + " A after create: got {192.0.2.1} TTL 1h0m0s, want {192.0.2.1, 192.0.2.2} TTL 1h0m0s",
			cleanup: "removed A {192.0.2.1} TTL 1h, no AAAA; nothing left behind",
		},
		{
			desc:   "interrupted during the replace",
			server: "powerdns",
			wrap: func(c providers.Client, cancel context.CancelFunc) providers.Client {
				return &interrupted{Client: c, at: 3, cancel: cancel}
			},
			ops:     []string{"create ok", "lower-ttl ok", "replace FAIL"},
			err:     "selftest: replace failed: providers: replace: set records: context canceled",
			cleanup: "removed A {192.0.2.1, 192.0.2.2} TTL 5s, no AAAA; nothing left behind",
		},
		{
			desc:   "deletes fail: the report and the error say what is left",
			server: "bind",
			wrap:   func(c providers.Client, _ context.CancelFunc) providers.Client { return undeletable{c} },
			ops:    []string{"create ok", "lower-ttl ok", "replace ok", "remove-aaaa FAIL"},
			err: "selftest: remove-aaaa failed: providers: remove-aaaa: delete records: test: no deletes today\n" +
				"selftest: cleanup: providers: cleanup: delete records: test: no deletes today",
			cleanup: "FAILED: " + name + " still holds A {198.51.100.2} TTL 5s, AAAA {2001:db8::2} TTL 5s: " +
				"providers: cleanup: delete records: test: no deletes today; remove them by hand",
			leaves: true,
		},
		{
			desc:   "a name that exists is refused",
			server: "knot",
			name:   "taken." + zone,
			err:    "selftest: taken." + zone + " already exists (A {192.0.2.9} TTL 30s, no AAAA): the selftest needs a name of its own",
		},
		{
			desc:   "a name with other records is refused",
			server: "powerdns",
			name:   "notes." + zone,
			err:    "selftest: notes." + zone + " already exists (MX, TXT): the selftest needs a name of its own",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			srv := servers[tc.server]
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			z := srv.zone
			if tc.wrap != nil {
				z = providers.NewZone(tc.wrap(z.Client(), cancel), zone, z.Capabilities())
			}
			n := name
			if tc.name != "" {
				n = tc.name
			}
			chk := &dnsprop.Checker{Zone: zone, Authoritative: []netip.AddrPort{srv.addr}}
			st := &selftest.Test{Zone: z, Checker: chk, Name: n, LoweredTTL: 5 * time.Second, Timeout: 20 * time.Second}
			rep, err := st.Run(ctx)
			if err == nil || err.Error() != tc.err {
				t.Fatalf("error: got  %v\nwant %s", err, tc.err)
			}
			if errors.Is(err, context.Canceled) != (tc.desc == "interrupted during the replace") {
				t.Errorf("error %v: context.Canceled is wrapped only when interrupted", err)
			}
			if errors.Is(err, selftest.ErrExists) != (tc.name != "") {
				t.Errorf("error %v: ErrExists is wrapped only for a name that exists", err)
			}
			if rep == nil {
				if len(tc.ops) > 0 {
					t.Fatalf("no report, want operations %q", tc.ops)
				}
				return
			}
			var ops []string
			for _, op := range rep.Ops {
				if op.OK {
					ops = append(ops, op.Op+" ok")
				} else {
					ops = append(ops, op.Op+" FAIL")
				}
			}
			if strings.Join(ops, ", ") != strings.Join(tc.ops, ", ") || rep.Passed {
				t.Errorf("operations %q (passed %v), want %q", ops, rep.Passed, tc.ops)
			}
			if rep.Cleanup != tc.cleanup {
				t.Errorf("cleanup: got %q, want %q", rep.Cleanup, tc.cleanup)
			}
			// Nothing left behind, at the provider nor at the server.
			left, err := srv.zone.Snapshot(context.Background(), []string{n})
			if err != nil {
				t.Fatal(err)
			}
			if tc.leaves {
				none := &dnsrec.Snapshot{Zone: zone, Names: []dnsrec.Name{{Name: n}}}
				if err := srv.zone.Change(context.Background(), "test cleanup", left, none); err != nil {
					t.Fatal(err)
				}
				if left, err = srv.zone.Snapshot(context.Background(), []string{n}); err != nil {
					t.Fatal(err)
				}
			}
			f, err := chk.Observe(context.Background(), []string{n})
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range append(left.Names, f.Names...) {
				if l.A.Exists() || l.AAAA.Exists() {
					t.Errorf("left behind: %s", selftest.Describe(l))
				}
			}
		})
	}
}
