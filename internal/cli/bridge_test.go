package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/bridge/bridgetest"
)

func TestBridgeUsage(t *testing.T) {
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{desc: "no subcommand", args: []string{"bridge"},
			want: "cutover: error: bridge: want the subcommand serve\ncutover: hint: cutover help bridge\n"},
		{desc: "missing flags", args: []string{"bridge", "serve", "--to", "127.0.0.3"},
			want: "cutover: error: bridge: missing --listen, --pidfile, --log\ncutover: hint: cutover bridge " + lookup("bridge").args + "\n"},
		{desc: "an argument", args: []string{"bridge", "serve", "extra"},
			want: "cutover: error: bridge: wrong number of arguments\ncutover: hint: cutover bridge " + lookup("bridge").args + "\n"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := run(context.Background(), &env{stderr: &stderr, stdout: io.Discard}, tc.args); code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if got := stderr.String(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// cutover bridge serve forwards, writes its pid file while it runs, and
// logs each port's count when stopped.
func TestBridgeServe(t *testing.T) {
	port := bridgetest.Backend(t, netip.MustParseAddr("127.0.0.3"), bridgetest.Echo)
	dir := t.TempDir()
	pidfile, logfile := filepath.Join(dir, "bridge.pid"), filepath.Join(dir, "bridge.log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, &env{stderr: &stderr, stdout: io.Discard}, []string{"bridge", "serve",
			"--listen", fmt.Sprintf("127.0.0.2:%d", port), "--to", "127.0.0.3", "--pidfile", pidfile, "--log", logfile})
	}()
	// Connect once it listens (the log says so before it accepts).
	var c net.Conn
	var err error
	for c == nil {
		if b, _ := os.ReadFile(logfile); strings.Contains(string(b), "listening on") {
			if c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.2:%d", port)); err != nil {
				t.Fatal(err)
			}
		} else {
			select {
			case code := <-done:
				t.Fatalf("exit %d before listening: %s", code, stderr.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	io.WriteString(c, "ping")
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo through the bridge: %q, %v", b, err)
	}
	if pid, err := os.ReadFile(pidfile); err != nil || strings.TrimSpace(string(pid)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("pid file: %q, %v", pid, err)
	}
	c.Close()
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pid file left behind: %v", err)
	}
	log, _ := os.ReadFile(logfile)
	if want := fmt.Sprintf("bridge: stopped port=%d conns=1 refused=0 failed=0 bytes_in=4 bytes_out=4", port); !strings.Contains(string(log), want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}
}
