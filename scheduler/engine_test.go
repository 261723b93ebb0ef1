package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// autoClock advances the fake clock by whatever the engine waits for.
func autoClock(start time.Time) *FakeClock {
	c := NewFakeClock(start)
	c.OnAfter = func(c *FakeClock, d time.Duration) { c.Advance(d) }
	return c
}

func TestRunTimeline(t *testing.T) {
	for _, tc := range []struct {
		desc        string
		cutoverIn   time.Duration
		acceptSlow  bool
		wantDisable time.Duration // after t0
	}{
		{desc: "window far enough ahead opens at cutover_at", cutoverIn: time.Hour, wantDisable: time.Hour},
		// lower-ttl ran at t0 with 30s served: caches may hold it until
		// t0+30s, plus the 10s margin. The window must not open earlier.
		{desc: "window too close waits for the old TTL to run out", cutoverIn: 5 * time.Second, wantDisable: 40 * time.Second},
		{desc: "window too close, slow propagation accepted: opens at cutover_at", cutoverIn: 5 * time.Second, acceptSlow: true, wantDisable: 5 * time.Second},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(tc.cutoverIn), "")
			clock := autoClock(t0)
			var out bytes.Buffer
			e := newTestEngine(t, dir, cfg, clock, &out)
			e.AcceptSlow = tc.acceptSlow
			if err := e.Run(context.Background()); err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			j := e.Journal
			for _, s := range j.Steps {
				if s.State != Done {
					t.Errorf("step %s is %s, want done", s.Name, s.State)
				}
			}
			if got := j.Step(Disable).Started.Sub(t0); got != tc.wantDisable {
				t.Errorf("disable started at t0+%s, want t0+%s", got, tc.wantDisable)
			}
			act := j.Step(Activate)
			if got, want := j.Step(RestoreTTL).Started, act.Ended.Add(2*time.Second); got.Before(want) {
				t.Errorf("restore-ttl started %s, before activate ended + restore_ttl_after (%s)", got, want)
			}
			if j.Outcome != OutcomeDone || j.DNS != DNSRestored {
				t.Errorf("outcome %q dns %q, want done restored", j.Outcome, j.DNS)
			}
			assertLines(t, filepath.Join(dir, "hosts.log"), "preflight", "initial-sync", "catch-up", "catch-up", "prepare-final-sync", "final-sync", "verify", "fixup")
			assertLines(t, filepath.Join(dir, "hooks.log"), "prepare", "disable", "activate")
			assertLines(t, filepath.Join(dir, "dns.log"), "lower-ttl", "swap", "restore-ttl")

			// The journal on disk says the same, mode 0600.
			fi, err := os.Stat(filepath.Join(cfg.StateDir, JournalFile))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("journal mode %v, want 0600", fi.Mode().Perm())
			}
			again, err := LoadJournal(cfg.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			if again.Outcome != OutcomeDone || again.Snapshot == nil || again.AcceptSlow != tc.acceptSlow {
				t.Errorf("reloaded journal: outcome %q snapshot %v accept_slow %v", again.Outcome, again.Snapshot, again.AcceptSlow)
			}
			// A finished cutover does not run again.
			e2 := newTestEngine(t, dir, cfg, clock, &out)
			if err := e2.Run(context.Background()); !errors.Is(err, ErrFinished) {
				t.Errorf("second Run: %v, want ErrFinished", err)
			}
			// Every step change is in the event log.
			evs := readEvents(t, cfg.StateDir)
			for _, s := range Steps {
				if !slices.ContainsFunc(evs, func(ev Event) bool { return ev.Kind == "step-done" && ev.Step == s.Name }) {
					t.Errorf("no step-done event for %s", s.Name)
				}
			}
		})
	}
}

func TestWaitNeverFiresEarly(t *testing.T) {
	// The wall clock jumps back an hour while the engine waits: the wait
	// must go on until the wall clock really reaches the time.
	clock := NewFakeClock(t0)
	jumped := false
	clock.OnAfter = func(c *FakeClock, d time.Duration) {
		if !jumped {
			jumped = true
			c.Jump(t0.Add(-time.Hour))
		}
		c.Advance(d)
	}
	e := &Engine{Clock: clock, Out: &bytes.Buffer{}, Journal: &Journal{}}
	target := t0.Add(10 * time.Second)
	if err := e.waitUntil(context.Background(), Disable, target); err != nil {
		t.Fatal(err)
	}
	if now := clock.Now(); now.Before(target) {
		t.Fatalf("wait returned at %s, before %s", now, target)
	}
	// A cancelled context ends a wait at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	clock.OnAfter = nil
	err := e.waitUntil(ctx, Disable, clock.Now().Add(time.Hour))
	if got, want := errString(err), "scheduler: interrupted during disable"; got != want {
		t.Fatalf("cancelled wait: %q, want %q", got, want)
	}
}

func TestFailureRollsBack(t *testing.T) {
	for _, tc := range []struct {
		desc       string
		fail       string // operation the fakes fail
		stuck      bool   // resolvers never converge
		wantErr    string
		wantHooks  []string
		wantFailed StepName
	}{
		{desc: "final-sync fails", fail: "final-sync", wantFailed: FinalSync,
			wantErr:   "final-sync: fake: final-sync fails as told; rolled back",
			wantHooks: []string{"prepare", "disable", "reenable"}},
		{desc: "verify fails", fail: "verify", wantFailed: Verify,
			wantErr:   "verify: fake: verify fails as told; rolled back",
			wantHooks: []string{"prepare", "disable", "reenable"}},
		{desc: "resolvers time out after swap-dns", stuck: true, wantFailed: AwaitAuthoritative,
			wantErr:   "await-authoritative: converge_timeout 2s reached: fake: not converged: context deadline exceeded; rolled back",
			wantHooks: []string{"prepare", "disable", "reenable"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(time.Hour), "")
			if tc.fail != "" {
				os.WriteFile(filepath.Join(dir, "fail"), []byte(tc.fail), 0o600)
			}
			if tc.stuck {
				os.WriteFile(filepath.Join(dir, "stuck"), nil, 0o600)
			}
			z := &fakeZone{dir: dir, cfg: cfg}
			before, _ := z.read()
			var out bytes.Buffer
			e := newTestEngine(t, dir, cfg, autoClock(t0), &out)
			err := e.Run(context.Background())
			if got := errString(err); got != tc.wantErr {
				t.Fatalf("Run: %q, want %q\n%s", got, tc.wantErr, out.String())
			}
			var rb *RolledBackError
			if !errors.As(err, &rb) || rb.Rollback != nil {
				t.Fatalf("error %T, want a successful *RolledBackError", err)
			}
			after, _ := z.read()
			if !sameFacts(before["mail.example.org."], after["mail.example.org."]) {
				t.Errorf("zone after rollback %v, want the original %v", after, before)
			}
			assertLines(t, filepath.Join(dir, "hooks.log"), tc.wantHooks...)
			j := e.Journal
			if j.Outcome != OutcomeRolledBack || j.DNS != DNSReverted || j.Rollback == nil || j.Rollback.Error != "" {
				t.Errorf("journal outcome %q dns %q rollback %+v", j.Outcome, j.DNS, j.Rollback)
			}
			if s := j.Step(tc.wantFailed); s.State != Failed || s.Error == "" {
				t.Errorf("step %s: %+v, want failed with its error", tc.wantFailed, s)
			}
			if s := j.Step(Activate); s.State != Pending {
				t.Errorf("activate is %s after a rollback, want pending", s.State)
			}
		})
	}
}

func TestOnFailureStopThenResume(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, t0.Add(time.Hour), "")
	cfg.OnFailure = "stop"
	os.WriteFile(filepath.Join(dir, "fail"), []byte("verify"), 0o600)
	var out bytes.Buffer
	e := newTestEngine(t, dir, cfg, autoClock(t0), &out)
	err := e.Run(context.Background())
	if got, want := errString(err), "verify: fake: verify fails as told"; got != want {
		t.Fatalf("Run: %q, want %q", got, want)
	}
	if e.Journal.Outcome != OutcomeStopped || e.Journal.DNS != DNSLowered {
		t.Fatalf("outcome %q dns %q, want stopped with the TTL still lowered", e.Journal.Outcome, e.Journal.DNS)
	}
	// The operator fixes the cause and runs again: it continues at verify.
	os.Remove(filepath.Join(dir, "fail"))
	e = newTestEngine(t, dir, cfg, autoClock(e.Clock.Now()), &out)
	if err := e.Run(context.Background()); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	assertLines(t, filepath.Join(dir, "hosts.log"), "preflight", "initial-sync", "catch-up", "catch-up", "prepare-final-sync", "final-sync", "verify", "fixup")
	assertLines(t, filepath.Join(dir, "hooks.log"), "prepare", "disable", "activate")
	if n := e.Journal.Step(Verify).Attempts; n != 2 {
		t.Errorf("verify attempts %d, want 2", n)
	}
}

func TestInterruptedHookAsks(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, t0.Add(time.Hour), "")
	var out bytes.Buffer
	e := newTestEngine(t, dir, cfg, autoClock(t0), &out)
	for _, s := range []StepName{Preflight, LowerTTL, InitialSync, Prepare} {
		if err := e.RunStep(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	rec := e.Journal.Step(Disable)
	rec.State, rec.Started = Running, t0
	e.Journal.Save(t0)

	err := newTestEngine(t, dir, cfg, autoClock(t0), &out).Run(context.Background())
	if got, want := errString(err), "scheduler: step disable was interrupted in a previous run (started 2026-11-23T12:00:00Z) and runs a hook that may not be safe to run twice"; got != want {
		t.Fatalf("Run: %q, want %q", got, want)
	}
	e = newTestEngine(t, dir, cfg, autoClock(t0), &out)
	e.RerunInterrupted = true
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertLines(t, filepath.Join(dir, "hooks.log"), "prepare", "disable", "activate")
}

func TestRunStepOrder(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		done    []StepName
		step    StepName
		wantErr string
	}{
		{desc: "activate before DNS converged", done: []StepName{Preflight, LowerTTL, InitialSync, Prepare, Disable, FinalSync, Verify, Fixup, SwapDNS},
			step: Activate, wantErr: "scheduler: activate cannot run yet: await-authoritative is pending"},
		{desc: "swap before verify", done: []StepName{Preflight},
			step: SwapDNS, wantErr: "scheduler: swap-dns cannot run yet: lower-ttl is pending"},
		{desc: "unknown step", step: "reboot",
			wantErr: `scheduler: unknown step "reboot" (valid: preflight, lower-ttl, initial-sync, prepare, disable, final-sync, verify, fixup, swap-dns, await-authoritative, await-resolvers, activate, restore-ttl)`},
		{desc: "preflight first", step: Preflight},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(time.Hour), "")
			e := newTestEngine(t, dir, cfg, autoClock(t0), &bytes.Buffer{})
			for _, s := range tc.done {
				if err := e.RunStep(context.Background(), s); err != nil {
					t.Fatalf("step %s: %v", s, err)
				}
			}
			if got := errString(e.RunStep(context.Background(), tc.step)); got != tc.wantErr {
				t.Fatalf("RunStep(%s): %q, want %q", tc.step, got, tc.wantErr)
			}
		})
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireLock(dir, "cutover run x.toml", t0)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	_, err = AcquireLock(dir, "cutover run x.toml", t0)
	want := `scheduler: "` + dir + `" is in use by another cutover (pid ` + itoa(os.Getpid()) + " on " + host + " since 2026-11-23T12:00:00Z: cutover run x.toml)"
	if got := errString(err); got != want {
		t.Fatalf("second lock: %q, want %q", got, want)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := AcquireLock(dir, "again", t0)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

func TestLoadJournalDamaged(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, JournalFile), []byte("{\"version\": 1, "), 0o600)
	_, err := LoadJournal(dir)
	want := `scheduler: journal "` + filepath.Join(dir, JournalFile) + `" is damaged: unexpected end of JSON input`
	if got := errString(err); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	_, err = LoadJournal(filepath.Join(dir, "nothing"))
	if !errors.Is(err, ErrNoJournal) {
		t.Fatalf("missing journal: %v, want ErrNoJournal", err)
	}
}

func assertLines(t *testing.T, path string, want ...string) {
	t.Helper()
	if got := readLines(t, path); !slices.Equal(got, want) {
		t.Errorf("%s: %q, want %q", filepath.Base(path), got, want)
	}
}

func readEvents(t *testing.T, dir string) []Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// A rollback that fails half-way leaves the run unable to go forward: only
// `cutover rollback` may continue.
func TestFailedRollbackBlocksRun(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, t0.Add(time.Hour), "")
	os.WriteFile(filepath.Join(dir, "stuck"), nil, 0o600) // resolvers never converge
	var out bytes.Buffer
	e := newTestEngine(t, dir, cfg, autoClock(t0), &out)
	// Let await-authoritative time out, and the revert fail.
	e.Prop = &failingRevertProp{fakeProp: e.Prop.(*fakeProp), dir: dir}
	err := e.Run(context.Background())
	var rb *RolledBackError
	if !errors.As(err, &rb) || rb.Rollback == nil {
		t.Fatalf("Run: %v, want a rollback that failed", err)
	}
	if e.Journal.Outcome != OutcomeStopped {
		t.Fatalf("outcome %q, want stopped", e.Journal.Outcome)
	}
	os.Remove(filepath.Join(dir, "stuck"))
	os.Remove(filepath.Join(dir, "fail"))
	for _, f := range []func(*Engine) error{
		func(e *Engine) error { return e.Run(context.Background()) },
		func(e *Engine) error { return e.RunStep(context.Background(), AwaitAuthoritative) },
	} {
		err = f(newTestEngine(t, dir, cfg, autoClock(t0), &out))
		want := "scheduler: a rollback (await-authoritative failed: converge_timeout 2s reached: fake: not converged: context deadline exceeded) did not finish: revert DNS to the snapshot (mail.example.org. A {127.0.0.10} AAAA {::10}): fake: revert fails as told"
		if got := errString(err); got != want {
			t.Fatalf("after a failed rollback: %q, want %q", got, want)
		}
	}
	// The rollback by hand finishes it.
	e = newTestEngine(t, dir, cfg, autoClock(t0), &out)
	if err := e.Rollback(context.Background(), "by hand"); err != nil {
		t.Fatal(err)
	}
	if e.Journal.Outcome != OutcomeRolledBack {
		t.Fatalf("outcome %q after the rollback by hand", e.Journal.Outcome)
	}
}

// failingRevertProp makes the fakes' revert fail once await-authoritative timed out.
type failingRevertProp struct {
	*fakeProp
	dir string
}

func (p *failingRevertProp) WaitAuthoritative(ctx context.Context, out io.Writer) error {
	err := p.fakeProp.WaitAuthoritative(ctx, out)
	os.WriteFile(filepath.Join(p.dir, "fail"), []byte("revert"), 0o600)
	return err
}

// A failure before anything changed (preflight) has nothing to roll back:
// the run stops and stays resumable.
func TestPreflightFailureStaysResumable(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, t0.Add(time.Hour), "")
	os.WriteFile(filepath.Join(dir, "fail"), []byte("preflight"), 0o600)
	var out bytes.Buffer
	e := newTestEngine(t, dir, cfg, autoClock(t0), &out)
	err := e.Run(context.Background())
	if got, want := errString(err), "preflight: fake: preflight fails as told"; got != want {
		t.Fatalf("Run: %q, want %q", got, want)
	}
	if e.Journal.Rollback != nil || e.Journal.Outcome != OutcomeStopped {
		t.Fatalf("rollback %v outcome %q, want no rollback and stopped", e.Journal.Rollback, e.Journal.Outcome)
	}
	os.Remove(filepath.Join(dir, "fail"))
	if err := newTestEngine(t, dir, cfg, autoClock(t0), &out).Run(context.Background()); err != nil {
		t.Fatalf("resumed Run: %v", err)
	}
	assertLines(t, filepath.Join(dir, "hooks.log"), "prepare", "disable", "activate")
}

// Preflight says when the provider was never tried on this zone with
// cutover dns selftest, and is silent once a passed selftest is journaled.
func TestPreflightMentionsSelftest(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		selftest *SelftestRecord
		want     string
	}{
		{desc: "no selftest", want: "no passed selftest of provider fake on zone example.org.: before the window, run cutover dns selftest "},
		{desc: "a failed one", selftest: &SelftestRecord{Provider: "fake", Zone: "example.org.", At: t0, Passed: false},
			want: "no passed selftest of provider fake on zone example.org.: before the window, run cutover dns selftest "},
		{desc: "a passed one on another zone", selftest: &SelftestRecord{Provider: "fake", Zone: "example.net.", At: t0, Passed: true},
			want: "no passed selftest of provider fake on zone example.org.: before the window, run cutover dns selftest "},
		{desc: "a passed one", selftest: &SelftestRecord{Provider: "fake", Zone: "example.org.", At: t0, Passed: true}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(time.Hour), "")
			var out bytes.Buffer
			e := newTestEngine(t, dir, cfg, autoClock(t0), &out)
			if tc.selftest != nil {
				e.Journal.Selftests = append(e.Journal.Selftests, *tc.selftest)
			}
			if err := e.RunStep(context.Background(), Preflight); err != nil {
				t.Fatal(err)
			}
			want := ""
			if tc.want != "" {
				want = tc.want + cfg.File
			}
			var got string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.Contains(l, "selftest") {
					got = l
				}
			}
			if got != want {
				t.Fatalf("preflight said %q, want %q", got, want)
			}
		})
	}
}
