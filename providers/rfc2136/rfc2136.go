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

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/providers"
)

// Caps are the capabilities of the rfc2136 type.
var Caps = providers.Capabilities{
	MinTTL:       time.Second,
	MinTTLReason: "RFC 2136 has no floor: the server stores the TTL it is sent",
	RRsetSet:     providers.Capability{OK: true, Reason: "one UPDATE deletes the RRset and adds the new records"},
	Atomic:       providers.Capability{OK: true, Reason: "the server applies an UPDATE message all or nothing (RFC 2136 section 3.7)"},
}

func init() { providers.Register("rfc2136", New, Caps) }

var algs = []string{"hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512"}

// New is the rfc2136 factory.
func New(s *config.ProviderSettings, env providers.Env) (providers.Client, error) {
	server := s.String("server", true)
	keyName := s.String("key_name", true)
	alg := s.String("key_alg", false)
	key := s.Secret("key", true)
	var errs []error
	if server != "" {
		if ap, err := netip.ParseAddrPort(server); err != nil || ap.Port() == 0 {
			errs = append(errs, &providers.SettingError{Key: "server", Msg: fmt.Sprintf("%q: want an IP address and port such as \"192.0.2.53:53\"", server)})
		}
	}
	if alg == "" {
		alg = "hmac-sha256"
	}
	alg = strings.ToLower(strings.TrimSuffix(alg, "."))
	if !slices.Contains(algs, alg) {
		errs = append(errs, &providers.SettingError{Key: "key_alg", Msg: fmt.Sprintf("%q: want one of %s", alg, strings.Join(algs, ", "))})
	}
	if err := providers.Ready(s, env, errs...); err != nil {
		return nil, err
	}
	secret, err := key.Resolve()
	if err != nil {
		return nil, err
	}
	if _, err := base64.StdEncoding.DecodeString(secret); err != nil {
		return nil, fmt.Errorf("rfc2136: key from %s is not base64", key)
	}
	return providers.Guard("rfc2136", &rfc2136.Provider{KeyName: dns.Fqdn(keyName), KeyAlg: alg, Key: secret, Server: server}), nil
}
