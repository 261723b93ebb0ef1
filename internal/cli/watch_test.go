package cli

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

// TestWatchTypesAndResolvers: --expect decides the record types watched
// (--absent adds one that must have no record); --resolvers public stands for
// the documented list. Nothing is asked: only the command line is parsed.
func TestWatchTypesAndResolvers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc      string
		args      []string
		types     string
		a, aaaa   string
		resolvers string
	}{
		{desc: "IPv4 only: A only", args: []string{"--expect", "127.0.0.20", "--resolver", "127.0.0.41"},
			types: "A", a: "127.0.0.20", resolvers: "127.0.0.41:53"},
		{desc: "IPv6 only: AAAA only", args: []string{"--expect", "2001:db8::20", "--resolver", "127.0.0.41:5353"},
			types: "AAAA", aaaa: "2001:db8::20", resolvers: "127.0.0.41:5353"},
		{desc: "IPv4, AAAA absent", args: []string{"--expect", "127.0.0.20", "--absent", "AAAA", "--resolver", "127.0.0.41"},
			types: "A AAAA", a: "127.0.0.20", resolvers: "127.0.0.41:53"},
		{desc: "both", args: []string{"--expect", "2001:db8::20,127.0.0.20", "--resolver", "127.0.0.41", "--resolver", "127.0.0.42"},
			types: "A AAAA", a: "127.0.0.20", aaaa: "2001:db8::20", resolvers: "127.0.0.41:53 127.0.0.42:53"},
		{desc: "public resolvers", args: []string{"--expect", "192.0.2.20", "--resolvers", "public"},
			types: "A", a: "192.0.2.20", resolvers: "1.1.1.1:53 8.8.8.8:53 9.9.9.9:53 208.67.222.222:53"},
		{desc: "public resolvers and one more", args: []string{"--expect", "192.0.2.20", "--resolvers", "public", "--resolver", "192.0.2.53"},
			types: "A", a: "192.0.2.20", resolvers: "192.0.2.53:53 1.1.1.1:53 8.8.8.8:53 9.9.9.9:53 208.67.222.222:53"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			w, err := parseWatch(lookup("watch"), &env{}, append([]string{"mail.example.org"}, tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			join := func(as []netip.Addr) string {
				var s []string
				for _, a := range as {
					s = append(s, a.String())
				}
				return strings.Join(s, " ")
			}
			var res []string
			for _, r := range w.chk.Resolvers {
				res = append(res, r.String())
			}
			got := strings.Join([]string{strings.Join(w.types, " "), join(w.want.A), join(w.want.AAAA), strings.Join(res, " ")}, " | ")
			want := strings.Join([]string{tc.types, tc.a, tc.aaaa, tc.resolvers}, " | ")
			if got != want || strings.Join(w.names, " ") != "mail.example.org." {
				t.Errorf("types | A | AAAA | resolvers = %s (names %q)\nwant %s", got, w.names, want)
			}
		})
	}
}

// TestPublicResolversDocumented: the README's watch notes list exactly the
// addresses --resolvers public stands for.
func TestPublicResolversDocumented(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "`--resolvers public` stands for "
	readme := string(b)
	i := strings.Index(readme, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	var want []string
	for _, r := range publicResolvers {
		want = append(want, "`"+r+"`")
	}
	rest := strings.Join(strings.Fields(readme[i+len(marker):]), " ") // the paragraph wraps lines
	if !strings.HasPrefix(rest, strings.Join(want, ", ")+" (") {
		got, _, _ := strings.Cut(rest, " (")
		t.Errorf("README lists %s, want %s", got, strings.Join(want, ", "))
	}
}
