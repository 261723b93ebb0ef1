package cli

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/scheduler"
)

// Each journal error reaches the operator with the way out.
func TestJournalError(t *testing.T) {
	cfg := &config.Config{File: "b.toml", StateDir: "/var/lib/cutover/mail"}
	snap := &dnsrec.Snapshot{Zone: "example.org.", Names: []dnsrec.Name{{Name: "mail.example.org.",
		A:    dnsrec.RRset{Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, TTL: time.Hour},
		AAAA: dnsrec.RRset{}}}}
	full := &scheduler.SaveError{Path: "/var/lib/cutover/mail/journal.json", Attempts: 4, Err: syscall.ENOSPC,
		Changed: []string{"the TTL of mail.example.org. was lowered (data unchanged)"}, Snapshot: snap}
	for _, tc := range []struct {
		desc string
		err  error
		want string
	}{
		{desc: "another config's journal",
			err: &scheduler.ForeignJournalError{Path: "/var/lib/cutover/mail/journal.json", Config: "/b/b.toml",
				Journal:     scheduler.Identity{Config: "/a/mail.toml", Zone: "example.org."},
				Differences: []string{"config: journal /a/mail.toml, config /b/b.toml"}},
			want: `cutover: error: scheduler: journal at "/var/lib/cutover/mail/journal.json" belongs to "/a/mail.toml" (zone example.org.), not "/b/b.toml": config: journal /a/mail.toml, config /b/b.toml
cutover: hint: to go on with that cutover, use its config: cutover status /a/mail.toml; for a separate cutover of b.toml, give it its own state_dir, or move this journal aside: mv /var/lib/cutover/mail /var/lib/cutover/mail.other
`},
		{desc: "a damaged journal",
			err: &scheduler.DamagedJournalError{Path: "/var/lib/cutover/mail/journal.json", Err: errors.New("no steps")},
			want: `cutover: error: scheduler: journal "/var/lib/cutover/mail/journal.json" is damaged: no steps
cutover: hint: it is the record of what cutover changed: repair it by hand or restore it from a backup; to start over (only if nothing was changed): mv /var/lib/cutover/mail /var/lib/cutover/mail.damaged
`},
		{desc: "a full disk after a DNS change",
			err: fmt.Errorf("dns lower-ttl: done, but %w", full),
			want: `cutover: error: dns lower-ttl: done, but scheduler: journal "/var/lib/cutover/mail/journal.json" could not be saved (4 attempts): no space left on device; changed so far: the TTL of mail.example.org. was lowered (data unchanged)
cutover: hint: make room in /var/lib/cutover/mail (or fix the cause), then see the journal: cutover status b.toml; go on with: cutover run b.toml; or undo the DNS change: cutover dns revert b.toml, or by hand set mail.example.org. A 192.0.2.1 TTL 1h, mail.example.org. AAAA (none)
`},
		{desc: "a full disk before anything changed",
			err: &scheduler.SaveError{Path: "/var/lib/cutover/mail/journal.json", Attempts: 4, Err: syscall.ENOSPC},
			want: `cutover: error: scheduler: journal "/var/lib/cutover/mail/journal.json" could not be saved (4 attempts): no space left on device; DNS and the services were not changed
cutover: hint: make room in /var/lib/cutover/mail (or fix the cause), then see the journal: cutover status b.toml; go on with: cutover run b.toml
`},
		{desc: "anything else is left alone", err: errors.New("scheduler: journal: permission denied"),
			want: "cutover: error: scheduler: journal: permission denied\n"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := report(&env{stderr: &stderr}, journalError(cfg, tc.err)); code != ExitFailure {
				t.Errorf("exit %d, want %d", code, ExitFailure)
			}
			if got := stderr.String(); got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
