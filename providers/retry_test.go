package providers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/providers"
)

func TestTransient(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		desc string
		err  error
		want bool
	}{
		{"refused connection, through url.Error", &url.Error{Op: "Get", URL: "https://api.example/x", Err: refused}, true},
		{"reset connection", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"reply cut short", fmt.Errorf("decode: %w", io.ErrUnexpectedEOF), true},
		{"refused connection, flattened with %v", fmt.Errorf("sending request: %v", &url.Error{Op: "Get", URL: "https://api.example/x", Err: refused}), true},
		{"reply cut short, flattened with %v", fmt.Errorf("reading response body: %v", io.ErrUnexpectedEOF), true},
		{"cancelled dial, flattened with %v", fmt.Errorf("sending request: %v", &url.Error{Op: "Get", URL: "https://api.example/x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled}}), false},
		{"HTTP 429 in a library's words", errors.New("got error status: HTTP 429: rate limited"), true},
		{"too many requests", errors.New("unexpected status: 429 Too Many Requests"), true},
		{"authentication", errors.New(`unexpected status code 401: {"detail":"Invalid token."}`), false},
		{"a number that merely contains 429", errors.New("record 14290 not found"), false},
		{"context cancelled, even from a dial", &net.OpError{Op: "dial", Err: context.Canceled}, false},
		{"deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := providers.Transient(tc.err); got != tc.want {
				t.Fatalf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// flaky fails its first calls with err, then works.
type flaky struct {
	memory
	fails int
	err   error
	calls int
}

func (f *flaky) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	f.calls++
	if f.calls <= f.fails {
		return nil, f.err
	}
	return f.memory.GetRecords(ctx, zone)
}

func TestWithRetry(t *testing.T) {
	transient := errors.New("HTTP 429 Too Many Requests")
	tests := []struct {
		desc      string
		fails     int
		err       error
		sleepErr  error
		wantCalls int
		wantWaits []time.Duration
		wantErr   string
	}{
		{desc: "works at once", wantCalls: 1},
		{desc: "works on the third try, waits doubling", fails: 2, err: transient, wantCalls: 3,
			wantWaits: []time.Duration{2 * time.Second, 4 * time.Second}},
		{desc: "gives up after the last attempt, waits capped", fails: 9, err: transient, wantCalls: 4,
			wantWaits: []time.Duration{2 * time.Second, 4 * time.Second, 5 * time.Second},
			wantErr:   "HTTP 429 Too Many Requests (after 4 attempts)"},
		{desc: "not transient: no retry", fails: 9, err: errors.New("401 unauthorized"), wantCalls: 1,
			wantErr: "401 unauthorized"},
		{desc: "interrupted while waiting", fails: 9, err: transient, sleepErr: context.Canceled, wantCalls: 1,
			wantWaits: []time.Duration{2 * time.Second},
			wantErr:   "HTTP 429 Too Many Requests (waiting to retry: context canceled)"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f := &flaky{memory: memory{zone: "example.org."}, fails: tc.fails, err: tc.err}
			var waits []time.Duration
			r := providers.Retry{Attempts: 4, Backoff: 2 * time.Second, Max: 5 * time.Second,
				Sleep: func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return tc.sleepErr }}
			_, err := providers.WithRetry(f, r).GetRecords(context.Background(), "example.org.")
			if got := fmt.Sprint(err); (tc.wantErr == "" && err != nil) || (tc.wantErr != "" && got != tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
			if tc.sleepErr != nil && !errors.Is(err, tc.sleepErr) {
				t.Errorf("%v does not wrap %v", err, tc.sleepErr)
			}
			if f.calls != tc.wantCalls || !slices.Equal(waits, tc.wantWaits) {
				t.Fatalf("%d calls, waits %v; want %d calls, waits %v", f.calls, waits, tc.wantCalls, tc.wantWaits)
			}
		})
	}
}
