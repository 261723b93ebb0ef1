package scheduler

import (
	"bytes"
	"testing"
	"time"
)

// TestRecordSelftest: a selftest's result is journaled (on disk), only a
// passed one of the same provider and zone counts, and the journal does not
// look like a started cutover.
func TestRecordSelftest(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	cfg := testConfig(t, dir, at.Add(48*time.Hour), "")
	var out bytes.Buffer
	e := newTestEngine(t, dir, cfg, SystemClock{}, &out)
	runs := []SelftestRecord{
		{At: at, Provider: "rfc2136", Zone: "example.org.", Passed: false},
		{At: at.Add(time.Minute), Provider: "rfc2136", Zone: "example.net.", Passed: true},
	}
	for _, r := range runs {
		if err := e.RecordSelftest(r); err != nil {
			t.Fatal(err)
		}
	}
	j, err := LoadJournal(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc, provider, zone string
		want                 bool
	}{
		{desc: "failed run only", provider: "rfc2136", zone: "example.org.", want: false},
		{desc: "passed run", provider: "rfc2136", zone: "example.net.", want: true},
		{desc: "another provider", provider: "desec", zone: "example.net.", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := j.SelftestPassed(tc.provider, tc.zone); got != tc.want {
				t.Fatalf("SelftestPassed(%q, %q) = %v, want %v", tc.provider, tc.zone, got, tc.want)
			}
		})
	}
	if len(j.Selftests) != 2 || j.Selftests[1] != runs[1] {
		t.Fatalf("journal selftests %+v, want %+v", j.Selftests, runs)
	}
	// A journal of selftests only is no started cutover: run still shows
	// the plan and asks.
	if j.Started() {
		t.Fatal("a journal holding only selftests counts as started")
	}
}
