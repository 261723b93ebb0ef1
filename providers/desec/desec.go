// Package desec owns cutover's "desec" provider type: deSEC (desec.io) over
// github.com/libdns/desec, which writes whole RRsets and retries deSEC's rate
// limits itself.
//
//	[providers.dns]
//	type  = "desec"
//	token = "env:DESEC_TOKEN"
package desec

import (
	"time"

	"github.com/libdns/desec"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/providers"
)

// Caps are the capabilities of the desec type.
var Caps = providers.Capabilities{
	MinTTL:       3600 * time.Second,
	MinTTLReason: "deSEC refuses TTLs below 3600 s on most accounts (lower only on request); the library raises anything lower to 3600 s",
	RRsetSet:     providers.Capability{OK: true, Reason: "the library writes whole RRsets (deSEC's own unit)"},
	Atomic:       providers.Capability{OK: false, Reason: "the library documents its writes as read-modify-write, not atomic"},
}

func init() { providers.Register("desec", New, Caps) }

// New is the desec factory.
func New(s *config.ProviderSettings, env providers.Env) (providers.Client, error) {
	tok := s.Secret("token", true)
	if err := providers.Ready(s, env); err != nil {
		return nil, err
	}
	token, err := tok.Resolve()
	if err != nil {
		return nil, err
	}
	return providers.Guard("desec", &desec.Provider{Token: token}), nil
}
