package all_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/providers"
	_ "github.com/cutover-dev/cutover/providers/all"
	"github.com/cutover-dev/cutover/providers/providertest"
)

// wired is every provider type with the keys it requires, as a user writes
// them: the test below builds each one from a config file.
var wired = []struct {
	typ     string
	secrets []string          // required secret keys
	text    map[string]string // required plain keys with a good value
}{
	{typ: "bunny", secrets: []string{"access_key"}},
	{typ: "cloudflare", secrets: []string{"api_token"}},
	{typ: "desec", secrets: []string{"token"}},
	{typ: "digitalocean", secrets: []string{"api_token"}},
	{typ: "gandi", secrets: []string{"bearer_token"}},
	{typ: "hetzner", secrets: []string{"api_token"}},
	{typ: "inwx", secrets: []string{"password"}, text: map[string]string{"username": "alice"}},
	{typ: "ionos", secrets: []string{"api_token"}},
	{typ: "linode", secrets: []string{"api_token"}},
	{typ: "manual"},
	{typ: "namecheap", secrets: []string{"api_key"}, text: map[string]string{"user": "alice", "client_ip": "203.0.113.7"}},
	{typ: "ovh", secrets: []string{"application_key", "application_secret", "consumer_key"}, text: map[string]string{"endpoint": "ovh-eu"}},
	{typ: "porkbun", secrets: []string{"api_key", "secret_api_key"}},
	{typ: "powerdns", secrets: []string{"api_token"}, text: map[string]string{"server_url": "http://127.0.0.1:8081"}},
	{typ: "rfc2136", secrets: []string{"key"}, text: map[string]string{"server": "127.0.0.1:53", "key_name": "cutover."}},
	{typ: "route53", secrets: []string{"access_key_id", "secret_access_key"}},
	{typ: "vultr", secrets: []string{"api_token"}},
}

func TestEveryTypeRegistered(t *testing.T) {
	var want []string
	for _, w := range wired {
		want = append(want, w.typ)
	}
	if got := providers.Types(); !slices.Equal(got, want) {
		t.Fatalf("Types() = %q, want %q", got, want)
	}
	if api := len(want) - 1; api < 15 {
		t.Fatalf("%d API providers, want at least 15", api)
	}
	_, _, err := providers.Lookup("godaddy")
	if want := `providers: unknown type "godaddy" (valid: ` + strings.Join(want, ", ") + ")"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// TestLibraryVersions checks that every spec names the library version
// go.mod requires (the README's table and `cutover providers` show it).
func TestLibraryVersions(t *testing.T) {
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range providers.Specs() {
		if s.Library != "" && !strings.Contains(string(gomod), "\t"+s.Library+"\n") {
			t.Errorf("%s: go.mod does not require %s", s.Type, s.Library)
		}
	}
}

// file is a config file holding only [providers.dns] with kv, in order; it
// returns the text and the line of each key.
func file(typ string, kv [][2]string) (string, map[string]int) {
	var b strings.Builder
	lines := map[string]int{}
	fmt.Fprintf(&b, "[providers.dns]\ntype = %q\n", typ)
	for i, p := range kv {
		fmt.Fprintf(&b, "%s = %q\n", p[0], p[1])
		lines[p[0]] = i + 3
	}
	return b.String(), lines
}

// providerProblems parses text as a config file and returns the problems of
// [providers.dns] (the rest of the file is missing on purpose).
func providerProblems(t *testing.T, text string) []string {
	t.Helper()
	_, err := config.Parse([]byte(text), "f.toml", config.Options{CheckProvider: providers.Check})
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Parse: %v", err)
	}
	var out []string
	for _, p := range ce.Problems {
		if strings.HasPrefix(p.Key, "providers.") {
			out = append(out, p.String())
		}
	}
	return out
}

// TestConfigToClient builds every wired provider from a config file: an
// empty table reports every required key at once (at the table's header),
// inline secrets are refused at their line without being shown, and good
// settings open a client without touching the network.
func TestConfigToClient(t *testing.T) {
	const secret = "s3cr3t-0123456789abcdef"
	for _, w := range wired {
		t.Run(w.typ, func(t *testing.T) {
			spec, err := providers.SpecOf(w.typ)
			if err != nil {
				t.Fatal(err)
			}
			var required []string
			for _, st := range spec.Settings {
				if st.Required {
					required = append(required, st.Key)
				}
			}
			var keys []string
			keys = append(keys, w.secrets...)
			for k := range w.text {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			slices.Sort(required)
			if !slices.Equal(keys, required) {
				t.Fatalf("required keys %q, the table says %q", required, keys)
			}

			// Nothing set: every required key, all at once, at the header.
			text, _ := file(w.typ, nil)
			var want []string
			for _, st := range spec.Settings {
				switch {
				case !st.Required:
				case st.Kind == providers.SecretRef:
					want = append(want, "f.toml:1:2: providers.dns."+st.Key+`: required: a secret reference such as "env:NAME" or "file:PATH"`)
				default:
					want = append(want, "f.toml:1:2: providers.dns."+st.Key+": required")
				}
			}
			if got := providerProblems(t, text); !slices.Equal(got, want) {
				t.Fatalf("empty table:\ngot  %q\nwant %q", got, want)
			}

			// Secrets written inline, and a key the type does not have.
			var kv [][2]string
			for _, st := range spec.Settings {
				if st.Required && st.Kind == providers.SecretRef {
					kv = append(kv, [2]string{st.Key, secret})
				} else if v, ok := w.text[st.Key]; ok {
					kv = append(kv, [2]string{st.Key, v})
				}
			}
			kv = append(kv, [2]string{"colour", "red"})
			text, lines := file(w.typ, kv)
			want = nil
			for _, k := range w.secrets {
				want = append(want, fmt.Sprintf("f.toml:%d:1: providers.dns.%s: %s", lines[k], k, config.ErrInlineSecret))
			}
			want = append(want, fmt.Sprintf("f.toml:%d:1: providers.dns.colour: unknown key for provider type %q", lines["colour"], w.typ))
			slices.Sort(want)
			got := providerProblems(t, text)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("inline secrets:\ngot  %q\nwant %q", got, want)
			}
			providertest.Secrets(t, secret, got...)

			// Good settings: the client is built (no network until used).
			kv = nil
			for i, k := range w.secrets {
				env := fmt.Sprintf("CUTOVER_TEST_%s_%d", strings.ToUpper(w.typ), i)
				t.Setenv(env, "dGVzdC1zZWNyZXQtdmFsdWU=")
				kv = append(kv, [2]string{k, "env:" + env})
			}
			for k, v := range w.text {
				kv = append(kv, [2]string{k, v})
			}
			text, _ = file(w.typ, kv)
			if got := providerProblems(t, text); len(got) != 0 {
				t.Fatalf("good settings: %q", got)
			}
			values := map[string]any{}
			for _, p := range kv {
				values[p[0]] = p[1]
			}
			// manual needs somewhere to print and servers to ask (not asked here).
			env := providers.Env{Zone: "example.org.", Out: &strings.Builder{}, Authoritative: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}}
			z, err := providers.Open(config.NewProviderSettings("dns", w.typ, values), env)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			if z.Capabilities() != spec.Capabilities {
				t.Fatalf("capabilities %+v, want %+v", z.Capabilities(), spec.Capabilities)
			}
		})
	}
}

// TestProblemPositions checks that every kind of problem in a
// [providers.NAME] table carries its line and column.
func TestProblemPositions(t *testing.T) {
	tests := []struct {
		desc, text string
		want       []string
	}{
		{desc: "unknown type, at the type key", text: "[providers.dns]\n  type = \"godaddy\"\n  api_token = \"env:X\"\n",
			want: []string{`f.toml:2:3: providers.dns.type: unknown type "godaddy" (valid: ` + strings.Join(providers.Types(), ", ") + ")"}},
		{desc: "a provider's own check, at its key", text: "[providers.dns]\ntype = \"rfc2136\"\nkey_name = \"k.\"\nkey = \"env:K\"\n  server = \"ns1:53\"\n",
			want: []string{`f.toml:5:3: providers.dns.server: "ns1:53": want an IP address and port such as "192.0.2.53:53"`}},
		{desc: "a bad duration, at its key", text: "[providers.dns]\ntype = \"manual\"\ntimeout = \"0s\"\n",
			want: []string{`f.toml:3:1: providers.dns.timeout: must be positive`}},
		{desc: "an integer duration, at its key", text: "[providers.dns]\ntype = \"manual\"\n\ntimeout = 5\n",
			want: []string{`f.toml:4:1: providers.dns.timeout: must be a duration string such as "30s", not an integer`}},
		{desc: "an inline table", text: "[providers]\ndns = { type = \"ovh\", endpoint = \"eu\", application_key = \"env:A\", application_secret = \"env:B\", consumer_key = \"env:C\" }\n",
			want: []string{`f.toml:2:23: providers.dns.endpoint: "eu": want one of ovh-eu, ovh-ca, ovh-us, kimsufi-eu, kimsufi-ca, soyoustart-eu, soyoustart-ca, or an https:// URL`}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := providerProblems(t, tc.text); !slices.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
