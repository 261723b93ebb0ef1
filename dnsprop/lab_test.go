package dnsprop_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/dnsprop"
	"github.com/cutover-dev/cutover/internal/lab"
)

// TestLabPropagation runs against real servers: a BIND primary and secondary
// (NOTIFY/IXFR, TSIG) and two Unbound caches. The A record of mail is changed
// with a TSIG-signed update; the caches keep the old answer until its TTL runs
// out, and Wait reports convergence just after the last one lets it go.
func TestLabPropagation(t *testing.T) {
	lab.Require(t, "root", "ip", "named", "unbound")
	t.Parallel()
	const ttl = 3
	n := lab.NewNet(t)
	oldIP, newIP := n.IP(10), n.IP(20)
	z := lab.Zone{Origin: "example.org.", TTL: ttl, Minimum: 2, Records: []string{fmt.Sprintf("mail %d IN A %s", ttl, oldIP)}}
	d := lab.NewDNSLab(t, n, z)
	names := []string{"mail.example.org."}
	oldSets, newSets := dnsprop.Sets{A: []netip.Addr{oldIP}}, dnsprop.Sets{A: []netip.Addr{newIP}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Discovery through the caches finds both BIND servers by their NS names.
	auto := &dnsprop.Checker{Resolvers: d.Resolvers()}
	facts, err := auto.Observe(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	var servers []string
	for _, s := range facts.Servers {
		servers = append(servers, s.Name+"="+s.Addr.String())
	}
	wantServers := fmt.Sprintf("ns1.example.org.=%s ns2.example.org.=%s", d.Primary.Addr, d.Secondary.Addr)
	if got := strings.Join(servers, " "); got != wantServers {
		t.Fatalf("discovered %q, want %q", got, wantServers)
	}
	a := facts.Names[0].A
	if facts.Zone != "example.org." || !slices.Equal(a.Addrs, []netip.Addr{oldIP}) || a.TTL != ttl*time.Second ||
		facts.Names[0].AAAA.Exists() || facts.NegativeTTL != 2*time.Second || facts.Serials[d.Primary.Addr] != 1 || facts.Serials[d.Secondary.Addr] != 1 {
		t.Fatalf("facts: zone %q A %+v AAAA %+v negative TTL %s serials %v", facts.Zone, a, facts.Names[0].AAAA, facts.NegativeTTL, facts.Serials)
	}

	// Prime both caches with the old answer (Wait with discovery: the zone by
	// SOA, the servers by NS, the primary by the SOA MNAME).
	rep, err := auto.Wait(ctx, names, dnsprop.Sets{}, oldSets, nil)
	if err != nil {
		t.Fatal(err)
	}
	primed := map[netip.AddrPort]time.Time{}
	for _, o := range rep.Observations {
		if o.Type == "A" {
			primed[o.Server] = o.At
		}
	}
	time.Sleep(time.Second) // the caches now hold the old answer with about 2 s left

	// Ground truth: probe each cache every 20 ms, noting the last old and the
	// first new answer.
	type seen struct{ lastOld, firstNew time.Time }
	truth := map[netip.AddrPort]*seen{}
	var mu sync.Mutex
	probeCtx, stopProbe := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, r := range d.Resolvers() {
		truth[r] = &seen{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
			for probeCtx.Err() == nil {
				m := new(dns.Msg)
				m.SetQuestion("mail.example.org.", dns.TypeA)
				resp, _, err := cl.Exchange(m, r.String())
				now := time.Now()
				if err == nil && len(resp.Answer) > 0 {
					if rr, ok := resp.Answer[0].(*dns.A); ok {
						ip, _ := netip.AddrFromSlice(rr.A.To4())
						mu.Lock()
						switch s := truth[r]; {
						case ip == oldIP:
							s.lastOld = now
						case ip == newIP && s.firstNew.IsZero():
							s.firstNew = now
						}
						mu.Unlock()
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}

	updated := time.Now()
	if rc := update(d, "mail.example.org.", newIP, ttl); rc != "NOERROR" {
		t.Fatalf("signed update: %s", rc)
	}

	var view bytes.Buffer
	v := dnsprop.NewView(&view, false, true)
	var timeline []string
	c := &dnsprop.Checker{Zone: "example.org.", Authoritative: d.Authoritative(), Resolvers: d.Resolvers(), PollInterval: 250 * time.Millisecond}
	waitStart := time.Now()
	rep, err = c.Wait(ctx, names, oldSets, newSets, func(ev dnsprop.Event) {
		v.Event(ev)
		if ev.Kind == dnsprop.EventChange {
			o := ev.Obs
			timeline = append(timeline, fmt.Sprintf("+%4dms %s %s %s %s %v ttl %s serial %d", o.At.Sub(updated).Milliseconds(),
				o.Role, o.Server, o.Type, o.State, o.Addrs, o.TTL, o.Serial))
		}
	})
	converged := time.Now()
	stopProbe()
	wg.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	for _, l := range timeline {
		t.Log(l)
	}

	// Each cache kept serving the old answer after the update, until its TTL
	// ran out (counted from when it was primed), and not much longer.
	var lastExpiry time.Time
	for _, r := range d.Resolvers() {
		s := truth[r]
		expiry := primed[r].Truncate(time.Second).Add(ttl * time.Second)
		t.Logf("cache %s: primed %s, old until +%dms, new from +%dms after the update (TTL from priming runs out at +%dms)",
			r, primed[r].Format("15:04:05.000"), s.lastOld.Sub(updated).Milliseconds(), s.firstNew.Sub(updated).Milliseconds(), expiry.Sub(updated).Milliseconds())
		if s.lastOld.Sub(updated) < 500*time.Millisecond {
			t.Errorf("cache %s stopped serving the old answer %s after the update, want it kept until its TTL ran out", r, s.lastOld.Sub(updated))
		}
		if s.firstNew.IsZero() || s.firstNew.Before(expiry.Add(-50*time.Millisecond)) || s.firstNew.After(expiry.Add(1500*time.Millisecond)) {
			t.Errorf("cache %s served the new answer from %s, want from its TTL expiry %s (within 1.5 s)", r, s.firstNew.Format("15:04:05.000"), expiry.Format("15:04:05.000"))
		}
		if s.firstNew.After(lastExpiry) {
			lastExpiry = s.firstNew
		}
	}
	// Wait waited for exactly that.
	if converged.Before(lastExpiry.Add(-30 * time.Millisecond)) {
		t.Errorf("Wait converged at %s, before the last cache served the new answer at %s", converged.Format("15:04:05.000"), lastExpiry.Format("15:04:05.000"))
	}
	latency := converged.Sub(lastExpiry)
	t.Logf("detection latency: %dms from the last cache's first new answer to reported convergence (target < 1000ms)", latency.Milliseconds())
	if latency > time.Second {
		t.Errorf("detection latency %s, want < 1s", latency)
	}

	// Cost: resolver questions vs a fixed 2 s poller over the same wait.
	elapsed := converged.Sub(waitStart)
	var resQueries int
	for _, r := range d.Resolvers() {
		resQueries += rep.Queries[r]
	}
	keys := len(d.Resolvers()) * len(names) * 2
	fixed := keys * (int(elapsed/(2*time.Second)) + 1)
	// A fixed 2 s poller started with the wait sees the change at its first
	// tick after the last expiry.
	fixedSeen := waitStart.Add((lastExpiry.Sub(waitStart)/(2*time.Second) + 1) * 2 * time.Second)
	t.Logf("resolver questions: %d TTL-aware vs %d for a fixed 2 s poller over the %dms wait (%d server/name/type pairs; the poller would have detected convergence %dms after the last expiry); authoritative questions: %d (SOA every 250ms)",
		resQueries, fixed, elapsed.Milliseconds(), keys, fixedSeen.Sub(lastExpiry).Milliseconds(), rep.Queries[d.Primary.Addr]+rep.Queries[d.Secondary.Addr])
	if resQueries > 3*keys {
		t.Errorf("%d resolver questions, want at most 3 per server, name and type (%d)", resQueries, 3*keys)
	}
	if !rep.Converged || len(rep.Lagging) != 0 {
		t.Errorf("final report: converged %v lagging %q", rep.Converged, rep.Lagging)
	}
	// The JSON lines name no secret.
	if strings.Contains(view.String(), d.Key.Secret) || !strings.Contains(view.String(), `"kind":"summary"`) {
		t.Errorf("view output leaks the TSIG secret or lacks the summary")
	}
}

// update replaces the A RRset of name at the primary with a TSIG-signed
// dynamic update and returns the response code.
func update(d *lab.DNSLab, name string, addr netip.Addr, ttl int) string {
	m := new(dns.Msg)
	m.SetUpdate(d.Zone.Origin)
	rr, err := dns.NewRR(fmt.Sprintf("%s %d IN A %s", name, ttl, addr))
	if err != nil {
		return err.Error()
	}
	m.RemoveRRset([]dns.RR{rr})
	m.Insert([]dns.RR{rr})
	d.Key.Sign(m)
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second, TsigSecret: d.Key.SecretMap()}
	r, _, err := c.Exchange(m, d.Primary.Addr.String())
	if err != nil {
		return "error: " + err.Error()
	}
	return dns.RcodeToString[r.Rcode]
}
