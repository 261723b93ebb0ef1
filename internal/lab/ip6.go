package lab

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// IP6 is the lab's IPv6 twin of the lab address a (127.A.B.H): the unique local address
// fd00:6c61:6200::127.A.B.H ("lab" in the second and third groups), so that labs sharing a
// namespace never collide. Nothing puts it on lo but AddIP6.
func IP6(a netip.Addr) netip.Addr {
	v4 := a.As4()
	return netip.AddrFrom16([16]byte{0xfd, 0, 0x6c, 0x61, 0x62, 0, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]})
}

// AddIP6 puts IP6(a) on lo, inside the lab's network namespace only (it fails the test
// elsewhere), and takes it off again at the test's cleanup; the namespace goes with the test
// binary in any case. It returns the address.
func AddIP6(t testing.TB, a netip.Addr) netip.Addr {
	t.Helper()
	if err := checkLabAddr("AddIP6", a); err != nil {
		t.Fatal(err)
	}
	ip, err := mustBin("ip", "ip")
	if err != nil {
		t.Fatal(err)
	}
	a6 := IP6(a)
	if out, err := exec.Command(ip, "-6", "addr", "add", a6.String()+"/128", "dev", "lo", "nodad").CombinedOutput(); err != nil {
		t.Fatalf("lab: ip -6 addr add %s/128 dev lo: %v: %s", a6, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "-6", "addr", "del", a6.String()+"/128", "dev", "lo").CombinedOutput(); err != nil {
			t.Errorf("lab: ip -6 addr del %s/128 dev lo: %v: %s", a6, err, strings.TrimSpace(string(out)))
		}
	})
	return a6
}
