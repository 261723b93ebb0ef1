// Package porkbun owns cutover's "porkbun" provider type over
// github.com/libdns/porkbun. The library's SetRecords edits only the first
// record of a name and type, so cutover replaces an RRset by deleting it by
// name and type, then creating the wanted records.
//
//	[providers.dns]
//	type           = "porkbun"
//	api_key        = "env:PORKBUN_API_KEY"
//	secret_api_key = "env:PORKBUN_SECRET_API_KEY"
package porkbun

import (
	"context"
	"fmt"
	"time"

	"github.com/libdns/libdns"
	"github.com/libdns/porkbun"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/providers"
)

// Caps are the capabilities of the porkbun type.
var Caps = providers.Capabilities{
	MinTTL:       600 * time.Second,
	MinTTLReason: "Porkbun's minimum TTL is 600 s (the library raises anything lower to 600 s)",
	RRsetSet: providers.Capability{OK: true, Reason: "cutover deletes the RRset by name and type, then creates the records " +
		"(the name has no record of that type for a moment)"},
	Atomic: providers.Capability{OK: false, Reason: "one API call per record; the library does not pass the context on"},
}

func init() { providers.Register("porkbun", New, Caps) }

// New is the porkbun factory.
func New(s *config.ProviderSettings, env providers.Env) (providers.Client, error) {
	key := s.Secret("api_key", true)
	secret := s.Secret("secret_api_key", true)
	if err := providers.Ready(s, env); err != nil {
		return nil, err
	}
	k, err := key.Resolve()
	if err != nil {
		return nil, err
	}
	sk, err := secret.Resolve()
	if err != nil {
		return nil, err
	}
	return providers.Guard("porkbun", rrsets{&porkbun.Provider{APIKey: k, APISecretKey: sk}}), nil
}

// rrsets makes SetRecords replace whole RRsets and makes every call return
// when ctx ends (the library takes no context and has no timeout: a call
// still running is abandoned).
type rrsets struct{ p *porkbun.Provider }

func (r rrsets) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	return withCtx(ctx, func() ([]libdns.Record, error) { return r.p.GetRecords(ctx, zone) })
}

func (r rrsets) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return withCtx(ctx, func() ([]libdns.Record, error) { return r.p.DeleteRecords(ctx, zone, recs) })
}

func withCtx(ctx context.Context, f func() ([]libdns.Record, error)) ([]libdns.Record, error) {
	type result struct {
		recs []libdns.Record
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				ch <- result{err: fmt.Errorf("panic in the provider library: %v", p)}
			}
		}()
		recs, err := f()
		ch <- result{recs, err}
	}()
	select {
	case r := <-ch:
		return r.recs, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r rrsets) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	type pair struct{ name, typ string }
	seen := map[pair]bool{}
	var del []libdns.Record
	for _, r := range recs {
		rr := r.RR()
		if k := (pair{rr.Name, rr.Type}); !seen[k] {
			seen[k] = true
			del = append(del, libdns.RR{Name: rr.Name, Type: rr.Type})
		}
	}
	if _, err := r.DeleteRecords(ctx, zone, del); err != nil {
		return nil, err
	}
	return withCtx(ctx, func() ([]libdns.Record, error) { return r.p.AppendRecords(ctx, zone, recs) })
}
