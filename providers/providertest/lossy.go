package providertest

import (
	"context"
	"strings"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/providers"
)

// Lossy wraps a client the way a buggy library behaves (the cloudflare one
// once kept one record of a set): of the records one SetRecords call gives
// for a name, it writes the first and silently drops the others, yet reports
// them all as written. Reads and deletes go through unchanged. The suite's
// read-back checks, and the selftest, must catch it.
func Lossy(c providers.Client) providers.Client { return lossy{c} }

type lossy struct{ providers.Client }

func (l lossy) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	seen := map[string]bool{}
	var kept []libdns.Record
	for _, r := range recs {
		n := strings.ToLower(r.RR().Name)
		if !seen[n] {
			kept = append(kept, r)
		}
		seen[n] = true
	}
	if _, err := l.Client.SetRecords(ctx, zone, kept); err != nil {
		return nil, err
	}
	return recs, nil
}
