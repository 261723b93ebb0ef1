package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// KnotOptions configures one Knot DNS primary.
type KnotOptions struct {
	Addr netip.Addr // listen address, port 53
	Zone Zone
	// Key allows updates and AXFR/IXFR only when signed with it; answers to signed requests are
	// signed. A zero Key gets a fresh NewTSIG.
	Key TSIG
}

// Knot is a running knotd.
type Knot struct {
	Addr netip.AddrPort // Addr:53
	Key  TSIG
	Dir  string
	PID  int

	zone     string
	addr     netip.Addr
	proc     *proc
	stopOnce sync.Once
	stopErr  error
}

// StartKnot writes a knot.conf and zone in a fresh temp dir, starts `knotd -c knot.conf` in the
// foreground and waits until it answers the zone's SOA with AA.
//
// The zone is the one StartBIND writes for a primary without secondaries: SOA (serial 1, refresh
// 5, retry 2, expire 3600, minimum Zone.Minimum), NS ns1 with ns1 A = Addr, then Zone.Records.
// Updates are kept in the journal and written back to the zone file at once (zonefile-sync 0);
// AXFR serves them either way.
func StartKnot(opts KnotOptions) (*Knot, error) {
	if err := checkLabAddr("knot", opts.Addr); err != nil {
		return nil, err
	}
	if opts.Zone.Origin == "" || opts.Zone.Origin == "." {
		return nil, errors.New("lab: knot: Zone.Origin is required (e.g. \"example.org.\")")
	}
	if _, ok := dns.IsDomainName(opts.Zone.Origin); !ok {
		return nil, fmt.Errorf("lab: knot: Zone.Origin %q is not a domain name", opts.Zone.Origin)
	}
	key := opts.Key
	if key.Name == "" {
		key = NewTSIG("cutover-lab")
	}
	if key.Algorithm == "" {
		key.Algorithm = "hmac-sha256"
	}
	knotd, err := mustBin("knotd", "knotd")
	if err != nil {
		return nil, err
	}
	origin := dns.Fqdn(strings.ToLower(opts.Zone.Origin))
	name := fmt.Sprintf("knotd %s", opts.Addr)

	dir, err := makeTempDir("knot")
	if err != nil {
		return nil, err
	}
	k := &Knot{Addr: netip.AddrPortFrom(opts.Addr, 53), Key: key, Dir: dir, zone: origin, addr: opts.Addr}
	fail := func(err error) (*Knot, error) {
		if k.proc != nil {
			k.proc.stop(stopGrace)
		}
		_ = releaseAddr(opts.Addr)
		_ = os.RemoveAll(dir)
		return nil, err
	}
	conf := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(conf, []byte(knotConf(dir, opts.Addr, key, origin)), 0o600); err != nil {
		return fail(fmt.Errorf("lab: %s: %w", name, err))
	}
	zf := zoneFile(BINDOptions{Addr: opts.Addr, Zone: opts.Zone}, origin)
	if err := os.WriteFile(filepath.Join(dir, "zone.db"), []byte(zf), 0o644); err != nil {
		return fail(fmt.Errorf("lab: %s: %w", name, err))
	}
	if err := acquireAddr(opts.Addr); err != nil {
		return fail(err)
	}
	logPath := filepath.Join(dir, "knotd.log")
	p, err := startProc(name, logPath, []string{knotd, "-c", conf}, dir)
	if err != nil {
		return fail(err)
	}
	k.proc, k.PID = p, p.pid()
	if p.record, err = writeRecord(blockOf(opts.Addr), stateRecord{Kind: "knotd", PID: k.PID, Dir: dir}); err != nil {
		return fail(err)
	}
	if err := waitReady(p, func(ctx context.Context) error {
		if logContains(logPath, "failed to load") || logContains(logPath, "failed to parse") {
			return errFatal
		}
		_, err := soaSerial(ctx, k.Addr, origin)
		return err
	}); err != nil {
		return fail(err)
	}
	return k, nil
}

// NewKnot starts a Knot DNS server for the test and stops it at the end of the test.
func NewKnot(t testing.TB, opts KnotOptions) *Knot {
	t.Helper()
	Require(t, "root", "ip", "knotd")
	k, err := StartKnot(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := k.Stop(); err != nil {
			t.Error(err)
		}
	})
	return k
}

// Stop terminates knotd (SIGTERM, SIGKILL after a grace period), removes its address from lo
// (unless another lab server still uses it) and its directory. Stop is idempotent.
func (k *Knot) Stop() error {
	k.stopOnce.Do(func() {
		k.proc.stop(stopGrace)
		k.stopErr = errors.Join(releaseAddr(k.addr), os.RemoveAll(k.Dir))
	})
	return k.stopErr
}

// Serial queries the server for the SOA of its zone and returns the serial it serves now.
// An answer without AA is an error.
func (k *Knot) Serial(ctx context.Context) (uint32, error) {
	return soaSerial(ctx, k.Addr, k.zone)
}

// Zone returns the fully qualified origin the server serves.
func (k *Knot) Zone() string { return k.zone }

// LogPath returns the path of knotd's log (its stderr).
func (k *Knot) LogPath() string { return k.proc.logPath }

// knotConf is a knot.conf for one primary zone at dir/zone.db, everything else in dir too.
func knotConf(dir string, addr netip.Addr, key TSIG, origin string) string {
	var s strings.Builder
	j := func(p string) string { return filepath.Join(dir, p) }
	fmt.Fprintf(&s, "server:\n  rundir: %q\n  pidfile: %q\n  listen: %s@53\n", dir, j("knotd.pid"), addr)
	s.WriteString("  udp-workers: 1\n  tcp-workers: 1\n  background-workers: 1\n\n")
	s.WriteString("log:\n  - target: stderr\n    any: info\n\n")
	fmt.Fprintf(&s, "database:\n  storage: %q\n", dir)
	for _, db := range []string{"journal", "kasp", "timer", "catalog"} {
		fmt.Fprintf(&s, "  %s-db: %q\n  %s-db-max-size: 64M\n", db, j(db), db)
	}
	fmt.Fprintf(&s, "\ncontrol:\n  listen: %q\n\n", j("knot.sock"))
	fmt.Fprintf(&s, "key:\n  - id: %s\n    algorithm: %s\n    secret: %s\n\n", key.Name, key.Algorithm, key.Secret)
	fmt.Fprintf(&s, "acl:\n  - id: cutover\n    key: %s\n    action: [update, transfer]\n\n", key.Name)
	fmt.Fprintf(&s, "zone:\n  - domain: %s\n    storage: %q\n    file: %q\n", origin, dir, j("zone.db"))
	s.WriteString("    acl: cutover\n    zonefile-sync: 0\n    journal-content: changes\n    semantic-checks: off\n")
	return s.String()
}
