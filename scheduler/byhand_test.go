package scheduler

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestChangeDNS(t *testing.T) {
	const (
		snapLine = "mail.example.org. A {127.0.0.10} AAAA {::10}"
		stamp    = "2026-11-23T12:00:00Z "
	)
	for _, tc := range []struct {
		desc    string
		change  DNSChange
		fail    string // the fake DNS operation that fails
		refuse  bool   // confirm says no
		wantErr string
		wantOut string
		// wantLog nil: nothing journaled.
		wantLog []string
		wantDNS DNSState
		wantOps []string
	}{
		{
			desc: "lower-ttl takes the snapshot first", change: ChangeLowerTTL,
			wantOut: "snapshot: " + snapLine + "\n",
			wantLog: []string{stamp + "dns lower-ttl: snapshot taken: " + snapLine, stamp + "dns lower-ttl by hand: done"},
			wantDNS: DNSLowered, wantOps: []string{"lower-ttl"},
		},
		{
			desc: "revert without a snapshot changes nothing", change: ChangeRevert,
			wantErr: "scheduler: the journal holds no snapshot to go back to",
		},
		{
			desc: "no consent: the snapshot is shown, nothing journaled", change: ChangeSwap, refuse: true,
			wantErr: "no", wantOut: "snapshot: " + snapLine + "\n",
		},
		{
			desc: "a failed swap is journaled", change: ChangeSwap, fail: "swap",
			wantErr: "dns swap: fake: swap fails as told", wantOut: "snapshot: " + snapLine + "\n",
			wantLog: []string{stamp + "dns swap: snapshot taken: " + snapLine, stamp + "dns swap by hand failed: fake: swap fails as told"},
			wantDNS: DNSOriginal,
		},
		{
			desc: "unknown change", change: "swap-dns",
			wantErr: `scheduler: unknown DNS change "swap-dns"`,
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(time.Hour), "")
			if tc.fail != "" {
				if err := os.WriteFile(filepath.Join(dir, "fail"), []byte(tc.fail), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			e := newTestEngine(t, dir, cfg, NewFakeClock(t0), &out)
			err := e.ChangeDNS(context.Background(), tc.change, func() error {
				if tc.refuse {
					return errors.New("no")
				}
				return nil
			})
			if got := errString(err); got != tc.wantErr {
				t.Fatalf("error %q, want %q", got, tc.wantErr)
			}
			if out.String() != tc.wantOut {
				t.Errorf("output %q, want %q", out.String(), tc.wantOut)
			}
			if ops := readLines(t, filepath.Join(dir, "dns.log")); !slices.Equal(ops, tc.wantOps) {
				t.Errorf("DNS operations %q, want %q", ops, tc.wantOps)
			}
			j, err := LoadJournal(cfg.StateDir)
			if tc.wantLog == nil {
				if !errors.Is(err, ErrNoJournal) {
					t.Fatalf("journal written (%v), want none", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(j.Log, tc.wantLog) || j.DNS != tc.wantDNS || j.Snapshot.String() != snapLine {
				t.Errorf("journal log %q, DNS %s, snapshot %s; want %q, %s, %s", j.Log, j.DNS, j.Snapshot, tc.wantLog, tc.wantDNS, snapLine)
			}
			if tc.wantDNS == DNSLowered && !j.LoweredAt.Equal(t0) {
				t.Errorf("lowered_at %s, want %s", j.LoweredAt, t0)
			}
			evs, err := os.ReadFile(filepath.Join(cfg.StateDir, EventsFile))
			if err != nil {
				t.Fatal(err)
			}
			changed := bytes.Contains(evs, []byte(`"kind":"dns-changed"`))
			if changed != (tc.wantErr == "") {
				t.Errorf("dns-changed event: %v, want %v; events:\n%s", changed, tc.wantErr == "", evs)
			}
			if changed && !slices.ContainsFunc(readEvents(t, cfg.StateDir), func(ev Event) bool { return ev.Message == "by hand: "+string(tc.change) }) {
				t.Errorf("no event says %q", "by hand: "+string(tc.change))
			}
		})
	}
}

// A DNS change by hand whose journal cannot be saved says what it changed
// (and keeps the snapshot to undo it with); when even the snapshot cannot
// be saved, nothing is changed at all.
func TestChangeDNSSaveFailure(t *testing.T) {
	noRetryPause(t)
	for _, tc := range []struct {
		desc         string
		full         func(j *Journal) bool
		wantErr      string // PATH is the journal
		wantOps      []string
		wantSnapshot bool // the error carries the records to go back to
	}{
		{desc: "the snapshot cannot be saved: nothing changed", full: func(*Journal) bool { return true },
			wantErr: `scheduler: journal "PATH" could not be saved (4 attempts): write PATH: no space left on device; DNS and the services were not changed`},
		{desc: "saved before, not after the change", full: func(j *Journal) bool { return j.DNS == DNSLowered },
			wantErr: `scheduler: journal "PATH" could not be saved (4 attempts): write PATH: no space left on device; changed so far: the TTL of mail.example.org. was lowered (data unchanged)`,
			wantOps: []string{"lower-ttl"}, wantSnapshot: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(time.Hour), "")
			e := newTestEngine(t, dir, cfg, NewFakeClock(t0), io.Discard)
			failWrites(t, e, tc.full)
			err := e.ChangeDNS(context.Background(), ChangeLowerTTL, func() error { return nil })
			if got, want := errString(err), strings.ReplaceAll(tc.wantErr, "PATH", e.Journal.Path()); got != want {
				t.Fatalf("error\ngot  %q\nwant %q", got, want)
			}
			var se *SaveError
			if !errors.As(err, &se) || (se.Snapshot != nil) != tc.wantSnapshot {
				t.Fatalf("error %#v: want a *SaveError, with a snapshot: %v", err, tc.wantSnapshot)
			}
			if ops := readLines(t, filepath.Join(dir, "dns.log")); !slices.Equal(ops, tc.wantOps) {
				t.Errorf("DNS operations %q, want %q", ops, tc.wantOps)
			}
		})
	}
}
