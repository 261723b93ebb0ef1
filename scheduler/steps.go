// Package scheduler owns the cutover's timeline and its execution: the
// table of steps, Plan (a pure function from config, observed DNS facts and
// the current time to an ordered, timed plan), the engine that runs a plan
// step by step, the durable journal that makes a run resumable, rollback,
// and the event log. It talks to DNS providers, propagation checks and the
// hosts only through small interfaces it declares itself.
package scheduler

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/internal/shellquote"
)

// StepName names one step of a cutover.
type StepName string

// The steps, in the order they run. The window opens with Disable.
const (
	Preflight          StepName = "preflight"
	LowerTTL           StepName = "lower-ttl"
	InitialSync        StepName = "initial-sync"
	Prepare            StepName = "prepare"
	Disable            StepName = "disable"
	FinalSync          StepName = "final-sync"
	Verify             StepName = "verify"
	Fixup              StepName = "fixup"
	SwapDNS            StepName = "swap-dns"
	AwaitAuthoritative StepName = "await-authoritative"
	AwaitResolvers     StepName = "await-resolvers"
	Activate           StepName = "activate"
	RestoreTTL         StepName = "restore-ttl"
)

// Start says when a step may start relative to the steps before it and to
// cutover_at.
type Start int

const (
	// AfterPrevious: once the step before it is done (the plan cannot know
	// when that is).
	AfterPrevious Start = iota
	// Ahead: once the step before it is done, and as early as now: the
	// steps ahead of the window.
	Ahead
	// AtCutover: at cutover_at, whenever the steps before it finished:
	// the step that opens the window.
	AtCutover
)

// Step is everything about one step: the engine and the plan both read it.
// Adding a step is one entry in table plus its action.
type Step struct {
	Name StepName
	// Idempotent steps are rerun after an interruption; the others (hooks)
	// stop and ask, because running a service command twice may not be safe.
	Idempotent bool
	Summary    string
	Start      Start
	// NotBefore, if set, delays the step further, given what the journal
	// says (the engine's view; the plan explains it in Why).
	NotBefore func(cfg *config.Config, j *Journal) time.Time
	// WhileWaiting, if set, is what the engine does while it waits for the
	// step's time (until); it returns by then.
	WhileWaiting func(e *Engine, ctx context.Context, until time.Time)
	// Hook, if set, makes this a hook step: it runs the hook this returns,
	// and is skipped when it returns nil.
	Hook func(h *config.Hooks) *config.Hook
	// Skip, if set, says why the step has nothing to do, or "". records are
	// the names' A/AAAA data (the snapshot, or the facts the plan looked
	// up); nil when unknown.
	Skip func(cfg *config.Config, records []dnsrec.Name) string
	// Skipped, if set, is what the journal records when the engine skips it.
	Skipped func(e *Engine)
	// Plan fills in what the plan shows: why it runs when it does, what it
	// will do, a deadline, warnings. Name, After, Earliest and Skip are set.
	Plan func(pl *planner, ps *PlannedStep)
	// Do performs the step and returns a note for the journal. Hook steps
	// leave it nil: they run their hook.
	Do func(e *Engine, ctx context.Context, out io.Writer) (note string, err error)
}

// table is the cutover, in order, for a config. It reads like chatmail's
// migration guide. A mode that needs other steps or another order picks
// them here from cfg (which may be nil: the default list): [bridge]
// activates new before DNS moves (withBridge).
func table(cfg *config.Config) []Step {
	steps := []Step{
		{Name: Preflight, Idempotent: true, Summary: "check both hosts and DNS; snapshot the records", Start: Ahead,
			Plan: planPreflight, Do: (*Engine).preflight},
		{Name: LowerTTL, Idempotent: true, Summary: "lower the TTL of the A/AAAA records ahead of the window", Start: Ahead,
			Skip: skipLowerTTL, Skipped: (*Engine).lowered, Plan: planLowerTTL, Do: (*Engine).lowerTTL},
		{Name: InitialSync, Idempotent: true, Summary: "copy the large data ahead of the window", Start: Ahead,
			Skip: skipUnless(func(s config.Sync) bool { return s.Initial }, "no [[sync]] entry has initial = true"),
			Plan: planInitialSync, Do: hostsDo(func(h Hosts, ctx context.Context, out io.Writer) error { return h.Copy(ctx, out, false) })},
		hookStep(Step{Name: Prepare, Summary: "configure the new host, still inactive", Start: Ahead,
			Hook: func(h *config.Hooks) *config.Hook { return h.Prepare }},
			"as early as allowed; the new host stays inactive", ""),
		planFirst(planBeforeWindow, hookStep(Step{Name: Disable, Summary: "stop the service on the old host: the window opens", Start: AtCutover,
			NotBefore: cachesHoldLoweredTTL, WhileWaiting: (*Engine).beforeWindow, Hook: func(h *config.Hooks) *config.Hook { return h.Disable }},
			"cutover_at: the window opens", "no [hooks] disable: the service keeps running on old during the final sync, and changes after it are lost")),
		{Name: FinalSync, Idempotent: true, Summary: "copy everything again (the delta), with deletions",
			Skip: skipUnless(func(config.Sync) bool { return true }, "no [[sync]] entries"),
			Plan: planFinalSync, Do: hostsDo(func(h Hosts, ctx context.Context, out io.Writer) error { return h.Copy(ctx, out, true) })},
		{Name: Verify, Idempotent: true, Summary: "compare both hosts' copies",
			Skip: skipUnless(func(config.Sync) bool { return true }, "no [[sync]] entries"),
			Plan: planVerify, Do: hostsDo(Hosts.Verify)},
		{Name: Fixup, Idempotent: true, Summary: "fix and check ownership on the new host",
			Skip: skipUnless(func(s config.Sync) bool { return s.Owner != "" }, "no [[sync]] entry sets owner"),
			Plan: planFixup, Do: hostsDo(Hosts.Fixup)},
		{Name: SwapDNS, Idempotent: true, Summary: "point A/AAAA at the new host",
			Plan: planSwap, Do: (*Engine).swap},
		{Name: AwaitAuthoritative, Idempotent: true, Summary: "wait until every authoritative server serves the new records",
			Plan: planAwaitAuthoritative, Do: await(Propagation.WaitAuthoritative)},
		{Name: AwaitResolvers, Idempotent: true, Summary: "wait until the resolvers serve the new records",
			Plan: planAwaitResolvers, Do: await(Propagation.WaitResolvers)},
		hookStep(Step{Name: Activate, Summary: "start the service on the new host: the window closes",
			Hook: func(h *config.Hooks) *config.Hook { return h.Activate }},
			"once DNS points at the new host", "no [hooks] activate: start the service on the new host yourself once DNS has converged"),
		{Name: RestoreTTL, Idempotent: true, Summary: "put the original TTL back",
			NotBefore: restoreAfterActivate, Skip: skipRestoreTTL, Plan: planRestoreTTL, Do: (*Engine).restoreTTL},
	}
	if cfg != nil && cfg.Bridge != nil {
		return withBridge(steps)
	}
	return steps
}

// Steps is the default list of steps, in order.
var Steps = table(nil)

// bridgeSteps is the list with [bridge]: every step there is.
var bridgeSteps = table(&config.Config{Bridge: &config.Bridge{}})

// Info returns the step called name, and whether it is a step (of any
// mode).
func Info(name StepName) (Step, bool) {
	for _, s := range bridgeSteps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// StepNames lists every step name in order (for messages).
func StepNames() []string {
	out := make([]string, len(Steps))
	for i, s := range Steps {
		out[i] = string(s.Name)
	}
	return out
}

// skip says why s has nothing to do with this config and these records, or
// "". The plan and the engine both ask it, so they give the same reason.
func (s Step) skip(cfg *config.Config, records []dnsrec.Name) string {
	if s.Hook != nil && s.Hook(&cfg.Hooks) == nil {
		return fmt.Sprintf("no [hooks] %s configured", s.Name)
	}
	if s.Skip != nil {
		return s.Skip(cfg, records)
	}
	return ""
}

// planFirst puts the lines of before(cfg) ahead of what s's Plan shows.
func planFirst(before func(*config.Config) []string, s Step) Step {
	plan := s.Plan
	s.Plan = func(pl *planner, ps *PlannedStep) {
		plan(pl, ps)
		ps.Action = append(before(pl.cfg), ps.Action...)
	}
	return s
}

// planBeforeWindow is what the plan shows of beforeWindow (disable's WhileWaiting).
func planBeforeWindow(cfg *config.Config) []string {
	if len(cfg.Sync) == 0 {
		return nil
	}
	var out []string
	if slices.ContainsFunc(cfg.Sync, func(s config.Sync) bool { return s.Initial }) {
		out = append(out, fmt.Sprintf("while waiting for the window: copy the initial entries again (nothing deleted) %s before the window (at once if nearer), then once more to end about %s before it; a pass still running when the window opens is stopped",
			config.FormatDuration(catchUpFirst), config.FormatDuration(catchUpMargin)))
	}
	if cfg.SSH.Transfer != config.TransferRelay {
		out = append(out, fmt.Sprintf("while waiting for the window (%s ahead at the latest): set up the final sync's transfer (new's directories, one-time key, ssh connection from old to new)",
			config.FormatDuration(prepareLead)))
	}
	return out
}

// hookStep completes a step that runs a configured hook: skipped without
// it, planned as "on HOST: COMMAND", with a warning when it is missing.
func hookStep(s Step, why, missing string) Step {
	s.Plan = func(pl *planner, ps *PlannedStep) {
		ps.Why = why
		if h := s.Hook(&pl.cfg.Hooks); h != nil {
			ps.Action = []string{fmt.Sprintf("on %s: %s (timeout %s)", h.On, h.Run, config.FormatDuration(h.Timeout))}
		} else if missing != "" {
			pl.warn(missing)
		}
	}
	return s
}

// skipUnless skips a step when no [[sync]] entry is what it works on.
func skipUnless(f func(config.Sync) bool, why string) func(*config.Config, []dnsrec.Name) string {
	return func(cfg *config.Config, _ []dnsrec.Name) string {
		if !slices.ContainsFunc(cfg.Sync, f) {
			return why
		}
		return ""
	}
}

// hostsDo is a step that is one call on the hosts.
func hostsDo(f func(h Hosts, ctx context.Context, out io.Writer) error) func(*Engine, context.Context, io.Writer) (string, error) {
	return func(e *Engine, ctx context.Context, out io.Writer) (string, error) {
		return "", f(e.Hosts, ctx, out)
	}
}

// preflight

func planPreflight(pl *planner, ps *PlannedStep) {
	cfg := pl.cfg
	ps.Why = "as soon as the plan is confirmed"
	ps.Action = []string{
		fmt.Sprintf("connect to old %s and new %s over SSH, host keys checked against %s", sshTarget(cfg.Old), sshTarget(cfg.New), cfg.SSH.KnownHosts),
		"check tar and rsync on both hosts, free space on new, clock skew",
		fmt.Sprintf("snapshot the A/AAAA records of %s at provider %q (%s)", pl.names, cfg.DNS.Provider, pl.in.Provider.Type),
	}
}

func (e *Engine) preflight(ctx context.Context, out io.Writer) (string, error) {
	if err := e.Hosts.Preflight(ctx, out); err != nil {
		return "", err
	}
	if err := e.bridgePreflight(ctx, out); err != nil {
		return "", err
	}
	if _, err := e.snapshot(ctx, out); err != nil {
		return "", err
	}
	note := "snapshot: " + e.Journal.Snapshot.String()
	if msg := e.noSelftest(); msg != "" {
		fmt.Fprintln(out, msg)
		note += "; " + msg
	}
	return note, nil
}

// noSelftest says, when the journal holds no passed selftest of the
// configured provider and zone, that the provider was never tried on this
// zone; "" otherwise (and for manual, which has no API to try).
func (e *Engine) noSelftest() string {
	p := e.Config.Provider()
	if p == nil || p.Type == "manual" || e.Journal.SelftestPassed(p.Type, e.Config.DNS.Zone) {
		return ""
	}
	return fmt.Sprintf("no passed selftest of provider %s on zone %s: before the window, run cutover dns selftest %s",
		p.Type, e.Config.DNS.Zone, e.Config.File)
}

// lower-ttl

func skipLowerTTL(cfg *config.Config, records []dnsrec.Name) string {
	if records != nil && dnsrec.MaxTTL(records) <= cfg.DNS.LoweredTTL {
		return "every TTL served is already at or below lowered_ttl"
	}
	return ""
}

// lowered records when the TTL was (or already was) low, which is when the
// caches start to forget the long TTL.
func (e *Engine) lowered() {
	if e.Journal.LoweredAt.IsZero() {
		e.Journal.LoweredAt = e.Clock.Now()
	}
}

func planLowerTTL(pl *planner, ps *PlannedStep) {
	cfg, p := pl.cfg, pl.p
	lowered := config.FormatDuration(cfg.DNS.LoweredTTL)
	if pl.in.Facts == nil {
		ps.Why = "unknown when it must happen: the served TTLs were not looked up (--offline)"
		ps.Action = []string{fmt.Sprintf("set the TTL of the A/AAAA records of %s to %s", pl.names, lowered)}
		return
	}
	ps.Deadline = cfg.CutoverAt.Add(-(p.MaxTTL + p.Margin))
	ps.Why = fmt.Sprintf("at least the longest TTL served (%s) + margin (%s) before the window, so every cache holds the lowered TTL when it opens", config.FormatDuration(p.MaxTTL), config.FormatDuration(p.Margin))
	for _, n := range pl.in.Facts.Names {
		for _, rr := range n.Sets() {
			if !rr.Exists() {
				continue
			}
			line := fmt.Sprintf("%s %s %s: TTL %s -> %s", n.Name, rr.Type, dnsrec.AddrList(rr.Addrs), config.FormatDuration(rr.TTL), lowered)
			if rr.TTL <= cfg.DNS.LoweredTTL {
				line = fmt.Sprintf("%s %s %s: TTL already %s, left as it is", n.Name, rr.Type, dnsrec.AddrList(rr.Addrs), config.FormatDuration(rr.TTL))
			}
			ps.Action = append(ps.Action, line)
		}
	}
	if now := pl.in.Now; ps.Deadline.Before(now) {
		p.TooLate = true
		p.CachesUntil = now.Add(p.MaxTTL + p.Margin)
		p.EarliestSafe = p.CachesUntil.Truncate(time.Minute).Add(time.Minute)
		pl.warn(fmt.Sprintf("too late to lower the TTL in time: it had to be lowered by %s; caches may serve the old address until %s. Earliest safe cutover_at: %s (or run with --accept-slow-propagation)",
			utc(ps.Deadline), utc(p.CachesUntil), p.EarliestSafe.UTC().Format(time.RFC3339)))
	}
}

func (e *Engine) lowerTTL(ctx context.Context, out io.Writer) (string, error) {
	if err := e.DNS.LowerTTL(ctx, e.Journal.Snapshot); err != nil {
		return "", err
	}
	e.setDNS(DNSLowered)
	note := "TTL lowered to " + config.FormatDuration(e.Config.DNS.LoweredTTL)
	e.event(Event{Kind: "dns-changed", Step: LowerTTL, Message: note})
	return note, nil
}

// initial-sync

func planInitialSync(pl *planner, ps *PlannedStep) {
	ps.Why = "as early as allowed, so that the window only copies the delta"
	var initial []string
	for _, s := range pl.cfg.Sync {
		if s.Initial {
			initial = append(initial, shellquote.Quote(s.Path))
		}
	}
	if len(initial) > 0 {
		ps.Action = []string{fmt.Sprintf("copy %s from old to new (%s transfer, nothing deleted)", strings.Join(initial, ", "), pl.cfg.SSH.Transfer)}
	}
}

// disable

// cachesHoldLoweredTTL: never open the window before every cache holds the
// lowered TTL, even when lower-ttl ran late, unless the operator accepted it.
func cachesHoldLoweredTTL(_ *config.Config, j *Journal) time.Time {
	if j.AcceptSlow || j.Snapshot == nil || j.LoweredAt.IsZero() {
		return time.Time{}
	}
	ttl := j.Snapshot.MaxTTL()
	return j.LoweredAt.Add(ttl + Margin(ttl))
}

// final-sync, verify, fixup

func planFinalSync(pl *planner, ps *PlannedStep) {
	ps.Why = "right after disable"
	for _, s := range pl.cfg.Sync {
		del := ""
		if s.Delete {
			del = ", deleting what is gone on old"
		}
		ps.Action = append(ps.Action, fmt.Sprintf("copy %s from old to new (%s transfer%s)", shellquote.Quote(s.Path), pl.cfg.SSH.Transfer, del))
	}
}

func planVerify(pl *planner, ps *PlannedStep) {
	ps.Why = "right after the final sync; a difference stops the run before DNS changes"
	for _, s := range pl.cfg.Sync {
		ps.Action = append(ps.Action, fmt.Sprintf("compare %s on both hosts (%s)", shellquote.Quote(s.Path), verifyWhat(s.Verify)))
	}
}

func planFixup(pl *planner, ps *PlannedStep) {
	ps.Why = "right after verify"
	for _, s := range pl.cfg.Sync {
		if s.Owner != "" {
			ps.Action = append(ps.Action, fmt.Sprintf("on new: chown -R %s %s, then check nothing under it has another owner", shellquote.Quote(s.Owner), shellquote.Quote(s.Path)))
		}
	}
}

// swap-dns

func planSwap(pl *planner, ps *PlannedStep) {
	cfg := pl.cfg
	ps.Why = "once the new host holds verified data"
	served := map[string]dnsrec.Name{} // empty when not looked up: the lowered TTL
	if pl.in.Facts != nil {
		for _, n := range pl.in.Facts.Names {
			served[n.Name] = n
		}
	}
	for _, n := range cfg.DNS.Names {
		ttl := func(typ string) string { return config.FormatDuration(served[n].SwapTTL(typ, cfg.DNS.LoweredTTL)) }
		ps.Action = append(ps.Action, fmt.Sprintf("%s A -> %s (TTL %s)", n, cfg.New.Address, ttl("A")))
		if cfg.New.Address6.IsValid() {
			ps.Action = append(ps.Action, fmt.Sprintf("%s AAAA -> %s (TTL %s)", n, cfg.New.Address6, ttl("AAAA")))
		} else {
			ps.Action = append(ps.Action, fmt.Sprintf("%s AAAA: removed (the new host has no address6)", n))
		}
	}
}

func (e *Engine) swap(ctx context.Context, out io.Writer) (string, error) {
	if err := e.DNS.Swap(ctx, e.Journal.Snapshot); err != nil {
		return "", err
	}
	e.setDNS(DNSSwapped)
	e.event(Event{Kind: "dns-changed", Step: SwapDNS, Message: fmt.Sprintf("A/AAAA now point at %s", e.newAddrs())})
	return "A/AAAA -> " + e.newAddrs(), nil
}

// await-authoritative, await-resolvers

func planAwaitAuthoritative(pl *planner, ps *PlannedStep) {
	auth := "the zone's NS servers (discovered through the resolvers)"
	if len(pl.cfg.DNS.Authoritative) > 0 {
		auth = serverList(pl.cfg.DNS.Authoritative)
	}
	ps.Why = "activate never runs before DNS points at the new host"
	ps.Action = []string{fmt.Sprintf("wait until every address of %s answers the new A/AAAA with the AA flag and agreeing SOA serials", auth)}
}

func planAwaitResolvers(pl *planner, ps *PlannedStep) {
	cfg := pl.cfg
	quorum := "all"
	if cfg.DNS.Quorum > 0 {
		quorum = fmt.Sprint(cfg.DNS.Quorum)
	}
	expect := cfg.DNS.LoweredTTL
	if pl.addsAAAA {
		expect = max(expect, pl.in.Facts.NegativeTTL)
	}
	ps.Why = fmt.Sprintf("caches expire within %s of the swap", config.FormatDuration(expect))
	ps.Action = []string{fmt.Sprintf("wait until %s of %s serve the new A/AAAA (give up after %s)", quorum, serverList(cfg.DNS.Resolvers), config.FormatDuration(cfg.DNS.ConvergeTimeout))}
}

// await is a step that waits for DNS, at most converge_timeout.
func await(wait func(p Propagation, ctx context.Context, out io.Writer) error) func(*Engine, context.Context, io.Writer) (string, error) {
	return func(e *Engine, ctx context.Context, out io.Writer) (string, error) {
		return "", e.converge(ctx, func(ctx context.Context) error { return wait(e.Prop, ctx, out) })
	}
}

// restore-ttl

func skipRestoreTTL(cfg *config.Config, _ []dnsrec.Name) string {
	if cfg.DNS.RestoreNever {
		return `restore_ttl_after = "never": the lowered TTL stays`
	}
	return ""
}

func restoreAfterActivate(cfg *config.Config, j *Journal) time.Time {
	if a := j.Step(Activate); a != nil && !a.Ended.IsZero() {
		return a.Ended.Add(cfg.DNS.RestoreTTLAfter)
	}
	return time.Time{}
}

func planRestoreTTL(pl *planner, ps *PlannedStep) {
	if ps.Skip != "" {
		return
	}
	cfg := pl.cfg
	ps.Why = fmt.Sprintf("%s after activate", config.FormatDuration(cfg.DNS.RestoreTTLAfter))
	if pl.in.Facts == nil {
		ps.Action = []string{fmt.Sprintf("set the TTL of %s back to what it was before lower-ttl", pl.names)}
		return
	}
	for _, n := range pl.in.Facts.Names {
		ps.Action = append(ps.Action, fmt.Sprintf("%s A/AAAA: TTL %s -> %s", n.Name, config.FormatDuration(cfg.DNS.LoweredTTL), config.FormatDuration(n.MaxTTL())))
	}
}

func (e *Engine) restoreTTL(ctx context.Context, out io.Writer) (string, error) {
	if err := e.DNS.RestoreTTL(ctx, e.Journal.Snapshot); err != nil {
		return "", err
	}
	e.setDNS(DNSRestored)
	e.event(Event{Kind: "dns-changed", Step: RestoreTTL, Message: "original TTL restored"})
	return "original TTL restored", nil
}
