package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsprop"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/providers"
	_ "github.com/cutover-dev/cutover/providers/all" // every provider registers itself
	"github.com/cutover-dev/cutover/scheduler"
	"github.com/cutover-dev/cutover/sshops"
)

// This file builds the real dependencies from the config for the small
// interfaces the scheduler declares: providers for scheduler.DNS, sshops for
// scheduler.Hosts (and the remote hooks), dnsprop for scheduler.Propagation.

// checkProvider validates a [providers.NAME] table offline.
var checkProvider = providers.Check

// providerInfo returns what the plan needs to know about the configured provider.
func providerInfo(cfg *config.Config) (scheduler.ProviderInfo, error) {
	typ := cfg.Provider().Type
	_, caps, err := providers.Lookup(typ)
	if err != nil {
		return scheduler.ProviderInfo{}, err
	}
	return scheduler.ProviderInfo{Type: typ, MinTTL: caps.MinTTL, MinTTLReason: caps.MinTTLReason}, nil
}

func checker(cfg *config.Config) *dnsprop.Checker {
	return &dnsprop.Checker{Zone: cfg.DNS.Zone, Authoritative: cfg.DNS.Authoritative, Resolvers: cfg.DNS.Resolvers, Quorum: cfg.DNS.Quorum}
}

// observe asks the authoritative servers what they serve for the names.
func observe(ctx context.Context, cfg *config.Config) (*scheduler.Facts, error) {
	zf, err := checker(cfg).Observe(ctx, cfg.DNS.Names)
	if err != nil {
		return nil, err
	}
	return &scheduler.Facts{Names: zf.Names, NegativeTTL: zf.NegativeTTL}, nil
}

// dnsOps is scheduler.DNS over a provider zone.
type dnsOps struct {
	cfg  *config.Config
	zone *providers.Zone
}

func openDNS(cfg *config.Config, out io.Writer) (*dnsOps, error) {
	z, err := providers.Open(cfg.Provider(), providers.Env{Out: out, Authoritative: cfg.DNS.Authoritative,
		Resolvers: cfg.DNS.Resolvers, Zone: cfg.DNS.Zone, WaitAuthoritative: providers.WaitWith(checker(cfg))})
	if err != nil {
		return nil, err
	}
	return &dnsOps{cfg: cfg, zone: z}, nil
}

func (d *dnsOps) target() providers.Target {
	return providers.Target{A: d.cfg.New.Address, AAAA: d.cfg.New.Address6}
}

func (d *dnsOps) Snapshot(ctx context.Context) (*dnsrec.Snapshot, error) {
	return d.zone.Snapshot(ctx, d.cfg.DNS.Names)
}
func (d *dnsOps) LowerTTL(ctx context.Context, s *dnsrec.Snapshot) error {
	return d.zone.LowerTTL(ctx, s, d.cfg.DNS.LoweredTTL)
}
func (d *dnsOps) Swap(ctx context.Context, s *dnsrec.Snapshot) error {
	return d.zone.Swap(ctx, s, d.target(), d.cfg.DNS.LoweredTTL)
}
func (d *dnsOps) RestoreTTL(ctx context.Context, s *dnsrec.Snapshot) error {
	return d.zone.RestoreTTL(ctx, s, d.target())
}
func (d *dnsOps) Revert(ctx context.Context, s *dnsrec.Snapshot) error {
	return d.zone.Revert(ctx, s, d.target())
}

// propagation is scheduler.Propagation over dnsprop.
type propagation struct {
	cfg *config.Config
}

func (p *propagation) sets() (old, want dnsprop.Sets) {
	old.A, want.A = []netip.Addr{p.cfg.Old.Address}, []netip.Addr{p.cfg.New.Address}
	if p.cfg.Old.Address6.IsValid() {
		old.AAAA = []netip.Addr{p.cfg.Old.Address6}
	}
	if p.cfg.New.Address6.IsValid() {
		want.AAAA = []netip.Addr{p.cfg.New.Address6}
	}
	return old, want
}

func (p *propagation) WaitAuthoritative(ctx context.Context, out io.Writer) error {
	old, want := p.sets()
	_, err := checker(p.cfg).WaitAuthoritative(ctx, p.cfg.DNS.Names, old, want, changeLines(out))
	return err
}

func (p *propagation) WaitResolvers(ctx context.Context, out io.Writer) error {
	old, want := p.sets()
	_, err := checker(p.cfg).WaitResolvers(ctx, p.cfg.DNS.Names, old, want, changeLines(out))
	return err
}

// WaitAuthoritativeReverted waits until the authoritative servers serve
// the old addresses again, after a rollback reverted the records.
func (p *propagation) WaitAuthoritativeReverted(ctx context.Context, out io.Writer) error {
	old, want := p.sets()
	_, err := checker(p.cfg).WaitAuthoritative(ctx, p.cfg.DNS.Names, want, old, changeLines(out))
	return err
}

// changeLines prints one line per observed change, for logs.
func changeLines(out io.Writer) func(dnsprop.Event) {
	return func(ev dnsprop.Event) {
		if ev.Kind != dnsprop.EventChange || ev.Obs == nil {
			return
		}
		o := ev.Obs
		addrs := make([]string, len(o.Addrs))
		for i, a := range o.Addrs {
			addrs[i] = a.String()
		}
		line := fmt.Sprintf("[dns] %s %s %s %s: %s {%s}", o.Role, o.Server, o.Name, o.Type, o.State, strings.Join(addrs, ", "))
		if o.TTL > 0 {
			line += fmt.Sprintf(" ttl %s", o.TTL)
		}
		if o.Err != "" {
			line += " (" + o.Err + ")"
		}
		fmt.Fprintln(out, line)
	}
}

// newHosts is both hosts over sshops, connected on first use.
func newHosts(cfg *config.Config, acceptNewHostKey bool, progress func(sshops.Progress)) *sshops.Hosts {
	endpoint := func(h config.Host) sshops.Endpoint {
		return sshops.Endpoint{Role: h.Role, Addr: h.Address, Port: h.SSHPort, User: h.SSHUser}
	}
	h := &sshops.Hosts{Old: endpoint(cfg.Old), New: endpoint(cfg.New), Mode: sshops.Mode(cfg.SSH.Transfer), Progress: progress,
		Auth: sshops.Auth{IdentityFile: cfg.SSH.IdentityFile, KnownHosts: cfg.SSH.KnownHosts, AcceptNewHostKey: acceptNewHostKey}}
	for _, s := range cfg.Sync {
		e := sshops.Entry{Path: s.Path, Delete: s.Delete, Owner: s.Owner, Content: s.Verify == config.VerifyContent, Xattrs: s.Xattrs}
		h.Entries = append(h.Entries, e)
		if s.Initial {
			h.Initial = append(h.Initial, e)
		}
	}
	return h
}

// newForwarder is the forwarder of a handover through old, on hosts' old
// host; nil without [bridge]. It listens on old's address (and address6)
// at each port and forwards to new's address.
func newForwarder(cfg *config.Config, hosts *sshops.Hosts) *sshops.Forwarder {
	if cfg.Bridge == nil {
		return nil
	}
	spec := sshops.BridgeSpec{Binary: cfg.Bridge.Binary, Dir: cfg.Bridge.Dir, To: cfg.New.Address, ProxyProtocol: cfg.Bridge.ProxyProtocol}
	for _, p := range cfg.Bridge.Ports {
		spec.Listen = append(spec.Listen, netip.AddrPortFrom(cfg.Old.Address, p))
		if cfg.Old.Address6.IsValid() {
			spec.Listen = append(spec.Listen, netip.AddrPortFrom(cfg.Old.Address6, p))
		}
	}
	return &sshops.Forwarder{Hosts: hosts, Spec: spec}
}
