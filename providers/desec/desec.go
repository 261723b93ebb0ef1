// Package desec owns cutover's "desec" provider type: deSEC (desec.io) over
// github.com/libdns/desec, which writes whole RRsets and retries deSEC's rate
// limits itself, waiting as long as deSEC says, without a limit of its own:
// cutover bounds each call (MaxCall).
//
//	[providers.dns]
//	type  = "desec"
//	token = "env:DESEC_TOKEN"
package desec

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/libdns/desec"
	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the desec type.
var Spec = providers.Spec{
	Type:    "desec",
	Doc:     "deSEC (desec.io)",
	Library: "github.com/libdns/desec v1.1.1",
	Settings: []providers.Setting{
		{Key: "token", Kind: providers.SecretRef, Required: true, Doc: "API token"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       3600 * time.Second,
		MinTTLReason: "deSEC refuses TTLs below 3600 s on most accounts (lower only on request); the library raises anything lower to 3600 s",
		RRsetSet:     providers.Capability{OK: true, Reason: "the library writes whole RRsets (deSEC's own unit)"},
		Atomic:       providers.Capability{OK: false, Reason: "the library documents its writes as read-modify-write, not atomic"},
	},
	Quirks:            []string{"the library retries deSEC's rate limits (429) itself, waiting as told; cutover gives up on a call after 2 minutes"},
	RetriesRateLimits: true,
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return bounded{&desec.Provider{Token: v.String("token")}}, nil
	},
}

func init() { providers.Register(Spec) }

// MaxCall bounds one call of the library, which on HTTP 429 waits out
// deSEC's Retry-After (up to an hour for the hourly limits) and tries again
// as often as deSEC answers 429. The registry's retries (providers.Retry)
// then try the call again a bounded number of times.
var MaxCall = 2 * time.Minute

// bounded is the library with every call ended after MaxCall.
type bounded struct{ p *desec.Provider }

func (b bounded) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	return call(ctx, "get records", func(ctx context.Context) ([]libdns.Record, error) { return b.p.GetRecords(ctx, zone) })
}

func (b bounded) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return call(ctx, "set records", func(ctx context.Context) ([]libdns.Record, error) { return b.p.SetRecords(ctx, zone, recs) })
}

func (b bounded) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return call(ctx, "delete records", func(ctx context.Context) ([]libdns.Record, error) { return b.p.DeleteRecords(ctx, zone, recs) })
}

func call(ctx context.Context, op string, f func(context.Context) ([]libdns.Record, error)) ([]libdns.Record, error) {
	callCtx, cancel := context.WithTimeout(ctx, MaxCall)
	defer cancel()
	recs, err := f(callCtx)
	if err == nil || ctx.Err() != nil || callCtx.Err() == nil {
		return recs, err
	}
	// Only MaxCall ended the call. The library flattens errors (%v), so
	// its words tell a rate limit from a server that did not answer.
	if strings.Contains(err.Error(), "waiting for cooldown") {
		return nil, fmt.Errorf("desec: %s: still rate limited (HTTP 429) after %s: %v", op, MaxCall, err)
	}
	return nil, fmt.Errorf("desec: %s: no answer within %s: %v", op, MaxCall, err)
}
