package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// lockDir holds one lock file per block (127.A.B.lock) and the state records of what runs in it
// (127.A.B.d/).
var lockDir = "/run/cutover-lab"

// ErrNetTaken is wrapped by ReserveNetAt when another reservation holds the block.
var ErrNetTaken = errors.New("block is reserved by another lab")

// Net is a reserved block 127.A.B.0/24 of the lo of the lab's network namespace (see Isolate),
// so that labs sharing a namespace (the tests of one package, or a `cutover-lab up` and what
// runs in it) never collide. The reservation is an flock on /run/cutover-lab/127.A.B.lock,
// released by Release or by the death of the process; its state directory records what runs
// in the block. Reserving a block first cleans up what a killed run left in it: its processes,
// mount namespaces, temp dirs and /32 addresses on lo.
type Net struct {
	a, b byte
	lock *os.File
	once sync.Once
}

// ReserveNet reserves the first free block in 127.100.0 .. 127.250.255.
func ReserveNet() (*Net, error) {
	for a := 100; a <= 250; a++ {
		for b := 0; b <= 255; b++ {
			n, err := reserve(byte(a), byte(b))
			if err == nil {
				return n, nil
			}
			if !errors.Is(err, ErrNetTaken) {
				return nil, err
			}
		}
	}
	return nil, errors.New("lab: no free block in 127.100.0.0/16 .. 127.250.255.0/24")
}

// ReserveNetAt reserves the block prefix ("127.A.B"), failing with an error wrapping
// ErrNetTaken if it is taken.
func ReserveNetAt(prefix string) (*Net, error) {
	parts := strings.Split(prefix, ".")
	if len(parts) != 3 || parts[0] != "127" {
		return nil, fmt.Errorf("lab: block %q: want 127.A.B", prefix)
	}
	var ab [2]byte
	for i, p := range parts[1:] {
		v, err := strconv.ParseUint(p, 10, 8)
		if err != nil || strconv.FormatUint(v, 10) != p {
			return nil, fmt.Errorf("lab: block %q: want 127.A.B", prefix)
		}
		ab[i] = byte(v)
	}
	return reserve(ab[0], ab[1])
}

// NewNet reserves a block for the test and releases it at the end of the test.
func NewNet(t testing.TB) *Net {
	t.Helper()
	Require(t, "root", "ip")
	n, err := ReserveNet()
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, n.Release)
	return n
}

func reserve(a, b byte) (*Net, error) {
	if err := checkIsolated(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: lock dir: %w", err)
	}
	n := &Net{a: a, b: b}
	f, err := os.OpenFile(filepath.Join(lockDir, n.Prefix()+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: reserve %s: %w", n.Prefix(), err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lab: reserve %s: %w", n.Prefix(), ErrNetTaken)
		}
		return nil, fmt.Errorf("lab: reserve %s: %w", n.Prefix(), err)
	}
	n.lock = f
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
	if _, err := n.cleanup(); err != nil {
		n.lock.Close()
		return nil, err
	}
	return n, nil
}

// cleanup removes what killed runs left in the block: processes and namespaces of recorded
// servers, their temp dirs, and every /32 of the block on lo. The caller holds the lock.
func (n *Net) cleanup() ([]string, error) {
	did := cleanStale(n.Prefix())
	return did, n.removeAddrs()
}

// Prefix returns "127.A.B".
func (n *Net) Prefix() string { return fmt.Sprintf("127.%d.%d", n.a, n.b) }

// String returns "127.A.B.0/24".
func (n *Net) String() string { return n.Prefix() + ".0/24" }

// IP returns 127.A.B.host.
func (n *Net) IP(host byte) netip.Addr { return netip.AddrFrom4([4]byte{127, n.a, n.b, host}) }

// Release removes the block's addresses still on lo and gives up the reservation. It does not
// stop servers: stop them first. Release is idempotent.
func (n *Net) Release() error {
	var err error
	n.once.Do(func() {
		err = n.removeAddrs()
		if cerr := n.lock.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("lab: release %s: %w", n.Prefix(), cerr)
		}
	})
	return err
}

// removeAddrs deletes every /32 of the block from lo.
func (n *Net) removeAddrs() error {
	addrs, err := loAddrs()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range addrs {
		a := p.Addr()
		if p.Bits() != 32 || !a.Is4() || a.As4()[1] != n.a || a.As4()[2] != n.b || a.As4()[0] != 127 {
			continue
		}
		addrMu.Lock()
		delete(addrRefs, a)
		addrMu.Unlock()
		if err := ipAddr("del", a); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Addresses on lo are reference-counted within this process: the first server on an address
// adds it, the last one to stop removes it.
var (
	addrMu   sync.Mutex
	addrRefs = map[netip.Addr]int{}
)

// blockOf returns "127.A.B" for an IPv4 address.
func blockOf(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%d.%d.%d", b[0], b[1], b[2])
}

// checkLabAddr accepts only IPv4 loopback addresses (127.0.0.0/8).
func checkLabAddr(what string, a netip.Addr) error {
	if err := checkIsolated(); err != nil {
		return err
	}
	if !a.IsValid() {
		return fmt.Errorf("lab: %s: no address given", what)
	}
	if !a.Is4() || !a.IsLoopback() {
		return fmt.Errorf("lab: %s: address %q is not in 127.0.0.0/8", what, a)
	}
	return nil
}

func acquireAddr(a netip.Addr) error {
	if a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
		return nil
	}
	addrMu.Lock()
	defer addrMu.Unlock()
	if addrRefs[a] == 0 {
		if err := ipAddr("add", a); err != nil {
			return err
		}
	}
	addrRefs[a]++
	return nil
}

func releaseAddr(a netip.Addr) error {
	if a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
		return nil
	}
	addrMu.Lock()
	defer addrMu.Unlock()
	if addrRefs[a] == 0 {
		return nil // already removed by Net.Release
	}
	addrRefs[a]--
	if addrRefs[a] > 0 {
		return nil
	}
	delete(addrRefs, a)
	return ipAddr("del", a)
}

// ipAddr runs `ip addr add|del A/32 dev lo`; adding an existing address and deleting a missing
// one are not errors.
func ipAddr(op string, a netip.Addr) error {
	ip, err := mustBin("ip", "ip")
	if err != nil {
		return err
	}
	out, err := exec.Command(ip, "addr", op, a.String()+"/32", "dev", "lo").CombinedOutput()
	if err != nil {
		s := string(out)
		if op == "add" && strings.Contains(s, "File exists") ||
			op == "del" && strings.Contains(s, "Cannot assign requested address") {
			return nil
		}
		return fmt.Errorf("lab: ip addr %s %s/32 dev lo: %w: %s", op, a, err, strings.TrimSpace(s))
	}
	return nil
}

// loAddrs lists the IPv4 addresses on lo.
func loAddrs() ([]netip.Prefix, error) {
	ip, err := mustBin("ip", "ip")
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(ip, "-o", "-4", "addr", "show", "dev", "lo").Output()
	if err != nil {
		return nil, fmt.Errorf("lab: ip addr show dev lo: %w", err)
	}
	var ps []netip.Prefix
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					ps = append(ps, p)
				}
			}
		}
	}
	return ps, nil
}
