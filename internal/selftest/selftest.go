// Package selftest owns the provider selftest (`cutover dns selftest`): the
// conformance operations run on a scratch name of the user's real zone,
// each checked through the provider (read-back) and through every
// authoritative server, timing how long the change took to show there.
// Whatever happens, what it created is removed afterwards.
package selftest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsprop"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/providers"
)

// The selftest's addresses are documentation ones (RFC 5737, RFC 3849):
// nothing is ever reached through them.
var (
	addrA1   = netip.MustParseAddr("192.0.2.1")
	addrA2   = netip.MustParseAddr("192.0.2.2")
	addrNewA = netip.MustParseAddr("198.51.100.2")
	addrAAAA = netip.MustParseAddr("2001:db8::2")
)

// poll is how often the authoritative servers are asked while a change has
// not reached them.
const poll = 200 * time.Millisecond

// ErrExists is wrapped when the scratch name already has records.
var ErrExists = errors.New("already exists")

// Test is one selftest: a scratch name of one zone of one provider.
type Test struct {
	Zone       *providers.Zone
	Checker    *dnsprop.Checker // finds the zone's authoritative servers
	Name       string           // FQDN inside the zone
	LoweredTTL time.Duration    // [dns] lowered_ttl
	Timeout    time.Duration    // per change, until every authoritative server serves it
}

// Report is what the selftest found.
type Report struct {
	Provider      string               `json:"provider"`
	Zone          string               `json:"zone"`
	Name          string               `json:"name"`
	Authoritative []string             `json:"authoritative"` // the servers asked
	Ops           []Op                 `json:"operations"`
	LowestTTL     seconds              `json:"lowest_ttl_accepted"` // 0: the lowered TTL was not accepted
	Atomic        providers.Capability `json:"atomic"`              // as the provider type declares it
	Passed        bool                 `json:"passed"`
	Cleanup       string               `json:"cleanup"`
}

// Op is one operation and how it went.
type Op struct {
	Op    string  `json:"op"`
	Want  string  `json:"want"`
	OK    bool    `json:"ok"`
	Error string  `json:"error,omitempty"`
	Delay seconds `json:"authoritative_delay"` // until the last authoritative server served it
}

// seconds is a duration written as seconds in JSON.
type seconds time.Duration

func (s seconds) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(s).Seconds())
}

// step is one operation: the name's records after it.
type step struct {
	op   string
	want dnsrec.Name
}

func (s *Test) steps() []step {
	high := max(time.Hour, 2*s.LoweredTTL) // a TTL the lowering lowers
	set := func(ttl time.Duration, as ...netip.Addr) dnsrec.RRset { return dnsrec.RRset{Addrs: as, TTL: ttl} }
	n := func(a, aaaa dnsrec.RRset) dnsrec.Name { return dnsrec.Name{Name: s.Name, A: a, AAAA: aaaa} }
	return []step{
		{"create", n(set(high, addrA1, addrA2), dnsrec.RRset{})},
		{"lower-ttl", n(set(s.LoweredTTL, addrA1, addrA2), dnsrec.RRset{})},
		{"replace", n(set(s.LoweredTTL, addrNewA), set(s.LoweredTTL, addrAAAA))},
		{"remove-aaaa", n(set(s.LoweredTTL, addrNewA), dnsrec.RRset{})},
		{"delete", n(dnsrec.RRset{}, dnsrec.RRset{})},
	}
}

// Run refuses a name that exists, then runs every step, each checked
// through the provider (read-back) and every authoritative server, and
// stops at the first failure. Whatever happened, it then removes what it
// created, on a context of its own (ctx may be cancelled by SIGINT). The
// report is returned also with the error.
func (s *Test) Run(ctx context.Context) (_ *Report, err error) {
	rep := &Report{Zone: s.Zone.Name(), Name: s.Name, Atomic: s.Zone.Capabilities().Atomic}
	snap, err := s.Zone.Snapshot(ctx, []string{s.Name})
	if err != nil {
		return nil, fmt.Errorf("selftest: %w", err)
	}
	if n := snap.Names[0]; n.A.Exists() || n.AAAA.Exists() {
		return nil, fmt.Errorf("selftest: %s %w (%s): the selftest needs a name of its own", s.Name, ErrExists, Describe(n))
	}
	if types, err := s.otherTypes(ctx); err != nil {
		return nil, fmt.Errorf("selftest: %w", err)
	} else if len(types) > 0 {
		return nil, fmt.Errorf("selftest: %s %w (%s): the selftest needs a name of its own", s.Name, ErrExists, strings.Join(types, ", "))
	}
	servers, err := s.servers(ctx)
	if err != nil {
		return nil, err
	}
	for _, sv := range servers {
		rep.Authoritative = append(rep.Authoritative, sv.String())
	}
	defer func() {
		var cerr error
		if rep.Cleanup, cerr = s.cleanup(context.WithoutCancel(ctx)); cerr != nil {
			rep.Passed = false
			err = errors.Join(err, cerr)
		}
	}()
	have := snap
	for _, st := range s.steps() {
		op := Op{Op: st.op, Want: Describe(st.want)}
		want := &dnsrec.Snapshot{Zone: snap.Zone, Names: []dnsrec.Name{st.want}}
		err := s.Zone.Change(ctx, st.op, have, want)
		if err == nil {
			have = want
			var d time.Duration
			d, err = s.awaitAuthoritative(ctx, servers, st.op, st.want)
			op.Delay = seconds(d)
		}
		if err != nil {
			op.Error = err.Error()
			rep.Ops = append(rep.Ops, op)
			return rep, fmt.Errorf("selftest: %s failed: %w", st.op, err)
		}
		op.OK = true
		rep.Ops = append(rep.Ops, op)
		if st.op == "lower-ttl" {
			rep.LowestTTL = seconds(s.LoweredTTL)
		}
	}
	rep.Passed = true
	return rep, nil
}

// otherTypes returns the types of the records at the scratch name other
// than A and AAAA (which the snapshot reads), sorted: a TXT or MX there is
// someone's name too. The manual provider cannot list a zone, and has no
// selftest.
func (s *Test) otherTypes(ctx context.Context) ([]string, error) {
	recs, err := s.Zone.Client().GetRecords(ctx, s.Zone.Name())
	if err != nil {
		return nil, err
	}
	var types []string
	for _, r := range recs {
		rr := r.RR()
		if strings.EqualFold(libdns.AbsoluteName(rr.Name, s.Zone.Name()), s.Name) && rr.Type != "A" && rr.Type != "AAAA" && !slices.Contains(types, rr.Type) {
			types = append(types, rr.Type)
		}
	}
	slices.Sort(types)
	return types, nil
}

// servers returns the zone's authoritative servers (configured or found).
func (s *Test) servers(ctx context.Context) ([]netip.AddrPort, error) {
	f, err := s.Checker.Observe(ctx, []string{s.Name})
	if err != nil {
		return nil, fmt.Errorf("selftest: authoritative servers: %w", err)
	}
	out := make([]netip.AddrPort, len(f.Servers))
	for i, sv := range f.Servers {
		out[i] = sv.Addr
	}
	return out, nil
}

// awaitAuthoritative asks each server on its own until it serves want
// (addresses and TTL) and returns how long the slowest took.
func (s *Test) awaitAuthoritative(ctx context.Context, servers []netip.AddrPort, op string, want dnsrec.Name) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	start := time.Now()
	pending := servers
	last := map[netip.AddrPort]string{}
	for {
		var still []netip.AddrPort
		for _, sv := range pending {
			c := &dnsprop.Checker{Zone: s.Zone.Name(), Authoritative: []netip.AddrPort{sv}}
			f, err := c.Observe(ctx, []string{s.Name})
			switch {
			case err != nil:
				last[sv] = err.Error()
			case sameRecords(f.Names[0], want):
				continue
			default:
				last[sv] = "serves " + Describe(f.Names[0])
			}
			still = append(still, sv)
		}
		if len(still) == 0 {
			return time.Since(start), nil
		}
		pending = still
		select {
		case <-ctx.Done():
			var why []string
			for _, sv := range pending {
				why = append(why, fmt.Sprintf("%s %s", sv, last[sv]))
			}
			return 0, fmt.Errorf("selftest: after %s, %s not served within %s: %s: %w",
				op, Describe(want), s.Timeout, strings.Join(why, "; "), context.Cause(ctx))
		case <-time.After(poll):
		}
	}
}

// cleanup removes what the selftest left at its name and says so, for the
// report; the error says that something is left.
func (s *Test) cleanup(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	snap, err := s.Zone.Snapshot(ctx, []string{s.Name})
	if err != nil {
		msg := fmt.Sprintf("FAILED: could not read %s back: %v; remove its A and AAAA records by hand", s.Name, err)
		return msg, fmt.Errorf("selftest: cleanup: %w", err)
	}
	n := snap.Names[0]
	if !n.A.Exists() && !n.AAAA.Exists() {
		return "nothing left behind", nil
	}
	none := &dnsrec.Snapshot{Zone: snap.Zone, Names: []dnsrec.Name{{Name: s.Name}}}
	if err := s.Zone.Change(ctx, "cleanup", snap, none); err != nil {
		msg := fmt.Sprintf("FAILED: %s still holds %s: %v; remove them by hand", s.Name, Describe(n), err)
		return msg, fmt.Errorf("selftest: cleanup: %w", err)
	}
	return fmt.Sprintf("removed %s; nothing left behind", Describe(n)), nil
}

// sameRecords reports whether got holds want's addresses, and its TTLs.
func sameRecords(got, want dnsrec.Name) bool {
	same := func(g, w dnsrec.RRset) bool {
		if dnsrec.AddrList(g.Addrs) != dnsrec.AddrList(w.Addrs) {
			return false
		}
		return !w.Exists() || g.TTL == w.TTL
	}
	return same(got.A, want.A) && same(got.AAAA, want.AAAA)
}

// Describe is "A {192.0.2.1, 192.0.2.2} TTL 1h, no AAAA".
func Describe(n dnsrec.Name) string {
	var parts []string
	for _, s := range n.Sets() {
		if !s.Exists() {
			parts = append(parts, "no "+s.Type)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s TTL %s", s.Type, dnsrec.AddrList(s.Addrs), config.FormatDuration(s.TTL)))
	}
	return strings.Join(parts, ", ")
}

// Write prints the report for a terminal.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "selftest of provider %s on %s (zone %s)\n", r.Provider, r.Name, r.Zone)
	fmt.Fprintf(w, "authoritative servers: %s\n", strings.Join(r.Authoritative, ", "))
	for _, op := range r.Ops {
		if op.OK {
			fmt.Fprintf(w, "  ok    %-11s %s (authoritative after %s)\n", op.Op, op.Want, time.Duration(op.Delay).Round(time.Millisecond))
			continue
		}
		fmt.Fprintf(w, "  FAIL  %-11s %s: %s\n", op.Op, op.Want, op.Error)
	}
	if r.LowestTTL > 0 {
		fmt.Fprintf(w, "lowest TTL accepted: %s (lowered_ttl)\n", config.FormatDuration(time.Duration(r.LowestTTL)))
	} else {
		fmt.Fprintf(w, "lowest TTL accepted: lowered_ttl not confirmed\n")
	}
	atomic := "no"
	if r.Atomic.OK {
		atomic = "yes"
	}
	fmt.Fprintf(w, "atomic changes: %s (%s)\n", atomic, r.Atomic.Reason)
	fmt.Fprintf(w, "cleanup: %s\n", r.Cleanup)
	if r.Passed {
		fmt.Fprintln(w, "selftest passed")
	}
}
