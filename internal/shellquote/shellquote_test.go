package shellquote

import (
	"os/exec"
	"testing"
)

// Every value comes back from sh as it went in, one word.
func TestQuote(t *testing.T) {
	for _, tc := range []struct{ desc, in, want string }{
		{desc: "plain", in: "/home/vmail/mail", want: "/home/vmail/mail"},
		{desc: "user", in: "root", want: "root"},
		{desc: "address and port", in: "[2001:db8::1]:22", want: "'[2001:db8::1]:22'"},
		{desc: "empty", in: "", want: "''"},
		{desc: "space", in: "a b", want: "'a b'"},
		{desc: "single quote", in: "it's", want: `'it'\''s'`},
		{desc: "dollar", in: "$HOME", want: "'$HOME'"},
		{desc: "expansion", in: "$(id)", want: "'$(id)'"},
		{desc: "command separator", in: "root; touch /tmp/pwned; echo INJECTED #", want: "'root; touch /tmp/pwned; echo INJECTED #'"},
		{desc: "newline", in: "a\nb", want: "'a\nb'"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := Quote(tc.in); got != tc.want {
				t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
			}
			out, err := exec.Command("sh", "-c", "printf %s "+Quote(tc.in)).Output()
			if err != nil || string(out) != tc.in {
				t.Errorf("sh printed %q (%v), want %q", out, err, tc.in)
			}
		})
	}
}
