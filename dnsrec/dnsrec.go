// Package dnsrec is the one model of the A/AAAA data cutover moves: per name
// the A and the AAAA RRset (addresses and TTL), and the snapshot of the names
// before cutover changed anything. providers reads and writes it, dnsprop
// observes it, and the scheduler plans with it and keeps the snapshot in its
// journal.
package dnsrec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// RRset is the addresses of one name and type with their TTL. An A or AAAA
// RRset always holds an address, so empty Addrs means there is no such RRset
// (NODATA or NXDOMAIN).
type RRset struct {
	Addrs []netip.Addr  `json:"addrs,omitempty"`
	TTL   time.Duration `json:"ttl,omitempty"` // 0 when the RRset does not exist
}

// Exists reports whether the RRset exists.
func (r RRset) Exists() bool { return len(r.Addrs) > 0 }

// UnmarshalJSON reads an RRset strictly (an unknown key is an error, as in
// the rest of the journal), also in the shape journals had before this
// model, which wrote an "exists" flag beside the addresses.
func (r *RRset) UnmarshalJSON(b []byte) error {
	var v struct {
		Addrs  []netip.Addr  `json:"addrs"`
		TTL    time.Duration `json:"ttl"`
		Exists *bool         `json:"exists"` // journals before dnsrec
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if v.Exists != nil && *v.Exists != (len(v.Addrs) > 0) {
		return fmt.Errorf("dnsrec: an RRset with exists %t and %d addresses", *v.Exists, len(v.Addrs))
	}
	r.Addrs, r.TTL = v.Addrs, v.TTL
	return nil
}

// Name is the A and AAAA RRsets of one name.
type Name struct {
	Name string `json:"name"` // FQDN with trailing dot
	A    RRset  `json:"a"`
	AAAA RRset  `json:"aaaa"`
}

// MaxTTL is the longer TTL of the name's A and AAAA RRsets.
func (n Name) MaxTTL() time.Duration { return max(n.A.TTL, n.AAAA.TTL) }

// ServedTTL is the TTL the name served for typ ("A" or "AAAA"): that
// RRset's, or the other type's when it did not exist; 0 when neither did.
func (n Name) ServedTTL(typ string) time.Duration {
	own, other := n.A, n.AAAA
	if typ == "AAAA" {
		own, other = n.AAAA, n.A
	}
	if own.Exists() {
		return own.TTL
	}
	return other.TTL
}

// SwapTTL is the TTL the swap gives the name's new typ RRset: lowered, but
// never above the TTL served, so a lowered_ttl above it never raises it.
func (n Name) SwapTTL(typ string, lowered time.Duration) time.Duration {
	if served := n.ServedTTL(typ); served > 0 {
		return min(lowered, served)
	}
	return lowered
}

// Snapshot is what the zone held for the names before cutover changed
// anything: what a revert puts back. The journal keeps it.
type Snapshot struct {
	Zone  string    `json:"zone"`
	Taken time.Time `json:"taken"`
	Names []Name    `json:"names"`
}

// MaxTTL is the longest TTL in the snapshot.
func (s *Snapshot) MaxTTL() time.Duration { return MaxTTL(s.Names) }

// MaxTTL is the longest TTL of names.
func MaxTTL(names []Name) time.Duration {
	var m time.Duration
	for _, n := range names {
		m = max(m, n.MaxTTL())
	}
	return m
}

// String lists the snapshot's addresses, for messages.
func (s *Snapshot) String() string {
	var b strings.Builder
	for i, n := range s.Names {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s A %s AAAA %s", n.Name, AddrList(n.A.Addrs), AddrList(n.AAAA.Addrs))
	}
	return b.String()
}

// AddrList formats addresses as "{a, b}", "{}" for none.
func AddrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return "{" + strings.Join(s, ", ") + "}"
}

// TypedRRset is one of a name's RRsets, with its type.
type TypedRRset struct {
	Type string // "A" or "AAAA"
	RRset
}

// Sets returns the name's A and AAAA RRsets, in that order.
func (n Name) Sets() []TypedRRset { return []TypedRRset{{"A", n.A}, {"AAAA", n.AAAA}} }
