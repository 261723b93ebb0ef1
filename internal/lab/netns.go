package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// NetnsEnv names the environment variable that marks a process as running in a network
// namespace of the lab: its value is the namespace's link ("net:[4026532301]"), or "from:" and
// the link of the namespace a re-executed program was started from. Every lab server refuses
// to start unless the caller's namespace is the one the variable names (see InLabNetwork), so
// nothing the lab starts ever binds an address of the machine's own network, whatever ports
// the machine's BIND, Unbound or sshd use.
const NetnsEnv = "CUTOVER_LAB_NETNS"

// ErrNotIsolated is wrapped by every Start function when the caller does not run in a network
// namespace of the lab.
var ErrNotIsolated = errors.New("not in a network namespace of the lab (call lab.Isolate first, or lab.Main from TestMain)")

// netnsLink returns the network namespace link of pid ("self" for this process).
func netnsLink(pid string) (string, error) { return os.Readlink("/proc/" + pid + "/ns/net") }

// InLabNetwork reports whether this process runs in the network namespace that NetnsEnv names.
func InLabNetwork() bool {
	cur, err := netnsLink("self")
	return err == nil && os.Getenv(NetnsEnv) == cur
}

// checkIsolated is the guard of every Start function.
func checkIsolated() error {
	if !InLabNetwork() {
		return fmt.Errorf("lab: %w", ErrNotIsolated)
	}
	return nil
}

// Isolate makes the program run in a private network namespace of its own, where 127.0.0.0/8
// and every port are the lab's: unless it already runs in a namespace of the lab, it runs
// itself again (same arguments, environment, stdio) in a fresh network namespace with lo up,
// passes SIGINT, SIGTERM and SIGHUP on to that copy, and exits with its exit status; the copy
// dies with it. In the copy (or a namespace of the lab), Isolate returns nil. It needs root;
// otherwise it returns an error and the program stays where it is.
//
// Isolate must be called first thing in main or TestMain, before any goroutine of the program
// depends on the process it runs in.
func Isolate() error {
	cur, err := netnsLink("self")
	if err != nil {
		return fmt.Errorf("lab: isolate: %w", err)
	}
	mark := os.Getenv(NetnsEnv)
	if mark == cur {
		return nil
	}
	if from, ok := strings.CutPrefix(mark, "from:"); ok {
		if from == cur {
			return fmt.Errorf("lab: isolate: still in network namespace %s after re-executing", cur)
		}
		// The copy, in its fresh namespace: mark it for the children (servers, cutover).
		os.Setenv(NetnsEnv, cur)
		return loUp()
	}
	if os.Geteuid() != 0 {
		return errors.New("lab: isolate: a network namespace needs root")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("lab: isolate: %w", err)
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(withoutEnv(os.Environ(), NetnsEnv), NetnsEnv+"=from:"+cur)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	// Pdeathsig fires when the thread that started the copy exits: this one, locked for good,
	// lives until os.Exit below. (Not spawn: the copy stays in the terminal's process group.)
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: isolate: new network namespace: %w", err)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		os.Exit(0)
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			os.Exit(128 + int(ws.Signal()))
		}
		os.Exit(ee.ExitCode())
	}
	fmt.Fprintf(os.Stderr, "lab: isolate: %v\n", err)
	os.Exit(1)
	return nil
}

// Main is TestMain for a package whose tests use the lab: RunIsolated(m.Run).
func Main(m *testing.M) { RunIsolated(m.Run) }

// RunIsolated calls Isolate, then exits with what run returns: the TestMain of a package that
// has more to do around m.Run. When Isolate fails (not root), run runs where it is and every
// lab test skips (or fails with CI=true) in Require; as root the error is printed, and the lab
// tests fail with ErrNotIsolated.
func RunIsolated(run func() int) {
	if err := Isolate(); err != nil && os.Geteuid() == 0 {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(run())
}

// loUp brings up lo in the process's network namespace.
func loUp() error {
	ip, err := mustBin("ip", "ip")
	if err != nil {
		return err
	}
	if out, err := exec.Command(ip, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("lab: ip link set lo up: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// withoutEnv returns env without the variable name.
func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// ProcStart returns the start time of a live (non-zombie) process pid, in clock ticks since
// boot: with the PID, it names a process for good (a reused PID has another start time).
func ProcStart(pid int) (uint64, error) {
	start, zombie, err := procStart(pid)
	if err == nil && zombie {
		err = fmt.Errorf("lab: process %d has exited", pid)
	}
	return start, err
}

// KillNetworkNamespace terminates every process whose network namespace is link
// ("net:[INODE]"): SIGTERM, then SIGKILL after a grace period, until none is left. It is how
// `cutover-lab down` empties the lab's namespace, whatever was started in it.
func KillNetworkNamespace(link string) error {
	if !strings.HasPrefix(link, "net:[") {
		return fmt.Errorf("lab: %q is not a network namespace", link)
	}
	return killNamespace(link, stopGrace)
}
