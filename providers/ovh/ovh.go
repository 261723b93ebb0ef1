// Package ovh owns cutover's "ovh" provider type: OVHcloud over
// github.com/libdns/ovh.
//
//	[providers.dns]
//	type               = "ovh"
//	endpoint           = "ovh-eu"
//	application_key    = "env:OVH_APPLICATION_KEY"
//	application_secret = "env:OVH_APPLICATION_SECRET"
//	consumer_key       = "env:OVH_CONSUMER_KEY"
package ovh

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libdns/ovh"

	"github.com/cutover-dev/cutover/providers"
)

// endpoints are the API names go-ovh knows; a full https URL also works.
var endpoints = []string{"ovh-eu", "ovh-ca", "ovh-us", "kimsufi-eu", "kimsufi-ca", "soyoustart-eu", "soyoustart-ca"}

func checkEndpoint(v string) error {
	if slices.Contains(endpoints, v) || strings.HasPrefix(v, "https://") {
		return nil
	}
	return fmt.Errorf("%q: want one of %s, or an https:// URL", v, strings.Join(endpoints, ", "))
}

// Spec declares the ovh type.
var Spec = providers.Spec{
	Type:    "ovh",
	Doc:     "OVHcloud",
	Library: "github.com/libdns/ovh v1.1.0",
	Settings: []providers.Setting{
		{Key: "endpoint", Kind: providers.Text, Required: true, Doc: "API endpoint, e.g. ovh-eu", Check: checkEndpoint},
		{Key: "application_key", Kind: providers.SecretRef, Required: true, Doc: "application key"},
		{Key: "application_secret", Kind: providers.SecretRef, Required: true, Doc: "application secret"},
		{Key: "consumer_key", Kind: providers.SecretRef, Required: true, Doc: "consumer key"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       60 * time.Second,
		MinTTLReason: "the library raises TTLs below 60 s to 60 s",
		RRsetSet:     providers.Capability{OK: true, Reason: "the library adds the missing records, then deletes the RRset's other records"},
		Atomic:       providers.Capability{OK: false, Reason: "one API call per record; a failed add is rolled back by the library, a failed delete is not"},
	},
	Quirks: []string{
		"changes are published by a zone refresh the library requests after each write",
	},
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return &ovh.Provider{Endpoint: v.String("endpoint"), ApplicationKey: v.String("application_key"),
			ApplicationSecret: v.String("application_secret"), ConsumerKey: v.String("consumer_key")}, nil
	},
}

func init() { providers.Register(Spec) }
