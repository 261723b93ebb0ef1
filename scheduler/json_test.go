package scheduler

import (
	"encoding/json"
	"testing"
	"time"
)

func TestSecondsJSON(t *testing.T) {
	for _, tc := range []struct {
		desc string
		d    time.Duration
		want string
	}{
		{desc: "whole seconds", d: 30 * time.Second, want: "30"},
		{desc: "an hour", d: time.Hour, want: "3600"},
		{desc: "fractional", d: 2250 * time.Millisecond, want: "2.25"},
		{desc: "below a second", d: 500 * time.Microsecond, want: "0.0005"},
		{desc: "zero", d: 0, want: "0"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b, err := json.Marshal(Seconds(tc.d))
			if err != nil || string(b) != tc.want {
				t.Fatalf("Marshal(%s) = %s, %v; want %s", tc.d, b, err, tc.want)
			}
			var back Seconds
			if err := json.Unmarshal(b, &back); err != nil || time.Duration(back) != tc.d {
				t.Fatalf("Unmarshal(%s) = %s, %v; want %s", b, time.Duration(back), err, tc.d)
			}
		})
	}
	var s Seconds
	if err := json.Unmarshal([]byte(`"30s"`), &s); err == nil || err.Error() != "scheduler: seconds: json: cannot unmarshal string into Go value of type float64" {
		t.Fatalf(`Unmarshal("30s"): error %v`, err)
	}
}

// TestPlanJSON checks the plan's output shape: durations in seconds, times
// in UTC, no HTML escaping, and that it reads back.
func TestPlanJSON(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	p := Plan{Config: "c.toml", Now: time.Date(2026, 11, 23, 13, 0, 0, 0, cet), CutoverAt: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC),
		Provider: ProviderInfo{Type: "rfc2136", MinTTL: time.Second}, MaxTTL: time.Hour, Margin: 360 * time.Second,
		Steps: []PlannedStep{{Name: SwapDNS, After: Fixup, Why: "w", Action: []string{"A -> 127.0.0.20"}}}}
	b, err := marshal(p) // as the CLI prints it: no HTML escaping
	if err != nil {
		t.Fatal(err)
	}
	want := `{"config":"c.toml","now":"2026-11-23T12:00:00Z","cutover_at":"2026-11-25T03:00:00Z","offline":false,"provider":{"type":"rfc2136","min_ttl":1},` +
		`"steps":[{"name":"swap-dns","after":"fixup","why":"w","action":["A -> 127.0.0.20"]}],"downtime":"","too_late":false,"max_ttl":3600,"margin":360}`
	if string(b) != want {
		t.Fatalf("Marshal:\n got %s\nwant %s", b, want)
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.MaxTTL != time.Hour || back.Margin != 360*time.Second || back.Provider.MinTTL != time.Second || !back.Now.Equal(p.Now) || len(back.Steps) != 1 {
		t.Fatalf("read back: %+v", back)
	}
}

func TestEventJSON(t *testing.T) {
	ev := Event{Time: time.Date(2026, 11, 25, 4, 0, 0, 500000000, time.FixedZone("CET", 3600)), Kind: "step-done", Step: Disable, State: Done}
	b, err := json.Marshal(ev)
	want := `{"time":"2026-11-25T03:00:00.5Z","kind":"step-done","step":"disable","state":"done"}`
	if err != nil || string(b) != want {
		t.Fatalf("Marshal = %s, %v; want %s", b, err, want)
	}
}
