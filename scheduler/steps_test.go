package scheduler

import "testing"

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
