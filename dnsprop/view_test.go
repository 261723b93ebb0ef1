package dnsprop

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func viewEvents() []Event {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	auth := netip.MustParseAddrPort("127.0.0.31:53")
	res := netip.MustParseAddrPort("127.0.0.41:53")
	obs := []Observation{
		{Server: auth, Role: RoleAuthoritative, Name: "mail.example.org.", Type: "A", State: StateNew, Addrs: addrs("127.0.0.20"), Want: addrs("127.0.0.20"), TTL: 3 * time.Second, Serial: 2, At: at},
		{Server: auth, Role: RoleAuthoritative, Name: "mail.example.org.", Type: "AAAA", State: StateNew, TTL: 60 * time.Second, Serial: 2, At: at},
		{Server: res, Role: RoleResolver, Name: "mail.example.org.", Type: "A", State: StateOld, Addrs: addrs("127.0.0.10"), Want: addrs("127.0.0.20"), TTL: 3 * time.Second, At: at},
		{Server: res, Role: RoleResolver, Name: "mail.example.org.", Type: "AAAA", State: StateUnknown, Err: "SERVFAIL", At: at},
	}
	rep := &Report{Types: []string{"A", "AAAA"}, Observations: obs, ETA: 3 * time.Second, At: at, Lagging: []string{"127.0.0.41 mail.example.org. A old {127.0.0.10}, want {127.0.0.20} (ttl 3s left)"},
		Queries: map[netip.AddrPort]int{auth: 3, res: 2}}
	return []Event{{Kind: EventChange, Obs: &obs[2]}, {Kind: EventProgress, Report: rep}, {Kind: EventSummary, Report: rep}}
}

// TestViewJSONLines: one line per change and the summary; progress is not
// written. The secret-free output is checked field by field.
func TestViewJSONLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc           string
		terminal, json bool
	}{
		{desc: "not a terminal", terminal: false, json: false},
		{desc: "terminal with --json", terminal: true, json: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var b bytes.Buffer
			v := NewView(&b, tc.terminal, tc.json)
			for _, ev := range viewEvents() {
				v.Event(ev)
			}
			want := `{"kind":"change","obs":{"server":"127.0.0.41:53","role":"resolver","name":"mail.example.org.","type":"A","state":"old","addrs":["127.0.0.10"],"want":["127.0.0.20"],"ttl":3,"time":"2026-11-23T10:00:00Z"}}
{"kind":"summary","report":{"converged":false,"stable_but_wrong":false,"types":["A","AAAA"],"eta":3,"lagging":["127.0.0.41 mail.example.org. A old {127.0.0.10}, want {127.0.0.20} (ttl 3s left)"],"time":"2026-11-23T10:00:00Z","queries":{"127.0.0.31:53":3,"127.0.0.41:53":2},"observations":[{"server":"127.0.0.31:53","role":"authoritative","name":"mail.example.org.","type":"A","state":"new","addrs":["127.0.0.20"],"want":["127.0.0.20"],"ttl":3,"serial":2,"time":"2026-11-23T10:00:00Z"},{"server":"127.0.0.31:53","role":"authoritative","name":"mail.example.org.","type":"AAAA","state":"new","addrs":[],"want":[],"ttl":60,"serial":2,"time":"2026-11-23T10:00:00Z"},{"server":"127.0.0.41:53","role":"resolver","name":"mail.example.org.","type":"A","state":"old","addrs":["127.0.0.10"],"want":["127.0.0.20"],"ttl":3,"time":"2026-11-23T10:00:00Z"},{"server":"127.0.0.41:53","role":"resolver","name":"mail.example.org.","type":"AAAA","state":"unknown","addrs":[],"want":[],"ttl":0,"error":"SERVFAIL","time":"2026-11-23T10:00:00Z"}]}}
`
			if b.String() != want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
			}
		})
	}
}

// TestViewTable: on a terminal the table is redrawn in place: the cursor goes
// up over the previous table, which is cleared, and the final summary stays.
func TestViewTable(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	v := NewView(&b, true, false)
	evs := viewEvents()
	at := evs[1].Report.At
	v.now = func() time.Time { return at.Add(time.Second) }
	v.Event(evs[0])
	// Before the first report the view knows only the types answered so far.
	first := "SERVER      ROLE      NAME               A           STATE                                TTL LEFT  ETA\n" +
		"127.0.0.41  resolver  mail.example.org.  127.0.0.10  old {127.0.0.10}, want {127.0.0.20}  2s        2s\n"
	if b.String() != first {
		t.Fatalf("first render:\n%q\nwant:\n%q", b.String(), first)
	}
	b.Reset()
	v.Event(evs[1])
	table := "SERVER      ROLE           NAME               A           AAAA  STATE                                                           TTL LEFT  ETA\n" +
		"127.0.0.31  authoritative  mail.example.org.  127.0.0.20  -     new                                                             60s       -\n" +
		"127.0.0.41  resolver       mail.example.org.  127.0.0.10  ?     A old {127.0.0.10}, want {127.0.0.20}; AAAA unknown (SERVFAIL)  2s        ?\n"
	want := "\x1b[2A\r\x1b[J" + table + "waiting · ETA 2s · 5 queries\n"
	if b.String() != want {
		t.Fatalf("progress render:\n%q\nwant:\n%q", b.String(), want)
	}
	b.Reset()
	v.Event(evs[2])
	want = "\x1b[4A\r\x1b[J" + table + "NOT converged · ETA 3s · 5 queries\n  127.0.0.41 mail.example.org. A old {127.0.0.10}, want {127.0.0.20} (ttl 3s left)\n"
	want = strings.Replace(want, "2s        ?", "3s        ?", 1)
	if b.String() != want {
		t.Fatalf("summary render:\n%q\nwant:\n%q", b.String(), want)
	}
	b.Reset()
	v.Event(evs[1])
	if strings.HasPrefix(b.String(), "\x1b[") {
		t.Errorf("a render after the summary overwrote it: %q", b.String()[:10])
	}
}

// TestViewStableButWrong: with A watched only there is no AAAA column; an
// answer that stays wrong is marked stable, has no ETA, and the footer says
// waiting will not help.
func TestViewStableButWrong(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	auth := netip.MustParseAddrPort("127.0.0.31:53")
	res := netip.MustParseAddrPort("127.0.0.41:53")
	obs := []Observation{
		{Server: auth, Role: RoleAuthoritative, Name: "mail.example.org.", Type: "A", State: StateOld, Addrs: addrs("127.0.0.10"), Want: addrs("127.0.0.20"), TTL: 30 * time.Second, Serial: 3, Stable: true, At: at},
		{Server: res, Role: RoleResolver, Name: "mail.example.org.", Type: "A", State: StateOld, Addrs: addrs("127.0.0.10"), Want: addrs("127.0.0.20"), TTL: 30 * time.Second, Stable: true, At: at},
		{Server: res, Role: RoleResolver, Name: "www.example.org.", Type: "A", State: StateNew, Addrs: addrs("127.0.0.20"), Want: addrs("127.0.0.20"), TTL: 30 * time.Second, At: at},
	}
	lagging := []string{
		"127.0.0.31 mail.example.org. A old {127.0.0.10}, want {127.0.0.20} (stable: at serial 3, the newest)",
		"127.0.0.41 mail.example.org. A old {127.0.0.10}, want {127.0.0.20} (stable: served again after its TTL ran out)",
	}
	rep := &Report{Types: []string{"A"}, StableButWrong: true, Observations: obs, At: at, Lagging: lagging, Queries: map[netip.AddrPort]int{auth: 4, res: 3}}
	table := "SERVER      ROLE           NAME               A           STATE                                         TTL LEFT  ETA\n" +
		"127.0.0.31  authoritative  mail.example.org.  127.0.0.10  old {127.0.0.10}, want {127.0.0.20} (stable)  30s       none\n" +
		"127.0.0.41  resolver       mail.example.org.  127.0.0.10  old {127.0.0.10}, want {127.0.0.20} (stable)  20s       none\n" +
		"127.0.0.41  resolver       www.example.org.   127.0.0.20  new                                           20s       -\n"
	tests := []struct {
		desc string
		ev   Event
		want string
	}{
		{desc: "while waiting", ev: Event{Kind: EventProgress, Report: rep}, want: table + "stable but wrong · ETA none · 7 queries\n"},
		{desc: "the summary", ev: Event{Kind: EventSummary, Report: rep},
			want: strings.ReplaceAll(table, "20s", "30s") + "NOT converged, stable but wrong · ETA none · 7 queries\n  " + strings.Join(lagging, "\n  ") + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			v := NewView(&b, true, false)
			v.now = func() time.Time { return at.Add(10 * time.Second) }
			v.Event(tc.ev)
			if b.String() != tc.want {
				t.Errorf("render:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}
