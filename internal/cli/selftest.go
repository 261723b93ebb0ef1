package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsprop"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/scheduler"
)

// selftestLabel is the scratch name's default, relative to the zone. It is
// a valid host name: BIND (check-names) and some APIs refuse an A record at
// a name with an underscore.
const selftestLabel = "cutover-selftest"

// The selftest's addresses are documentation ones (RFC 5737, RFC 3849):
// nothing is ever reached through them.
var (
	selftestA1   = netip.MustParseAddr("192.0.2.1")
	selftestA2   = netip.MustParseAddr("192.0.2.2")
	selftestNewA = netip.MustParseAddr("198.51.100.2")
	selftestAAAA = netip.MustParseAddr("2001:db8::2")
)

// selftestPoll is how often the authoritative servers are asked while a
// change has not reached them.
const selftestPoll = 200 * time.Millisecond

// cmdSelftest is `cutover dns selftest FILE [--name LABEL] [--json]`: the
// provider conformance run on the user's own account, on a scratch name.
func cmdSelftest(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	label := fs.String("name", selftestLabel, "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := refuseTestNow(); err != nil {
		return err
	}
	cfg, err := loadConfig(e, pos[0], false)
	if err != nil {
		return err
	}
	name, err := selftestName(*label, cfg.DNS.Zone)
	if err != nil {
		return &usageError{err: err, hint: fmt.Sprintf("cutover dns selftest %s --name %s", cfg.File, selftestLabel)}
	}
	if typ := cfg.Provider().Type; typ == "manual" {
		return &usageError{err: fmt.Errorf("dns selftest: provider type %q changes nothing by itself: there is nothing to test", typ),
			hint: "the selftest is for the API provider types: cutover providers"}
	}
	d, err := openDNS(cfg, e.stdout)
	if err != nil {
		return err
	}
	// The state dir's lock keeps a cutover run from changing the zone
	// meanwhile; the journal records the result.
	s, err := openSession(e, cfg, "cutover dns selftest "+cfg.File)
	if err != nil {
		return err
	}
	defer s.close()
	st := &selftest{zone: d.zone, checker: checker(cfg), name: name, lowTTL: cfg.DNS.LoweredTTL, timeout: cfg.DNS.ConvergeTimeout}
	rep, err := st.run(ctx)
	if rep != nil {
		rep.Provider = cfg.Provider().Type
		eng := &scheduler.Engine{Config: cfg, Journal: s.journal, Clock: scheduler.SystemClock{}, Out: e.stdout, Events: s.events}
		rec := scheduler.SelftestRecord{At: e.now(), Provider: rep.Provider, Zone: cfg.DNS.Zone, Passed: rep.Passed}
		if jerr := eng.RecordSelftest(rec); jerr != nil {
			return errors.Join(err, journalError(cfg, jerr))
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(rep); jerr != nil {
				return jerr
			}
		} else {
			rep.write(e.stdout)
		}
	}
	if err != nil {
		if errors.Is(err, errExists) {
			return &usageError{err: err, hint: fmt.Sprintf("cutover dns selftest %s --name %s-2", cfg.File, strings.TrimSuffix(name, "."+cfg.DNS.Zone))}
		}
		return err
	}
	return nil
}

// noteSelftest tells the plan's reader to run the selftest when the journal
// holds no passed one for the configured provider and zone.
func noteSelftest(w io.Writer, cfg *config.Config) {
	typ := cfg.Provider().Type
	if typ == "manual" {
		return
	}
	if j, err := scheduler.ReadJournal(cfg); err == nil && j.SelftestPassed(typ, cfg.DNS.Zone) {
		return
	}
	fmt.Fprintf(w, "\nnote: the journal holds no passed selftest of provider %s on zone %s; before the window, run: cutover dns selftest %s\n",
		typ, cfg.DNS.Zone, cfg.File)
}

// selftestName makes label (relative to zone, or a name inside it) a fully
// qualified name strictly inside zone.
func selftestName(label, zone string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(label))
	if _, ok := dns.IsDomainName(n); !ok || n == "" || n == "." {
		return "", fmt.Errorf("dns selftest: --name %q is not a domain name", label)
	}
	if !dns.IsFqdn(n) {
		n += "." + zone
	}
	if !dns.IsSubDomain(zone, n) || n == zone {
		return "", fmt.Errorf("dns selftest: --name %q is not a name inside zone %q", label, zone)
	}
	return n, nil
}

// errExists is wrapped when the scratch name already has records.
var errExists = errors.New("already exists")

// selftest runs the operations on one scratch name of one zone.
type selftest struct {
	zone    *providers.Zone
	checker *dnsprop.Checker // finds the zone's authoritative servers
	name    string           // FQDN inside the zone
	lowTTL  time.Duration    // [dns] lowered_ttl
	timeout time.Duration    // per change, until every authoritative server serves it
}

// selftestReport is what the selftest found.
type selftestReport struct {
	Provider      string               `json:"provider"`
	Zone          string               `json:"zone"`
	Name          string               `json:"name"`
	Authoritative []string             `json:"authoritative"` // the servers asked
	Ops           []selftestOp         `json:"operations"`
	LowestTTL     seconds              `json:"lowest_ttl_accepted"` // 0: the lowered TTL was not accepted
	Atomic        providers.Capability `json:"atomic"`              // as the provider type declares it
	Passed        bool                 `json:"passed"`
	Cleanup       string               `json:"cleanup"`
}

// selftestOp is one operation and how it went.
type selftestOp struct {
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
type selftestStep struct {
	op   string
	want dnsrec.Name
}

func (s *selftest) steps() []selftestStep {
	high := max(time.Hour, 2*s.lowTTL) // a TTL the lowering lowers
	set := func(ttl time.Duration, as ...netip.Addr) dnsrec.RRset { return dnsrec.RRset{Addrs: as, TTL: ttl} }
	n := func(a, aaaa dnsrec.RRset) dnsrec.Name { return dnsrec.Name{Name: s.name, A: a, AAAA: aaaa} }
	return []selftestStep{
		{"create", n(set(high, selftestA1, selftestA2), dnsrec.RRset{})},
		{"lower-ttl", n(set(s.lowTTL, selftestA1, selftestA2), dnsrec.RRset{})},
		{"replace", n(set(s.lowTTL, selftestNewA), set(s.lowTTL, selftestAAAA))},
		{"remove-aaaa", n(set(s.lowTTL, selftestNewA), dnsrec.RRset{})},
		{"delete", n(dnsrec.RRset{}, dnsrec.RRset{})},
	}
}

// run refuses a name that exists, then runs every step, each checked
// through the provider (read-back) and every authoritative server, and
// stops at the first failure. Whatever happened, it then removes what it
// created, on a context of its own (ctx may be cancelled by SIGINT). The
// report is returned also with the error.
func (s *selftest) run(ctx context.Context) (*selftestReport, error) {
	rep := &selftestReport{Zone: s.zone.Name(), Name: s.name, Atomic: s.zone.Capabilities().Atomic}
	snap, err := s.zone.Snapshot(ctx, []string{s.name})
	if err != nil {
		return nil, fmt.Errorf("dns selftest: %w", err)
	}
	if n := snap.Names[0]; n.A.Exists() || n.AAAA.Exists() {
		return nil, fmt.Errorf("dns selftest: %s %w (%s): the selftest needs a name of its own", s.name, errExists, describeName(n))
	}
	servers, err := s.servers(ctx)
	if err != nil {
		return nil, err
	}
	for _, sv := range servers {
		rep.Authoritative = append(rep.Authoritative, sv.String())
	}
	defer func() { rep.Cleanup = s.cleanup(context.WithoutCancel(ctx)) }()
	have := snap
	for _, st := range s.steps() {
		op := selftestOp{Op: st.op, Want: describeName(st.want)}
		want := &dnsrec.Snapshot{Zone: snap.Zone, Names: []dnsrec.Name{st.want}}
		err := s.zone.Change(ctx, st.op, have, want)
		if err == nil {
			have = want
			var d time.Duration
			d, err = s.awaitAuthoritative(ctx, servers, st.op, st.want)
			op.Delay = seconds(d)
		}
		if err != nil {
			op.Error = err.Error()
			rep.Ops = append(rep.Ops, op)
			return rep, fmt.Errorf("dns selftest: %s failed: %w", st.op, err)
		}
		op.OK = true
		rep.Ops = append(rep.Ops, op)
		if st.op == "lower-ttl" {
			rep.LowestTTL = seconds(s.lowTTL)
		}
	}
	rep.Passed = true
	return rep, nil
}

// servers returns the zone's authoritative servers (configured or found).
func (s *selftest) servers(ctx context.Context) ([]netip.AddrPort, error) {
	f, err := s.checker.Observe(ctx, []string{s.name})
	if err != nil {
		return nil, fmt.Errorf("dns selftest: authoritative servers: %w", err)
	}
	out := make([]netip.AddrPort, len(f.Servers))
	for i, sv := range f.Servers {
		out[i] = sv.Addr
	}
	return out, nil
}

// awaitAuthoritative asks each server on its own until it serves want
// (addresses and TTL) and returns how long the slowest took.
func (s *selftest) awaitAuthoritative(ctx context.Context, servers []netip.AddrPort, op string, want dnsrec.Name) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	pending := servers
	last := map[netip.AddrPort]string{}
	for {
		var still []netip.AddrPort
		for _, sv := range pending {
			c := &dnsprop.Checker{Zone: s.zone.Name(), Authoritative: []netip.AddrPort{sv}}
			f, err := c.Observe(ctx, []string{s.name})
			switch {
			case err != nil:
				last[sv] = err.Error()
			case sameName(f.Names[0], want):
				continue
			default:
				last[sv] = "serves " + describeName(f.Names[0])
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
			return 0, fmt.Errorf("dns selftest: after %s, %s not served within %s: %s: %w",
				op, describeName(want), s.timeout, strings.Join(why, "; "), context.Cause(ctx))
		case <-time.After(selftestPoll):
		}
	}
}

// cleanup removes what the selftest left at its name and says so.
func (s *selftest) cleanup(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	snap, err := s.zone.Snapshot(ctx, []string{s.name})
	if err != nil {
		return fmt.Sprintf("FAILED: could not read %s back: %v; remove its A and AAAA records by hand", s.name, err)
	}
	n := snap.Names[0]
	if !n.A.Exists() && !n.AAAA.Exists() {
		return "nothing left behind"
	}
	none := &dnsrec.Snapshot{Zone: snap.Zone, Names: []dnsrec.Name{{Name: s.name}}}
	if err := s.zone.Change(ctx, "cleanup", snap, none); err != nil {
		return fmt.Sprintf("FAILED: %s still holds %s: %v; remove them by hand", s.name, describeName(n), err)
	}
	return fmt.Sprintf("removed %s; nothing left behind", describeName(n))
}

func sameName(got, want dnsrec.Name) bool {
	same := func(g, w dnsrec.RRset) bool {
		if dnsrec.AddrList(g.Addrs) != dnsrec.AddrList(w.Addrs) {
			return false
		}
		return !w.Exists() || g.TTL == w.TTL
	}
	return same(got.A, want.A) && same(got.AAAA, want.AAAA)
}

// describeName is "A {192.0.2.1, 192.0.2.2} TTL 1h, no AAAA".
func describeName(n dnsrec.Name) string {
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

func (r *selftestReport) write(w io.Writer) {
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
