package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Pair is two SSH hosts set up like a migration's OLD and NEW: old at .10 and new at .20 on a
// Net, both with DefaultMounts, users vmail/opendkim with different uids (old: 5000/5001,
// new: 6000/6001), Identity authorized on both, and KnownHosts the path of a known_hosts file
// with both hosts' lines.
type Pair struct {
	Old, New   *Host
	Identity   *Identity
	KnownHosts string
}

// PairOptions tune a pair.
type PairOptions struct {
	// PrivateTmp gives each host its own /tmp (mode 1777), so that what
	// cutover leaves in /tmp on one host (or removes from it) is not seen
	// by the other hosts on this machine. The caller's TMPDIR must then
	// not be under /tmp, or the hosts would not see the lab's own files.
	PrivateTmp bool
	// OldKnowsNew writes new's host key into old's /root/.ssh/known_hosts,
	// as after the operator's first `ssh root@NEW` from OLD.
	OldKnowsNew bool
	// Relay makes the hosts able to run the real relay (InstallRelay): RelayMounts private too,
	// and RelayAccounts from uid 5000 on old, 6000 on new, instead of vmail and opendkim only.
	Relay bool
}

// StartPair starts the pair on n, writing the identity and known_hosts into dir.
func StartPair(n *Net, dir string) (*Pair, error) { return StartPairWith(n, dir, PairOptions{}) }

// StartPairWith is StartPair with options.
func StartPairWith(n *Net, dir string, opts PairOptions) (*Pair, error) {
	mounts := DefaultMounts
	if opts.PrivateTmp {
		if strings.HasPrefix(os.TempDir(), "/tmp") {
			return nil, fmt.Errorf("lab: pair: TMPDIR %q is under /tmp: a private /tmp would hide the lab's files from the hosts", os.TempDir())
		}
		mounts = append(slices.Clone(DefaultMounts), "/tmp")
	}
	if opts.Relay {
		mounts = append(slices.Clone(mounts), RelayMounts...)
	}
	id, err := NewIdentity(dir)
	if err != nil {
		return nil, err
	}
	p := &Pair{Identity: id, KnownHosts: filepath.Join(dir, "known_hosts")}
	type result struct {
		h   *Host
		err error
	}
	oldc, newc := make(chan result, 1), make(chan result, 1)
	for _, s := range []struct {
		name string
		host byte
		uid  int
		c    chan result
	}{{"old", 10, 5000, oldc}, {"new", 20, 6000, newc}} {
		go func() {
			users := map[string]int{"vmail": s.uid, "opendkim": s.uid + 1}
			if opts.Relay {
				users = RelayAccounts(s.uid)
			}
			h, err := StartHost(HostOptions{
				Name:           s.name,
				Addr:           n.IP(s.host),
				Mounts:         mounts,
				Users:          users,
				AuthorizedKeys: []string{id.AuthorizedKey},
			})
			s.c <- result{h, err}
		}()
	}
	o, nw := <-oldc, <-newc
	p.Old, p.New = o.h, nw.h
	if err := errors.Join(o.err, nw.err); err != nil {
		_ = p.Stop()
		return nil, err
	}
	if opts.PrivateTmp {
		for _, h := range []*Host{p.Old, p.New} {
			if err := os.Chmod(h.Path("/tmp"), 0o1777); err != nil {
				_ = p.Stop()
				return nil, fmt.Errorf("lab: pair: %w", err)
			}
		}
	}
	kh := p.Old.KnownHostsLine() + "\n" + p.New.KnownHostsLine() + "\n"
	if err := os.WriteFile(p.KnownHosts, []byte(kh), 0o644); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("lab: pair: %w", err)
	}
	if opts.OldKnowsNew {
		if err := os.WriteFile(p.Old.Path("/root/.ssh/known_hosts"), []byte(p.New.KnownHostsLine()+"\n"), 0o644); err != nil {
			_ = p.Stop()
			return nil, fmt.Errorf("lab: pair: %w", err)
		}
	}
	return p, nil
}

// NewPair starts the pair for the test (files in a test temp dir) and stops it at the end.
func NewPair(t testing.TB, n *Net) *Pair {
	t.Helper()
	Require(t, "root", "ip", "sshd", "unshare", "nsenter")
	p, err := StartPair(n, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, p.Stop)
	return p
}

// Stop stops both hosts. It is idempotent.
func (p *Pair) Stop() error {
	var errs []error
	for _, h := range []*Host{p.Old, p.New} {
		if h != nil {
			errs = append(errs, h.Stop())
		}
	}
	return errors.Join(errs...)
}
