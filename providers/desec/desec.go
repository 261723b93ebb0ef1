// Package desec owns cutover's "desec" provider type: deSEC (desec.io) over
// github.com/libdns/desec, which writes whole RRsets and retries deSEC's rate
// limits itself.
//
//	[providers.dns]
//	type  = "desec"
//	token = "env:DESEC_TOKEN"
package desec

import (
	"time"

	"github.com/libdns/desec"

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
	Quirks: []string{"the library retries deSEC's rate limits (429) itself, waiting as told"},
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return &desec.Provider{Token: v.String("token")}, nil
	},
}

func init() { providers.Register(Spec) }
