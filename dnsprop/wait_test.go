package dnsprop

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestTTLAwarePolling: a resolver serving the old answer is asked again when
// its TTL runs out, not on a fixed interval. The clock is fake: waiting moves
// it, so 30 s pass in no time, and the fake resolver counts TTLs in whole
// seconds of that clock as real resolvers do.
func TestTTLAwarePolling(t *testing.T) {
	t.Parallel()
	const T = 1_700_000_000
	// served says what the resolver serves at second s: new or not, and the TTL.
	tests := []struct {
		desc    string
		start   time.Duration // offset of the first question from T
		served  func(s int64) (isNew bool, ttl int64)
		queries int           // A questions until convergence
		doneAt  time.Duration // convergence reported at T + doneAt
		eta     time.Duration // ETA in the first report
	}{
		{
			desc:    "one expiry",
			served:  func(s int64) (bool, int64) { return s >= T+30, max(0, T+30-s) },
			queries: 2, doneAt: 30*time.Second + ttlSlack, eta: 30 * time.Second,
		},
		{
			desc:    "first question in the middle of a second",
			start:   600 * time.Millisecond,
			served:  func(s int64) (bool, int64) { return s >= T+30, max(0, T+30-s) },
			queries: 2, doneAt: 30*time.Second + ttlSlack, eta: 30 * time.Second, // TTLLeft counts from the answer: an upper bound
		},
		{
			desc: "TTL 0 served during the last second",
			served: func(s int64) (bool, int64) {
				if s > T+30 {
					return true, 30
				}
				return false, T + 30 - s
			},
			queries: 3, doneAt: 31*time.Second + ttlSlack, eta: 30 * time.Second,
		},
		{
			desc: "TTL 0 in the last second, learned at the first of two expiries",
			served: func(s int64) (bool, int64) {
				switch {
				case s <= T+10:
					return false, T + 10 - s
				case s <= T+21:
					return false, T + 21 - s
				}
				return true, 30
			},
			queries: 4, doneAt: 22*time.Second + ttlSlack, eta: 10 * time.Second,
		},
		{
			desc: "refetched from a lagging server: a second expiry",
			served: func(s int64) (bool, int64) {
				switch {
				case s < T+20:
					return false, T + 20 - s
				case s < T+30:
					return false, T + 30 - s
				}
				return true, 30
			},
			queries: 3, doneAt: 30*time.Second + ttlSlack, eta: 20 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			clk := &fakeClock{now: time.Unix(T, 0).Add(tc.start)}
			var mu sync.Mutex
			count := map[uint16]int{}
			f := startFake(t, "127.0.0.1", 0, func(req *dns.Msg, _ string) *dns.Msg {
				q := req.Question[0]
				mu.Lock()
				count[q.Qtype]++
				mu.Unlock()
				m := new(dns.Msg)
				m.SetReply(req)
				if q.Qtype != dns.TypeA {
					s, _ := dns.NewRR(soa(1, 300, 300))
					m.Ns = []dns.RR{s}
					return m
				}
				isNew, ttl := tc.served(clk.Now().Unix())
				ip := "192.0.2.1"
				if isNew {
					ip = "192.0.2.2"
				}
				rr, _ := dns.NewRR(fmt.Sprintf("www.example.org. %d IN A %s", ttl, ip))
				m.Answer = []dns.RR{rr}
				return m
			})
			c := &Checker{Resolvers: []netip.AddrPort{f.addr}, Clock: clk.Now, after: clk.After}
			var events []Event
			rep, err := c.WaitResolvers(context.Background(), []string{"www.example.org."},
				Sets{A: addrs("192.0.2.1")}, Sets{A: addrs("192.0.2.2")}, func(ev Event) { events = append(events, ev) })
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			gotA, gotAAAA := count[dns.TypeA], count[dns.TypeAAAA]
			mu.Unlock()
			if gotA != tc.queries || gotAAAA != 1 {
				t.Errorf("A asked %d times, AAAA %d; want %d and 1", gotA, gotAAAA, tc.queries)
			}
			if got := rep.At.Sub(time.Unix(T, 0)); got != tc.doneAt {
				t.Errorf("converged at T+%s, want T+%s", got, tc.doneAt)
			}
			if rep.Queries[f.addr] != tc.queries+1 {
				t.Errorf("Report.Queries = %v, want %d", rep.Queries, tc.queries+1)
			}
			// Event stream: A old, AAAA new, progress..., A new, summary.
			var kinds []string
			for _, ev := range events {
				switch ev.Kind {
				case EventChange:
					kinds = append(kinds, ev.Obs.Type+" "+string(ev.Obs.State))
				case EventProgress:
					if len(kinds) == 0 || kinds[len(kinds)-1] != "progress" {
						kinds = append(kinds, "progress")
					}
				default:
					kinds = append(kinds, ev.Kind)
				}
			}
			want := "A old,AAAA new,progress,A new,summary"
			if got := strings.Join(kinds, ","); got != want {
				t.Errorf("events %s, want %s", got, want)
			}
			first := events[2].Report
			if first.ETA != tc.eta || first.Converged {
				t.Errorf("first report ETA %s converged %v, want ETA %s, not converged", first.ETA, first.Converged, tc.eta)
			}
			if last := events[len(events)-1]; last.Report != rep {
				t.Errorf("summary event does not carry the returned report")
			}
		})
	}
}

// TestLaggingSecondary: the authoritative servers must agree on the serial;
// a secondary behind the primary is named with both serials, and the wait
// ends when it catches up.
func TestLaggingSecondary(t *testing.T) {
	t.Parallel()
	zoneAt := func(serial uint32, www string) zone {
		return zone{aa: true, records: []string{
			soa(serial, 300, 60),
			"example.org. 300 IN NS ns1.example.org.",
			"example.org. 300 IN NS ns2.example.org.",
			"ns1.example.org. 300 IN A 127.0.0.1",
			"ns2.example.org. 300 IN A 127.0.0.2",
			"www.example.org. 5 IN A " + www,
		}}
	}
	primary := startFake(t, "127.0.0.1", 0, serve(zoneAt(4, "192.0.2.2")))
	secondary := startFake(t, "127.0.0.2", 0, serve(zoneAt(3, "192.0.2.1")))
	c := &Checker{Zone: "example.org.", Authoritative: []netip.AddrPort{primary.addr, secondary.addr}, PollInterval: 100 * time.Millisecond}
	old, want := Sets{A: addrs("192.0.2.1")}, Sets{A: addrs("192.0.2.2")}
	names := []string{"www.example.org."}

	ctx, cancel := context.WithTimeout(context.Background(), 350*time.Millisecond)
	defer cancel()
	rep, err := c.WaitAuthoritative(ctx, names, old, want, nil)
	s2 := serverString(secondary.addr)
	wantErr := fmt.Sprintf("dnsprop: not converged: secondary %s serves serial 3, primary 4; %s www.example.org. A old {192.0.2.1}, want {192.0.2.2}: context deadline exceeded", s2, s2)
	if err == nil || err.Error() != wantErr {
		t.Fatalf("WaitAuthoritative error = %v\nwant %s", err, wantErr)
	}
	if rep == nil || len(rep.Observations) != 4 || rep.Observations[2].Serial != 3 || rep.Observations[0].Serial != 4 {
		t.Fatalf("observations %+v, want 4 with serials 4, 4, 3, 3", rep)
	}

	// The secondary catches up with the serial only, then with the data.
	var mu sync.Mutex
	var changes []string
	progress := func(ev Event) {
		if ev.Kind == EventChange && ev.Obs.Server == secondary.addr && ev.Obs.Type == "A" {
			mu.Lock()
			changes = append(changes, fmt.Sprintf("%s %d", ev.Obs.State, ev.Obs.Serial))
			mu.Unlock()
		}
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		secondary.setHandle(serve(zoneAt(4, "192.0.2.1"))) // a broken secondary: right serial, old data
		time.Sleep(500 * time.Millisecond)
		secondary.setHandle(serve(zoneAt(5, "192.0.2.2")))
		primary.setHandle(serve(zoneAt(5, "192.0.2.2")))
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	rep, err = c.WaitAuthoritative(ctx2, names, old, want, progress)
	if err != nil || !rep.Converged || len(rep.Lagging) != 0 {
		t.Fatalf("WaitAuthoritative = %v, %v; want converged with nothing lagging", lagging(rep), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(changes, ", "); got != "old 3, old 4, new 5" {
		t.Errorf("secondary A changes %q, want %q", got, "old 3, old 4, new 5")
	}
}

// TestQuorum: Quorum resolvers must serve the new sets; 0 means all. Those a
// met quorum does not need are still listed as lagging.
func TestQuorum(t *testing.T) {
	t.Parallel()
	newZ := zone{records: []string{soa(1, 300, 60), "www.example.org. 60 IN A 192.0.2.2"}}
	oldZ := zone{records: []string{soa(1, 300, 60), "www.example.org. 3600 IN A 192.0.2.1"}}
	r1 := startFake(t, "127.0.0.1", 0, serve(newZ))
	r2 := startFake(t, "127.0.0.1", 0, serve(newZ))
	r3 := startFake(t, "127.0.0.1", 0, serve(oldZ))
	lag := fmt.Sprintf("%s www.example.org. A old {192.0.2.1}, want {192.0.2.2} (ttl 1h0m0s left)", serverString(r3.addr))
	tests := []struct {
		desc   string
		quorum int
		err    string
	}{
		{desc: "all by default", quorum: 0, err: "dnsprop: not converged: " + lag + ": context deadline exceeded"},
		{desc: "two of three", quorum: 2},
		{desc: "three of three", quorum: 3, err: "dnsprop: not converged: " + lag + ": context deadline exceeded"},
		{desc: "more than given", quorum: 4, err: "dnsprop: quorum 4 exceeds the 3 resolvers given"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			c := &Checker{Resolvers: []netip.AddrPort{r1.addr, r2.addr, r3.addr}, Quorum: tc.quorum}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			rep, err := c.WaitResolvers(ctx, []string{"www.example.org."}, Sets{A: addrs("192.0.2.1")}, Sets{A: addrs("192.0.2.2")}, nil)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error = %v\nwant %s", err, tc.err)
				}
				return
			}
			if err != nil || !rep.Converged {
				t.Fatalf("WaitResolvers = %v; want converged", err)
			}
			if got := lagging(rep); got != lag {
				t.Errorf("Lagging = %q, want %q", got, lag)
			}
		})
	}
}

// TestCancelReturnsPromptly: cancelling ctx ends the wait at once with the
// last report, whether it waits for a TTL or for an answer.
func TestCancelReturnsPromptly(t *testing.T) {
	t.Parallel()
	oldZ := zone{records: []string{soa(1, 300, 60), "www.example.org. 3600 IN A 192.0.2.1", "www.example.org. 3600 IN AAAA 2001:db8::1"}}
	tests := []struct {
		desc   string
		handle func(*dns.Msg, string) *dns.Msg
		err    string
	}{
		{desc: "waiting for a TTL", handle: serve(oldZ),
			err: "dnsprop: not converged: RES www.example.org. A old {192.0.2.1}, want {192.0.2.2} (ttl 1h0m0s left); RES www.example.org. AAAA old {2001:db8::1}, want none (ttl 1h0m0s left): context canceled"},
		{desc: "waiting for an answer", handle: drop, err: "dnsprop: not converged: nothing observed yet: context canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			f := startFake(t, "127.0.0.1", 0, tc.handle)
			c := &Checker{Resolvers: []netip.AddrPort{f.addr}, QueryTimeout: 10 * time.Second}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			start := time.Now()
			var summary *Report
			rep, err := c.WaitResolvers(ctx, []string{"www.example.org."}, SetsOf(addrs("192.0.2.1", "2001:db8::1")), SetsOf(addrs("192.0.2.2")),
				func(ev Event) {
					if ev.Kind == EventSummary {
						summary = ev.Report
					}
				})
			if d := time.Since(start); d > time.Second {
				t.Errorf("returned %s after start, want about 200ms", d)
			}
			want := strings.ReplaceAll(tc.err, "RES", serverString(f.addr))
			if err == nil || err.Error() != want {
				t.Fatalf("error = %v\nwant %s", err, want)
			}
			if !errors.Is(err, context.Canceled) || rep == nil || summary != rep {
				t.Errorf("want an error wrapping context.Canceled, a report, and the report in the summary event")
			}
		})
	}
}

// TestWaitBoth: Wait needs the authoritative servers and the resolvers at
// once; observations list the authoritative servers first.
func TestWaitBoth(t *testing.T) {
	t.Parallel()
	recs := func(www string) []string {
		return []string{soa(5, 300, 60), "example.org. 300 IN NS ns1.example.org.", "ns1.example.org. 300 IN A 127.0.0.1",
			"www.example.org. 5 IN A " + www, "mail.example.org. 5 IN A 192.0.2.2"}
	}
	tests := []struct {
		desc     string
		resolver string // what the resolver serves for www
		err      string
	}{
		{desc: "all new", resolver: "192.0.2.2"},
		{desc: "resolver old", resolver: "192.0.2.1", err: "dnsprop: not converged: RES www.example.org. A old {192.0.2.1}, want {192.0.2.2} (ttl 5s left): context deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			a1 := startFake(t, "127.0.0.1", 0, serve(zone{aa: true, records: recs("192.0.2.2")}))
			a2 := startFake(t, "127.0.0.2", 0, serve(zone{aa: true, records: recs("192.0.2.2")}))
			res := startFake(t, "127.0.0.1", 0, serve(zone{records: recs(tc.resolver)}))
			c := &Checker{Zone: "example.org.", Authoritative: []netip.AddrPort{a1.addr, a2.addr}, Resolvers: []netip.AddrPort{res.addr}}
			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			defer cancel()
			rep, err := c.Wait(ctx, []string{"www.example.org.", "mail.example.org."}, Sets{A: addrs("192.0.2.1")}, Sets{A: addrs("192.0.2.2")}, nil)
			r := serverString(res.addr)
			if tc.err != "" {
				if want := strings.ReplaceAll(tc.err, "RES", r); err == nil || err.Error() != want {
					t.Fatalf("Wait error = %v\nwant %s", err, want)
				}
			} else if err != nil || !rep.Converged {
				t.Fatalf("Wait = %v, %v; want converged", lagging(rep), err)
			}
			var got []string
			for _, o := range rep.Observations {
				got = append(got, fmt.Sprintf("%s %s %s %s %s", serverString(o.Server), o.Role, o.Name, o.Type, o.State))
			}
			s1, s2 := serverString(a1.addr), serverString(a2.addr)
			want := []string{
				s1 + " authoritative www.example.org. A new", s1 + " authoritative www.example.org. AAAA new",
				s1 + " authoritative mail.example.org. A new", s1 + " authoritative mail.example.org. AAAA new",
				s2 + " authoritative www.example.org. A new", s2 + " authoritative www.example.org. AAAA new",
				s2 + " authoritative mail.example.org. A new", s2 + " authoritative mail.example.org. AAAA new",
				r + " resolver www.example.org. A " + map[bool]string{true: "old", false: "new"}[tc.err != ""], r + " resolver www.example.org. AAAA new",
				r + " resolver mail.example.org. A new", r + " resolver mail.example.org. AAAA new",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("observations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestConfigErrors: bad input is refused before any question is sent.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	res := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}
	want := Sets{A: addrs("192.0.2.2")}
	tests := []struct {
		desc  string
		c     Checker
		names []string
		types []string // nil: WaitResolvers, else WaitTypes
		want  Sets
		err   string
	}{
		{desc: "no resolvers", c: Checker{}, names: []string{"www.example.org."}, want: want, err: "dnsprop: no resolvers given: waiting on resolvers needs at least one"},
		{desc: "no names", c: Checker{Resolvers: res}, want: want, err: "dnsprop: no names given"},
		{desc: "bad name", c: Checker{Resolvers: res}, names: []string{"a..b"}, want: want, err: `dnsprop: invalid name "a..b": empty label`},
		{desc: "not a host name", c: Checker{Resolvers: res}, names: []string{"bad name!!"}, want: want, err: `dnsprop: invalid name "bad name!!": ' ' is not a letter, digit, '-' or '_'`},
		{desc: "label of 64", c: Checker{Resolvers: res}, names: []string{strings.Repeat("a", 64) + ".org"}, want: want, err: fmt.Sprintf(`dnsprop: invalid name "%s.org": label "%[1]s" is longer than 63 characters`, strings.Repeat("a", 64))},
		{desc: "name of 268", c: Checker{Resolvers: res}, names: []string{strings.Repeat("a.", 134)}, want: want, err: fmt.Sprintf(`dnsprop: invalid name "%s": 267 characters, at most 253 allowed`, strings.Repeat("a.", 134))},
		{desc: "leading hyphen", c: Checker{Resolvers: res}, names: []string{"-mail.example.org"}, want: want, err: `dnsprop: invalid name "-mail.example.org": label "-mail" starts or ends with '-'`},
		{desc: "resolver twice", c: Checker{Resolvers: append(res, netip.MustParseAddrPort("127.0.0.2:53"), res[0])}, names: []string{"www.example.org."}, want: want, err: `dnsprop: resolver 127.0.0.1:1 given twice (1st and 3rd)`},
		{desc: "authoritative twice", c: Checker{Resolvers: res, Authoritative: append(res, res[0])}, names: []string{"www.example.org."}, want: want, err: `dnsprop: authoritative 127.0.0.1:1 given twice (1st and 2nd)`},
		{desc: "IPv6 expected, A only", c: Checker{Resolvers: res}, names: []string{"www.example.org."}, types: []string{"A"}, want: SetsOf(addrs("192.0.2.2", "2001:db8::2")), err: "dnsprop: expected AAAA addresses but AAAA is not watched"},
		{desc: "only the absent type watched", c: Checker{Resolvers: res}, names: []string{"www.example.org."}, types: []string{"AAAA"}, want: want, err: "dnsprop: expected A addresses but A is not watched"},
		{desc: "unknown type", c: Checker{Resolvers: res}, names: []string{"www.example.org."}, types: []string{"A", "MX"}, want: want, err: `dnsprop: record types ["A" "MX"]: want A, AAAA or both, once each`},
		{desc: "type twice", c: Checker{Resolvers: res}, names: []string{"www.example.org."}, types: []string{"A", "A"}, want: want, err: `dnsprop: record types ["A" "A"]: want A, AAAA or both, once each`},
		{desc: "bad zone", c: Checker{Resolvers: res, Zone: "a..b"}, names: []string{"www.example.org."}, want: want, err: `dnsprop: invalid zone "a..b"`},
		{desc: "negative quorum", c: Checker{Resolvers: res, Quorum: -1}, names: []string{"www.example.org."}, want: want, err: "dnsprop: quorum -1 is negative"},
		{desc: "invalid server", c: Checker{Resolvers: []netip.AddrPort{{}}}, names: []string{"www.example.org."}, want: want, err: `dnsprop: invalid server address "invalid AddrPort"`},
		{desc: "empty expected sets", c: Checker{Resolvers: res}, names: []string{"www.example.org."}, err: "dnsprop: expected sets are both empty"},
		{desc: "IPv6 in A", c: Checker{Resolvers: res}, names: []string{"www.example.org."}, want: Sets{A: addrs("2001:db8::1")}, err: `dnsprop: expected A address "2001:db8::1" is not IPv4`},
		{desc: "IPv4 in AAAA", c: Checker{Resolvers: res}, names: []string{"www.example.org."}, want: Sets{AAAA: addrs("192.0.2.1")}, err: `dnsprop: expected AAAA address "192.0.2.1" is not IPv6`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			wait := tc.c.WaitResolvers
			if tc.types != nil {
				wait = func(ctx context.Context, names []string, old, want Sets, progress func(Event)) (*Report, error) {
					return tc.c.WaitTypes(ctx, names, tc.types, old, want, progress)
				}
			}
			rep, err := wait(context.Background(), tc.names, Sets{}, tc.want, nil)
			if err == nil || err.Error() != tc.err || rep != nil {
				t.Fatalf("error = %v, report %v\nwant %s and no report", err, rep, tc.err)
			}
		})
	}
	if _, err := (&Checker{}).WaitAuthoritative(context.Background(), []string{"www.example.org."}, Sets{}, want, nil); err == nil ||
		err.Error() != "dnsprop: no resolvers given: finding the zone needs at least one" || !errors.Is(err, ErrNoResolvers) {
		t.Errorf("WaitAuthoritative without zone or resolvers: %v", err)
	}
	if _, err := (&Checker{Zone: "example.org."}).Observe(context.Background(), []string{"www.example.org."}); err == nil ||
		err.Error() != "dnsprop: no resolvers given: discovering the authoritative servers needs at least one" {
		t.Errorf("Observe without authoritative servers or resolvers: %v", err)
	}
	if _, err := (&Checker{Zone: "example.org.", Authoritative: res}).Observe(context.Background(), []string{"www.other.org."}); err == nil ||
		err.Error() != `dnsprop: name "www.other.org." is not in zone "example.org."` {
		t.Errorf("Observe of a name outside the zone: %v", err)
	}
}

// TestIPv6Resolver: resolvers may be IPv6 addresses, given as "[v6]:port".
func TestIPv6Resolver(t *testing.T) {
	t.Parallel()
	f := startFake(t, "::1", 0, serve(zone{records: []string{soa(1, 300, 60), "www.example.org. 60 IN AAAA 2001:db8::2"}}))
	r, err := ParseServer(fmt.Sprintf("[::1]:%d", f.addr.Port()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rep, err := (&Checker{Resolvers: []netip.AddrPort{r}}).WaitResolvers(ctx, []string{"www.example.org."}, SetsOf(addrs("2001:db8::1")), SetsOf(addrs("2001:db8::2")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Converged || rep.Queries[r] != 2 {
		t.Fatalf("WaitResolvers over IPv6: converged %v, queries %v; want converged after 2 questions", rep.Converged, rep.Queries)
	}
}

// TestStableButWrong: WaitTypes watches only the record types asked for; an
// answer that is still wrong after the TTL of its first copy ran out (a
// resolver) or at the newest serial (an authoritative server) is stable, and
// when every wrong answer is, the report says waiting longer will not help.
// The clock is fake: the 30 s TTL passes in no time.
func TestStableButWrong(t *testing.T) {
	t.Parallel()
	const T = 1_700_000_000
	records := func(extra ...string) []string {
		return append([]string{soa(1, 300, 60), "example.org. 300 IN NS ns1.example.org.", "ns1.example.org. 300 IN A 127.0.0.1"}, extra...)
	}
	tests := []struct {
		desc      string
		records   []string
		types     []string
		old, want Sets
		err       string        // "" = converged
		at        time.Duration // when the first report said stable but wrong, from T
		aaaaAsked bool
	}{
		{
			desc:    "IPv4 expected: A only, the AAAA is not asked",
			records: records("mail.example.org. 30 IN A 192.0.2.2", "mail.example.org. 30 IN AAAA 2001:db8::20"),
			types:   []string{"A"}, want: SetsOf(addrs("192.0.2.2")),
		},
		{
			desc:    "AAAA must be absent but stays",
			records: records("mail.example.org. 30 IN A 192.0.2.2", "mail.example.org. 30 IN AAAA 2001:db8::20"),
			types:   []string{"A", "AAAA"}, want: SetsOf(addrs("192.0.2.2")), aaaaAsked: true,
			err: "dnsprop: not converged: AUTH mail.example.org. AAAA other {2001:db8::20}, want none (stable: at serial 1, the newest); " +
				"RES mail.example.org. AAAA other {2001:db8::20}, want none (stable: served again after its TTL ran out): context canceled",
			at: 30*time.Second + ttlSlack,
		},
		{
			desc:    "the zone still serves the old address",
			records: records("mail.example.org. 30 IN A 192.0.2.1"),
			types:   []string{"A"}, old: SetsOf(addrs("192.0.2.1")), want: SetsOf(addrs("192.0.2.2")),
			err: "dnsprop: not converged: AUTH mail.example.org. A old {192.0.2.1}, want {192.0.2.2} (stable: at serial 1, the newest); " +
				"RES mail.example.org. A old {192.0.2.1}, want {192.0.2.2} (stable: served again after its TTL ran out): context canceled",
			at: 30*time.Second + ttlSlack,
		},
		{
			desc:    "no record where one is expected",
			records: records("mail.example.org. 30 IN TXT x"),
			types:   []string{"A"}, want: SetsOf(addrs("192.0.2.2")),
			err: "dnsprop: not converged: AUTH mail.example.org. A missing (stable: at serial 1, the newest); " +
				"RES mail.example.org. A missing (stable: served again after its TTL ran out): context canceled",
			at: 60*time.Second + ttlSlack, // the negative TTL
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			aaaa := 0
			count := func(h func(*dns.Msg, string) *dns.Msg) func(*dns.Msg, string) *dns.Msg {
				return func(req *dns.Msg, n string) *dns.Msg {
					if q := req.Question[0]; q.Qtype == dns.TypeAAAA && q.Name == "mail.example.org." {
						mu.Lock()
						aaaa++
						mu.Unlock()
					}
					return h(req, n)
				}
			}
			auth := startFake(t, "127.0.0.1", 0, count(serve(zone{aa: true, records: tc.records})))
			res := startFake(t, "127.0.0.1", 0, count(serve(zone{records: tc.records})))
			clk := &fakeClock{now: time.Unix(T, 0)}
			c := &Checker{Zone: "example.org.", Authoritative: []netip.AddrPort{auth.addr}, Resolvers: []netip.AddrPort{res.addr}, Clock: clk.Now, after: clk.After}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var etas []time.Duration // ETA of each progress report while not stable
			var stableAt time.Time
			rep, err := c.WaitTypes(ctx, []string{"mail.example.org."}, tc.types, tc.old, tc.want, func(ev Event) {
				switch {
				case ev.Kind != EventProgress:
				case ev.Report.StableButWrong:
					if stableAt.IsZero() {
						stableAt = ev.Report.At
					}
					cancel()
				case len(etas) == 0 || ev.Report.ETA != etas[len(etas)-1]:
					etas = append(etas, ev.Report.ETA)
				}
			})
			want := strings.NewReplacer("AUTH", serverString(auth.addr), "RES", serverString(res.addr)).Replace(tc.err)
			if tc.err == "" {
				if err != nil || !rep.Converged || rep.StableButWrong {
					t.Fatalf("WaitTypes = %v, %v; want converged", lagging(rep), err)
				}
			} else {
				if err == nil || err.Error() != want {
					t.Fatalf("WaitTypes error = %v\nwant %s", err, want)
				}
				if !rep.StableButWrong || rep.ETA != 0 || stableAt.Sub(time.Unix(T, 0)) != tc.at {
					t.Errorf("report stable but wrong %v, ETA %s, first at T+%s; want true, 0s, first at T+%s", rep.StableButWrong, rep.ETA, stableAt.Sub(time.Unix(T, 0)), tc.at)
				}
				if len(etas) == 0 || etas[0] != tc.at-ttlSlack {
					t.Errorf("ETAs before the answers were stable: %v, want the TTL (%s) first", etas, tc.at-ttlSlack)
				}
			}
			if got := strings.Join(rep.Types, ","); got != strings.Join(tc.types, ",") {
				t.Errorf("Report.Types = %q, want %q", got, tc.types)
			}
			mu.Lock()
			defer mu.Unlock()
			if (aaaa > 0) != tc.aaaaAsked {
				t.Errorf("AAAA asked %d times, want asked: %v", aaaa, tc.aaaaAsked)
			}
		})
	}
}

// TestWaitAuthoritativeTypes: authoritative servers only, as the manual
// provider waits: a wanted TTL must be served exactly, and an empty wanted
// set means the RRset must not exist. The clock is fake.
func TestWaitAuthoritativeTypes(t *testing.T) {
	t.Parallel()
	records := func(extra ...string) []string {
		return append([]string{soa(1, 300, 60), "example.org. 300 IN NS ns1.example.org."}, extra...)
	}
	tests := []struct {
		desc    string
		records []string
		types   []string
		want    Sets
		err     string // "" = converged
	}{
		{
			desc:    "the wanted TTL is served",
			records: records("mail.example.org. 5 IN A 192.0.2.2"),
			types:   []string{"A"}, want: Sets{A: addrs("192.0.2.2"), TTL: 5 * time.Second},
		},
		{
			desc:    "the addresses are right, the TTL is not",
			records: records("mail.example.org. 30 IN A 192.0.2.2"),
			types:   []string{"A"}, want: Sets{A: addrs("192.0.2.2"), TTL: 5 * time.Second},
			err: "dnsprop: not converged: AUTH mail.example.org. A other {192.0.2.2} ttl 30s, want {192.0.2.2} ttl 5s " +
				"(stable: at serial 1, the newest): context canceled",
		},
		{
			desc:    "no TTL wanted: any is fine",
			records: records("mail.example.org. 30 IN A 192.0.2.2"),
			types:   []string{"A"}, want: Sets{A: addrs("192.0.2.2")},
		},
		{
			desc:    "an RRset that must not exist is gone",
			records: records("mail.example.org. 30 IN A 192.0.2.2"),
			types:   []string{"AAAA"}, want: Sets{TTL: 30 * time.Second},
		},
		{
			desc:    "an RRset that must not exist stays",
			records: records("mail.example.org. 30 IN A 192.0.2.2", "mail.example.org. 30 IN AAAA 2001:db8::20"),
			types:   []string{"AAAA"},
			err:     "dnsprop: not converged: AUTH mail.example.org. AAAA other {2001:db8::20}, want none (stable: at serial 1, the newest): context canceled",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			auth := startFake(t, "127.0.0.1", 0, serve(zone{aa: true, records: tc.records}))
			clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
			c := &Checker{Zone: "example.org.", Authoritative: []netip.AddrPort{auth.addr}, Clock: clk.Now, after: clk.After}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rep, err := c.WaitAuthoritativeTypes(ctx, []string{"mail.example.org."}, tc.types, Sets{}, tc.want, func(ev Event) {
				if ev.Kind == EventProgress && ev.Report.StableButWrong {
					cancel()
				}
			})
			if tc.err == "" {
				if err != nil || !rep.Converged {
					t.Fatalf("WaitAuthoritativeTypes = %v, %v; want converged", lagging(rep), err)
				}
				return
			}
			want := strings.ReplaceAll(tc.err, "AUTH", serverString(auth.addr))
			if err == nil || err.Error() != want {
				t.Fatalf("WaitAuthoritativeTypes error = %v\nwant %s", err, want)
			}
		})
	}
}
