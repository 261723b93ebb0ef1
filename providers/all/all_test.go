package all_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/providers"
	_ "github.com/cutover-dev/cutover/providers/all"
	"github.com/cutover-dev/cutover/providers/providertest"
)

func TestEveryTypeRegistered(t *testing.T) {
	if got, want := providers.Types(), []string{"cloudflare", "desec", "manual", "porkbun", "rfc2136"}; !slices.Equal(got, want) {
		t.Fatalf("Types() = %q, want %q", got, want)
	}
	_, _, err := providers.Lookup("route53")
	if want := `providers: unknown type "route53" (valid: cloudflare, desec, manual, porkbun, rfc2136)`; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	for _, typ := range providers.Types() {
		_, caps, _ := providers.Lookup(typ)
		if caps.MinTTL <= 0 || caps.MinTTLReason == "" || caps.RRsetSet.Reason == "" || caps.Atomic.Reason == "" {
			t.Errorf("%s: capabilities without reasons: %+v", typ, caps)
		}
		if !caps.RRsetSet.OK {
			t.Errorf("%s: SetRecords is not RRset-correct: the operations need it", typ)
		}
	}
}

// TestCheckAPIProviders covers the providers that have no server here
// (desec, porkbun): settings mapping only, and opening without network.
func TestCheckAPIProviders(t *testing.T) {
	const secret = "pk1_0123456789abcdef0123456789abcdef"
	tests := []struct {
		desc, typ string
		kv        map[string]any
		want      []string
	}{
		{desc: "desec good", typ: "desec", kv: map[string]any{"token": "env:DESEC_TOKEN"}},
		{desc: "desec missing token", typ: "desec", kv: map[string]any{"api_token": "env:X"}, want: []string{
			`providers.dns.token: required: a secret reference such as "env:NAME" or "file:PATH"`,
			`providers.dns.api_token: unknown key for provider type "desec"`,
		}},
		{desc: "porkbun good", typ: "porkbun", kv: map[string]any{"api_key": "env:PK", "secret_api_key": "file:/etc/cutover/pk"}},
		{desc: "porkbun inline and missing", typ: "porkbun", kv: map[string]any{"api_key": secret}, want: []string{
			"providers.dns.api_key: " + config.ErrInlineSecret.Error(),
			`providers.dns.secret_api_key: required: a secret reference such as "env:NAME" or "file:PATH"`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var got []string
			for _, p := range providers.Check(config.NewProviderSettings("dns", tc.typ, tc.kv)) {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			providertest.Secrets(t, secret, got...)
		})
	}
	t.Setenv("CUTOVER_TEST_PK", secret)
	for _, s := range []*config.ProviderSettings{
		config.NewProviderSettings("dns", "desec", map[string]any{"token": "env:CUTOVER_TEST_PK"}),
		config.NewProviderSettings("dns", "porkbun", map[string]any{"api_key": "env:CUTOVER_TEST_PK", "secret_api_key": "env:CUTOVER_TEST_PK"}),
	} {
		z, err := providers.Open(s, providers.Env{Zone: "example.org."})
		if err != nil {
			t.Fatalf("%s: %v", s.Type, err)
		}
		if z.Capabilities().MinTTL == 0 {
			t.Errorf("%s: no capabilities", s.Type)
		}
	}
	_, err := providers.Open(config.NewProviderSettings("dns", "porkbun", map[string]any{"api_key": "env:CUTOVER_TEST_PK", "secret_api_key": "env:CUTOVER_TEST_UNSET"}), providers.Env{Zone: "example.org."})
	if want := `config: secret: environment variable "CUTOVER_TEST_UNSET" is not set`; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatal("secret in error")
	}
}
