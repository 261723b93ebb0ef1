package providers_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/providertest"
)

// TestReadBackCatchesLossy: a library that drops records it claims to have
// written stops the operation with both sets named.
func TestReadBackCatchesLossy(t *testing.T) {
	ctx := context.Background()
	a11 := netip.MustParseAddr("192.0.2.11")
	snap := &dnsrec.Snapshot{Zone: "example.org.", Names: []dnsrec.Name{{
		Name: "mail.example.org.",
		A:    dnsrec.RRset{Addrs: []netip.Addr{a1, a11}, TTL: time.Hour},
		AAAA: dnsrec.RRset{Addrs: []netip.Addr{a61}, TTL: time.Hour},
	}}}
	to := providers.Target{A: a2, AAAA: a62}
	seed := []libdns.RR{
		rr("mail", "A", "192.0.2.1", time.Hour), rr("mail", "A", "192.0.2.11", time.Hour),
		rr("mail", "AAAA", "2001:db8::1", time.Hour),
	}
	tests := []struct {
		desc string
		op   func(z *providers.Zone) error
		want string
	}{
		{
			desc: "swap loses the AAAA written with the A",
			op:   func(z *providers.Zone) error { return z.Swap(ctx, snap, to, time.Minute) },
			want: "providers: read-back of mail.example.org. AAAA after swap: got {2001:db8::1} TTL 1h0m0s, want {2001:db8::2} TTL 1m0s",
		},
		{
			desc: "lower-ttl loses the second A and the AAAA",
			op:   func(z *providers.Zone) error { return z.LowerTTL(ctx, snap, time.Minute) },
			want: "providers: read-back of mail.example.org. A after lower-ttl: got {192.0.2.1} TTL 1m0s, want {192.0.2.1, 192.0.2.11} TTL 1m0s\n" +
				"providers: read-back of mail.example.org. AAAA after lower-ttl: got {2001:db8::1} TTL 1h0m0s, want {2001:db8::1} TTL 1m0s",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			m := &memory{zone: "example.org.", rrs: append([]libdns.RR(nil), seed...)}
			err := tc.op(providers.NewZone(providertest.Lossy(m), "example.org.", providers.Capabilities{}))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
			var rb *providers.ReadBackError
			if !errors.As(err, &rb) || rb.Name != "mail.example.org." {
				t.Fatalf("error %v is not a *ReadBackError for mail", err)
			}
		})
	}
}

func TestChange(t *testing.T) {
	ctx := context.Background()
	name := func(n string, a ...netip.Addr) dnsrec.Name {
		r := dnsrec.Name{Name: n}
		if len(a) > 0 {
			r.A = dnsrec.RRset{Addrs: a, TTL: time.Minute}
		}
		return r
	}
	snap := func(ns ...dnsrec.Name) *dnsrec.Snapshot {
		return &dnsrec.Snapshot{Zone: "example.org.", Names: ns}
	}
	tests := []struct {
		desc       string
		have, want *dnsrec.Snapshot
		err        string
		end        []libdns.RR
	}{
		{
			desc: "create a set of two",
			have: snap(name("t.example.org.")),
			want: snap(name("t.example.org.", a1, a2)),
			end:  []libdns.RR{rr("t", "A", "192.0.2.1", time.Minute), rr("t", "A", "198.51.100.2", time.Minute)},
		},
		{
			desc: "names differ",
			have: snap(name("t.example.org.")),
			want: snap(name("u.example.org.", a1)),
			err:  "providers: create: have and want differ in names",
		},
		{
			desc: "a name too many",
			have: snap(name("t.example.org.")),
			want: snap(name("t.example.org.", a1), name("u.example.org.", a1)),
			err:  "providers: create: have and want differ in names",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			m := &memory{zone: "example.org."}
			err := providers.NewZone(m, "example.org.", providers.Capabilities{}).Change(ctx, "create", tc.have, tc.want)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.err {
				t.Fatalf("got %q, want %q", got, tc.err)
			}
			if !slices.Equal(m.rrs, tc.end) {
				t.Fatalf("zone ends as %v, want %v", m.rrs, tc.end)
			}
		})
	}
}
