package scheduler

import (
	"context"
	"fmt"
	"time"
)

// The catch-up passes copy the initial entries again while the engine waits for the window, so
// that the final sync, inside the window, copies only what changed in the last seconds instead
// of everything since the initial sync (hours of mail, or the minutes of a lab's lead).
const (
	// catchUpFirst is how long before the window the first pass starts (at once when the
	// window is nearer).
	catchUpFirst = 10 * time.Minute
	// catchUpMargin is the room the last pass leaves before the window, beyond half its
	// expected duration again.
	catchUpMargin = time.Second
	// prepareLead is how long before the window, at the latest, the final sync's transfer is
	// set up (PrepareFinalSync): right after the last catch-up pass, else this much ahead.
	prepareLead = 5 * time.Second
)

// beforeWindow is what the engine does while it waits for the window (disable's WhileWaiting):
// the catch-up passes, then the final sync's set-up on the hosts. Neither changes what the
// cutover does: a failure only warns, and the final sync does the work itself.
func (e *Engine) beforeWindow(ctx context.Context, until time.Time) {
	if e.Hosts == nil || len(e.Config.Sync) == 0 || e.Journal.Step(FinalSync).State != Pending {
		return
	}
	e.catchUp(ctx, until)
	if err := e.waitShowing(ctx, Disable, until, until.Add(-prepareLead)); err != nil {
		return
	}
	pctx, cancel := e.untilWindow(ctx, until)
	defer cancel()
	start := e.Clock.Now()
	err := e.Hosts.PrepareFinalSync(pctx, e.Out)
	took := e.Clock.Now().Sub(start).Round(time.Millisecond)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		fmt.Fprintf(e.Out, "== final-sync set-up ahead of the window: failed after %s (the final sync sets up its own): %v\n", took, err)
		e.event(Event{Kind: "final-sync-prepare-failed", Step: FinalSync, Error: err.Error()})
	default:
		fmt.Fprintf(e.Out, "== final-sync set-up ahead of the window: done in %s\n", took)
		e.event(Event{Kind: "final-sync-prepared", Step: FinalSync, Message: "in " + took.String()})
	}
}

// catchUp runs the catch-up passes before until (the window): a first pass catchUpFirst before
// it, then, when there is room, a last pass timed from the first one's duration to end just
// before the window. A pass still running when the window opens is stopped (the final sync
// copies everything anyway); a failed pass only warns. It runs only after an initial sync, and
// not when the run was interrupted (ctx).
func (e *Engine) catchUp(ctx context.Context, until time.Time) {
	if e.Journal.Step(InitialSync).State != Done {
		return
	}
	first := until.Add(-catchUpFirst)
	if err := e.waitShowing(ctx, Disable, until, first); err != nil {
		return
	}
	took, ok := e.catchUpPass(ctx, until, 1)
	if !ok {
		return
	}
	// The last pass copies the changes of the first one's duration and some: it should take
	// no longer, and starts so that half as long again fits before the window.
	start := until.Add(-(took + took/2 + catchUpMargin))
	if !e.Clock.Now().Before(start) {
		return
	}
	if err := e.waitShowing(ctx, Disable, until, start); err != nil {
		return
	}
	e.catchUpPass(ctx, until, 2)
}

// untilWindow is ctx, stopped when the window opens at until. On the machine's timer, not on
// Clock: a test's fake Clock moves the wall clock at will. The engine then waits for the window
// on Clock as always.
func (e *Engine) untilWindow(ctx context.Context, until time.Time) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, until.Sub(e.Clock.Now()))
}

// catchUpPass runs one catch-up pass, stopped at until, and says whether it finished.
func (e *Engine) catchUpPass(ctx context.Context, until time.Time, n int) (time.Duration, bool) {
	pctx, cancel := e.untilWindow(ctx, until)
	defer cancel()
	fmt.Fprintf(e.Out, "== catch-up %d: copy what changed since the initial sync, before the window opens at %s\n", n, until.UTC().Format("15:04:05"))
	start := e.Clock.Now()
	err := e.Hosts.CatchUp(pctx, e.Out)
	took := e.Clock.Now().Sub(start)
	if ctx.Err() == nil && pctx.Err() != nil {
		fmt.Fprintf(e.Out, "== catch-up %d: stopped after %s: the window opens; the final sync copies the rest\n", n, took.Round(time.Millisecond))
		e.event(Event{Kind: "catch-up-stopped", Step: Disable, Message: fmt.Sprintf("pass %d after %s", n, took.Round(time.Millisecond))})
		return took, false
	}
	if ctx.Err() != nil {
		return took, false
	}
	if err != nil {
		fmt.Fprintf(e.Out, "== catch-up %d: failed after %s (the final sync copies everything): %v\n", n, took.Round(time.Millisecond), err)
		e.event(Event{Kind: "catch-up-failed", Step: Disable, Error: err.Error()})
		return took, false
	}
	fmt.Fprintf(e.Out, "== catch-up %d: done in %s\n", n, took.Round(time.Millisecond))
	e.event(Event{Kind: "catch-up-done", Step: Disable, Message: fmt.Sprintf("pass %d in %s", n, took.Round(time.Millisecond))})
	return took, true
}
