// Package vultr owns cutover's "vultr" provider type over
// github.com/libdns/vultr/v2. The library edits and deletes records only by
// Vultr record ID, so cutover replaces an RRset by deleting the records as
// read and adding the new ones.
//
//	[providers.dns]
//	type      = "vultr"
//	api_token = "env:VULTR_API_KEY"
package vultr

import (
	"time"

	"github.com/libdns/vultr/v2"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the vultr type.
var Spec = providers.Spec{
	Type:    "vultr",
	Doc:     "Vultr",
	Library: "github.com/libdns/vultr/v2 v2.0.2",
	Settings: []providers.Setting{
		{Key: "api_token", Kind: providers.SecretRef, Required: true, Doc: "API key"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       time.Second,
		MinTTLReason: "the library sends the TTL as given and names no floor: check Vultr's limits",
		RRsetSet:     providers.Capability{OK: true, Reason: "cutover deletes the RRset's records as read (with their IDs), then adds the new ones"},
		Atomic:       providers.Capability{OK: false, Reason: "one API call per record: the name has no record of the type for a moment"},
	},
	Quirks: []string{
		"the library's SetRecords and DeleteRecords need record IDs that only its GetRecords gives: cutover always reads first",
		"the underlying govultr client retries 429, 5xx and network failures itself (4 attempts, honouring Retry-After)",
	},
	RetriesItself: true,
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return providers.ReplaceRRsets(&vultr.Provider{APIToken: v.String("api_token")}), nil
	},
}

func init() { providers.Register(Spec) }
