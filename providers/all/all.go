// Package all owns the list of cutover's DNS provider types: importing it
// registers every one of them with package providers.
package all

import (
	_ "github.com/cutover-dev/cutover/providers/cloudflare" // type "cloudflare"
	_ "github.com/cutover-dev/cutover/providers/desec"      // type "desec"
	_ "github.com/cutover-dev/cutover/providers/manual"     // type "manual"
	_ "github.com/cutover-dev/cutover/providers/porkbun"    // type "porkbun"
	_ "github.com/cutover-dev/cutover/providers/rfc2136"    // type "rfc2136"
)
