package providers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/dnsrec"
)

// Target is the host the names move to. An invalid AAAA means the host has no
// IPv6 address: Swap removes the AAAA RRsets.
type Target struct {
	A    netip.Addr
	AAAA netip.Addr
}

// Zone runs the record operations on one zone of one provider.
type Zone struct {
	c    Client
	zone string
	caps Capabilities
}

// NewZone returns the operations for zone (made fully qualified, lower case)
// over c.
func NewZone(c Client, zone string, caps Capabilities) *Zone {
	return &Zone{c: c, zone: fqdn(zone), caps: caps}
}

// Capabilities returns the provider's capabilities.
func (z *Zone) Capabilities() Capabilities { return z.caps }

// Client returns the provider's client.
func (z *Zone) Client() Client { return z.c }

// Name returns the zone name (FQDN with trailing dot).
func (z *Zone) Name() string { return z.zone }

// ConflictError says a record holds neither a value the operation expects
// before it nor one it writes: someone else changed it. The operation changed
// nothing (the preconditions of all names are checked before any write).
type ConflictError struct {
	Op         string       // "lower-ttl", "swap", "restore-ttl", "revert"
	Name, Type string       // "mail.example.org.", "A"
	Want       []netip.Addr // the value expected before the operation
	Other      []netip.Addr // the value the operation writes
	Got        []netip.Addr // what the zone holds
}

func (e *ConflictError) Error() string {
	if sameAddrs(e.Want, e.Other) {
		return fmt.Sprintf("providers: %s: %s %s holds %s, expected %s: changed outside cutover, nothing was changed",
			e.Op, e.Name, e.Type, fmtAddrs(e.Got), fmtAddrs(e.Want))
	}
	return fmt.Sprintf("providers: %s: %s %s holds %s, expected %s (before) or %s (after): changed outside cutover, nothing was changed",
		e.Op, e.Name, e.Type, fmtAddrs(e.Got), fmtAddrs(e.Want), fmtAddrs(e.Other))
}

// ErrTTLTooLow is wrapped when an operation is asked for a TTL below the
// provider's minimum.
var ErrTTLTooLow = errors.New("TTL below the provider's minimum")

// Snapshot reads the current A and AAAA RRsets of names (FQDNs inside the
// zone). It only reads.
func (z *Zone) Snapshot(ctx context.Context, names []string) (*dnsrec.Snapshot, error) {
	ns, err := z.canonNames(names)
	if err != nil {
		return nil, err
	}
	cur, err := z.read(ctx, ns)
	if err != nil {
		return nil, fmt.Errorf("providers: snapshot: %w", err)
	}
	snap := &dnsrec.Snapshot{Zone: z.zone, Taken: time.Now().UTC()}
	for _, n := range ns {
		snap.Names = append(snap.Names, dnsrec.Name{Name: n, A: cur[key{n, "A"}], AAAA: cur[key{n, "AAAA"}]})
	}
	return snap, nil
}

// LowerTTL rewrites the snapshot's A and AAAA RRsets with the same data and
// TTL ttl (an RRset whose TTL is already lower keeps it).
func (z *Zone) LowerTTL(ctx context.Context, snap *dnsrec.Snapshot, ttl time.Duration) error {
	if err := z.checkTTL("lower-ttl", ttl); err != nil {
		return err
	}
	return z.run(ctx, "lower-ttl", snap, func(n dnsrec.Name, typ string, old dnsrec.RRset, _ dnsrec.RRset) (before, after dnsrec.RRset) {
		after = old
		if len(old.Addrs) > 0 && (old.TTL == 0 || old.TTL > ttl) {
			after.TTL = ttl
		}
		return old, after
	})
}

// Swap makes each name's A RRset exactly {to.A} and its AAAA RRset exactly
// {to.AAAA}, or removes it when to has no IPv6 address. The new RRsets carry
// ttl (the lowered TTL), or the TTL served before when that is lower: a swap
// never raises a TTL. Other types and other names are untouched.
func (z *Zone) Swap(ctx context.Context, snap *dnsrec.Snapshot, to Target, ttl time.Duration) error {
	if !to.A.Is4() {
		return fmt.Errorf("providers: swap: target A %q is not an IPv4 address", to.A)
	}
	if to.AAAA.IsValid() && !(to.AAAA.Is6() && !to.AAAA.Is4In6()) {
		return fmt.Errorf("providers: swap: target AAAA %q is not an IPv6 address", to.AAAA)
	}
	if err := z.checkTTL("swap", ttl); err != nil {
		return err
	}
	return z.run(ctx, "swap", snap, func(n dnsrec.Name, typ string, old dnsrec.RRset, _ dnsrec.RRset) (before, after dnsrec.RRset) {
		want := single(to.A)
		if typ == "AAAA" {
			want = single(to.AAAA)
		}
		after = dnsrec.RRset{Addrs: want}
		if len(want) > 0 {
			after.TTL = n.SwapTTL(typ, ttl)
		}
		return old, after
	})
}

// RestoreTTL gives every RRset its snapshot TTL back, keeping the data it
// holds now (the snapshot's or to's). An AAAA RRset the snapshot did not have
// gets the name's A TTL from the snapshot.
func (z *Zone) RestoreTTL(ctx context.Context, snap *dnsrec.Snapshot, to Target) error {
	if snap == nil {
		return errors.New("providers: restore-ttl: empty snapshot")
	}
	var fallback time.Duration
	for _, n := range snap.Names {
		fallback = max(fallback, n.A.TTL, n.AAAA.TTL)
	}
	return z.run(ctx, "restore-ttl", snap, func(n dnsrec.Name, typ string, old dnsrec.RRset, cur dnsrec.RRset) (before, after dnsrec.RRset) {
		ttl := n.ServedTTL(typ)
		if ttl == 0 {
			ttl = fallback
		}
		toSet := single(to.A)
		if typ == "AAAA" {
			toSet = single(to.AAAA)
		}
		if sameAddrs(cur.Addrs, toSet) && !sameAddrs(cur.Addrs, old.Addrs) {
			after = dnsrec.RRset{Addrs: toSet}
			if len(toSet) > 0 {
				after.TTL = ttl
			}
			return old, after
		}
		after = old
		if len(old.Addrs) > 0 {
			after.TTL = ttl
		}
		// Before is what the swap wrote, so a record holding neither the
		// snapshot's nor the target's data is a conflict.
		return dnsrec.RRset{Addrs: toSet}, after
	})
}

// Revert puts back the snapshot's data and TTLs. from is the host cutover
// swapped the names to: a record holding neither from's nor the snapshot's
// data is a conflict.
func (z *Zone) Revert(ctx context.Context, snap *dnsrec.Snapshot, from Target) error {
	return z.run(ctx, "revert", snap, func(n dnsrec.Name, typ string, old dnsrec.RRset, _ dnsrec.RRset) (before, after dnsrec.RRset) {
		b := single(from.A)
		if typ == "AAAA" {
			b = single(from.AAAA)
		}
		return dnsrec.RRset{Addrs: b}, old
	})
}

// Change makes each name of want hold exactly want's A and AAAA RRsets (an
// empty RRset: none), expecting it to hold have's before (the selftest's
// operations on its scratch name). have and want list the same names in the
// same order. Preconditions, writes and read-back are those of the other
// operations; op names the change in errors.
func (z *Zone) Change(ctx context.Context, op string, have, want *dnsrec.Snapshot) error {
	if have == nil || want == nil {
		return fmt.Errorf("providers: %s: empty snapshot", op)
	}
	wanted := make(map[string]dnsrec.Name, len(want.Names))
	for _, n := range want.Names {
		wanted[n.Name] = n
	}
	for _, n := range have.Names {
		if _, ok := wanted[n.Name]; !ok || len(have.Names) != len(want.Names) {
			return fmt.Errorf("providers: %s: have and want differ in names", op)
		}
	}
	return z.run(ctx, op, have, func(n dnsrec.Name, typ string, old dnsrec.RRset, _ dnsrec.RRset) (before, after dnsrec.RRset) {
		if typ == "AAAA" {
			return old, wanted[n.Name].AAAA
		}
		return old, wanted[n.Name].A
	})
}

func (z *Zone) checkTTL(op string, ttl time.Duration) error {
	if ttl < time.Second || ttl%time.Second != 0 {
		return fmt.Errorf("providers: %s: TTL %s must be a whole number of seconds, at least 1s", op, ttl)
	}
	if ttl < z.caps.MinTTL {
		return fmt.Errorf("providers: %s: %w: %s < %s (%s)", op, ErrTTLTooLow, ttl, z.caps.MinTTL, z.caps.MinTTLReason)
	}
	return nil
}

type key struct{ name, typ string }

// planFunc gives, for one RRset of the snapshot (old) and what the zone holds
// now (cur), the data expected before the operation and the RRset it writes.
type planFunc func(n dnsrec.Name, typ string, old, cur dnsrec.RRset) (before, after dnsrec.RRset)

type step struct {
	key
	cur, after dnsrec.RRset
}

// run checks the precondition for every RRset of the snapshot, then writes
// what is not already done in one SetRecords call (and one DeleteRecords call
// for RRsets that must go), then reads back and verifies.
func (z *Zone) run(ctx context.Context, op string, snap *dnsrec.Snapshot, plan planFunc) error {
	if snap == nil || len(snap.Names) == 0 {
		return fmt.Errorf("providers: %s: empty snapshot", op)
	}
	if fqdn(snap.Zone) != z.zone {
		return fmt.Errorf("providers: %s: snapshot is of zone %q, not %q", op, snap.Zone, z.zone)
	}
	names := make([]string, len(snap.Names))
	for i, n := range snap.Names {
		names[i] = n.Name
	}
	cur, err := z.read(ctx, names)
	if err != nil {
		return fmt.Errorf("providers: %s: %w", op, err)
	}
	var (
		conflicts []error
		todo      []step
	)
	for _, n := range snap.Names {
		for _, typ := range []string{"A", "AAAA"} {
			old := n.A
			if typ == "AAAA" {
				old = n.AAAA
			}
			k := key{n.Name, typ}
			c := cur[k]
			before, after := plan(n, typ, old, c)
			if !z.accept(op, c.Addrs, before.Addrs, after.Addrs) {
				conflicts = append(conflicts, &ConflictError{Op: op, Name: n.Name, Type: typ, Want: before.Addrs, Other: after.Addrs, Got: c.Addrs})
				continue
			}
			if done(c, after) {
				continue
			}
			todo = append(todo, step{k, c, after})
		}
	}
	if len(conflicts) > 0 {
		return errors.Join(conflicts...)
	}
	if len(todo) == 0 {
		return nil
	}
	var set, del []libdns.Record
	for _, s := range todo {
		rel := libdns.RelativeName(s.name, z.zone)
		if len(s.after.Addrs) == 0 {
			for _, a := range s.cur.Addrs {
				del = append(del, libdns.Address{Name: rel, IP: a})
			}
			continue
		}
		for _, a := range s.after.Addrs {
			set = append(set, libdns.Address{Name: rel, TTL: s.after.TTL, IP: a})
		}
	}
	if len(set) > 0 {
		if _, err := z.c.SetRecords(ctx, z.zone, set); err != nil {
			return fmt.Errorf("providers: %s: set records: %w", op, err)
		}
	}
	if len(del) > 0 {
		if _, err := z.c.DeleteRecords(ctx, z.zone, del); err != nil {
			return fmt.Errorf("providers: %s: delete records: %w", op, err)
		}
	}
	return z.readBack(ctx, op, names, todo)
}

// ReadBackError says the provider, read right after a write, does not hold
// what was written: a library or API that lost or altered records. The step
// stops before any wait for propagation.
type ReadBackError struct {
	Op         string // "lower-ttl", "swap", "restore-ttl", "revert"
	Name, Type string // "mail.example.org.", "A"
	Got, Want  dnsrec.RRset
}

func (e *ReadBackError) Error() string {
	return fmt.Sprintf("providers: read-back of %s %s after %s: got %s, want %s", e.Name, e.Type, e.Op, fmtRRset(e.Got), fmtRRset(e.Want))
}

// readBack reads names again and compares every RRset written with what the
// provider holds now, returning a *ReadBackError for each difference.
func (z *Zone) readBack(ctx context.Context, op string, names []string, todo []step) error {
	got, err := z.read(ctx, names)
	if err != nil {
		return fmt.Errorf("providers: %s: read back: %w", op, err)
	}
	var bad []error
	for _, s := range todo {
		if g := got[s.key]; !done(g, s.after) {
			bad = append(bad, &ReadBackError{Op: op, Name: s.name, Type: s.typ, Got: g, Want: s.after})
		}
	}
	return errors.Join(bad...)
}

// accept is the precondition of one RRset. Every record must hold a value
// the operation expects before or after it: a subset of both is what an
// interrupted run of the same operation leaves on a provider that writes
// record by record, so re-running converges. restore-ttl keeps the current
// data, so it needs the RRset to be exactly the snapshot's or the target's.
func (z *Zone) accept(op string, cur, before, after []netip.Addr) bool {
	if sameAddrs(cur, before) || sameAddrs(cur, after) {
		return true
	}
	if op == "restore-ttl" {
		return false
	}
	for _, a := range cur {
		if !slices.Contains(before, a) && !slices.Contains(after, a) {
			return false
		}
	}
	return true
}

func done(cur, after dnsrec.RRset) bool {
	if !sameAddrs(cur.Addrs, after.Addrs) {
		return false
	}
	return len(after.Addrs) == 0 || cur.TTL == after.TTL
}

// read returns the A and AAAA RRsets of names (RRsets with mixed TTLs get the
// largest one).
func (z *Zone) read(ctx context.Context, names []string) (map[key]dnsrec.RRset, error) {
	var (
		recs []libdns.Record
		err  error
	)
	if nr, ok := z.c.(NameReader); ok {
		recs, err = nr.GetNameRecords(ctx, z.zone, names)
	} else {
		recs, err = z.c.GetRecords(ctx, z.zone)
	}
	if err != nil {
		return nil, fmt.Errorf("get records: %w", err)
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := map[key]dnsrec.RRset{}
	for _, r := range recs {
		rr := r.RR()
		if rr.Type != "A" && rr.Type != "AAAA" {
			continue
		}
		name := fqdn(libdns.AbsoluteName(rr.Name, z.zone))
		if !want[name] {
			continue
		}
		a, err := netip.ParseAddr(rr.Data)
		if err != nil {
			return nil, fmt.Errorf("%s %s: bad address %q", name, rr.Type, rr.Data)
		}
		k := key{name, rr.Type}
		s := out[k]
		if !slices.Contains(s.Addrs, a) {
			s.Addrs = append(s.Addrs, a)
		}
		s.TTL = max(s.TTL, rr.TTL)
		out[k] = s
	}
	for k, s := range out {
		slices.SortFunc(s.Addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		out[k] = s
	}
	return out, nil
}

func (z *Zone) canonNames(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errors.New("providers: no names given")
	}
	var out []string
	for _, n := range names {
		f := fqdn(n)
		if f != z.zone && !strings.HasSuffix(f, "."+z.zone) {
			return nil, fmt.Errorf("providers: name %q is not in zone %q", n, z.zone)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

func fqdn(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func single(a netip.Addr) []netip.Addr {
	if !a.IsValid() {
		return nil
	}
	return []netip.Addr{a}
}

func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

func fmtAddrs(as []netip.Addr) string {
	if len(as) == 0 {
		return "none"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// fmtRRset writes an RRset as "{192.0.2.1, 192.0.2.11} TTL 1m0s", or "none".
func fmtRRset(r dnsrec.RRset) string {
	if len(r.Addrs) == 0 {
		return "none"
	}
	return fmt.Sprintf("{%s} TTL %s", fmtAddrs(r.Addrs), r.TTL)
}
