package scheduler

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRecordSelftest: a selftest's result is journaled (on disk, with a
// note), and only a passed one of the same provider and zone counts.
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
	want := "2026-11-23T10:00:00Z dns selftest of provider rfc2136 on zone example.org.: failed\n" +
		"2026-11-23T10:01:00Z dns selftest of provider rfc2136 on zone example.net.: passed"
	if got := strings.Join(j.Log, "\n"); got != want {
		t.Fatalf("journal log:\n%s\nwant:\n%s", got, want)
	}
}
