package providers_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/providers"
)

// fakeSpec declares the keys a typical API provider has.
func fakeSpec(typ string, opened *int) providers.Spec {
	return providers.Spec{
		Type: typ,
		Settings: []providers.Setting{
			{Key: "token", Kind: providers.SecretRef, Required: true},
			{Key: "endpoint", Kind: providers.Text, Required: true},
			{Key: "mode", Kind: providers.Text, Check: func(v string) error {
				if v != "fast" {
					return errors.New(`must be "fast"`)
				}
				return nil
			}},
		},
		Capabilities: providers.Capabilities{MinTTL: time.Second, MinTTLReason: "test", RRsetSet: providers.Capability{OK: true, Reason: "test"},
			Atomic: providers.Capability{Reason: "test"}},
		New: func(v providers.Values, env providers.Env) (providers.Client, error) {
			if v.String("token") == "" {
				return nil, errors.New("test: no token")
			}
			*opened++
			return &memory{zone: env.Zone}, nil
		},
	}
}

// opened counts the clients the "test-api" factory built.
var opened int

// Registered once per test binary, so that -count=N works.
func init() {
	providers.Register(fakeSpec("test-dup", new(int)))
	providers.Register(fakeSpec("test-api", &opened))
	panics := fakeSpec("test-panics", new(int))
	panics.New = func(providers.Values, providers.Env) (providers.Client, error) { panic("API token missing") }
	providers.Register(panics)
	calls := fakeSpec("test-panicky", new(int))
	calls.New = func(_ providers.Values, env providers.Env) (providers.Client, error) {
		return &panicky{memory{zone: env.Zone}}, nil
	}
	providers.Register(calls)
}

func TestRegisterDuplicatePanics(t *testing.T) {
	var n int
	defer func() {
		r := recover()
		if r != `providers: Register called twice for type "test-dup"` {
			t.Fatalf("recovered %v", r)
		}
	}()
	providers.Register(fakeSpec("test-dup", &n))
	t.Fatal("no panic")
}

func TestLookupUnknown(t *testing.T) {
	_, _, err := providers.Lookup("nope")
	want := `providers: unknown type "nope" (valid: ` + strings.Join(providers.Types(), ", ") + ")"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if !errors.Is(err, providers.ErrUnknownType) {
		t.Fatal("not ErrUnknownType")
	}
	if !slices.IsSorted(providers.Types()) {
		t.Fatal("Types not sorted")
	}
}

func TestCheckAndOpen(t *testing.T) {
	opened = 0
	t.Setenv("CUTOVER_TEST_TOKEN", "s3cr3t-t0ken")
	tests := []struct {
		desc string
		typ  string
		kv   map[string]any
		want []string
	}{
		{desc: "good", typ: "test-api", kv: map[string]any{"token": "env:CUTOVER_TEST_TOKEN", "endpoint": "x"}},
		{
			desc: "every problem at once",
			typ:  "test-api",
			kv:   map[string]any{"token": "s3cr3t-t0ken", "mode": "slow", "colour": "red"},
			want: []string{
				"providers.dns.token: " + config.ErrInlineSecret.Error(),
				"providers.dns.endpoint: required",
				`providers.dns.mode: must be "fast"`,
				`providers.dns.colour: unknown key for provider type "test-api"`,
			},
		},
		{
			desc: "unknown type",
			typ:  "nope",
			want: []string{`providers.dns.type: unknown type "nope" (valid: ` + strings.Join(providers.Types(), ", ") + ")"},
		},
		{
			desc: "unset env var is not resolved by Check",
			typ:  "test-api",
			kv:   map[string]any{"token": "env:CUTOVER_TEST_UNSET", "endpoint": "x"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var got []string
			for _, p := range providers.Check(config.NewProviderSettings("dns", tc.typ, tc.kv)) {
				got = append(got, p.String())
				if strings.Contains(p.String(), "s3cr3t-t0ken") {
					t.Errorf("problem shows the secret: %s", p)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
	if opened != 0 {
		t.Fatalf("Check built %d clients", opened)
	}

	z, err := providers.Open(config.NewProviderSettings("dns", "test-api", map[string]any{"token": "env:CUTOVER_TEST_TOKEN", "endpoint": "x"}), providers.Env{Zone: "example.org."})
	if err != nil {
		t.Fatal(err)
	}
	if opened != 1 || z.Name() != "example.org." {
		t.Fatalf("opened %d, zone %q", opened, z.Name())
	}
	if _, err := z.Snapshot(context.Background(), []string{"mail.example.org."}); err != nil {
		t.Fatal(err)
	}
	_, err = providers.Open(config.NewProviderSettings("dns", "test-api", map[string]any{"token": "env:CUTOVER_TEST_UNSET", "endpoint": "x"}), providers.Env{Zone: "example.org."})
	if want := `config: secret: environment variable "CUTOVER_TEST_UNSET" is not set`; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	_, err = providers.Open(config.NewProviderSettings("dns", "test-api", nil), providers.Env{})
	if want := "providers: open: no zone given"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

var _ libdns.RecordGetter = (*memory)(nil)

type panicky struct{ memory }

func (p *panicky) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	var m map[string]int
	m["boom"]++ // a nil map write, as a buggy library might do
	return nil, nil
}

func TestGuard(t *testing.T) {
	ctx := context.Background()
	g := providers.Guard("test", &panicky{memory{zone: "example.org."}})
	tests := []struct {
		desc string
		run  func() error
		want string
	}{
		{
			desc: "panic becomes an error",
			run: func() error {
				_, err := g.SetRecords(ctx, "example.org.", nil)
				return err
			},
			want: "test: set records: panic in the provider library: assignment to entry in nil map",
		},
		{
			desc: "errors get the type and the call",
			run: func() error {
				_, err := g.GetRecords(ctx, "example.net.")
				return err
			},
			want: "test: get records: memory: wrong zone example.net.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if err := tc.run(); err == nil || err.Error() != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
	if _, err := g.DeleteRecords(ctx, "example.org.", nil); err != nil {
		t.Fatal(err)
	}
}

// TestGuardRedacts: a library that puts a key into a URL (namecheap does)
// gets it quoted by net/http errors; the guard cuts every secret out.
func TestGuardRedacts(t *testing.T) {
	const key = "nc-0123456789abcdef"
	leaky := &memory{zone: "example.org.", fail: &url.Error{Op: "Get", URL: "https://api.example/xml.response?ApiKey=" + key + "&Command=x",
		Err: context.DeadlineExceeded}}
	_, err := providers.Guard("namecheap", leaky, key, "ab").GetRecords(context.Background(), "example.org.")
	want := `namecheap: get records: Get "https://api.example/xml.response?ApiKey=[secret]&Command=x": context deadline exceeded`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the redacted error no longer wraps its cause")
	}
}

// TestGuardInterrupted: a library call that fails because its context ended
// (a dial cancelled on the way, as miekg/dns returns it) reports the
// context's cause, never the library's "operation was canceled", however the
// call and the cancellation race.
func TestGuardInterrupted(t *testing.T) {
	interrupted := errors.New("interrupted")
	for range 1000 {
		ctx, cancel := context.WithCancelCause(context.Background())
		dialing := cancelling{cancel: func() { cancel(interrupted) }}
		_, err := providers.Guard("rfc2136", dialing).GetRecords(ctx, "example.org.")
		if want := "rfc2136: get records: interrupted"; err == nil || err.Error() != want || !errors.Is(err, interrupted) {
			t.Fatalf("got %v, want %s", err, want)
		}
	}
}

// cancelling is a library whose every call is interrupted while it dials.
type cancelling struct {
	providers.Client
	cancel func()
}

func (c cancelling) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	c.cancel()
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
}

// TestOpenRecoversFactoryPanic: a library that panics while its client is
// built (hetzner does without a token) makes Open fail, not crash.
func TestOpenRecoversFactoryPanic(t *testing.T) {
	t.Setenv("CUTOVER_TEST_TOKEN", "s3cr3t-t0ken")
	_, err := providers.Open(config.NewProviderSettings("dns", "test-panics", map[string]any{"token": "env:CUTOVER_TEST_TOKEN", "endpoint": "x"}),
		providers.Env{Zone: "example.org."})
	if want := "test-panics: open: panic in the provider library: API token missing"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// TestOpenGuardsCalls: Open puts every provider's client behind the guard,
// so a library that panics in a call fails the operation, not cutover.
func TestOpenGuardsCalls(t *testing.T) {
	t.Setenv("CUTOVER_TEST_TOKEN", "s3cr3t-t0ken")
	z, err := providers.Open(config.NewProviderSettings("dns", "test-panicky", map[string]any{"token": "env:CUTOVER_TEST_TOKEN", "endpoint": "x"}),
		providers.Env{Zone: "example.org."})
	if err != nil {
		t.Fatal(err)
	}
	snap := &dnsrec.Snapshot{Zone: "example.org.", Names: []dnsrec.Name{{Name: "mail.example.org."}}}
	err = z.Swap(context.Background(), snap, providers.Target{A: netip.MustParseAddr("192.0.2.2")}, time.Minute)
	if want := "providers: swap: set records: test-panicky: set records: panic in the provider library: assignment to entry in nil map"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}
