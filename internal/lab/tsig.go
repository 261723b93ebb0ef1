package lab

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TSIG is a shared key for signed updates and zone transfers.
// Name is a fully qualified key name ("cutover-lab."), Algorithm "hmac-sha256" (BIND spelling;
// miekg/dns wants dns.Fqdn(Algorithm)), Secret base64.
type TSIG struct{ Name, Algorithm, Secret string }

// NewTSIG returns a hmac-sha256 key named name (made fully qualified) with a random 32-byte secret.
func NewTSIG(name string) TSIG {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		panic("lab: crypto/rand: " + err.Error()) // never happens on Linux
	}
	return TSIG{
		Name:      dns.Fqdn(strings.ToLower(name)),
		Algorithm: "hmac-sha256",
		Secret:    base64.StdEncoding.EncodeToString(secret),
	}
}

// String describes the key without its secret, so a TSIG printed by mistake leaks nothing.
func (k TSIG) String() string {
	return "TSIG{" + k.Name + " " + k.Algorithm + " secret redacted}"
}

// GoString is String for %#v.
func (k TSIG) GoString() string { return k.String() }

// Sign sets m up to be TSIG-signed with k by a dns.Client whose TsigSecret is k.SecretMap().
func (k TSIG) Sign(m *dns.Msg) *dns.Msg {
	m.SetTsig(k.Name, dns.Fqdn(k.Algorithm), 300, time.Now().Unix())
	return m
}

// SecretMap returns the dns.Client.TsigSecret map for k.
func (k TSIG) SecretMap() map[string]string { return map[string]string{k.Name: k.Secret} }
