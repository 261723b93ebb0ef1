package dnsprop

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Server is one authoritative server address.
type Server struct {
	Name string         // NS host name; "" when given explicitly
	Addr netip.AddrPort // where it is asked
}

// askResolvers asks the resolvers in order until one gives a NOERROR or
// NXDOMAIN reply. The error lists each resolver's failure.
func (k *cfg) askResolvers(ctx context.Context, cnt *counter, name string, qtype uint16) (answer, error) {
	var fails []string
	for _, r := range k.resolvers {
		a, err := query(ctx, cnt, r, name, qtype, false, k.timeout, k.retries)
		if err != nil {
			return answer{}, err
		}
		if a.err == "" {
			return a, nil
		}
		fails = append(fails, serverString(r)+" "+a.err)
	}
	return answer{}, fmt.Errorf("no resolver answered %s %s: %s", name, typeName(qtype), strings.Join(fails, "; "))
}

// findZone walks up from name asking the resolvers for SOA until a name owns
// one (a name that answers with a CNAME is skipped, as lego does); a negative
// answer's authority SOA names the zone directly.
func (k *cfg) findZone(ctx context.Context, cnt *counter, name string) (string, error) {
	if err := k.needResolvers("finding the zone"); err != nil {
		return "", err
	}
	for cand := name; ; cand = parentName(cand) {
		a, err := k.askResolvers(ctx, cnt, cand, dns.TypeSOA)
		if err != nil {
			if ctx.Err() != nil {
				return "", err
			}
			return "", fmt.Errorf("dnsprop: find zone of %q: %w", name, err)
		}
		cname := slices.ContainsFunc(a.msg.Answer, func(rr dns.RR) bool {
			return rr.Header().Rrtype == dns.TypeCNAME && dns.CanonicalName(rr.Header().Name) == cand
		})
		switch {
		case cname:
		case a.exists && a.soa != nil:
			return cand, nil
		case a.soa != nil && dns.IsSubDomain(dns.CanonicalName(a.soa.Hdr.Name), cand):
			return dns.CanonicalName(a.soa.Hdr.Name), nil
		}
		if cand == "." {
			return "", fmt.Errorf("dnsprop: find zone of %q: no SOA found up to the root", name)
		}
	}
}

func parentName(n string) string {
	if n == "." {
		return "."
	}
	i := strings.Index(n, ".")
	if i < 0 || i == len(n)-1 {
		return "."
	}
	return n[i+1:]
}

// zoneOf returns the zone for names: the configured one, or the one found by
// the SOA walk from the first name. Every name must lie inside it.
func (k *cfg) zoneOf(ctx context.Context, cnt *counter, names []string) (string, error) {
	zone := k.zone
	if zone == "" {
		var err error
		if zone, err = k.findZone(ctx, cnt, names[0]); err != nil {
			return "", err
		}
	}
	for _, n := range names {
		if !dns.IsSubDomain(zone, n) {
			return "", fmt.Errorf("dnsprop: name %q is not in zone %q", n, zone)
		}
	}
	return zone, nil
}

// authServers returns the configured authoritative servers, or discovers them:
// the zone's NS names through the resolvers, then every A and AAAA of each
// (answers through the resolvers, plus glue from the NS reply's additional
// section), on AuthoritativePort.
func (k *cfg) authServers(ctx context.Context, cnt *counter, zone string) ([]Server, error) {
	if len(k.auth) > 0 {
		out := make([]Server, 0, len(k.auth))
		for _, a := range k.auth {
			if !slices.ContainsFunc(out, func(s Server) bool { return s.Addr == a }) {
				out = append(out, Server{Addr: a})
			}
		}
		return out, nil
	}
	if err := k.needResolvers("discovering the authoritative servers"); err != nil {
		return nil, err
	}
	a, err := k.askResolvers(ctx, cnt, zone, dns.TypeNS)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("dnsprop: discover authoritative servers of %q: %w", zone, err)
	}
	var nsNames []string
	for _, rr := range a.msg.Answer {
		if ns, ok := rr.(*dns.NS); ok && dns.CanonicalName(ns.Hdr.Name) == zone {
			nsNames = append(nsNames, dns.CanonicalName(ns.Ns))
		}
	}
	slices.Sort(nsNames)
	nsNames = slices.Compact(nsNames)
	if len(nsNames) == 0 {
		return nil, fmt.Errorf("dnsprop: discover authoritative servers of %q: no NS records", zone)
	}
	glue := map[string][]netip.Addr{}
	for _, rr := range a.msg.Extra {
		n := dns.CanonicalName(rr.Header().Name)
		switch v := rr.(type) {
		case *dns.A:
			if ip, ok := netip.AddrFromSlice(v.A); ok {
				glue[n] = append(glue[n], ip.Unmap())
			}
		case *dns.AAAA:
			if ip, ok := netip.AddrFromSlice(v.AAAA); ok {
				glue[n] = append(glue[n], ip)
			}
		}
	}
	var out []Server
	for _, ns := range nsNames {
		var addrs []netip.Addr
		var fails []string
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			r, err := k.askResolvers(ctx, cnt, ns, t)
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				fails = append(fails, err.Error())
				continue
			}
			addrs = append(addrs, r.addrs...)
		}
		addrs = append(addrs, glue[ns]...)
		// A first, then AAAA, each sorted.
		addrs = normSet(addrs)
		if len(addrs) == 0 {
			why := "no A or AAAA record"
			if len(fails) > 0 {
				why = strings.Join(fails, "; ")
			}
			return nil, fmt.Errorf("dnsprop: authoritative server %q of %q has no address: %s", ns, zone, why)
		}
		for _, ip := range addrs {
			ap := netip.AddrPortFrom(ip, k.authPort)
			if !slices.ContainsFunc(out, func(s Server) bool { return s.Addr == ap }) {
				out = append(out, Server{Name: ns, Addr: ap})
			}
		}
	}
	return out, nil
}

// primaries returns the servers that are the zone's primary (SOA MNAME): by NS
// name, else by MNAME's addresses (asked of the authoritative servers when
// MNAME is inside the zone, else of the resolvers). Best effort: it only names
// servers in Lagging.
func (k *cfg) primaries(ctx context.Context, cnt *counter, zone, mname string, servers []Server) map[netip.AddrPort]bool {
	out := map[netip.AddrPort]bool{}
	for _, s := range servers {
		if s.Name != "" && s.Name == mname {
			out[s.Addr] = true
		}
	}
	if len(out) > 0 || mname == "" {
		return out
	}
	var addrs []netip.Addr
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		if dns.IsSubDomain(zone, mname) {
			for _, s := range servers {
				a, err := query(ctx, cnt, s.Addr, mname, t, true, k.timeout, 0)
				if err == nil && a.err == "" {
					addrs = append(addrs, a.addrs...)
					break
				}
			}
		} else if len(k.resolvers) > 0 {
			if a, err := k.askResolvers(ctx, cnt, mname, t); err == nil {
				addrs = append(addrs, a.addrs...)
			}
		}
	}
	for _, s := range servers {
		if slices.Contains(addrs, s.Addr.Addr()) {
			out[s.Addr] = true
		}
	}
	return out
}

// serialLess is RFC 1982 serial number arithmetic: a < b.
func serialLess(a, b uint32) bool {
	return a != b && int32(b-a) > 0
}

// AuthoritativeServers returns the servers the waits and Observe ask for
// zone: Authoritative, or the addresses of the zone's NS hosts found through
// Resolvers.
func (c *Checker) AuthoritativeServers(ctx context.Context, zone string) ([]Server, error) {
	k, err := c.config()
	if err != nil {
		return nil, err
	}
	return k.authServers(ctx, &counter{}, dns.CanonicalName(zone))
}
