package sshops

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover-dev/cutover/bridge"
	"github.com/cutover-dev/cutover/bridge/bridgetest"
	"github.com/cutover-dev/cutover/internal/lab"
)

// cutoverBinary builds cmd/cutover for a test that runs it on a lab host.
func cutoverBinary(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cutover")
	if b, err := exec.Command("go", "build", "-o", out, "github.com/cutover-dev/cutover/cmd/cutover").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, b)
	}
	return out
}

// bridgeDir is the forwarder's dir on old: under one of the lab host's
// private mounts, so nothing lands on the machine's own /run.
const bridgeDir = "/run/echobot/cutover-bridge"

// TestBridgeOnOld: the forwarder on old listens on old's address and
// address6 (an IPv6 address on the lab's lo), forwards both to new's
// address, is adopted rather than started twice, and is gone at the end.
func TestBridgeOnOld(t *testing.T) {
	e := newEnv(t, ModeDirect)
	old := e.pair.Old
	port := bridgetest.Backend(t, e.lab.New.Addr, bridgetest.Echo)
	old6 := lab.AddIP6(t, e.lab.Old.Addr)
	spec := BridgeSpec{Binary: cutoverBinary(t), Dir: bridgeDir,
		Listen: []netip.AddrPort{netip.AddrPortFrom(e.lab.Old.Addr, port), netip.AddrPortFrom(old6, port)}, To: e.lab.New.Addr}
	ctx := t.Context()
	t.Cleanup(func() { old.StopBridge(context.Background(), spec) })

	adopted, err := old.StartBridge(ctx, spec)
	if err != nil || adopted {
		t.Fatalf("StartBridge: adopted %v, %v", adopted, err)
	}
	pid, err := old.bridgePid(ctx, spec)
	if err != nil || pid == 0 {
		t.Fatalf("no forwarder runs after StartBridge: %d, %v", pid, err)
	}
	// A second start adopts it: never two.
	if adopted, err := old.StartBridge(ctx, spec); err != nil || !adopted {
		t.Fatalf("second StartBridge: adopted %v, %v", adopted, err)
	}
	// Count only old's own forwarders: other tests run theirs on this machine at the same time.
	mine := `n=0; for p in $(pgrep -f ' bridg[e] serve '); do [ "$(readlink /proc/$p/ns/mnt)" = "$(readlink /proc/self/ns/mnt)" ] && n=$((n+1)); done; echo $n`
	if n := mustExec(t, e.lab.Old, mine); strings.TrimSpace(n) != "1" {
		t.Errorf("%s forwarders run, want 1", strings.TrimSpace(n))
	}
	if err := old.CheckBridge(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// A client (not on old's address) reaches new through old, over IPv4
	// and over IPv6.
	for _, via := range []struct {
		listen netip.AddrPort
		local  net.IP
	}{{spec.Listen[0], net.IPv4(127, 0, 0, 1)}, {spec.Listen[1], net.IPv6loopback}} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: via.local}}
		c, err := d.DialContext(ctx, "tcp", via.listen.String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "EHLO")
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "EHLO" {
			t.Fatalf("through old's %s: %q, %v", via.listen, b, err)
		}
		c.Close()
	}

	log, err := old.StopBridge(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// The checks are marked in the log and not counted: the clients' two are.
	if got := bridge.Conns(log); len(got) != 1 || got[port] != 2 {
		t.Errorf("carried %v, want 2 on port %d; log:\n%s", got, port, log)
	}
	// The forwarder's own checks at start (one per address) are not
	// connections at all; the checks from old's shell (adopting,
	// CheckBridge: two addresses each) are, but marked.
	if !strings.Contains(log, fmt.Sprintf("bridge: stopped port=%d conns=6", port)) {
		t.Errorf("no stopped line with the six connections:\n%s", log)
	}
	for _, l := range spec.Listen {
		if want := fmt.Sprintf(" bridge: checked via %s: reaches %s\n", l, netip.AddrPortFrom(e.lab.New.Addr, port)); !strings.Contains(log, want) {
			t.Errorf("no line%s in the log:\n%s", want, log)
		}
	}
	if pid, err := old.bridgePid(ctx, spec); err != nil || pid != 0 {
		t.Errorf("a forwarder still runs after StopBridge: %d, %v", pid, err)
	}
	if left := mustExec(t, e.lab.Old, "ls "+bridgeDir); strings.Contains(left, "cutover") {
		t.Errorf("the forwarder's binary is left on old: %s", left)
	}
	// The port is free again.
	l, err := net.Listen("tcp", spec.Listen[0].String())
	if err != nil {
		t.Fatalf("port not free after StopBridge: %v", err)
	}
	l.Close()
}

func TestBridgeOnOldFailures(t *testing.T) {
	e := newEnv(t, ModeDirect)
	old := e.pair.Old
	ctx := t.Context()

	// A port another process holds on old: the error names it.
	held, err := net.Listen("tcp", netip.AddrPortFrom(e.lab.Old.Addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	hp := netip.MustParseAddrPort(held.Addr().String())
	spec := BridgeSpec{Binary: cutoverBinary(t), Dir: bridgeDir,
		Listen: []netip.AddrPort{hp}, To: e.lab.New.Addr}
	t.Cleanup(func() { old.StopBridge(context.Background(), spec) })
	_, err = old.StartBridge(ctx, spec)
	want := fmt.Sprintf("sshops: the forwarder cannot listen on old: port %d held by users:((\"sshops.test\"", hp.Port())
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("StartBridge on a held port: %v\nwant it to start with %s", err, want)
	}
	if !strings.HasSuffix(err.Error(), fmt.Sprintf("bridge: listen on %s: listen tcp %s: bind: address already in use)", hp, hp)) {
		t.Errorf("the error does not end with the forwarder's reason: %v", err)
	}

	// Nothing listens on new's port: the check says so.
	free, err := net.Listen("tcp", netip.AddrPortFrom(e.lab.New.Addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	port := netip.MustParseAddrPort(free.Addr().String()).Port()
	free.Close()
	spec.Listen = []netip.AddrPort{netip.AddrPortFrom(e.lab.Old.Addr, port)}
	// The forwarder checks its port itself before it says it is ready.
	_, err = old.StartBridge(ctx, spec)
	want = fmt.Sprintf("sshops: the forwarder on old: bridge: check: %s does not reach new: dial tcp %s: connect: connection refused",
		spec.Listen[0], netip.AddrPortFrom(e.lab.New.Addr, port))
	if err == nil || err.Error() != want {
		t.Fatalf("StartBridge with nothing on new: %v\nwant %s", err, want)
	}
	// It runs (the rollback stops it); adopting it checks again, from old's shell.
	adopted, err := old.StartBridge(ctx, spec)
	want = fmt.Sprintf("sshops: bridge check: %s does not reach new: failed port=%d from=%s:", spec.Listen[0], port, e.lab.Old.Addr)
	if !adopted || err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("StartBridge again with nothing on new: adopted %v, %v\nwant it to start with %s", adopted, err, want)
	}
	err = old.CheckBridge(ctx, spec)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("CheckBridge with nothing on new: %v\nwant it to start with %s", err, want)
	}
	if got := bridge.Conns(mustExec(t, e.lab.Old, "cat "+bridgeDir+"/bridge.log")); len(got) != 0 {
		t.Errorf("a failed check counted as a connection: %v", got)
	}
}

func TestSameListener(t *testing.T) {
	listen := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:25"), netip.MustParseAddrPort("[2001:db8::1]:25")}
	for _, tc := range []struct {
		desc, line string
		want       bool
	}{
		{desc: "on old's address", line: `LISTEN 0 100 192.0.2.1:25 0.0.0.0:* users:(("master",pid=9,fd=13))`, want: true},
		{desc: "on old's address6", line: `LISTEN 0 100 [2001:db8::1]:25 [::]:* users:(("master",pid=9,fd=14))`, want: true},
		{desc: "on every IPv4 address", line: `LISTEN 0 100 0.0.0.0:25 0.0.0.0:* users:(("master",pid=9,fd=13))`, want: true},
		{desc: "on every address", line: `LISTEN 0 100 *:25 *:* users:(("nginx",pid=9,fd=6))`, want: true},
		{desc: "on every IPv6 address", line: `LISTEN 0 100 [::]:25 [::]:* users:(("master",pid=9,fd=14))`, want: true},
		{desc: "on another address", line: `LISTEN 0 100 127.0.0.1:25 0.0.0.0:* users:(("exim",pid=9,fd=3))`, want: false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := sameListener(tc.line, listen, 25); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnameOf(t *testing.T) {
	for _, tc := range []struct{ desc, goos, goarch, want string }{
		{desc: "amd64", goos: "linux", goarch: "amd64", want: "Linux x86_64"},
		{desc: "arm64", goos: "linux", goarch: "arm64", want: "Linux aarch64"},
		{desc: "unknown arch as Go names it", goos: "linux", goarch: "mips", want: "Linux mips"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := unameOf(tc.goos, tc.goarch); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
