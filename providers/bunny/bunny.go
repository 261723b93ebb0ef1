// Package bunny owns cutover's "bunny" provider type: bunny.net DNS over
// github.com/libdns/bunny.
//
//	[providers.dns]
//	type       = "bunny"
//	access_key = "env:BUNNY_API_KEY"
package bunny

import (
	"time"

	"github.com/libdns/bunny"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the bunny type.
var Spec = providers.Spec{
	Type:    "bunny",
	Doc:     "bunny.net DNS",
	Library: "github.com/libdns/bunny v1.6.1",
	Settings: []providers.Setting{
		{Key: "access_key", Kind: providers.SecretRef, Required: true, Doc: "bunny.net API key"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       time.Second,
		MinTTLReason: "the library sends the TTL as given and names no floor: check bunny.net's limits",
		RRsetSet:     providers.Capability{OK: true, Reason: "the library deletes the RRset's records, then adds the new ones"},
		Atomic:       providers.Capability{OK: false, Reason: "one API call per record: the name has no record of the type for a moment"},
	},
	Quirks: []string{
		"SetRecords ignores errors while deleting the old records; cutover's read-back after every write catches a record left behind",
	},
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return &bunny.Provider{AccessKey: v.String("access_key")}, nil
	},
}

func init() { providers.Register(Spec) }
