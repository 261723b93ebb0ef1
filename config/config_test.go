package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `cutover_at = 2030-06-01T03:00:00Z
[old]
address = "192.0.2.1"
[new]
address = "192.0.2.2"
[ssh]
known_hosts = "/etc/ssh/known"
[dns]
provider = "main"
zone = "Example.ORG"
names = ["MAIL.example.org"]
resolvers = ["127.0.0.1", "[::1]:5353"]
[providers.main]
type = "rfc2136"
key = "env:TSIG"
`

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal), "/srv/mail.toml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		desc      string
		got, want any
	}{
		{"zone made fully qualified, lower case", cfg.DNS.Zone, "example.org."},
		{"names too", cfg.DNS.Names[0], "mail.example.org."},
		{"on_failure", cfg.OnFailure, OnFailureRollback},
		{"ssh user", cfg.Old.SSHUser, "root"},
		{"ssh port", cfg.New.SSHPort, 22},
		{"transfer", cfg.SSH.Transfer, TransferDirect},
		{"lowered_ttl", cfg.DNS.LoweredTTL, 5 * time.Minute},
		{"restore_ttl_after", cfg.DNS.RestoreTTLAfter, time.Hour},
		{"converge_timeout", cfg.DNS.ConvergeTimeout, 2 * time.Hour},
		{"quorum all", cfg.DNS.Quorum, 0},
		{"resolver port default", cfg.DNS.Resolvers[0].String(), "127.0.0.1:53"},
		{"resolver v6 with port", cfg.DNS.Resolvers[1].String(), "[::1]:5353"},
		{"no address6", cfg.Old.Address6.IsValid(), false},
		{"provider", cfg.Provider().Type, "rfc2136"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.desc, c.got, c.want)
		}
	}
	if !strings.HasSuffix(cfg.StateDir, "/cutover/mail") {
		t.Errorf("state_dir %q, want .../cutover/mail (named after the file)", cfg.StateDir)
	}
}

func TestParseProblems(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		edit    func(string) string
		now     time.Time
		wantErr string
	}{
		{desc: "cutover_at in the past", now: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC), edit: func(s string) string { return s },
			wantErr: "config: c.toml:1:1: cutover_at: 2030-06-01T03:00:00Z is in the past (now is 2031-01-01T00:00:00Z)"},
		{desc: "cutover_at without offset", edit: func(s string) string {
			return strings.Replace(s, "2030-06-01T03:00:00Z", "2030-06-01T03:00:00", 1)
		}, wantErr: "config: c.toml:1:1: cutover_at: needs a UTC offset, e.g. 2026-12-01T03:00:00Z or 2026-12-01T04:00:00+01:00"},
		{desc: "unknown key", edit: func(s string) string { return s + "[notify]\ncommand = \"x\"\ncomand = \"y\"\n" },
			wantErr: `config: c.toml:18:1: notify.comand: unknown key (valid here: command)`},
		{desc: "quorum above the resolvers", edit: func(s string) string {
			return strings.Replace(s, "[providers.main]", "quorum = 3\n[providers.main]", 1)
		},
			wantErr: "config: c.toml:13:1: dns.quorum: 3: must be from 1 to the number of resolvers (2)"},
		{desc: "same address on both sides", edit: func(s string) string { return strings.Replace(s, `"192.0.2.2"`, `"192.0.2.1"`, 1) },
			wantErr: "config: c.toml:5:1: new.address: is the same as old.address (192.0.2.1)"},
		{desc: "overlapping sync paths", edit: func(s string) string {
			return s + "[[sync]]\npath = \"/home/vmail\"\n[[sync]]\npath = \"/home/vmail/mail\"\n"
		}, wantErr: `config: c.toml:19:1: sync[1].path: "/home/vmail/mail" overlaps "/home/vmail": list each directory once`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Parse([]byte(tc.edit(minimal)), "c.toml", Options{Now: tc.now})
			if got := errString(err); got != tc.wantErr {
				t.Fatalf("got  %q\nwant %q", got, tc.wantErr)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T, want *Error", err)
			}
		})
	}
}

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	os.WriteFile(file, []byte("s3cret-value\n"), 0o600)
	t.Setenv("CUTOVER_TEST_TOKEN", "from-env")
	for _, tc := range []struct {
		desc      string
		ref       string
		wantParse string
		want      string
		wantErr   string
	}{
		{desc: "env", ref: "env:CUTOVER_TEST_TOKEN", want: "from-env"},
		{desc: "file, trailing newline dropped", ref: "file:" + file, want: "s3cret-value"},
		{desc: "inline is refused without echoing it", ref: "s3cret-inline", wantParse: ErrInlineSecret.Error()},
		{desc: "env unset", ref: "env:CUTOVER_TEST_UNSET", wantErr: `config: secret: environment variable "CUTOVER_TEST_UNSET" is not set`},
		{desc: "file missing", ref: "file:" + dir + "/nope", wantErr: "config: secret: open " + dir + "/nope: no such file or directory"},
		{desc: "empty name", ref: "env:", wantParse: `env: needs a name after "env:"`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			s, err := ParseSecret(tc.ref)
			if got := errString(err); got != tc.wantParse {
				t.Fatalf("parse: %q, want %q", got, tc.wantParse)
			}
			if err != nil {
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("the error shows the secret: %q", err)
				}
				return
			}
			v, err := s.Resolve()
			if got := errString(err); got != tc.wantErr {
				t.Fatalf("resolve: %q, want %q", got, tc.wantErr)
			}
			if v != tc.want {
				t.Fatalf("value %q, want %q", v, tc.want)
			}
			if strings.Contains(s.String(), "s3cret") || strings.Contains(s.String(), "from-env") {
				t.Fatalf("String() shows the value: %q", s)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		in      string
		want    time.Duration
		wantErr string
		format  string
	}{
		{desc: "minutes", in: "5m", want: 5 * time.Minute, format: "5m"},
		{desc: "days", in: "2d", want: 48 * time.Hour, format: "2d"},
		{desc: "mixed", in: "1h30m", want: 90 * time.Minute, format: "1h30m"},
		{desc: "negative", in: "-5m", wantErr: `"-5m" is not a duration (examples: "90s", "5m", "1h30m", "2d")`},
		{desc: "words", in: "soon", wantErr: `"soon" is not a duration (examples: "90s", "5m", "1h30m", "2d")`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			d, err := ParseDuration(tc.in)
			if got := errString(err); got != tc.wantErr {
				t.Fatalf("%q, want %q", got, tc.wantErr)
			}
			if d != tc.want {
				t.Fatalf("%s, want %s", d, tc.want)
			}
			if tc.format != "" && FormatDuration(d) != tc.format {
				t.Fatalf("format %q, want %q", FormatDuration(d), tc.format)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
