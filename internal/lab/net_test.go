package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestReserveNetAtInvalid(t *testing.T) {
	tests := []struct{ desc, prefix, want string }{
		{desc: "two octets", prefix: "127.0", want: `lab: block "127.0": want 127.A.B`},
		{desc: "four octets", prefix: "127.0.0.1", want: `lab: block "127.0.0.1": want 127.A.B`},
		{desc: "not loopback", prefix: "10.0.0", want: `lab: block "10.0.0": want 127.A.B`},
		{desc: "octet too big", prefix: "127.256.0", want: `lab: block "127.256.0": want 127.A.B`},
		{desc: "leading zero", prefix: "127.01.0", want: `lab: block "127.01.0": want 127.A.B`},
		{desc: "empty", prefix: "", want: `lab: block "": want 127.A.B`},
	}
	for _, tc := range tests {
		n, err := ReserveNetAt(tc.prefix)
		if err == nil {
			n.Release()
			t.Errorf("%s: ReserveNetAt(%q) succeeded", tc.desc, tc.prefix)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%s: error %q, want %q", tc.desc, err, tc.want)
		}
	}
}

func TestNetReservation(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	p := n.Prefix()
	if a := n.IP(31).As4(); a[0] != 127 || a[1] < 100 || a[1] > 250 || a[3] != 31 {
		t.Errorf("IP(31) = %s, want 127.[100-250].B.31", n.IP(31))
	}
	if n.String() != p+".0/24" || n.IP(7).String() != p+".7" {
		t.Errorf("String() = %q, IP(7) = %s", n, n.IP(7))
	}

	_, err := ReserveNetAt(p)
	if want := fmt.Sprintf("lab: reserve %s: block is reserved by another lab", p); err == nil || err.Error() != want {
		t.Fatalf("second reservation of %s: error %v, want %q", p, err, want)
	}
	if !errors.Is(err, ErrNetTaken) {
		t.Errorf("error %v does not wrap ErrNetTaken", err)
	}
	other, err := ReserveNet()
	if err != nil {
		t.Fatal(err)
	}
	if other.Prefix() == p {
		t.Errorf("ReserveNet returned the taken block %s", p)
	}
	if err := other.Release(); err != nil {
		t.Fatal(err)
	}
	if err := other.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
}

// TestNetCleanup plays a run that was killed: a server process still running with its record,
// its temp dir and an address of the block on lo. Reserving the block (cleanup) removes them all.
func TestNetCleanup(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	Require(t, "ip")
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	dir, err := makeTempDir("stale")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := writeRecord(n.Prefix(), stateRecord{Kind: "named", PID: sleep.Process.Pid, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := ipAddr("add", n.IP(77)); err != nil {
		t.Fatal(err)
	}
	if !onLo(t, n.IP(77)) {
		t.Fatalf("%s not on lo after ip addr add", n.IP(77))
	}

	did, err := n.cleanup()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("killed named pid %d", sleep.Process.Pid), "removed " + dir}
	if !slices.Equal(did, want) {
		t.Errorf("cleanup did %q, want %q", did, want)
	}
	if err := sleep.Wait(); err == nil || err.Error() != "signal: killed" {
		t.Errorf("stale process: Wait = %v, want signal: killed", err)
	}
	for _, p := range []string{dir, rec} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after cleanup (%v)", p, err)
		}
	}
	if onLo(t, n.IP(77)) {
		t.Errorf("%s still on lo after cleanup", n.IP(77))
	}
}

func TestIsLabTempDir(t *testing.T) {
	tests := []struct {
		desc, dir string
		want      bool
	}{
		{desc: "lab dir", dir: "/tmp/cutover-lab-named-123", want: true},
		{desc: "empty", dir: ""},
		{desc: "root", dir: "/"},
		{desc: "relative", dir: "cutover-lab-named-1"},
		{desc: "top level", dir: "/cutover-lab-x"},
		{desc: "unclean", dir: "/tmp/../cutover-lab-x"},
		{desc: "other name", dir: "/home/vmail"},
	}
	for _, tc := range tests {
		if got := isLabTempDir(tc.dir); got != tc.want {
			t.Errorf("%s: isLabTempDir(%q) = %v, want %v", tc.desc, tc.dir, got, tc.want)
		}
	}
}

// fakeTB records what Require does instead of stopping the test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()                         {}
func (f *fakeTB) Skipf(format string, a ...any)   { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatalf(format string, a ...any)  { f.failed = fmt.Sprintf(format, a...) }
func (f *fakeTB) Errorf(format string, a ...any)  { f.failed = fmt.Sprintf(format, a...) }
func (f *fakeTB) Logf(format string, args ...any) {}

func TestRequire(t *testing.T) {
	have := func(missing ...string) func(string) (string, error) {
		return func(bin string) (string, error) {
			if slices.Contains(missing, bin) {
				return "", errors.New("not found")
			}
			return "/usr/sbin/" + bin, nil
		}
	}
	tests := []struct {
		desc        string
		ci          bool
		euid        int
		missing     []string
		what        []string
		skip, fatal string
	}{
		{desc: "all there", what: []string{"root", "named", "unbound", "sshd", "ssh", "rsync", "ip", "unshare", "nsenter", "postfix", "dovecot", "opendkim"}},
		{desc: "not root", euid: 1000, what: []string{"root", "named"},
			skip: "lab: real-server test needs root (run the tests as root); skipping (with CI=true this fails)"},
		{desc: "missing binaries", missing: []string{"named", "unbound"}, what: []string{"root", "named", "unbound", "ip"},
			skip: "lab: real-server test needs named (apt-get install bind9), unbound (apt-get install unbound); skipping (with CI=true this fails)"},
		{desc: "missing in CI", ci: true, missing: []string{"sshd"}, what: []string{"sshd"},
			fatal: "lab: real-server test needs sshd (apt-get install openssh-server); CI=true, so this is a failure, not a skip"},
		{desc: "not root in CI", ci: true, euid: 1, what: []string{"root"},
			fatal: "lab: real-server test needs root (run the tests as root); CI=true, so this is a failure, not a skip"},
		{desc: "unknown name", what: []string{"bind"}, fatal: `lab: Require: unknown requirement "bind"`},
		{desc: "unknown name in CI", ci: true, what: []string{"exim4"}, fatal: `lab: Require: unknown requirement "exim4"`},
	}
	for _, tc := range tests {
		f := &fakeTB{}
		require(f, tc.ci, tc.euid, have(tc.missing...), tc.what)
		if f.skipped != tc.skip || f.failed != tc.fatal {
			t.Errorf("%s:\n got skip %q fatal %q\nwant skip %q fatal %q", tc.desc, f.skipped, f.failed, tc.skip, tc.fatal)
		}
	}
}
