package rfc2136_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/providertest"
	"github.com/cutover-dev/cutover/providers/rfc2136"
)

const zone = "example.org."

func settings(server string, key lab.TSIG, env string) *config.ProviderSettings {
	return config.NewProviderSettings("dns", "rfc2136", map[string]any{
		"server":   server,
		"key_name": key.Name,
		"key_alg":  key.Algorithm,
		"key":      "env:" + env,
	})
}

// TestConformanceBIND runs the suite against a real BIND 9 primary with
// TSIG-signed updates and AXFR.
func TestConformanceBIND(t *testing.T) {
	n := lab.NewNet(t)
	var b *lab.BIND
	providertest.Run(t, providertest.Harness{
		Zone:   zone,
		Caps:   rfc2136.Spec.Capabilities,
		TTL:    30 * time.Second,
		LowTTL: 5 * time.Second,
		Start: func(t *testing.T, seed []libdns.RR) providers.Client {
			b = lab.NewBIND(t, lab.BINDOptions{Addr: n.IP(31), Zone: lab.Zone{Origin: zone, TTL: 30, Records: providertest.ZoneLines(seed)}})
			t.Setenv("CUTOVER_TEST_TSIG", b.Key.Secret)
			z, err := providers.Open(settings(b.Addr.String(), b.Key, "CUTOVER_TEST_TSIG"), providers.Env{Zone: zone})
			if err != nil {
				t.Fatal(err)
			}
			return z.Client()
		},
		Change: func(t *testing.T, name, typ string, addrs []netip.Addr) {
			replaceRRset(t, b.Addr, b.Key, name, typ, addrs)
		},
		Read: func(t *testing.T) []libdns.RR { return transferZone(t, b.Addr, b.Key) },
	})
}

// replaceRRset replaces name/typ (relative to zone) with addrs at server by a TSIG-signed
// update, behind the provider's back.
func replaceRRset(t *testing.T, server netip.AddrPort, key lab.TSIG, name, typ string, addrs []netip.Addr) {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate(zone)
	fq := name + "." + zone
	m.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: fq, Rrtype: dns.StringToType[typ], Class: dns.ClassINET}}})
	var ins []dns.RR
	for _, a := range addrs {
		rr, err := dns.NewRR(fmt.Sprintf("%s 30 IN %s %s", fq, typ, a))
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, rr)
	}
	m.Insert(ins)
	c := &dns.Client{Net: "tcp", TsigSecret: key.SecretMap()}
	r, _, err := c.Exchange(key.Sign(m), server.String())
	if err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("update behind the provider's back: %v %v", err, r)
	}
}

// transferZone reads the whole zone from server by a TSIG-signed AXFR.
func transferZone(t *testing.T, server netip.AddrPort, key lab.TSIG) []libdns.RR {
	t.Helper()
	tr := &dns.Transfer{TsigSecret: key.SecretMap()}
	m := new(dns.Msg)
	m.SetAxfr(zone)
	env, err := tr.In(key.Sign(m), server.String())
	if err != nil {
		t.Fatal(err)
	}
	var out []libdns.RR
	for e := range env {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		for _, rr := range e.RR {
			h := rr.Header()
			r := libdns.RR{Name: libdns.RelativeName(h.Name, zone), TTL: time.Duration(h.Ttl) * time.Second, Type: dns.TypeToString[h.Rrtype]}
			switch v := rr.(type) {
			case *dns.A:
				r.Data = v.A.String()
			case *dns.AAAA:
				r.Data = v.AAAA.String()
			case *dns.TXT:
				r.Data = strings.Join(v.Txt, "")
			default:
				r.Data = strings.TrimPrefix(rr.String(), h.String())
			}
			out = append(out, r)
		}
	}
	return out
}

func TestCheck(t *testing.T) {
	tests := []struct {
		desc string
		kv   map[string]any
		want []string
	}{
		{
			desc: "good, default algorithm",
			kv:   map[string]any{"server": "127.0.0.1:53", "key_name": "k.", "key": "file:/etc/cutover/tsig"},
		},
		{
			desc: "everything wrong at once",
			kv:   map[string]any{"server": "ns1.example.org:53", "key_alg": "hmac-md4", "key": "c2VjcmV0", "port": 53},
			want: []string{
				`providers.dns.server: "ns1.example.org:53": want an IP address and port such as "192.0.2.53:53"`,
				"providers.dns.key_name: required",
				`providers.dns.key_alg: "hmac-md4": want one of hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512`,
				"providers.dns.key: " + config.ErrInlineSecret.Error(),
				`providers.dns.port: unknown key for provider type "rfc2136"`,
			},
		},
		{
			desc: "nothing set",
			kv:   map[string]any{},
			want: []string{
				"providers.dns.server: required",
				"providers.dns.key_name: required",
				`providers.dns.key: required: a secret reference such as "env:NAME" or "file:PATH"`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var got []string
			for _, p := range providers.Check(config.NewProviderSettings("dns", "rfc2136", tc.kv)) {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			providertest.Secrets(t, "c2VjcmV0", got...)
		})
	}
}

// TestErrorsHideTheKey drives the error paths (bad key file, wrong key, no
// server) and asserts the TSIG secret never shows.
func TestErrorsHideTheKey(t *testing.T) {
	key := lab.NewTSIG("cutover-lab")
	wrong := lab.NewTSIG("cutover-lab")
	dir := t.TempDir()
	notB64 := filepath.Join(dir, "bad")
	if err := os.WriteFile(notB64, []byte("this is not base64!!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CUTOVER_TEST_WRONG", wrong.Secret)
	t.Setenv("CUTOVER_TEST_KEY", key.Secret)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	_, err := providers.Open(config.NewProviderSettings("dns", "rfc2136", map[string]any{
		"server": "127.0.0.1:1", "key_name": "k.", "key": "file:" + notB64,
	}), providers.Env{Zone: zone})
	if want := "rfc2136: key from file:" + notB64 + " is not base64"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}

	var texts []string
	// Nothing listens on 127.0.0.1:1.
	// A refused connection is transient: the registry tries again (here
	// without waiting) and says how often it tried.
	var waits int
	retry := &providers.Retry{Attempts: 2, Sleep: func(context.Context, time.Duration) error { waits++; return nil }}
	z, err := providers.Open(settings("127.0.0.1:1", key, "CUTOVER_TEST_KEY"), providers.Env{Zone: zone, Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	_, err = z.Snapshot(ctx, []string{"mail." + zone})
	if waits != 1 {
		t.Errorf("waited %d times before retrying, want 1", waits)
	}
	if want := "providers: snapshot: get records: rfc2136: get records: dial: dial tcp 127.0.0.1:1: connect: connection refused (after 2 attempts)"; err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	texts = append(texts, err.Error(), fmt.Sprintf("%+v %#v", z, z))

	providertest.Secrets(t, key.Secret, texts...)

	// A real BIND with another key: signed answers fail authentication.
	{
		n := lab.NewNet(t)
		b := lab.NewBIND(t, lab.BINDOptions{Addr: n.IP(31), Key: key, Zone: lab.Zone{Origin: zone, Records: []string{"mail 30 IN A 192.0.2.1"}}})
		z, err := providers.Open(settings(b.Addr.String(), key, "CUTOVER_TEST_WRONG"), providers.Env{Zone: zone})
		if err != nil {
			t.Fatal(err)
		}
		_, err = z.Snapshot(ctx, []string{"mail." + zone})
		if want := "providers: snapshot: get records: rfc2136: get records: zone transfer: dns: bad authentication"; err == nil || err.Error() != want {
			t.Errorf("got %v\nwant %s", err, want)
		}
		texts = append(texts, fmt.Sprint(err))
		snap := &dnsrec.Snapshot{Zone: zone, Names: []dnsrec.Name{{Name: "mail." + zone}}}
		err = providers.NewZone(z.Client(), zone, rfc2136.Spec.Capabilities).Swap(ctx, snap, providers.Target{A: netip.MustParseAddr("192.0.2.2")}, 5*time.Second)
		texts = append(texts, fmt.Sprint(err))
		if err == nil {
			t.Error("swap with the wrong key succeeded")
		}
		if lb, rerr := os.ReadFile(b.LogPath()); rerr == nil {
			texts = append(texts, string(lb))
		}
	}
	providertest.Secrets(t, key.Secret, texts...)
	providertest.Secrets(t, wrong.Secret, texts...)
}

// A cancelled call returns at once with the context's cause (for cutover,
// "interrupted"), not after the library's I/O timeout: the server here
// accepts the connection and never answers.
func TestCancelDuringCall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Setenv("CUTOVER_TEST_TSIG", "c2VjcmV0c2VjcmV0")
	z, err := providers.Open(settings(ln.Addr().String(), lab.TSIG{Name: "cutover.", Algorithm: "hmac-sha256."}, "CUTOVER_TEST_TSIG"), providers.Env{Zone: zone})
	if err != nil {
		t.Fatal(err)
	}
	interrupted := errors.New("interrupted")
	for _, tc := range []struct {
		desc string
		call func(ctx context.Context) error
		want string
	}{
		{desc: "set records", want: "rfc2136: set records: interrupted", call: func(ctx context.Context) error {
			_, err := z.Client().SetRecords(ctx, zone, []libdns.Record{libdns.Address{Name: "mail", TTL: time.Minute, IP: netip.MustParseAddr("192.0.2.2")}})
			return err
		}},
		{desc: "get records (zone transfer)", want: "rfc2136: get records: interrupted", call: func(ctx context.Context) error {
			_, err := z.Client().GetRecords(ctx, zone)
			return err
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			errc := make(chan error, 1)
			go func() { errc <- tc.call(ctx) }()
			c := <-accepted
			defer c.Close()
			if _, err := io.ReadFull(c, make([]byte, 2)); err != nil { // the query came: the call waits for the answer
				t.Fatal(err)
			}
			cancel(interrupted)
			err := <-errc
			if got := fmt.Sprint(err); got != tc.want || !errors.Is(err, interrupted) {
				t.Fatalf("error %q (wraps the cause: %v), want %q", got, errors.Is(err, interrupted), tc.want)
			}
		})
	}
}
