// Package gandi owns cutover's "gandi" provider type: Gandi LiveDNS over
// github.com/libdns/gandi. The library's SetRecords adds values to an RRset
// instead of replacing it, so cutover deletes the RRset's records and adds
// the new ones.
//
//	[providers.dns]
//	type         = "gandi"
//	bearer_token = "env:GANDI_PAT"
package gandi

import (
	"time"

	"github.com/libdns/gandi"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the gandi type.
var Spec = providers.Spec{
	Type:    "gandi",
	Doc:     "Gandi LiveDNS",
	Library: "github.com/libdns/gandi v1.1.0",
	Settings: []providers.Setting{
		{Key: "bearer_token", Kind: providers.SecretRef, Required: true, Doc: "personal access token with LiveDNS rights"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       300 * time.Second,
		MinTTLReason: "Gandi LiveDNS refuses TTLs below 300 s",
		RRsetSet:     providers.Capability{OK: true, Reason: "cutover deletes the RRset's records, then adds the new ones"},
		Atomic:       providers.Capability{OK: false, Reason: "one API call per record: the name has no record of the type for a moment"},
	},
	Quirks: []string{
		"the library's SetRecords adds to the RRset instead of replacing it: cutover deletes and re-adds",
		"the library uses Go's default HTTP client: only cutover's context bounds a call",
	},
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return providers.ReplaceRRsets(&gandi.Provider{BearerToken: v.String("bearer_token")}), nil
	},
}

func init() { providers.Register(Spec) }
