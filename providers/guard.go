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
// libraries put keys into URLs, which net/http errors quote). A call
// returns as soon as its ctx ends, with ctx's cause, even when the library
// would wait out its own I/O timeout (miekg/dns, under rfc2136, honours a
// context's deadline but not its cancellation): the library call goes on
// in the background and its result is dropped, which is safe because every
// write cutover makes converges when repeated. Open applies Guard to every
// provider; a client with the NameReader ability keeps it.
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

func (g *guarded) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	return g.call(ctx, "get records", func() ([]libdns.Record, error) { return g.c.GetRecords(ctx, zone) })
}

func (g *guarded) SetRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	return g.call(ctx, "set records", func() ([]libdns.Record, error) { return g.c.SetRecords(ctx, zone, in) })
}

func (g *guarded) DeleteRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	return g.call(ctx, "delete records", func() ([]libdns.Record, error) { return g.c.DeleteRecords(ctx, zone, in) })
}

type guardedNames struct {
	*guarded
	nr NameReader
}

func (g *guardedNames) GetNameRecords(ctx context.Context, zone string, names []string) ([]libdns.Record, error) {
	return g.call(ctx, "get records", func() ([]libdns.Record, error) { return g.nr.GetNameRecords(ctx, zone, names) })
}

// call runs one library call, op, in a goroutine of its own, and returns
// its result, or ctx's cause as soon as ctx ends (also when the call itself
// returned first with an error because of it).
func (g *guarded) call(ctx context.Context, op string, f func() ([]libdns.Record, error)) ([]libdns.Record, error) {
	type result struct {
		recs []libdns.Record
		err  error
	}
	if ctx.Err() != nil {
		return nil, g.wrap(context.Cause(ctx), op)
	}
	done := make(chan result, 1) // the call may end after nobody waits
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r = result{err: fmt.Errorf("panic in the provider library: %v", p)}
			}
			done <- r
		}()
		r.recs, r.err = f()
	}()
	select {
	case r := <-done:
		if r.err != nil && ctx.Err() != nil {
			// The library failed because ctx ended (a cancelled dial, say): the
			// cause says why, not the library's rendering of it.
			return nil, g.wrap(context.Cause(ctx), op)
		}
		return r.recs, g.wrap(r.err, op)
	case <-ctx.Done():
		return nil, g.wrap(context.Cause(ctx), op)
	}
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
