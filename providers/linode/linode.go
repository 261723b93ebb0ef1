// Package linode owns cutover's "linode" provider type: Linode (Akamai) DNS
// Manager over github.com/libdns/linode.
//
//	[providers.dns]
//	type      = "linode"
//	api_token = "env:LINODE_TOKEN"
package linode

import (
	"time"

	"github.com/libdns/linode"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the linode type.
var Spec = providers.Spec{
	Type:    "linode",
	Doc:     "Linode (Akamai) DNS Manager",
	Library: "github.com/libdns/linode v0.5.0",
	Settings: []providers.Setting{
		{Key: "api_token", Kind: providers.SecretRef, Required: true, Doc: "personal access token with Domains read/write"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       300 * time.Second,
		MinTTLReason: "Linode rounds ttl_sec to a fixed list of values; 300 s is the lowest one cutover relies on",
		RRsetSet: providers.Capability{OK: true, Reason: "the library deletes the RRset's records, then adds the new ones; " +
			"cutover passes one RRset per call (the library loses all but one type per name)"},
		Atomic: providers.Capability{OK: false, Reason: "one API call per record: the name has no record of the type for a moment"},
	},
	Quirks: []string{
		"SetRecords with A and AAAA of one name deletes only the old records of the last type: cutover sends each RRset alone",
		"TTLs are rounded to Linode's allowed values (300, 3600, 7200, ...): set lowered_ttl to one of them",
		"the library (linodego) retries 429, 503 and 408 answers itself, honouring Retry-After",
	},
	RetriesRateLimits: true,
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return providers.OneRRsetPerCall(&linode.Provider{APIToken: v.String("api_token")}), nil
	},
}

func init() { providers.Register(Spec) }
