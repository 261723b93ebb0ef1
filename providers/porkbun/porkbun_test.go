package porkbun_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/porkbun"
	"github.com/cutover-dev/cutover/providers/providertest"
)

const (
	apiKey    = "pk1_4f1c2a7b9e0d3c6a5b8e7f9a0c1d2e3f"
	secretKey = "sk1_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
)

// fakePorkbun speaks the part of Porkbun's JSON API v3 the library uses:
// retrieve, create and deleteByNameType, credentials in every POST body.
type fakePorkbun struct {
	mu     sync.Mutex
	recs   []rec
	nextID int
	log    []string
	// limited is how many of the next requests are refused as Porkbun's
	// rate limit does (HTTP 429), with Retry-After: 7.
	limited int
}

type rec struct {
	ID      string `json:"id"`
	Name    string `json:"name"` // FQDN without the dot
	Type    string `json:"type"`
	Content string `json:"content"`
	TTL     string `json:"ttl"`
	Prio    string `json:"prio"`
	Notes   string `json:"notes"`
}

func (f *fakePorkbun) add(name, typ, content string, ttl int) {
	f.nextID++
	full := "example.org"
	if name != "" && name != "@" {
		full = name + ".example.org"
	}
	f.recs = append(f.recs, rec{ID: strconv.Itoa(250000000 + f.nextID), Name: full, Type: typ, Content: content, TTL: strconv.Itoa(ttl), Prio: "0"})
}

func (f *fakePorkbun) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/api/json/v3")
	f.log = append(f.log, path)
	var body struct {
		APIKey  string `json:"apikey"`
		Secret  string `json:"secretapikey"`
		Content string `json:"content"`
		Name    string `json:"name"`
		TTL     string `json:"ttl"`
		Type    string `json:"type"`
	}
	w.Header().Set("Content-Type", "application/json")
	if f.limited > 0 {
		f.limited--
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"status":"ERROR","message":"Rate limit exceeded."}`)
		return
	}
	if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"status":"ERROR","message":"Invalid request."}`)
		return
	}
	if body.APIKey != apiKey || body.Secret != secretKey {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"status":"ERROR","message":"Invalid API key. (002)"}`)
		return
	}
	switch {
	case path == "/dns/retrieve/example.org":
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "SUCCESS", "records": f.recs})
	case path == "/dns/create/example.org":
		ttl, err := strconv.Atoi(body.TTL)
		if err != nil || ttl < 600 {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"status":"ERROR","message":"TTL must be at least 600."}`)
			return
		}
		f.add(body.Name, body.Type, body.Content, ttl)
		fmt.Fprintf(w, `{"status":"SUCCESS","id":%d}`, 250000000+f.nextID)
	case strings.HasPrefix(path, "/dns/deleteByNameType/example.org/"):
		parts := strings.SplitN(strings.TrimPrefix(path, "/dns/deleteByNameType/example.org/"), "/", 2)
		full := "example.org"
		if len(parts) == 2 && parts[1] != "" {
			full = parts[1] + ".example.org"
		}
		f.recs = slices.DeleteFunc(f.recs, func(r rec) bool { return r.Name == full && r.Type == parts[0] })
		fmt.Fprint(w, `{"status":"SUCCESS"}`)
	default:
		w.WriteHeader(404)
		fmt.Fprint(w, `{"status":"ERROR","message":"Not found."}`)
	}
}

// newFake points the library (which uses http.DefaultTransport) at a fake.
func newFake(t *testing.T) *fakePorkbun {
	f := &fakePorkbun{}
	srv := httptest.NewServer(f)
	old := http.DefaultTransport
	http.DefaultTransport = providertest.Redirect("api.porkbun.com", srv)
	t.Cleanup(func() { http.DefaultTransport = old; srv.Close() })
	t.Setenv("CUTOVER_TEST_PK_KEY", apiKey)
	t.Setenv("CUTOVER_TEST_PK_SECRET", secretKey)
	return f
}

func open(t *testing.T, key string) *providers.Zone {
	z, err := providers.Open(config.NewProviderSettings("dns", "porkbun", map[string]any{
		"api_key": "env:" + key, "secret_api_key": "env:CUTOVER_TEST_PK_SECRET",
	}), providers.Env{Zone: "example.org."})
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestConformance(t *testing.T) {
	f := newFake(t)
	providertest.Run(t, providertest.Harness{
		Zone:   "example.org.",
		Caps:   porkbun.Spec.Capabilities,
		TTL:    3600 * time.Second,
		LowTTL: 600 * time.Second,
		Start: func(t *testing.T, seed []libdns.RR) providers.Client {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.add("", "NS", "curitiba.ns.porkbun.com", 86400)
			for _, r := range seed {
				f.add(r.Name, r.Type, r.Data, int(r.TTL.Seconds()))
			}
			return open(t, "CUTOVER_TEST_PK_KEY").Client()
		},
		Change: func(t *testing.T, name, typ string, addrs []netip.Addr) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.recs = slices.DeleteFunc(f.recs, func(r rec) bool { return r.Name == name+".example.org" && r.Type == typ })
			for _, a := range addrs {
				f.add(name, typ, a.String(), 3600)
			}
		},
		Read: func(t *testing.T) []libdns.RR { return f.rrs() },
	})
}

func TestErrorsHideTheKeys(t *testing.T) {
	newFake(t)
	t.Setenv("CUTOVER_TEST_PK_WRONG", "pk1_ffffffffffffffffffffffffffffffff")
	z := open(t, "CUTOVER_TEST_PK_WRONG")
	_, err := z.Snapshot(t.Context(), []string{"mail.example.org."})
	want := `providers: snapshot: get records: porkbun: get records: Invalid http response status, {"status":"ERROR","message":"Invalid API key. (002)"} for endpoint /dns/retrieve/example.org`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	providertest.Secrets(t, secretKey, err.Error(), fmt.Sprintf("%+v %#v", z, z))
	providertest.Secrets(t, apiKey, err.Error(), fmt.Sprintf("%+v %#v", z, z))
}

// TestRateLimitRetried: the library sends through Go's default client; the
// RetryTransport that cutover installs there waits out Porkbun's 429 as
// Retry-After says and sends the request again.
func TestRateLimitRetried(t *testing.T) {
	f := newFake(t)
	f.add("mail", "A", "192.0.2.1", 600)
	rt := providers.InstallRetryTransport()
	var waits []time.Duration
	rt.Sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	f.limited = 2
	snap, err := open(t, "CUTOVER_TEST_PK_KEY").Snapshot(t.Context(), []string{"mail.example.org."})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(snap.Names[0].A.Addrs); got != "[192.0.2.1]" {
		t.Fatalf("snapshot has %s, want [192.0.2.1]", got)
	}
	if want := []time.Duration{7 * time.Second, 7 * time.Second}; !slices.Equal(waits, want) {
		t.Fatalf("waited %v, want %v", waits, want)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if want := slices.Repeat([]string{"/dns/retrieve/example.org"}, 3); !slices.Equal(f.log, want) {
		t.Fatalf("requests %q, want %q", f.log, want)
	}
}

// rrs is the fake's zone (names relative).
func (f *fakePorkbun) rrs() []libdns.RR {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []libdns.RR
	for _, r := range f.recs {
		ttl, _ := strconv.Atoi(r.TTL)
		out = append(out, libdns.RR{Name: libdns.RelativeName(r.Name, "example.org"), Type: r.Type, TTL: time.Duration(ttl) * time.Second, Data: r.Content})
	}
	return out
}

// TestSelftest runs `cutover dns selftest` against the fake, its records
// served by providertest.Serve.
func TestSelftest(t *testing.T) {
	f := newFake(t)
	f.add("", "NS", "curitiba.ns.porkbun.com", 86400)
	providertest.Selftest(t, open(t, "CUTOVER_TEST_PK_KEY"), providertest.Serve(t, "example.org.", f.rrs), 10*time.Minute)
}
