package dnsrec

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestSnapshotJSON: the journal's snapshot reads back the same, whether it
// was written by this model or by the scheduler's own earlier type, which
// also wrote "exists" and a zero TTL for a missing RRset.
func TestSnapshotJSON(t *testing.T) {
	a1, a6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	want := &Snapshot{Zone: "example.org.", Taken: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), Names: []Name{
		{Name: "mail.example.org.", A: RRset{Addrs: []netip.Addr{a1}, TTL: time.Hour}, AAAA: RRset{Addrs: []netip.Addr{a6}, TTL: time.Minute}},
		{Name: "www.example.org.", A: RRset{Addrs: []netip.Addr{a1}, TTL: time.Hour}},
	}}
	for _, tc := range []struct {
		desc, json string
	}{
		{
			desc: "written by dnsrec",
			json: `{"zone":"example.org.","taken":"2026-11-23T10:00:00Z","names":[` +
				`{"name":"mail.example.org.","a":{"addrs":["192.0.2.1"],"ttl":3600000000000},"aaaa":{"addrs":["2001:db8::1"],"ttl":60000000000}},` +
				`{"name":"www.example.org.","a":{"addrs":["192.0.2.1"],"ttl":3600000000000},"aaaa":{}}]}`,
		},
		{
			desc: "written by an earlier cutover's journal",
			json: `{"zone":"example.org.","taken":"2026-11-23T10:00:00Z","names":[` +
				`{"name":"mail.example.org.","a":{"exists":true,"addrs":["192.0.2.1"],"ttl":3600000000000},"aaaa":{"exists":true,"addrs":["2001:db8::1"],"ttl":60000000000}},` +
				`{"name":"www.example.org.","a":{"exists":true,"addrs":["192.0.2.1"],"ttl":3600000000000},"aaaa":{"exists":false,"ttl":0}}]}`,
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var got Snapshot
			if err := json.Unmarshal([]byte(tc.json), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, want) {
				t.Fatalf("got %+v, want %+v", got, *want)
			}
			if got.Names[1].AAAA.Exists() || !got.Names[1].A.Exists() {
				t.Errorf("www: A exists %v, AAAA exists %v; want true, false", got.Names[1].A.Exists(), got.Names[1].AAAA.Exists())
			}
			if got.MaxTTL() != time.Hour {
				t.Errorf("MaxTTL %s, want 1h0m0s", got.MaxTTL())
			}
			if s := got.String(); s != "mail.example.org. A {192.0.2.1} AAAA {2001:db8::1}; www.example.org. A {192.0.2.1} AAAA {}" {
				t.Errorf("String() = %q", s)
			}
		})
	}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(&back, want) {
		t.Fatalf("round trip: %v, got %+v", err, back)
	}
}
