// Package manual owns cutover's "manual" provider type, for DNS hosts without
// an API: writing records prints exactly which records to set (name, TTL,
// type, addresses) and then waits until every authoritative server serves
// them; reading asks every authoritative server (through dnsprop).
//
//	[providers.dns]
//	type    = "manual"
//	timeout = "1h"   # how long to wait for the operator (default 1h)
//
// The waiting is dnsprop's (providers.WaitWith): every authoritative server
// answers with the AA flag, they agree on the SOA serial, and each serves the
// whole RRsets with the TTLs printed.
package manual

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/dnsprop"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the manual type.
var Spec = providers.Spec{
	Type: "manual",
	Doc:  "any DNS host, by hand: cutover prints the records to set and waits until they are served",
	Settings: []providers.Setting{
		{Key: "timeout", Kind: providers.Duration, Default: "1h", Doc: "how long to wait for the operator"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       time.Second,
		MinTTLReason: "set by your DNS host, which cutover cannot ask: check its documentation",
		RRsetSet:     providers.Capability{OK: true, Reason: "the instructions name whole RRsets and cutover waits until they are served exactly"},
		Atomic:       providers.Capability{OK: false, Reason: "a person edits the records one at a time"},
	},
	Quirks: []string{"reads the authoritative servers name by name: needs [dns] authoritative, or [dns] resolvers to find them"},
	New:    New,
}

func init() { providers.Register(Spec) }

// New is the manual factory.
func New(v providers.Values, env providers.Env) (providers.Client, error) {
	if env.Out == nil {
		return nil, errors.New("manual: nowhere to print the instructions (no output given)")
	}
	if len(env.Authoritative) == 0 && len(env.Resolvers) == 0 {
		return nil, errors.New("manual: needs [dns] authoritative servers, or [dns] resolvers to find them")
	}
	wait := env.WaitAuthoritative
	if wait == nil {
		wait = providers.WaitWith(&dnsprop.Checker{Zone: env.Zone, Authoritative: env.Authoritative, Resolvers: env.Resolvers})
	}
	return &Client{Out: env.Out, Authoritative: env.Authoritative, Resolvers: env.Resolvers,
		Wait: wait, Timeout: v.Duration("timeout")}, nil
}

// Client prints instructions and reads the authoritative servers.
type Client struct {
	Out           io.Writer
	Authoritative []netip.AddrPort // empty: found through Resolvers (the zone's NS hosts)
	Resolvers     []netip.AddrPort
	Wait          providers.WaitFunc // until every authoritative server serves the change
	Timeout       time.Duration      // for the operator to make the change
	QueryTimeout  time.Duration      // per query; default 2s
}

// GetRecords cannot list a zone without an API; Zone uses GetNameRecords.
func (c *Client) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	return nil, errors.New("manual: cannot list a whole zone: read it name by name")
}

// GetNameRecords returns the A and AAAA records of names as every
// authoritative server serves them (dnsprop asks them, server by server);
// servers that disagree are an error.
func (c *Client) GetNameRecords(ctx context.Context, zone string, names []string) ([]libdns.Record, error) {
	servers, err := c.servers(ctx, zone)
	if err != nil {
		return nil, err
	}
	var first *dnsprop.ZoneFacts
	for _, s := range servers {
		f, err := (&dnsprop.Checker{Zone: zone, Authoritative: []netip.AddrPort{s}, QueryTimeout: c.QueryTimeout}).Observe(ctx, names)
		if err != nil {
			return nil, fmt.Errorf("manual: %w", err)
		}
		if first == nil {
			first = f
			continue
		}
		for i, n := range f.Names {
			for j, got := range n.Sets() {
				if want := first.Names[i].Sets()[j]; !slices.Equal(got.Addrs, want.Addrs) || got.TTL != want.TTL {
					return nil, fmt.Errorf("manual: authoritative servers disagree on %s %s: %s serves %s, %s serves %s",
						n.Name, got.Type, servers[0], describe(want.RRset), s, describe(got.RRset))
				}
			}
		}
	}
	var out []libdns.Record
	for _, n := range first.Names {
		for _, rr := range n.Sets() {
			for _, a := range rr.Addrs {
				out = append(out, libdns.Address{Name: libdns.RelativeName(n.Name, zone), TTL: rr.TTL, IP: a})
			}
		}
	}
	return out, nil
}

// describe is an RRset in the disagreement error.
func describe(r dnsrec.RRset) string {
	if !r.Exists() {
		return "nothing"
	}
	return fmt.Sprintf("%s (ttl %s)", dnsrec.AddrList(r.Addrs), r.TTL)
}

type pairKey struct{ name, typ string }

// SetRecords prints the RRsets to set and waits until they are served.
func (c *Client) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	want, order, err := group(zone, recs)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "manual: please change zone %s at your DNS host:\n", zone)
	var exp []providers.Expect
	for _, k := range order {
		e := want[k]
		fmt.Fprintf(&b, "  SET %s %s (replace every %s record of this name) to:\n", k.name, k.typ, k.typ)
		for _, a := range e.Addrs {
			fmt.Fprintf(&b, "    %s %d IN %s %s\n", k.name, int(e.TTL.Seconds()), k.typ, a)
		}
		exp = append(exp, e)
	}
	if err := c.announceAndWait(ctx, zone, b.String(), exp); err != nil {
		return nil, err
	}
	return recs, nil
}

// DeleteRecords prints the records to delete and waits until they are gone.
func (c *Client) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	del, order, err := group(zone, recs)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(order))
	for _, k := range order {
		if !slices.Contains(names, k.name) {
			names = append(names, k.name)
		}
	}
	cur, err := c.GetNameRecords(ctx, zone, names)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "manual: please change zone %s at your DNS host:\n  DELETE:\n", zone)
	var exp []providers.Expect
	for _, k := range order {
		rest := providers.Expect{Name: k.name, Type: k.typ}
		for _, r := range cur {
			rr := r.RR()
			if strings.EqualFold(libdns.AbsoluteName(rr.Name, zone), k.name) && rr.Type == k.typ {
				a, _ := netip.ParseAddr(rr.Data)
				if slices.Contains(del[k].Addrs, a) {
					fmt.Fprintf(&b, "    %s %d IN %s %s\n", k.name, int(rr.TTL.Seconds()), k.typ, a)
				} else {
					rest.Addrs, rest.TTL = append(rest.Addrs, a), rr.TTL
				}
			}
		}
		exp = append(exp, rest)
	}
	if err := c.announceAndWait(ctx, zone, b.String(), exp); err != nil {
		return nil, err
	}
	return recs, nil
}

func group(zone string, recs []libdns.Record) (map[pairKey]providers.Expect, []pairKey, error) {
	m := map[pairKey]providers.Expect{}
	var order []pairKey
	for _, r := range recs {
		rr := r.RR()
		if rr.Type != "A" && rr.Type != "AAAA" {
			return nil, nil, fmt.Errorf("manual: only A and AAAA records are supported, not %q", rr.Type)
		}
		a, err := netip.ParseAddr(rr.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("manual: bad address %q", rr.Data)
		}
		k := pairKey{strings.ToLower(dns.Fqdn(libdns.AbsoluteName(rr.Name, zone))), rr.Type}
		e, ok := m[k]
		if !ok {
			order = append(order, k)
			e = providers.Expect{Name: k.name, Type: k.typ}
		}
		e.Addrs, e.TTL = append(e.Addrs, a), rr.TTL
		m[k] = e
	}
	return m, order, nil
}

func (c *Client) announceAndWait(ctx context.Context, zone, text string, exp []providers.Expect) error {
	servers, err := c.servers(ctx, zone)
	if err != nil {
		return err
	}
	ss := make([]string, len(servers))
	for i, s := range servers {
		ss[i] = s.String()
	}
	fmt.Fprintf(c.Out, "%smanual: waiting up to %s until every authoritative server (%s) serves exactly that\n", text, c.Timeout, strings.Join(ss, ", "))
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if err := c.Wait(ctx, exp); err != nil {
		return fmt.Errorf("manual: waiting for the change: %w", err)
	}
	fmt.Fprintf(c.Out, "manual: every authoritative server serves it\n")
	return nil
}

// servers returns the authoritative servers as dnsprop finds them: the
// configured ones, or the zone's NS hosts' addresses through the resolvers.
func (c *Client) servers(ctx context.Context, zone string) ([]netip.AddrPort, error) {
	ss, err := (&dnsprop.Checker{Authoritative: c.Authoritative, Resolvers: c.Resolvers, QueryTimeout: c.QueryTimeout}).AuthoritativeServers(ctx, zone)
	if err != nil {
		return nil, fmt.Errorf("manual: %w", err)
	}
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		out[i] = s.Addr
	}
	return out, nil
}

var (
	_ providers.Client     = (*Client)(nil)
	_ providers.NameReader = (*Client)(nil)
)
