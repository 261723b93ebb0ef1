package sshops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/bridge"
)

// BridgeSpec is the forwarder of a handover through old: `cutover bridge
// serve` copied to old and run there, detached, with its binary, pid file
// and log in Dir.
type BridgeSpec struct {
	Binary        string // local path of the cutover build for old; "": this executable (old's OS and architecture must match)
	Dir           string // private directory on old (mode 0700)
	Listen        []netip.AddrPort
	To            netip.Addr // new's address: the only place it forwards to
	ProxyProtocol bool
}

func (s BridgeSpec) pidfile() string { return s.Dir + "/bridge.pid" }
func (s BridgeSpec) logfile() string { return s.Dir + "/bridge.log" }

// checkBinary is the preflight check of the forwarder's binary: with
// none configured, old's OS and architecture (uname -sm) must be this
// binary's.
func (c *Client) checkBinary(ctx context.Context, spec BridgeSpec) (string, error) {
	if spec.Binary != "" {
		if _, err := os.Stat(spec.Binary); err != nil {
			return "", fmt.Errorf("sshops: [bridge] binary: %w", err)
		}
		return spec.Binary, nil
	}
	out, err := c.output(ctx, "uname -sm", "uname -sm", nil)
	if err != nil {
		return "", fmt.Errorf("sshops: old's OS and architecture: %w", err)
	}
	got := strings.TrimSpace(string(out))
	if want := unameOf(runtime.GOOS, runtime.GOARCH); got != want {
		return "", fmt.Errorf("sshops: old runs %q, this cutover is built for %q: set [bridge] binary to a cutover build for old (GOOS=linux GOARCH=... go build ./cmd/cutover)", got, want)
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("sshops: this executable: %w", err)
	}
	return exe, nil
}

// unameOf is what `uname -sm` prints on a system that runs goos/goarch.
func unameOf(goos, goarch string) string {
	m := map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "arm": "armv7l", "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x"}[goarch]
	if m == "" {
		m = goarch
	}
	return strings.ToUpper(goos[:1]) + goos[1:] + " " + m
}

// bridgePid is the pid of the forwarder that runs under spec's pid file
// (checked by its command line), or 0.
func (c *Client) bridgePid(ctx context.Context, spec BridgeSpec) (int, error) {
	script := fmt.Sprintf(`pid=$(cat %s 2>/dev/null) || exit 0
case "$pid" in ''|*[!0-9]*) exit 0;; esac
tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -q ' bridge serve ' && echo "$pid"
exit 0`, shellQuote(spec.pidfile()))
	out, err := c.output(ctx, script, "check the forwarder's pid file", nil)
	if err != nil {
		return 0, fmt.Errorf("sshops: forwarder: %w", err)
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return 0, nil
	}
	return strconv.Atoi(s)
}

// UploadBridge copies the forwarder's binary to spec.Dir on c (old),
// unless the same file (sha256) is there already: preflight does it, so
// that the window does not wait for the copy.
func (c *Client) UploadBridge(ctx context.Context, spec BridgeSpec) error {
	binary, err := c.checkBinary(ctx, spec)
	if err != nil {
		return err
	}
	f, err := os.Open(binary)
	if err != nil {
		return fmt.Errorf("sshops: forwarder binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("sshops: forwarder binary: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("sshops: forwarder binary: %w", err)
	}
	dir, exe := shellQuote(spec.Dir), shellQuote(spec.Dir+"/cutover")
	// The dir must be this user's own and not a symlink: nobody else may
	// swap the binary before it starts.
	script := fmt.Sprintf(`umask 077 && mkdir -p %[1]s && [ ! -L %[1]s ] && [ "$(stat -c %%u %[1]s)" = "$(id -u)" ] || { echo "%[1]s is a symlink or not owned by $(id -un)" >&2; exit 1; }
chmod 700 %[1]s && { sha256sum <%[2]s 2>/dev/null || true; }`, dir, exe)
	have, err := c.output(ctx, script, "check "+spec.Dir+" on old", nil)
	if err != nil {
		return fmt.Errorf("sshops: the forwarder's dir on old: %w", err)
	}
	if strings.HasPrefix(strings.TrimSpace(string(have)), sum) {
		return nil
	}
	copyIn := fmt.Sprintf("umask 077 && cat >%[1]s.tmp && chmod 700 %[1]s.tmp && mv -f %[1]s.tmp %[1]s", exe)
	if _, err := c.output(ctx, copyIn, "copy cutover to "+spec.Dir+" on old", f); err != nil {
		return fmt.Errorf("sshops: copy the forwarder to old: %w", err)
	}
	return nil
}

// StartBridge starts the forwarder on c (old), or adopts the one that runs
// under spec's pid file: there is never a second one. It returns whether it
// adopted one. A port held by another process fails, naming it.
func (c *Client) StartBridge(ctx context.Context, spec BridgeSpec) (adopted bool, err error) {
	if pid, err := c.bridgePid(ctx, spec); err != nil {
		return false, err
	} else if pid > 0 {
		return true, nil
	}
	if err := c.UploadBridge(ctx, spec); err != nil {
		return false, err
	}
	exe := shellQuote(spec.Dir + "/cutover")
	listen := make([]string, len(spec.Listen))
	for i, l := range spec.Listen {
		listen[i] = l.String()
	}
	args := []string{exe, "bridge", "serve", "--listen", shellQuote(strings.Join(listen, ",")), "--to", shellQuote(spec.To.String()),
		"--pidfile", shellQuote(spec.pidfile()), "--log", shellQuote(spec.logfile())}
	if spec.ProxyProtocol {
		args = append(args, "--proxy-protocol")
	}
	before, err := c.BridgeLog(ctx, spec)
	if err != nil {
		return false, err
	}
	// Detached: a session of its own, no terminal, output to a file.
	out := shellQuote(spec.Dir + "/bridge.out")
	start := fmt.Sprintf("cd / && : >%s && setsid %s </dev/null >>%s 2>&1 &", out, strings.Join(args, " "), out)
	if _, err := c.output(ctx, start, "start the forwarder on old", nil); err != nil {
		return false, fmt.Errorf("sshops: start the forwarder: %w", err)
	}
	// Wait until it listens on every address, or has exited.
	for deadline := time.Now().Add(15 * time.Second); ; {
		log, err := c.BridgeLog(ctx, spec)
		if err != nil {
			return false, err
		}
		added := strings.TrimPrefix(log, before)
		if strings.Count(added, " bridge: listening on ") >= len(spec.Listen) {
			return false, nil
		}
		pid, err := c.bridgePid(ctx, spec)
		if err != nil {
			return false, err
		}
		if pid == 0 && (strings.Contains(added, " bridge: ") || time.Now().After(deadline)) {
			return false, c.startFailed(ctx, spec, added)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startFailed explains a forwarder that exited at once: its log, and the
// process that holds each port (ss -ltnp).
func (c *Client) startFailed(ctx context.Context, spec BridgeSpec, log string) error {
	msg := strings.TrimSpace(log)
	if msg == "" { // it never got to its log: what it printed
		if out, err := c.output(ctx, fmt.Sprintf("tail -n 3 %s 2>/dev/null; exit 0", shellQuote(spec.Dir+"/bridge.out")), "read the forwarder's output", nil); err == nil {
			msg = strings.TrimSpace(string(out))
		}
	}
	if i := strings.LastIndex(msg, "\n"); i >= 0 {
		msg = msg[i+1:]
	}
	held := c.portHolders(ctx, spec)
	if len(held) > 0 {
		return fmt.Errorf("sshops: the forwarder cannot listen on old: %s (%s)", strings.Join(held, "; "), msg)
	}
	return fmt.Errorf("sshops: the forwarder exited at once: %s", msg)
}

// portHolders says which process listens on each of spec's ports on old
// (ss -ltnp), one "port N held by users:((...))" each.
func (c *Client) portHolders(ctx context.Context, spec BridgeSpec) []string {
	var held []string
	seen := map[uint16]bool{}
	for _, l := range spec.Listen {
		if seen[l.Port()] {
			continue
		}
		seen[l.Port()] = true
		out, err := c.output(ctx, fmt.Sprintf("ss -ltnpH 'sport = :%d'", l.Port()), "ss -ltnp", nil)
		if err != nil {
			continue
		}
		for _, line := range trimLines(out) {
			users := strings.Index(line, "users:")
			if users < 0 || !sameListener(line, spec.Listen, l.Port()) {
				continue
			}
			held = append(held, fmt.Sprintf("port %d held by %s", l.Port(), line[users:]))
		}
	}
	return held
}

// sameListener reports whether an `ss -ltnH` line is a listener that keeps
// the forwarder from listening at port: on one of its addresses, or on a
// wildcard one.
func sameListener(line string, listen []netip.AddrPort, port uint16) bool {
	f := strings.Fields(line)
	if len(f) < 4 {
		return false
	}
	host := f[3][:max(0, strings.LastIndex(f[3], ":"))]
	host = strings.Trim(host, "[]")
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i] // 0.0.0.0%lo: bound to a device
	}
	if host == "*" || host == "0.0.0.0" || host == "::" {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return true // cannot tell: name it
	}
	for _, l := range listen {
		if l.Port() == port && l.Addr().Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

// BridgeLog is the forwarder's log on old ("" when there is none).
func (c *Client) BridgeLog(ctx context.Context, spec BridgeSpec) (string, error) {
	out, err := c.output(ctx, fmt.Sprintf("cat %s 2>/dev/null; exit 0", shellQuote(spec.logfile())), "read the forwarder's log", nil)
	if err != nil {
		return "", fmt.Errorf("sshops: forwarder log: %w", err)
	}
	return string(out), nil
}

// CheckBridge connects to each listen address from old itself and checks,
// in the forwarder's log, that the connection went through to new; it
// marks each such connection in the log as a check (bridge.CheckLine), so
// that it is not counted as a client's.
func (c *Client) CheckBridge(ctx context.Context, spec BridgeSpec) error {
	var problems []string
	for _, l := range spec.Listen {
		before, err := c.BridgeLog(ctx, spec)
		if err != nil {
			return err
		}
		// bash opens the connection and closes it at once.
		connect := fmt.Sprintf("timeout 10 bash -c %s", shellQuote(fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", l.Addr(), l.Port())))
		if _, err := c.output(ctx, connect, "connect to "+l.String()+" on old", nil); err != nil {
			problems = append(problems, fmt.Sprintf("%s: cannot connect: %v", l, err))
			continue
		}
		ok, failed := fmt.Sprintf(" bridge: conn port=%d ", l.Port()), fmt.Sprintf(" bridge: failed port=%d ", l.Port())
		for deadline := time.Now().Add(10 * time.Second); ; {
			log, err := c.BridgeLog(ctx, spec)
			if err != nil {
				return err
			}
			added := strings.TrimPrefix(log, before)
			if strings.Contains(added, ok) {
				mark := fmt.Sprintf(`printf '%%s %%s\n' "$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)" %s >>%s`, shellQuote(bridge.CheckLine(l.Port())), shellQuote(spec.logfile()))
				if _, err := c.output(ctx, mark, "mark the check in the forwarder's log", nil); err != nil {
					return fmt.Errorf("sshops: bridge check: %w", err)
				}
				break
			}
			if i := strings.Index(added, failed); i >= 0 {
				line, _, _ := strings.Cut(added[i:], "\n")
				problems = append(problems, fmt.Sprintf("%s does not reach new:%s", l, strings.TrimPrefix(line, " bridge:")))
				break
			}
			if time.Now().After(deadline) {
				problems = append(problems, fmt.Sprintf("%s: the forwarder did not log the check's connection", l))
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if len(problems) > 0 {
		return errors.New("sshops: bridge check: " + strings.Join(problems, "; "))
	}
	return nil
}

// StopBridge stops the forwarder on old if one runs (SIGTERM, then waits
// until it is gone), removes its binary and returns its log.
func (c *Client) StopBridge(ctx context.Context, spec BridgeSpec) (string, error) {
	for {
		pid, err := c.bridgePid(ctx, spec)
		if err != nil {
			return "", err
		}
		if pid == 0 {
			// Its copy of cutover goes; the log stays for the operator.
			if _, err := c.output(ctx, fmt.Sprintf("rm -f %s", shellQuote(spec.Dir+"/cutover")), "remove the forwarder's binary", nil); err != nil {
				return "", fmt.Errorf("sshops: forwarder: %w", err)
			}
			return c.BridgeLog(ctx, spec)
		}
		if _, err := c.output(ctx, fmt.Sprintf("kill -TERM %d 2>/dev/null; exit 0", pid), "stop the forwarder", nil); err != nil {
			return "", fmt.Errorf("sshops: stop the forwarder: %w", err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Forwarder is the bridge of a handover through old on Hosts' old host,
// as the scheduler uses it.
type Forwarder struct {
	Hosts *Hosts
	Spec  BridgeSpec
}

func (f *Forwarder) old(ctx context.Context, out io.Writer) (*Client, error) {
	p, err := f.Hosts.connect(ctx, out)
	if err != nil {
		return nil, err
	}
	return p.Old, nil
}

// Preflight checks the binary for old (its OS and architecture) and says
// which process holds each bridged port on old now.
func (f *Forwarder) Preflight(ctx context.Context, out io.Writer) error {
	c, err := f.old(ctx, out)
	if err != nil {
		return err
	}
	if err := c.UploadBridge(ctx, f.Spec); err != nil {
		return err
	}
	fmt.Fprintf(out, "bridge: the forwarder is ready in %s on old\n", f.Spec.Dir)
	for _, h := range c.portHolders(ctx, f.Spec) {
		fmt.Fprintf(out, "bridge: %s now; disable must free it\n", h)
	}
	return nil
}

// Start starts or adopts the forwarder and checks every port.
func (f *Forwarder) Start(ctx context.Context, out io.Writer) error {
	c, err := f.old(ctx, out)
	if err != nil {
		return err
	}
	adopted, err := c.StartBridge(ctx, f.Spec)
	if err != nil {
		return err
	}
	if adopted {
		fmt.Fprintf(out, "the forwarder already runs on old (%s): adopted\n", f.Spec.pidfile())
	}
	return c.CheckBridge(ctx, f.Spec)
}

// Carried is what the forwarder carried so far, checks left out.
func (f *Forwarder) Carried(ctx context.Context) (map[uint16]int64, error) {
	c, err := f.old(ctx, io.Discard)
	if err != nil {
		return nil, err
	}
	log, err := c.BridgeLog(ctx, f.Spec)
	if err != nil {
		return nil, err
	}
	return bridge.Conns(log), nil
}

// Stop stops the forwarder and returns what it carried, checks left out.
func (f *Forwarder) Stop(ctx context.Context, out io.Writer) (map[uint16]int64, error) {
	c, err := f.old(ctx, out)
	if err != nil {
		return nil, err
	}
	log, err := c.StopBridge(ctx, f.Spec)
	if err != nil {
		return nil, err
	}
	return bridge.Conns(log), nil
}
