package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The machine of TestMachineUntouched is a network and mount namespace the test makes (not the
// real machine's, whose ports 22 and 53 may be taken, and which parallel runs would share): in
// it a helper process (machineHelper) plays the machine's own DNS server on 127.0.0.1:53 (UDP
// and TCP) and sshd on 127.0.0.1:22, with vmail, opendkim and echobot in the machine's
// /etc/passwd, and runs a lab test binary there as anyone would run the suite. That binary
// isolates itself (Main), stands a host and BIND up on the very same 127.0.0.1:22 and :53
// (ownPorts), runs TestSeedNeedsUsers (a bare host lacks vmail although the machine has it),
// and takes everything down. The helper's servers must then still run and never have been
// contacted.
const (
	machineHelperEnv = "LAB_MACHINE_HELPER" // "1": TestMain runs machineHelper
	ownPortsEnv      = "LAB_OWN_PORTS"      // "1": TestMain runs ownPorts before the tests
)

// machineUsers are the users of a chatmail relay that must not leak into the lab's hosts.
var machineUsers = []string{"vmail", "opendkim", "echobot"}

func TestMachineUntouched(t *testing.T) {
	t.Parallel()
	Require(t, "root", "ip", "sshd", "unshare", "named")
	dir := t.TempDir()
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	groups, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range machineUsers {
		passwd = fmt.Appendf(passwd, "%s:x:%d:%d::/home/%s:/usr/sbin/nologin\n", u, 7000+i, 7000+i, u)
		groups = fmt.Appendf(groups, "%s:x:%d:\n", u, 7000+i)
	}
	for name, b := range map[string][]byte{"passwd": passwd, "group": groups} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("set -e; ip link set lo up; mount --bind %s /etc/passwd; mount --bind %s /etc/group; exec %s -test.run=^$",
		shellQuote(filepath.Join(dir, "passwd")), shellQuote(filepath.Join(dir, "group")), shellQuote(os.Args[0]))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script)
	cmd.Env = append(withoutEnv(os.Environ(), NetnsEnv), machineHelperEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("machine helper:\n%s", out)
	if err != nil {
		t.Fatalf("machine helper: %v", err)
	}
	for _, want := range []string{
		"ownPorts: host and BIND up and down on 127.0.0.1:22 and :53",
		"--- PASS: TestSeedNeedsUsers",
		"machine: contacts during the lab run: 0",
		"machine: servers still answer: udp/53 tcp/53 tcp/22",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("machine helper output lacks %q", want)
		}
	}
}

// machineHelper is the machine of TestMachineUntouched: it serves 127.0.0.1:53 and :22, runs the
// lab test binary, and reports the contacts its servers had while the lab ran.
func machineHelper() error {
	if InLabNetwork() {
		return errors.New("machine: runs in a network namespace of the lab")
	}
	for _, u := range machineUsers {
		if _, err := user.Lookup(u); err != nil {
			return fmt.Errorf("machine: %w", err)
		}
	}
	var contacts atomic.Int64
	udp, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		return fmt.Errorf("machine: %w", err)
	}
	defer udp.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			contacts.Add(1)
			_, _ = udp.WriteTo(buf[:n], from)
		}
	}()
	for _, port := range []string{"53", "22"} {
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			return fmt.Errorf("machine: %w", err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				contacts.Add(1)
				_, _ = c.Write([]byte("machine\n"))
				c.Close()
			}
		}()
	}
	lab := exec.Command(os.Args[0], "-test.run=^TestSeedNeedsUsers$", "-test.v", "-test.count=1")
	lab.Env = append(withoutEnv(os.Environ(), machineHelperEnv), ownPortsEnv+"=1")
	lab.Stdout, lab.Stderr = os.Stdout, os.Stderr
	if err := lab.Run(); err != nil {
		return fmt.Errorf("machine: the lab's test binary: %w", err)
	}
	fmt.Printf("machine: contacts during the lab run: %d\n", contacts.Load())
	if err := machineAnswers(); err != nil {
		return err
	}
	fmt.Println("machine: servers still answer: udp/53 tcp/53 tcp/22")
	return nil
}

// machineAnswers checks that the machine's servers still serve.
func machineAnswers() error {
	c, err := net.Dial("udp", "127.0.0.1:53")
	if err != nil {
		return fmt.Errorf("machine: udp/53: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	if _, err := c.Write([]byte("ping")); err != nil {
		return fmt.Errorf("machine: udp/53: %w", err)
	}
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "ping" {
		return fmt.Errorf("machine: udp/53: answer %q, %v", buf[:n], err)
	}
	for _, port := range []string{"53", "22"} {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
		if err != nil {
			return fmt.Errorf("machine: tcp/%s: %w", port, err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if line != "machine\n" {
			return fmt.Errorf("machine: tcp/%s: answer %q, %v", port, line, err)
		}
	}
	return nil
}

// ownPorts runs in the lab's namespace inside the machine of TestMachineUntouched: a host on
// 127.0.0.1:22 and a BIND on 127.0.0.1:53 start, answer there, and stop.
func ownPorts() error {
	if !InLabNetwork() {
		return errors.New("ownPorts: not in the lab's network namespace")
	}
	lo := netip.MustParseAddr("127.0.0.1")
	h, err := StartHost(HostOptions{Name: "own", Addr: lo})
	if err != nil {
		return err
	}
	b, err := StartBIND(BINDOptions{Addr: lo, Zone: Zone{Origin: "example.org.", TTL: 60, Minimum: 60}})
	if err != nil {
		return errors.Join(err, h.Stop())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, serr := b.Serial(ctx)
	berr := sshBanner(ctx, "127.0.0.1:22")
	if err := errors.Join(serr, berr, b.Stop(), h.Stop()); err != nil {
		return fmt.Errorf("ownPorts: %w", err)
	}
	fmt.Println("ownPorts: host and BIND up and down on 127.0.0.1:22 and :53")
	return nil
}

// TestNotIsolated: outside a network namespace of the lab, nothing starts (not parallel: it
// changes the environment of the whole test binary while the parallel tests wait).
func TestNotIsolated(t *testing.T) {
	t.Setenv(NetnsEnv, "net:[1]")
	want := "lab: not in a network namespace of the lab (call lab.Isolate first, or lab.Main from TestMain)"
	lo := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		desc string
		run  func() error
	}{
		{"ReserveNet", func() error { _, err := ReserveNet(); return err }},
		{"StartHost", func() error { _, err := StartHost(HostOptions{Name: "x", Addr: lo}); return err }},
		{"StartBIND", func() error {
			_, err := StartBIND(BINDOptions{Addr: lo, Zone: Zone{Origin: "example.org."}})
			return err
		}},
		{"StartUnbound", func() error { _, err := StartUnbound(UnboundOptions{Addr: lo}); return err }},
		{"StartKnot", func() error {
			_, err := StartKnot(KnotOptions{Addr: lo, Zone: Zone{Origin: "example.org."}})
			return err
		}},
	} {
		err := tc.run()
		if err == nil || err.Error() != want || !errors.Is(err, ErrNotIsolated) {
			t.Errorf("%s: error %v, want %q", tc.desc, err, want)
		}
	}
	if InLabNetwork() {
		t.Errorf("InLabNetwork: true with %s=net:[1]", NetnsEnv)
	}
}
