package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestREADMEProviderTable checks that the README's provider table is the
// output of `cutover providers`.
func TestREADMEProviderTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- begin: cutover providers -->\n", "<!-- end: cutover providers -->"
	_, rest, ok := strings.Cut(string(readme), begin)
	table, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("README.md has no %q ... %q block", begin, end)
	}
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out}
	if code := run(context.Background(), e, []string{"providers"}); code != ExitOK {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if table != out.String() {
		t.Fatalf("README.md's provider table differs from `cutover providers`; paste its output between the markers:\n%s", out.String())
	}
}

func TestProvidersJSON(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out}
	if code := run(context.Background(), e, []string{"providers", "--json"}); code != ExitOK {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	var got []struct {
		Type     string  `json:"type"`
		MinTTL   float64 `json:"min_ttl"`
		Settings []struct {
			Key     string `json:"key"`
			Secret  bool   `json:"secret"`
			Default any    `json:"default"`
		} `json:"settings"`
		Atomic struct{ OK bool } `json:"atomic"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	byType := map[string]int{}
	for i, p := range got {
		byType[p.Type] = i
	}
	tests := []struct {
		desc string
		got  any
		want any
	}{
		{"desec min TTL in seconds", got[byType["desec"]].MinTTL, 3600.0},
		{"rfc2136 atomic", got[byType["rfc2136"]].Atomic.OK, true},
		{"porkbun secret key marked", got[byType["porkbun"]].Settings[0].Secret, true},
		{"manual timeout default in seconds", got[byType["manual"]].Settings[0].Default, 3600.0},
		{"rfc2136 key_alg default as text", got[byType["rfc2136"]].Settings[2].Default, "hmac-sha256"},
		{"route53 listed", got[byType["route53"]].Type, "route53"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.desc, tc.got, tc.want)
		}
	}
	for _, args := range [][]string{{"providers", "extra"}, {"providers", "--yaml"}} {
		out.Reset()
		if code := run(context.Background(), e, args); code != ExitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, ExitUsage)
		}
	}
}
