package providers_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/providertest"
)

// idRecord is a record as a library that keeps record IDs returns it.
type idRecord struct {
	Rec libdns.RR
	ID  int
}

func (r idRecord) RR() libdns.RR { return r.Rec }

// byID behaves like the libraries ReplaceRRsets is for (vultr,
// digitalocean, gandi, inwx, ionos): SetRecords adds to an RRset instead of
// replacing it, and DeleteRecords only takes records that carry an ID.
type byID struct {
	mu   sync.Mutex
	zone string
	recs []idRecord
	next int
}

func (b *byID) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]libdns.Record, len(b.recs))
	for i, r := range b.recs {
		out[i] = r
	}
	return out, nil
}

func (b *byID) AppendRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range in {
		b.next++
		b.recs = append(b.recs, idRecord{r.RR(), b.next})
	}
	return in, nil
}

func (b *byID) SetRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	return b.AppendRecords(ctx, zone, in) // the bug ReplaceRRsets works around
}

func (b *byID) DeleteRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range in {
		ir, ok := r.(idRecord)
		if !ok {
			return nil, fmt.Errorf("record has no ID: %v", r.RR())
		}
		b.recs = slices.DeleteFunc(b.recs, func(x idRecord) bool { return x.ID == ir.ID })
	}
	return in, nil
}

func (b *byID) set(name, typ string, addrs []netip.Addr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ttl := time.Hour
	b.recs = slices.DeleteFunc(b.recs, func(r idRecord) bool { return r.Rec.Name == name && r.Rec.Type == typ })
	for _, a := range addrs {
		b.next++
		b.recs = append(b.recs, idRecord{libdns.RR{Name: name, Type: typ, TTL: ttl, Data: a.String()}, b.next})
	}
}

func TestConformanceReplaceRRsets(t *testing.T) {
	b := &byID{zone: "example.org."}
	providertest.Run(t, providertest.Harness{
		Zone:   "example.org.",
		Caps:   providers.Capabilities{MinTTL: time.Second},
		TTL:    3600 * time.Second,
		LowTTL: 60 * time.Second,
		Start: func(t *testing.T, seed []libdns.RR) providers.Client {
			for _, r := range seed {
				b.set(r.Name, r.Type, nil)
			}
			for _, r := range seed {
				b.next++
				b.recs = append(b.recs, idRecord{r, b.next})
			}
			return providers.ReplaceRRsets(b)
		},
		Change: func(t *testing.T, name, typ string, addrs []netip.Addr) { b.set(name, typ, addrs) },
		Read: func(t *testing.T) []libdns.RR {
			b.mu.Lock()
			defer b.mu.Unlock()
			var out []libdns.RR
			for _, r := range b.recs {
				out = append(out, r.Rec)
			}
			return out
		},
	})
}

// lastTypeOnly has linode's bug: SetRecords replaces the old records of only
// the last type it was given per name.
type lastTypeOnly struct{ memory }

func (l *lastTypeOnly) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	last := map[string]string{}
	for _, r := range recs {
		last[r.RR().Name] = r.RR().Type
	}
	l.mu.Lock()
	l.rrs = slices.DeleteFunc(l.rrs, func(r libdns.RR) bool { t, ok := last[r.Name]; return ok && t == r.Type })
	for _, r := range recs {
		l.rrs = append(l.rrs, r.RR())
	}
	l.mu.Unlock()
	return recs, nil
}

func TestOneRRsetPerCall(t *testing.T) {
	seed := []libdns.RR{rr("mail", "A", "192.0.2.1", time.Hour), rr("mail", "AAAA", "2001:db8::1", time.Hour)}
	in := []libdns.Record{rr("mail", "A", "198.51.100.2", time.Minute), rr("mail", "AAAA", "2001:db8::2", time.Minute)}
	tests := []struct {
		desc string
		wrap func(providers.Client) providers.Client
		want []libdns.RR
	}{
		{desc: "the library alone keeps the old A", wrap: func(c providers.Client) providers.Client { return c },
			want: []libdns.RR{seed[0], in[0].RR(), in[1].RR()}},
		{desc: "one dnsrec.RRset per call replaces both", wrap: providers.OneRRsetPerCall,
			want: []libdns.RR{in[0].RR(), in[1].RR()}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			l := &lastTypeOnly{memory{zone: "example.org.", rrs: slices.Clone(seed)}}
			if _, err := tc.wrap(l).SetRecords(context.Background(), "example.org.", in); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l.rrs, tc.want) {
				t.Fatalf("zone holds %v, want %v", l.rrs, tc.want)
			}
		})
	}
}

func TestReplaceRRsetsErrors(t *testing.T) {
	m := &memory{zone: "example.org.", fail: errors.New("memory: down")}
	lib := struct {
		*memory
		libdns.RecordAppender
	}{m, nil}
	for _, op := range []func() error{
		func() error {
			_, err := providers.ReplaceRRsets(lib).SetRecords(context.Background(), "example.org.", nil)
			return err
		},
		func() error {
			_, err := providers.ReplaceRRsets(lib).DeleteRecords(context.Background(), "example.org.", nil)
			return err
		},
	} {
		if err := op(); err == nil || err.Error() != "memory: down" {
			t.Fatalf("got %v, want memory: down", err)
		}
	}
}
