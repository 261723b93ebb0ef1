package dnsprop

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Sets are the complete A and AAAA address sets of a name. An empty set means
// the name must have no record of that type (NODATA or NXDOMAIN). TTL, when
// not 0, is the TTL authoritative servers must serve the records with (the
// manual provider checks what the operator typed); resolvers count TTLs down,
// so it is not checked on them.
type Sets struct {
	A, AAAA []netip.Addr
	TTL     time.Duration
}

// SetsOf splits addresses into A and AAAA by family (the CLI's --expect).
func SetsOf(addrs []netip.Addr) Sets {
	var s Sets
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			s.A = append(s.A, a)
		} else {
			s.AAAA = append(s.AAAA, a)
		}
	}
	return s
}

// Of is the set of record type qtype: "A" or "AAAA".
func (s Sets) Of(qtype string) []netip.Addr {
	if qtype == "AAAA" {
		return s.AAAA
	}
	return s.A
}

// State is what one server serves for one (name, type) compared with the old and
// the expected set.
type State string

const (
	// StateNew: exactly the expected set (for an empty expected set: no record).
	StateNew State = "new"
	// StateOld: exactly the set being replaced (never an empty one).
	StateOld State = "old"
	// StateOther: records, but neither exactly the old nor exactly the new set
	// (both sets at once, part of one, a foreign address, or any record where
	// none is expected).
	StateOther State = "other"
	// StateMissing: no record (NODATA or NXDOMAIN) where the expected set is not empty.
	StateMissing State = "missing"
	// StateUnknown: no usable answer (timeout, SERVFAIL, REFUSED, no AA flag from
	// an authoritative server, ...). Never counts as converged.
	StateUnknown State = "unknown"
)

// Roles of a server in an Observation.
const (
	RoleAuthoritative = "authoritative"
	RoleResolver      = "resolver"
)

// classify compares the set a server serves with the old and expected sets, as
// whole sets both ways (order and duplicates do not matter).
func classify(got, old, want []netip.Addr) State {
	switch {
	case sameSet(got, want):
		return StateNew
	case len(got) == 0:
		return StateMissing
	case sameSet(got, old):
		return StateOld
	default:
		return StateOther
	}
}

func sameSet(a, b []netip.Addr) bool {
	return slices.Equal(normSet(a), normSet(b))
}

// normSet returns the sorted, de-duplicated, unmapped copy of a.
func normSet(a []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(a))
	for _, x := range a {
		out = append(out, x.Unmap())
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return slices.Compact(out)
}

// Observation is one answer (or failure) of one server for one (name, type).
type Observation struct {
	Server netip.AddrPort
	Role   string // RoleAuthoritative or RoleResolver
	Name   string // fully qualified, lower case
	Type   string // "A" or "AAAA"
	State  State
	Addrs  []netip.Addr // sorted
	Want   []netip.Addr // the expected set, sorted; empty: no record expected
	// WantTTL is the TTL an authoritative server must serve Want with (0: any).
	WantTTL time.Duration
	TTL     time.Duration // TTL of the answer; for no record, the negative TTL (SOA); resolvers count it down
	Serial  uint32        // authoritative only: the SOA serial the server served in the same round
	Err     string        // why the state is unknown
	At      time.Time     // when the answer arrived
	// Stable: the answer is not the expected one and will not change by
	// itself. A resolver served it again after the TTL of its first copy ran
	// out (it fetched it afresh); an authoritative server served it twice at
	// the newest SOA serial any of the servers serves. Set in Reports only.
	Stable bool
}

// TTLLeft is how much of the observation's TTL is left at now.
func (o *Observation) TTLLeft(now time.Time) time.Duration {
	if o.At.IsZero() {
		return 0
	}
	return max(0, o.At.Add(o.TTL).Sub(now))
}

// What says what the server serves, measured against what is expected:
// "new", "missing", "old {192.0.2.1}, want {192.0.2.2}",
// "other {2001:db8::20}, want none" or "unknown (SERVFAIL)".
func (o *Observation) What() string {
	switch o.State {
	case StateNew, StateMissing:
		return string(o.State)
	case StateUnknown:
		return "unknown (" + o.Err + ")"
	}
	if o.WantTTL > 0 {
		return fmt.Sprintf("%s %s ttl %s, want %s ttl %s", o.State, setString(o.Addrs), o.TTL, setString(o.Want), o.WantTTL)
	}
	return fmt.Sprintf("%s %s, want %s", o.State, setString(o.Addrs), setString(o.Want))
}

// setString is "{a, b}", or "none" for the empty set.
func setString(a []netip.Addr) string {
	if len(a) == 0 {
		return "none"
	}
	return "{" + strings.Join(addrStrings(a), ", ") + "}"
}

// describe is the observation in the words of Report.Lagging and of the
// not-converged error.
func (o *Observation) describe(now time.Time) string {
	s := fmt.Sprintf("%s %s %s %s", serverString(o.Server), o.Name, o.Type, o.What())
	switch {
	case o.State == StateUnknown:
	case o.Stable && o.Role == RoleResolver:
		s += " (stable: served again after its TTL ran out)"
	case o.Stable:
		s += fmt.Sprintf(" (stable: at serial %d, the newest)", o.Serial)
	case o.Role == RoleResolver:
		s += fmt.Sprintf(" (ttl %s left)", roundSeconds(o.TTLLeft(now)))
	}
	return s
}

func roundSeconds(d time.Duration) time.Duration {
	return d.Round(time.Second)
}

type observationJSON struct {
	Server string   `json:"server"`
	Role   string   `json:"role"`
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	State  State    `json:"state"`
	Addrs  []string `json:"addrs"`
	Want   []string `json:"want"`
	TTL    int64    `json:"ttl"`
	Serial uint32   `json:"serial,omitempty"`
	Stable bool     `json:"stable,omitempty"`
	Error  string   `json:"error,omitempty"`
	Time   string   `json:"time"`
}

// MarshalJSON writes TTL in whole seconds, addresses as strings and the time
// in RFC 3339 UTC (the names of the README's "watch --json").
func (o Observation) MarshalJSON() ([]byte, error) {
	j := observationJSON{
		Server: o.Server.String(), Role: o.Role, Name: o.Name, Type: o.Type, State: o.State,
		Addrs: addrStrings(o.Addrs), Want: addrStrings(o.Want), TTL: seconds(o.TTL),
		Serial: o.Serial, Stable: o.Stable, Error: o.Err, Time: jsonTime(o.At),
	}
	return json.Marshal(j)
}

// seconds is d in whole seconds, rounded.
func seconds(d time.Duration) int64 { return int64(roundSeconds(d) / time.Second) }

// jsonTime is t in RFC 3339 UTC, "" for the zero time.
func jsonTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func addrStrings(a []netip.Addr) []string {
	out := make([]string, 0, len(a))
	for _, x := range a {
		out = append(out, x.String())
	}
	return out
}

// Report is the state of every server at one moment.
type Report struct {
	Converged bool
	// StableButWrong: not converged, and every answer that is not the
	// expected one is Stable (no unknown answer, no lagging serial): waiting
	// longer will not help until the records themselves change.
	StableButWrong bool
	Types          []string      // the record types watched: "A", "AAAA" or both
	Observations   []Observation // authoritative servers first, then resolvers; names and types in order
	// ETA of full convergence: the largest TTL left on a resolver answer that is
	// not yet the new one and not stable (0 when nothing is waiting on a TTL).
	ETA time.Duration
	// Lagging says what does not serve the expected state, one line each, e.g.
	// `secondary 127.0.0.32 serves serial 3, primary 4` or
	// `127.0.0.41 mail.example.org. A old (ttl 12s left)`. It lists every such
	// server, also those a met quorum does not need.
	Lagging []string
	At      time.Time              // when the report was made
	Queries map[netip.AddrPort]int // DNS messages sent to each server so far (retries and TCP included)
}

type reportJSON struct {
	Converged      bool           `json:"converged"`
	StableButWrong bool           `json:"stable_but_wrong"`
	Types          []string       `json:"types"`
	ETA            int64          `json:"eta"`
	Lagging        []string       `json:"lagging"`
	Time           string         `json:"time"`
	Queries        map[string]int `json:"queries"`
	Observations   []Observation  `json:"observations"`
}

// MarshalJSON writes ETA in whole seconds.
func (r Report) MarshalJSON() ([]byte, error) {
	j := reportJSON{
		Converged: r.Converged, StableButWrong: r.StableButWrong, Types: r.Types, ETA: seconds(r.ETA),
		Lagging: r.Lagging, Time: jsonTime(r.At), Queries: map[string]int{}, Observations: r.Observations,
	}
	if j.Types == nil {
		j.Types = []string{}
	}
	if j.Lagging == nil {
		j.Lagging = []string{}
	}
	if j.Observations == nil {
		j.Observations = []Observation{}
	}
	for k, v := range r.Queries {
		j.Queries[k.String()] = v
	}
	return json.Marshal(j)
}

// TotalQueries is the sum of Queries.
func (r *Report) TotalQueries() int {
	n := 0
	for _, v := range r.Queries {
		n += v
	}
	return n
}

// Event kinds passed to a progress function.
const (
	// EventChange: one observation changed state, addresses or error (or is the first for its server, name and type).
	EventChange = "change"
	// EventProgress: a round of questions finished, or about a second passed
	// while waiting (so a live view can count TTLs down); Report is the state now.
	// View does not write these as JSON lines.
	EventProgress = "progress"
	// EventSummary: the wait is over (converged, or ctx done); Report is final.
	EventSummary = "summary"
)

// Event is a progress notification from a wait. Obs is set for "change",
// Report for "progress" and "summary".
type Event struct {
	Kind   string
	Obs    *Observation
	Report *Report
}

// MarshalJSON writes {"kind":...,"obs":...} or {"kind":...,"report":...}.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Kind   string       `json:"kind"`
		Obs    *Observation `json:"obs,omitempty"`
		Report *Report      `json:"report,omitempty"`
	}{e.Kind, e.Obs, e.Report})
}

// ErrNoResolvers is returned when resolvers are needed (to wait on them, or to
// discover the zone or its authoritative servers) and none were given.
var ErrNoResolvers = errors.New("dnsprop: no resolvers given")

// ErrNotAuthoritative is wrapped by Observe when a server given or found as
// authoritative answers without the AA flag.
var ErrNotAuthoritative = errors.New("answer without AA flag")

// NotConvergedError is returned when ctx ends before convergence. It wraps
// ctx.Err() and carries the last report.
type NotConvergedError struct {
	Report *Report
	Err    error // ctx.Err()
}

func (e *NotConvergedError) Error() string {
	what := "nothing observed yet"
	if e.Report != nil && len(e.Report.Lagging) > 0 {
		what = strings.Join(e.Report.Lagging, "; ")
	}
	return fmt.Sprintf("dnsprop: not converged: %s: %v", what, e.Err)
}

func (e *NotConvergedError) Unwrap() error { return e.Err }
