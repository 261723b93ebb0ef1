package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/config"
)

// The steps of a handover through old ([bridge], issue 14).
const (
	Bridge   StepName = "bridge"
	Unbridge StepName = "unbridge"
)

// Forwarder is the bridge on old: it forwards the [bridge] ports to the
// same ports on new while DNS moves.
type Forwarder interface {
	// Preflight checks what the forwarder needs on old (the binary for
	// old's OS and architecture) and reports which process holds each
	// bridged port now (disable must free them).
	Preflight(ctx context.Context, out io.Writer) error
	// Start starts the forwarder on old, or adopts the one that runs (never
	// two), then checks that each port through old's address reaches new.
	Start(ctx context.Context, out io.Writer) error
	// Carried is how many connections it has forwarded so far, per port,
	// not counting Start's own checks.
	Carried(ctx context.Context) (map[uint16]int64, error)
	// Stop stops it (nothing when none runs) and returns the connections it
	// carried, per port.
	Stop(ctx context.Context, out io.Writer) (map[uint16]int64, error)
}

// withBridge reorders the default table for [bridge]: activate right after
// fixup, then bridge, then DNS moves; unbridge once no cache can still hold
// the old address.
func withBridge(steps []Step) []Step {
	var out []Step
	var activate Step
	for _, s := range steps {
		if s.Name == Activate {
			activate = s
		}
	}
	activate = hookStep(Step{Name: Activate, Summary: "start the service on the new host: the window closes",
		Hook: activate.Hook}, "right after fixup: old forwards its ports to new while DNS moves",
		"no [hooks] activate: start the service on the new host yourself before bridge, or its check fails")
	for _, s := range steps {
		switch s.Name {
		case Activate:
			continue
		case SwapDNS:
			out = append(out, activate, Step{Name: Bridge, Idempotent: true,
				Summary: "old forwards its service ports to new while DNS moves", Plan: planBridge, Do: (*Engine).bridge})
		case AwaitAuthoritative:
			s.Plan = withWhy(s.Plan, "unbridge never runs before DNS points at the new host")
		case RestoreTTL:
			out = append(out, Step{Name: Unbridge, Idempotent: true,
				Summary: "stop the forwarder on old: no cache holds the old address any more", NotBefore: cachesForgotOld,
				Plan: planUnbridge, Do: (*Engine).unbridge})
		}
		out = append(out, s)
	}
	return out
}

// withWhy is plan with another reason for the step's time.
func withWhy(plan func(*planner, *PlannedStep), why string) func(*planner, *PlannedStep) {
	return func(pl *planner, ps *PlannedStep) {
		plan(pl, ps)
		ps.Why = why
	}
}

func planBridge(pl *planner, ps *PlannedStep) {
	b, cfg := pl.cfg.Bridge, pl.cfg
	ps.Why = "right after activate, before DNS changes"
	listen := cfg.Old.Address.String()
	if cfg.Old.Address6.IsValid() {
		listen += " and " + cfg.Old.Address6.String()
	}
	binary := "this cutover binary (old's OS and architecture match, checked in preflight)"
	if b.Binary != "" {
		binary = b.Binary
	}
	proxy := ""
	if b.ProxyProtocol {
		proxy = ", each connection with a PROXY v2 header"
	}
	ps.Action = []string{
		fmt.Sprintf("on old: start cutover bridge serve: %s, copied to old in preflight", binary),
		fmt.Sprintf("on old: forward %s port(s) %s to %s%s", listen, portList(b.Ports), cfg.New.Address, proxy),
		"the forwarder checks each port through old's address reaches new before it says it is ready; a port still held on old fails the step, naming the process",
	}
}

func planUnbridge(pl *planner, ps *PlannedStep) {
	ps.Why = "the swap + the longest TTL a cache may hold + the margin, and not before await-resolvers"
	ps.Action = []string{"on old: stop the forwarder and report the connections it carried per port"}
}

func portList(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}

// expectedDowntime says what the downtime is made of: the window's steps,
// plus, without [bridge], the time caches take to forget the old address.
func expectedDowntime(pl *planner) string {
	ttl := pl.cfg.DNS.LoweredTTL
	if pl.addsAAAA {
		ttl = max(ttl, pl.in.Facts.NegativeTTL)
	}
	caches := config.FormatDuration(ttl)
	if pl.cfg.Bridge != nil {
		return fmt.Sprintf("final sync + verify + fixup + activate + bridge; DNS caches do not count ([bridge]: old forwards to new; without it, up to %s more)", caches)
	}
	return fmt.Sprintf("final sync + verify + fixup + swap + up to %s while caches forget the old address + activate ([bridge] would take the %s out)", caches, caches)
}

// cachesForgotOld is when no cache can hold the old address any more: the
// swap + the longest TTL a cache may hold + the margin. That TTL is the
// lowered one, or the original when the window opened before every cache
// held the lowered TTL (--accept-slow-propagation).
func cachesForgotOld(cfg *config.Config, j *Journal) time.Time {
	s := j.Step(SwapDNS)
	if s == nil || s.Ended.IsZero() {
		return time.Time{}
	}
	ttl := cfg.DNS.LoweredTTL
	if j.Snapshot != nil && (j.AcceptSlow || j.LoweredAt.IsZero()) {
		ttl = max(ttl, j.Snapshot.MaxTTL())
	}
	return s.Ended.Add(ttl + Margin(ttl))
}

// bridgePreflight is preflight's part for [bridge].
func (e *Engine) bridgePreflight(ctx context.Context, out io.Writer) error {
	if e.Config.Bridge == nil {
		return nil
	}
	if e.Forwarder == nil {
		return errors.New("scheduler: no forwarder (internal: Engine.Forwarder is nil)")
	}
	return e.Forwarder.Preflight(ctx, out)
}

func (e *Engine) bridge(ctx context.Context, out io.Writer) (string, error) {
	if e.Forwarder == nil {
		return "", errors.New("scheduler: no forwarder to start (internal: Engine.Forwarder is nil)")
	}
	if err := e.Forwarder.Start(ctx, out); err != nil {
		return "", err
	}
	e.event(Event{Kind: "bridge-up", Step: Bridge, Message: "old forwards port(s) " + portList(e.Config.Bridge.Ports) + " to new"})
	return "forwarding port(s) " + portList(e.Config.Bridge.Ports) + " to " + e.Config.New.Address.String(), nil
}

func (e *Engine) unbridge(ctx context.Context, out io.Writer) (string, error) {
	if e.Forwarder == nil {
		return "", errors.New("scheduler: no forwarder to stop (internal: Engine.Forwarder is nil)")
	}
	carried, err := e.Forwarder.Stop(ctx, out)
	if err != nil {
		return "", err
	}
	note := "forwarder stopped; connections carried: " + carriedList(e.Config.Bridge.Ports, carried)
	e.event(Event{Kind: "bridge-down", Step: Unbridge, Message: note})
	return note, nil
}

// carriedList is "25: 3, 993: 0", in the config's order.
func carriedList(ports []uint16, carried map[uint16]int64) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprintf("%d: %d", p, carried[p])
	}
	return strings.Join(s, ", ")
}

// BridgeKeptError is a failure of a handover through old that is not
// rolled back: new holds data old does not, or DNS moved already. The
// forwarder keeps running, so the service works through old.
type BridgeKeptError struct {
	Cause error
	Why   string
}

func (e *BridgeKeptError) Error() string {
	return fmt.Sprintf("%v; not rolled back (%s): the forwarder on old keeps running, so clients reach new through old", e.Cause, e.Why)
}
func (e *BridgeKeptError) Unwrap() error { return e.Cause }

// bridgeFailed applies the failure rules of a handover through old once
// activate has started: a rollback only while the forwarder has carried
// no connection and DNS was never changed.
func (e *Engine) bridgeFailed(ctx context.Context, name StepName, serr *StepError) (error, bool) {
	j := e.Journal
	why := ""
	if st := j.Step(SwapDNS).State; st != Pending {
		why = "DNS was changed already"
	} else if st := j.Step(Bridge).State; st != Pending && e.Forwarder != nil {
		carried, err := e.Forwarder.Carried(context.WithoutCancel(ctx))
		switch {
		case err != nil:
			why = fmt.Sprintf("cannot tell whether the forwarder carried a connection: %v", err)
		case slices.ContainsFunc(mapValues(carried), func(n int64) bool { return n > 0 }):
			why = "the forwarder carried connections: new holds data old does not (" + carriedList(e.Config.Bridge.Ports, carried) + ")"
		}
	}
	if why == "" {
		return nil, false
	}
	j.Outcome = OutcomeStopped
	if err := e.save(); err != nil {
		return err, true
	}
	return &BridgeKeptError{Cause: serr, Why: why}, true
}

func mapValues(m map[uint16]int64) []int64 {
	var out []int64
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// undoBridge is the rollback's part for a handover through old, before
// old is re-enabled: stop the forwarder, then deactivate new. It reports
// whether new was deactivated.
func (e *Engine) undoBridge(ctx context.Context, act func(what string, f func() error)) bool {
	j, cfg := e.Journal, e.Config
	if cfg.Bridge == nil {
		return false
	}
	if st := j.Step(Bridge).State; st != Pending && st != Skipped && e.Forwarder != nil {
		act("stop the forwarder on old", func() error {
			_, err := e.Forwarder.Stop(ctx, e.Out)
			return err
		})
	}
	if st := j.Step(Activate).State; st != Pending && st != Skipped && cfg.Hooks.Deactivate != nil {
		act("deactivate the service on new ([hooks] deactivate)", func() error {
			return e.runHook(ctx, &tailWriter{w: e.Out, max: 20}, cfg.Hooks.Deactivate)
		})
		return true
	}
	return false
}
