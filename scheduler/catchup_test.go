package scheduler

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// timedHosts is fakeHosts whose catch-up passes take a given (fake) time, fail, or run until
// they are stopped; it records when each pass started.
type timedHosts struct {
	*fakeHosts
	clock    *FakeClock
	took     time.Duration
	fail     error
	block    bool
	starts   []time.Duration // after t0
	prepared time.Duration   // after t0
}

func (h *timedHosts) PrepareFinalSync(ctx context.Context, out io.Writer) error {
	h.prepared = h.clock.Now().Sub(t0)
	return h.fakeHosts.PrepareFinalSync(ctx, out)
}

func (h *timedHosts) CatchUp(ctx context.Context, out io.Writer) error {
	h.starts = append(h.starts, h.clock.Now().Sub(t0))
	if h.block {
		<-ctx.Done()
		return ctx.Err()
	}
	h.clock.Advance(h.took)
	if h.fail != nil {
		return h.fail
	}
	return h.fakeHosts.CatchUp(ctx, out)
}

// timedEngine is a test engine for a window at cutoverIn after t0 whose hosts are h (its
// fakeHosts and clock filled in).
func timedEngine(t *testing.T, cutoverIn time.Duration, clock *FakeClock, h *timedHosts) (*Engine, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	var out bytes.Buffer
	e := newTestEngine(t, dir, testConfig(t, dir, t0.Add(cutoverIn), ""), clock, &out)
	h.fakeHosts, h.clock = e.Hosts.(*fakeHosts), clock
	e.Hosts = h
	return e, &out
}

func TestCatchUp(t *testing.T) {
	for _, tc := range []struct {
		desc       string
		cutoverIn  time.Duration
		took       time.Duration
		fail       error
		wantStarts []time.Duration // after t0
		wantOut    []string
	}{
		{desc: "window an hour ahead: a pass 10 minutes before, the last one timed to end just before it",
			cutoverIn: time.Hour, took: 4 * time.Second,
			// 4s + 2s (half again) + 1s margin before the window.
			wantStarts: []time.Duration{50 * time.Minute, time.Hour - 7*time.Second},
			wantOut:    []string{"== catch-up 1: copy what changed since the initial sync, before the window opens at 13:00:00", "== catch-up 1: done in 4s", "== catch-up 2: done in 4s"}},
		{desc: "window a minute ahead: the first pass at once",
			cutoverIn: time.Minute, took: 10 * time.Second,
			wantStarts: []time.Duration{0, time.Minute - 16*time.Second},
			wantOut:    []string{"== catch-up 1: done in 10s", "== catch-up 2: done in 10s"}},
		{desc: "a first pass that leaves no room: no second one",
			cutoverIn: time.Minute, took: 30 * time.Second,
			wantStarts: []time.Duration{0},
			wantOut:    []string{"== catch-up 1: done in 30s"}},
		{desc: "a failed pass warns and is not repeated: the final sync copies everything",
			cutoverIn: time.Hour, took: time.Second, fail: errors.New("sshops: old: rsync exited 12"),
			wantStarts: []time.Duration{50 * time.Minute},
			wantOut:    []string{"== catch-up 1: failed after 1s (the final sync copies everything): sshops: old: rsync exited 12"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			h := &timedHosts{took: tc.took, fail: tc.fail}
			e, out := timedEngine(t, tc.cutoverIn, autoClock(t0), h)
			if err := e.Run(context.Background()); err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			if !slices.Equal(h.starts, tc.wantStarts) {
				t.Errorf("passes started at t0+%v, want t0+%v", h.starts, tc.wantStarts)
			}
			for _, w := range tc.wantOut {
				if !slices.Contains(strings.Split(out.String(), "\n"), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if got := e.Journal.Step(Disable).Started.Sub(t0); got != max(tc.cutoverIn, 40*time.Second) {
				t.Errorf("disable started at t0+%s, want at the window", got)
			}
			// The final sync's set-up follows the passes, however they went.
			want := "== final-sync set-up ahead of the window: done in 0s"
			if !slices.Contains(strings.Split(out.String(), "\n"), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		})
	}
}

// A pass still running when the window opens is stopped, and the window opens on time.
func TestCatchUpStoppedAtTheWindow(t *testing.T) {
	e, out := timedEngine(t, time.Hour, NewFakeClock(t0), &timedHosts{block: true})
	until := t0.Add(200 * time.Millisecond)
	start := time.Now()
	if _, ok := e.catchUpPass(context.Background(), until, 2); ok {
		t.Errorf("catchUpPass finished, want stopped")
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("stopped after %s, want at the window (200ms)", took)
	}
	want := "== catch-up 2: stopped after 0s: the window opens; the final sync copies the rest"
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

// No catch-up without an initial sync to catch up with; the final sync is still set up ahead,
// prepareLead before the window.
func TestCatchUpNeedsInitialSync(t *testing.T) {
	h := &timedHosts{}
	e, out := timedEngine(t, time.Hour, autoClock(t0), h)
	e.Journal.Step(InitialSync).State = Skipped
	e.beforeWindow(context.Background(), t0.Add(time.Hour))
	if len(h.starts) > 0 || strings.Contains(out.String(), "catch-up") {
		t.Errorf("catch-up ran without an initial sync: passes at %v, output %q", h.starts, out.String())
	}
	if h.prepared != time.Hour-prepareLead {
		t.Errorf("final sync set up at t0+%s, want t0+%s", h.prepared, time.Hour-prepareLead)
	}
}
