package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// mainArgsEnv makes the test binary run Main with these arguments (split
// on tabs) instead of the tests: a real cutover process to send signals to.
const mainArgsEnv = "CUTOVER_TEST_MAIN_ARGS"

// A second signal aborts at once, but not before the local commands still
// running are killed with their process groups: here the [notify] command
// of step-started ignores SIGTERM and SIGINT and has a child. When cutover
// has exited (130), none of them is alive.
func TestSecondSignalKillsLocalCommands(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	path := filepath.Join(dir, "mail.toml")
	src := `cutover_at = 2030-06-01T03:00:00Z
state_dir = "` + filepath.Join(dir, "state") + `"
[old]
address = "192.0.2.1"
[new]
address = "192.0.2.2"
[ssh]
known_hosts = "` + filepath.Join(dir, "known_hosts") + `"
[dns]
provider = "main"
zone = "example.org."
names = ["mail.example.org."]
resolvers = ["127.0.0.1:1"]
[providers.main]
type = "manual"
[notify]
command = "trap '' TERM INT; sleep 61.7 & echo $! > ` + pids + `; echo $$ >> ` + pids + `; wait"
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), mainArgsEnv+"="+strings.Join([]string{"step", "preflight", path, "--yes"}, "\t"))
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var group []int
	for len(group) < 2 {
		select {
		case err := <-exited:
			t.Fatalf("cutover exited before the notify command ran: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		group = readPidLines(pids)
	}
	// Signals do not queue: the second is sent once the first was handled.
	cmd.Process.Signal(syscall.SIGINT)
	for !strings.Contains(stderr.String(), "stopping at the next safe point") {
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != ExitInterrupted {
		t.Errorf("cutover ended with %v, want exit %d\n%s", err, ExitInterrupted, stderr.String())
	}
	if !strings.Contains(stderr.String(), "cutover: aborted\n") {
		t.Errorf("stderr lacks %q:\n%s", "cutover: aborted", stderr.String())
	}
	for _, pid := range group {
		if alive(pid) {
			t.Errorf("process %d of the notify command is alive after cutover exited", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// readPidLines reads the pids in path once the last line is complete.
func readPidLines(path string) []int {
	b, _ := os.ReadFile(path)
	if !bytes.HasSuffix(b, []byte("\n")) {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether process pid runs (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// lockedBuffer is a bytes.Buffer a process writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
