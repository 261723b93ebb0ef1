package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// StartPair starts the pair on n, writing the identity and known_hosts into dir.
func StartPair(n *Net, dir string) (*Pair, error) {
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
			h, err := StartHost(HostOptions{
				Name:           s.name,
				Addr:           n.IP(s.host),
				Users:          map[string]int{"vmail": s.uid, "opendkim": s.uid + 1},
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
	kh := p.Old.KnownHostsLine() + "\n" + p.New.KnownHostsLine() + "\n"
	if err := os.WriteFile(p.KnownHosts, []byte(kh), 0o644); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("lab: pair: %w", err)
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
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
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
