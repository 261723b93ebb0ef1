package scheduler

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
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

// TestSelftestRecordChecked: a journal whose selftest record lacks what was
// tested is damaged.
func TestSelftestRecordChecked(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), "")
	var out bytes.Buffer
	e := newTestEngine(t, dir, cfg, SystemClock{}, &out)
	if err := e.RecordSelftest(SelftestRecord{At: time.Now(), Zone: "example.org.", Passed: true}); err != nil {
		t.Fatal(err)
	}
	_, err := LoadJournal(cfg.StateDir)
	want := fmt.Sprintf("scheduler: journal %q is damaged: selftests[0]: a selftest without provider, zone or time", filepath.Join(cfg.StateDir, JournalFile))
	var de *DamagedJournalError
	if err == nil || err.Error() != want || !errors.As(err, &de) {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
