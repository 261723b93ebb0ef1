package scheduler

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
)

// Facts is what DNS serves now, as far as the plan needs it.
type Facts struct {
	Names       []dnsrec.Name `json:"names"`
	NegativeTTL time.Duration `json:"negative_ttl"` // how long a NODATA answer may be cached
}

// ProviderInfo is what the plan needs to know about the DNS provider.
type ProviderInfo struct {
	Type         string        `json:"type"`
	MinTTL       time.Duration `json:"min_ttl"`
	MinTTLReason string        `json:"min_ttl_reason,omitempty"`
}

// Input is everything Plan looks at.
type Input struct {
	Config   *config.Config
	Facts    *Facts // nil when planning offline
	Provider ProviderInfo
	Now      time.Time
}

// PlannedStep is one step of a plan.
type PlannedStep struct {
	Name StepName `json:"name"`
	// Earliest is when the step may start; zero when it cannot be known
	// (offline, or it follows a step of unknown duration: see After).
	Earliest time.Time `json:"earliest,omitzero"`
	// Deadline, when set, is when the step must have finished.
	Deadline time.Time `json:"deadline,omitzero"`
	After    StepName  `json:"after,omitempty"` // starts once this step is done
	Why      string    `json:"why"`             // why this time
	Action   []string  `json:"action"`          // what it will do, concretely
	Skip     string    `json:"skip,omitempty"`  // non-empty: nothing to do, and why
}

// Plan is the timeline of a cutover.
type Plan struct {
	Config    string        `json:"config"`
	Now       time.Time     `json:"now"`
	CutoverAt time.Time     `json:"cutover_at"`
	Offline   bool          `json:"offline"`
	Provider  ProviderInfo  `json:"provider"`
	MaxTTL    time.Duration `json:"max_ttl"` // longest TTL a cache may hold when lower-ttl runs
	Margin    time.Duration `json:"margin"`
	Steps     []PlannedStep `json:"steps"`
	Warnings  []string      `json:"warnings,omitempty"`
	// Downtime says what the service's downtime is made of, with or
	// without [bridge].
	Downtime string `json:"downtime"`
	// TooLate is set when the TTL cannot be lowered in time: caches may
	// serve the old address until CachesUntil, and EarliestSafe is the
	// earliest cutover_at that avoids that.
	TooLate      bool      `json:"too_late"`
	CachesUntil  time.Time `json:"caches_until,omitzero"`
	EarliestSafe time.Time `json:"earliest_safe,omitzero"`
}

// PlanError is a plan that cannot be carried out at all.
type PlanError struct{ Msg, Hint string }

func (e *PlanError) Error() string { return "plan: " + e.Msg }

// Margin is the extra time after the longest TTL before the window opens,
// covering clock skew between caches and the time the change takes to reach
// every authoritative server: a tenth of the TTL, at least 10 seconds.
func Margin(ttl time.Duration) time.Duration {
	return max(ttl/10, 10*time.Second).Round(time.Second)
}

// notAtOld says how a name's records do not point at the old host, and
// which [old] key that concerns; "" when they do. A name without an A
// RRset passes (the swap creates it), as does an AAAA when old has none.
func notAtOld(cfg *config.Config, n dnsrec.Name) (msg, key string) {
	if n.A.Exists() && !slices.Contains(n.A.Addrs, cfg.Old.Address) {
		return fmt.Sprintf("%s A is %s, which does not include old.address %s", n.Name, dnsrec.AddrList(n.A.Addrs), cfg.Old.Address), "address"
	}
	if cfg.Old.Address6.IsValid() && n.AAAA.Exists() && !slices.Contains(n.AAAA.Addrs, cfg.Old.Address6) {
		return fmt.Sprintf("%s AAAA is %s, which does not include old.address6 %s", n.Name, dnsrec.AddrList(n.AAAA.Addrs), cfg.Old.Address6), "address6"
	}
	return "", ""
}

// planner is what the steps' Plan functions read and add to while MakePlan
// walks the table.
type planner struct {
	in       Input
	cfg      *config.Config
	p        *Plan
	names    string // the [dns] names, for messages
	addsAAAA bool   // the swap creates AAAA RRsets that do not exist today
}

func (pl *planner) warn(w string) { pl.p.Warnings = append(pl.p.Warnings, w) }

// MakePlan computes the timeline: what DNS serves now decides how early the
// TTL must be lowered, then every step of the table says when it runs, why,
// and what it will do. It never performs I/O.
func MakePlan(in Input) (*Plan, error) {
	cfg := in.Config
	p := &Plan{Config: cfg.File, Now: in.Now, CutoverAt: cfg.CutoverAt, Offline: in.Facts == nil, Provider: in.Provider}
	pl := &planner{in: in, cfg: cfg, p: p, names: strings.Join(cfg.DNS.Names, ", ")}

	if in.Provider.MinTTL > 0 && cfg.DNS.LoweredTTL < in.Provider.MinTTL {
		why := ""
		if in.Provider.MinTTLReason != "" {
			why = " (" + in.Provider.MinTTLReason + ")"
		}
		return nil, &PlanError{
			Msg:  fmt.Sprintf("dns.lowered_ttl %s is below the minimum TTL of provider type %q, %s%s", config.FormatDuration(cfg.DNS.LoweredTTL), in.Provider.Type, config.FormatDuration(in.Provider.MinTTL), why),
			Hint: fmt.Sprintf("set lowered_ttl = %q in [dns]", config.FormatDuration(in.Provider.MinTTL)),
		}
	}

	// What caches may hold when the TTL is lowered.
	var records []dnsrec.Name // nil: not looked up
	if in.Facts != nil {
		records = known(in.Facts.Names)
		for _, n := range in.Facts.Names {
			if cfg.New.Address6.IsValid() && !n.AAAA.Exists() {
				pl.addsAAAA = true
			}
			if !n.A.Exists() {
				pl.warn(fmt.Sprintf("%s has no A record today; the swap will create it", n.Name))
			}
			if msg, key := notAtOld(cfg, n); msg != "" {
				return nil, &PlanError{Msg: msg,
					Hint: "check [old] " + key + ", or whether the records were already moved (cutover dns show " + cfg.File + ")"}
			}
			if !cfg.New.Address6.IsValid() && n.AAAA.Exists() {
				pl.warn(fmt.Sprintf("%s has AAAA %s but [new] has no address6: the swap removes the AAAA records", n.Name, dnsrec.AddrList(n.AAAA.Addrs)))
			}
		}
		p.MaxTTL = dnsrec.MaxTTL(in.Facts.Names)
		if p.MaxTTL > 0 && cfg.DNS.LoweredTTL >= p.MaxTTL {
			pl.warn(fmt.Sprintf("dns.lowered_ttl %s is not below the TTL served (at most %s): lower-ttl is skipped, and the swap keeps each record's served TTL",
				config.FormatDuration(cfg.DNS.LoweredTTL), config.FormatDuration(p.MaxTTL)))
		}
		if pl.addsAAAA {
			p.MaxTTL = max(p.MaxTTL, in.Facts.NegativeTTL)
			pl.warn(fmt.Sprintf("the new host adds AAAA records that do not exist today: caches may hold the negative answer for up to %s (the zone's negative-caching TTL)", config.FormatDuration(in.Facts.NegativeTTL)))
		}
		p.Margin = Margin(p.MaxTTL)
	}

	var prev StepName
	for _, s := range table(cfg) {
		ps := PlannedStep{Name: s.Name, After: prev, Skip: s.skip(cfg, records)}
		switch s.Start {
		case Ahead:
			ps.Earliest = in.Now
		case AtCutover:
			ps.Earliest, ps.After = cfg.CutoverAt, ""
		}
		s.Plan(pl, &ps)
		p.Steps = append(p.Steps, ps)
		prev = s.Name
	}
	if cfg.Hooks.Reenable == nil {
		pl.warn("no [hooks] reenable: a rollback cannot restart the service on old")
	}
	p.Downtime = expectedDowntime(pl)
	return p, nil
}

// known marks records as looked up: a nil slice (no names) becomes empty.
func known(records []dnsrec.Name) []dnsrec.Name {
	if records == nil {
		return []dnsrec.Name{}
	}
	return records
}

func verifyWhat(v string) string {
	if v == config.VerifyContent {
		return "paths, types, sizes, times, modes and sha256 of contents"
	}
	return "paths, types, sizes, times and modes"
}

func sshTarget(h config.Host) string {
	return fmt.Sprintf("%s@%s", h.SSHUser, netip.AddrPortFrom(h.Address, uint16(h.SSHPort)))
}

func serverList(as []netip.AddrPort) string {
	s := make([]string, len(as))
	for i, a := range as {
		if a.Port() == 53 {
			s[i] = a.Addr().String()
		} else {
			s[i] = a.String()
		}
	}
	return strings.Join(s, ", ")
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
