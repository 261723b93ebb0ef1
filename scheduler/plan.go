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

// MakePlan computes the timeline. It never performs I/O.
func MakePlan(in Input) (*Plan, error) {
	cfg := in.Config
	p := &Plan{Config: cfg.File, Now: in.Now, CutoverAt: cfg.CutoverAt, Offline: in.Facts == nil, Provider: in.Provider}

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
	var servedTTL time.Duration
	addsAAAA := false
	if in.Facts != nil {
		for _, n := range in.Facts.Names {
			servedTTL = max(servedTTL, n.A.TTL, n.AAAA.TTL)
			if cfg.New.Address6.IsValid() && !n.AAAA.Exists() {
				addsAAAA = true
			}
			if !n.A.Exists() {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s has no A record today; the swap will create it", n.Name))
			}
			if msg, key := notAtOld(cfg, n); msg != "" {
				return nil, &PlanError{Msg: msg,
					Hint: "check [old] " + key + ", or whether the records were already moved (cutover dns show " + cfg.File + ")"}
			}
			if !cfg.New.Address6.IsValid() && n.AAAA.Exists() {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s has AAAA %s but [new] has no address6: the swap removes the AAAA records", n.Name, dnsrec.AddrList(n.AAAA.Addrs)))
			}
		}
		p.MaxTTL = servedTTL
		if addsAAAA {
			p.MaxTTL = max(p.MaxTTL, in.Facts.NegativeTTL)
			p.Warnings = append(p.Warnings, fmt.Sprintf("the new host adds AAAA records that do not exist today: caches may hold the negative answer for up to %s (the zone's negative-caching TTL)", config.FormatDuration(in.Facts.NegativeTTL)))
		}
		p.Margin = Margin(p.MaxTTL)
	}

	cut := cfg.CutoverAt
	now := in.Now
	step := func(s PlannedStep) { p.Steps = append(p.Steps, s) }
	names := strings.Join(cfg.DNS.Names, ", ")

	// preflight
	step(PlannedStep{Name: Preflight, Earliest: now, Why: "as soon as the plan is confirmed", Action: []string{
		fmt.Sprintf("connect to old %s and new %s over SSH, host keys checked against %s", sshTarget(cfg.Old), sshTarget(cfg.New), cfg.SSH.KnownHosts),
		"check tar and rsync on both hosts, free space on new, clock skew",
		fmt.Sprintf("snapshot the A/AAAA records of %s at provider %q (%s)", names, cfg.DNS.Provider, in.Provider.Type),
	}})

	// lower-ttl
	lower := PlannedStep{Name: LowerTTL, Earliest: now, After: Preflight}
	switch {
	case in.Facts == nil:
		lower.Why = "unknown when it must happen: the served TTLs were not looked up (--offline)"
		lower.Action = []string{fmt.Sprintf("set the TTL of the A/AAAA records of %s to %s", names, config.FormatDuration(cfg.DNS.LoweredTTL))}
	default:
		lower.Deadline = cut.Add(-(p.MaxTTL + p.Margin))
		lower.Why = fmt.Sprintf("at least the longest TTL served (%s) + margin (%s) before the window, so every cache holds the lowered TTL when it opens", config.FormatDuration(p.MaxTTL), config.FormatDuration(p.Margin))
		for _, n := range in.Facts.Names {
			for _, rr := range []struct {
				typ string
				set dnsrec.RRset
			}{{"A", n.A}, {"AAAA", n.AAAA}} {
				if !rr.set.Exists() {
					continue
				}
				if rr.set.TTL <= cfg.DNS.LoweredTTL {
					lower.Action = append(lower.Action, fmt.Sprintf("%s %s %s: TTL already %s, left as it is", n.Name, rr.typ, dnsrec.AddrList(rr.set.Addrs), config.FormatDuration(rr.set.TTL)))
					continue
				}
				lower.Action = append(lower.Action, fmt.Sprintf("%s %s %s: TTL %s -> %s", n.Name, rr.typ, dnsrec.AddrList(rr.set.Addrs), config.FormatDuration(rr.set.TTL), config.FormatDuration(cfg.DNS.LoweredTTL)))
			}
		}
		if servedTTL <= cfg.DNS.LoweredTTL {
			lower.Skip = "every TTL served is already at or below lowered_ttl"
		}
		if lower.Deadline.Before(now) {
			p.TooLate = true
			p.CachesUntil = now.Add(p.MaxTTL + p.Margin)
			p.EarliestSafe = p.CachesUntil.Truncate(time.Minute).Add(time.Minute)
			p.Warnings = append(p.Warnings, fmt.Sprintf("too late to lower the TTL in time: it had to be lowered by %s; caches may serve the old address until %s. Earliest safe cutover_at: %s (or run with --accept-slow-propagation)",
				utc(lower.Deadline), utc(p.CachesUntil), p.EarliestSafe.UTC().Format(time.RFC3339)))
		}
	}
	step(lower)

	// initial-sync
	var initial, all []string
	for _, s := range cfg.Sync {
		all = append(all, s.Path)
		if s.Initial {
			initial = append(initial, s.Path)
		}
	}
	is := PlannedStep{Name: InitialSync, Earliest: now, After: LowerTTL, Why: "as early as allowed, so that the window only copies the delta"}
	if len(initial) == 0 {
		is.Skip = "no [[sync]] entry has initial = true"
	} else {
		is.Action = []string{fmt.Sprintf("copy %s from old to new (%s transfer, nothing deleted)", strings.Join(initial, ", "), cfg.SSH.Transfer)}
	}
	step(is)

	step(hookStep(Prepare, cfg.Hooks.Prepare, now, InitialSync, "as early as allowed; the new host stays inactive"))

	dis := hookStep(Disable, cfg.Hooks.Disable, cut, "", "cutover_at: the window opens")
	step(dis)
	if cfg.Hooks.Disable == nil {
		p.Warnings = append(p.Warnings, "no [hooks] disable: the service keeps running on old during the final sync, and changes after it are lost")
	}

	fs := PlannedStep{Name: FinalSync, After: Disable, Why: "right after disable"}
	for _, s := range cfg.Sync {
		del := ""
		if s.Delete {
			del = ", deleting what is gone on old"
		}
		fs.Action = append(fs.Action, fmt.Sprintf("copy %s from old to new (%s transfer%s)", s.Path, cfg.SSH.Transfer, del))
	}
	if len(cfg.Sync) == 0 {
		fs.Skip = "no [[sync]] entries"
	}
	step(fs)

	v := PlannedStep{Name: Verify, After: FinalSync, Why: "right after the final sync; a difference stops the run before DNS changes"}
	for _, s := range cfg.Sync {
		v.Action = append(v.Action, fmt.Sprintf("compare %s on both hosts (%s)", s.Path, verifyWhat(s.Verify)))
	}
	if len(cfg.Sync) == 0 {
		v.Skip = "no [[sync]] entries"
	}
	step(v)

	fx := PlannedStep{Name: Fixup, After: Verify, Why: "right after verify"}
	for _, s := range cfg.Sync {
		if s.Owner != "" {
			fx.Action = append(fx.Action, fmt.Sprintf("on new: chown -R %s %s, then check nothing under it has another owner", s.Owner, s.Path))
		}
	}
	if len(fx.Action) == 0 {
		fx.Skip = "no [[sync]] entry sets owner"
	}
	step(fx)

	sw := PlannedStep{Name: SwapDNS, After: Fixup, Why: "once the new host holds verified data"}
	for _, n := range cfg.DNS.Names {
		sw.Action = append(sw.Action, fmt.Sprintf("%s A -> %s (TTL %s)", n, cfg.New.Address, config.FormatDuration(cfg.DNS.LoweredTTL)))
		if cfg.New.Address6.IsValid() {
			sw.Action = append(sw.Action, fmt.Sprintf("%s AAAA -> %s (TTL %s)", n, cfg.New.Address6, config.FormatDuration(cfg.DNS.LoweredTTL)))
		} else {
			sw.Action = append(sw.Action, fmt.Sprintf("%s AAAA: removed (the new host has no address6)", n))
		}
	}
	step(sw)

	auth := "the zone's NS servers (discovered through the resolvers)"
	if len(cfg.DNS.Authoritative) > 0 {
		auth = serverList(cfg.DNS.Authoritative)
	}
	step(PlannedStep{Name: AwaitAuthoritative, After: SwapDNS, Why: "activate never runs before DNS points at the new host", Action: []string{
		fmt.Sprintf("wait until every address of %s answers the new A/AAAA with the AA flag and agreeing SOA serials", auth),
	}})

	quorum := "all"
	if cfg.DNS.Quorum > 0 {
		quorum = fmt.Sprint(cfg.DNS.Quorum)
	}
	expect := cfg.DNS.LoweredTTL
	if addsAAAA && in.Facts != nil {
		expect = max(expect, in.Facts.NegativeTTL)
	}
	step(PlannedStep{Name: AwaitResolvers, After: AwaitAuthoritative, Why: fmt.Sprintf("caches expire within %s of the swap", config.FormatDuration(expect)), Action: []string{
		fmt.Sprintf("wait until %s of %s serve the new A/AAAA (give up after %s)", quorum, serverList(cfg.DNS.Resolvers), config.FormatDuration(cfg.DNS.ConvergeTimeout)),
	}})

	act := hookStep(Activate, cfg.Hooks.Activate, time.Time{}, AwaitResolvers, "once DNS points at the new host")
	step(act)
	if cfg.Hooks.Activate == nil {
		p.Warnings = append(p.Warnings, "no [hooks] activate: start the service on the new host yourself once DNS has converged")
	}
	if cfg.Hooks.Reenable == nil {
		p.Warnings = append(p.Warnings, "no [hooks] reenable: a rollback cannot restart the service on old")
	}

	rt := PlannedStep{Name: RestoreTTL, After: Activate}
	switch {
	case cfg.DNS.RestoreNever:
		rt.Skip = "restore_ttl_after = \"never\": the lowered TTL stays"
	default:
		rt.Why = fmt.Sprintf("%s after activate", config.FormatDuration(cfg.DNS.RestoreTTLAfter))
		if in.Facts == nil {
			rt.Action = []string{fmt.Sprintf("set the TTL of %s back to what it was before lower-ttl", names)}
		}
		for _, n := range inFacts(in.Facts) {
			rt.Action = append(rt.Action, fmt.Sprintf("%s A/AAAA: TTL %s -> %s", n.Name, config.FormatDuration(cfg.DNS.LoweredTTL), config.FormatDuration(max(n.A.TTL, n.AAAA.TTL))))
		}
	}
	step(rt)
	return p, nil
}

func inFacts(f *Facts) []dnsrec.Name {
	if f == nil {
		return nil
	}
	return f.Names
}

func hookStep(name StepName, h *config.Hook, at time.Time, after StepName, why string) PlannedStep {
	s := PlannedStep{Name: name, Earliest: at, After: after, Why: why}
	if h == nil {
		s.Skip = fmt.Sprintf("no [hooks] %s configured", name)
		return s
	}
	s.Action = []string{fmt.Sprintf("on %s: %s (timeout %s)", h.On, h.Run, config.FormatDuration(h.Timeout))}
	return s
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
