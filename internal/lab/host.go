package lab

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cutover-dev/cutover/internal/shellquote"
)

// HostOptions configures one SSH host.
type HostOptions struct {
	Name string     // "old", "new"
	Addr netip.Addr // sshd ListenAddress; port 22
	// Mounts are absolute paths given a private, initially empty dir in this host (created on
	// the real fs as empty mount points if missing); nil means DefaultMounts.
	Mounts []string
	// Users are the host's users besides the base accounts (root, daemon, bin, sys, nobody,
	// sshd; see baseAccounts), uid = gid = value, in the host's own /etc/passwd and /etc/group,
	// which are bind-mounted over the machine's: the machine's users never show in a host. Home
	// is /home/<name>, shell /usr/sbin/nologin.
	Users          map[string]int
	AuthorizedKeys []string // lines for the host's own /root/.ssh/authorized_keys
}

// DefaultMounts are the private directories of a chatmail host.
var DefaultMounts = []string{"/home/vmail", "/var/lib/acme", "/etc/dkimkeys", "/var/spool/postfix", "/run/echobot"}

// Host is an OpenSSH sshd in its own mount namespace, in which the mounts, /root/.ssh,
// /etc/passwd and /etc/group are the host's own. Root logs in by key only; agent forwarding is
// allowed. Everything else (binaries, /tmp, the network) is shared with the real machine.
type Host struct {
	Name    string
	Addr    netip.Addr
	Port    int
	Dir     string        // holds this host's private dirs (Dir/fs/<path>) and sshd's config and log
	HostKey ssh.PublicKey // its ed25519 host key (only this key type is configured)
	PID     int           // sshd -D

	ns       string   // mount namespace, "mnt:[...]"
	nsFile   *os.File // held open while the host lives, so the namespace's inode number cannot be reused by another one that killNamespace would then hit
	mounts   []string
	proc     *proc
	keysMu   sync.Mutex
	stopOnce sync.Once
	stopErr  error
}

// StartHost prepares the host's private dirs, host key, passwd/group and authorized_keys in a
// fresh temp dir, starts `unshare --mount --propagation private` with bind mounts and
// `exec sshd -D -e`, and waits until the SSH banner arrives on Addr:22.
func StartHost(opts HostOptions) (*Host, error) {
	if opts.Name == "" {
		return nil, errors.New("lab: host: Name is required")
	}
	if err := checkLabAddr(fmt.Sprintf("host %q", opts.Name), opts.Addr); err != nil {
		return nil, err
	}
	mounts, err := cleanMounts(opts.Name, opts.Mounts)
	if err != nil {
		return nil, err
	}
	for u, id := range opts.Users {
		if u == "" || strings.ContainsAny(u, ":\n/ ") || id <= 0 || id >= 1<<31-1 {
			return nil, fmt.Errorf("lab: host %q: invalid user %q uid %d", opts.Name, u, id)
		}
	}
	for _, k := range opts.AuthorizedKeys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return nil, fmt.Errorf("lab: host %q: authorized key %q: %w", opts.Name, k, err)
		}
	}
	bins := map[string]string{}
	for what, bin := range map[string]string{"sshd": "sshd", "unshare": "unshare", "nsenter": "nsenter"} {
		if bins[bin], err = mustBin(what, bin); err != nil {
			return nil, err
		}
	}
	selfNS, err := mntNS(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("lab: host %q: own mount namespace: %w", opts.Name, err)
	}

	dir, err := makeTempDir("host-" + opts.Name)
	if err != nil {
		return nil, err
	}
	h := &Host{Name: opts.Name, Addr: opts.Addr, Port: 22, Dir: dir, mounts: mounts}
	fail := func(err error) (*Host, error) {
		if h.ns != "" && h.ns != selfNS {
			_ = killNamespace(h.ns, time.Second)
		}
		if h.nsFile != nil {
			h.nsFile.Close()
		}
		if h.proc != nil {
			h.proc.stop(time.Second)
		}
		_ = releaseAddr(opts.Addr)
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := h.prepare(opts); err != nil {
		return fail(fmt.Errorf("lab: host %q: %w", opts.Name, err))
	}
	if err := acquireAddr(opts.Addr); err != nil {
		return fail(err)
	}
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, m := range append(slices.Clone(mounts), "/root/.ssh", "/etc/passwd", "/etc/group") {
		fmt.Fprintf(&script, "mount --bind %s %s\n", shellQuote(h.fsPath(m)), shellQuote(m))
	}
	// root's shell (bash) reads ~/.bashrc for ssh commands: the host gets Debian's default one,
	// which returns at once when not interactive, instead of whatever the real machine's does.
	fmt.Fprintf(&script, "if [ -f /root/.bashrc ]; then mount --bind %s /root/.bashrc; fi\n", shellQuote(h.fsPath("/root/.bashrc")))
	fmt.Fprintf(&script, "exec %s -D -e -f %s\n", shellQuote(bins["sshd"]), shellQuote(filepath.Join(dir, "sshd_config")))
	name := fmt.Sprintf("sshd %s %s", opts.Name, opts.Addr)
	p, err := startProc(name, filepath.Join(dir, "sshd.log"),
		[]string{bins["unshare"], "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script.String()}, "/")
	if err != nil {
		return fail(err)
	}
	h.proc, h.PID = p, p.pid()
	addr := netip.AddrPortFrom(opts.Addr, 22).String()
	if err := waitReady(p, func(ctx context.Context) error { return sshBanner(ctx, addr) }); err != nil {
		return fail(err)
	}
	if h.ns, err = mntNS(h.PID); err != nil {
		return fail(fmt.Errorf("lab: host %q: mount namespace of sshd: %w", opts.Name, err))
	}
	if h.ns == selfNS {
		h.ns = ""
		return fail(fmt.Errorf("lab: host %q: sshd runs in the caller's mount namespace", opts.Name))
	}
	if h.nsFile, err = os.Open(fmt.Sprintf("/proc/%d/ns/mnt", h.PID)); err != nil {
		return fail(fmt.Errorf("lab: host %q: holding its mount namespace: %w", opts.Name, err))
	}
	if ns, err := mntNS(h.PID); err != nil || ns != h.ns {
		return fail(fmt.Errorf("lab: host %q: sshd left its mount namespace while starting", opts.Name))
	}
	if p.record, err = writeRecord(blockOf(opts.Addr), stateRecord{Kind: "sshd", PID: h.PID, Dir: dir, MntNS: h.ns}); err != nil {
		return fail(err)
	}
	return h, nil
}

// NewHost starts an SSH host for the test and stops it at the end of the test.
func NewHost(t testing.TB, opts HostOptions) *Host {
	t.Helper()
	Require(t, "root", "ip", "sshd", "unshare", "nsenter")
	h, err := StartHost(opts)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, h.Stop)
	return h
}

// cleanMounts validates and sorts the mount list (parents before children).
func cleanMounts(host string, ms []string) ([]string, error) {
	if ms == nil {
		ms = DefaultMounts
	}
	var out []string
	for _, m := range ms {
		if !filepath.IsAbs(m) || filepath.Clean(m) != m || m == "/" {
			return nil, fmt.Errorf("lab: host %q: mount %q: want a clean absolute path other than /", host, m)
		}
		for _, reserved := range []string{"/proc", "/sys", "/dev", "/root/.ssh", "/etc/passwd", "/etc/group"} {
			if m == reserved || strings.HasPrefix(m, reserved+"/") || strings.HasPrefix(reserved, m+"/") {
				return nil, fmt.Errorf("lab: host %q: mount %q: overlaps %s", host, m, reserved)
			}
		}
		if slices.Contains(out, m) {
			return nil, fmt.Errorf("lab: host %q: mount %q given twice", host, m)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Count(a, "/") - strings.Count(b, "/") })
	return out, nil
}

// fsPath is where the host's view of the absolute path p lives on the real fs.
func (h *Host) fsPath(p string) string { return filepath.Join(h.Dir, "fs", p) }

// prepare writes the private dirs, host key, sshd_config, passwd, group and authorized_keys,
// and creates missing mount points on the real fs.
func (h *Host) prepare(opts HostOptions) error {
	for _, m := range h.mounts {
		if err := os.MkdirAll(h.fsPath(m), 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(m, 0o755); err != nil {
			return fmt.Errorf("mount point: %w", err)
		}
	}
	for _, d := range []string{"/root/.ssh", "/run/sshd"} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := os.Chmod("/run/sshd", 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(h.fsPath("/root/.ssh"), 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(h.fsPath("/etc"), 0o755); err != nil {
		return err
	}
	bashrc, err := os.ReadFile("/etc/skel/.bashrc")
	if err != nil {
		bashrc = []byte("# cutover lab host: root's .bashrc\n")
	}
	if err := os.WriteFile(h.fsPath("/root/.bashrc"), bashrc, 0o644); err != nil {
		return err
	}
	var keys strings.Builder
	for _, k := range opts.AuthorizedKeys {
		keys.WriteString(strings.TrimSpace(k) + "\n")
	}
	if err := os.WriteFile(h.fsPath("/root/.ssh/authorized_keys"), []byte(keys.String()), 0o600); err != nil {
		return err
	}
	if err := writeAccounts(h.fsPath("/etc/passwd"), h.fsPath("/etc/group"), opts.Users); err != nil {
		return err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "cutover-lab host "+h.Name)
	if err != nil {
		return err
	}
	keyPath := filepath.Join(h.Dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	h.HostKey = signer.PublicKey()
	conf := strings.Join([]string{
		"ListenAddress " + netip.AddrPortFrom(h.Addr, 22).String(),
		"AddressFamily inet",
		"HostKey " + keyPath,
		"PidFile " + filepath.Join(h.Dir, "sshd.pid"),
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"AllowAgentForwarding yes",
		"AllowTcpForwarding yes",
		"AuthorizedKeysFile .ssh/authorized_keys",
		"StrictModes yes",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"MaxStartups 100:30:200",
		"MaxSessions 100",
		"LogLevel VERBOSE",
		"Subsystem sftp internal-sftp",
	}, "\n") + "\n"
	return os.WriteFile(filepath.Join(h.Dir, "sshd_config"), []byte(conf), 0o600)
}

// sshBanner connects to addr and reads the SSH identification line.
func sshBanner(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading banner: %w", err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", strings.TrimSpace(line))
	}
	return nil
}

// Stop kills sshd and every process in the host's mount namespace (SIGTERM, SIGKILL after a
// grace period), which also drops the namespace's mounts; then removes the host's address from
// lo (unless another lab server uses it) and its directory. Stop is idempotent.
func (h *Host) Stop() error {
	h.stopOnce.Do(func() {
		var errs []error
		if h.ns != "" {
			errs = append(errs, killNamespace(h.ns, stopGrace))
		}
		h.proc.stop(stopGrace)
		if h.ns != "" {
			// Once more for anything that entered the namespace meanwhile (a forked child).
			if err := killNamespace(h.ns, 200*time.Millisecond); err != nil {
				errs = append(errs, fmt.Errorf("lab: host %q: %w", h.Name, err))
			}
		}
		if h.nsFile != nil {
			h.nsFile.Close()
		}
		errs = append(errs, releaseAddr(h.Addr), os.RemoveAll(h.Dir))
		h.stopErr = errors.Join(errs...)
	})
	return h.stopErr
}

// Path returns the real-fs path where the host's view of p lives: p must be under one of the
// host's mounts or /root/.ssh, or be /etc/passwd or /etc/group. It panics otherwise.
func (h *Host) Path(p string) string {
	c := filepath.Clean(p)
	if filepath.IsAbs(p) {
		for _, m := range append(slices.Clone(h.mounts), "/root/.ssh") {
			if c == m || strings.HasPrefix(c, m+"/") {
				return h.fsPath(c)
			}
		}
		if c == "/etc/passwd" || c == "/etc/group" {
			return h.fsPath(c)
		}
	}
	panic(fmt.Sprintf("lab: host %q: Path(%q): not private to the host (mounts %v, /root/.ssh, /etc/passwd, /etc/group)", h.Name, p, h.mounts))
}

// AddrPort returns Addr:Port.
func (h *Host) AddrPort() netip.AddrPort { return netip.AddrPortFrom(h.Addr, uint16(h.Port)) }

// KnownHostsLine returns the known_hosts line for the host, e.g. "127.A.B.10 ssh-ed25519 AAAA...".
func (h *Host) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(h.AddrPort().String())}, h.HostKey)
}

// Exec runs `nsenter -t PID -m -- sh -c cmd` (cmd as root in the host's mount namespace) and
// returns its combined output. The error includes the exit status and the output's tail. When
// ctx ends, the command's process group is killed.
func (h *Host) Exec(ctx context.Context, cmd string) ([]byte, error) {
	bin, err := mustBin("nsenter", "nsenter")
	if err != nil {
		return nil, err
	}
	c := exec.CommandContext(ctx, bin, "-t", strconv.Itoa(h.PID), "-m", "--", "/bin/sh", "-c", cmd)
	c.Dir = "/"
	c.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C", "USER=root", "LOGNAME=root"}
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 2 * time.Second
	out, err := c.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return out, fmt.Errorf("lab: host %q: exec %q: %w%s", h.Name, cmd, err, outputTail(out))
	}
	return out, nil
}

// outputTail formats the end of a command's output for an error.
func outputTail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	if len(s) > 1000 {
		s = "..." + s[len(s)-1000:]
	}
	return ": " + s
}

// AddAuthorizedKey appends an authorized_keys line to the host's /root/.ssh/authorized_keys.
func (h *Host) AddAuthorizedKey(line string) error {
	line = strings.TrimSpace(line)
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
		return fmt.Errorf("lab: host %q: authorized key %q: %w", h.Name, line, err)
	}
	h.keysMu.Lock()
	defer h.keysMu.Unlock()
	f, err := os.OpenFile(h.fsPath("/root/.ssh/authorized_keys"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("lab: host %q: %w", h.Name, err)
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("lab: host %q: %w", h.Name, err)
	}
	return f.Close()
}

// shellQuote quotes s for /bin/sh: the project's one rule, under the short
// name the lab's commands are written with.
var shellQuote = shellquote.Quote

// baseAccounts are the users (and groups of the same name and id) of every host: what sshd
// (its privilege-separation user), root logins and a Debian system need, never the machine's.
var baseAccounts = []struct {
	name     string
	id       int
	home, sh string
}{
	{"root", 0, "/root", "/bin/bash"},
	{"daemon", 1, "/usr/sbin", "/usr/sbin/nologin"},
	{"bin", 2, "/bin", "/usr/sbin/nologin"},
	{"sys", 3, "/dev", "/usr/sbin/nologin"},
	{"sshd", 101, "/run/sshd", "/usr/sbin/nologin"},
	{"nobody", 65534, "/nonexistent", "/usr/sbin/nologin"},
}

// writeAccounts writes a host's passwd and group: the base accounts, then users by name (a user
// named like a base account replaces it).
func writeAccounts(passwd, group string, users map[string]int) error {
	var pw, gr strings.Builder
	for _, a := range baseAccounts {
		if _, replaced := users[a.name]; replaced {
			continue
		}
		gname := a.name
		if a.id == 65534 {
			gname = "nogroup"
		}
		fmt.Fprintf(&pw, "%s:x:%d:%d:%s:%s:%s\n", a.name, a.id, a.id, a.name, a.home, a.sh)
		fmt.Fprintf(&gr, "%s:x:%d:\n", gname, a.id)
	}
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&pw, "%s:x:%d:%d::/home/%s:/usr/sbin/nologin\n", n, users[n], users[n], n)
		fmt.Fprintf(&gr, "%s:x:%d:\n", n, users[n])
	}
	if err := os.WriteFile(passwd, []byte(pw.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(group, []byte(gr.String()), 0o644)
}
