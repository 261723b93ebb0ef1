// Package namecheap owns cutover's "namecheap" provider type over
// github.com/libdns/namecheap. Namecheap's API answers only requests from
// whitelisted client addresses, so client_ip is required (the library would
// otherwise ask a public web service for it).
//
//	[providers.dns]
//	type      = "namecheap"
//	user      = "alice"
//	api_key   = "env:NAMECHEAP_API_KEY"
//	client_ip = "203.0.113.7"   # the whitelisted address cutover runs from
package namecheap

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/libdns/namecheap"

	"github.com/cutover-dev/cutover/providers"
)

func checkIP(v string) error {
	if _, err := netip.ParseAddr(v); err != nil {
		return fmt.Errorf("%q: want an IP address", v)
	}
	return nil
}

func checkURL(v string) error {
	if !strings.HasPrefix(v, "https://") {
		return fmt.Errorf("%q: want an https:// URL", v)
	}
	return nil
}

// Spec declares the namecheap type.
var Spec = providers.Spec{
	Type:    "namecheap",
	Doc:     "Namecheap",
	Library: "github.com/libdns/namecheap v1.0.0",
	Settings: []providers.Setting{
		{Key: "user", Kind: providers.Text, Required: true, Doc: "API user name"},
		{Key: "api_key", Kind: providers.SecretRef, Required: true, Doc: "API key"},
		{Key: "client_ip", Kind: providers.Text, Required: true, Doc: "the whitelisted address cutover calls from", Check: checkIP},
		{Key: "api_endpoint", Kind: providers.Text, Doc: "API URL (default: production; the sandbox for tests)", Check: checkURL},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       60 * time.Second,
		MinTTLReason: "Namecheap accepts TTLs from 60 s to 60000 s",
		RRsetSet:     providers.Capability{OK: true, Reason: "the library rewrites the domain's whole host list with the RRset replaced"},
		Atomic:       providers.Capability{OK: true, Reason: "one setHosts call writes every record of the domain"},
	},
	Quirks: []string{
		"setHosts rewrites every host record of the domain: a record changed by someone else between cutover's read and write is lost",
		"the API key travels in the URL query; cutover removes it from error messages",
		"TTLs above 60000 s are refused by Namecheap (and above 65535 s wrap around in the library)",
	},
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return &namecheap.Provider{APIKey: v.String("api_key"), User: v.String("user"),
			ClientIP: v.String("client_ip"), APIEndpoint: v.String("api_endpoint")}, nil
	},
}

func init() { providers.Register(Spec) }
