package scheduler

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/config"
)

// TestTableComplete: every step says what the plan shows and what it does
// (an action or a hook, not both), and every name appears once.
func TestTableComplete(t *testing.T) {
	for _, steps := range [][]Step{Steps, bridgeSteps} {
		tableComplete(t, steps)
	}
}

func tableComplete(t *testing.T, steps []Step) {
	seen := map[StepName]bool{}
	for _, s := range steps {
		if s.Plan == nil {
			t.Errorf("%s: no Plan", s.Name)
		}
		if (s.Do == nil) == (s.Hook == nil) {
			t.Errorf("%s: want exactly one of Do and Hook", s.Name)
		}
		if s.Summary == "" {
			t.Errorf("%s: no Summary", s.Name)
		}
		if seen[s.Name] {
			t.Errorf("%s: listed twice", s.Name)
		}
		seen[s.Name] = true
	}
}

// TestSkipReasonsAgree: a step the plan shows as skipped is the step the
// engine skips, and the journal gives the plan's reason word for word (both
// ask Step.skip, once per step).
func TestSkipReasonsAgree(t *testing.T) {
	for _, tc := range []struct {
		desc        string
		edit        func(cfg *config.Config)
		wantSkipped []StepName
	}{
		{desc: "everything configured: nothing skipped", edit: func(*config.Config) {}},
		{desc: "no hooks but reenable, no sync, the TTL already low, never restored",
			edit: func(cfg *config.Config) {
				cfg.Hooks.Prepare, cfg.Hooks.Disable, cfg.Hooks.Activate = nil, nil, nil
				cfg.Sync = nil
				cfg.DNS.LoweredTTL = time.Minute // 30s served
				cfg.DNS.RestoreNever = true
			},
			wantSkipped: []StepName{LowerTTL, InitialSync, Prepare, Disable, FinalSync, Verify, Fixup, Activate, RestoreTTL}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(time.Hour), "")
			tc.edit(cfg)
			var out bytes.Buffer
			e := newTestEngine(t, dir, cfg, autoClock(t0), &out)
			snap, err := e.DNS.Snapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			p, err := MakePlan(Input{Config: cfg, Facts: &Facts{Names: snap.Names}, Provider: ProviderInfo{Type: "fake"}, Now: t0})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Run(context.Background()); err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			var skipped []StepName
			for _, ps := range p.Steps {
				rec := e.Journal.Step(ps.Name)
				if ps.Skip != "" {
					skipped = append(skipped, ps.Name)
					if rec.State != Skipped || rec.Note != ps.Skip {
						t.Errorf("%s: journal says %s %q, the plan skipped %q", ps.Name, rec.State, rec.Note, ps.Skip)
					}
				} else if rec.State != Done {
					t.Errorf("%s: journal says %s %q, the plan runs it", ps.Name, rec.State, rec.Note)
				}
			}
			if !slices.Equal(skipped, tc.wantSkipped) {
				t.Errorf("the plan skips %v, want %v", skipped, tc.wantSkipped)
			}
		})
	}
}
