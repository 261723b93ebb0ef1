package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsprop"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/providers"
	_ "github.com/cutover-dev/cutover/providers/all" // every provider registers itself
	"github.com/cutover-dev/cutover/scheduler"
	"github.com/cutover-dev/cutover/sshops"
)

// This file adapts the real packages to the small interfaces the scheduler
// declares: providers for scheduler.DNS, sshops for scheduler.Hosts and
// scheduler.Hooks, dnsprop for scheduler.Propagation.

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
		Resolvers: cfg.DNS.Resolvers, Zone: cfg.DNS.Zone})
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

// switchWriter forwards to whatever step output is current.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return len(p), nil
	}
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

// hosts is scheduler.Hosts and scheduler.Hooks over sshops. It connects on
// first use and keeps the connections for the run.
type hosts struct {
	cfg      *config.Config
	auth     sshops.Auth
	log      switchWriter
	progress func(sshops.Progress)
	pair     *sshops.Pair
	cleaned  bool
}

func newHosts(cfg *config.Config, acceptNewHostKey bool, progress func(sshops.Progress)) *hosts {
	return &hosts{cfg: cfg, progress: progress, auth: sshops.Auth{
		IdentityFile: cfg.SSH.IdentityFile, KnownHosts: cfg.SSH.KnownHosts, AcceptNewHostKey: acceptNewHostKey}}
}

func endpoint(h config.Host) sshops.Endpoint {
	return sshops.Endpoint{Role: h.Role, Addr: h.Address, Port: h.SSHPort, User: h.SSHUser}
}

func (h *hosts) connect(ctx context.Context, out io.Writer) (*sshops.Pair, error) {
	h.log.set(out)
	if h.pair != nil {
		return h.pair, nil
	}
	oldc, err := sshops.Dial(ctx, endpoint(h.cfg.Old), h.auth, &h.log)
	if err != nil {
		return nil, err
	}
	newc, err := sshops.Dial(ctx, endpoint(h.cfg.New), h.auth, &h.log)
	if err != nil {
		oldc.Close()
		return nil, err
	}
	h.pair = &sshops.Pair{Old: oldc, New: newc, Mode: sshops.Mode(h.cfg.SSH.Transfer), Log: &h.log, Progress: h.progress}
	return h.pair, nil
}

// Close ends the SSH connections.
func (h *hosts) Close() error {
	if h.pair == nil {
		return nil
	}
	return errors.Join(h.pair.Old.Close(), h.pair.New.Close())
}

func (h *hosts) entries(initialOnly bool) []sshops.Entry {
	var out []sshops.Entry
	for _, s := range h.cfg.Sync {
		if initialOnly && !s.Initial {
			continue
		}
		out = append(out, sshops.Entry{Path: s.Path, Delete: s.Delete, Owner: s.Owner, Content: s.Verify == config.VerifyContent})
	}
	return out
}

func (h *hosts) Preflight(ctx context.Context, out io.Writer) error {
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	// A one-time key or temp dir left by a crashed run goes first.
	if err := p.Cleanup(ctx); err != nil {
		return err
	}
	h.cleaned = true
	// sshops logs the report (space used, clock skew); the error lists every failed check.
	_, err = p.Preflight(ctx, h.entries(false))
	return err
}

func (h *hosts) Copy(ctx context.Context, out io.Writer, final bool) error {
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	if !h.cleaned {
		if err := p.Cleanup(ctx); err != nil {
			return err
		}
		h.cleaned = true
	}
	return p.Copy(ctx, h.entries(!final), final)
}

func (h *hosts) Verify(ctx context.Context, out io.Writer) error {
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	return p.Verify(ctx, h.entries(false))
}

func (h *hosts) Fixup(ctx context.Context, out io.Writer) error {
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	return p.Fixup(ctx, h.entries(false))
}

// Run runs a hook: on this machine in sh, or on old or new over SSH.
func (h *hosts) Run(ctx context.Context, out io.Writer, hk *config.Hook) error {
	fmt.Fprintf(out, "hook %s on %s: %s\n", hk.Name, hk.On, hk.Run)
	if hk.On == config.OnLocal {
		return runLocal(ctx, out, hk.Run)
	}
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	c := p.Old
	if hk.On == config.OnNew {
		c = p.New
	}
	_, err = c.Run(ctx, hk.Run, sshops.RunOptions{})
	return err
}

// runLocal runs a command in sh with its own process group, killed as a
// whole when ctx ends.
func runLocal(ctx context.Context, out io.Writer, command string) error {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("hook: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("hook: %q: %w", command, err)
		}
		return nil
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		return fmt.Errorf("hook: %q: stopped: %w", command, context.Cause(ctx))
	}
}
