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
	"github.com/cutover-dev/cutover/dnsrec"
)

// DNS changes the zone at the provider. Every method is idempotent and
// checks its precondition against snap before changing anything.
type DNS interface {
	// Snapshot reads the A/AAAA data of the configured names.
	Snapshot(ctx context.Context) (*dnsrec.Snapshot, error)
	// LowerTTL keeps the data of snap with the lowered TTL.
	LowerTTL(ctx context.Context, snap *dnsrec.Snapshot) error
	// Swap points the names at the new host, with the lowered TTL.
	Swap(ctx context.Context, snap *dnsrec.Snapshot) error
	// RestoreTTL keeps the current data (old or new) with snap's TTLs.
	RestoreTTL(ctx context.Context, snap *dnsrec.Snapshot) error
	// Revert puts snap's data and TTLs back.
	Revert(ctx context.Context, snap *dnsrec.Snapshot) error
}

// Hosts acts on the old and the new host. out receives the step's output.
type Hosts interface {
	Preflight(ctx context.Context, out io.Writer) error
	Copy(ctx context.Context, out io.Writer, final bool) error
	// CatchUp copies the initial entries again while the window is ahead (see catchUp).
	CatchUp(ctx context.Context, out io.Writer) error
	// PrepareFinalSync sets up what the final sync needs on the hosts just before the window;
	// the final sync uses it (and sets up its own when there is none).
	PrepareFinalSync(ctx context.Context, out io.Writer) error
	Verify(ctx context.Context, out io.Writer) error
	Fixup(ctx context.Context, out io.Writer) error
}

// Hooks runs a configured service command where the hook says.
type Hooks interface {
	Run(ctx context.Context, out io.Writer, h *config.Hook) error
}

// Propagation waits until DNS serves the new host's addresses, or, after
// a rollback, the old ones again.
type Propagation interface {
	WaitAuthoritative(ctx context.Context, out io.Writer) error
	WaitResolvers(ctx context.Context, out io.Writer) error
	WaitAuthoritativeReverted(ctx context.Context, out io.Writer) error
}

// Engine runs a cutover's steps in order against a journal.
type Engine struct {
	Config  *config.Config
	Journal *Journal
	DNS     DNS
	Hosts   Hosts
	Hooks   Hooks
	Prop    Propagation
	// Forwarder is the bridge on old; used only with [bridge].
	Forwarder Forwarder
	Clock     Clock
	Out       io.Writer // step output and progress lines
	Events    *EventLog // nil: no event log
	// Wait is called about once a second while the engine waits for a
	// step's time (a countdown on a terminal); nil prints a line now and then.
	Wait func(step StepName, until, now time.Time)
	// RerunInterrupted allows a hook that was interrupted to run again.
	RerunInterrupted bool
	// AcceptSlow: the operator accepts a window that opens before every
	// cache can hold the lowered TTL (--accept-slow-propagation). Run
	// records it in the journal when the cutover starts; a resumed run goes
	// by what the journal says.
	AcceptSlow bool
	// Fault is the crash-injection seam (CUTOVER_FAULT); zero in production.
	Fault Fault
}

// StepError is a step that failed.
type StepError struct {
	Step StepName
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("%s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// InterruptedError is a run stopped by a signal at a safe point.
type InterruptedError struct{ Step StepName }

func (e *InterruptedError) Error() string {
	if e.Step == "" {
		return "scheduler: interrupted"
	}
	return fmt.Sprintf("scheduler: interrupted during %s", e.Step)
}
func (e *InterruptedError) Unwrap() error { return context.Canceled }

// NeedsDecisionError is a hook that was interrupted in a previous run: it
// may or may not have taken effect, so it is not rerun without consent.
type NeedsDecisionError struct {
	Step    StepName
	Started time.Time
}

func (e *NeedsDecisionError) Error() string {
	return fmt.Sprintf("scheduler: step %s was interrupted in a previous run (started %s) and runs a hook that may not be safe to run twice",
		e.Step, e.Started.UTC().Format(time.RFC3339))
}

// RolledBackError is a run that failed and was rolled back.
type RolledBackError struct {
	Cause    error
	Rollback error // nil when the rollback succeeded
}

func (e *RolledBackError) Error() string {
	if e.Rollback != nil {
		return fmt.Sprintf("%v; the rollback failed too: %v", e.Cause, e.Rollback)
	}
	return fmt.Sprintf("%v; rolled back", e.Cause)
}
func (e *RolledBackError) Unwrap() error { return e.Cause }

// RollbackPendingError is a run refused because a rollback started and did
// not finish: going forward again could swap DNS while old is re-enabled.
type RollbackPendingError struct{ Reason, Err string }

func (e *RollbackPendingError) Error() string {
	return fmt.Sprintf("scheduler: a rollback (%s) did not finish: %s", e.Reason, e.Err)
}

// ErrFinished is returned when the journal says the cutover is over.
var ErrFinished = errors.New("scheduler: this cutover is finished")

// Earliest is when a step may start, given what the journal says; zero
// means as soon as the steps before it are done.
func (e *Engine) Earliest(s Step) time.Time {
	var t time.Time
	if s.Start == AtCutover {
		t = e.Config.CutoverAt
	}
	if s.NotBefore != nil {
		if nb := s.NotBefore(e.Config, e.Journal); nb.After(t) {
			t = nb
		}
	}
	return t
}

// snapshotRecords is the journal's snapshot for a step's Skip: nil when
// none was taken yet.
func (e *Engine) snapshotRecords() []dnsrec.Name {
	if e.Journal.Snapshot == nil {
		return nil
	}
	return known(e.Journal.Snapshot.Names)
}

// Run executes every step not yet done, in order, each no earlier than its
// time, journaling each transition before the next action.
func (e *Engine) Run(ctx context.Context) error {
	j := e.Journal
	switch j.Outcome {
	case OutcomeDone, OutcomeRolledBack:
		return fmt.Errorf("%w (%s)", ErrFinished, j.Outcome)
	}
	if j.Rollback != nil {
		return &RollbackPendingError{Reason: j.Rollback.Reason, Err: j.Rollback.Error}
	}
	if e.AcceptSlow && !j.Started() {
		j.AcceptSlow = true
	}
	j.Outcome = ""
	for _, step := range table(e.Config) {
		rec := j.Step(step.Name)
		switch rec.State {
		case Done, Skipped:
			continue
		case Running:
			if !step.Idempotent && !e.RerunInterrupted {
				return &NeedsDecisionError{Step: step.Name, Started: rec.Started}
			}
		}
		e.fault(FaultBefore, step.Name)
		if err := e.runStep(ctx, step, true); err != nil {
			return e.failed(ctx, step.Name, err)
		}
		e.fault(FaultAfter, step.Name)
	}
	j.Outcome = OutcomeDone
	if err := e.save(); err != nil {
		return err
	}
	e.event(Event{Kind: "run-done", Message: "cutover finished"})
	return nil
}

// RunStep runs one step by hand (cutover step NAME): no waiting for its
// time, but every step before it must be done or skipped, so that activate
// can never run before DNS points at the new host. A failure is journaled
// and not rolled back.
func (e *Engine) RunStep(ctx context.Context, name StepName) error {
	steps := table(e.Config)
	i := slices.IndexFunc(steps, func(s Step) bool { return s.Name == name })
	if i < 0 {
		return fmt.Errorf("scheduler: unknown step %q (valid: %s)", name, strings.Join(StepNames(), ", "))
	}
	j := e.Journal
	if j.Rollback != nil {
		if j.Outcome == OutcomeRolledBack {
			return fmt.Errorf("%w (%s)", ErrFinished, j.Outcome)
		}
		return &RollbackPendingError{Reason: j.Rollback.Reason, Err: j.Rollback.Error}
	}
	step := steps[i]
	for _, s := range steps[:i] {
		if st := j.Step(s.Name).State; st != Done && st != Skipped {
			return &OrderError{Step: name, Missing: s.Name, State: st}
		}
	}
	rec := j.Step(name)
	if !step.Idempotent && !e.RerunInterrupted && (rec.State == Running || rec.State == Done) {
		if rec.State == Running {
			return &NeedsDecisionError{Step: name, Started: rec.Started}
		}
		return fmt.Errorf("scheduler: step %s already ran (%s) and runs a hook that may not be safe to run twice", name, rec.Ended.UTC().Format(time.RFC3339))
	}
	err := e.runStep(ctx, step, false)
	if err != nil {
		var ie *InterruptedError
		if errors.As(err, &ie) {
			return err
		}
		return &StepError{Step: name, Err: err}
	}
	return nil
}

// OrderError is a step run by hand before the steps it depends on.
type OrderError struct {
	Step, Missing StepName
	State         StepState
}

func (e *OrderError) Error() string {
	return fmt.Sprintf("scheduler: %s cannot run yet: %s is %s", e.Step, e.Missing, e.State)
}

func (e *Engine) runStep(ctx context.Context, step Step, wait bool) error {
	j := e.Journal
	rec := j.Step(step.Name)
	if why := step.skip(e.Config, e.snapshotRecords()); why != "" {
		rec.State, rec.Note = Skipped, why
		if step.Skipped != nil {
			step.Skipped(e)
		}
		if err := e.save(); err != nil {
			return err
		}
		e.event(Event{Kind: "step-skipped", Step: step.Name, Message: why})
		return nil
	}
	if wait {
		if t := e.Earliest(step); !t.IsZero() {
			if step.WhileWaiting != nil && e.Clock.Now().Before(t) {
				step.WhileWaiting(e, ctx, t)
			}
			if err := e.waitUntil(ctx, step.Name, t); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return &InterruptedError{Step: step.Name}
	}
	now := e.Clock.Now()
	rec.State, rec.Started, rec.Ended, rec.Error, rec.Note, rec.Tail = Running, now, time.Time{}, "", "", nil
	rec.Attempts++
	if err := e.save(); err != nil {
		return err
	}
	e.event(Event{Kind: "step-started", Step: step.Name})
	fmt.Fprintf(e.Out, "== %s: %s\n", step.Name, step.Summary)

	tail := &tailWriter{w: e.Out, max: 20}
	stopFault := e.faultDuring(step.Name)
	note, err := e.do(ctx, step, tail)
	stopFault()
	rec.Tail = tail.Lines()
	rec.Ended = e.Clock.Now()
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted by a signal: the step stays running in the
			// journal, so the next run knows it was cut short.
			rec.Note = "interrupted by a signal"
			if serr := e.save(); serr != nil {
				return serr
			}
			e.event(Event{Kind: "step-interrupted", Step: step.Name, Error: err.Error()})
			return &InterruptedError{Step: step.Name}
		}
		rec.State, rec.Error = Failed, err.Error()
		if serr := e.save(); serr != nil {
			return serr
		}
		e.event(Event{Kind: "step-failed", Step: step.Name, Error: err.Error()})
		fmt.Fprintf(e.Out, "== %s: failed after %s: %v\n", step.Name, rec.Ended.Sub(rec.Started).Round(time.Millisecond), err)
		return err
	}
	rec.State, rec.Note = Done, note
	if err := e.save(); err != nil {
		return err
	}
	e.event(Event{Kind: "step-done", Step: step.Name, Message: note})
	fmt.Fprintf(e.Out, "== %s: done in %s\n", step.Name, rec.Ended.Sub(rec.Started).Round(time.Millisecond))
	return nil
}

// do performs one step's action and returns a note for the journal.
func (e *Engine) do(ctx context.Context, s Step, out io.Writer) (string, error) {
	if s.Hook != nil {
		return "", e.runHook(ctx, out, s.Hook(&e.Config.Hooks))
	}
	return s.Do(e, ctx, out)
}

// snapshot takes the snapshot into the journal (not yet saved) if it holds
// none, refusing a zone that does not point at old.
func (e *Engine) snapshot(ctx context.Context, out io.Writer) (*dnsrec.Snapshot, error) {
	j := e.Journal
	if j.Snapshot != nil {
		return j.Snapshot, nil
	}
	snap, err := e.takeSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	j.Snapshot = snap
	fmt.Fprintf(out, "snapshot: %s\n", snap)
	e.event(Event{Kind: "dns-snapshot", Message: snap.String()})
	return snap, nil
}

// takeSnapshot reads the records and checks they still point at old.
func (e *Engine) takeSnapshot(ctx context.Context) (*dnsrec.Snapshot, error) {
	snap, err := e.DNS.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkSnapshot(e.Config, snap); err != nil {
		return nil, err
	}
	return snap, nil
}

// setDNS records what the zone holds now.
func (e *Engine) setDNS(s DNSState) {
	e.Journal.DNS = s
	if s == DNSLowered {
		e.Journal.LoweredAt = e.Clock.Now()
	}
}

// converge runs a wait for DNS, at most converge_timeout; the error says
// when the timeout ended it.
func (e *Engine) converge(ctx context.Context, wait func(ctx context.Context) error) error {
	timeout := e.Config.DNS.ConvergeTimeout
	wctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("converge_timeout %s reached", config.FormatDuration(timeout)))
	defer cancel()
	err := wait(wctx)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		err = fmt.Errorf("%w: %w", context.Cause(wctx), err)
	}
	return err
}

func (e *Engine) newAddrs() string {
	s := e.Config.New.Address.String()
	if e.Config.New.Address6.IsValid() {
		s += ", " + e.Config.New.Address6.String()
	}
	return s
}

func (e *Engine) runHook(ctx context.Context, out io.Writer, h *config.Hook) error {
	hctx := ctx
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeoutCause(ctx, h.Timeout, fmt.Errorf("hook %s: timeout %s reached", h.Name, config.FormatDuration(h.Timeout)))
		defer cancel()
	}
	err := e.Hooks.Run(hctx, out, h)
	if err != nil && ctx.Err() == nil && hctx.Err() != nil {
		return fmt.Errorf("%w: %w", context.Cause(hctx), err)
	}
	return err
}

// checkSnapshot refuses a zone that does not point at the old host: the
// records were moved already, or the config names the wrong host.
func checkSnapshot(cfg *config.Config, snap *dnsrec.Snapshot) error {
	for _, n := range snap.Names {
		if msg, _ := notAtOld(cfg, n); msg != "" {
			if slices.Contains(n.A.Addrs, cfg.New.Address) {
				msg += ": it already points at the new host"
			}
			return errors.New("scheduler: " + msg)
		}
	}
	return nil
}

// failed handles a failed step according to on_failure.
func (e *Engine) failed(ctx context.Context, name StepName, err error) error {
	var ie *InterruptedError
	if errors.As(err, &ie) {
		return err
	}
	var de *NeedsDecisionError
	if errors.As(err, &de) {
		return err
	}
	serr := &StepError{Step: name, Err: err}
	// A journal that cannot be written cannot record a rollback either:
	// stop at once; the error says what was changed.
	var se *SaveError
	if errors.As(err, &se) {
		return serr
	}
	j := e.Journal
	activated := j.Step(Activate).State != Pending && j.Step(Activate).State != Skipped
	if e.Config.Bridge != nil && activated {
		if kept, ok := e.bridgeFailed(ctx, name, serr); ok {
			return kept
		}
		activated = false // nothing went through new yet: undone by the rollback (undoBridge)
	}
	// Nothing changed yet (a failed preflight, say): nothing to undo, and
	// the run stays resumable once the cause is fixed.
	if e.Config.OnFailure != config.OnFailureRollback || activated || !e.changedAnything() {
		j.Outcome = OutcomeStopped
		if err := e.save(); err != nil {
			return err
		}
		return serr
	}
	fmt.Fprintf(e.Out, "== rollback: %s failed, on_failure = %q\n", name, e.Config.OnFailure)
	rerr := e.Rollback(context.WithoutCancel(ctx), fmt.Sprintf("%s failed: %v", name, err))
	if errors.As(rerr, &se) && len(j.Rollback.Actions) == 0 {
		return fmt.Errorf("%w; not rolled back: %w", serr, rerr)
	}
	return &RolledBackError{Cause: serr, Rollback: rerr}
}

// Rollback puts things back as they were before the cutover: the service
// re-enabled on old if it was disabled, and DNS reverted to the snapshot if
// it was changed. It runs every action even when one fails. Callers pass a
// context that is not cancelled by the signal that stopped the run.
func (e *Engine) Rollback(ctx context.Context, reason string) error {
	j, cfg := e.Journal, e.Config
	rb := &RollbackRecord{Reason: reason, Started: e.Clock.Now()}
	j.Rollback = rb
	if err := e.save(); err != nil {
		return err
	}
	e.event(Event{Kind: "rollback-started", Message: reason})
	var errs []error
	act := func(what string, f func() error) {
		fmt.Fprintf(e.Out, "rollback: %s\n", what)
		if err := f(); err != nil {
			rb.Actions = append(rb.Actions, what+": FAILED: "+err.Error())
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		} else {
			rb.Actions = append(rb.Actions, what+": done")
		}
		if err := e.save(); err != nil {
			errs = append(errs, err)
		}
	}

	deactivated := e.undoBridge(ctx, act)
	if st := j.Step(Disable).State; st != Pending && st != Skipped {
		if cfg.Hooks.Reenable != nil {
			act("re-enable the service on old ([hooks] reenable)", func() error {
				return e.runHook(ctx, &tailWriter{w: e.Out, max: 20}, cfg.Hooks.Reenable)
			})
		} else {
			rb.Actions = append(rb.Actions, "no [hooks] reenable: the service on old must be started by hand")
			fmt.Fprintf(e.Out, "rollback: no [hooks] reenable configured: start the service on old by hand\n")
		}
	}
	if st := j.Step(Activate).State; st != Pending && st != Skipped && !deactivated {
		rb.Actions = append(rb.Actions, "the service on new was activated and keeps running: stop it by hand")
		fmt.Fprintf(e.Out, "rollback: the service on new was activated: stop it by hand, or both hosts accept traffic\n")
	}
	if e.dnsTouched() && j.Snapshot != nil {
		act("revert DNS to the snapshot ("+j.Snapshot.String()+")", func() error {
			if err := e.DNS.Revert(ctx, j.Snapshot); err != nil {
				return err
			}
			e.setDNS(DNSReverted)
			e.event(Event{Kind: "dns-changed", Message: "reverted to the snapshot"})
			return nil
		})
		if j.DNS == DNSReverted {
			act("wait until every authoritative server serves the old addresses again", func() error {
				return e.converge(ctx, func(ctx context.Context) error { return e.Prop.WaitAuthoritativeReverted(ctx, e.Out) })
			})
		}
	}
	rb.Ended = e.Clock.Now()
	err := errors.Join(errs...)
	if err != nil {
		rb.Error = err.Error()
		j.Outcome = OutcomeStopped
	} else {
		j.Outcome = OutcomeRolledBack
	}
	if serr := e.save(); serr != nil {
		return errors.Join(err, serr)
	}
	if err != nil {
		e.event(Event{Kind: "rollback-failed", Error: err.Error()})
		return err
	}
	e.event(Event{Kind: "rollback-done", Message: strings.Join(rb.Actions, "; ")})
	return nil
}

// dnsTouched reports whether cutover may have changed the records.
func (e *Engine) dnsTouched() bool {
	j := e.Journal
	started := func(n StepName) bool { st := j.Step(n).State; return st == Running || st == Failed }
	return j.DNS != DNSOriginal && j.DNS != DNSReverted || started(LowerTTL) || started(SwapDNS)
}

// changedAnything reports whether a rollback would have anything to undo.
func (e *Engine) changedAnything() bool {
	st := e.Journal.Step(Disable).State
	return e.dnsTouched() || (st != Pending && st != Skipped)
}

func (e *Engine) save() error { return e.Journal.Save(e.Clock.Now()) }

func (e *Engine) event(ev Event) {
	if e.Events == nil {
		return
	}
	ev.Time = e.Clock.Now()
	if ev.Step != "" && ev.State == "" {
		if r := e.Journal.Step(ev.Step); r != nil {
			ev.State = r.State
		}
	}
	e.Events.Emit(ev)
}

// waitUntil blocks until the wall clock reaches t. It sleeps in short
// slices and rereads the clock each time, so a suspended machine or a clock
// that jumps is noticed, and it never returns early.
func (e *Engine) waitUntil(ctx context.Context, step StepName, t time.Time) error {
	return e.waitShowing(ctx, step, t, t)
}

// waitShowing is waitUntil(wake) that shows the wait for step until t (wake is not later).
func (e *Engine) waitShowing(ctx context.Context, step StepName, t, wake time.Time) error {
	var lastLine time.Time
	announced := false
	for {
		now := e.Clock.Now()
		if !now.Before(wake) {
			return nil
		}
		if !announced {
			e.event(Event{Kind: "waiting", Step: step, Message: "until " + t.UTC().Format(time.RFC3339)})
			announced = true
		}
		if e.Wait != nil {
			e.Wait(step, t, now)
		} else if lastLine.IsZero() || now.Sub(lastLine) >= 10*time.Minute {
			fmt.Fprintf(e.Out, "waiting for %s until %s (%s)\n", step, t.UTC().Format("2006-01-02 15:04:05 UTC"), relative(t.Sub(now)))
			lastLine = now
		}
		select {
		case <-ctx.Done():
			return &InterruptedError{Step: step}
		case <-e.Clock.After(min(wake.Sub(now), time.Second)):
		}
	}
}

// tailWriter forwards output and keeps its last lines for the journal.
type tailWriter struct {
	w       io.Writer
	max     int
	lines   []string
	partial []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	if t.w != nil {
		t.w.Write(p)
	}
	t.partial = append(t.partial, p...)
	for {
		i := strings.IndexByte(string(t.partial), '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(t.partial[:i]))
		t.partial = t.partial[i+1:]
		if len(t.lines) > t.max {
			t.lines = t.lines[len(t.lines)-t.max:]
		}
	}
	return len(p), nil
}

func (t *tailWriter) Lines() []string {
	out := slices.Clone(t.lines)
	if len(t.partial) > 0 {
		out = append(out, string(t.partial))
	}
	if len(out) > t.max {
		out = out[len(out)-t.max:]
	}
	return out
}

// MarkDone records that a step which was interrupted (or failed) did take
// effect, after the operator checked by hand: the run then goes on after it
// without running it again.
func (e *Engine) MarkDone(name StepName) error {
	rec := e.Journal.Step(name)
	if rec == nil {
		return fmt.Errorf("scheduler: unknown step %q (valid: %s)", name, strings.Join(StepNames(), ", "))
	}
	if rec.State != Running && rec.State != Failed {
		return fmt.Errorf("scheduler: step %s is %s; only an interrupted or failed step can be marked done", name, rec.State)
	}
	prev := rec.State
	rec.State, rec.Ended, rec.Note = Done, e.Clock.Now(), fmt.Sprintf("marked done by hand (was %s)", prev)
	if e.Journal.Outcome == OutcomeStopped {
		e.Journal.Outcome = ""
	}
	if err := e.save(); err != nil {
		return err
	}
	e.event(Event{Kind: "step-done", Step: name, Message: rec.Note})
	return nil
}
