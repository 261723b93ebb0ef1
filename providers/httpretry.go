package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RetryTransport is an http.RoundTripper that repeats a request the server
// turned away or that failed on the network, honouring Retry-After. It is
// the one HTTP retry of cutover: cloudflare's client sends through one, and
// the program installs one as http.DefaultTransport (InstallRetryTransport)
// for the libraries that give no way to pass a client.
//
// What it repeats, only when the request's body can be replayed (no body,
// or GetBody set):
//   - 429 Too Many Requests and 503 Service Unavailable, for every method:
//     the server says it did not do the work;
//   - other 5xx (but 501) and network failures after the request may have
//     been sent, only for idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT,
//     DELETE): a POST answered 502 may have created a record, and sending it
//     again could create a second one; the registry's retry (Retry) repeats
//     the whole operation instead, which re-reads the zone and converges;
//   - a failed dial, for every method: nothing was sent.
//
// It waits Retry-After (seconds or an HTTP date) or else Backoff, 2*Backoff,
// 4*Backoff, ..., each wait capped at MaxWait, and makes at most Attempts
// attempts: a request takes at most Attempts sends and (Attempts-1)*MaxWait
// of waiting. When it gives up it returns the last answer unchanged (its
// body unread) or the last error. A request whose context ends while it
// waits returns at once with the context's cause.
type RetryTransport struct {
	Base     http.RoundTripper // sends each attempt; nil: Go's default transport as it was at start-up
	Attempts int               // in all, counting the first; below 2 means no retry
	Backoff  time.Duration     // wait before the second attempt without Retry-After, doubled after each
	MaxWait  time.Duration     // longest wait, Retry-After included
	// Sleep waits d or until ctx ends (returning its cause). Nil: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time // for Retry-After dates; nil: time.Now

	// shared marks the process-wide transport: it sends the requests of a
	// library that retries by itself once (see sendOnce).
	shared bool
}

// Defaults of NewRetryTransport: at most 4 sends, 3 waits of at most a minute.
const (
	HTTPAttempts = 4
	HTTPBackoff  = time.Second
	HTTPMaxWait  = time.Minute
)

// startDefault is http.DefaultTransport as it was when this package was
// initialized, before a program could replace it.
var startDefault = http.DefaultTransport

// NewRetryTransport returns a RetryTransport over base with the defaults
// (HTTPAttempts, HTTPBackoff, HTTPMaxWait). A base that is itself a
// RetryTransport is unwrapped: retries are never stacked.
func NewRetryTransport(base http.RoundTripper) *RetryTransport {
	if rt, ok := base.(*RetryTransport); ok {
		base = rt.Base
	}
	return &RetryTransport{Base: base, Attempts: HTTPAttempts, Backoff: HTTPBackoff, MaxWait: HTTPMaxWait}
}

var installed struct {
	sync.Mutex
	rt *RetryTransport
}

// InstallRetryTransport makes http.DefaultTransport a RetryTransport over
// the transport it was, and returns it; a second call returns the first's.
// Only a program's start-up calls it (package providers never does on its
// own): it changes every default HTTP client of the process.
func InstallRetryTransport() *RetryTransport {
	installed.Lock()
	defer installed.Unlock()
	if installed.rt == nil || http.DefaultTransport != installed.rt {
		installed.rt = NewRetryTransport(http.DefaultTransport)
		installed.rt.shared = true
		http.DefaultTransport = installed.rt
	}
	return installed.rt
}

type sendOnceKey struct{}

// sendOnce marks ctx: the installed RetryTransport sends its requests once,
// because the library making them retries by itself (Spec.RetriesItself,
// Spec.RetriesRateLimits), and the two would multiply.
func sendOnce(ctx context.Context) context.Context {
	return context.WithValue(ctx, sendOnceKey{}, true)
}

// RoundTrip sends req, repeating it as described on RetryTransport.
func (t *RetryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	base := t.Base
	if base == nil {
		base = startDefault
	}
	attempts := t.Attempts
	if t.shared && ctx.Value(sendOnceKey{}) != nil {
		attempts = 1
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for attempt := 1; ; attempt++ {
		try := req
		if attempt > 1 {
			try = req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, fmt.Errorf("providers: retry %s %s: %w", req.Method, req.URL.Path, err)
				}
				try.Body = body
			}
		}
		resp, err := base.RoundTrip(try)
		if attempt >= attempts || !replayable || (err != nil && ctx.Err() != nil) || !repeatable(req.Method, resp, err) {
			return resp, err
		}
		wait := t.backoff(attempt)
		reason := fmt.Sprint(err)
		if resp != nil {
			reason = "HTTP " + strconv.Itoa(resp.StatusCode)
			if d, ok := t.retryAfter(resp.Header.Get("Retry-After")); ok {
				wait = d
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		if t.MaxWait > 0 {
			wait = min(wait, t.MaxWait)
		}
		sleep := t.Sleep
		if sleep == nil {
			sleep = sleepCtx
		}
		serr := context.Cause(ctx) // ended: no wait, whatever Sleep does
		if serr == nil {
			serr = sleep(ctx, wait)
		}
		if serr != nil {
			return nil, fmt.Errorf("providers: %s %s: %s, waiting %s to retry: %w", req.Method, req.URL.Path, reason, wait, serr)
		}
	}
}

// repeatable reports whether an answer (or error) of a request with
// method is worth another send (see RetryTransport).
func repeatable(method string, resp *http.Response, err error) bool {
	idempotent := false
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		idempotent = true
	}
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return true
		}
		return idempotent && Transient(err)
	}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return true
	default:
		return idempotent && code >= 500 && code != http.StatusNotImplemented
	}
}

func (t *RetryTransport) backoff(attempt int) time.Duration {
	return t.Backoff << (attempt - 1)
}

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func (t *RetryTransport) retryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(min(secs, 1<<31)) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	return max(at.Sub(now()), 0), true
}

var _ http.RoundTripper = (*RetryTransport)(nil)
