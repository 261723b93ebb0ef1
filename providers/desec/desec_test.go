package desec_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/desec"
	"github.com/cutover-dev/cutover/providers/providertest"
)

const token = "desec-3f9a1c7e5b2d8f4a6c0e9b1d7a3f5c8e"

// fakeDesec speaks the part of the deSEC v1 API the library uses: list
// RRsets, get one RRset, bulk PUT (an empty records list deletes).
type fakeDesec struct {
	mu     sync.Mutex
	rrsets []rrset
	// throttled, when set, is deSEC's hourly rate limit: every request is
	// answered 429 with an hour's Retry-After, and counted.
	throttled bool
	limited   int
}

type rrset struct {
	Subname string   `json:"subname"`
	Type    string   `json:"type"`
	Records []string `json:"records"`
	TTL     int      `json:"ttl"`
}

func (f *fakeDesec) set(sub, typ string, ttl int, recs []string) {
	f.rrsets = slices.DeleteFunc(f.rrsets, func(r rrset) bool { return r.Subname == sub && r.Type == typ })
	if len(recs) > 0 {
		f.rrsets = append(f.rrsets, rrset{sub, typ, recs, ttl})
	}
}

func (f *fakeDesec) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.throttled {
		f.limited++
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(429)
		fmt.Fprint(w, `{"detail":"Request was throttled. Expected available in 3600 seconds."}`)
		return
	}
	if r.Header.Get("Authorization") != "Token "+token {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"detail":"Invalid token."}`)
		return
	}
	const base = "/api/v1/domains/example.org/rrsets/"
	switch {
	case r.URL.Path == base && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(f.rrsets)
	case r.URL.Path == base && r.Method == http.MethodPut:
		var in []rrset
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"detail":"JSON parse error"}`)
			return
		}
		for _, s := range in {
			if len(s.Records) > 0 && s.TTL < 3600 {
				w.WriteHeader(400)
				fmt.Fprint(w, `[{"ttl":["Ensure this value is greater than or equal to 3600."]}]`)
				return
			}
		}
		for _, s := range in {
			f.set(s.Subname, s.Type, s.TTL, s.Records)
		}
		_ = json.NewEncoder(w).Encode(in)
	case strings.HasPrefix(r.URL.Path, base) && r.Method == http.MethodGet:
		parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, base), "/"), "/")
		if len(parts) == 2 {
			sub := parts[0]
			if sub == "@" {
				sub = ""
			}
			for _, s := range f.rrsets {
				if s.Subname == sub && s.Type == parts[1] {
					_ = json.NewEncoder(w).Encode(s)
					return
				}
			}
		}
		w.WriteHeader(404)
		fmt.Fprint(w, `{"detail":"Not found."}`)
	default:
		w.WriteHeader(405)
		fmt.Fprint(w, `{"detail":"Method not allowed."}`)
	}
}

// newFake points the library (which uses http.DefaultClient) at a fake.
func newFake(t *testing.T) *fakeDesec {
	f := &fakeDesec{}
	srv := httptest.NewServer(f)
	old := http.DefaultClient.Transport
	http.DefaultClient.Transport = providertest.Redirect("desec.io", srv)
	t.Cleanup(func() { http.DefaultClient.Transport = old; srv.Close() })
	t.Setenv("CUTOVER_TEST_DESEC", token)
	return f
}

func open(t *testing.T, env string) *providers.Zone {
	z, err := providers.Open(config.NewProviderSettings("dns", "desec", map[string]any{"token": "env:" + env}), providers.Env{Zone: "example.org."})
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestConformance(t *testing.T) {
	f := newFake(t)
	providertest.Run(t, providertest.Harness{
		Zone:   "example.org.",
		Caps:   desec.Spec.Capabilities,
		TTL:    7200 * time.Second,
		LowTTL: 3600 * time.Second,
		Start: func(t *testing.T, seed []libdns.RR) providers.Client {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.set("", "NS", 3600, []string{"ns1.desec.io.", "ns2.desec.org."})
			for _, r := range seed {
				data := r.Data
				if r.Type == "TXT" {
					data = `"` + data + `"`
				}
				var cur []string
				for _, s := range f.rrsets {
					if s.Subname == r.Name && s.Type == r.Type {
						cur = s.Records
					}
				}
				f.set(r.Name, r.Type, int(r.TTL.Seconds()), append(slices.Clone(cur), data))
			}
			return open(t, "CUTOVER_TEST_DESEC").Client()
		},
		Change: func(t *testing.T, name, typ string, addrs []netip.Addr) {
			f.mu.Lock()
			defer f.mu.Unlock()
			var recs []string
			for _, a := range addrs {
				recs = append(recs, a.String())
			}
			f.set(name, typ, 7200, recs)
		},
		Read: func(t *testing.T) []libdns.RR { return f.rrs() },
	})
}

func TestErrorsHideTheToken(t *testing.T) {
	newFake(t)
	t.Setenv("CUTOVER_TEST_DESEC_WRONG", "desec-ffffffffffffffffffffffffffffffff")
	z := open(t, "CUTOVER_TEST_DESEC_WRONG")
	_, err := z.Snapshot(t.Context(), []string{"mail.example.org."})
	want := `providers: snapshot: get records: desec: get records: unexpected status code 401: {"detail":"Invalid token."}`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	providertest.Secrets(t, token, err.Error())
	providertest.Secrets(t, "desec-ffffffffffffffffffffffffffffffff", err.Error())
}

// TestRateLimitBounded: the library waits out deSEC's Retry-After however
// long, as often as deSEC answers 429; cutover ends each call after
// MaxCall, and the registry's retries try again a bounded number of times.
func TestRateLimitBounded(t *testing.T) {
	f := newFake(t)
	f.throttled = true
	defer func(d time.Duration) { desec.MaxCall = d }(desec.MaxCall)
	desec.MaxCall = time.Second
	s := config.NewProviderSettings("dns", "desec", map[string]any{"token": "env:CUTOVER_TEST_DESEC"})
	retry := providers.Retry{Attempts: 2, Backoff: time.Millisecond, Max: time.Millisecond}
	z, err := providers.Open(s, providers.Env{Zone: "example.org.", Retry: &retry})
	if err != nil {
		t.Fatal(err)
	}
	_, err = z.Snapshot(t.Context(), []string{"mail.example.org."})
	want := "providers: snapshot: get records: desec: get records: still rate limited (HTTP 429) after 1s: " +
		"waiting for cooldown to end: context deadline exceeded (after 2 attempts)"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.limited != 2 {
		t.Fatalf("deSEC answered 429 %d times, want 2 (one per attempt)", f.limited)
	}
}

// rrs is the fake's zone (names relative).
func (f *fakeDesec) rrs() []libdns.RR {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []libdns.RR
	for _, s := range f.rrsets {
		for _, d := range s.Records {
			name := s.Subname
			if name == "" {
				name = "@"
			}
			out = append(out, libdns.RR{Name: name, Type: s.Type, TTL: time.Duration(s.TTL) * time.Second, Data: strings.Trim(d, `"`)})
		}
	}
	return out
}

// TestSelftest runs `cutover dns selftest` against the fake, its records
// served by providertest.Serve.
func TestSelftest(t *testing.T) {
	f := newFake(t)
	f.set("", "NS", 3600, []string{"ns1.desec.io.", "ns2.desec.org."})
	providertest.Selftest(t, open(t, "CUTOVER_TEST_DESEC"), providertest.Serve(t, "example.org.", f.rrs), time.Hour)
}
