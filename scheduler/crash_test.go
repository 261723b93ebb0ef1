package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/config"
)

// childEnv makes the test binary act as a cutover process over the
// file-backed fakes in the named directory (see TestMain).
const childEnv = "SCHEDULER_TEST_CHILD"

// Exit codes of the child.
const (
	childOK       = 0
	childFailed   = 1
	childDecision = 3
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(child(dir))
	}
	os.Exit(m.Run())
}

// child runs the engine like `cutover run --yes --accept-slow-propagation`
// would, with the crash seam read from the environment.
func child(dir string) int {
	cfg, err := config.Load(filepath.Join(dir, "cutover.toml"), config.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return childFailed
	}
	clock := SystemClock{}
	j, err := LoadJournal(cfg.StateDir)
	if errors.Is(err, ErrNoJournal) {
		j = NewJournal(cfg.StateDir, cfg.File, cfg.CutoverAt, cfg.Old.Address, cfg.New.Address, clock.Now())
	} else if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return childFailed
	}
	lock, err := AcquireLock(cfg.StateDir, "crash test child", clock.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return childFailed
	}
	defer lock.Release()
	fault, err := FaultFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return childFailed
	}
	z := &fakeZone{dir: dir, cfg: cfg}
	e := &Engine{Config: cfg, Journal: j, DNS: z, Hosts: &fakeHosts{dir: dir}, Hooks: shellHooks{},
		Prop: &fakeProp{z: z}, Clock: clock, Out: os.Stderr, Fault: fault, AcceptSlow: true}
	if s := os.Getenv("MARK_DONE"); s != "" {
		if err := e.MarkDone(StepName(s)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return childFailed
		}
	}
	err = e.Run(context.Background())
	var de *NeedsDecisionError
	switch {
	case errors.As(err, &de):
		fmt.Fprintln(os.Stderr, err)
		return childDecision
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return childFailed
	}
	return childOK
}

func runChild(t *testing.T, dir string, env ...string) (code int, killed bool, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + dir}, env...)...)
	var buf bytes.Buffer
	cmd.Stderr = &buf
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return -1, true, buf.String()
		}
		return ee.ExitCode(), false, buf.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, false, buf.String()
}

// TestCrashEverywhere kills the process (SIGKILL, nothing deferred runs)
// before, in the middle of and after every step, runs it again, and checks
// that every hook ran exactly once and the end state is that of a run
// that was never interrupted.
func TestCrashEverywhere(t *testing.T) {
	// The reference: one uninterrupted run.
	ref := t.TempDir()
	crashConfig(t, ref)
	if code, _, stderr := runChild(t, ref); code != childOK {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, stderr)
	}
	refZone, _ := (&fakeZone{dir: ref}).read()
	refJournal, err := LoadJournal(filepath.Join(ref, "state"))
	if err != nil {
		t.Fatal(err)
	}
	hooks := readLines(t, filepath.Join(ref, "hooks.log"))
	hosts := readLines(t, filepath.Join(ref, "hosts.log"))
	dnsOps := readLines(t, filepath.Join(ref, "dns.log"))

	for _, info := range Steps {
		for _, when := range []string{FaultBefore, FaultDuring, FaultAfter} {
			fault := when + ":" + string(info.Name)
			t.Run(fault, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				crashConfig(t, dir)
				// A long delay: "during" fires when the action returns,
				// so the action took effect but its end is not journaled.
				_, killed, stderr := runChild(t, dir, FaultEnv+"="+fault, FaultDelayEnv+"=1h")
				if !killed {
					t.Fatalf("the child was not killed at %s\n%s", fault, stderr)
				}
				code, killed, stderr := runChild(t, dir)
				if killed {
					t.Fatalf("killed without a fault\n%s", stderr)
				}
				if when == FaultDuring && !info.Idempotent {
					// A hook cut short is not rerun silently: the
					// operator checks, then marks it done.
					if code != childDecision {
						t.Fatalf("rerun after a crash in hook %s: exit %d, want %d (ask)\n%s", info.Name, code, childDecision, stderr)
					}
					code, _, stderr = runChild(t, dir, "MARK_DONE="+string(info.Name))
				}
				if code != childOK {
					t.Fatalf("rerun: exit %d\n%s", code, stderr)
				}
				assertLines(t, filepath.Join(dir, "hooks.log"), hooks...)
				rerun := ""
				if when == FaultDuring && info.Idempotent {
					rerun = string(info.Name) // cut short: it runs again
				}
				assertOps(t, filepath.Join(dir, "hosts.log"), hosts, rerun)
				assertOps(t, filepath.Join(dir, "dns.log"), dnsOps, map[StepName]string{LowerTTL: "lower-ttl", SwapDNS: "swap", RestoreTTL: "restore-ttl"}[StepName(rerun)])
				zone, _ := (&fakeZone{dir: dir}).read()
				for name, want := range refZone {
					if !sameFacts(zone[name], want) {
						t.Errorf("zone %s: %v, want %v", name, zone[name], want)
					}
				}
				j, err := LoadJournal(filepath.Join(dir, "state"))
				if err != nil {
					t.Fatal(err)
				}
				if j.Outcome != refJournal.Outcome || j.DNS != refJournal.DNS {
					t.Errorf("journal outcome %q dns %q, want %q %q", j.Outcome, j.DNS, refJournal.Outcome, refJournal.DNS)
				}
				for _, s := range j.Steps {
					if s.State != Done {
						t.Errorf("step %s is %s", s.Name, s.State)
					}
				}
			})
		}
	}
}

// assertOps checks that the operations in path are want, except that op
// rerun (an idempotent step cut short) may appear twice in a row.
func assertOps(t *testing.T, path string, want []string, rerun string) {
	t.Helper()
	got := readLines(t, path)
	if rerun != "" {
		if i := slices.Index(got, rerun); i >= 0 && i+1 < len(got) && got[i+1] == rerun {
			got = slices.Delete(got, i, i+1)
		} else if slices.Contains(want, rerun) {
			t.Errorf("%s: %q: the interrupted %s did not run again", filepath.Base(path), got, rerun)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: %q, want %q", filepath.Base(path), got, want)
	}
}

// crashConfig is testConfig with a window that opened a minute ago and no
// wait before restore-ttl, so that each child run takes milliseconds.
func crashConfig(t *testing.T, dir string) {
	t.Helper()
	testConfig(t, dir, time.Now().Add(-time.Minute), "")
	path := filepath.Join(dir, "cutover.toml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`restore_ttl_after = "2s"`), []byte(`restore_ttl_after = "0s"`), 1)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
