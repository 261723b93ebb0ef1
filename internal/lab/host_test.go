package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshRun dials h as root with signer, verifying the host key against the known_hosts file kh,
// runs cmd and returns its combined output.
func sshRun(h *Host, signer ssh.Signer, kh string, cmd string) (string, error) {
	cb, err := knownhosts.New(kh)
	if err != nil {
		return "", err
	}
	cfg := &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: cb,
		Timeout:         5 * time.Second,
	}
	c, err := ssh.Dial("tcp", h.AddrPort().String(), cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

func TestPair(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	p := NewPair(t, n)
	ctx := context.Background()

	if p.Old.Addr != n.IP(10) || p.New.Addr != n.IP(20) || p.Old.Port != 22 || p.New.Port != 22 {
		t.Fatalf("old at %s:%d, new at %s:%d; want %s:22 and %s:22", p.Old.Addr, p.Old.Port, p.New.Addr, p.New.Port, n.IP(10), n.IP(20))
	}
	for _, h := range []*Host{p.Old, p.New} {
		if !onLo(t, h.Addr) {
			t.Errorf("%s: %s not on lo", h.Name, h.Addr)
		}
	}

	t.Run("private dirs", func(t *testing.T) {
		for _, h := range []*Host{p.Old, p.New} {
			for _, m := range DefaultMounts {
				if err := os.WriteFile(h.Path(m+"/only-"+h.Name), []byte(h.Name+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, h := range []*Host{p.Old, p.New} {
			for _, m := range DefaultMounts {
				out, err := h.Exec(ctx, "ls -A "+m)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := strings.TrimSpace(string(out)), "only-"+h.Name; got != want {
					t.Errorf("%s: ls %s = %q, want %q", h.Name, m, got, want)
				}
			}
		}
		if _, err := os.Stat("/home/vmail/only-old"); !os.IsNotExist(err) {
			t.Errorf("old's file visible on the real fs: stat error %v", err)
		}
		// ssh commands run by root's bash do not run the real machine's ~/.bashrc.
		if _, err := os.Stat("/root/.bashrc"); err == nil {
			skel, _ := os.ReadFile("/etc/skel/.bashrc")
			out, err := p.Old.Exec(ctx, "cat /root/.bashrc")
			if err != nil || len(skel) > 0 && string(out) != string(skel) {
				t.Errorf("host's /root/.bashrc is not Debian's default: %v\n%.200s", err, out)
			}
		}
		// A file the host writes appears at Path.
		if _, err := p.New.Exec(ctx, "echo written-in-ns > /var/lib/acme/from-ns"); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(p.New.Path("/var/lib/acme/from-ns")); err != nil || string(b) != "written-in-ns\n" {
			t.Errorf("Path(/var/lib/acme/from-ns): %q, %v", b, err)
		}
	})

	t.Run("passwd", func(t *testing.T) {
		for _, tc := range []struct {
			desc string
			h    *Host
			want []string
		}{
			{desc: "old", h: p.Old, want: []string{"vmail:x:5000:5000:", "opendkim:x:5001:5001:"}},
			{desc: "new", h: p.New, want: []string{"vmail:x:6000:6000:", "opendkim:x:6001:6001:"}},
		} {
			out, err := tc.h.Exec(ctx, "grep -E '^(vmail|opendkim):' /etc/passwd /etc/group; id -u vmail; stat -c %u:%g /home/vmail")
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), "/etc/passwd:"+w) {
					t.Errorf("%s: /etc/passwd lacks %q:\n%s", tc.desc, w, out)
				}
			}
			uid := strings.TrimSuffix(strings.SplitN(tc.want[0], ":", 4)[2], ":")
			if !strings.Contains(string(out), "/etc/group:vmail:x:"+uid+":") || !strings.Contains(string(out), "\n"+uid+"\n") {
				t.Errorf("%s: group/id output lacks vmail %s:\n%s", tc.desc, uid, out)
			}
		}
		if b, err := os.ReadFile(p.Old.Path("/etc/passwd")); err != nil || !strings.HasPrefix(string(b), "root:x:0:0:") {
			t.Errorf("old /etc/passwd does not start with root: %v\n%s", err, b)
		}
	})

	t.Run("ssh with identity", func(t *testing.T) {
		for _, h := range []*Host{p.Old, p.New} {
			out, err := sshRun(h, p.Identity.Signer, p.KnownHosts, "id -u; id -u vmail; ls -A /home/vmail")
			if err != nil {
				t.Fatalf("ssh %s: %v\n%s", h.Name, err, out)
			}
			uid := map[string]string{"old": "5000", "new": "6000"}[h.Name]
			if want := "0\n" + uid + "\nonly-" + h.Name + "\n"; out != want {
				t.Errorf("ssh %s: output %q, want %q", h.Name, out, want)
			}
		}
	})

	t.Run("ssh refusals", func(t *testing.T) {
		stranger, err := NewIdentity(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		_, err = sshRun(p.Old, stranger.Signer, p.KnownHosts, "true")
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("unauthorized key: error %v, want unable to authenticate", err)
		}
		// known_hosts naming new's key for old's address: a mismatch.
		kh := filepath.Join(t.TempDir(), "known_hosts")
		line := knownhosts.Line([]string{knownhosts.Normalize(p.Old.AddrPort().String())}, p.New.HostKey)
		if err := os.WriteFile(kh, []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = sshRun(p.Old, p.Identity.Signer, kh, "true")
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) || len(ke.Want) != 1 {
			t.Errorf("mismatched host key: error %v, want a knownhosts.KeyError with one wanted key", err)
		}
		// AddAuthorizedKey lets the stranger in on new only.
		if err := p.New.AddAuthorizedKey(stranger.AuthorizedKey); err != nil {
			t.Fatal(err)
		}
		if out, err := sshRun(p.New, stranger.Signer, p.KnownHosts, "echo in"); err != nil || out != "in\n" {
			t.Errorf("after AddAuthorizedKey: %q, %v", out, err)
		}
		if _, err := sshRun(p.Old, stranger.Signer, p.KnownHosts, "true"); err == nil {
			t.Errorf("stranger got into old")
		}
		err = p.New.AddAuthorizedKey("nope")
		if want := `lab: host "new": authorized key "nope": ssh: no key found`; err == nil || err.Error() != want {
			t.Errorf("bad key: error %v, want %q", err, want)
		}
	})

	t.Run("old reaches new with openssh", func(t *testing.T) {
		Require(t, "ssh")
		cmd := fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes root@%s 'id -u vmail; cat /var/lib/acme/from-ns'",
			shellQuote(p.Identity.KeyFile), shellQuote(p.KnownHosts), p.New.Addr)
		out, err := p.Old.Exec(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(out), "6000\nwritten-in-ns\n"; got != want {
			t.Errorf("old -> new: %q, want %q", got, want)
		}
	})

	t.Run("agent forwarding", func(t *testing.T) {
		// As in the agent transfer mode: old reaches new with the operator's forwarded agent only.
		Require(t, "ssh")
		raw, err := os.ReadFile(p.Identity.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		key, err := ssh.ParseRawPrivateKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		keyring := agent.NewKeyring()
		if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
			t.Fatal(err)
		}
		cb, err := knownhosts.New(p.KnownHosts)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ssh.Dial("tcp", p.Old.AddrPort().String(), &ssh.ClientConfig{
			User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeysCallback(keyring.Signers)}, HostKeyCallback: cb, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := agent.ForwardToAgent(c, keyring); err != nil {
			t.Fatal(err)
		}
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := agent.RequestAgentForwarding(s); err != nil {
			t.Fatal(err)
		}
		cmd := fmt.Sprintf("ssh -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=no -o IdentityFile=/dev/null root@%s 'id -u vmail'",
			shellQuote(p.KnownHosts), p.New.Addr)
		out, err := s.CombinedOutput(cmd)
		if err != nil || !strings.HasSuffix(string(out), "6000\n") {
			t.Errorf("old -> new with the forwarded agent: %q, %v", out, err)
		}
	})

	t.Run("exec error", func(t *testing.T) {
		_, err := p.Old.Exec(ctx, "echo some output; exit 3")
		if want := `lab: host "old": exec "echo some output; exit 3": exit status 3: some output`; err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = p.Old.Exec(cctx, "sleep 30")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("cancelled exec: error %v after %s, want deadline exceeded quickly", err, time.Since(start))
		}
	})
}

func TestHostStop(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	id, err := NewIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := StartHost(HostOptions{Name: "stopme", Addr: n.IP(50), Mounts: []string{"/home/vmail"}, AuthorizedKeys: []string{id.AuthorizedKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Stop() })
	ctx := context.Background()
	// Leave processes behind in the namespace: a detached one via Exec, and a live ssh session.
	if _, err := h.Exec(ctx, "setsid sleep 300 </dev/null >/dev/null 2>&1 &"); err != nil {
		t.Fatal(err)
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(h.KnownHostsLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sessErr := make(chan error, 1)
	go func() {
		_, err := sshRun(h, id.Signer, kh, "sleep 300")
		sessErr <- err
	}()
	ns := h.ns
	deadline := time.Now().Add(30 * time.Second)                // an ssh session on a loaded 2-core machine can take seconds
	for len(nsMembers(ns)) < 4 && time.Now().Before(deadline) { // sshd, sleep, session sshd(s), sleep
		time.Sleep(20 * time.Millisecond)
	}
	members := nsMembers(ns)
	if len(members) < 4 {
		t.Fatalf("namespace %s has %d processes %v, want at least 4", ns, len(members), members)
	}
	if want := fmt.Sprintf("%s ssh-ed25519 ", h.Addr); !strings.HasPrefix(h.KnownHostsLine(), want) {
		t.Errorf("KnownHostsLine %q, want prefix %q", h.KnownHostsLine(), want)
	}
	start := time.Now()
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %s with %d processes in the namespace", time.Since(start), len(members))
	if left := nsMembers(ns); len(left) > 0 {
		t.Errorf("processes %v of the namespace still alive", left)
	}
	for _, pid := range members {
		if alive(pid) {
			t.Errorf("pid %d still alive", pid)
		}
	}
	if onLo(t, h.Addr) {
		t.Errorf("%s still on lo", h.Addr)
	}
	if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
		t.Errorf("dir %s still there: %v", h.Dir, err)
	}
	select {
	case err := <-sessErr:
		if err == nil {
			t.Errorf("ssh session survived Stop")
		}
	case <-time.After(5 * time.Second):
		t.Errorf("ssh session still open after Stop")
	}
	if err := h.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	// The address is free again: a new host starts on it.
	h2 := NewHost(t, HostOptions{Name: "again", Addr: n.IP(50), Mounts: []string{"/home/vmail"}})
	if _, err := h2.Exec(ctx, "true"); err != nil {
		t.Error(err)
	}
}

func TestStartHostValidation(t *testing.T) {
	good := netip.MustParseAddr("127.100.0.10")
	tests := []struct {
		desc string
		opts HostOptions
		want string
	}{
		{desc: "no name", opts: HostOptions{Addr: good}, want: `lab: host: Name is required`},
		{desc: "no address", opts: HostOptions{Name: "x"}, want: `lab: host "x": no address given`},
		{desc: "not loopback", opts: HostOptions{Name: "x", Addr: netip.MustParseAddr("10.0.0.1")}, want: `lab: host "x": address "10.0.0.1" is not in 127.0.0.0/8`},
		{desc: "relative mount", opts: HostOptions{Name: "x", Addr: good, Mounts: []string{"home/vmail"}}, want: `lab: host "x": mount "home/vmail": want a clean absolute path other than /`},
		{desc: "root mount", opts: HostOptions{Name: "x", Addr: good, Mounts: []string{"/"}}, want: `lab: host "x": mount "/": want a clean absolute path other than /`},
		{desc: "mount over /etc", opts: HostOptions{Name: "x", Addr: good, Mounts: []string{"/etc"}}, want: `lab: host "x": mount "/etc": overlaps /etc/passwd`},
		{desc: "mount under /proc", opts: HostOptions{Name: "x", Addr: good, Mounts: []string{"/proc/x"}}, want: `lab: host "x": mount "/proc/x": overlaps /proc`},
		{desc: "duplicate mount", opts: HostOptions{Name: "x", Addr: good, Mounts: []string{"/a", "/a"}}, want: `lab: host "x": mount "/a" given twice`},
		{desc: "bad user", opts: HostOptions{Name: "x", Addr: good, Users: map[string]int{"a:b": 5}}, want: `lab: host "x": invalid user "a:b" uid 5`},
		{desc: "uid 0", opts: HostOptions{Name: "x", Addr: good, Users: map[string]int{"vmail": 0}}, want: `lab: host "x": invalid user "vmail" uid 0`},
		{desc: "bad key", opts: HostOptions{Name: "x", Addr: good, AuthorizedKeys: []string{"nope"}}, want: `lab: host "x": authorized key "nope": ssh: no key found`},
	}
	for _, tc := range tests {
		h, err := StartHost(tc.opts)
		if err == nil {
			h.Stop()
			t.Errorf("%s: StartHost succeeded", tc.desc)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%s: error %q, want %q", tc.desc, err, tc.want)
		}
	}
}

func TestHostPathPanics(t *testing.T) {
	h := &Host{Name: "x", Dir: "/nonexistent", mounts: []string{"/home/vmail"}}
	tests := []struct{ desc, path, want string }{
		{desc: "mount itself", path: "/home/vmail", want: "/nonexistent/fs/home/vmail"},
		{desc: "under mount", path: "/home/vmail/a/b", want: "/nonexistent/fs/home/vmail/a/b"},
		{desc: "ssh dir", path: "/root/.ssh/authorized_keys", want: "/nonexistent/fs/root/.ssh/authorized_keys"},
		{desc: "passwd", path: "/etc/passwd", want: "/nonexistent/fs/etc/passwd"},
		{desc: "sibling prefix", path: "/home/vmailx", want: "panic"},
		{desc: "escape", path: "/home/vmail/../../etc/shadow", want: "panic"},
		{desc: "relative", path: "home/vmail", want: "panic"},
		{desc: "shadow", path: "/etc/shadow", want: "panic"},
	}
	for _, tc := range tests {
		got := func() (s string) {
			defer func() {
				if recover() != nil {
					s = "panic"
				}
			}()
			return h.Path(tc.path)
		}()
		if got != tc.want {
			t.Errorf("%s: Path(%q) = %q, want %q", tc.desc, tc.path, got, tc.want)
		}
	}
}

func TestNewIdentity(t *testing.T) {
	dir := t.TempDir()
	id, err := NewIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(id.KeyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: mode %v, err %v; want 0600", id.KeyFile, fi.Mode().Perm(), err)
	}
	b, _ := os.ReadFile(id.KeyFile)
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatalf("key file not an unencrypted OpenSSH key: %v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(id.AuthorizedKey))
	if err != nil {
		t.Fatal(err)
	}
	if string(s.PublicKey().Marshal()) != string(pub.Marshal()) || string(id.Signer.PublicKey().Marshal()) != string(pub.Marshal()) {
		t.Errorf("key file, Signer and AuthorizedKey disagree")
	}
	if pub.Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key type %s, want ed25519", pub.Type())
	}
}
