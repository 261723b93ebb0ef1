// Package providertest owns the conformance suite every cutover DNS provider
// runs: Snapshot, LowerTTL, Swap, RestoreTTL and Revert through providers.Zone,
// each run twice (idempotence), on a name with two A records, a swap that adds
// an AAAA where none existed, a swap to a host without IPv6, other records
// left untouched, and a record changed behind cutover's back.
package providertest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/providers"
)

// Harness connects the suite to one provider.
type Harness struct {
	Zone   string                 // "example.org."
	Caps   providers.Capabilities // the provider type's capabilities
	TTL    time.Duration          // TTL of the seeded records
	LowTTL time.Duration          // the lowered TTL (at least Caps.MinTTL)

	// Start returns a client for Zone holding seed (names relative to Zone)
	// besides whatever the provider needs itself (SOA, NS, ...).
	Start func(t *testing.T, seed []libdns.RR) providers.Client
	// Change replaces, behind the client's back, the RRset name/typ (name
	// relative) with addrs.
	Change func(t *testing.T, name, typ string, addrs []netip.Addr)
	// Read returns the whole zone as the provider holds it, read without the
	// client (or with a fresh one), for the "other records untouched" checks.
	Read func(t *testing.T) []libdns.RR
	// Timeout bounds each operation (default 30s).
	Timeout time.Duration
}

var (
	oldA    = netip.MustParseAddr("192.0.2.1")
	oldA2   = netip.MustParseAddr("192.0.2.11")
	oldAAAA = netip.MustParseAddr("2001:db8::1")
	newA    = netip.MustParseAddr("198.51.100.2")
	newAAAA = netip.MustParseAddr("2001:db8::2")
	tamper  = netip.MustParseAddr("203.0.113.66")
)

// Seed is what Run asks Start to put into the zone, for a harness that needs
// it before Run (ttl: Harness.TTL).
func Seed(ttl time.Duration) []libdns.RR {
	a := func(name string, ip netip.Addr) libdns.RR {
		typ := "A"
		if ip.Is6() {
			typ = "AAAA"
		}
		return libdns.RR{Name: name, TTL: ttl, Type: typ, Data: ip.String()}
	}
	return []libdns.RR{
		// full cycle
		a("c1-mail", oldA), a("c1-mail", oldAAAA),
		{Name: "c1-mail", TTL: ttl, Type: "TXT", Data: "keep me"},
		a("c1-two", oldA), a("c1-two", oldA2),
		a("c1-v4", oldA),
		a("c1-other", oldA), a("c1-other", oldAAAA),
		// swap to a host without IPv6
		a("c2-mail", oldA), a("c2-mail", oldAAAA),
		// conflicts
		a("c3-mail", oldA), a("c3-b", oldA),
	}
}

// Run runs the conformance suite. The subtests share one zone and run in order.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Timeout == 0 {
		h.Timeout = 30 * time.Second
	}
	zone := strings.ToLower(h.Zone)
	abs := func(n string) string { return n + "." + zone }
	c := h.Start(t, Seed(h.TTL))
	z := providers.NewZone(c, zone, h.Caps)
	ctx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		t.Cleanup(cancel)
		return ctx
	}
	rr := func(addrs []netip.Addr, ttl time.Duration) dnsrec.RRset {
		if len(addrs) == 0 {
			return dnsrec.RRset{}
		}
		return dnsrec.RRset{Addrs: addrs, TTL: ttl}
	}
	expect := func(t *testing.T, names []string, want []dnsrec.Name) {
		t.Helper()
		got, err := z.Snapshot(ctx(t), names)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		if d := diff(got.Names, want); d != "" {
			t.Fatalf("zone holds:\n%s", d)
		}
	}
	twice := func(t *testing.T, what string, op func(context.Context) error) {
		t.Helper()
		for i := range 2 {
			if err := op(ctx(t)); err != nil {
				t.Fatalf("%s (run %d): %v", what, i+1, err)
			}
		}
	}
	untouched := func(t *testing.T) {
		t.Helper()
		var txt, other []string
		for _, r := range h.Read(t) {
			n := strings.ToLower(libdns.AbsoluteName(r.Name, zone))
			switch {
			case n == abs("c1-mail") && r.Type == "TXT":
				txt = append(txt, fmt.Sprintf("%s %s", r.Data, r.TTL))
			case n == abs("c1-other"):
				other = append(other, fmt.Sprintf("%s %s %s", r.Type, r.Data, r.TTL))
			}
		}
		slices.Sort(other)
		if want := []string{fmt.Sprintf("keep me %s", h.TTL)}; !slices.Equal(txt, want) {
			t.Errorf("TXT of c1-mail: got %q, want %q", txt, want)
		}
		wantOther := []string{fmt.Sprintf("A %s %s", oldA, h.TTL), fmt.Sprintf("AAAA %s %s", oldAAAA, h.TTL)}
		if !slices.Equal(other, wantOther) {
			t.Errorf("c1-other: got %q, want %q", other, wantOther)
		}
	}

	t.Run("cycle", func(t *testing.T) {
		names := []string{abs("c1-mail"), abs("c1-two"), abs("c1-v4")}
		to := providers.Target{A: newA, AAAA: newAAAA}
		orig := []dnsrec.Name{
			{Name: abs("c1-mail"), A: rr(l(oldA), h.TTL), AAAA: rr(l(oldAAAA), h.TTL)},
			{Name: abs("c1-two"), A: rr(l(oldA, oldA2), h.TTL)},
			{Name: abs("c1-v4"), A: rr(l(oldA), h.TTL)},
		}
		snap, err := z.Snapshot(ctx(t), names)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		if d := diff(snap.Names, orig); d != "" {
			t.Fatalf("snapshot:\n%s", d)
		}
		if snap.Zone != zone {
			t.Errorf("snapshot zone %q, want %q", snap.Zone, zone)
		}

		twice(t, "lower-ttl", func(ctx context.Context) error { return z.LowerTTL(ctx, snap, h.LowTTL) })
		expect(t, names, []dnsrec.Name{
			{Name: abs("c1-mail"), A: rr(l(oldA), h.LowTTL), AAAA: rr(l(oldAAAA), h.LowTTL)},
			{Name: abs("c1-two"), A: rr(l(oldA, oldA2), h.LowTTL)},
			{Name: abs("c1-v4"), A: rr(l(oldA), h.LowTTL)},
		})
		untouched(t)

		twice(t, "swap", func(ctx context.Context) error { return z.Swap(ctx, snap, to, h.LowTTL) })
		swapped := []dnsrec.Name{
			{Name: abs("c1-mail"), A: rr(l(newA), h.LowTTL), AAAA: rr(l(newAAAA), h.LowTTL)},
			{Name: abs("c1-two"), A: rr(l(newA), h.LowTTL), AAAA: rr(l(newAAAA), h.LowTTL)},
			{Name: abs("c1-v4"), A: rr(l(newA), h.LowTTL), AAAA: rr(l(newAAAA), h.LowTTL)},
		}
		expect(t, names, swapped)
		untouched(t)

		twice(t, "restore-ttl", func(ctx context.Context) error { return z.RestoreTTL(ctx, snap, to) })
		for i := range swapped {
			swapped[i].A.TTL, swapped[i].AAAA.TTL = h.TTL, h.TTL
		}
		expect(t, names, swapped)
		untouched(t)

		twice(t, "revert", func(ctx context.Context) error { return z.Revert(ctx, snap, to) })
		expect(t, names, orig)
		untouched(t)
	})

	t.Run("swap to a host without IPv6 removes AAAA", func(t *testing.T) {
		names := []string{abs("c2-mail")}
		snap, err := z.Snapshot(ctx(t), names)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		to := providers.Target{A: newA}
		twice(t, "swap", func(ctx context.Context) error { return z.Swap(ctx, snap, to, h.LowTTL) })
		expect(t, names, []dnsrec.Name{{Name: abs("c2-mail"), A: rr(l(newA), h.LowTTL)}})
		twice(t, "restore-ttl", func(ctx context.Context) error { return z.RestoreTTL(ctx, snap, to) })
		expect(t, names, []dnsrec.Name{{Name: abs("c2-mail"), A: rr(l(newA), h.TTL)}})
		twice(t, "revert", func(ctx context.Context) error { return z.Revert(ctx, snap, to) })
		expect(t, names, []dnsrec.Name{{Name: abs("c2-mail"), A: rr(l(oldA), h.TTL), AAAA: rr(l(oldAAAA), h.TTL)}})
	})

	t.Run("changed behind our back", func(t *testing.T) {
		names := []string{abs("c3-b"), abs("c3-mail")}
		snap, err := z.Snapshot(ctx(t), names)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		h.Change(t, "c3-mail", "A", l(tamper))
		to := providers.Target{A: newA}
		after := []dnsrec.Name{
			{Name: abs("c3-b"), A: rr(l(oldA), h.TTL)},
			{Name: abs("c3-mail"), A: rr(l(tamper), h.TTL)},
		}
		tests := []struct {
			desc string
			op   func(context.Context) error
			want string
		}{
			{
				desc: "lower-ttl",
				op:   func(ctx context.Context) error { return z.LowerTTL(ctx, snap, h.LowTTL) },
				want: "providers: lower-ttl: c3-mail." + zone + " A holds 203.0.113.66, expected 192.0.2.1: changed outside cutover, nothing was changed",
			},
			{
				desc: "swap",
				op:   func(ctx context.Context) error { return z.Swap(ctx, snap, to, h.LowTTL) },
				want: "providers: swap: c3-mail." + zone + " A holds 203.0.113.66, expected 192.0.2.1 (before) or 198.51.100.2 (after): changed outside cutover, nothing was changed",
			},
			{
				desc: "restore-ttl",
				op:   func(ctx context.Context) error { return z.RestoreTTL(ctx, snap, to) },
				want: "providers: restore-ttl: c3-mail." + zone + " A holds 203.0.113.66, expected 198.51.100.2 (before) or 192.0.2.1 (after): changed outside cutover, nothing was changed",
			},
			{
				desc: "revert",
				op:   func(ctx context.Context) error { return z.Revert(ctx, snap, to) },
				want: "providers: revert: c3-mail." + zone + " A holds 203.0.113.66, expected 198.51.100.2 (before) or 192.0.2.1 (after): changed outside cutover, nothing was changed",
			},
		}
		for _, tc := range tests {
			t.Run(tc.desc, func(t *testing.T) {
				err := tc.op(ctx(t))
				if err == nil || err.Error() != tc.want {
					t.Fatalf("got error %v\nwant %s", err, tc.want)
				}
				var ce *providers.ConflictError
				if !errors.As(err, &ce) || ce.Name != abs("c3-mail") || ce.Type != "A" {
					t.Fatalf("error %v is not a *ConflictError for c3-mail A", err)
				}
				// Nothing changed, not even c3-b, whose precondition held.
				expect(t, names, after)
			})
		}
	})
}

// Secrets fails t if secret appears in any of the texts the caller
// collected (error texts, log output, what was written to Env.Out).
func Secrets(t *testing.T, secret string, texts ...string) {
	t.Helper()
	if secret == "" {
		t.Fatal("providertest: Secrets needs the secret to look for")
	}
	for i, s := range texts {
		if strings.Contains(s, secret) {
			t.Errorf("text %d contains the secret: %q", i, s)
		}
	}
}

// ZoneLines writes seed as zone-file lines ("c1-mail 30 IN A 192.0.2.1"),
// for a harness whose server loads a zone file.
func ZoneLines(seed []libdns.RR) []string {
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

func l(a ...netip.Addr) []netip.Addr { return a }

func diff(got, want []dnsrec.Name) string {
	f := func(ns []dnsrec.Name) string {
		var b strings.Builder
		for _, n := range ns {
			fmt.Fprintf(&b, "  %s A=%s AAAA=%s\n", n.Name, fmtSet(n.A), fmtSet(n.AAAA))
		}
		return b.String()
	}
	g, w := f(got), f(want)
	if g == w {
		return ""
	}
	return g + "want:\n" + w
}

func fmtSet(r dnsrec.RRset) string {
	if len(r.Addrs) == 0 {
		return "none"
	}
	as := slices.Clone(r.Addrs)
	slices.SortFunc(as, func(a, b netip.Addr) int { return a.Compare(b) })
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return fmt.Sprintf("{%s}/%s", strings.Join(s, ","), r.TTL)
}
