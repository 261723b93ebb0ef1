// Package digitalocean owns cutover's "digitalocean" provider type over
// github.com/libdns/digitalocean. The library edits and deletes records only
// by DigitalOcean record ID, so cutover replaces an RRset by deleting the
// records as read and adding the new ones.
//
//	[providers.dns]
//	type      = "digitalocean"
//	api_token = "env:DIGITALOCEAN_TOKEN"
package digitalocean

import (
	"time"

	"github.com/libdns/digitalocean"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the digitalocean type.
var Spec = providers.Spec{
	Type:    "digitalocean",
	Doc:     "DigitalOcean",
	Library: "github.com/libdns/digitalocean v0.0.0-20250606071607-dfa7af5c2e31",
	Settings: []providers.Setting{
		{Key: "api_token", Kind: providers.SecretRef, Required: true, Doc: "personal access token with write scope"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       30 * time.Second,
		MinTTLReason: "DigitalOcean refuses TTLs below 30 s",
		RRsetSet:     providers.Capability{OK: true, Reason: "cutover deletes the RRset's records as read (with their IDs), then adds the new ones"},
		Atomic:       providers.Capability{OK: false, Reason: "one API call per record: the name has no record of the type for a moment"},
	},
	Quirks: []string{
		"the library's SetRecords and DeleteRecords need record IDs that only its GetRecords gives: cutover always reads first",
		"the underlying godo client retries 429, 5xx and network failures itself (5 attempts, honouring Retry-After)",
	},
	RetriesItself: true,
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return providers.ReplaceRRsets(&digitalocean.Provider{APIToken: v.String("api_token")}), nil
	},
}

func init() { providers.Register(Spec) }
