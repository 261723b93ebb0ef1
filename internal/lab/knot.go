package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	zoneServer
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
	origin, key, err := zoneAndKey("knot", opts.Zone, opts.Key)
	if err != nil {
		return nil, err
	}
	knotd, err := mustBin("knotd", "knotd")
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("knotd %s", opts.Addr)

	k := &Knot{zoneServer{Key: key, zone: origin}}
	write := func(dir string) ([]string, error) {
		conf := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(conf, []byte(knotConf(dir, opts.Addr, key, origin)), 0o600); err != nil {
			return nil, err
		}
		zf := zoneFile(BINDOptions{Addr: opts.Addr, Zone: opts.Zone}, origin)
		if err := os.WriteFile(filepath.Join(dir, "zone.db"), []byte(zf), 0o644); err != nil {
			return nil, err
		}
		return []string{knotd, "-c", conf}, nil
	}
	ready := func(ctx context.Context) error {
		if logContains(k.LogPath(), "failed to load") || logContains(k.LogPath(), "failed to parse") {
			return errFatal
		}
		_, err := soaSerial(ctx, k.Addr, origin)
		return err
	}
	if err := k.start("knotd", name, opts.Addr, "knotd.log", write, ready); err != nil {
		return nil, err
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
	stopAtEnd(t, k.Stop)
	return k
}

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
