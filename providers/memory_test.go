package providers_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/providertest"
)

// memory is an in-memory libdns zone that follows the libdns contract
// (SetRecords replaces whole RRsets, DeleteRecords deletes exact matches).
// It is the reference the core operations are tested against.
type memory struct {
	mu     sync.Mutex
	zone   string
	rrs    []libdns.RR // names relative to zone
	writes int
	fail   error // returned by every call when set
}

func (m *memory) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(zone); err != nil {
		return nil, err
	}
	out := make([]libdns.Record, len(m.rrs))
	for i, r := range m.rrs {
		out[i] = r
	}
	return out, nil
}

func (m *memory) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(zone); err != nil {
		return nil, err
	}
	m.writes++
	type pair struct{ name, typ string }
	replace := map[pair]bool{}
	for _, r := range recs {
		rr := r.RR()
		replace[pair{rr.Name, rr.Type}] = true
	}
	m.rrs = slices.DeleteFunc(m.rrs, func(r libdns.RR) bool { return replace[pair{r.Name, r.Type}] })
	for _, r := range recs {
		m.rrs = append(m.rrs, r.RR())
	}
	return recs, nil
}

func (m *memory) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(zone); err != nil {
		return nil, err
	}
	m.writes++
	for _, d := range recs {
		dr := d.RR()
		m.rrs = slices.DeleteFunc(m.rrs, func(r libdns.RR) bool {
			return r.Name == dr.Name && (dr.Type == "" || r.Type == dr.Type) &&
				(dr.TTL == 0 || r.TTL == dr.TTL) && (dr.Data == "" || r.Data == dr.Data)
		})
	}
	return recs, nil
}

func (m *memory) check(zone string) error {
	if m.fail != nil {
		return m.fail
	}
	if zone != m.zone {
		return errors.New("memory: wrong zone " + zone)
	}
	return nil
}

func (m *memory) set(name, typ string, addrs []netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ttl := time.Duration(0)
	m.rrs = slices.DeleteFunc(m.rrs, func(r libdns.RR) bool {
		if r.Name == name && r.Type == typ {
			ttl = r.TTL
			return true
		}
		return false
	})
	for _, a := range addrs {
		m.rrs = append(m.rrs, libdns.RR{Name: name, Type: typ, TTL: ttl, Data: a.String()})
	}
}

func TestConformanceMemory(t *testing.T) {
	m := &memory{zone: "example.org."}
	providertest.Run(t, providertest.Harness{
		Zone:   "example.org.",
		TTL:    3600 * time.Second,
		LowTTL: 60 * time.Second,
		Start: func(t *testing.T, seed []libdns.RR) providers.Client {
			m.rrs = append(m.rrs, libdns.RR{Name: "@", Type: "NS", TTL: time.Hour, Data: "ns1.example.org."})
			m.rrs = append(m.rrs, seed...)
			return m
		},
		Change: func(t *testing.T, name, typ string, addrs []netip.Addr) { m.set(name, typ, addrs) },
		Read: func(t *testing.T) []libdns.RR {
			m.mu.Lock()
			defer m.mu.Unlock()
			return slices.Clone(m.rrs)
		},
	})
}

func rr(name, typ, data string, ttl time.Duration) libdns.RR {
	return libdns.RR{Name: name, Type: typ, Data: data, TTL: ttl}
}

var (
	a1  = netip.MustParseAddr("192.0.2.1")
	a2  = netip.MustParseAddr("198.51.100.2")
	a61 = netip.MustParseAddr("2001:db8::1")
	a62 = netip.MustParseAddr("2001:db8::2")
)

func TestOperationsWriteNothingWhenDone(t *testing.T) {
	ctx := context.Background()
	m := &memory{zone: "example.org.", rrs: []libdns.RR{rr("mail", "A", "192.0.2.1", time.Hour)}}
	z := providers.NewZone(m, "Example.ORG", providers.Capabilities{})
	snap, err := z.Snapshot(ctx, []string{"MAIL.example.org", "mail.example.org."})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Names) != 1 || snap.Names[0].Name != "mail.example.org." {
		t.Fatalf("names not canonicalised and deduplicated: %+v", snap.Names)
	}
	if m.writes != 0 {
		t.Fatalf("snapshot wrote %d times", m.writes)
	}
	to := providers.Target{A: a2}
	steps := []struct {
		desc string
		op   func() error
	}{
		{"lower-ttl", func() error { return z.LowerTTL(ctx, snap, time.Minute) }},
		{"swap", func() error { return z.Swap(ctx, snap, to, time.Minute) }},
		{"restore-ttl", func() error { return z.RestoreTTL(ctx, snap, to) }},
		{"revert", func() error { return z.Revert(ctx, snap, to) }},
	}
	for _, s := range steps {
		if err := s.op(); err != nil {
			t.Fatalf("%s: %v", s.desc, err)
		}
		w := m.writes
		if err := s.op(); err != nil {
			t.Fatalf("%s again: %v", s.desc, err)
		}
		if m.writes != w {
			t.Errorf("%s: second run wrote %d times, want 0", s.desc, m.writes-w)
		}
	}
}

func TestLowerTTLNeverRaises(t *testing.T) {
	ctx := context.Background()
	m := &memory{zone: "example.org.", rrs: []libdns.RR{rr("mail", "A", "192.0.2.1", 30*time.Second)}}
	z := providers.NewZone(m, "example.org.", providers.Capabilities{})
	snap, err := z.Snapshot(ctx, []string{"mail.example.org."})
	if err != nil {
		t.Fatal(err)
	}
	if err := z.LowerTTL(ctx, snap, time.Minute); err != nil {
		t.Fatal(err)
	}
	if m.writes != 0 || m.rrs[0].TTL != 30*time.Second {
		t.Fatalf("TTL raised or rewritten: %+v (writes %d)", m.rrs, m.writes)
	}
}

// The swap writes the lowered TTL, or the TTL served before when that is
// lower (a lowered_ttl above it must not raise it); a new AAAA RRset takes
// the name's A TTL as what was served.
func TestSwapNeverRaisesTTL(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		desc    string
		seed    []libdns.RR
		to      providers.Target
		lowered time.Duration
		want    []libdns.RR
	}{
		{desc: "lowered below served", seed: []libdns.RR{rr("mail", "A", "192.0.2.1", time.Hour)},
			to: providers.Target{A: a2}, lowered: 5 * time.Minute,
			want: []libdns.RR{rr("mail", "A", "198.51.100.2", 5*time.Minute)}},
		{desc: "lowered above served: the served TTL stays", seed: []libdns.RR{rr("mail", "A", "192.0.2.1", 5*time.Minute)},
			to: providers.Target{A: a2}, lowered: 24 * time.Hour,
			want: []libdns.RR{rr("mail", "A", "198.51.100.2", 5*time.Minute)}},
		{desc: "each dnsrec.RRset capped by its own TTL",
			seed: []libdns.RR{rr("mail", "A", "192.0.2.1", 10*time.Minute), rr("mail", "AAAA", "2001:db8::1", 2*time.Minute)},
			to:   providers.Target{A: a2, AAAA: a62}, lowered: time.Hour,
			want: []libdns.RR{rr("mail", "A", "198.51.100.2", 10*time.Minute), rr("mail", "AAAA", "2001:db8::2", 2*time.Minute)}},
		{desc: "a new AAAA is capped by the A TTL", seed: []libdns.RR{rr("mail", "A", "192.0.2.1", 5*time.Minute)},
			to: providers.Target{A: a2, AAAA: a62}, lowered: time.Hour,
			want: []libdns.RR{rr("mail", "A", "198.51.100.2", 5*time.Minute), rr("mail", "AAAA", "2001:db8::2", 5*time.Minute)}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			m := &memory{zone: "example.org.", rrs: tc.seed}
			z := providers.NewZone(m, "example.org.", providers.Capabilities{})
			snap, err := z.Snapshot(ctx, []string{"mail.example.org."})
			if err != nil {
				t.Fatal(err)
			}
			if err := z.Swap(ctx, snap, tc.to, tc.lowered); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.rrs, tc.want) {
				t.Errorf("zone holds %+v, want %+v", m.rrs, tc.want)
			}
		})
	}
}

func TestOperationErrors(t *testing.T) {
	ctx := context.Background()
	caps := providers.Capabilities{MinTTL: time.Minute, MinTTLReason: "the API refuses less"}
	newZone := func() (*memory, *providers.Zone) {
		m := &memory{zone: "example.org.", rrs: []libdns.RR{rr("mail", "A", "192.0.2.1", time.Hour)}}
		return m, providers.NewZone(m, "example.org.", caps)
	}
	good := &dnsrec.Snapshot{Zone: "example.org.", Names: []dnsrec.Name{{Name: "mail.example.org.", A: dnsrec.RRset{Addrs: []netip.Addr{a1}, TTL: time.Hour}}}}
	tests := []struct {
		desc string
		op   func(z *providers.Zone, m *memory) error
		want string
	}{
		{
			desc: "lowered TTL below the provider minimum",
			op:   func(z *providers.Zone, m *memory) error { return z.LowerTTL(ctx, good, 30*time.Second) },
			want: "providers: lower-ttl: TTL below the provider's minimum: 30s < 1m0s (the API refuses less)",
		},
		{
			desc: "swap TTL below the provider minimum",
			op: func(z *providers.Zone, m *memory) error {
				return z.Swap(ctx, good, providers.Target{A: a2}, time.Second)
			},
			want: "providers: swap: TTL below the provider's minimum: 1s < 1m0s (the API refuses less)",
		},
		{
			desc: "fractional TTL",
			op:   func(z *providers.Zone, m *memory) error { return z.LowerTTL(ctx, good, 1500*time.Millisecond) },
			want: "providers: lower-ttl: TTL 1.5s must be a whole number of seconds, at least 1s",
		},
		{
			desc: "swap target without IPv4",
			op: func(z *providers.Zone, m *memory) error {
				return z.Swap(ctx, good, providers.Target{A: a62}, time.Hour)
			},
			want: `providers: swap: target A "2001:db8::2" is not an IPv4 address`,
		},
		{
			desc: "swap target with an IPv4 AAAA",
			op: func(z *providers.Zone, m *memory) error {
				return z.Swap(ctx, good, providers.Target{A: a2, AAAA: a1}, time.Hour)
			},
			want: `providers: swap: target AAAA "192.0.2.1" is not an IPv6 address`,
		},
		{
			desc: "snapshot of another zone",
			op: func(z *providers.Zone, m *memory) error {
				s := *good
				s.Zone = "example.net."
				return z.Revert(ctx, &s, providers.Target{A: a2})
			},
			want: `providers: revert: snapshot is of zone "example.net.", not "example.org."`,
		},
		{
			desc: "empty snapshot",
			op: func(z *providers.Zone, m *memory) error {
				return z.RestoreTTL(ctx, &dnsrec.Snapshot{}, providers.Target{A: a2})
			},
			want: "providers: restore-ttl: empty snapshot",
		},
		{
			desc: "name outside the zone",
			op: func(z *providers.Zone, m *memory) error {
				_, err := z.Snapshot(ctx, []string{"mail.example.net"})
				return err
			},
			want: `providers: name "mail.example.net" is not in zone "example.org."`,
		},
		{
			desc: "provider fails",
			op: func(z *providers.Zone, m *memory) error {
				m.fail = errors.New("memory: boom")
				return z.Swap(ctx, good, providers.Target{A: a2}, time.Hour)
			},
			want: "providers: swap: get records: memory: boom",
		},
		{
			desc: "two conflicts are both named",
			op: func(z *providers.Zone, m *memory) error {
				m.rrs = []libdns.RR{rr("mail", "A", "203.0.113.9", time.Hour), rr("mail", "AAAA", "2001:db8::9", time.Hour)}
				return z.Swap(ctx, good, providers.Target{A: a2, AAAA: a62}, time.Hour)
			},
			want: "providers: swap: mail.example.org. A holds 203.0.113.9, expected 192.0.2.1 (before) or 198.51.100.2 (after): changed outside cutover, nothing was changed\n" +
				"providers: swap: mail.example.org. AAAA holds 2001:db8::9, expected none (before) or 2001:db8::2 (after): changed outside cutover, nothing was changed",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			m, z := newZone()
			err := tc.op(z, m)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			if m.writes != 0 {
				t.Errorf("wrote %d times", m.writes)
			}
		})
	}
}

func TestSnapshotJSON(t *testing.T) {
	snap := &dnsrec.Snapshot{Zone: "example.org.", Taken: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), Names: []dnsrec.Name{
		{Name: "mail.example.org.", A: dnsrec.RRset{Addrs: []netip.Addr{a1}, TTL: time.Hour}, AAAA: dnsrec.RRset{Addrs: []netip.Addr{a61}, TTL: time.Hour}},
		{Name: "www.example.org.", A: dnsrec.RRset{Addrs: []netip.Addr{a1, a2}, TTL: time.Minute}},
	}}
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"zone":"example.org.","taken":"2026-11-23T10:00:00Z","names":[` +
		`{"name":"mail.example.org.","a":{"addrs":["192.0.2.1"],"ttl":3600000000000},"aaaa":{"addrs":["2001:db8::1"],"ttl":3600000000000}},` +
		`{"name":"www.example.org.","a":{"addrs":["192.0.2.1","198.51.100.2"],"ttl":60000000000},"aaaa":{}}]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	var back dnsrec.Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, snap) {
		t.Fatalf("round trip: got %+v, want %+v", back, *snap)
	}
}

// TestInterruptedRunsConverge: a provider that writes record by record can
// be interrupted half way; re-running the same operation must converge, while
// an address nobody asked for is still a conflict.
func TestInterruptedRunsConverge(t *testing.T) {
	ctx := context.Background()
	a11 := netip.MustParseAddr("192.0.2.11")
	snap := &dnsrec.Snapshot{Zone: "example.org.", Names: []dnsrec.Name{
		{Name: "mail.example.org.", A: dnsrec.RRset{Addrs: []netip.Addr{a1, a11}, TTL: time.Hour}},
	}}
	to := providers.Target{A: a2}
	tests := []struct {
		desc string
		zone []libdns.RR
		op   func(z *providers.Zone) error
		want string // error; "" = converged
		end  []libdns.RR
	}{
		{
			desc: "swap interrupted after deleting one old record",
			zone: []libdns.RR{rr("mail", "A", "192.0.2.1", time.Hour)},
			op:   func(z *providers.Zone) error { return z.Swap(ctx, snap, to, time.Minute) },
			end:  []libdns.RR{rr("mail", "A", "198.51.100.2", time.Minute)},
		},
		{
			desc: "swap interrupted between delete and create",
			zone: nil,
			op:   func(z *providers.Zone) error { return z.Swap(ctx, snap, to, time.Minute) },
			end:  []libdns.RR{rr("mail", "A", "198.51.100.2", time.Minute)},
		},
		{
			desc: "revert interrupted with old and new mixed",
			zone: []libdns.RR{rr("mail", "A", "198.51.100.2", time.Minute), rr("mail", "A", "192.0.2.1", time.Hour)},
			op:   func(z *providers.Zone) error { return z.Revert(ctx, snap, to) },
			end:  []libdns.RR{rr("mail", "A", "192.0.2.1", time.Hour), rr("mail", "A", "192.0.2.11", time.Hour)},
		},
		{
			desc: "a foreign address among ours",
			zone: []libdns.RR{rr("mail", "A", "198.51.100.2", time.Minute), rr("mail", "A", "203.0.113.7", time.Minute)},
			op:   func(z *providers.Zone) error { return z.Revert(ctx, snap, to) },
			want: "providers: revert: mail.example.org. A holds 198.51.100.2, 203.0.113.7, expected 198.51.100.2 (before) or 192.0.2.1, 192.0.2.11 (after): changed outside cutover, nothing was changed",
			end:  []libdns.RR{rr("mail", "A", "198.51.100.2", time.Minute), rr("mail", "A", "203.0.113.7", time.Minute)},
		},
		{
			desc: "restore-ttl needs exactly the old or the new data",
			zone: []libdns.RR{rr("mail", "A", "198.51.100.2", time.Minute), rr("mail", "A", "192.0.2.1", time.Minute)},
			op:   func(z *providers.Zone) error { return z.RestoreTTL(ctx, snap, to) },
			want: "providers: restore-ttl: mail.example.org. A holds 192.0.2.1, 198.51.100.2, expected 198.51.100.2 (before) or 192.0.2.1, 192.0.2.11 (after): changed outside cutover, nothing was changed",
			end:  []libdns.RR{rr("mail", "A", "198.51.100.2", time.Minute), rr("mail", "A", "192.0.2.1", time.Minute)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			m := &memory{zone: "example.org.", rrs: slices.Clone(tc.zone)}
			err := tc.op(providers.NewZone(m, "example.org.", providers.Capabilities{}))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			sortRR := func(rs []libdns.RR) []libdns.RR {
				rs = slices.Clone(rs)
				slices.SortFunc(rs, func(a, b libdns.RR) int { return strings.Compare(a.Data, b.Data) })
				return rs
			}
			if g, w := sortRR(m.rrs), sortRR(tc.end); !slices.Equal(g, w) {
				t.Fatalf("zone ends as %v, want %v", g, w)
			}
		})
	}
}
