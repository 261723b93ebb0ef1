package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startTimeout bounds how long a server may take to become ready.
const startTimeout = 30 * time.Second

// Zone is the content of the lab's zone.
type Zone struct {
	Origin  string   // "example.org."
	TTL     uint32   // $TTL default; 0 means 30
	Minimum uint32   // SOA minimum = negative-caching TTL (0 is served as 0)
	Records []string // zone-file lines after the SOA, e.g. "mail 30 IN A 127.0.0.10"
}

// BINDOptions configures one BIND 9 server.
type BINDOptions struct {
	Addr netip.Addr // listen address, port 53
	Zone Zone
	// Key allows updates (allow-update { key }) and AXFR/IXFR (allow-transfer { key }) only when
	// signed with it; answers to signed requests are signed. A zero Key gets a fresh NewTSIG.
	Key         TSIG
	Secondaries []netip.Addr // primary: notify explicit + also-notify these; they get NS ns2, ns3, ...
	Primary     netip.Addr   // if valid: run as a secondary of Zone, transferring from Primary with Key
}

// BIND is a running named.
type BIND struct {
	zoneServer
}

// StartBIND writes a named.conf and zone in a fresh temp dir, starts `named -g` and waits until
// it answers the zone's SOA with AA (a secondary: until it has transferred the zone).
//
// The primary's zone has the SOA (serial 1, refresh 5, retry 2, expire 3600, minimum
// Zone.Minimum), NS ns1 with ns1 A = Addr, and NS ns2, ns3, ... with A glue for each secondary,
// followed by Zone.Records. NOTIFY is sent without delay; a secondary accepts NOTIFY from its
// primary and asks for IXFR.
func StartBIND(opts BINDOptions) (*BIND, error) {
	if err := checkLabAddr("bind", opts.Addr); err != nil {
		return nil, err
	}
	secondary := opts.Primary.IsValid()
	if secondary {
		if err := checkLabAddr("bind: primary", opts.Primary); err != nil {
			return nil, err
		}
	}
	for _, s := range opts.Secondaries {
		if err := checkLabAddr("bind: secondary", s); err != nil {
			return nil, err
		}
	}
	origin, key, err := zoneAndKey("bind", opts.Zone, opts.Key)
	if err != nil {
		return nil, err
	}
	named, err := mustBin("named", "named")
	if err != nil {
		return nil, err
	}
	role := "primary"
	if secondary {
		role = "secondary"
	}
	name := fmt.Sprintf("named %s %s", role, opts.Addr)

	b := &BIND{zoneServer{Key: key, zone: origin}}
	write := func(dir string) ([]string, error) {
		conf := filepath.Join(dir, "named.conf")
		if err := os.WriteFile(conf, []byte(namedConf(dir, opts, key, origin)), 0o600); err != nil {
			return nil, err
		}
		if !secondary {
			if err := os.WriteFile(filepath.Join(dir, "zone.db"), []byte(zoneFile(opts, origin)), 0o644); err != nil {
				return nil, err
			}
		}
		return []string{named, "-g", "-4", "-n", "1", "-c", conf}, nil
	}
	ready := func(ctx context.Context) error {
		if !secondary && logContains(b.LogPath(), "not loaded due to errors") {
			return errFatal
		}
		_, err := soaSerial(ctx, b.Addr, origin)
		return err
	}
	if err := b.start("named", name, opts.Addr, "named.log", write, ready); err != nil {
		return nil, err
	}
	return b, nil
}

// NewBIND starts a BIND server for the test and stops it at the end of the test.
func NewBIND(t testing.TB, opts BINDOptions) *BIND {
	t.Helper()
	Require(t, "root", "ip", "named")
	b, err := StartBIND(opts)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, b.Stop)
	return b
}

// soaSerial asks server for zone's SOA over UDP and requires an authoritative answer.
func soaSerial(ctx context.Context, server netip.AddrPort, zone string) (uint32, error) {
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeSOA)
	m.RecursionDesired = false
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, server.String())
	if err != nil {
		return 0, fmt.Errorf("lab: SOA %s at %s: %w", zone, server, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return 0, fmt.Errorf("lab: SOA %s at %s: %s", zone, server, dns.RcodeToString[r.Rcode])
	}
	if !r.Authoritative {
		return 0, fmt.Errorf("lab: SOA %s at %s: answer is not authoritative", zone, server)
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial, nil
		}
	}
	return 0, fmt.Errorf("lab: SOA %s at %s: no SOA in the answer", zone, server)
}

// errFatal from a readiness check means the server cannot become ready (its log says why).
var errFatal = errors.New("lab: fatal error in the server log")

// logContains reports whether the log at path contains s.
func logContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

// waitReady polls ready every 50 ms until it succeeds, the process exits (error with its log
// tail) or startTimeout passes (error with the last cause and the log tail).
func waitReady(p *proc, ready func(ctx context.Context) error) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for {
		if p.exited() {
			return p.exitErr()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		last = ready(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if errors.Is(last, errFatal) {
			return fmt.Errorf("lab: %s failed to start%s", p.name, logTail(p.logPath))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s not ready after %s: %w%s", p.name, startTimeout, last, logTail(p.logPath))
		}
		select {
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func namedConf(dir string, o BINDOptions, key TSIG, origin string) string {
	var s strings.Builder
	q := func(p string) string { return `"` + filepath.Join(dir, p) + `"` }
	fmt.Fprintf(&s, "key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n\n", key.Name, key.Algorithm, key.Secret)
	fmt.Fprintf(&s, "controls { };\n\noptions {\n")
	fmt.Fprintf(&s, "\tdirectory %q;\n", dir)
	fmt.Fprintf(&s, "\tpid-file %s;\n\tlock-file %s;\n\tsession-keyfile %s;\n", q("named.pid"), q("named.lock"), q("session.key"))
	fmt.Fprintf(&s, "\tmanaged-keys-directory %q;\n\tdump-file %s;\n\tstatistics-file %s;\n", dir, q("named.dump"), q("named.stats"))
	fmt.Fprintf(&s, "\tlisten-on port 53 { %s; };\n\tlisten-on-v6 { none; };\n", o.Addr)
	fmt.Fprintf(&s, "\tnotify-source %s;\n\ttransfer-source %s;\n\tquery-source address %s;\n", o.Addr, o.Addr, o.Addr)
	s.WriteString("\trecursion no;\n\tdnssec-validation no;\n\tempty-zones-enable no;\n")
	s.WriteString("\tallow-query { any; };\n\tallow-transfer { none; };\n\tallow-update { none; };\n")
	s.WriteString("\tnotify-delay 0;\n\tmin-refresh-time 1;\n\tmin-retry-time 1;\n\tmax-refresh-time 5;\n\tmax-retry-time 2;\n")
	s.WriteString("\tminimal-responses no;\n\tmax-ixfr-ratio unlimited;\n};\n\n")
	if o.Primary.IsValid() {
		fmt.Fprintf(&s, "server %s {\n\tkeys { %q; };\n\trequest-ixfr yes;\n};\n\n", o.Primary, key.Name)
		fmt.Fprintf(&s, "zone %q {\n\ttype secondary;\n\tfile %s;\n", origin, q("secondary.db"))
		fmt.Fprintf(&s, "\tprimaries { %s key %q; };\n\tallow-notify { %s; };\n", o.Primary, key.Name, o.Primary)
		fmt.Fprintf(&s, "\tallow-transfer { key %q; };\n\tnotify no;\n};\n", key.Name)
		return s.String()
	}
	fmt.Fprintf(&s, "zone %q {\n\ttype primary;\n\tfile %s;\n", origin, q("zone.db"))
	fmt.Fprintf(&s, "\tallow-update { key %q; };\n\tallow-transfer { key %q; };\n", key.Name, key.Name)
	if len(o.Secondaries) > 0 {
		s.WriteString("\tnotify explicit;\n\talso-notify {")
		for _, a := range o.Secondaries {
			fmt.Fprintf(&s, " %s;", a)
		}
		s.WriteString(" };\n")
	} else {
		s.WriteString("\tnotify no;\n")
	}
	s.WriteString("};\n")
	return s.String()
}

func zoneFile(o BINDOptions, origin string) string {
	ttl := o.Zone.TTL
	if ttl == 0 {
		ttl = 30
	}
	var s strings.Builder
	fmt.Fprintf(&s, "$ORIGIN %s\n$TTL %d\n", origin, ttl)
	fmt.Fprintf(&s, "@ IN SOA ns1.%s hostmaster.%s ( 1 5 2 3600 %d )\n", origin, origin, o.Zone.Minimum)
	s.WriteString("@ IN NS ns1\n")
	for i := range o.Secondaries {
		fmt.Fprintf(&s, "@ IN NS ns%d\n", i+2)
	}
	fmt.Fprintf(&s, "ns1 IN A %s\n", o.Addr)
	for i, a := range o.Secondaries {
		fmt.Fprintf(&s, "ns%d IN A %s\n", i+2, a)
	}
	for _, r := range o.Zone.Records {
		s.WriteString(r)
		s.WriteString("\n")
	}
	return s.String()
}
