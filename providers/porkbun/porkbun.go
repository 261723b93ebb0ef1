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

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the porkbun type.
var Spec = providers.Spec{
	Type:    "porkbun",
	Doc:     "Porkbun",
	Library: "github.com/libdns/porkbun v1.1.0",
	Settings: []providers.Setting{
		{Key: "api_key", Kind: providers.SecretRef, Required: true, Doc: "API key"},
		{Key: "secret_api_key", Kind: providers.SecretRef, Required: true, Doc: "secret API key"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       600 * time.Second,
		MinTTLReason: "Porkbun's minimum TTL is 600 s (the library raises anything lower to 600 s)",
		RRsetSet: providers.Capability{OK: true, Reason: "cutover deletes the RRset by name and type, then creates the records " +
			"(the name has no record of that type for a moment)"},
		Atomic: providers.Capability{OK: false, Reason: "one API call per record; the library does not pass the context on"},
	},
	Quirks: []string{
		"the library's SetRecords edits only the first record of a name and type: cutover deletes and re-creates the RRset instead",
		"the library ignores the context: a call still running when cutover gives up is abandoned, not cancelled",
	},
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return rrsets{&porkbun.Provider{APIKey: v.String("api_key"), APISecretKey: v.String("secret_api_key")}}, nil
	},
}

func init() { providers.Register(Spec) }

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
