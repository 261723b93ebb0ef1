package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/cutover-dev/cutover/internal/lab"
)

// relaySummary writes the checks of the real relay's migration (lab.RelayCheck) as a person
// reads them: one line per check, and under a failed one what failed.
func relaySummary(w io.Writer, r lab.RelayResult) {
	m := r.IMAP
	kept := "UIDVALIDITY kept"
	if m.UIDValidity != m.Mailboxes {
		kept = fmt.Sprintf("UIDVALIDITY kept in %d", m.UIDValidity)
	}
	checkLine(w, "IMAP", fmt.Sprintf("%d mailboxes on %s: %s, %d messages same UID and flags, %d expunged stay gone",
		m.Mailboxes, m.Host, kept, m.Kept, m.Expunged), m.Problems)
	q := r.Queue
	delivered := "delivered once from " + q.Host
	if len(q.Problems) > 0 {
		delivered = fmt.Sprintf("%d delivered from %s", len(q.Delivered), q.Host)
	}
	checkLine(w, "queue", fmt.Sprintf("%d deferred on old, %s", len(q.Queued), delivered), q.Problems)
	d := r.DKIM
	record := strings.TrimSuffix(d.Record, ".") + " TXT"
	if d.Err != nil {
		checkLine(w, "DKIM", "signature by "+d.Host+" checked against "+record, []string{d.Err.Error()})
	} else {
		checkLine(w, "DKIM", "signature by "+d.Host+" verifies against "+record, nil)
	}
}

// checkLine writes "NAME  TEXT", or "NAME  FAILED: TEXT" and each problem indented below.
func checkLine(w io.Writer, name, text string, problems []string) {
	if len(problems) > 0 {
		text = "FAILED: " + text
	}
	fmt.Fprintf(w, "%-6s %s\n", name, text)
	for _, p := range problems {
		fmt.Fprintf(w, "         %s\n", strings.ReplaceAll(p, "\n", "\n           "))
	}
}
