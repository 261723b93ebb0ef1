// Package route53 owns cutover's "route53" provider type: Amazon Route 53
// over github.com/libdns/route53, with static access keys (cutover never
// reads ~/.aws credentials or instance roles).
//
//	[providers.dns]
//	type              = "route53"
//	access_key_id     = "env:AWS_ACCESS_KEY_ID"
//	secret_access_key = "env:AWS_SECRET_ACCESS_KEY"
//	hosted_zone_id    = "Z0123456789ABC"   # optional: found from the zone name
package route53

import (
	"time"

	"github.com/libdns/route53"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the route53 type.
var Spec = providers.Spec{
	Type:    "route53",
	Doc:     "Amazon Route 53",
	Library: "github.com/libdns/route53 v1.6.2",
	Settings: []providers.Setting{
		{Key: "access_key_id", Kind: providers.SecretRef, Required: true, Doc: "AWS access key ID"},
		{Key: "secret_access_key", Kind: providers.SecretRef, Required: true, Doc: "AWS secret access key"},
		{Key: "session_token", Kind: providers.SecretRef, Doc: "AWS session token, for temporary keys"},
		{Key: "region", Kind: providers.Text, Default: "us-east-1", Doc: "AWS region the API is called in"},
		{Key: "hosted_zone_id", Kind: providers.Text, Doc: "hosted zone ID (default: found from the zone name)"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       time.Second,
		MinTTLReason: "Route 53 stores the TTL it is sent",
		RRsetSet:     providers.Capability{OK: true, Reason: "the library UPSERTs each RRset whole (Route 53's own unit)"},
		Atomic:       providers.Capability{OK: false, Reason: "each RRset is one atomic change, but a call touching several RRsets sends one change per RRset"},
	},
	Quirks: []string{
		"the library exits the process (log.Fatalf) if the AWS SDK cannot load its configuration, e.g. a malformed ~/.aws/config",
		"a change is PENDING inside AWS for up to about a minute; cutover's propagation wait covers it",
		"the AWS SDK retries throttling and 5xx answers itself (5 attempts)",
	},
	RetriesItself: true,
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		return &route53.Provider{AccessKeyId: v.String("access_key_id"), SecretAccessKey: v.String("secret_access_key"),
			SessionToken: v.String("session_token"), Region: v.String("region"), HostedZoneID: v.String("hosted_zone_id")}, nil
	},
}

func init() { providers.Register(Spec) }
