package providers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/providers"
)

// answer is one scripted HTTP answer of the scripted server.
type answer struct {
	status     int
	retryAfter string
}

// scripted is an HTTP server that gives its answers in order, then 200 "ok",
// and notes every request (method and body).
type scripted struct {
	mu      sync.Mutex
	answers []answer
	seen    []string
}

func newScripted(t *testing.T, answers ...answer) (*scripted, *httptest.Server) {
	s := &scripted{answers: answers}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, strings.TrimSpace(r.Method+" "+string(body)))
	a := answer{status: http.StatusOK}
	if len(s.answers) > 0 {
		a, s.answers = s.answers[0], s.answers[1:]
	}
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(a.status)
	fmt.Fprintf(w, "answer %d to request %d", a.status, len(s.seen))
}

func (s *scripted) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// oneShot is a body that cannot be replayed: http.NewRequest sets no GetBody for it.
type oneShot struct{ io.Reader }

var now = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

// newTransport returns a RetryTransport over base with the defaults, a
// fixed clock and a Sleep that notes its waits instead of waiting.
func newTransport(base http.RoundTripper, waits *[]time.Duration) *providers.RetryTransport {
	rt := providers.NewRetryTransport(base)
	rt.Now = func() time.Time { return now }
	rt.Sleep = func(_ context.Context, d time.Duration) error { *waits = append(*waits, d); return nil }
	return rt
}

func TestRetryTransport(t *testing.T) {
	const path = "/zones/example.org/records"
	tests := []struct {
		desc       string
		method     string
		body       string
		oneShot    bool // the body cannot be replayed
		answers    []answer
		wantStatus int
		wantBody   string // of the answer returned
		wantRA     string // its Retry-After
		wantWaits  []time.Duration
		wantSeen   []string
	}{
		{
			desc: "429 with Retry-After in seconds, then 200", method: "GET",
			answers:    []answer{{429, "7"}},
			wantStatus: 200, wantBody: "answer 200 to request 2",
			wantWaits: []time.Duration{7 * time.Second}, wantSeen: []string{"GET", "GET"},
		},
		{
			desc: "429 with Retry-After as an HTTP date", method: "GET",
			answers:    []answer{{429, now.Add(30 * time.Second).Format(http.TimeFormat)}},
			wantStatus: 200, wantBody: "answer 200 to request 2",
			wantWaits: []time.Duration{30 * time.Second}, wantSeen: []string{"GET", "GET"},
		},
		{
			desc: "a date in the past: no wait", method: "GET",
			answers:    []answer{{429, now.Add(-time.Hour).Format(http.TimeFormat)}},
			wantStatus: 200, wantBody: "answer 200 to request 2",
			wantWaits: []time.Duration{0}, wantSeen: []string{"GET", "GET"},
		},
		{
			desc: "Retry-After capped at a minute", method: "GET",
			answers:    []answer{{429, "3600"}},
			wantStatus: 200, wantBody: "answer 200 to request 2",
			wantWaits: []time.Duration{time.Minute}, wantSeen: []string{"GET", "GET"},
		},
		{
			desc: "unreadable Retry-After: backoff", method: "GET",
			answers:    []answer{{429, "soon"}},
			wantStatus: 200, wantBody: "answer 200 to request 2",
			wantWaits: []time.Duration{time.Second}, wantSeen: []string{"GET", "GET"},
		},
		{
			desc: "503 then 200, backoff doubling", method: "GET",
			answers:    []answer{{503, ""}, {503, ""}},
			wantStatus: 200, wantBody: "answer 200 to request 3",
			wantWaits: []time.Duration{time.Second, 2 * time.Second}, wantSeen: []string{"GET", "GET", "GET"},
		},
		{
			desc: "gives up after 4 attempts with the last 429 unchanged", method: "GET",
			answers:    []answer{{429, "1"}, {429, "2"}, {429, "3"}, {429, "4"}, {429, "5"}},
			wantStatus: 429, wantBody: "answer 429 to request 4", wantRA: "4",
			wantWaits: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, wantSeen: []string{"GET", "GET", "GET", "GET"},
		},
		{
			desc: "429 to a POST with a replayable body: sent again, same body", method: "POST", body: `{"content":"192.0.2.1"}`,
			answers:    []answer{{429, "0"}},
			wantStatus: 200, wantBody: "answer 200 to request 2",
			wantWaits: []time.Duration{0}, wantSeen: []string{`POST {"content":"192.0.2.1"}`, `POST {"content":"192.0.2.1"}`},
		},
		{
			desc: "429 to a body that cannot be replayed: not sent again", method: "POST", body: `{"content":"192.0.2.1"}`, oneShot: true,
			answers:    []answer{{429, "0"}},
			wantStatus: 429, wantBody: "answer 429 to request 1", wantRA: "0",
			wantSeen: []string{`POST {"content":"192.0.2.1"}`},
		},
		{
			desc: "502 to a GET: sent again", method: "GET",
			answers:    []answer{{502, ""}},
			wantStatus: 200, wantBody: "answer 200 to request 2",
			wantWaits: []time.Duration{time.Second}, wantSeen: []string{"GET", "GET"},
		},
		{
			desc: "500 to a DELETE: sent again", method: "DELETE",
			answers:    []answer{{500, ""}},
			wantStatus: 200, wantBody: "answer 200 to request 2",
			wantWaits: []time.Duration{time.Second}, wantSeen: []string{"DELETE", "DELETE"},
		},
		{
			desc: "502 to a POST: it may have created the record, not sent again", method: "POST", body: `{"content":"192.0.2.1"}`,
			answers:    []answer{{502, ""}},
			wantStatus: 502, wantBody: "answer 502 to request 1",
			wantSeen: []string{`POST {"content":"192.0.2.1"}`},
		},
		{
			desc: "503 to a PATCH: not done, sent again", method: "PATCH", body: `{"ttl":60}`,
			answers:    []answer{{503, "2"}},
			wantStatus: 200, wantBody: "answer 200 to request 2",
			wantWaits: []time.Duration{2 * time.Second}, wantSeen: []string{`PATCH {"ttl":60}`, `PATCH {"ttl":60}`},
		},
		{
			desc: "501 is not transient", method: "GET",
			answers:    []answer{{501, ""}},
			wantStatus: 501, wantBody: "answer 501 to request 1",
			wantSeen: []string{"GET"},
		},
		{
			desc: "403 is not retried", method: "GET",
			answers:    []answer{{403, "5"}},
			wantStatus: 403, wantBody: "answer 403 to request 1", wantRA: "5",
			wantSeen: []string{"GET"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s, srv := newScripted(t, tc.answers...)
			var waits []time.Duration
			rt := newTransport(srv.Client().Transport, &waits)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
				if tc.oneShot {
					body = oneShot{body}
				}
			}
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+path, body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus || string(got) != tc.wantBody || resp.Header.Get("Retry-After") != tc.wantRA {
				t.Errorf("got %d %q Retry-After %q, want %d %q Retry-After %q",
					resp.StatusCode, got, resp.Header.Get("Retry-After"), tc.wantStatus, tc.wantBody, tc.wantRA)
			}
			if !slices.Equal(waits, tc.wantWaits) {
				t.Errorf("waited %v, want %v", waits, tc.wantWaits)
			}
			if seen := s.requests(); !slices.Equal(seen, tc.wantSeen) {
				t.Errorf("server saw %q, want %q", seen, tc.wantSeen)
			}
		})
	}
}

// failing is a base transport whose first sends fail with errs, in order;
// later ones reach next.
type failing struct {
	errs []error
	next http.RoundTripper
	sent int
}

func (f *failing) RoundTrip(req *http.Request) (*http.Response, error) {
	f.sent++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return f.next.RoundTrip(req)
}

func TestRetryTransportNetworkFailures(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		desc      string
		method    string
		errs      []error
		wantErr   string
		wantSent  int
		wantWaits []time.Duration
	}{
		{desc: "refused dial of a POST: nothing was sent, sent again", method: "POST", errs: []error{refused},
			wantSent: 2, wantWaits: []time.Duration{time.Second}},
		{desc: "reset GET: sent again", method: "GET", errs: []error{reset, reset},
			wantSent: 3, wantWaits: []time.Duration{time.Second, 2 * time.Second}},
		{desc: "reset POST: it may have been done, not sent again", method: "POST", errs: []error{reset},
			wantSent: 1, wantErr: "read tcp: connection reset by peer"},
		{desc: "refused four times: the last error", method: "GET", errs: []error{refused, refused, refused, refused},
			wantSent: 4, wantWaits: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, wantErr: "dial tcp: connection refused"},
		{desc: "not a network failure", method: "GET", errs: []error{errors.New("test: tls: bad certificate")},
			wantSent: 1, wantErr: "test: tls: bad certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, srv := newScripted(t)
			var waits []time.Duration
			base := &failing{errs: slices.Clone(tc.errs), next: srv.Client().Transport}
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+"/records", strings.NewReader("x"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := newTransport(base, &waits).RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if got := fmt.Sprint(err); (tc.wantErr == "" && err != nil) || (tc.wantErr != "" && got != tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
			if base.sent != tc.wantSent || !slices.Equal(waits, tc.wantWaits) {
				t.Fatalf("sent %d times, waited %v; want %d, %v", base.sent, waits, tc.wantSent, tc.wantWaits)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestRetryTransportCancelled: a context that ends as the transport is
// about to wait out a Retry-After (30 s, with the real timer) ends the
// request at once, with the context's cause.
func TestRetryTransportCancelled(t *testing.T) {
	s, srv := newScripted(t, answer{429, "30"})
	stop := errors.New("test: stop")
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := srv.Client().Transport.RoundTrip(req)
		cancel(stop) // once the 429 is in: the transport is about to wait
		return resp, err
	})
	rt := providers.NewRetryTransport(base)
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/records", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.RoundTrip(req)
	const want = "providers: GET /records: HTTP 429, waiting 30s to retry: test: stop"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	if !errors.Is(err, stop) {
		t.Errorf("%v does not wrap the cause", err)
	}
	if seen := s.requests(); len(seen) != 1 {
		t.Errorf("server saw %q, want one request", seen)
	}
}

func TestNewRetryTransportNeverStacks(t *testing.T) {
	base := http.DefaultTransport
	rt := providers.NewRetryTransport(providers.NewRetryTransport(base))
	if rt.Base != base {
		t.Fatalf("base %T, want the transport under the first RetryTransport", rt.Base)
	}
}

// httpClient is a provider client whose GetRecords asks url through Go's
// default HTTP client, as most libraries do.
type httpClient struct {
	memory
	url string
}

func (c *httpClient) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("test: HTTP %d Too Many Requests", resp.StatusCode)
	}
	return c.memory.GetRecords(ctx, zone)
}

// httpURL is where the "test-http*" clients send.
var httpURL string

func init() {
	for _, typ := range []string{"test-http", "test-http-retries-itself", "test-http-rate-limits"} {
		s := fakeSpec(typ, new(int))
		s.RetriesItself = typ == "test-http-retries-itself"
		s.RetriesRateLimits = typ == "test-http-rate-limits"
		s.New = func(_ providers.Values, env providers.Env) (providers.Client, error) {
			return &httpClient{memory{zone: env.Zone}, httpURL}, nil
		}
		providers.Register(s)
	}
}

// TestInstalledRetryTransport: the installed transport retries what a
// library sends through Go's default client, unless the library retries by
// itself; the registry's retry on top multiplies at most by its attempts
// (DefaultRetry: 2).
func TestInstalledRetryTransport(t *testing.T) {
	tests := []struct {
		desc          string
		typ           string
		wantSent      int
		wantTransport int // waits of the transport
		wantRegistry  int // waits of the registry
		wantErr       string
	}{
		{desc: "plain: transport 4 times, registry twice", typ: "test-http", wantSent: 8, wantTransport: 6, wantRegistry: 1,
			wantErr: "providers: snapshot: get records: test-http: get records: test: HTTP 429 Too Many Requests (after 2 attempts)"},
		{desc: "library retries itself: sent once", typ: "test-http-retries-itself", wantSent: 1,
			wantErr: "providers: snapshot: get records: test-http-retries-itself: get records: test: HTTP 429 Too Many Requests"},
		{desc: "library waits out rate limits: once per registry attempt", typ: "test-http-rate-limits", wantSent: 2, wantRegistry: 1,
			wantErr: "providers: snapshot: get records: test-http-rate-limits: get records: test: HTTP 429 Too Many Requests (after 2 attempts)"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s, srv := newScripted(t, slices.Repeat([]answer{{429, "9"}}, 10)...)
			t.Setenv("CUTOVER_TEST_HTTP_TOKEN", "t0ken")
			httpURL = srv.URL + "/records"
			old := http.DefaultTransport
			http.DefaultTransport = srv.Client().Transport
			t.Cleanup(func() { http.DefaultTransport = old })
			rt := providers.InstallRetryTransport()
			if again := providers.InstallRetryTransport(); again != rt || http.DefaultTransport != rt {
				t.Fatal("a second install changed the transport")
			}
			var transportWaits []time.Duration
			rt.Sleep = func(_ context.Context, d time.Duration) error { transportWaits = append(transportWaits, d); return nil }
			registryWaits := 0
			retry := providers.DefaultRetry
			retry.Sleep = func(context.Context, time.Duration) error { registryWaits++; return nil }
			z, err := providers.Open(config.NewProviderSettings("dns", tc.typ, map[string]any{"token": "env:CUTOVER_TEST_HTTP_TOKEN", "endpoint": "x"}),
				providers.Env{Zone: "example.org.", Retry: &retry})
			if err != nil {
				t.Fatal(err)
			}
			_, err = z.Snapshot(t.Context(), []string{"mail.example.org."})
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("got  %v\nwant %s", err, tc.wantErr)
			}
			if n := len(s.requests()); n != tc.wantSent || len(transportWaits) != tc.wantTransport || registryWaits != tc.wantRegistry {
				t.Fatalf("sent %d, transport waited %v, registry %d times; want %d, %d, %d",
					n, transportWaits, registryWaits, tc.wantSent, tc.wantTransport, tc.wantRegistry)
			}
			for _, d := range transportWaits {
				if d != 9*time.Second {
					t.Fatalf("transport waited %v, want Retry-After's 9s each time", transportWaits)
				}
			}
		})
	}
}
