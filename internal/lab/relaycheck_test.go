package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMaillog: the log lines about a message are those naming a queue ID under which either
// host logged its Message-ID, from both hosts (a queue file copied to NEW keeps OLD's ID in
// NEW's log when NEW only renamed it).
func TestMaillog(t *testing.T) {
	relay := func(name, log string) *Relay {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "maillog"), []byte(log), 0o644); err != nil {
			t.Fatal(err)
		}
		return &Relay{Host: &Host{Name: name}, Dir: dir}
	}
	c := &RelayCheck{
		Old: relay("old", `Dec 02 01:14:07 mail postfix/cleanup[1]: 535BA3F559A: message-id=<m1@x>
Dec 02 01:14:07 mail postfix/cleanup[1]: 77AA3F559B: message-id=<m2@x>
Dec 02 01:14:08 mail postfix/qmgr[2]: 535BA3F559A: from=<a@b>, size=478, nrcpt=1 (queue active)
Dec 02 01:14:08 mail postfix/qmgr[2]: 77AA3F559B: removed
`),
		New: relay("new", `Dec 02 01:15:10 mail postfix/qmgr[3]: 535BA3F559A: removed
Dec 02 01:15:11 mail postfix/qmgr[3]: 99BB3F600: removed
`),
	}
	for _, tc := range []struct {
		desc, id, want string
	}{
		{desc: "logged on both hosts", id: "<m1@x>", want: `old: Dec 02 01:14:07 mail postfix/cleanup[1]: 535BA3F559A: message-id=<m1@x>
old: Dec 02 01:14:08 mail postfix/qmgr[2]: 535BA3F559A: from=<a@b>, size=478, nrcpt=1 (queue active)
new: Dec 02 01:15:10 mail postfix/qmgr[3]: 535BA3F559A: removed`},
		{desc: "logged on one", id: "<m2@x>", want: `old: Dec 02 01:14:07 mail postfix/cleanup[1]: 77AA3F559B: message-id=<m2@x>
old: Dec 02 01:14:08 mail postfix/qmgr[2]: 77AA3F559B: removed`},
		{desc: "never logged", id: "<m3@x>", want: ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := c.maillog(tc.id); got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, strings.TrimSpace(tc.want))
			}
		})
	}
}
