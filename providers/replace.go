package providers

import (
	"context"
	"net/netip"
	"strings"

	"github.com/libdns/libdns"
)

// Library is what a libdns provider library offers that cutover can build
// whole-RRset writes on when the library's own SetRecords does not replace
// RRsets (it patches single records, adds to the set, or needs record IDs).
type Library interface {
	libdns.RecordGetter
	libdns.RecordAppender
	libdns.RecordDeleter
}

// ReplaceRRsets returns a Client over lib whose SetRecords replaces each
// RRset of its input by deleting the records the RRset holds (as GetRecords
// returned them, so with whatever record IDs the library keeps in them) and
// then appending the wanted records; its DeleteRecords deletes the records
// as read that match the input (name, type and data; TTL when not zero).
// Not atomic: the name has no record of the type for a moment.
func ReplaceRRsets(lib Library) Client { return replacer{lib} }

type replacer struct{ lib Library }

type rrsetKey struct{ name, typ string }

func keyOf(rr libdns.RR, zone string) rrsetKey {
	return rrsetKey{strings.ToLower(strings.TrimSuffix(libdns.AbsoluteName(rr.Name, zone), ".")), rr.Type}
}

func (r replacer) GetRecords(ctx context.Context, zone string) ([]libdns.Record, error) {
	return r.lib.GetRecords(ctx, zone)
}

func (r replacer) SetRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	cur, err := r.lib.GetRecords(ctx, zone)
	if err != nil {
		return nil, err
	}
	want := map[rrsetKey]bool{}
	for _, rec := range in {
		want[keyOf(rec.RR(), zone)] = true
	}
	var old []libdns.Record
	for _, rec := range cur {
		if want[keyOf(rec.RR(), zone)] {
			old = append(old, rec)
		}
	}
	if len(old) > 0 {
		if _, err := r.lib.DeleteRecords(ctx, zone, old); err != nil {
			return nil, err
		}
	}
	return r.lib.AppendRecords(ctx, zone, in)
}

func (r replacer) DeleteRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	cur, err := r.lib.GetRecords(ctx, zone)
	if err != nil {
		return nil, err
	}
	var del []libdns.Record
	for _, rec := range cur {
		c := rec.RR()
		for _, w := range in {
			d := w.RR()
			if keyOf(c, zone) == keyOf(d, zone) && SameData(c, d.Data) && (d.TTL == 0 || d.TTL == c.TTL) {
				del = append(del, rec)
				break
			}
		}
	}
	if len(del) == 0 {
		return nil, nil
	}
	return r.lib.DeleteRecords(ctx, zone, del)
}

// SameData compares a record's data with data; addresses are compared as
// addresses ("2001:db8::1" and "2001:DB8:0::1" are the same).
func SameData(r libdns.RR, data string) bool {
	if r.Type == "A" || r.Type == "AAAA" {
		a, err1 := netip.ParseAddr(r.Data)
		b, err2 := netip.ParseAddr(data)
		return err1 == nil && err2 == nil && a == b
	}
	return r.Data == data
}

// OneRRsetPerCall returns a Client over c that passes SetRecords one RRset
// at a time, for libraries that replace RRsets correctly only when a call
// holds a single name (or a single type per name).
func OneRRsetPerCall(c Client) Client { return perRRset{c} }

type perRRset struct{ Client }

func (p perRRset) SetRecords(ctx context.Context, zone string, in []libdns.Record) ([]libdns.Record, error) {
	var order []rrsetKey
	groups := map[rrsetKey][]libdns.Record{}
	for _, rec := range in {
		k := keyOf(rec.RR(), zone)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], rec)
	}
	var out []libdns.Record
	for _, k := range order {
		recs, err := p.Client.SetRecords(ctx, zone, groups[k])
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}
