// Package inwx owns cutover's "inwx" provider type over
// github.com/libdns/inwx. The library's SetRecords updates one record per
// name and type (and fails on larger RRsets), so cutover deletes the RRset's
// records and adds the new ones.
//
//	[providers.dns]
//	type          = "inwx"
//	username      = "alice"
//	password      = "env:INWX_PASSWORD"
//	shared_secret = "env:INWX_TOTP_SECRET"   # only with two-factor login
package inwx

import (
	"time"

	"github.com/libdns/inwx"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the inwx type.
var Spec = providers.Spec{
	Type:    "inwx",
	Doc:     "INWX",
	Library: "github.com/libdns/inwx v0.3.1",
	Settings: []providers.Setting{
		{Key: "username", Kind: providers.Text, Required: true, Doc: "account user name"},
		{Key: "password", Kind: providers.SecretRef, Required: true, Doc: "account password"},
		{Key: "shared_secret", Kind: providers.SecretRef, Doc: "TOTP secret, for accounts with two-factor login"},
		{Key: "endpoint_url", Kind: providers.Text, Doc: "API URL (default: production; the OTE sandbox for tests)"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       300 * time.Second,
		MinTTLReason: "INWX refuses TTLs below 300 s; the library raises anything lower to 300 s",
		RRsetSet:     providers.Capability{OK: true, Reason: "cutover deletes the RRset's records, then adds the new ones"},
		Atomic:       providers.Capability{OK: false, Reason: "one API call per record: the name has no record of the type for a moment"},
	},
	Quirks: []string{
		"the library logs in and out around every call",
		"the library's SetRecords fails on an RRset of several records: cutover deletes and re-adds instead",
		"the library builds its own HTTP transport: cutover cannot wait out Retry-After for it, and retries a failed call with backoff only",
	},
	Retry: &providers.SoleRetry, // no RetryTransport under its own transport
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return providers.ReplaceRRsets(&inwx.Provider{Username: v.String("username"), Password: v.String("password"),
			SharedSecret: v.String("shared_secret"), EndpointURL: v.String("endpoint_url")}), nil
	},
}

func init() { providers.Register(Spec) }
