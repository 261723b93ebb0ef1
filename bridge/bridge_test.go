package bridge

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/bridge/bridgetest"
)

// backend is new's side: a server on 127.0.0.3.
func backend(t *testing.T, handle func(net.Conn)) uint16 {
	t.Helper()
	return bridgetest.Backend(t, netip.MustParseAddr("127.0.0.3"), handle)
}

// start runs a forwarder on 127.0.0.2 at port, to 127.0.0.3. The returned
// function stops it and returns its counts and log.
func start(t *testing.T, port uint16, o Options) func() ([]PortStats, string) {
	t.Helper()
	var log bridgetest.Buffer
	o.Listen = []string{fmt.Sprintf("127.0.0.2:%d", port)}
	o.To = "127.0.0.3"
	o.Log = &log
	ctx, cancel := context.WithCancel(context.Background())
	f, err := Listen(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []PortStats, 1)
	go func() { done <- f.Serve(ctx) }()
	var once sync.Once
	var stats []PortStats
	stop := func() ([]PortStats, string) {
		once.Do(func() { cancel(); stats = <-done })
		return stats, log.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

func dial(t *testing.T, port uint16) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.2:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A bound on a broken test, not a timing assertion.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn)
}

func TestBytesBothWays(t *testing.T) {
	// new reads everything the client sends, then sends it back twice:
	// both directions carry the whole payload, unequal in size.
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64*1024) // 1 MiB
	port := backend(t, func(c net.Conn) {
		got, err := io.ReadAll(c)
		if err != nil {
			return
		}
		c.Write(got)
		c.Write(got)
	})
	stop := start(t, port, Options{})
	c := dial(t, port)
	go func() { c.Write(payload); c.CloseWrite() }()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]byte(nil), payload...), payload...); !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes back, want %d (the payload twice)", len(got), len(want))
	}
	c.Close()
	stats, log := stop()
	want := []PortStats{{Port: port, Conns: 1, BytesIn: int64(len(payload)), BytesOut: 2 * int64(len(payload))}}
	if fmt.Sprint(stats) != fmt.Sprint(want) {
		t.Errorf("stats = %v, want %v", stats, want)
	}
	if got := Conns(log); got[port] != 1 || len(got) != 1 {
		t.Errorf("Conns(log) = %v, want one on port %d; log:\n%s", got, port, log)
	}
	if got := Conns(log + "2026-12-01T00:00:00Z " + CheckLine(port) + "\n"); len(got) != 0 {
		t.Errorf("Conns with the connection marked as a check = %v, want none", got)
	}
	if !strings.Contains(log, fmt.Sprintf("bridge: stopped port=%d conns=1 refused=0 failed=0", port)) {
		t.Errorf("log has no stopped line for port %d:\n%s", port, log)
	}
}

// TestCheck: the forwarder's own check connects through each listen
// address and sees the dial to new; its connections are not counted, and
// a port with nothing on new fails, naming the address.
func TestCheck(t *testing.T) {
	up := backend(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	free, err := net.Listen("tcp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	down := netip.MustParseAddrPort(free.Addr().String()).Port()
	free.Close()
	for _, tc := range []struct {
		desc    string
		port    uint16
		wantErr string
	}{
		{desc: "new listens", port: up},
		{desc: "nothing on new", port: down, wantErr: fmt.Sprintf("bridge: check: 127.0.0.2:%d does not reach new: dial tcp 127.0.0.3:%d: connect: connection refused", down, down)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var log bridgetest.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f, err := Listen(ctx, Options{Listen: []string{fmt.Sprintf("127.0.0.2:%d", tc.port)}, To: "127.0.0.3", Log: &log})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan []PortStats, 1)
			go func() { done <- f.Serve(ctx) }()
			err = f.Check(ctx)
			if got := fmt.Sprint(err); (tc.wantErr == "" && err != nil) || (tc.wantErr != "" && got != tc.wantErr) {
				t.Errorf("Check: %v, want %q", err, tc.wantErr)
			}
			f.mu.Lock()
			if f.checks != nil {
				t.Errorf("Check left its checks behind: a later client from a check's address and port would be taken for it")
			}
			f.mu.Unlock()
			// A client after the check is counted as usual.
			c := dial(t, tc.port)
			from := "from=" + c.LocalAddr().String()
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(log.String(), from); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) { // a bound on a broken test
					t.Fatalf("the client's connection is not in the log:\n%s", log.String())
				}
			}
			c.Close()
			cancel()
			stats := <-done
			want := []PortStats{{Port: tc.port, Conns: 1}}
			if tc.wantErr != "" {
				want[0] = PortStats{Port: tc.port, Failed: 1}
			}
			if fmt.Sprint(stats) != fmt.Sprint(want) {
				t.Errorf("stats %v, want %v (the check's connection not counted)\n%s", stats, want, log.String())
			}
			if tc.wantErr == "" && !strings.Contains(log.String(), fmt.Sprintf(" bridge: checked via 127.0.0.2:%d: reaches 127.0.0.3:%d\n", tc.port, tc.port)) {
				t.Errorf("no checked line in the log:\n%s", log.String())
			}
		})
	}
}

func TestHalfClose(t *testing.T) {
	// The client says everything and half-closes; new reads to the end and
	// only then answers: the answer must still come back.
	port := backend(t, func(c net.Conn) {
		got, err := io.ReadAll(c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "read %q to the end", got)
	})
	start(t, port, Options{})
	c := dial(t, port)
	if _, err := c.Write([]byte("QUIT")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `read "QUIT" to the end`; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestServerHalfClose(t *testing.T) {
	// new speaks first and half-closes; the client can still send.
	got := make(chan string, 1)
	port := backend(t, func(c net.Conn) {
		io.WriteString(c, "220 bye\r\n")
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	start(t, port, Options{})
	c := dial(t, port)
	greeting, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(greeting) != "220 bye\r\n" {
		t.Errorf("greeting %q", greeting)
	}
	io.WriteString(c, "still here")
	c.CloseWrite()
	if g := <-got; g != "still here" {
		t.Errorf("new read %q, want %q", g, "still here")
	}
}

func roundTrip(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(s))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	if string(b) != s {
		t.Fatalf("echo %q, want %q", b, s)
	}
}

func TestConnectionCap(t *testing.T) {
	port := backend(t, bridgetest.Echo)
	stop := start(t, port, Options{MaxConns: 1})
	first := dial(t, port)
	roundTrip(t, first, "one") // the first is open and forwarded
	second := dial(t, port)
	n, err := second.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("second connection over the cap: read %d, %v; want 0, EOF", n, err)
	}
	roundTrip(t, first, "still") // the first is not disturbed
	first.Close()
	stats, log := stop()
	if len(stats) != 1 || stats[0].Conns != 1 || stats[0].Refused != 1 {
		t.Errorf("stats = %+v, want 1 forwarded and 1 refused", stats)
	}
	if !strings.Contains(log, "(the cap)") {
		t.Errorf("log does not say why the second was refused:\n%s", log)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Run("idle both ways is closed", func(t *testing.T) {
		port := backend(t, bridgetest.Echo)
		start(t, port, Options{Idle: 100 * time.Millisecond})
		c := dial(t, port)
		roundTrip(t, c, "hi")
		// No more traffic: the forwarder closes it (the dial's deadline
		// only bounds a broken test).
		n, err := c.Read(make([]byte, 1))
		if n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("read on an idle connection: %d, %v; want 0, EOF", n, err)
		}
	})
	t.Run("traffic one way keeps it open", func(t *testing.T) {
		// new sends a byte every fifth of the idle timeout; the client never
		// writes. Every byte must arrive.
		const idle = time.Second
		port := backend(t, func(c net.Conn) {
			for i := range 8 {
				fmt.Fprint(c, i)
				time.Sleep(idle / 5)
			}
		})
		start(t, port, Options{Idle: idle})
		c := dial(t, port)
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "01234567" {
			t.Errorf("got %q, want %q", got, "01234567")
		}
	})
}

// readProxyV2 parses a PROXY v2 header as a server that trusts it does,
// returning the client's address it carries.
func readProxyV2(r io.Reader) (netip.AddrPort, netip.AddrPort, error) {
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	if !bytes.Equal(fixed[:12], []byte("\r\n\r\n\x00\r\nQUIT\n")) {
		return netip.AddrPort{}, netip.AddrPort{}, errors.New("no PROXY v2 signature")
	}
	if fixed[12] != 0x21 {
		return netip.AddrPort{}, netip.AddrPort{}, fmt.Errorf("version/command %#x, want 0x21", fixed[12])
	}
	body := make([]byte, binary.BigEndian.Uint16(fixed[14:16]))
	if _, err := io.ReadFull(r, body); err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	switch fixed[13] {
	case 0x11:
		if len(body) < 12 {
			return netip.AddrPort{}, netip.AddrPort{}, errors.New("short TCP4 body")
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		dst := netip.AddrFrom4([4]byte(body[4:8]))
		return netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:])), netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[10:])), nil
	case 0x21:
		if len(body) < 36 {
			return netip.AddrPort{}, netip.AddrPort{}, errors.New("short TCP6 body")
		}
		src := netip.AddrFrom16([16]byte(body[0:16]))
		dst := netip.AddrFrom16([16]byte(body[16:32]))
		return netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:])), netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[34:])), nil
	}
	return netip.AddrPort{}, netip.AddrPort{}, fmt.Errorf("family %#x", fixed[13])
}

func TestProxyProtocol(t *testing.T) {
	type seen struct {
		src, dst netip.AddrPort
		err      error
		rest     string
	}
	got := make(chan seen, 1)
	port := backend(t, func(c net.Conn) {
		src, dst, err := readProxyV2(c)
		rest, _ := io.ReadAll(c)
		got <- seen{src, dst, err, string(rest)}
	})
	start(t, port, Options{ProxyProtocol: true})
	c := dial(t, port)
	io.WriteString(c, "EHLO client")
	c.CloseWrite()
	s := <-got
	if s.err != nil {
		t.Fatal(s.err)
	}
	client := netip.MustParseAddrPort(c.LocalAddr().String())
	if s.src != client {
		t.Errorf("new sees the client as %s, want %s", s.src, client)
	}
	if want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), port); s.dst != want {
		t.Errorf("new sees the destination as %s, want %s", s.dst, want)
	}
	if s.rest != "EHLO client" {
		t.Errorf("after the header new read %q", s.rest)
	}
}

func TestProxyHeader(t *testing.T) {
	tests := []struct {
		desc     string
		src, dst string
		want     string // the addresses the header carries
	}{
		{desc: "IPv4", src: "192.0.2.1:40000", dst: "198.51.100.7:25", want: "192.0.2.1:40000 198.51.100.7:25"},
		{desc: "IPv6", src: "[2001:db8::1]:40000", dst: "[2001:db8::25]:587", want: "[2001:db8::1]:40000 [2001:db8::25]:587"},
		{desc: "mixed families become IPv6", src: "192.0.2.1:40000", dst: "[2001:db8::25]:993",
			want: "[::ffff:192.0.2.1]:40000 [2001:db8::25]:993"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			h := ProxyHeader(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tt.src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tt.dst)))
			src, dst, err := readProxyV2(bytes.NewReader(h))
			if err != nil {
				t.Fatal(err)
			}
			if got := src.String() + " " + dst.String(); got != tt.want {
				t.Errorf("header carries %s, want %s", got, tt.want)
			}
		})
	}
}

func TestListenErrors(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	tests := []struct {
		desc string
		o    Options
		want string
	}{
		{desc: "to is a name", o: Options{Listen: []string{"127.0.0.2:25"}, To: "new.example"}, want: `bridge: --to "new.example": not an IP address`},
		{desc: "nothing to listen on", o: Options{To: "127.0.0.3"}, want: "bridge: nothing to listen on"},
		{desc: "no port", o: Options{Listen: []string{"127.0.0.2"}, To: "127.0.0.3"}, want: `bridge: listen address "127.0.0.2": want IP:PORT with a port above 0`},
		{desc: "port 0", o: Options{Listen: []string{"127.0.0.2:0"}, To: "127.0.0.3"}, want: `bridge: listen address "127.0.0.2:0": want IP:PORT with a port above 0`},
		{desc: "negative cap", o: Options{Listen: []string{"127.0.0.2:25"}, To: "127.0.0.3", MaxConns: -1}, want: "bridge: connection cap -1: must be 0 or more"},
		{desc: "port held", o: Options{Listen: []string{held.Addr().String()}, To: "127.0.0.3"},
			want: "bridge: listen on " + held.Addr().String() + ": listen tcp " + held.Addr().String() + ": bind: address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			f, err := Listen(context.Background(), tt.o)
			if err == nil {
				f.closeListeners()
				t.Fatal("no error")
			}
			if err.Error() != tt.want {
				t.Errorf("error %q\nwant  %q", err, tt.want)
			}
		})
	}
}

func TestPidFile(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "bridge.pid")

	// A pid file naming a process that is not a forwarder is replaced.
	os.WriteFile(pidfile, []byte("1\n"), 0o600)
	if _, ok := Running(pidfile); ok {
		t.Fatal("pid 1 taken for a forwarder")
	}
	if err := WritePid(pidfile); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(pidfile); strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Fatalf("pid file holds %q", b)
	}

	// A process whose command line is a forwarder's blocks a second one.
	cmd := exec.Command("sh", "-c", "read x", "bridge", "serve")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	os.WriteFile(pidfile, []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o600)
	if pid, ok := Running(pidfile); !ok || pid != cmd.Process.Pid {
		t.Fatalf("Running = %d, %v; want %d, true", pid, ok, cmd.Process.Pid)
	}
	want := fmt.Sprintf("bridge: a forwarder already runs as pid %d (pid file %q)", cmd.Process.Pid, pidfile)
	if err := WritePid(pidfile); err == nil || err.Error() != want {
		t.Fatalf("WritePid = %v, want %s", err, want)
	}
	// RemovePid leaves another process's pid file alone.
	if err := RemovePid(pidfile); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pidfile); err != nil {
		t.Fatalf("pid file of another process removed: %v", err)
	}
}

// remoteConn is a connection with a given remote address.
type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// A check connection's result is claimed once: a later connection from the same address and
// port (a sender's, once the port is free again) is forwarded, and its forwarding never waits
// on a result nobody reads (which kept Serve from stopping on SIGTERM).
func TestCheckResultClaimedOnce(t *testing.T) {
	from := netip.MustParseAddrPort("127.0.0.2:40000")
	for _, tc := range []struct {
		desc    string
		checks  bool // Check is still running
		wantHit []bool
	}{
		{desc: "while Check runs: the first connection is the check, the second a client", checks: true, wantHit: []bool{true, false}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			f := &Forwarder{}
			if tc.checks {
				c := &checks{dialled: make(chan struct{}), result: map[netip.AddrPort]chan error{from: make(chan error, 1)}}
				close(c.dialled)
				f.checks = c
			}
			conn := remoteConn{remote: net.TCPAddrFromAddrPort(from)}
			for i, want := range tc.wantHit {
				if got := f.checkFor(t.Context(), conn) != nil; got != want {
					t.Errorf("connection %d: a check's = %v, want %v", i+1, got, want)
				}
			}
		})
	}
}
