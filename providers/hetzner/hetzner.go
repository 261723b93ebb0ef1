// Package hetzner owns cutover's "hetzner" provider type: Hetzner's Cloud DNS
// API (the one in the Hetzner Console; the old dns.hetzner.com API is shut
// down) over github.com/libdns/hetzner/v2.
//
//	[providers.dns]
//	type      = "hetzner"
//	api_token = "env:HCLOUD_TOKEN"
package hetzner

import (
	"time"

	"github.com/libdns/hetzner/v2"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the hetzner type.
var Spec = providers.Spec{
	Type:    "hetzner",
	Doc:     "Hetzner (Cloud DNS API)",
	Library: "github.com/libdns/hetzner/v2 v2.0.1",
	Settings: []providers.Setting{
		{Key: "api_token", Kind: providers.SecretRef, Required: true, Doc: "Hetzner Cloud API token (read and write)"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       60 * time.Second,
		MinTTLReason: "the API refuses TTLs below 60 s; the library raises anything lower to 60 s",
		RRsetSet:     providers.Capability{OK: true, Reason: "the library deletes the RRset and creates it anew (Hetzner's own unit)"},
		Atomic:       providers.Capability{OK: false, Reason: "delete and create are separate API actions: the name has no record of the type for a moment"},
	},
	Quirks: []string{
		"an RRset has one TTL: when records of one set carry different TTLs the library keeps the lowest",
		"each write waits until Hetzner's API reports its actions finished",
		"the library panics without a token (the registry's guard would turn it into an error; the token is required)",
		"the library (hcloud-go) retries rate limits, conflicts, 502 and 504 itself with backoff, without reading Retry-After",
	},
	RetriesRateLimits: true,
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return hetzner.New(v.String("api_token")), nil
	},
}

func init() { providers.Register(Spec) }
