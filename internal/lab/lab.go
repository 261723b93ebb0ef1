// Package lab owns the real-server test support of cutover: BIND 9 primaries and secondaries,
// Knot DNS primaries, Unbound caches and OpenSSH hosts in their own mount namespaces, all on reserved 127.A.B.0/24
// blocks of the loopback interface of a network namespace of the lab's own (Isolate, Main), so
// that the machine's addresses, ports and services are never seen nor touched; and the stand-ins of an end-to-end migration: a mail service
// per host (the labmail program, enabled and disabled inside the host like cmdeploy's activate and
// --disable-mail), a Sender that delivers through a cache like an MTA, chatmail-like seed data, a
// simulated mail client, and snapshots that compare two hosts' files by owner name; and the real
// relay on a host (InstallRelay: Debian's Postfix, Dovecot and OpenDKIM, configured per host) with
// an SMTP sender that resolves MX then A like a remote MTA, a minimal IMAP client and a DKIM
// verifier. Everything it
// starts is tracked by PID (and by mount namespace for hosts), torn down by Stop, and cleaned up
// on the next reservation of the same block if a previous run was killed before it could stop its
// servers.
//
// The package serves tests (the New* functions take a testing.TB, call Require, fail the test on
// error and register Stop with t.Cleanup) and non-test code such as a demo command (the Start*
// functions return a value and an error; the caller calls Stop). It needs root, iproute2,
// util-linux (unshare, nsenter), bind9, knot, unbound and openssh-server; nothing it starts listens
// outside 127.0.0.0/8 and nothing ever sends a query off the machine.
package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requirements maps the names Require accepts to the binary that must exist (empty: special)
// and the hint printed when it is missing.
var requirements = map[string]struct{ bin, hint string }{
	"root":     {"", "run the tests as root"},
	"sshd":     {"sshd", "apt-get install openssh-server"},
	"ssh":      {"ssh", "apt-get install openssh-client"},
	"named":    {"named", "apt-get install bind9"},
	"knotd":    {"knotd", "apt-get install knot"},
	"unbound":  {"unbound", "apt-get install unbound"},
	"rsync":    {"rsync", "apt-get install rsync"},
	"ip":       {"ip", "apt-get install iproute2"},
	"unshare":  {"unshare", "apt-get install util-linux"},
	"nsenter":  {"nsenter", "apt-get install util-linux"},
	"pdns":     {"pdns_server", "apt-get install pdns-server pdns-backend-sqlite3"},
	"sqlite3":  {"sqlite3", "apt-get install sqlite3"},
	"postfix":  {"postfix", "apt-get install postfix (see scripts/setup)"},
	"dovecot":  {"dovecot", "apt-get install dovecot-imapd dovecot-lmtpd"},
	"opendkim": {"opendkim", "apt-get install opendkim opendkim-tools"},
}

// extraPath is searched after $PATH: sbin directories are often missing from a non-login PATH.
var extraPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// lookBin finds a binary in $PATH or the usual system directories.
func lookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range extraPath {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("lab: %q not found in $PATH or %s", name, strings.Join(extraPath, ":"))
}

// mustBin is lookBin for the Start functions: the error names the package to install.
func mustBin(what, name string) (string, error) {
	p, err := lookBin(name)
	if err != nil {
		hint := "install it"
		if r, ok := requirements[what]; ok {
			hint = r.hint
		}
		return "", fmt.Errorf("%w (%s)", err, hint)
	}
	return p, nil
}

// Require skips t with a clear message when a needed binary is missing or we are not root;
// when the environment variable CI is "true" it calls t.Fatalf instead of skipping.
// what: any of "root", "sshd", "ssh", "named", "knotd", "unbound", "rsync", "ip", "unshare", "nsenter",
// "pdns", "sqlite3", "postfix", "dovecot", "opendkim".
// An unknown name is a programming error and always fails the test.
func Require(t testing.TB, what ...string) {
	t.Helper()
	require(t, os.Getenv("CI") == "true", os.Geteuid(), lookBin, what)
}

func require(t testing.TB, ci bool, euid int, look func(string) (string, error), what []string) {
	t.Helper()
	var missing []string
	for _, w := range what {
		r, ok := requirements[w]
		if !ok {
			t.Fatalf("lab: Require: unknown requirement %q", w)
			return
		}
		if w == "root" {
			if euid != 0 {
				missing = append(missing, fmt.Sprintf("root (%s)", r.hint))
			}
			continue
		}
		if _, err := look(r.bin); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", w, r.hint))
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "lab: real-server test needs " + strings.Join(missing, ", ")
	if ci {
		t.Fatalf("%s; CI=true, so this is a failure, not a skip", msg)
		return
	}
	t.Skipf("%s; skipping (with CI=true this fails)", msg)
}

// stopAtEnd runs stop when the test ends and reports its error: the end of
// every New* function of the lab.
func stopAtEnd(t testing.TB, stop func() error) {
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
}
