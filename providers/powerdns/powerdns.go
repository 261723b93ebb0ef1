// Package powerdns owns cutover's "powerdns" provider type: the PowerDNS
// Authoritative Server's HTTP API over github.com/libdns/powerdns.
//
//	[providers.dns]
//	type       = "powerdns"
//	server_url = "https://ns1.example.org:8081"
//	api_token  = "env:PDNS_API_KEY"
package powerdns

import (
	"fmt"
	"net/url"
	"time"

	"github.com/libdns/powerdns"

	"github.com/cutover-dev/cutover/providers"
)

func checkURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", v)
	}
	return nil
}

// Spec declares the powerdns type.
var Spec = providers.Spec{
	Type:    "powerdns",
	Doc:     "PowerDNS Authoritative Server (HTTP API)",
	Library: "github.com/libdns/powerdns v0.1.4",
	Settings: []providers.Setting{
		{Key: "server_url", Kind: providers.Text, Required: true, Doc: "the API's base URL", Check: checkURL},
		{Key: "server_id", Kind: providers.Text, Default: "localhost", Doc: "the API's server ID"},
		{Key: "api_token", Kind: providers.SecretRef, Required: true, Doc: "API key (X-API-Key)"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       time.Second,
		MinTTLReason: "PowerDNS stores the TTL it is sent",
		RRsetSet:     providers.Capability{OK: true, Reason: "one PATCH REPLACEs each RRset"},
		Atomic:       providers.Capability{OK: true, Reason: "one PATCH of the zone, applied by PowerDNS in one transaction"},
	},
	Quirks: []string{
		"the library's debug option prints the API key: cutover never sets it",
	},
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return &powerdns.Provider{ServerURL: v.String("server_url"), ServerID: v.String("server_id"), APIToken: v.String("api_token")}, nil
	},
}

func init() { providers.Register(Spec) }
