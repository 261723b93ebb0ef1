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
	"slices"
	"strconv"
	"strings"
	"sync"
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

// binarySum is the sha256 (hex) of the forwarder's binary here, computed
// once per file: preflight hashes it, the window only compares.
func binarySum(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("sshops: forwarder binary: %w", err)
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", path, fi.Size(), fi.ModTime().UnixNano())
	if sum, ok := binarySums.Load(key); ok {
		return sum.(string), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("sshops: forwarder binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("sshops: forwarder binary: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	binarySums.Store(key, sum)
	return sum, nil
}

var binarySums sync.Map // path, size, mtime -> sha256

// localBinary is the path of the forwarder's binary here, as UploadBridge
// chose it (without asking old again).
func localBinary(spec BridgeSpec) (string, error) {
	if spec.Binary != "" {
		return spec.Binary, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("sshops: this executable: %w", err)
	}
	return exe, nil
}

// UploadBridge copies the forwarder's binary to spec.Dir on c (old),
// unless the same file (sha256) is there already, and records its sha256
// beside it (cutover.sha256): preflight does it, so that the window only
// compares that record instead of waiting for a copy or a hash.
func (c *Client) UploadBridge(ctx context.Context, spec BridgeSpec) error {
	binary, err := c.checkBinary(ctx, spec)
	if err != nil {
		return err
	}
	sum, err := binarySum(binary)
	if err != nil {
		return err
	}
	dir, exe, q := shellQuote(spec.Dir), shellQuote(spec.Dir+"/cutover"), shellQuote(sum)
	record := fmt.Sprintf("printf '%%s\\n' %s >%s", q, shellQuote(spec.Dir+"/cutover.sha256"))
	// The dir must be this user's own and not a symlink: nobody else may
	// swap the binary before it starts.
	script := fmt.Sprintf(`umask 077 && mkdir -p %[1]s && [ ! -L %[1]s ] && [ "$(stat -c %%u %[1]s)" = "$(id -u)" ] || { echo "%[1]s is a symlink or not owned by $(id -un)" >&2; exit 1; }
chmod 700 %[1]s || exit 1
if [ "$(sha256sum <%[2]s 2>/dev/null | cut -d' ' -f1)" = %[3]s ]; then %[4]s && echo same; fi`, dir, exe, q, record)
	have, err := c.output(ctx, script, "check "+spec.Dir+" on old", nil)
	if err != nil {
		return fmt.Errorf("sshops: the forwarder's dir on old: %w", err)
	}
	if strings.TrimSpace(string(have)) == "same" {
		return nil
	}
	f, err := os.Open(binary)
	if err != nil {
		return fmt.Errorf("sshops: forwarder binary: %w", err)
	}
	defer f.Close()
	copyIn := fmt.Sprintf(`umask 077 && cat >%[1]s.tmp && chmod 700 %[1]s.tmp || exit 1
[ "$(sha256sum <%[1]s.tmp | cut -d' ' -f1)" = %[2]s ] || { echo "the copy's sha256 is not the binary's" >&2; exit 1; }
mv -f %[1]s.tmp %[1]s && %[3]s`, exe, q, record)
	if _, err := c.output(ctx, copyIn, "copy cutover to "+spec.Dir+" on old", f); err != nil {
		return fmt.Errorf("sshops: copy the forwarder to old: %w", err)
	}
	return nil
}

// StartBridge starts the forwarder on c (old), or adopts the one that runs
// under spec's pid file (there is never a second one), and checks that
// each listen address reaches new. It returns whether it adopted one. A
// port held by another process fails, naming it.
//
// It is one session on old: a forwarder it starts checks its ports itself
// and says so on a pipe (--ready-fd) that the shell there waits on, so no
// round trip from here polls for it; an adopted one is checked by
// CheckBridge's script in the same session. Only when the binary that
// preflight put on old is missing or not this one does it copy it first.
func (c *Client) StartBridge(ctx context.Context, spec BridgeSpec) (adopted bool, err error) {
	binary, err := localBinary(spec)
	if err != nil {
		return false, err
	}
	sum, err := binarySum(binary)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	script := startScript(spec, sum)
	for uploaded := false; ; uploaded = true {
		out, err := c.output(ctx, script, "start the forwarder on old", nil)
		if err != nil {
			return false, fmt.Errorf("sshops: start the forwarder: %w", err)
		}
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		status, rest, _ := strings.Cut(lines[0], " ")
		switch status {
		case "adopted":
			return true, checkResult(spec, lines[1:])
		case "started":
			return false, nil
		case "failed:":
			return false, fmt.Errorf("sshops: the forwarder on old: %s", rest)
		case "stale":
			if uploaded {
				return false, fmt.Errorf("sshops: start the forwarder: %s/cutover is not the binary just copied there", spec.Dir)
			}
			if err := c.UploadBridge(ctx, spec); err != nil {
				return false, err
			}
		case "exited":
			var log, printed []string
			for _, l := range lines[1:] {
				if rest, ok := strings.CutPrefix(l, "log "); ok {
					log = append(log, rest)
				} else if rest, ok := strings.CutPrefix(l, "out "); ok {
					printed = append(printed, rest)
				}
			}
			return false, c.startFailed(ctx, spec, lastLine(log, printed))
		default:
			return false, fmt.Errorf("sshops: start the forwarder: unexpected output %q", lines[0])
		}
	}
}

// lastLine is the forwarder's last word: its log's last line, or what it
// printed when it never got to its log.
func lastLine(log, printed []string) string {
	for _, ls := range [][]string{log, printed} {
		if len(ls) > 0 {
			return strings.TrimSpace(ls[len(ls)-1])
		}
	}
	return ""
}

// bridgeShell is what every script on old about the forwarder starts
// with: its files; running, true when the pid file names a live forwarder
// (its pid then in $p); logsize, the size of its log.
func bridgeShell(spec BridgeSpec) string {
	return fmt.Sprintf(`pidf=%s log=%s out=%s exe=%s
running() { p=$(cat "$pidf" 2>/dev/null) || return 1; case "$p" in ''|*[!0-9]*) return 1;; esac; tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null | grep -q ' bridge serve '; }
logsize() { { wc -c <"$log"; } 2>/dev/null || echo 0; }
`, shellQuote(spec.pidfile()), shellQuote(spec.logfile()), shellQuote(spec.Dir+"/bridge.out"), shellQuote(spec.Dir+"/cutover"))
}

// startScript adopts the forwarder that runs and checks it
// (checkScript), or starts it, detached (a session of its own, no
// terminal, output to a file), and reads the one line it writes on a FIFO
// once it listens and has checked every address. Its first line is
// "adopted PID", "started PID", "failed: WHY" (the forwarder's check),
// "stale" (the binary there is not sum) or "exited", then for an exited
// one its new log lines ("log ...") and output ("out ...").
func startScript(spec BridgeSpec, sum string) string {
	listen := make([]string, len(spec.Listen))
	for i, l := range spec.Listen {
		listen[i] = l.String()
	}
	args := []string{`"$exe"`, "bridge", "serve", "--listen", shellQuote(strings.Join(listen, ",")), "--to", shellQuote(spec.To.String()),
		"--pidfile", `"$pidf"`, "--log", `"$log"`, "--ready-fd", "3"}
	if spec.ProxyProtocol {
		args = append(args, "--proxy-protocol")
	}
	return bridgeShell(spec) + fmt.Sprintf(`if running; then
echo "adopted $p"
%[1]s
exit 0
fi
[ -x "$exe" ] && [ "$(cat "$exe.sha256" 2>/dev/null)" = %[2]s ] || { echo stale; exit 0; }
from=$(($(logsize) + 1)) fifo=%[3]s
cd / && rm -f "$fifo" && mkfifo -m 600 "$fifo" && : >"$out" || exit 1
setsid %[4]s </dev/null >>"$out" 2>&1 3>"$fifo" &
read -r line <"$fifo" || line=
rm -f "$fifo"
case "$line" in
ready) echo "started $!";;
failed:*) echo "$line";;
*) echo exited; tail -c +$from "$log" 2>/dev/null | sed 's/^/log /'; tail -n 3 "$out" | sed 's/^/out /';;
esac`, checkScript(spec), shellQuote(sum), shellQuote(spec.Dir+"/ready"), strings.Join(args, " "))
}

// checkScript connects to each listen address from old itself, all at
// once, and waits until the forwarder's log has, for each port, a "conn"
// line per address (the connection went through to new) or a "failed"
// line, for at most 10 s. It marks each port that passed in the log as a
// check (bridge.CheckLine), so that those connections are not counted as
// clients'. It prints "noconnect I" for each address it could not connect
// to, then the log lines the checks added ("log ...").
func checkScript(spec BridgeSpec) string {
	var b strings.Builder
	b.WriteString("from=$(($(logsize) + 1))\n")
	for i, l := range spec.Listen {
		// bash opens the connection and closes it at once.
		fmt.Fprintf(&b, "timeout 10 bash -c 'exec 3<>/dev/tcp/\"$1\"/\"$2\"' _ %s %d 2>/dev/null & c%d=$!\n", shellQuote(l.Addr().String()), l.Port(), i)
	}
	for i := range spec.Listen {
		fmt.Fprintf(&b, "wait $c%d || echo 'noconnect %d'\n", i, i)
	}
	b.WriteString(`passed() { [ "$(printf '%s\n' "$added" | grep -c " bridge: conn port=$1 ")" -ge "$2" ]; }
settled() { passed "$1" "$2" || printf '%s\n' "$added" | grep -q " bridge: failed port=$1 "; }
end=$(($(date +%s) + 10))
while added=$(tail -c +$from "$log" 2>/dev/null); do
	`)
	ports := checkedPorts(spec)
	var all []string
	for _, p := range ports {
		all = append(all, fmt.Sprintf("settled %d %d", p.port, p.addrs))
	}
	fmt.Fprintf(&b, "%s && break\n\t[ \"$(date +%%s)\" -lt \"$end\" ] || break\n\tsleep 0.01\ndone\n", strings.Join(all, " && "))
	for _, p := range ports {
		mark := fmt.Sprintf(`printf '%%s %%s\n' "$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)" %s >>"$log"`, shellQuote(bridge.CheckLine(p.port)))
		fmt.Fprintf(&b, "if passed %d %d; then", p.port, p.addrs)
		for range p.addrs {
			b.WriteString(" " + mark + ";")
		}
		b.WriteString(" fi\n")
	}
	b.WriteString(`printf '%s\n' "$added" | sed 's/^/log /'`)
	return b.String()
}

// portCheck is one port the check connects to, through this many of old's
// addresses.
type portCheck struct {
	port  uint16
	addrs int
}

func checkedPorts(spec BridgeSpec) []portCheck {
	var out []portCheck
	for _, l := range spec.Listen {
		i := slices.IndexFunc(out, func(p portCheck) bool { return p.port == l.Port() })
		if i < 0 {
			out = append(out, portCheck{port: l.Port()})
			i = len(out) - 1
		}
		out[i].addrs++
	}
	return out
}

// checkResult reads checkScript's output: each port passed when the log
// has a "conn" line per address, as the script judged it.
func checkResult(spec BridgeSpec, lines []string) error {
	var problems []string
	var log []string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "log "); ok {
			log = append(log, rest)
		} else if rest, ok := strings.CutPrefix(l, "noconnect "); ok {
			if i, err := strconv.Atoi(rest); err == nil && i < len(spec.Listen) {
				problems = append(problems, fmt.Sprintf("%s: cannot connect", spec.Listen[i]))
			}
		}
	}
	for _, p := range checkedPorts(spec) {
		ok, failed := fmt.Sprintf(" bridge: conn port=%d ", p.port), fmt.Sprintf(" bridge: failed port=%d ", p.port)
		n, fail := 0, ""
		for _, l := range log {
			if strings.Contains(l, ok) {
				n++
			} else if _, rest, found := strings.Cut(l, failed); found && fail == "" {
				fail = fmt.Sprintf("failed port=%d %s", p.port, rest)
			}
		}
		switch {
		case n >= p.addrs:
		case fail != "":
			problems = append(problems, fmt.Sprintf("%s does not reach new: %s", portAddrs(spec, p.port), fail))
		default:
			problems = append(problems, fmt.Sprintf("%s: the forwarder did not log the check's connection", portAddrs(spec, p.port)))
		}
	}
	if len(problems) > 0 {
		return errors.New("sshops: bridge check: " + strings.Join(problems, "; "))
	}
	return nil
}

// portAddrs is the listen addresses of port, "192.0.2.1:25 and [2001:db8::1]:25".
func portAddrs(spec BridgeSpec, port uint16) string {
	var out []string
	for _, l := range spec.Listen {
		if l.Port() == port {
			out = append(out, l.String())
		}
	}
	return strings.Join(out, " and ")
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
// that it is not counted as a client's. One session: see checkScript.
func (c *Client) CheckBridge(ctx context.Context, spec BridgeSpec) error {
	out, err := c.output(ctx, bridgeShell(spec)+checkScript(spec), "check the forwarder's ports on old", nil)
	if err != nil {
		return fmt.Errorf("sshops: bridge check: %w", err)
	}
	return checkResult(spec, strings.Split(string(out), "\n"))
}

// StopBridge stops the forwarder on old if one runs (SIGTERM, then waits
// until it is gone), removes its binary and returns its log, in one
// session.
func (c *Client) StopBridge(ctx context.Context, spec BridgeSpec) (string, error) {
	script := bridgeShell(spec) + `if running; then
	kill -TERM "$p" 2>/dev/null
	end=$(($(date +%s) + 30))
	while kill -0 "$p" 2>/dev/null; do
		[ "$(date +%s)" -lt "$end" ] || { echo "forwarder pid $p still runs 30 s after SIGTERM" >&2; exit 1; }
		sleep 0.02
	done
fi
# Its copy of cutover goes; the log stays for the operator.
rm -f "$exe" "$exe.sha256" || exit 1
cat "$log" 2>/dev/null; exit 0`
	out, err := c.output(ctx, script, "stop the forwarder", nil)
	if err != nil {
		return "", fmt.Errorf("sshops: stop the forwarder: %w", err)
	}
	return string(out), nil
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
	if adopted {
		fmt.Fprintf(out, "the forwarder already runs on old (%s): adopted\n", f.Spec.pidfile())
	}
	return err
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
