package main

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cutover-dev/cutover/internal/lab"
)

func TestRelaySummary(t *testing.T) {
	queued := []string{"<queued-0@example.org>", "<queued-1@example.org>", "<queued-2@example.org>"}
	tests := []struct {
		desc    string
		res     lab.RelayResult
		want    string
		wantErr string // of RelayResult.Err
	}{{
		desc: "every check holds",
		res: lab.RelayResult{
			IMAP:  lab.IMAPResult{Host: "new", Mailboxes: 4, UIDValidity: 4, Kept: 57, Expunged: 4, Accepted: 120},
			Queue: lab.QueueResult{Host: "new", Queued: queued, Delivered: queued},
			DKIM:  lab.DKIMResult{Host: "new", Record: "opendkim._domainkey.example.org."},
		},
		want: `IMAP   4 mailboxes on new: UIDVALIDITY kept, 57 messages same UID and flags, 4 expunged stay gone
queue  3 deferred on old, delivered once from new
DKIM   signature by new verifies against opendkim._domainkey.example.org TXT
`,
		wantErr: "",
	}, {
		desc: "every check fails, with what failed under it",
		res: lab.RelayResult{
			IMAP: lab.IMAPResult{Host: "new", Mailboxes: 4, UIDValidity: 3, Kept: 56, Expunged: 4, Accepted: 120, Lost: 1, Problems: []string{
				"user01: UIDVALIDITY 7 on new, 5 before",
				"user02: accepted message <m000012@remote.test> is on new 0 times, want once; Postfix's log:\nold: line one\nold: line two",
			}},
			Queue: lab.QueueResult{Host: "new", Queued: queued, Delivered: queued[:2], Problems: []string{`remote.test received ["<queued-0@example.org>" "<queued-1@example.org>"], want each of ...`}},
			DKIM:  lab.DKIMResult{Host: "new", Record: "opendkim._domainkey.example.org.", Err: errors.New("lab: dkim: not verified: bad signature data")},
		},
		want: `IMAP   FAILED: 4 mailboxes on new: UIDVALIDITY kept in 3, 56 messages same UID and flags, 4 expunged stay gone
         user01: UIDVALIDITY 7 on new, 5 before
         user02: accepted message <m000012@remote.test> is on new 0 times, want once; Postfix's log:
           old: line one
           old: line two
queue  FAILED: 3 deferred on old, 2 delivered from new
         remote.test received ["<queued-0@example.org>" "<queued-1@example.org>"], want each of ...
DKIM   FAILED: signature by new checked against opendkim._domainkey.example.org TXT
         lab: dkim: not verified: bad signature data
`,
		wantErr: `lab: relay check: imap: user01: UIDVALIDITY 7 on new, 5 before; user02: accepted message <m000012@remote.test> is on new 0 times, want once; Postfix's log:
old: line one
old: line two
lab: relay check: queue: remote.test received ["<queued-0@example.org>" "<queued-1@example.org>"], want each of ...
lab: dkim: not verified: bad signature data`,
	}}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			var b bytes.Buffer
			relaySummary(&b, tt.res)
			if b.String() != tt.want {
				t.Fatalf("relay summary:\n%s\nwant:\n%s", b.String(), tt.want)
			}
			got := ""
			if err := tt.res.Err(); err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Fatalf("Err() = %q, want %q", got, tt.wantErr)
			}
		})
	}
}
