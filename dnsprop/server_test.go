package dnsprop

import (
	"net/netip"
	"testing"
)

func TestParseServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, in string
		want     netip.AddrPort
		err      string
	}{
		{desc: "v4 without port", in: "127.0.0.41", want: netip.MustParseAddrPort("127.0.0.41:53")},
		{desc: "v4 with port", in: "127.0.0.41:5353", want: netip.MustParseAddrPort("127.0.0.41:5353")},
		{desc: "v6 bare", in: "::1", want: netip.MustParseAddrPort("[::1]:53")},
		{desc: "v6 bracketed", in: "[::1]", want: netip.MustParseAddrPort("[::1]:53")},
		{desc: "v6 bracketed with port", in: "[2001:db8::1]:8053", want: netip.MustParseAddrPort("[2001:db8::1]:8053")},
		{desc: "v4-mapped v6 is unmapped", in: "[::ffff:127.0.0.1]:53", want: netip.MustParseAddrPort("127.0.0.1:53")},
		{desc: "spaces trimmed", in: " 127.0.0.1 ", want: netip.MustParseAddrPort("127.0.0.1:53")},
		{desc: "empty", in: "", err: `dnsprop: server "": empty`},
		{desc: "host name refused", in: "dns.example.org", err: `dnsprop: server "dns.example.org": host must be an IP address`},
		{desc: "host name with port refused", in: "localhost:53", err: `dnsprop: server "localhost:53": host must be an IP address`},
		{desc: "port zero", in: "127.0.0.1:0", err: `dnsprop: server "127.0.0.1:0": invalid port "0"`},
		{desc: "port too large", in: "127.0.0.1:65536", err: `dnsprop: server "127.0.0.1:65536": invalid port "65536"`},
		{desc: "empty port", in: "127.0.0.1:", err: `dnsprop: server "127.0.0.1:": invalid port ""`},
		{desc: "unclosed bracket", in: "[::1:53", err: `dnsprop: server "[::1:53": missing ']'`},
		{desc: "junk after bracket", in: "[::1]x53", err: `dnsprop: server "[::1]x53": unexpected "x53" after ']'`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := ParseServer(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("ParseServer(%q) error = %v, want %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseServer(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}
