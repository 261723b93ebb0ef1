// Command dnsprop benchmarks a dnsprop sweep: N names x R resolvers against
// local Unbound caches (started with internal/lab, stub zone on a local BIND
// primary holding the N names). One sweep is one WaitResolvers call whose
// expected sets are what the zone serves, so it returns after exactly one
// round: every resolver asked A and AAAA of every name. It prints the sweep
// time, questions per second and memory, for a cold cache (Unbound asks BIND)
// and then warm caches.
//
// Run as root (it adds 127.A.B.x addresses to lo): bench/dnsprop.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/dnsprop"
	"github.com/cutover-dev/cutover/internal/lab"
)

func main() {
	// The lab's servers live in a network namespace of their own, with this program.
	if err := lab.Isolate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dnsprop:", err)
		os.Exit(1)
	}
	names := flag.Int("names", 1000, "names in the zone, all asked per sweep")
	nres := flag.Int("resolvers", 4, "Unbound caches to start and sweep")
	concs := flag.String("concurrency", "16,64", "comma-separated Checker.Concurrency values to sweep with")
	sweeps := flag.Int("sweeps", 3, "warm sweeps per concurrency")
	latRuns := flag.Int("latency-runs", 3, "detection-latency runs (a 3 s TTL record changed by a signed update)")
	flag.Parse()
	if err := run(*names, *nres, *concs, *sweeps, *latRuns); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dnsprop:", err)
		os.Exit(1)
	}
}

func run(nNames, nRes int, concs string, sweeps, latRuns int) error {
	if nRes < 1 || nRes > 50 || nNames < 1 {
		return fmt.Errorf("want 1..50 resolvers and at least one name")
	}
	n, err := lab.ReserveNet()
	if err != nil {
		return err
	}
	defer n.Release()
	addr := n.IP(10)
	z := lab.Zone{Origin: "bench.example.", TTL: 3600, Minimum: 3600, Records: []string{fmt.Sprintf("probe %d IN A %s", probeTTL, n.IP(11))}}
	var names []string
	for i := range nNames {
		z.Records = append(z.Records, fmt.Sprintf("h%05d 3600 IN A %s", i, addr))
		names = append(names, fmt.Sprintf("h%05d.bench.example.", i))
	}
	setup := time.Now()
	bind, err := lab.StartBIND(lab.BINDOptions{Addr: n.IP(31), Zone: z})
	if err != nil {
		return err
	}
	defer bind.Stop()
	caches := make([]*lab.Unbound, nRes)
	errs := make([]error, nRes)
	var wg sync.WaitGroup
	for i := range nRes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			caches[i], errs[i] = lab.StartUnbound(lab.UnboundOptions{Addr: n.IP(byte(41 + i)), StubZone: z.Origin, StubAddrs: []netip.AddrPort{bind.Addr}})
		}()
	}
	wg.Wait()
	var resolvers []netip.AddrPort
	for i, u := range caches {
		if u != nil {
			defer u.Stop()
			resolvers = append(resolvers, u.Addr)
		}
		if errs[i] != nil {
			return errs[i]
		}
	}
	fmt.Printf("lab: BIND primary %s with %d names, %d Unbound caches %s .. %s (setup %s)\n",
		bind.Addr, nNames, nRes, resolvers[0].Addr(), resolvers[len(resolvers)-1].Addr(), time.Since(setup).Round(time.Millisecond))
	fmt.Printf("one sweep = %d names x %d resolvers x (A + AAAA) = %d questions; GOMAXPROCS %d\n",
		nNames, nRes, nNames*nRes*2, runtime.GOMAXPROCS(0))
	fmt.Printf("%-6s %-11s %-10s %-12s %-14s %-14s\n", "conc", "cache", "sweep", "questions/s", "alloc/sweep", "heap in use")
	want := dnsprop.Sets{A: []netip.Addr{addr}}
	first := true
	for _, cs := range strings.Split(concs, ",") {
		conc, err := strconv.Atoi(strings.TrimSpace(cs))
		if err != nil || conc < 1 {
			return fmt.Errorf("concurrency %q: want a positive integer", cs)
		}
		for i := 0; i <= sweeps; i++ {
			label := "warm"
			if first {
				label = "cold"
			} else if i == 0 {
				continue // the cold sweep is done once; skip the extra warm-up
			}
			first = false
			if err := sweep(label, conc, resolvers, names, want, nNames*nRes*2); err != nil {
				return err
			}
		}
	}
	for i := range latRuns {
		if err := latency(i, bind, resolvers, n.IP(11+byte(i)), n.IP(12+byte(i))); err != nil {
			return err
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		fmt.Printf("peak RSS of this process (Go runtime, lab setup included): %.1f MB\n", float64(ru.Maxrss)/1024)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("Go memory obtained from the OS (runtime.MemStats.Sys): %.1f MB\n", float64(ms.Sys)/(1<<20))
	return nil
}

func sweep(label string, conc int, resolvers []netip.AddrPort, names []string, want dnsprop.Sets, questions int) error {
	runtime.GC()
	debug.FreeOSMemory()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c := &dnsprop.Checker{Resolvers: resolvers, Concurrency: conc, QueryTimeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var peakHeap uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // sample the heap while the sweep runs
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	rep, err := c.WaitResolvers(ctx, names, dnsprop.Sets{}, want, nil)
	d := time.Since(start)
	close(stop)
	<-done
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	runtime.ReadMemStats(&after)
	sent := rep.TotalQueries()
	if sent != questions {
		return fmt.Errorf("sweep sent %d questions, want %d (retries or TCP fallbacks: the figures would lie)", sent, questions)
	}
	fmt.Printf("%-6d %-11s %-10s %-12.0f %-14s %-14s\n", conc, label, d.Round(time.Millisecond),
		float64(sent)/d.Seconds(), mb(after.TotalAlloc-before.TotalAlloc), mb(peakHeap))
	return nil
}

const probeTTL = 3

// latency changes probe.bench.example. from oldIP to newIP with a signed
// update after priming the caches, and measures the time from the moment the
// last cache first serves the new address (probed every 10 ms) to the moment
// Wait reports convergence.
func latency(run int, bind *lab.BIND, resolvers []netip.AddrPort, oldIP, newIP netip.Addr) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := []string{"probe.bench.example."}
	c := &dnsprop.Checker{Zone: "bench.example.", Authoritative: []netip.AddrPort{bind.Addr}, Resolvers: resolvers}
	if _, err := c.Wait(ctx, name, dnsprop.Sets{}, dnsprop.Sets{A: []netip.Addr{oldIP}}, nil); err != nil {
		return fmt.Errorf("latency: prime: %w", err)
	}
	time.Sleep(time.Second)
	firstNew := make([]time.Time, len(resolvers))
	probeCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, r := range resolvers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &dns.Client{Timeout: 500 * time.Millisecond}
			for probeCtx.Err() == nil {
				m := new(dns.Msg)
				m.SetQuestion(name[0], dns.TypeA)
				resp, _, err := cl.Exchange(m, r.String())
				if err == nil && len(resp.Answer) > 0 {
					if a, ok := resp.Answer[0].(*dns.A); ok && a.A.Equal(newIP.AsSlice()) {
						firstNew[i] = time.Now()
						return
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	m := new(dns.Msg)
	m.SetUpdate("bench.example.")
	rr, _ := dns.NewRR(fmt.Sprintf("%s %d IN A %s", name[0], probeTTL, newIP))
	m.RemoveRRset([]dns.RR{rr})
	m.Insert([]dns.RR{rr})
	bind.Key.Sign(m)
	cl := &dns.Client{Net: "tcp", Timeout: 2 * time.Second, TsigSecret: bind.Key.SecretMap()}
	if r, _, err := cl.Exchange(m, bind.Addr.String()); err != nil || r.Rcode != dns.RcodeSuccess {
		stop()
		wg.Wait()
		return fmt.Errorf("latency: signed update failed: %v %v", err, r)
	}
	start := time.Now()
	rep, err := c.Wait(ctx, name, dnsprop.Sets{A: []netip.Addr{oldIP}}, dnsprop.Sets{A: []netip.Addr{newIP}}, nil)
	converged := time.Now()
	wg.Wait()
	stop()
	if err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	var last time.Time
	for _, t := range firstNew {
		if t.After(last) {
			last = t
		}
	}
	resQ := 0
	for _, r := range resolvers {
		resQ += rep.Queries[r]
	}
	keys := len(resolvers) * 2
	elapsed := converged.Sub(start)
	fixedSeen := start.Add((last.Sub(start)/(2*time.Second) + 1) * 2 * time.Second)
	fmt.Printf("detection latency run %d: convergence reported %dms after the last cache first served the new address (target < 1000ms); "+
		"wait %dms, %d resolver questions (a fixed 2 s poller: %d, detecting %dms after)\n",
		run+1, converged.Sub(last).Milliseconds(), elapsed.Milliseconds(), resQ, keys*(int(elapsed/(2*time.Second))+1), fixedSeen.Sub(last).Milliseconds())
	return nil
}

func mb(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
