package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"syscall"
	"time"

	"github.com/libdns/libdns"
)

// Retry bounds how the registry repeats a provider call that failed
// transiently (see Transient). Repeating is safe: every write cutover makes
// replaces whole RRsets or deletes records, so a second try converges to the
// same zone, and the operations read the zone back after writing.
type Retry struct {
	Attempts int           // in all, counting the first; below 2 means no retry
	Backoff  time.Duration // wait before the second attempt, doubled after each
	Max      time.Duration // longest wait
	// Sleep waits d or until ctx ends (returning its error). Nil: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// DefaultRetry is what Open applies to every provider whose library does
// not retry by itself (Spec.RetriesItself) and whose Spec names no Retry of
// its own: 2 attempts, 2 seconds apart. Their libraries speak HTTP through
// the RetryTransport the program installs, which already repeats each
// request up to HTTPAttempts times where that is safe (429, 503, network
// failures, 5xx to idempotent requests), honouring Retry-After. The
// registry's one repeat is for what the transport must not repeat (a POST
// answered 502 or cut off: the whole call re-reads the zone and converges)
// and for a library's own error after the transport gave up. So one library
// request is sent at most 2*HTTPAttempts = 8 times, with at most
// 2*(HTTPAttempts-1) waits of up to HTTPMaxWait plus 2 seconds between.
var DefaultRetry = Retry{Attempts: 2, Backoff: 2 * time.Second, Max: 30 * time.Second}

// SoleRetry is for a provider with no RetryTransport under it (rfc2136
// speaks DNS; inwx's library builds its own HTTP transport): the
// registry's retry is the only one, so it goes further: at most 4 attempts
// over about 14 seconds.
var SoleRetry = Retry{Attempts: 4, Backoff: 2 * time.Second, Max: 30 * time.Second}

// rateLimited matches the words libraries use for HTTP 429.
var rateLimited = regexp.MustCompile(`(?i)\b429\b|too many requests|rate.?limit`)

// networkFailure matches Go's words for a network failure, for libraries
// that flatten the error with %v (desec's "sending request: %v"), which
// hides the *net.OpError from errors.As.
var networkFailure = regexp.MustCompile(`connection refused|connection reset|broken pipe|i/o timeout|unexpected EOF|TLS handshake timeout`)

// Transient reports whether err is worth another try: a network failure
// (timeout, refused or reset connection, a reply cut short) or a rate
// limit. A cancelled or expired context never is.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.As(err, &op), errors.As(err, &ne) && ne.Timeout():
		return true
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED):
		return true
	}
	return rateLimited.MatchString(err.Error()) || networkFailure.MatchString(err.Error())
}

// WithRetry returns a Client over c that repeats calls failing with a
// Transient error as r says. The last error says how many attempts were made.
func WithRetry(c Client, r Retry) Client { return retrying{c, r} }

type retrying struct {
	c Client
	r Retry
}

func (rt retrying) do(ctx context.Context, call func() ([]libdns.Record, error)) ([]libdns.Record, error) {
	wait := rt.r.Backoff
	for attempt := 1; ; attempt++ {
		recs, err := call()
		if err == nil || !Transient(err) || attempt >= rt.r.Attempts {
			if err != nil && attempt > 1 {
				err = fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			return recs, err
		}
		sleep := rt.r.Sleep
		if sleep == nil {
			sleep = sleepCtx
		}
		if serr := sleep(ctx, min(wait, rt.r.Max)); serr != nil {
			return nil, fmt.Errorf("%w (waiting to retry: %w)", err, serr)
		}
		wait *= 2
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

func (rt retrying) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	return rt.do(ctx, func() ([]libdns.Record, error) { return rt.c.GetRecords(ctx, zone) })
}

func (rt retrying) SetRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	return rt.do(ctx, func() ([]libdns.Record, error) { return rt.c.SetRecords(ctx, zone, in) })
}

func (rt retrying) DeleteRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	return rt.do(ctx, func() ([]libdns.Record, error) { return rt.c.DeleteRecords(ctx, zone, in) })
}

// sendingOnce marks the context of every call (sendOnce) so that the
// installed RetryTransport sends the requests of a library that retries by
// itself (Spec.RetriesItself, Spec.RetriesRateLimits) once: the two
// retries would multiply.
type sendingOnce struct{ c Client }

// sendOnceClient returns c marking its calls; a NameReader keeps the ability.
func sendOnceClient(c Client) Client {
	s := sendingOnce{c}
	if nr, ok := c.(NameReader); ok {
		return sendingOnceNames{s, nr}
	}
	return s
}

func (s sendingOnce) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	return s.c.GetRecords(sendOnce(ctx), zone)
}

func (s sendingOnce) SetRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	return s.c.SetRecords(sendOnce(ctx), zone, in)
}

func (s sendingOnce) DeleteRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	return s.c.DeleteRecords(sendOnce(ctx), zone, in)
}

type sendingOnceNames struct {
	sendingOnce
	nr NameReader
}

func (s sendingOnceNames) GetNameRecords(ctx context.Context, zone string, names []string) ([]libdns.Record, error) {
	return s.nr.GetNameRecords(sendOnce(ctx), zone, names)
}
