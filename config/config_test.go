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
}

func TestDefaultStateDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	for _, tc := range []struct {
		desc, file, want string
	}{
		{desc: "named after the file, with a hash of its absolute path", file: "/srv/a/mail.toml", want: "/state/cutover/mail-fe0ce200"},
		{desc: "the same name elsewhere gets another directory", file: "/srv/b/mail.toml", want: "/state/cutover/mail-0094ebfb"},
		{desc: "a relative path is made absolute first", file: "../../srv/a/mail.toml", want: "/state/cutover/mail-fe0ce200"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if tc.file[0] != '/' {
				t.Chdir("/tmp")
			}
			cfg, err := Parse([]byte(minimal), tc.file, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.StateDir != tc.want {
				t.Fatalf("state_dir %q, want %q", cfg.StateDir, tc.want)
			}
		})
	}
}

func TestHookPlaceholders(t *testing.T) {
	src := strings.Replace(minimal, "[new]", "address6 = \"2001:db8::1\"\nssh_user = \"mail-admin\"\n[new]", 1) + `[hooks]
disable = { on = "local", run = "echo stopping mail as {old.ssh_user} on {old.address} [{old.address6}]:{old.ssh_port} in {dns.zone}" }
`
	cfg, err := Parse([]byte(src), "c.toml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := "echo stopping mail as mail-admin on 192.0.2.1 [2001:db8::1]:22 in example.org."
	if got := cfg.Hooks.Disable.Run; got != want {
		t.Fatalf("run %q, want %q", got, want)
	}
}

func TestParseProblems(t *testing.T) {
	longName := `"` + strings.Repeat(strings.Repeat("a", 60)+".", 4) + `example.org"` // 255 characters
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
		{desc: "sync path inside a later one", edit: func(s string) string {
			return s + "[[sync]]\npath = \"/home/vmail/mail\"\n[[sync]]\npath = \"/srv/a-b\"\n[[sync]]\npath = \"/home/vmail\"\n"
		}, wantErr: `config: c.toml:21:1: sync[2].path: "/home/vmail" overlaps "/home/vmail/mail": list each directory once`},
		{desc: "sync path listed twice", edit: func(s string) string {
			return s + "[[sync]]\npath = \"/srv/a\"\n[[sync]]\npath = \"/srv/a/\"\n"
		}, wantErr: `config: c.toml:19:1: sync[1].path: "/srv/a" is listed twice`},
		{desc: "newline in a sync path", edit: func(s string) string { return s + "[[sync]]\npath = \"/home/vmail\\nmail\"\n" },
			wantErr: `config: c.toml:17:1: sync[0].path: "/home/vmail\nmail" contains a control character (a newline, a tab, ...)`},
		{desc: "DEL in a sync path", edit: func(s string) string { return s + "[[sync]]\npath = \"/home/\\u007f\"\n" },
			wantErr: `config: c.toml:17:1: sync[0].path: "/home/\x7f" contains a control character (a newline, a tab, ...)`},
		{desc: "tab in state_dir", edit: func(s string) string { return "state_dir = \"/var/lib/\\tx\"\n" + s },
			wantErr: `config: c.toml:1:1: state_dir: "/var/lib/\tx" contains a control character (a newline, a tab, ...)`},
		{desc: "shell in ssh_user", edit: func(s string) string {
			return strings.Replace(s, "[new]", "ssh_user = \"root; touch /tmp/pwned; echo INJECTED #\"\n[new]", 1)
		}, wantErr: `config: c.toml:4:1: old.ssh_user: "root; touch /tmp/pwned; echo INJECTED #" is not a user name (a-z, 0-9, "_", "." and "-", starting with a letter or "_", at most 32 characters)`},
		{desc: "ssh_user starting with a dash", edit: func(s string) string {
			return strings.Replace(s, "[ssh]", "ssh_user = \"-oProxyCommand=x\"\n[ssh]", 1)
		}, wantErr: `config: c.toml:6:1: new.ssh_user: "-oProxyCommand=x" is not a user name (a-z, 0-9, "_", "." and "-", starting with a letter or "_", at most 32 characters)`},
		{desc: "ssh_user too long", edit: func(s string) string {
			return strings.Replace(s, "[new]", "ssh_user = \""+strings.Repeat("u", 33)+"\"\n[new]", 1)
		}, wantErr: `config: c.toml:4:1: old.ssh_user: "` + strings.Repeat("u", 33) + `" is not a user name (a-z, 0-9, "_", "." and "-", starting with a letter or "_", at most 32 characters)`},
		{desc: "new.address unspecified", edit: func(s string) string { return strings.Replace(s, `"192.0.2.2"`, `"0.0.0.0"`, 1) },
			wantErr: `config: c.toml:5:1: new.address: "0.0.0.0" is the unspecified address, not a host's address`},
		{desc: "old.address multicast", edit: func(s string) string { return strings.Replace(s, `"192.0.2.1"`, `"224.0.0.1"`, 1) },
			wantErr: `config: c.toml:3:1: old.address: "224.0.0.1" is a multicast address, not a host's address`},
		{desc: "new.address broadcast", edit: func(s string) string { return strings.Replace(s, `"192.0.2.2"`, `"255.255.255.255"`, 1) },
			wantErr: `config: c.toml:5:1: new.address: "255.255.255.255" is the broadcast address, not a host's address`},
		{desc: "new.address6 unspecified", edit: func(s string) string { return strings.Replace(s, "[ssh]", "address6 = \"::\"\n[ssh]", 1) },
			wantErr: `config: c.toml:6:1: new.address6: "::" is the unspecified address, not a host's address`},
		{desc: "old.address6 with a zone", edit: func(s string) string {
			return strings.Replace(s, "[new]", "address6 = \"2001:db8::1%a;touch /tmp/pwned\"\n[new]", 1)
		}, wantErr: `config: c.toml:4:1: old.address6: "2001:db8::1%a;touch /tmp/pwned" has a zone (%a;touch /tmp/pwned): an AAAA record holds the address alone; write "2001:db8::1"`},
		{desc: "old.address6 multicast", edit: func(s string) string { return strings.Replace(s, "[new]", "address6 = \"ff02::1\"\n[new]", 1) },
			wantErr: `config: c.toml:4:1: old.address6: "ff02::1" is a multicast address, not a host's address`},
		{desc: "name longer than DNS allows", edit: func(s string) string { return strings.Replace(s, `["MAIL.example.org"]`, `[`+longName+`]`, 1) },
			wantErr: `config: c.toml:11:10: dns.names[0]: ` + longName + ` is 255 characters long; DNS allows at most 253`},
		{desc: "an element after one of the wrong type keeps its index", edit: func(s string) string {
			return strings.Replace(s, `["MAIL.example.org"]`, `["MAIL.example.org", 7, "Mail.Example.org"]`, 1)
		}, wantErr: "config: 2 problems:\n" +
			"  c.toml:11:30: dns.names[1]: must be a string, not an integer\n" +
			`  c.toml:11:33: dns.names[2]: "Mail.Example.org" is listed twice`},
		{desc: "label longer than 63", edit: func(s string) string {
			return strings.Replace(s, `"MAIL.example.org"`, `"`+strings.Repeat("m", 64)+`.example.org"`, 1)
		}, wantErr: `config: c.toml:11:10: dns.names[0]: "` + strings.Repeat("m", 64) + `.example.org" is not a valid domain name (labels of a-z, 0-9, "-" and "_", at most 63 characters each)`},
		{desc: "duplicate resolver, once with the default port", edit: func(s string) string {
			return strings.Replace(s, `resolvers = ["127.0.0.1", "[::1]:5353"]`, `resolvers = ["127.0.0.1", "[::1]:5353", "127.0.0.1:53"]`, 1)
		}, wantErr: `config: c.toml:12:41: dns.resolvers[2]: "127.0.0.1:53" is listed twice: dns.resolvers[0] is the same server (127.0.0.1:53)`},
		{desc: "duplicate resolver, once IPv4-mapped", edit: func(s string) string {
			return strings.Replace(s, `resolvers = ["127.0.0.1", "[::1]:5353"]`, `resolvers = ["[::ffff:127.0.0.1]:53", "127.0.0.1"]`, 1)
		}, wantErr: `config: c.toml:12:39: dns.resolvers[1]: "127.0.0.1" is listed twice: dns.resolvers[0] is the same server (127.0.0.1:53)`},
		{desc: "duplicate authoritative", edit: func(s string) string {
			return strings.Replace(s, "[providers.main]", "authoritative = [\"::1\",\n  \"[::1]:53\"]\n[providers.main]", 1)
		}, wantErr: `config: c.toml:14:3: dns.authoritative[1]: "[::1]:53" is listed twice: dns.authoritative[0] is the same server ([::1]:53)`},
		{desc: "lowered_ttl above a week", edit: func(s string) string {
			return strings.Replace(s, "[providers.main]", "lowered_ttl = \"8d\"\n[providers.main]", 1)
		},
			wantErr: `config: c.toml:13:1: dns.lowered_ttl: "8d" is longer than 7d, the most a lowered TTL may be`},
		{desc: "lowered_ttl above 2^31-1 seconds", edit: func(s string) string {
			return strings.Replace(s, "[providers.main]", "lowered_ttl = \"2147483648s\"\n[providers.main]", 1)
		}, wantErr: `config: c.toml:13:1: dns.lowered_ttl: "2147483648s" is longer than 7d, the most a lowered TTL may be`},
		{desc: "restore_ttl_after overflows", edit: func(s string) string {
			return strings.Replace(s, "[providers.main]", "restore_ttl_after = \"106752d\"\n[providers.main]", 1)
		}, wantErr: `config: c.toml:13:1: dns.restore_ttl_after: "106752d" is too long (at most 106751d)`},
		{desc: "converge_timeout overflows int64", edit: func(s string) string {
			return strings.Replace(s, "[providers.main]", "converge_timeout = \"99999999999999999999d\"\n[providers.main]", 1)
		}, wantErr: `config: c.toml:13:1: dns.converge_timeout: "99999999999999999999d" is too long (at most 106751d)`},
		{desc: "converge_timeout overflows Duration", edit: func(s string) string {
			return strings.Replace(s, "[providers.main]", "converge_timeout = \"9999999999999999d\"\n[providers.main]", 1)
		}, wantErr: `config: c.toml:13:1: dns.converge_timeout: "9999999999999999d" is too long (at most 106751d)`},
		{desc: "hook timeout overflows", edit: func(s string) string {
			return s + "[hooks]\ndisable = { on = \"old\", run = \"true\", timeout = \"9999999999h\" }\n"
		}, wantErr: `config: c.toml:17:39: hooks.disable.timeout: "9999999999h" is too long (at most 106751d)`},
		{desc: "duration with a plus sign", edit: func(s string) string {
			return strings.Replace(s, "[providers.main]", "lowered_ttl = \"+1d\"\n[providers.main]", 1)
		},
			wantErr: `config: c.toml:13:1: dns.lowered_ttl: "+1d" is not a duration (examples: "90s", "5m", "1h30m", "2d")`},
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
		{desc: "relative file outside a config file", ref: "file:keys/tsig", wantParse: `file: "keys/tsig" is a relative path`},
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
		{desc: "plus sign on days", in: "+1d", wantErr: `"+1d" is not a duration (examples: "90s", "5m", "1h30m", "2d")`},
		{desc: "plus sign", in: "+5m", wantErr: `"+5m" is not a duration (examples: "90s", "5m", "1h30m", "2d")`},
		{desc: "negative days", in: "-1d", wantErr: `"-1d" is not a duration (examples: "90s", "5m", "1h30m", "2d")`},
		{desc: "the most days", in: "106751d", want: 106751 * 24 * time.Hour, format: "106751d"},
		{desc: "one day too many", in: "106752d", wantErr: `"106752d" is too long (at most 106751d)`},
		{desc: "days beyond int64", in: "9999999999999999999d", wantErr: `"9999999999999999999d" is too long (at most 106751d)`},
		{desc: "hours beyond Duration", in: "2562048h", wantErr: `"2562048h" is too long (at most 106751d)`},
		{desc: "fraction of a day", in: "1.5d", wantErr: `"1.5d" is not a duration (examples: "90s", "5m", "1h30m", "2d")`},
		{desc: "unit missing", in: "5", wantErr: `"5" is not a duration (examples: "90s", "5m", "1h30m", "2d")`},
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

// xattrs is per [[sync]] entry: only the entries that ask for ACLs and
// extended attributes pay their per-file cost in the copies.
func TestSyncXattrs(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		entry   string
		want    bool
		wantErr string
	}{
		{desc: "default off", entry: `path = "/var/lib/acme"`},
		{desc: "asked for", entry: "path = \"/var/lib/acme\"\nxattrs = true", want: true},
		{desc: "not a boolean", entry: "path = \"/var/lib/acme\"\nxattrs = \"yes\"",
			wantErr: `config: c.toml:18:1: sync[0].xattrs: must be true or false, not a string`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, err := Parse([]byte(minimal+"[[sync]]\n"+tc.entry+"\n"), "c.toml", Options{})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Sync[0].Xattrs; got != tc.want {
				t.Fatalf("Xattrs %v, want %v", got, tc.want)
			}
		})
	}
}

// The README's example config (the chatmail migration) stays valid as the
// format changes.
func TestExampleConfigValid(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "config.example.toml"), Options{Now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(cfg.Sync); got != 4 {
		t.Errorf("%d [[sync]] entries, want the guide's 4 (mailboxes, ACME, DKIM keys, spool)", got)
	}
}
