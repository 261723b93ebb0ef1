package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cutover-dev/cutover/config"
)

// fakeForwarder logs start and stop to dir/hooks.log, beside the hooks, so
// that a test sees the order of everything done on the hosts.
type fakeForwarder struct {
	dir      string
	startErr error
	carried  map[uint16]int64
	running  bool
}

func (f *fakeForwarder) Preflight(ctx context.Context, out io.Writer) error {
	appendLine(filepath.Join(f.dir, "hooks.log"), "bridge-preflight")
	return nil
}

func (f *fakeForwarder) Start(ctx context.Context, out io.Writer) error {
	appendLine(filepath.Join(f.dir, "hooks.log"), "bridge-start")
	f.running = true
	return f.startErr
}

func (f *fakeForwarder) Carried(ctx context.Context) (map[uint16]int64, error) { return f.carried, nil }

func (f *fakeForwarder) Stop(ctx context.Context, out io.Writer) (map[uint16]int64, error) {
	appendLine(filepath.Join(f.dir, "hooks.log"), "bridge-stop")
	f.running = false
	return f.carried, nil
}

const bridgeExtra = "deactivate = { on = \"local\", run = \"echo deactivate >> %s/hooks.log\" }\n[bridge]\nports = [25, 993]\n"

func bridgeEngine(t *testing.T, dir string, f *fakeForwarder, out io.Writer) (*Engine, *config.Config) {
	t.Helper()
	cfg := testConfig(t, dir, t0.Add(5*60e9), fmt.Sprintf(bridgeExtra, dir))
	e := newTestEngine(t, dir, cfg, autoClock(t0), out)
	if err := e.Journal.conform(cfg); err != nil {
		t.Fatal(err)
	}
	e.Forwarder = f
	return e, cfg
}

func stepOrder(j *Journal) []StepName {
	var out []StepName
	for _, s := range j.Steps {
		out = append(out, s.Name)
	}
	return out
}

func TestBridgeRun(t *testing.T) {
	dir := t.TempDir()
	f := &fakeForwarder{dir: dir, carried: map[uint16]int64{25: 2}}
	var out bytes.Buffer
	e, cfg := bridgeEngine(t, dir, f, &out)
	if err := e.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	j := e.Journal
	want := []StepName{Preflight, LowerTTL, InitialSync, Prepare, Disable, FinalSync, Verify, Fixup,
		Activate, Bridge, SwapDNS, AwaitAuthoritative, AwaitResolvers, Unbridge, RestoreTTL}
	if got := stepOrder(j); !slices.Equal(got, want) {
		t.Fatalf("steps %v\nwant  %v", got, want)
	}
	for _, s := range j.Steps {
		if s.State != Done {
			t.Errorf("step %s is %s, want done", s.Name, s.State)
		}
	}
	assertLines(t, filepath.Join(dir, "hooks.log"), "bridge-preflight", "prepare", "disable", "activate", "bridge-start", "bridge-stop")
	assertLines(t, filepath.Join(dir, "dns.log"), "lower-ttl", "swap", "restore-ttl")
	// unbridge waits for every cache to forget the old address: the swap +
	// lowered_ttl (3s) + the margin (10s); and comes after await-resolvers.
	if got, want := j.Step(Unbridge).Started, j.Step(SwapDNS).Ended.Add(13e9); got.Before(want) {
		t.Errorf("unbridge started %s, before the swap + TTL + margin (%s)", got, want)
	}
	if j.Step(Unbridge).Started.Before(j.Step(AwaitResolvers).Ended) {
		t.Error("unbridge started before await-resolvers ended")
	}
	if got, want := j.Step(Unbridge).Note, "forwarder stopped; connections carried: 25: 2, 993: 0"; got != want {
		t.Errorf("unbridge note %q, want %q", got, want)
	}
	// The journal on disk keeps the order of a handover through old.
	again, err := OpenJournal(cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := stepOrder(again); !slices.Equal(got, want) {
		t.Errorf("reloaded steps %v\nwant  %v", got, want)
	}
}

func TestBridgeFailures(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		failDNS   string // the fake zone fails this operation
		startErr  error
		carried   map[uint16]int64
		wantErr   string
		wantHooks []string
		wantDNS   []string
		outcome   string
	}{
		{desc: "bridge fails before any connection: stop it, deactivate new, re-enable old",
			startErr:  errors.New("port 443 held by nginx"),
			wantErr:   "bridge: port 443 held by nginx; rolled back",
			wantHooks: []string{"bridge-preflight", "prepare", "disable", "activate", "bridge-start", "bridge-stop", "deactivate", "reenable"},
			wantDNS:   []string{"lower-ttl", "revert"}, outcome: OutcomeRolledBack},
		{desc: "bridge fails after a connection went through: keep forwarding",
			startErr: errors.New("port 993 does not reach new"), carried: map[uint16]int64{25: 1},
			wantErr:   "bridge: port 993 does not reach new; not rolled back (the forwarder carried connections: new holds data old does not (25: 1, 993: 0)): the forwarder on old keeps running, so clients reach new through old",
			wantHooks: []string{"bridge-preflight", "prepare", "disable", "activate", "bridge-start"},
			wantDNS:   []string{"lower-ttl"}, outcome: OutcomeStopped},
		{desc: "swap fails: DNS may have moved, keep forwarding",
			failDNS:   "swap",
			wantErr:   "swap-dns: fake: swap fails as told; not rolled back (DNS was changed already): the forwarder on old keeps running, so clients reach new through old",
			wantHooks: []string{"bridge-preflight", "prepare", "disable", "activate", "bridge-start"},
			wantDNS:   []string{"lower-ttl"}, outcome: OutcomeStopped},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			if tc.failDNS != "" {
				appendLine(filepath.Join(dir, "fail"), tc.failDNS)
			}
			f := &fakeForwarder{dir: dir, startErr: tc.startErr, carried: tc.carried}
			var out bytes.Buffer
			e, _ := bridgeEngine(t, dir, f, &out)
			err := e.Run(context.Background())
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("Run: %v\nwant %s\n%s", err, tc.wantErr, out.String())
			}
			var kept *BridgeKeptError
			if errors.As(err, &kept) != (tc.outcome == OutcomeStopped) {
				t.Errorf("error %T, BridgeKeptError wanted: %v", err, tc.outcome == OutcomeStopped)
			}
			assertLines(t, filepath.Join(dir, "hooks.log"), tc.wantHooks...)
			assertLines(t, filepath.Join(dir, "dns.log"), tc.wantDNS...)
			if e.Journal.Outcome != tc.outcome {
				t.Errorf("outcome %q, want %q", e.Journal.Outcome, tc.outcome)
			}
		})
	}
}

// The journal takes the steps of the config's mode while nothing was done,
// and refuses the other mode once something was.
func TestJournalBridgeMode(t *testing.T) {
	dir := t.TempDir()
	plain := testConfig(t, dir, t0.Add(5*60e9), "")
	j, err := OpenJournal(plain, t0)
	if err != nil {
		t.Fatal(err)
	}
	if j.Step(Bridge) != nil {
		t.Fatal("a config without [bridge] got a bridge step")
	}
	j.Step(Preflight).State = Done
	if err := j.Save(t0); err != nil {
		t.Fatal(err)
	}
	bridged := testConfig(t, dir, t0.Add(5*60e9), fmt.Sprintf(bridgeExtra, dir))
	_, err = OpenJournal(bridged, t0)
	want := fmt.Sprintf("scheduler: journal %q is of a cutover without [bridge], but %s is with [bridge] (a handover through old): finish it (or roll it back) with the config it was started with",
		filepath.Join(plain.StateDir, JournalFile), bridged.File)
	if err == nil || err.Error() != want {
		t.Fatalf("OpenJournal: %v\nwant %s", err, want)
	}
	// Not started: the journal becomes one of a handover through old.
	j.Step(Preflight).State = Pending
	if err := j.Save(t0); err != nil {
		t.Fatal(err)
	}
	j, err = OpenJournal(bridged, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := stepOrder(j); !slices.Equal(got, stepNames(table(bridged))) {
		t.Errorf("steps %v, want the table's for [bridge]", got)
	}
}

func stepNames(steps []Step) []StepName {
	var out []StepName
	for _, s := range steps {
		out = append(out, s.Name)
	}
	return out
}
