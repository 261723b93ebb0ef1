package scheduler

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A signal (ctx cancelled) while waiting for the window or in the middle of
// a step stops the run at once, journals where, and the next run goes on.
func TestInterruptAndResume(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		stuck     bool // the resolvers never converge: cancel during await-authoritative
		wantErr   string
		wantState map[StepName]StepState
	}{
		{desc: "while waiting for the window", wantErr: "scheduler: interrupted during disable",
			wantState: map[StepName]StepState{Prepare: Done, Disable: Pending}},
		{desc: "in the middle of a wait step", stuck: true, wantErr: "scheduler: interrupted during await-authoritative",
			wantState: map[StepName]StepState{SwapDNS: Done, AwaitAuthoritative: Running}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(time.Hour), "")
			if tc.stuck {
				os.WriteFile(filepath.Join(dir, "stuck"), nil, 0o600)
			}
			ctx, cancel := context.WithCancel(context.Background())
			clock := NewFakeClock(t0)
			clock.OnAfter = func(c *FakeClock, d time.Duration) {
				if !tc.stuck && c.Now().After(t0.Add(30*time.Minute)) {
					cancel() // half-way through the wait for the window
				}
				c.Advance(d)
			}
			var out bytes.Buffer
			e := newTestEngine(t, dir, cfg, clock, &out)
			if tc.stuck {
				go func() {
					// The journal on disk says when the step has started.
					for {
						if j, err := LoadJournal(cfg.StateDir); err == nil && j.Step(AwaitAuthoritative).State == Running {
							break
						}
						time.Sleep(5 * time.Millisecond)
					}
					cancel()
				}()
			}
			err := e.Run(ctx)
			if got := errString(err); got != tc.wantErr {
				t.Fatalf("Run: %q, want %q", got, tc.wantErr)
			}
			j, jerr := LoadJournal(cfg.StateDir)
			if jerr != nil {
				t.Fatal(jerr)
			}
			for step, want := range tc.wantState {
				if got := j.Step(step).State; got != want {
					t.Errorf("journal: %s is %s, want %s", step, got, want)
				}
			}
			if j.Outcome != "" || j.Rollback != nil {
				t.Errorf("an interrupted run is neither finished nor rolled back: outcome %q rollback %v", j.Outcome, j.Rollback)
			}
			// Run again: it continues where it stopped and finishes.
			os.Remove(filepath.Join(dir, "stuck"))
			e = newTestEngine(t, dir, cfg, autoClock(clock.Now()), &out)
			if err := e.Run(context.Background()); err != nil {
				t.Fatalf("resumed Run: %v", err)
			}
			assertLines(t, filepath.Join(dir, "hooks.log"), "prepare", "disable", "activate")
			assertLines(t, filepath.Join(dir, "hosts.log"), "preflight", "initial-sync", "catch-up", "catch-up", "prepare-final-sync", "final-sync", "verify", "fixup")
		})
	}
}

func TestNotify(t *testing.T) {
	dir := t.TempDir()
	got := filepath.Join(dir, "notified")
	l, err := OpenEventLog(dir, `printf '%s|%s|%s|%s\n' "$CUTOVER_EVENT_KIND" "$CUTOVER_STEP" "$CUTOVER_STATE" "$CUTOVER_MESSAGE" >> `+got, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Emit(Event{Kind: "waiting", Step: Disable, Message: "not notified: progress"})
	l.Emit(Event{Kind: "step-done", Step: SwapDNS, State: Done, Message: "A/AAAA -> 192.0.2.2"})
	l.Emit(Event{Kind: "step-failed", Step: Verify, State: Failed, Error: "1 difference"})
	b, _ := os.ReadFile(got)
	want := "step-done|swap-dns|done|A/AAAA -> 192.0.2.2\nstep-failed|verify|failed|1 difference\n"
	if string(b) != want {
		t.Fatalf("notify saw %q, want %q", b, want)
	}
	// Every event is in the log, notified or not.
	if evs := readEvents(t, dir); len(evs) != 3 {
		t.Fatalf("%d events in the log, want 3", len(evs))
	}
	// A failing notify command is reported and does not stop anything.
	var warn bytes.Buffer
	l2, _ := OpenEventLog(t.TempDir(), "exit 3", nil, &warn)
	defer l2.Close()
	l2.Emit(Event{Kind: "step-done", Step: Verify})
	if !strings.Contains(warn.String(), "cutover: warning: [notify] command failed for step-done: exit status 3") {
		t.Fatalf("warning %q", warn.String())
	}
}
