package dnsprop

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/miekg/dns"
)

// ZoneFacts is what a zone's authoritative servers serve right now: what the
// planner needs to know how long caches may hold the current answers.
type ZoneFacts struct {
	Zone        string
	Servers     []Server                  // the authoritative set used
	Serials     map[netip.AddrPort]uint32 // SOA serial per server
	NegativeTTL time.Duration             // min(SOA TTL, SOA minimum) (RFC 2308), the largest over the servers
	Names       []dnsrec.Name             // in the order asked: the union of the addresses, the largest TTL any authoritative server serves
}

// observeError lists every server that did not answer usably.
type observeError struct {
	msg     string
	notAuth bool
}

func (e *observeError) Error() string { return e.msg }

func (e *observeError) Is(target error) bool { return target == ErrNotAuthoritative && e.notAuth }

// Observe asks every authoritative server of the zone for its SOA and for the
// A and AAAA of each name (recursion off, AA flag required). Any server that
// does not answer usably makes it fail, naming each failure; an answer without
// the AA flag makes the error match ErrNotAuthoritative.
func (c *Checker) Observe(ctx context.Context, names []string) (*ZoneFacts, error) {
	k, err := c.config()
	if err != nil {
		return nil, err
	}
	if names, err = canonNames(names); err != nil {
		return nil, err
	}
	cnt := &counter{}
	zone, err := k.zoneOf(ctx, cnt, names)
	if err != nil {
		return nil, err
	}
	servers, err := k.authServers(ctx, cnt, zone)
	if err != nil {
		return nil, err
	}
	type job struct {
		srv   netip.AddrPort
		name  string
		qtype uint16
		ans   answer
	}
	var jobs []*job
	for _, s := range servers {
		jobs = append(jobs, &job{srv: s.Addr, name: zone, qtype: dns.TypeSOA})
		for _, n := range names {
			jobs = append(jobs, &job{srv: s.Addr, name: n, qtype: dns.TypeA}, &job{srv: s.Addr, name: n, qtype: dns.TypeAAAA})
		}
	}
	err = forEach(ctx, len(jobs), k.conc, func(i int) error {
		j := jobs[i]
		a, err := query(ctx, cnt, j.srv, j.name, j.qtype, true, k.timeout, k.retries)
		j.ans = a
		return err
	})
	if err != nil {
		return nil, err
	}
	f := &ZoneFacts{Zone: zone, Servers: servers, Serials: map[netip.AddrPort]uint32{}}
	byName := map[string]*dnsrec.Name{}
	for _, n := range names {
		f.Names = append(f.Names, dnsrec.Name{Name: n})
	}
	for i := range f.Names {
		byName[f.Names[i].Name] = &f.Names[i]
	}
	var fails []string
	notAuth := false
	for _, j := range jobs {
		a := j.ans
		if a.err == "" && j.qtype == dns.TypeSOA && (!a.exists || a.soa == nil) {
			a.err = "no SOA record for the zone"
		}
		if a.err != "" {
			fails = append(fails, fmt.Sprintf("%s %s %s: %s", serverString(j.srv), j.name, typeName(j.qtype), a.err))
			notAuth = notAuth || a.err == ErrNotAuthoritative.Error()
			continue
		}
		if j.qtype == dns.TypeSOA {
			f.Serials[j.srv] = a.soa.Serial
			f.NegativeTTL = max(f.NegativeTTL, negativeTTL(a.soa))
			continue
		}
		rs := &byName[j.name].A
		if j.qtype == dns.TypeAAAA {
			rs = &byName[j.name].AAAA
		}
		if a.exists {
			rs.Addrs = normSet(append(rs.Addrs, a.addrs...))
			rs.TTL = max(rs.TTL, a.ttl)
		}
	}
	if len(fails) > 0 {
		return nil, &observeError{
			msg:     fmt.Sprintf("dnsprop: observe %q: %s", zone, strings.Join(fails, "; ")),
			notAuth: notAuth,
		}
	}
	return f, nil
}

// forEach runs fn(0..n-1) with at most conc at once. It returns the first
// error (fn returns only ctx errors) after every started fn has returned.
func forEach(ctx context.Context, n, conc int, fn func(i int) error) error {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}
