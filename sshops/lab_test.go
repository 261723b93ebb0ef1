package sshops

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/internal/lab"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// syncBuffer is a log that tests read while clients write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a lab pair with connected clients.
type env struct {
	lab  *lab.Pair
	pair *Pair
	log  *syncBuffer
	auth Auth
}

func endpoints(lp *lab.Pair) (Endpoint, Endpoint) {
	return Endpoint{Role: "old", Addr: lp.Old.Addr, Port: lp.Old.Port, User: "root"},
		Endpoint{Role: "new", Addr: lp.New.Addr, Port: lp.New.Port, User: "root"}
}

func newEnv(t *testing.T, mode Mode) *env {
	t.Helper()
	lab.Require(t, "root", "sshd", "ssh", "rsync", "ip", "unshare", "nsenter")
	lp := lab.NewPair(t, lab.NewNet(t))
	e := &env{lab: lp, log: &syncBuffer{}, auth: Auth{IdentityFile: lp.Identity.KeyFile, KnownHosts: lp.KnownHosts}}
	e.pair = e.connect(t, mode)
	mustExec(t, lp.Old, "mkdir -p "+maildir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", e.log)
		}
	})
	return e
}

// connect dials both hosts and returns a fresh Pair on them.
func (e *env) connect(t *testing.T, mode Mode) *Pair {
	t.Helper()
	oe, ne := endpoints(e.lab)
	p := &Pair{Mode: mode, Log: e.log, TempDir: t.TempDir()}
	var err error
	if p.Old, err = Dial(t.Context(), oe, e.auth, e.log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Old.Close() })
	if p.New, err = Dial(t.Context(), ne, e.auth, e.log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.New.Close() })
	return p
}

func mustExec(t *testing.T, h *lab.Host, script string) string {
	t.Helper()
	out, err := h.Exec(t.Context(), script)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// leftovers lists one-time keys in new's and old's authorized_keys and temp dirs in TempDir.
func (e *env) leftovers(t *testing.T, p *Pair) []string {
	t.Helper()
	var out []string
	for _, h := range []*lab.Host{e.lab.Old, e.lab.New} {
		b, err := os.ReadFile(h.Path("/root/.ssh/authorized_keys"))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, onetimeMarker) {
				out = append(out, h.Name+" authorized_keys: "+l)
			}
		}
	}
	ents, err := os.ReadDir(p.tempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		out = append(out, "temp dir: "+d.Name())
	}
	return out
}

const maildir = "/home/vmail/mail"

// tree writes a Maildir-like tree with awkward names, hard links, symlinks, modes, owners and
// empty directories on old.
const tree = `set -e
m=/home/vmail/mail/example.org/alice
mkdir -p "$m/cur" "$m/new" "$m/tmp" "$m/.Archive/cur" /home/vmail/mail/empty/dir
printf 'hello' > "$m/cur/1700000000.M1P1.host,S=5:2,S"
printf 'unread' > "$m/new/1700000001.M2P1.host"
printf 'x' > "$m/cur/name with spaces:2,RS"
printf 'y' > "$m/cur/$(printf 'new\nline')"
printf 'uid' > "$m/dovecot-uidlist"
ln "$m/cur/1700000000.M1P1.host,S=5:2,S" "$m/.Archive/cur/hardlinked:2,S"
ln -s ../cur "$m/new/link-to-cur"
chmod 600 "$m/dovecot-uidlist"
chmod 2750 "$m/.Archive"
chown -R vmail:vmail /home/vmail/mail
chown opendkim:opendkim "$m/new/1700000001.M2P1.host"
touch -d '2024-01-02 03:04:05' "$m/cur/name with spaces:2,RS"
mkdir -p /etc/dkimkeys
printf 'secret' > /etc/dkimkeys/opendkim.private
chmod 600 /etc/dkimkeys/opendkim.private
`

func TestDialHostKeys(t *testing.T) {
	lab.Require(t, "root", "sshd", "ip", "unshare", "nsenter")
	t.Parallel()
	lp := lab.NewPair(t, lab.NewNet(t))
	oe, _ := endpoints(lp)
	dir := t.TempDir()
	host := lp.Old.AddrPort().String()
	fp := "ssh-ed25519 " + ssh.FingerprintSHA256(lp.Old.HostKey)
	line := lp.Old.KnownHostsLine()

	otherPub, _, _ := ed25519.GenerateKey(nil)
	other, _ := ssh.NewPublicKey(otherPub)
	otherLine := fmt.Sprintf("%s %s", lp.Old.Addr, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other))))
	writeKH := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	onlyNew := writeKH("only-new", lp.New.KnownHostsLine())
	mismatch := writeKH("mismatch", lp.New.KnownHostsLine(), otherLine)
	for _, tc := range []struct {
		desc    string
		kh      string
		accept  bool
		want    string
		hint    string
		written bool
	}{
		{desc: "unknown host", kh: onlyNew,
			want: fmt.Sprintf("sshops: unknown host %s: its key %s is not in %q; if that is the right key, add this line to the file: %s", host, fp, onlyNew, line)},
		{desc: "missing file is empty", kh: filepath.Join(dir, "none"),
			want: fmt.Sprintf("sshops: unknown host %s: its key %s is not in %q; if that is the right key, add this line to the file: %s", host, fp, filepath.Join(dir, "none"), line)},
		{desc: "mismatch", kh: mismatch,
			want: fmt.Sprintf("sshops: host key mismatch for %s: it presented %s but %q has ssh-ed25519 %s (line 2); if the host was reinstalled, remove the old key with: ssh-keygen -R %s -f %s",
				host, fp, mismatch, ssh.FingerprintSHA256(other), lp.Old.Addr, mismatch),
			hint: fmt.Sprintf("ssh-keygen -R %s -f %s", lp.Old.Addr, mismatch)},
		{desc: "mismatch is not accepted", kh: mismatch, accept: true,
			want: fmt.Sprintf("sshops: host key mismatch for %s: it presented %s but %q has ssh-ed25519 %s (line 2); if the host was reinstalled, remove the old key with: ssh-keygen -R %s -f %s",
				host, fp, mismatch, ssh.FingerprintSHA256(other), lp.Old.Addr, mismatch),
			hint: fmt.Sprintf("ssh-keygen -R %s -f %s", lp.Old.Addr, mismatch)},
		{desc: "accept new records the line", kh: writeKH("accept", lp.New.KnownHostsLine()), accept: true, written: true},
		{desc: "accept new creates the file", kh: filepath.Join(dir, "sub", "created"), accept: true, written: true},
		{desc: "known", kh: lp.KnownHosts},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var log bytes.Buffer
			c, err := Dial(t.Context(), oe, Auth{IdentityFile: lp.Identity.KeyFile, KnownHosts: tc.kh, AcceptNewHostKey: tc.accept}, &log)
			if tc.want != "" {
				if err == nil {
					c.Close()
					t.Fatalf("Dial succeeded, want %s", tc.want)
				}
				if err.Error() != tc.want {
					t.Fatalf("error\n%s\nwant\n%s", err, tc.want)
				}
				var uh *UnknownHostError
				var mm *HostKeyMismatchError
				if tc.hint != "" {
					if !errors.As(err, &mm) || mm.Hint() != tc.hint {
						t.Errorf("want *HostKeyMismatchError with hint %q, got %#v", tc.hint, err)
					}
				} else if !errors.As(err, &uh) || uh.Line != line || uh.Fingerprint != fp {
					t.Errorf("want *UnknownHostError with line and fingerprint, got %#v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tc.written {
				b, err := os.ReadFile(tc.kh)
				if err != nil || !strings.Contains(string(b), line+"\n") {
					t.Errorf("known_hosts %q after accept: %q (%v), want the line %q", tc.kh, b, err, line)
				}
				if !strings.Contains(log.String(), "[old] recorded new host key "+fp) {
					t.Errorf("log %q does not report the recorded key", log.String())
				}
				// The second dial finds the key without accepting.
				c2, err := Dial(t.Context(), oe, Auth{IdentityFile: lp.Identity.KeyFile, KnownHosts: tc.kh}, io.Discard)
				if err != nil {
					t.Fatalf("second dial: %v", err)
				}
				c2.Close()
			}
			if !strings.Contains(log.String(), "[old] connected to root@"+host+" (host key "+fp+")") {
				t.Errorf("log %q", log.String())
			}
		})
	}
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestDialAuthErrors(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(nil)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "c", []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(dir, "enc")
	if err := os.WriteFile(enc, pemEncode(block), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	kh := filepath.Join(dir, "kh")
	_, plainPriv, _ := ed25519.GenerateKey(nil)
	plainBlock, _ := ssh.MarshalPrivateKey(plainPriv, "c")
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, pemEncode(plainBlock), 0o600)
	// A server that accepts and never speaks.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	silentPort := silent.Addr().(*net.TCPAddr).Port
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	ep := Endpoint{Role: "old", Addr: mustAddr("127.0.0.1"), Port: 1}
	for _, tc := range []struct {
		desc string
		ep   *Endpoint
		auth Auth
		want string
	}{
		{desc: "handshake timeout", ep: &Endpoint{Role: "old", Addr: mustAddr("127.0.0.1"), Port: silentPort},
			auth: Auth{IdentityFile: plain, KnownHosts: kh, DialTimeout: 300 * time.Millisecond},
			want: fmt.Sprintf("sshops: old: ssh to 127.0.0.1:%d: no SSH handshake within 300ms: context deadline exceeded", silentPort)},
		{desc: "connection refused", ep: &Endpoint{Role: "new", Addr: mustAddr("127.0.0.1"), Port: closedPort},
			auth: Auth{IdentityFile: plain, KnownHosts: kh},
			want: fmt.Sprintf("sshops: new: connecting to 127.0.0.1:%d: dial tcp 127.0.0.1:%d: connect: connection refused", closedPort, closedPort)},
		{desc: "no agent", auth: Auth{KnownHosts: kh},
			want: "sshops: no identity file and SSH_AUTH_SOCK is not set: start ssh-agent and ssh-add your key, or name an identity file"},
		{desc: "encrypted key without agent", auth: Auth{IdentityFile: enc, KnownHosts: kh, AgentSocket: filepath.Join(dir, "no-agent")},
			want: fmt.Sprintf("sshops: identity file %q is encrypted and no agent holds it; add it to your agent with: ssh-add %s: encrypted identity file", enc, enc)},
		{desc: "not a key", auth: Auth{IdentityFile: garbage, KnownHosts: kh},
			want: fmt.Sprintf("sshops: identity file %q: ssh: no key found", garbage)},
		{desc: "no known_hosts", auth: Auth{IdentityFile: garbage},
			want: "sshops: known_hosts file is required"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Setenv("SSH_AUTH_SOCK", "")
			e := ep
			if tc.ep != nil {
				e = *tc.ep
			}
			start := time.Now()
			_, err := Dial(t.Context(), e, tc.auth, nil)
			if time.Since(start) > 5*time.Second {
				t.Errorf("Dial took %s", time.Since(start))
			}
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v\nwant  %s", err, tc.want)
			}
			if strings.Contains(fmt.Sprint(err), "pass") {
				t.Errorf("error mentions the passphrase")
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeDirect)
	c := e.pair.New
	for _, tc := range []struct {
		desc     string
		cmd      string
		o        RunOptions
		want     string // error
		status   int
		signal   string
		tail     []string
		log      string
		cancelIn time.Duration
	}{
		{desc: "ok streams lines", cmd: "echo one; echo two; printf 'three'", tail: []string{"one", "two", "three"},
			log: "[new] one\n[new] two\n[new] three\n"},
		// stdout and stderr travel on separate streams: their relative order is not kept.
		{desc: "stderr", cmd: "echo problem >&2", tail: []string{"problem"}, log: "[new] problem\n"},
		{desc: "quiet", cmd: "echo hidden", o: RunOptions{Quiet: true}, tail: []string{"hidden"}},
		{desc: "stdin", cmd: "tr a-z A-Z", o: RunOptions{Stdin: strings.NewReader("abc\n"), Quiet: true}, tail: []string{"ABC"}},
		{desc: "exit status", cmd: "echo failing; exit 3", status: 3, tail: []string{"failing"},
			want: `sshops: new: "echo failing; exit 3" exited with status 3: failing`, log: "[new] failing\n"},
		{desc: "signal", cmd: "kill -KILL $$", status: -1, signal: "KILL",
			want: `sshops: new: "kill -KILL $$" killed by signal KILL`},
		{desc: "timeout", cmd: "sleep 31.7", o: RunOptions{Timeout: 300 * time.Millisecond}, status: -1,
			want: `sshops: new: "sleep 31.7": timed out after 300ms: context deadline exceeded`},
		{desc: "cancel", cmd: "sleep 31.7", cancelIn: 300 * time.Millisecond, status: -1,
			want: `sshops: new: "sleep 31.7": context canceled`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var log syncBuffer
			cl := &Client{ep: c.ep, conn: c.conn, hostKey: c.hostKey, log: newLineLog(&log, "new"), done: make(chan struct{})}
			ctx := t.Context()
			if tc.cancelIn > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(tc.cancelIn, cancel)
			}
			start := time.Now()
			res, err := cl.Run(ctx, tc.cmd, tc.o)
			if time.Since(start) > 10*time.Second {
				t.Errorf("Run took %s", time.Since(start))
			}
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || err.Error() != tc.want) {
				t.Fatalf("error %v\nwant  %s", err, tc.want)
			}
			if res.ExitStatus != tc.status || res.Signal != tc.signal {
				t.Errorf("result %+v, want status %d signal %q", res, tc.status, tc.signal)
			}
			if tc.tail != nil && strings.Join(res.Tail, "|") != strings.Join(tc.tail, "|") {
				t.Errorf("tail %q, want %q", res.Tail, tc.tail)
			}
			if got := log.String(); got != tc.log {
				t.Errorf("log %q, want %q", got, tc.log)
			}
			var ee *ExitError
			if tc.status > 0 || tc.signal != "" {
				if !errors.As(err, &ee) || ee.Result != res {
					t.Errorf("want *ExitError carrying the result, got %#v", err)
				}
			}
		})
	}
	// The cancelled sleep is gone on the host.
	if out, err := e.lab.New.Exec(t.Context(), "pgrep -xf 'sleep 31.7' || true"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("sleep still running on new: %q %v", out, err)
	}
}

// startAgent serves an in-process agent holding the lab identity on a unix socket.
func startAgent(t *testing.T, keyFile string) string {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _ = agent.ServeAgent(kr, c) }()
		}
	}()
	return sock
}

// progressLog records a Pair's progress reports.
type progressLog struct {
	mu   sync.Mutex
	list []Progress
}

func (l *progressLog) add(pr Progress) { l.mu.Lock(); l.list = append(l.list, pr); l.mu.Unlock() }

// lastOf returns the last report of path, and false if there is none.
func (l *progressLog) lastOf(path string) (Progress, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.list) - 1; i >= 0; i-- {
		if l.list[i].Path == path {
			return l.list[i], true
		}
	}
	return Progress{}, false
}

// modeEnv is a lab pair and a Pair on it in mode, recording its progress; with ModeAgent the
// operator's auth goes through the agent too.
func modeEnv(t *testing.T, mode Mode) (*env, *Pair, *progressLog) {
	t.Helper()
	lab.Require(t, "root", "sshd", "ssh", "rsync", "ip", "unshare", "nsenter")
	lp := lab.NewPair(t, lab.NewNet(t))
	e := &env{lab: lp, log: &syncBuffer{}, auth: Auth{IdentityFile: lp.Identity.KeyFile, KnownHosts: lp.KnownHosts}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", e.log)
		}
	})
	if mode == ModeAgent {
		e.auth = Auth{AgentSocket: startAgent(t, lp.Identity.KeyFile), KnownHosts: lp.KnownHosts}
	}
	p := e.connect(t, mode)
	p.AgentSocket = e.auth.AgentSocket
	progress := &progressLog{}
	p.Progress = progress.add
	return e, p, progress
}

func TestCopyModes(t *testing.T) {
	for _, mode := range []Mode{ModeDirect, ModeAgent, ModeRelay} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e, p, progress := modeEnv(t, mode)
			lp := e.lab
			mustExec(t, lp.Old, tree)
			// new already has a stale file that the final pass with delete must remove, and a
			// file in the no-delete entry that must stay.
			mustExec(t, lp.New, "mkdir -p /home/vmail/mail/stale /etc/dkimkeys && echo old > /home/vmail/mail/stale/gone && echo keep > /etc/dkimkeys/keep")
			entries := []Entry{{Path: maildir, Delete: true, Owner: "vmail:", Content: true}, {Path: "/etc/dkimkeys", Owner: "opendkim:"}}

			if err := p.Copy(t.Context(), entries, false); err != nil {
				t.Fatal(err)
			}
			if l := e.leftovers(t, p); len(l) > 0 {
				t.Errorf("left over after initial copy: %q", l)
			}
			// Initial pass never deletes.
			if _, err := os.Stat(lp.New.Path("/home/vmail/mail/stale/gone")); err != nil {
				t.Errorf("initial pass deleted: %v", err)
			}
			// The entries are copied side by side: each must end with a Done report.
			for _, e := range entries {
				if last, ok := progress.lastOf(e.Path); !ok || !last.Done {
					t.Errorf("progress of %s ends with %+v (reported: %v), want Done", e.Path, last, ok)
				}
			}

			// Changes on old between the passes: a message moves new -> cur and is read, one is
			// deleted, one arrives.
			mustExec(t, lp.Old, `set -e; m=/home/vmail/mail/example.org/alice
mv "$m/new/1700000001.M2P1.host" "$m/cur/1700000001.M2P1.host:2,S"
rm "$m/cur/name with spaces:2,RS"
printf 'fresh' > "$m/new/1700000002.M3P1.host"; chown vmail:vmail "$m/new/1700000002.M3P1.host"
rm /etc/dkimkeys/opendkim.private; printf 'k2' > /etc/dkimkeys/opendkim2.private`)
			if err := p.Copy(t.Context(), entries, true); err != nil {
				t.Fatal(err)
			}
			// What is left is old's manifest of the final pass, for Verify, which removes it.
			if l := e.leftovers(t, p); len(l) != 1 || !strings.HasPrefix(l[0], "temp dir: "+onetimeMarker+"manifest-") {
				t.Errorf("left over after final copy: %q, want old's manifest only", l)
			}
			if err := p.Verify(t.Context(), entries); err != nil {
				t.Fatal(err)
			}
			if l := e.leftovers(t, p); len(l) > 0 {
				t.Errorf("left over after verify: %q", l)
			}
			// On new, names resolve to new's uids (owners by name).
			out := mustExec(t, lp.New, `cd /home/vmail/mail/example.org/alice && stat -c '%u:%g %a %h %N' cur/1700000000.M1P1.host,S=5:2,S cur/1700000001.M2P1.host:2,S dovecot-uidlist .Archive "$(printf 'cur/new\nline')" new/link-to-cur`)
			want := "6000:6000 644 2 'cur/1700000000.M1P1.host,S=5:2,S'\n" +
				"6001:6001 644 1 'cur/1700000001.M2P1.host:2,S'\n" +
				"6000:6000 600 1 'dovecot-uidlist'\n" +
				"6000:6000 2750 3 '.Archive'\n" +
				"6000:6000 644 1 'cur/new'$'\\n''line'\n" +
				"6000:6000 777 1 'new/link-to-cur' -> '../cur'\n"
			if out != want {
				t.Errorf("on new:\n%s\nwant\n%s", out, want)
			}
			for _, tc := range []struct {
				path   string
				exists bool
			}{
				{"/home/vmail/mail/stale", false},                                        // Delete
				{"/home/vmail/mail/example.org/alice/cur/name with spaces:2,RS", false},  // Delete
				{"/home/vmail/mail/example.org/alice/new/1700000001.M2P1.host", false},   // moved: no duplicate
				{"/home/vmail/mail/empty/dir", true},                                     // empty dirs
				{"/etc/dkimkeys/keep", true},                                             // no Delete
				{"/etc/dkimkeys/opendkim.private", true},                                 // no Delete
				{"/etc/dkimkeys/opendkim2.private", true},                                // copied
				{"/home/vmail/mail/example.org/alice/.Archive/cur/hardlinked:2,S", true}, // hard link
				{"/home/vmail/mail/example.org/alice/new/1700000002.M3P1.host", true},    // new mail
			} {
				_, err := os.Lstat(lp.New.Path(tc.path))
				if (err == nil) != tc.exists {
					t.Errorf("%s on new: exists=%v, want %v", tc.path, err == nil, tc.exists)
				}
			}
			// Without Delete, verify of the no-delete entry ignores what only new has, but it
			// sees old's deleted file still present on new only as "only on new" when Delete.
			if err := p.Fixup(t.Context(), entries); err != nil {
				t.Fatal(err)
			}
			out = mustExec(t, lp.New, `stat -c '%u:%g %n' /etc/dkimkeys /etc/dkimkeys/opendkim2.private /etc/dkimkeys/keep /home/vmail/mail/example.org/alice/cur/1700000001.M2P1.host:2,S`)
			if want := "6001:6001 /etc/dkimkeys\n6001:6001 /etc/dkimkeys/opendkim2.private\n6001:6001 /etc/dkimkeys/keep\n6000:6000 /home/vmail/mail/example.org/alice/cur/1700000001.M2P1.host:2,S\n"; out != want {
				t.Errorf("after fixup:\n%s\nwant\n%s", out, want)
			}
			// Fixup took the owners from verify's manifest of new and changed only what was wrong.
			for _, want := range []string{"[new] /home/vmail/mail owned by vmail: (1 path(s) changed)", "[new] /etc/dkimkeys owned by opendkim: (4 path(s) changed)"} {
				if !strings.Contains(e.log.String(), want) {
					t.Errorf("log has no line %q", want)
				}
			}
			// Deletions are counted, not listed one per line.
			if strings.Contains(e.log.String(), "deleting ") {
				t.Errorf("log lists deletions one by one:\n%s", e.log)
			}
			if want := "[cutover] /home/vmail/mail: deleted 4 path(s) on new that are gone on old"; mode != ModeRelay && !strings.Contains(e.log.String(), want) {
				t.Errorf("log has no line %q", want)
			}
			if strings.Contains(e.log.String(), "BEGIN OPENSSH PRIVATE KEY") || strings.Contains(e.log.String(), "secret") {
				t.Errorf("log shows a private key or file content")
			}
		})
	}
}

func TestDialEncryptedIdentityWithAgent(t *testing.T) {
	lab.Require(t, "root", "sshd", "ip", "unshare", "nsenter")
	t.Parallel()
	lp := lab.NewPair(t, lab.NewNet(t))
	oe, _ := endpoints(lp)
	dir := t.TempDir()
	pub, priv, _ := ed25519.GenerateKey(nil)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "enc", []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(dir, "enc")
	if err := os.WriteFile(enc, pemEncode(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	if err := lp.Old.AddAuthorizedKey(string(ssh.MarshalAuthorizedKey(sshPub))); err != nil {
		t.Fatal(err)
	}
	// An agent holding only the operator identity does not help.
	other := startAgent(t, lp.Identity.KeyFile)
	_, err = Dial(t.Context(), oe, Auth{IdentityFile: enc, AgentSocket: other, KnownHosts: lp.KnownHosts}, nil)
	if !errors.Is(err, ErrEncryptedIdentity) {
		t.Fatalf("error %v, want ErrEncryptedIdentity", err)
	}
	// An agent holding the key is used.
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _ = agent.ServeAgent(kr, c) }()
		}
	}()
	c, err := Dial(t.Context(), oe, Auth{IdentityFile: enc, AgentSocket: sock, KnownHosts: lp.KnownHosts}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Run(t.Context(), "true", RunOptions{}); err != nil {
		t.Fatal(err)
	}
}
