package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// UnboundOptions configures one Unbound cache.
type UnboundOptions struct {
	Addr      netip.Addr       // listen address, port 53
	StubZone  string           // "example.org."
	StubAddrs []netip.AddrPort // authoritative servers for the stub
}

// Unbound is a running unbound cache. It resolves only StubZone (via StubAddrs) and refuses
// every other name, so nothing ever leaves the machine. It honours TTLs (cache-min-ttl: 0).
type Unbound struct {
	daemon
	conf string
}

// StartUnbound writes an unbound.conf in a fresh temp dir, starts `unbound -d` and waits until it
// answers (a query for "." is refused by configuration, which proves it is serving).
func StartUnbound(opts UnboundOptions) (*Unbound, error) {
	if err := checkLabAddr("unbound", opts.Addr); err != nil {
		return nil, err
	}
	if opts.StubZone == "" || opts.StubZone == "." {
		return nil, errors.New("lab: unbound: StubZone is required (e.g. \"example.org.\")")
	}
	if _, ok := dns.IsDomainName(opts.StubZone); !ok {
		return nil, fmt.Errorf("lab: unbound: StubZone %q is not a domain name", opts.StubZone)
	}
	if len(opts.StubAddrs) == 0 {
		return nil, errors.New("lab: unbound: StubAddrs is required")
	}
	for _, s := range opts.StubAddrs {
		if err := checkLabAddr("unbound: stub", s.Addr()); err != nil {
			return nil, err
		}
	}
	bin, err := mustBin("unbound", "unbound")
	if err != nil {
		return nil, err
	}
	u := &Unbound{}
	name := "unbound " + opts.Addr.String()
	write := func(dir string) ([]string, error) {
		u.conf = filepath.Join(dir, "unbound.conf")
		if err := os.WriteFile(u.conf, []byte(unboundConf(dir, opts)), 0o644); err != nil {
			return nil, err
		}
		return []string{bin, "-d", "-c", u.conf}, nil
	}
	ready := func(ctx context.Context) error {
		m := new(dns.Msg)
		m.SetQuestion(".", dns.TypeSOA)
		c := &dns.Client{Net: "udp", Timeout: time.Second}
		_, _, err := c.ExchangeContext(ctx, m, u.Addr.String())
		return err
	}
	if err := u.start("unbound", name, opts.Addr, "unbound.log", write, ready); err != nil {
		return nil, err
	}
	return u, nil
}

// Flush empties the cache: every RRset, message and negative answer, and the infrastructure
// cache (server timeouts), through unbound-control on the unix socket in Dir.
func (u *Unbound) Flush(ctx context.Context) error {
	bin, err := mustBin("unbound", "unbound-control")
	if err != nil {
		return err
	}
	for _, args := range [][]string{{"flush_zone", "."}, {"flush_infra", "all"}, {"flush_requestlist"}} {
		cmd := exec.CommandContext(ctx, bin, append([]string{"-c", u.conf}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("lab: unbound %s: unbound-control %s: %w: %s", u.Addr.Addr(), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

func unboundConf(dir string, o UnboundOptions) string {
	zone := dns.Fqdn(strings.ToLower(o.StubZone))
	var s strings.Builder
	s.WriteString("server:\n")
	fmt.Fprintf(&s, "\tdirectory: %q\n\tpidfile: %q\n", dir, filepath.Join(dir, "unbound.pid"))
	s.WriteString("\tdo-daemonize: no\n\tusername: \"\"\n\tchroot: \"\"\n\tuse-syslog: no\n\tlogfile: \"\"\n\tverbosity: 1\n")
	fmt.Fprintf(&s, "\tinterface: %s\n\toutgoing-interface: %s\n\tport: 53\n", o.Addr, o.Addr)
	s.WriteString("\tdo-ip4: yes\n\tdo-ip6: no\n\tdo-udp: yes\n\tdo-tcp: yes\n\tnum-threads: 1\n\tso-reuseport: no\n")
	s.WriteString("\taccess-control: 127.0.0.0/8 allow\n")
	s.WriteString("\tcache-min-ttl: 0\n\tdo-not-query-localhost: no\n\tmodule-config: \"iterator\"\n")
	s.WriteString("\tqname-minimisation: no\n\tprefetch: no\n\tserve-expired: no\n\tharden-referral-path: no\n")
	s.WriteString("\tlocal-zone: \".\" refuse\n")
	fmt.Fprintf(&s, "\tlocal-zone: %q transparent\n", zone)
	s.WriteString("\nremote-control:\n\tcontrol-enable: yes\n")
	fmt.Fprintf(&s, "\tcontrol-interface: %q\n\tcontrol-use-cert: no\n", filepath.Join(dir, "control.sock"))
	fmt.Fprintf(&s, "\nstub-zone:\n\tname: %q\n", zone)
	for _, a := range o.StubAddrs {
		fmt.Fprintf(&s, "\tstub-addr: %s@%d\n", a.Addr(), a.Port())
	}
	return s.String()
}
