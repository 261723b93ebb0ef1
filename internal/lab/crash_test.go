package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain runs the tests in a network namespace of their own (RunIsolated) and turns the test
// binary into the helpers of TestKilledRunCleanup (LAB_CRASH_HELPER=1; it inherits the tests'
// namespace) and TestMachineUntouched (machineHelperEnv, before any isolation; ownPortsEnv,
// after it).
func TestMain(m *testing.M) {
	if os.Getenv(machineHelperEnv) == "1" {
		if err := machineHelper(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("LAB_CRASH_HELPER") == "1" {
		if err := crashingLab(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	RunIsolated(func() int {
		if os.Getenv(ownPortsEnv) == "1" {
			if err := ownPorts(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	})
}

// crashingLab stands up a pair with mail enabled and a detached process in
// old's namespace, reports, and waits to be killed.
func crashingLab() error {
	n, err := ReserveNet()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "lab-crash-")
	if err != nil {
		return err
	}
	p, err := StartPair(n, dir)
	if err != nil {
		return err
	}
	labmail, err := BuildLabmailBinary()
	if err != nil {
		return err
	}
	m, err := InstallMail(context.Background(), p.Old, labmail)
	if err != nil {
		return err
	}
	if err := m.Enable(context.Background()); err != nil {
		return err
	}
	if _, err := p.Old.Exec(context.Background(), "setsid sleep 300 </dev/null >/dev/null 2>&1 &"); err != nil {
		return err
	}
	fmt.Printf("READY %s %s %s %s %s\n", n.Prefix(), p.Old.ns, p.New.ns, p.Old.Dir, p.New.Dir)
	time.Sleep(time.Minute)
	return nil
}

// TestKilledRunCleanup kills (SIGKILL) a process that has a pair running and checks that
// reserving the same block again leaves nothing of it: no process in the hosts' namespaces
// (sshd, labmail, a detached sleep), no address on lo, no host dir.
func TestKilledRunCleanup(t *testing.T) {
	t.Parallel()
	Require(t, "root", "ip", "sshd", "unshare", "nsenter")
	BuildLabmail(t) // build outside the helper's clock
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LAB_CRASH_HELPER=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	var f []string
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("helper exited without READY")
		}
		f = strings.Fields(l)
	case <-time.After(60 * time.Second):
		t.Fatal("helper not ready after 60s")
	}
	prefix, oldNS, newNS, oldDir, newDir := f[1], f[2], f[3], f[4], f[5]
	if len(nsMembers(oldNS)) < 3 {
		t.Fatalf("old's namespace has %v, want sshd, labmail and sleep", nsMembers(oldNS))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// sshd dies with the helper (Pdeathsig); the setsid'd labmail and sleep do not.
	survivors := nsMembers(oldNS)
	if len(survivors) == 0 {
		t.Fatalf("nothing of old's namespace survived the kill: the cleanup below would prove nothing")
	}
	t.Logf("survivors of the kill in old's namespace: %v", survivors)

	var n *Net
	deadline := time.Now().Add(5 * time.Second)
	for { // the flock goes with the killed process
		if n, err = ReserveNetAt(prefix); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer n.Release()
	for _, ns := range []string{oldNS, newNS} {
		if left := nsMembers(ns); len(left) > 0 {
			t.Errorf("namespace %s still has processes %v", ns, left)
		}
	}
	for _, h := range []byte{10, 20} {
		if onLo(t, n.IP(h)) {
			t.Errorf("%s still on lo", n.IP(h))
		}
	}
	for _, d := range []string{oldDir, newDir} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("host dir %s left: %v", d, err)
		}
	}
	if c, err := net.DialTimeout("tcp", n.IP(10).String()+":"+strconv.Itoa(MailPort), time.Second); err == nil {
		c.Close()
		t.Errorf("labmail still listening")
	}
}
