package lab

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var seedRoots = []string{"/home/vmail", "/var/lib/acme", "/etc/dkimkeys", "/var/spool/postfix"}

func TestSeed(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	p := NewPair(t, n)
	start := time.Now()
	m, err := Seed(p.Old, SeedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seedTime := time.Since(start)

	var inMaildir, flagged, unread int
	for _, msg := range m.Messages {
		if !strings.HasPrefix(msg, MailRoot+"/user") {
			t.Fatalf("message %s outside %s", msg, MailRoot)
		}
		switch {
		case strings.Contains(msg, "/cur/") && strings.Contains(msg, ":2,"):
			flagged++
		case strings.Contains(msg, "/new/") && !strings.Contains(msg, ":2,"):
			unread++
		default:
			t.Errorf("message name %s: want cur/...:2,FLAGS or new/... without flags", msg)
		}
		inMaildir++
	}
	if len(m.Users) != 20 || inMaildir-len(m.HardLinks) != 5000 || unread < 500 || flagged < 3000 {
		t.Errorf("users %d, messages %d (+%d links), unread %d, flagged %d; want 20 users, 5000 messages", len(m.Users), inMaildir-len(m.HardLinks), len(m.HardLinks), unread, flagged)
	}
	if len(m.HardLinks) < 200 {
		t.Errorf("%d hard links, want at least 200", len(m.HardLinks))
	}

	snap, err := Snapshot(p.Old, seedRoots...)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		if snap[f].Type != "file" {
			t.Fatalf("seeded %s: %+v", f, snap[f])
		}
	}
	for _, tc := range []struct {
		desc, path, owner string
		mode              os.FileMode
		uid               uint32
	}{
		{desc: "message", path: m.Messages[0], owner: "vmail:vmail", mode: 0o600, uid: 5000},
		{desc: "uidlist", path: MailRoot + "/user07/dovecot-uidlist", owner: "vmail:vmail", mode: 0o600, uid: 5000},
		{desc: "maildir", path: MailRoot + "/user07/cur", owner: "vmail:vmail", mode: 0o700, uid: 5000},
		{desc: "dkim key", path: "/etc/dkimkeys/opendkim.private", owner: "opendkim:opendkim", mode: 0o600, uid: 5001},
		{desc: "dkim dir", path: "/etc/dkimkeys", owner: "opendkim:opendkim", mode: 0o700, uid: 5001},
		{desc: "acme key", path: "/var/lib/acme/live/mail.example.org/privkey.pem", owner: "root:root", mode: 0o600, uid: 0},
		{desc: "spool name with space", path: "/var/spool/postfix/active/odd name: with space", owner: "root:root", mode: 0o700, uid: 0},
		{desc: "maildrop", path: "/var/spool/postfix/maildrop", owner: "root:root", mode: 0o730, uid: 0},
	} {
		e, ok := snap[tc.path]
		if !ok {
			t.Errorf("%s: %s not in snapshot", tc.desc, tc.path)
			continue
		}
		fi, err := os.Lstat(p.Old.Path(tc.path))
		if err != nil {
			t.Fatal(err)
		}
		if e.Owner+":"+e.Group != tc.owner || e.Mode != tc.mode || fi.Sys().(*syscall.Stat_t).Uid != tc.uid {
			t.Errorf("%s: %s:%s %v uid %d, want %s %v uid %d", tc.desc, e.Owner, e.Group, e.Mode, fi.Sys().(*syscall.Stat_t).Uid, tc.owner, tc.mode, tc.uid)
		}
	}
	if e := snap["/var/lib/acme/current"]; e.Type != "symlink" || e.Target != "live/mail.example.org" {
		t.Errorf("acme symlink: %+v", e)
	}
	hl := m.HardLinks[3]
	if e := snap[hl[0]]; !slices.Equal(e.Links, []string{min(hl[0], hl[1]), max(hl[0], hl[1])}) {
		t.Errorf("hard link %v: Links %v", hl, e.Links)
	}
	uidlist, err := os.ReadFile(p.Old.Path(MailRoot + "/user00/dovecot-uidlist"))
	if err != nil || !strings.HasPrefix(string(uidlist), "3 V") {
		t.Errorf("dovecot-uidlist: %q, %v", uidlist, err)
	}

	// Copy to new the way the guide does (tar over ssh, owners by name) and compare.
	Require(t, "ssh")
	start = time.Now()
	cmd := fmt.Sprintf("tar -C / -cf - home/vmail var/lib/acme etc/dkimkeys var/spool/postfix | ssh -i %s -o UserKnownHostsFile=%s -o BatchMode=yes root@%s 'tar -C / -xpf -'",
		shellQuote(p.Identity.KeyFile), shellQuote(p.KnownHosts), p.New.Addr)
	if _, err := p.Old.Exec(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	copyTime := time.Since(start)
	snapNew, err := Snapshot(p.New, seedRoots...)
	if err != nil {
		t.Fatal(err)
	}
	if diffs := DiffSnapshots(snap, snapNew, 5); len(diffs) > 0 {
		t.Errorf("new differs from old after tar over ssh:\n%s", strings.Join(diffs, "\n"))
	}
	fi, err := os.Stat(p.New.Path("/etc/dkimkeys/opendkim.private"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 6001 {
		t.Errorf("on new the dkim key is not owned by new's opendkim (6001): %v", err)
	}

	// DiffSnapshots reports exactly what changed.
	victim := MailRoot + "/user01/dovecot-uidlist"
	if err := os.Chmod(p.New.Path(victim), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p.New.Path("/var/spool/postfix/pid/master.pid")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.New.Path("/var/lib/acme/extra"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	snapNew, err = Snapshot(p.New, seedRoots...)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		victim + ": mode -rw-r--r--, want -rw-------",
		"/var/lib/acme/extra: unexpected file",
		"/var/spool/postfix/pid/master.pid: missing",
	}
	if got := DiffSnapshots(snap, snapNew, 0); !slices.Equal(got, want) {
		t.Errorf("diffs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := DiffSnapshots(snap, snapNew, 1); len(got) != 1 {
		t.Errorf("max 1: %d diffs", len(got))
	}
	t.Logf("seeded %d files (%d MB) in %s; tar over ssh to new in %s", len(m.Files), m.Bytes>>20, seedTime.Round(time.Millisecond), copyTime.Round(time.Millisecond))
}

func TestSeedNeedsUsers(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	h := NewHost(t, HostOptions{Name: "bare", Addr: n.IP(60)})
	_, err := Seed(h, SeedOptions{Messages: 10})
	if want := `lab: host "bare": seed: no user "vmail" in the host's /etc/passwd`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestSeedDelta: the delta the window benchmark applies between the copies (messages read,
// deleted and arrived) lands on the host as a delivery agent would leave it.
func TestSeedDelta(t *testing.T) {
	t.Parallel()
	p := NewPair(t, NewNet(t))
	if _, err := Seed(p.Old, SeedOptions{Users: 3, Messages: 100}); err != nil {
		t.Fatal(err)
	}
	a, err := SimulateClient(p.Old, ClientOptions{Read: 5, Delete: 3, Arrive: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Moved) != 5 || len(a.Deleted) != 3 || len(a.Arrived) != 7 {
		t.Fatalf("moved %d, deleted %d, arrived %d; want 5, 3, 7", len(a.Moved), len(a.Deleted), len(a.Arrived))
	}
	seen := map[string]bool{}
	for _, m := range a.Arrived {
		fi, err := os.Stat(p.Old.Path(m))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !strings.Contains(m, "/new/") || fi.Mode().Perm() != 0o600 || st.Uid != 5000 || st.Gid != 5000 || fi.Size() < 300 || seen[m] {
			t.Errorf("arrival %s: mode %v, owner %d:%d, size %d, seen before %v; want new/, 0600, 5000:5000, >= 300 bytes, once", m, fi.Mode().Perm(), st.Uid, st.Gid, fi.Size(), seen[m])
		}
		seen[m] = true
	}
}
