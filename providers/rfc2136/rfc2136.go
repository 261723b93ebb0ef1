// Package rfc2136 owns cutover's "rfc2136" provider type: DNS UPDATE (RFC 2136)
// with TSIG, for BIND 9, Knot and any server that accepts signed updates and
// signed AXFR, over github.com/libdns/rfc2136.
//
//	[providers.dns]
//	type     = "rfc2136"
//	server   = "192.0.2.53:53"   # the primary, IP literal and port
//	key_name = "cutover."
//	key_alg  = "hmac-sha256"     # default
//	key      = "env:TSIG_KEY"    # base64 TSIG secret (env: or file:)
package rfc2136

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/libdns/rfc2136"
	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the rfc2136 type.
var Spec = providers.Spec{
	Type:    "rfc2136",
	Doc:     "any server taking TSIG-signed DNS UPDATE and AXFR (BIND 9, Knot, PowerDNS, ...)",
	Library: "github.com/libdns/rfc2136 v1.0.1",
	Settings: []providers.Setting{
		{Key: "server", Kind: providers.Text, Required: true, Doc: "the primary, IP address and port", Check: checkServer},
		{Key: "key_name", Kind: providers.Text, Required: true, Doc: "TSIG key name"},
		{Key: "key_alg", Kind: providers.Text, Default: "hmac-sha256", Doc: "TSIG algorithm", Check: checkAlg},
		{Key: "key", Kind: providers.SecretRef, Required: true, Doc: "TSIG secret, base64"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       time.Second,
		MinTTLReason: "RFC 2136 has no floor: the server stores the TTL it is sent",
		RRsetSet:     providers.Capability{OK: true, Reason: "one UPDATE deletes the RRset and adds the new records"},
		Atomic:       providers.Capability{OK: true, Reason: "the server applies an UPDATE message all or nothing (RFC 2136 section 3.7)"},
	},
	Quirks: []string{"reading the zone is a signed AXFR: the server must allow it for the key"},
	Retry:  &providers.SoleRetry, // DNS UPDATE: no RetryTransport under it
	New:    New,
}

func init() { providers.Register(Spec) }

var algs = []string{"hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"}

func checkServer(server string) error {
	if ap, err := netip.ParseAddrPort(server); err != nil || ap.Port() == 0 {
		return fmt.Errorf("%q: want an IP address and port such as \"192.0.2.53:53\"", server)
	}
	return nil
}

func normAlg(alg string) string { return strings.ToLower(strings.TrimSuffix(alg, ".")) }

func checkAlg(alg string) error {
	if !slices.Contains(algs, normAlg(alg)) {
		return fmt.Errorf("%q: want one of %s", normAlg(alg), strings.Join(algs, ", "))
	}
	return nil
}

// New is the rfc2136 factory.
func New(v providers.Values, _ providers.Env) (providers.Client, error) {
	if _, err := base64.StdEncoding.DecodeString(v.String("key")); err != nil {
		return nil, fmt.Errorf("rfc2136: key from %s is not base64", v.Ref("key"))
	}
	return &rfc2136.Provider{KeyName: dns.Fqdn(v.String("key_name")), KeyAlg: normAlg(v.String("key_alg")),
		Key: v.String("key"), Server: v.String("server")}, nil
}
