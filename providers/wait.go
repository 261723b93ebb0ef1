package providers

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/cutover-dev/cutover/dnsprop"
)

// WaitWith is the WaitFunc over a dnsprop Checker (the CLI's, from [dns]):
// the authoritative servers it uses (configured or discovered through NS)
// must all answer with the AA flag, agree on the SOA serial, and serve each
// Expect as a whole RRset with its TTL (empty Addrs: no such RRset). Expects
// that want the same thing are waited on together, the groups one after the
// other.
func WaitWith(c *dnsprop.Checker) WaitFunc {
	return func(ctx context.Context, want []Expect) error {
		type group struct {
			typ   string
			addrs []netip.Addr
			ttl   time.Duration
			names []string
		}
		var groups []*group
		for _, e := range want {
			i := slices.IndexFunc(groups, func(g *group) bool {
				return g.typ == e.Type && g.ttl == e.TTL && slices.Equal(g.addrs, e.Addrs)
			})
			if i < 0 {
				groups = append(groups, &group{typ: e.Type, addrs: e.Addrs, ttl: e.TTL})
				i = len(groups) - 1
			}
			groups[i].names = append(groups[i].names, e.Name)
		}
		for _, g := range groups {
			sets := dnsprop.Sets{TTL: g.ttl}
			if g.typ == "AAAA" {
				sets.AAAA = g.addrs
			} else {
				sets.A = g.addrs
			}
			if _, err := c.WaitAuthoritativeTypes(ctx, g.names, []string{g.typ}, dnsprop.Sets{}, sets, nil); err != nil {
				return err
			}
		}
		return nil
	}
}
