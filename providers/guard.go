package providers

import (
	"context"
	"fmt"
	"strings"

	"github.com/libdns/libdns"
)

// Guard wraps a provider client so that its errors carry the provider type
// and the call ("desec: set records: ..."; an error that already starts with
// the type keeps its own words), a panic inside the library becomes an error
// instead of crashing cutover, and none of secrets appears in an error (some
// libraries put keys into URLs, which net/http errors quote). Open applies it
// to every provider; a client with the NameReader ability keeps it.
func Guard(typ string, c Client, secrets ...string) Client {
	g := &guarded{typ: typ, c: c, secrets: secrets}
	if nr, ok := c.(NameReader); ok {
		return &guardedNames{g, nr}
	}
	return g
}

type guarded struct {
	typ     string
	c       Client
	secrets []string
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

type guardedNames struct {
	*guarded
	nr NameReader
}

func (g *guardedNames) GetNameRecords(ctx context.Context, zone string, names []string) (recs []libdns.Record, err error) {
	defer g.recover(&err, "get records")
	recs, err = g.nr.GetNameRecords(ctx, zone, names)
	return recs, g.wrap(err, "get records")
}

func (g *guarded) wrap(err error, op string) error {
	if err == nil {
		return nil
	}
	if !strings.HasPrefix(err.Error(), g.typ+": ") {
		err = fmt.Errorf("%s: %s: %w", g.typ, op, err)
	}
	return redact(err, g.secrets)
}

func (g *guarded) recover(err *error, op string) {
	if r := recover(); r != nil {
		*err = redact(fmt.Errorf("%s: %s: panic in the provider library: %v", g.typ, op, r), g.secrets)
	}
}

// guardOpen runs a factory, turning a panic into an error.
func guardOpen(typ string, f func() (Client, error)) (c Client, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%s: open: panic in the provider library: %v", typ, r)
		}
	}()
	return f()
}

// redact returns err with every secret in its text replaced; it still
// unwraps to err (errors.Is works for context errors).
func redact(err error, secrets []string) error {
	msg := err.Error()
	out := msg
	for _, s := range secrets {
		if len(s) >= 4 {
			out = strings.ReplaceAll(out, s, "[secret]")
		}
	}
	if out == msg {
		return err
	}
	return &redacted{msg: out, err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
