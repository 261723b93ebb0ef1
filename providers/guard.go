package providers

import (
	"context"
	"fmt"

	"github.com/libdns/libdns"
)

// Guard wraps a libdns provider so that its errors carry the provider type
// ("desec: set records: ...") and a panic inside the library becomes an
// error instead of crashing cutover.
func Guard(typ string, c Client) Client { return &guarded{typ, c} }

type guarded struct {
	typ string
	c   Client
}

func (g *guarded) GetRecords(ctx context.Context, zone string) (recs []libdns.Record, err error) {
	defer g.recover(&err, "get records")
	recs, err = g.c.GetRecords(ctx, zone)
	return recs, g.wrap(err, "get records")
}

func (g *guarded) SetRecords(ctx context.Context, zone string, in []libdns.Record) (recs []libdns.Record, err error) {
	defer g.recover(&err, "set records")
	recs, err = g.c.SetRecords(ctx, zone, in)
	return recs, g.wrap(err, "set records")
}

func (g *guarded) DeleteRecords(ctx context.Context, zone string, in []libdns.Record) (recs []libdns.Record, err error) {
	defer g.recover(&err, "delete records")
	recs, err = g.c.DeleteRecords(ctx, zone, in)
	return recs, g.wrap(err, "delete records")
}

func (g *guarded) wrap(err error, op string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %s: %w", g.typ, op, err)
}

func (g *guarded) recover(err *error, op string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %s: panic in the provider library: %v", g.typ, op, r)
	}
}
