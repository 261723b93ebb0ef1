// Package ionos owns cutover's "ionos" provider type: the IONOS DNS API over
// github.com/libdns/ionos. The library's SetRecords updates one record per
// name and type (and fails on larger RRsets), so cutover deletes the RRset's
// records and adds the new ones.
//
//	[providers.dns]
//	type      = "ionos"
//	api_token = "env:IONOS_API_TOKEN"   # "prefix.secret", as IONOS shows it
package ionos

import (
	"time"

	"github.com/libdns/ionos"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the ionos type.
var Spec = providers.Spec{
	Type:    "ionos",
	Doc:     "IONOS",
	Library: "github.com/libdns/ionos v1.2.0",
	Settings: []providers.Setting{
		{Key: "api_token", Kind: providers.SecretRef, Required: true, Doc: "DNS API key (prefix.secret)"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       60 * time.Second,
		MinTTLReason: "IONOS refuses TTLs below 60 s",
		RRsetSet:     providers.Capability{OK: true, Reason: "cutover deletes the RRset's records, then adds the new ones"},
		Atomic:       providers.Capability{OK: false, Reason: "several API calls: the name has no record of the type for a moment"},
	},
	Quirks: []string{
		"the library's DeleteRecords removes every record of the name and type whatever the data (cutover only ever deletes whole RRsets)",
		"the library's SetRecords fails on an RRset of several records: cutover deletes and re-adds instead",
	},
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return providers.ReplaceRRsets(&ionos.Provider{AuthAPIToken: v.String("api_token")}), nil
	},
}

func init() { providers.Register(Spec) }
