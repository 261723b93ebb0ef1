package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRelayDKIMKeyState puts NEW's /etc/dkimkeys in the states a move can leave it in, starts
// the relay and submits a message for the relay's own domain, as its users do. Dovecot and
// Postfix run throughout, started on their own as systemd starts each unit; relay-ctl start
// then starts OpenDKIM, which reads the key, and each case ends by stopping OpenDKIM.
//
// OpenDKIM reads the key as root when it starts, before it drops to its user, and refuses to
// start (exit 78) when the key or the directory is unsafe: owned by a uid that is neither its
// own nor root's (what rsync --numeric-ids or tar --numeric-owner from OLD leave: OLD's
// opendkim uid, another user on NEW), or readable or writable by others. It does not need to
// be able to read the key as opendkim: a key owned by root, mode 0600, signs. Without
// OpenDKIM, Postfix (which systemd starts on its own, unlike the lab's relay-ctl) answers
// every client with milter_default_action = tempfail: "451 4.7.1 Service unavailable - try
// again later", chatmail's #464; nothing is queued, so nothing goes out unsigned. A key that
// OpenDKIM accepts but that is not the one the zone publishes (NEW's own, /etc/dkimkeys not
// moved) signs messages that fail VerifyDKIM, the e2e's DKIM check.
//
// In a real run cutover's fixup is what repairs the owners: config.example.toml's [[sync]]
// path = "/etc/dkimkeys", owner = "opendkim:" (chown -R after the final copy, then checked),
// which also covers a copy made by uid. Modes are copied as they are on OLD, where cmdeploy
// leaves the key 0600 (opendkim-genkey run as opendkim, in Debian's /etc/dkimkeys, 0700,
// owned by opendkim): OLD's OpenDKIM would refuse an unsafe mode as NEW's does.
func TestRelayDKIMKeyState(t *testing.T) {
	t.Parallel()
	const oldBase, newBase = 5000, 6000 // as lab.StartPairWith's relay hosts
	oldUID, newUID := RelayAccounts(oldBase)["opendkim"], RelayAccounts(newBase)["opendkim"]
	n := NewNet(t)
	h := newRelayHost(t, n, "new", 20, newBase)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := InstallRelay(ctx, h, RelayOptions{GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(h.Path(DKIMKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	dkim, err := r.DKIMZoneLine(30)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDNSLab(t, n, Zone{Origin: RelayDomain + ".", Records: []string{dkim}})

	startWithoutOpenDKIM(ctx, t, r)
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})

	const conf = "opendkim: /etc/opendkim/opendkim.conf: "
	tempfail := fmt.Sprintf("lab: smtp %s: MAIL: 451 %q", r.SMTP, "4.7.1 Service unavailable - try again later")
	for i, tc := range []struct {
		desc             string
		owner, keyOwner  string // chown -R of /etc/dkimkeys, then chown of the key ("" keeps owner)
		dirMode, keyMode string
		ownKey           bool   // a fresh key of NEW's own replaces the one the zone publishes
		wantRefused      string // OpenDKIM's complaint when it refuses to start: the relay's client sees 451 4.7.1
		wantVerify       string // VerifyDKIM's error on the stored message when OpenDKIM signs
	}{
		{desc: "copied by uid: OLD's opendkim owns the dir and the key", owner: fmt.Sprintf("%d:%d", oldUID, oldUID), dirMode: "700", keyMode: "600",
			wantRefused: conf + fmt.Sprintf("/etc/dkimkeys is writeable and owned by uid %d which is not the executing uid (%d) or the superuser", oldUID, newUID)},
		{desc: "key copied by uid into NEW's own dir", owner: "opendkim:opendkim", keyOwner: fmt.Sprintf("%d:%d", oldUID, oldUID), dirMode: "700", keyMode: "600",
			wantRefused: conf + fmt.Sprintf("/etc/dkimkeys/opendkim.private is not owned by the executing uid (%d) or the superuser", newUID)},
		{desc: "key readable by others", owner: "opendkim:opendkim", dirMode: "700", keyMode: "644",
			wantRefused: conf + "/etc/dkimkeys/opendkim.private can be read or written by other users"},
		{desc: "dir writable by others", owner: "opendkim:opendkim", dirMode: "777", keyMode: "600",
			wantRefused: conf + "/etc/dkimkeys can be read or written by other users"},
		{desc: "key of NEW's own, not the published one", owner: "opendkim:opendkim", dirMode: "700", keyMode: "600", ownKey: true,
			wantVerify: "lab: dkim: not verified: verification (s=opendkim d=example.org, 2048-bit key, insecure) failed: signature verification failed"},
		{desc: "key owned by root, unreadable by opendkim: read before dropping privileges", owner: "opendkim:opendkim", keyOwner: "root:root", dirMode: "700", keyMode: "600"},
		{desc: "as fixup leaves it: owner opendkim, key 0600 in a dir 0700", owner: "opendkim:opendkim", dirMode: "700", keyMode: "600"},
	} {
		if err := os.WriteFile(h.Path(DKIMKeyFile), key, 0o600); err != nil {
			t.Fatal(err)
		}
		var state []string
		if tc.ownKey {
			state = append(state, "opendkim-genkey -D /etc/dkimkeys -d "+RelayDomain+" -s "+DKIMSelector)
		}
		state = append(state, "chown -R "+tc.owner+" /etc/dkimkeys")
		if tc.keyOwner != "" {
			state = append(state, "chown "+tc.keyOwner+" "+DKIMKeyFile)
		}
		state = append(state, "chmod "+tc.dirMode+" /etc/dkimkeys", "chmod "+tc.keyMode+" "+DKIMKeyFile)
		if _, err := h.Exec(ctx, strings.Join(state, " && ")); err != nil {
			t.Fatalf("%s: %v", tc.desc, err)
		}

		id := fmt.Sprintf("<dkim-state-%d@example.org>", i)
		msg := "From: user02@example.org\r\nTo: user03@example.org\r\nMessage-ID: " + id + "\r\nSubject: dkim\r\n\r\nhello\r\n"
		err := r.Start(ctx)
		if tc.wantRefused != "" {
			// relay-ctl stops at OpenDKIM; its error ends with OpenDKIM's own complaint.
			if got := lastLine(err); got != tc.wantRefused {
				t.Errorf("%s: relay start: %v\nwant it to end with %q", tc.desc, err, tc.wantRefused)
			}
			err = SendMail(ctx, r.SMTP, "user02@example.org", []string{"user03@example.org"}, []byte(msg))
			if got := fmt.Sprint(err); got != tempfail {
				t.Errorf("%s: SendMail: %v, want %q", tc.desc, err, tempfail)
			}
			if out, err := h.Exec(ctx, "postqueue -p"); err != nil || strings.TrimSpace(string(out)) != "Mail queue is empty" {
				t.Errorf("%s: queue: %s (%v), want it empty: nothing accepted unsigned", tc.desc, out, err)
			}
		} else {
			if err != nil {
				t.Fatalf("%s: relay start: %v", tc.desc, err)
			}
			if err := SendMail(ctx, r.SMTP, "user02@example.org", []string{"user03@example.org"}, []byte(msg)); err != nil {
				t.Fatalf("%s: %v", tc.desc, err)
			}
			stored, err := r.WaitMessage(ctx, "user03", id)
			if err != nil {
				t.Fatalf("%s: %v", tc.desc, err)
			}
			err = VerifyDKIM(ctx, d.Caches[0].Addr, stored)
			if got := fmt.Sprint(err); (tc.wantVerify == "" && err != nil) || (tc.wantVerify != "" && got != tc.wantVerify) {
				t.Errorf("%s: VerifyDKIM: %v, want %q", tc.desc, err, tc.wantVerify)
			}
		}
		stopOpenDKIM(ctx, t, h)
	}
}

// lastLine returns the last line of err's message ("" for nil).
func lastLine(err error) string {
	if err == nil {
		return ""
	}
	s := strings.TrimSpace(err.Error())
	return s[strings.LastIndex(s, "\n")+1:]
}

// startWithoutOpenDKIM starts Dovecot and Postfix in r's host without OpenDKIM, as systemd
// does when opendkim.service fails: each unit starts on its own.
func startWithoutOpenDKIM(ctx context.Context, t *testing.T, r *Relay) {
	t.Helper()
	log := shellQuote(filepath.Join(r.Dir, "start-without-opendkim.log"))
	if _, err := r.Host.Exec(ctx, "{ dovecot && postfix start; } </dev/null >"+log+" 2>&1 || { cat "+log+"; exit 1; }"); err != nil {
		t.Fatal(err)
	}
}

// stopOpenDKIM stops the OpenDKIM of h (found by its pid file) and waits until it is gone;
// relay-ctl stop leaves it running, as --disable-mail does.
func stopOpenDKIM(ctx context.Context, t *testing.T, h *Host) {
	t.Helper()
	if _, err := h.Exec(ctx, `p=$(cat `+OpenDKIMPIDFile+` 2>/dev/null) || exit 0; kill "$p" 2>/dev/null || exit 0; while kill -0 "$p" 2>/dev/null; do sleep 0.1; done`); err != nil {
		t.Fatal(err)
	}
}
