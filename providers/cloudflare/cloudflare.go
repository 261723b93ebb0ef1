// Package cloudflare owns cutover's "cloudflare" provider type over
// github.com/libdns/cloudflare, with the work-arounds cutover needs: SetRecords
// replaces whole RRsets (the library only patches single records, upstream
// issue #31), requests turned away (429, 503, 5xx where safe) are sent again
// honouring Retry-After (providers.RetryTransport), and the automatic TTL (1)
// reads as Cloudflare's 300 seconds.
//
//	[providers.dns]
//	type       = "cloudflare"
//	api_token  = "env:CF_API_TOKEN"   # Zone.DNS:Edit
//	zone_token = "env:CF_ZONE_TOKEN"  # optional Zone:Read token
package cloudflare

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/libdns/cloudflare"
	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/providers"
)

// Spec declares the cloudflare type.
var Spec = providers.Spec{
	Type:    "cloudflare",
	Doc:     "Cloudflare",
	Library: "github.com/libdns/cloudflare v0.2.2",
	Settings: []providers.Setting{
		{Key: "api_token", Kind: providers.SecretRef, Required: true, Doc: "API token with Zone.DNS:Edit"},
		{Key: "zone_token", Kind: providers.SecretRef, Doc: "optional Zone:Read token"},
	},
	Capabilities: providers.Capabilities{
		MinTTL:       60 * time.Second,
		MinTTLReason: "Cloudflare refuses TTLs below 60 s outside Enterprise plans (1 means automatic, 300 s)",
		RRsetSet: providers.Capability{OK: true, Reason: "the library patches single records; cutover deletes the RRset's extra records, " +
			"then patches or adds the rest"},
		Atomic: providers.Capability{OK: false, Reason: "every record is a separate API call"},
	},
	Quirks: []string{
		"the library's SetRecords patches one record per call and never deletes the others (upstream issue #31): cutover replaces RRsets itself",
		"cutover retries 429, 503 and network failures (other 5xx for reads, updates and deletes) with backoff, honouring Retry-After",
		"TTL 1 (automatic) reads as 300 s",
		"a proxied (orange cloud) A or AAAA record of a configured name is refused at the first read; changes never send the proxied flag, so other records keep theirs",
	},
	RetriesItself: true,
	New: func(v providers.Values, _ providers.Env) (providers.Client, error) {
		// The timeout covers every attempt: at most HTTPAttempts sends and
		// (HTTPAttempts-1)*HTTPMaxWait of waiting.
		hc := &http.Client{Transport: providers.NewRetryTransport(transport), Timeout: 5 * time.Minute}
		return NewClient(v.String("api_token"), v.String("zone_token"), hc), nil
	},
}

func init() { providers.Register(Spec) }

// autoTTL is what Cloudflare serves for a record whose ttl is 1 ("automatic").
const autoTTL = 300 * time.Second

// transport sends the HTTP client's requests under its RetryTransport
// (tests replace it).
var transport http.RoundTripper = http.DefaultTransport

// NewClient returns the Cloudflare client sending its requests through hc
// (the factory gives an *http.Client over a providers.RetryTransport).
func NewClient(apiToken, zoneToken string, hc cloudflare.HTTPClient) providers.Client {
	sn := &proxySniffer{next: hc}
	return &client{p: &cloudflare.Provider{APIToken: apiToken, ZoneToken: zoneToken, HTTPClient: sn}, sniff: sn}
}

// proxySniffer passes the library's requests on and notes which A and AAAA
// records the zone listings mark as proxied ("orange cloud"), a flag the
// library drops when it converts records.
type proxySniffer struct {
	next    cloudflare.HTTPClient
	mu      sync.Mutex
	proxied map[pair]bool // from the last listing; names without the dot
}

func (s *proxySniffer) Do(req *http.Request) (*http.Response, error) {
	resp, err := s.next.Do(req)
	page := req.URL.Query().Get("page")
	if err != nil || req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/dns_records") || page == "" || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("cloudflare: read %s: %w", req.URL.Path, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var listing struct {
		Result []struct {
			Name, Type string
			Proxied    bool
		} `json:"result"`
	}
	if json.Unmarshal(body, &listing) != nil {
		return resp, nil // the library reports the bad body
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if page == "1" || s.proxied == nil {
		s.proxied = map[pair]bool{}
	}
	for _, r := range listing.Result {
		if r.Proxied && (r.Type == "A" || r.Type == "AAAA") {
			s.proxied[pair{strings.ToLower(strings.TrimSuffix(r.Name, ".")), r.Type}] = true
		}
	}
	return resp, nil
}

// GetNameRecords reads the zone and refuses when an A or AAAA record of
// names is proxied: Cloudflare then answers with its own addresses, so no
// resolver would ever show the new host's. Every operation reads through
// it, so a proxied name stops cutover before it changes anything.
func (c *client) GetNameRecords(ctx context.Context, zone string, names []string) ([]libdns.Record, error) {
	recs, err := c.GetRecords(ctx, zone)
	if err != nil {
		return nil, err
	}
	c.sniff.mu.Lock()
	var bad []string
	for _, n := range names {
		for _, typ := range []string{"A", "AAAA"} {
			if c.sniff.proxied[pair{strings.ToLower(strings.TrimSuffix(n, ".")), typ}] {
				bad = append(bad, n+" "+typ)
			}
		}
	}
	c.sniff.mu.Unlock()
	if len(bad) > 0 {
		return nil, fmt.Errorf("cloudflare: proxied (orange cloud) records: %s: resolvers would answer with Cloudflare's addresses, never the new host's, "+
			"and mail cannot pass Cloudflare's proxy anyway: set them to \"DNS only\" in the Cloudflare dashboard, then run cutover again", strings.Join(bad, ", "))
	}
	return recs, nil
}

// client wraps the library: RRset-correct SetRecords, proxied names
// refused, errors prefixed, zone names without the trailing dot (Cloudflare's
// spelling), automatic TTL read as 300 s.
type client struct {
	p     *cloudflare.Provider
	sniff *proxySniffer
}

func cfZone(zone string) string { return strings.TrimSuffix(zone, ".") }

func (c *client) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	recs, err := c.p.GetRecords(ctx, cfZone(zone))
	if err != nil {
		return nil, fmt.Errorf("cloudflare: get records: %w", err)
	}
	for i, r := range recs {
		if a, ok := r.(libdns.Address); ok && a.TTL == time.Second {
			a.TTL = autoTTL
			recs[i] = a
		}
	}
	return recs, nil
}

func (c *client) DeleteRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	recs, err := c.p.DeleteRecords(ctx, cfZone(zone), in)
	if err != nil {
		return nil, fmt.Errorf("cloudflare: delete records: %w", err)
	}
	return recs, nil
}

type pair struct{ name, typ string }

// SetRecords makes each (name, type) of in hold exactly in's records.
// For a one-record RRset it deletes every other record of the pair, then
// lets the library patch the remaining one (or create it): the name never
// goes without an address. For a larger RRset it adds what is missing,
// deletes what is extra, then re-creates records whose TTL is wrong one at
// a time (so the RRset is never empty).
func (c *client) SetRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	z := cfZone(zone)
	cur, err := c.GetRecords(ctx, zone)
	if err != nil {
		return nil, err
	}
	var order []pair
	want := map[pair][]libdns.RR{}
	for _, r := range in {
		rr := r.RR()
		p := pair{strings.ToLower(libdns.AbsoluteName(rr.Name, z)), rr.Type}
		if _, ok := want[p]; !ok {
			order = append(order, p)
		}
		want[p] = append(want[p], rr)
	}
	have := map[pair][]libdns.RR{}
	for _, r := range cur {
		rr := r.RR()
		p := pair{strings.ToLower(libdns.AbsoluteName(rr.Name, z)), rr.Type}
		have[p] = append(have[p], rr)
	}
	for _, p := range order {
		if err := c.setRRset(ctx, z, want[p], have[p]); err != nil {
			return nil, fmt.Errorf("cloudflare: set %s %s: %w", p.name, p.typ, err)
		}
	}
	return in, nil
}

func (c *client) setRRset(ctx context.Context, z string, want, have []libdns.RR) error {
	find := func(rs []libdns.RR, data string) (libdns.RR, bool) {
		for _, r := range rs {
			if providers.SameData(r, data) {
				return r, true
			}
		}
		return libdns.RR{}, false
	}
	del := func(rs []libdns.RR) error {
		if len(rs) == 0 {
			return nil
		}
		recs := make([]libdns.Record, len(rs))
		for i, r := range rs {
			r.TTL = 0 // any TTL
			recs[i] = r
		}
		_, err := c.p.DeleteRecords(ctx, z, recs)
		return err
	}
	add := func(rs []libdns.RR) error {
		if len(rs) == 0 {
			return nil
		}
		recs := make([]libdns.Record, len(rs))
		for i, r := range rs {
			recs[i] = r
		}
		_, err := c.p.AppendRecords(ctx, z, recs)
		return err
	}
	if len(want) == 1 {
		w := want[0]
		keep, ok := find(have, w.Data)
		if !ok && len(have) > 0 {
			keep, ok = have[0], true
		}
		var extra []libdns.RR
		for _, h := range have {
			if !ok || !providers.SameData(h, keep.Data) {
				extra = append(extra, h)
			}
		}
		if err := del(extra); err != nil {
			return err
		}
		if ok && providers.SameData(keep, w.Data) && keep.TTL == w.TTL {
			return nil
		}
		_, err := c.p.SetRecords(ctx, z, []libdns.Record{w})
		return err
	}
	var missing, extra, retime []libdns.RR
	for _, w := range want {
		h, ok := find(have, w.Data)
		switch {
		case !ok:
			missing = append(missing, w)
		case h.TTL != w.TTL:
			retime = append(retime, w)
		}
	}
	for _, h := range have {
		if _, ok := find(want, h.Data); !ok {
			extra = append(extra, h)
		}
	}
	if err := add(missing); err != nil {
		return err
	}
	if err := del(extra); err != nil {
		return err
	}
	for _, w := range retime {
		if err := del([]libdns.RR{w}); err != nil {
			return err
		}
		if err := add([]libdns.RR{w}); err != nil {
			return err
		}
	}
	return nil
}

var (
	_ providers.Client     = (*client)(nil)
	_ providers.NameReader = (*client)(nil)
)
