package lab

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
)

// DNSLab is the standard set on a Net: BIND primary at .31, BIND secondary at .32 (NOTIFY + IXFR,
// TSIG-signed transfers), Unbound caches at .41 and .42 with a stub zone to both.
type DNSLab struct {
	Net       *Net
	Zone      Zone
	Key       TSIG
	Primary   *BIND
	Secondary *BIND
	Caches    []*Unbound
}

// StartDNSLab starts the standard DNS set for z on n with a fresh TSIG key ("cutover-lab.").
// On error everything already started is stopped.
func StartDNSLab(n *Net, z Zone) (*DNSLab, error) {
	d := &DNSLab{Net: n, Zone: z, Key: NewTSIG("cutover-lab")}
	p, err := StartBIND(BINDOptions{Addr: n.IP(31), Zone: z, Key: d.Key, Secondaries: []netip.Addr{n.IP(32)}})
	if err != nil {
		return nil, err
	}
	d.Primary = p
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		s, err := StartBIND(BINDOptions{Addr: n.IP(32), Zone: z, Key: d.Key, Primary: n.IP(31)})
		mu.Lock()
		defer mu.Unlock()
		d.Secondary = s
		errs = append(errs, err)
	}()
	d.Caches = make([]*Unbound, 2)
	for i, host := range []byte{41, 42} {
		go func() {
			defer wg.Done()
			u, err := StartUnbound(UnboundOptions{
				Addr:      n.IP(host),
				StubZone:  z.Origin,
				StubAddrs: []netip.AddrPort{netip.AddrPortFrom(n.IP(31), 53), netip.AddrPortFrom(n.IP(32), 53)},
			})
			mu.Lock()
			defer mu.Unlock()
			d.Caches[i] = u
			errs = append(errs, err)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = d.Stop()
		return nil, err
	}
	return d, nil
}

// NewDNSLab starts the standard DNS set for the test and stops it at the end of the test.
func NewDNSLab(t testing.TB, n *Net, z Zone) *DNSLab {
	t.Helper()
	Require(t, "root", "ip", "named", "unbound")
	d, err := StartDNSLab(n, z)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, d.Stop)
	return d
}

// Stop stops the caches, the secondary and the primary. It is idempotent.
func (d *DNSLab) Stop() error {
	var errs []error
	for _, c := range d.Caches {
		if c != nil {
			errs = append(errs, c.Stop())
		}
	}
	if d.Secondary != nil {
		errs = append(errs, d.Secondary.Stop())
	}
	if d.Primary != nil {
		errs = append(errs, d.Primary.Stop())
	}
	return errors.Join(errs...)
}

// Authoritative returns the primary's and the secondary's address (port 53).
func (d *DNSLab) Authoritative() []netip.AddrPort {
	return []netip.AddrPort{d.Primary.Addr, d.Secondary.Addr}
}

// Resolvers returns the caches' addresses (port 53).
func (d *DNSLab) Resolvers() []netip.AddrPort {
	var r []netip.AddrPort
	for _, c := range d.Caches {
		r = append(r, c.Addr)
	}
	return r
}
