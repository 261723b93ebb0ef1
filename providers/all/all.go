// Package all owns the list of cutover's DNS provider types: importing it
// registers every one of them with package providers.
package all

import (
	_ "github.com/cutover-dev/cutover/providers/bunny"        // type "bunny"
	_ "github.com/cutover-dev/cutover/providers/cloudflare"   // type "cloudflare"
	_ "github.com/cutover-dev/cutover/providers/desec"        // type "desec"
	_ "github.com/cutover-dev/cutover/providers/digitalocean" // type "digitalocean"
	_ "github.com/cutover-dev/cutover/providers/gandi"        // type "gandi"
	_ "github.com/cutover-dev/cutover/providers/hetzner"      // type "hetzner"
	_ "github.com/cutover-dev/cutover/providers/inwx"         // type "inwx"
	_ "github.com/cutover-dev/cutover/providers/ionos"        // type "ionos"
	_ "github.com/cutover-dev/cutover/providers/linode"       // type "linode"
	_ "github.com/cutover-dev/cutover/providers/manual"       // type "manual"
	_ "github.com/cutover-dev/cutover/providers/namecheap"    // type "namecheap"
	_ "github.com/cutover-dev/cutover/providers/ovh"          // type "ovh"
	_ "github.com/cutover-dev/cutover/providers/porkbun"      // type "porkbun"
	_ "github.com/cutover-dev/cutover/providers/powerdns"     // type "powerdns"
	_ "github.com/cutover-dev/cutover/providers/rfc2136"      // type "rfc2136"
	_ "github.com/cutover-dev/cutover/providers/route53"      // type "route53"
	_ "github.com/cutover-dev/cutover/providers/vultr"        // type "vultr"
)
