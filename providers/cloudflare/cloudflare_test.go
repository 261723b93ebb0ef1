package cloudflare_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	libcf "github.com/libdns/cloudflare"
	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/cloudflare"
	"github.com/cutover-dev/cutover/providers/providertest"
)

const (
	zone  = "example.org."
	token = "cf-T0KEN-5f1d0c7e9a8b4c3d2e1f0a9b8c7d6e5f"
)

// fastClient returns a client over hc's transport that retries as the
// factory's does, with shorter waits and 5 attempts.
func fastClient(hc *http.Client) *http.Client {
	rt := providers.NewRetryTransport(hc.Transport)
	rt.Attempts, rt.Backoff, rt.MaxWait = 5, time.Millisecond, 5*time.Second
	return &http.Client{Transport: rt}
}

// fill adds 150 unrelated records so that every listing is paginated.
func fill(f *fakeCF) {
	for i := range 150 {
		f.add(fmt.Sprintf("fill-%03d", i), "A", fmt.Sprintf("192.0.2.%d", 100+i%100), 3600)
	}
}

// TestConformance runs the suite on the fake, which fails every 7th request
// with a 500 or a 429 (Retry-After: 0) that the client must retry.
func TestConformance(t *testing.T) {
	f, hc := newFakeCF(t, token)
	f.add("@", "NS", "ns1.example.org", 86400)
	fill(f)
	f.every = 7
	providertest.Run(t, providertest.Harness{
		Zone:   zone,
		Caps:   cloudflare.Spec.Capabilities,
		TTL:    3600 * time.Second,
		LowTTL: 60 * time.Second,
		Start: func(t *testing.T, seed []libdns.RR) providers.Client {
			for _, r := range seed {
				content := r.Data
				if r.Type == "TXT" {
					content = `"` + content + `"`
				}
				f.add(r.Name, r.Type, content, int(r.TTL.Seconds()))
			}
			return cloudflare.NewClient(token, "", fastClient(hc))
		},
		Change: func(t *testing.T, name, typ string, addrs []netip.Addr) {
			f.mu.Lock()
			var ttl int
			f.recs = slices.DeleteFunc(f.recs, func(r *cfRec) bool {
				if r.Name == f.abs(name) && r.Type == typ {
					ttl = r.TTL
					return true
				}
				return false
			})
			for _, a := range addrs {
				f.addLocked(name, typ, a.String(), ttl)
			}
			f.mu.Unlock()
		},
		Read: func(t *testing.T) []libdns.RR { return f.rrs() },
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.ContainsFunc(f.log, func(s string) bool { return strings.Contains(s, "page=2") }) {
		t.Error("no listing asked for page 2: pagination untested")
	}
	var faults int
	for i := range f.requests {
		if (i+1)%f.every == 0 {
			faults++
		}
	}
	if faults < 10 {
		t.Errorf("only %d faults injected in %d requests", faults, f.requests)
	}
	for _, a := range f.auths {
		if a != "Bearer "+token {
			t.Fatalf("request with Authorization %q", a)
		}
	}
}

// TestLibrarySetRecordsBug shows why the work-around exists: the library's
// own SetRecords fails on a name with two A records, ours replaces the RRset.
func TestLibrarySetRecordsBug(t *testing.T) {
	f, hc := newFakeCF(t, token)
	f.add("mail", "A", "192.0.2.1", 3600)
	f.add("mail", "A", "192.0.2.11", 3600)
	rec := []libdns.Record{libdns.Address{Name: "mail", TTL: time.Minute, IP: netip.MustParseAddr("198.51.100.2")}}
	raw := &libcf.Provider{APIToken: token, HTTPClient: hc}
	_, err := raw.SetRecords(context.Background(), "example.org", rec)
	if err == nil || !strings.HasPrefix(err.Error(), "unexpectedly found more than 1 record for") {
		t.Fatalf("library SetRecords: got %v, want its 'more than 1 record' error (has upstream fixed issue #31?)", err)
	}
	if _, err := cloudflare.NewClient(token, "", fastClient(hc)).SetRecords(context.Background(), zone, rec); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range f.recs {
		got = append(got, fmt.Sprintf("%s %s %s %d", r.Name, r.Type, r.Content, r.TTL))
	}
	if want := []string{"mail.example.org A 198.51.100.2 60"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRetry(t *testing.T) {
	tests := []struct {
		desc     string
		faults   []fault
		timeout  time.Duration
		want     string        // error; "" = success
		requests int           // requests the fake saw
		minGap   time.Duration // the wait before the last request at least
		maxGap   time.Duration
	}{
		{desc: "500 then success", faults: []fault{{status: 500}}, requests: 3, maxGap: time.Second},
		{desc: "429 with Retry-After 1 is waited for", faults: []fault{{status: 429, retryAfter: "1"}}, requests: 3, minGap: time.Second, maxGap: 3 * time.Second},
		{
			desc: "429 with a Retry-After date",
			// HTTP dates have whole seconds: 2 s ahead is more than 1 s away.
			faults:   []fault{{status: 429, retryAfter: "date in 2s"}},
			requests: 3, minGap: 900 * time.Millisecond, maxGap: 3 * time.Second,
		},
		{
			desc:     "gives up after 5 attempts",
			faults:   []fault{{status: 502}, {status: 502}, {status: 502}, {status: 502}, {status: 502}},
			want:     "providers: snapshot: get records: cloudflare: get records: got error status: HTTP 502: [{Code:10502 Message:Internal Server Error ErrorChain:[]}]",
			requests: 5, maxGap: time.Second,
		},
		{
			desc:    "context ends during a long Retry-After",
			faults:  []fault{{status: 429, retryAfter: "30"}},
			timeout: 200 * time.Millisecond,
			want: `providers: snapshot: get records: cloudflare: get records: Get "https://api.cloudflare.com/client/v4/zones?name=example.org": ` +
				"providers: GET /client/v4/zones: HTTP 429, waiting 5s to retry: context deadline exceeded",
			requests: 1,
		},
		{
			desc:     "403 is not retried",
			faults:   []fault{{status: 403}},
			want:     "providers: snapshot: get records: cloudflare: get records: got error status: HTTP 403: [{Code:10403 Message:Internal Server Error ErrorChain:[]}]",
			requests: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			f, hc := newFakeCF(t, token)
			f.add("mail", "A", "192.0.2.1", 300)
			f.faults = slices.Clone(tc.faults)
			for i, flt := range f.faults {
				if flt.retryAfter == "date in 2s" {
					f.faults[i].retryAfter = time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
				}
			}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			z := providers.NewZone(cloudflare.NewClient(token, "", fastClient(hc)), zone, cloudflare.Spec.Capabilities)
			start := time.Now()
			snap, err := z.Snapshot(ctx, []string{"mail.example.org."})
			if tc.timeout > 0 && time.Since(start) > tc.timeout+time.Second {
				t.Errorf("took %s after the context ended", time.Since(start))
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if err == nil && (len(snap.Names) != 1 || fmt.Sprint(snap.Names[0].A.Addrs) != "[192.0.2.1]") {
				t.Fatalf("snapshot %+v", snap.Names)
			}
			if tc.want != "" && strings.Contains(tc.want, "deadline") && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v does not wrap context.DeadlineExceeded", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.requests != tc.requests {
				t.Fatalf("fake saw %d requests, want %d: %q", f.requests, tc.requests, f.log)
			}
			if n := len(tc.faults); tc.maxGap > 0 && n < len(f.at) {
				gap := f.at[n].Sub(f.at[n-1])
				if gap < tc.minGap || gap > tc.maxGap {
					t.Errorf("waited %s before retrying, want between %s and %s", gap, tc.minGap, tc.maxGap)
				}
			}
		})
	}
}

func TestPanicBecomesError(t *testing.T) {
	f, hc := newFakeCF(t, token)
	f.add("mail", "A", "192.0.2.1", 300)
	f.noInfo = true
	// The registry's guard (which Open applies) turns the library's panic
	// into an error.
	_, err := providers.Guard("cloudflare", cloudflare.NewClient(token, "", fastClient(hc))).GetRecords(context.Background(), zone)
	want := "cloudflare: get records: panic in the provider library: runtime error: invalid memory address or nil pointer dereference"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestAutoTTLReadsAs300s(t *testing.T) {
	f, hc := newFakeCF(t, token)
	f.add("mail", "A", "192.0.2.1", 1)
	z := providers.NewZone(cloudflare.NewClient(token, "", fastClient(hc)), zone, cloudflare.Spec.Capabilities)
	snap, err := z.Snapshot(context.Background(), []string{"mail.example.org."})
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Names[0].A.TTL; got != 300*time.Second {
		t.Fatalf("automatic TTL read as %s, want 5m0s", got)
	}
}

// TestProxied: a proxied record of a configured name stops cutover at the
// snapshot (and at any later read) before anything is written; a proxied
// record of another name keeps its flag through a swap.
func TestProxied(t *testing.T) {
	f, hc := newFakeCF(t, token)
	fill(f) // the proxied records sit on the second page of the listing
	f.add("mail", "A", "192.0.2.1", 300)
	f.add("mail", "AAAA", "2001:db8::1", 300)
	f.add("www", "A", "192.0.2.1", 300)
	f.proxy("www")
	z := providers.NewZone(cloudflare.NewClient(token, "", fastClient(hc)), zone, cloudflare.Spec.Capabilities)
	ctx := context.Background()
	snap, err := z.Snapshot(ctx, []string{"mail.example.org."})
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Swap(ctx, snap, providers.Target{A: netip.MustParseAddr("198.51.100.2")}, time.Minute); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	for _, b := range f.bodies {
		if strings.Contains(b, "proxied") {
			t.Errorf("a write sent the proxied flag: %s", b)
		}
	}
	for _, r := range f.recs {
		if r.Name == "www.example.org" && !r.Proxied {
			t.Error("www lost its proxied flag")
		}
	}
	writes := len(f.bodies)
	f.mu.Unlock()

	f.proxy("mail")
	const refusal = `cloudflare: proxied (orange cloud) records: mail.example.org. A: resolvers would answer with Cloudflare's addresses, ` +
		`never the new host's, and mail cannot pass Cloudflare's proxy anyway: set them to "DNS only" in the Cloudflare dashboard, then run cutover again`
	tests := []struct {
		desc string
		op   func() error
		want string
	}{
		{"snapshot", func() error { _, err := z.Snapshot(ctx, []string{"mail.example.org."}); return err },
			"providers: snapshot: get records: " + refusal},
		{"revert", func() error { return z.Revert(ctx, snap, providers.Target{A: netip.MustParseAddr("198.51.100.2")}) },
			"providers: revert: get records: " + refusal},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if err := tc.op(); err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) != writes {
		t.Fatalf("%d writes after the proxied name was found", len(f.bodies)-writes)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		desc string
		kv   map[string]any
		want []string
	}{
		{desc: "api token only", kv: map[string]any{"api_token": "env:CF_API_TOKEN"}},
		{desc: "both tokens", kv: map[string]any{"api_token": "env:CF_API_TOKEN", "zone_token": "file:/etc/cutover/cf-zone"}},
		{
			desc: "inline token, unknown key",
			kv:   map[string]any{"api_token": token, "email": "me@example.org"},
			want: []string{
				"providers.dns.api_token: " + config.ErrInlineSecret.Error(),
				`providers.dns.email: unknown key for provider type "cloudflare"`,
			},
		},
		{desc: "missing", kv: map[string]any{}, want: []string{`providers.dns.api_token: required: a secret reference such as "env:NAME" or "file:PATH"`}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var got []string
			for _, p := range providers.Check(config.NewProviderSettings("dns", "cloudflare", tc.kv)) {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			providertest.Secrets(t, token, got...)
		})
	}
}

// TestOpenAndSecrets goes through the factory (env secrets, zone token),
// then drives error paths: no text anywhere holds a token.
func TestOpenAndSecrets(t *testing.T) {
	const zoneToken = "cf-ZONE-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
	f, hc := newFakeCF(t, token)
	f.zoneToken = zoneToken
	f.add("mail", "A", "192.0.2.1", 300)
	defer cloudflare.SetTransport(hc.Transport)()
	t.Setenv("CUTOVER_TEST_CF", token)
	t.Setenv("CUTOVER_TEST_CF_ZONE", zoneToken)
	t.Setenv("CUTOVER_TEST_CF_WRONG", "cf-WRONG-ffffffffffffffffffffffffffffffff")
	ctx := context.Background()
	open := func(api string) *providers.Zone {
		z, err := providers.Open(config.NewProviderSettings("dns", "cloudflare", map[string]any{
			"api_token": "env:" + api, "zone_token": "env:CUTOVER_TEST_CF_ZONE",
		}), providers.Env{Zone: zone})
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	var texts []string
	z := open("CUTOVER_TEST_CF")
	snap, err := z.Snapshot(ctx, []string{"mail.example.org."})
	if err != nil {
		t.Fatal(err)
	}
	texts = append(texts, fmt.Sprintf("%+v %#v", z, snap))
	if f.auths[0] != "Bearer "+zoneToken || f.auths[1] != "Bearer "+token {
		t.Fatalf("zone lookup should use the zone token and the listing the API token")
	}

	tests := []struct {
		desc string
		run  func() error
		want string
	}{
		{
			desc: "wrong API token",
			run: func() error {
				return open("CUTOVER_TEST_CF_WRONG").Swap(ctx, snap, providers.Target{A: netip.MustParseAddr("198.51.100.2")}, time.Minute)
			},
			want: "providers: swap: get records: cloudflare: get records: got error status: HTTP 403: [{Code:10000 Message:Authentication error ErrorChain:[]}]",
		},
		{
			desc: "rate limited until the attempts run out",
			run: func() error {
				r := fault{status: 429, retryAfter: "0"}
				f.faults = []fault{r, r, r, r, r}
				return z.LowerTTL(ctx, snap, time.Minute)
			},
			want: "providers: lower-ttl: get records: cloudflare: get records: got error status: HTTP 429: [{Code:10429 Message:Rate limited. Please wait and consider throttling your request speed ErrorChain:[]}]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			err := tc.run()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
			texts = append(texts, err.Error(), fmt.Sprintf("%+v", err))
		})
	}
	providertest.Secrets(t, token, texts...)
	providertest.Secrets(t, zoneToken, texts...)
}

// rrs is the fake's zone (names relative).
func (f *fakeCF) rrs() []libdns.RR {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []libdns.RR
	for _, r := range f.recs {
		out = append(out, libdns.RR{Name: libdns.RelativeName(r.Name, "example.org"), Type: r.Type, TTL: time.Duration(r.TTL) * time.Second, Data: strings.Trim(r.Content, `"`)})
	}
	return out
}

// TestSelftest runs `cutover dns selftest` against the fake (whose every
// 7th request fails transiently), its records served by providertest.Serve.
func TestSelftest(t *testing.T) {
	f, hc := newFakeCF(t, token)
	f.add("@", "NS", "ns1.example.org", 86400)
	f.every = 7
	z := providers.NewZone(cloudflare.NewClient(token, "", fastClient(hc)), zone, cloudflare.Spec.Capabilities)
	providertest.Selftest(t, z, providertest.Serve(t, zone, f.rrs), time.Minute)
}
