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

	"github.com/miekg/dns"
)

// daemon is what every DNS server the lab starts has in common: its own
// temp dir, its /32 on lo and its process, tracked for the stale-run
// clean-up. BIND, Knot and Unbound embed it; Stop undoes all of it once.
type daemon struct {
	Addr netip.AddrPort // Addr:53
	Dir  string         // config, data and log
	PID  int

	proc     *proc
	stopOnce sync.Once
	stopErr  error
}

// start makes the instance dir, lets write put the config files into it and
// return the command line, puts the address on lo, starts the process
// (stderr to dir/logName), records it for the clean-up of a killed run and
// waits until ready says it serves. On any error everything is undone; the
// error carries the tail of the log when there is one.
func (d *daemon) start(kind, name string, addr netip.Addr, logName string, write func(dir string) ([]string, error), ready func(ctx context.Context) error) error {
	dir, err := makeTempDir(kind)
	if err != nil {
		return err
	}
	d.Addr, d.Dir = netip.AddrPortFrom(addr, 53), dir
	fail := func(err error) error {
		if d.proc != nil {
			d.proc.stop(stopGrace)
		}
		_ = releaseAddr(addr)
		_ = os.RemoveAll(dir)
		return err
	}
	argv, err := write(dir)
	if err != nil {
		return fail(fmt.Errorf("lab: %s: %w", name, err))
	}
	if err := acquireAddr(addr); err != nil {
		return fail(err)
	}
	p, err := startProc(name, filepath.Join(dir, logName), argv, dir)
	if err != nil {
		return fail(err)
	}
	d.proc, d.PID = p, p.pid()
	if p.record, err = writeRecord(blockOf(addr), stateRecord{Kind: kind, PID: d.PID, Dir: dir}); err != nil {
		return fail(err)
	}
	if err := waitReady(p, ready); err != nil {
		return fail(err)
	}
	return nil
}

// Stop terminates the server (SIGTERM, SIGKILL after a grace period), removes its address from lo
// (unless another lab server still uses it) and its directory. Stop is idempotent.
func (d *daemon) Stop() error {
	d.stopOnce.Do(func() {
		d.proc.stop(stopGrace)
		d.stopErr = errors.Join(releaseAddr(d.Addr.Addr()), os.RemoveAll(d.Dir))
	})
	return d.stopErr
}

// LogPath returns the path of the server's log (its stderr).
func (d *daemon) LogPath() string { return d.proc.logPath }

// zoneServer is an authoritative server of one zone (BIND or Knot).
type zoneServer struct {
	daemon
	Key  TSIG
	zone string
}

// Serial queries the server for the SOA of its zone and returns the serial it serves now.
// An answer without AA is an error.
func (z *zoneServer) Serial(ctx context.Context) (uint32, error) {
	return soaSerial(ctx, z.Addr, z.zone)
}

// zoneAndKey checks a zone's origin and fills in a TSIG key: a zero key
// gets a fresh NewTSIG, a key without algorithm hmac-sha256.
func zoneAndKey(kind string, z Zone, key TSIG) (origin string, _ TSIG, _ error) {
	origin, err := zoneOrigin(kind, z)
	if err != nil {
		return "", key, err
	}
	if key.Name == "" {
		key = NewTSIG("cutover-lab")
	}
	if key.Algorithm == "" {
		key.Algorithm = "hmac-sha256"
	}
	return origin, key, nil
}

// zoneOrigin checks a zone's origin and returns it fully qualified, lower case.
func zoneOrigin(kind string, z Zone) (string, error) {
	if z.Origin == "" || z.Origin == "." {
		return "", fmt.Errorf("lab: %s: Zone.Origin is required (e.g. \"example.org.\")", kind)
	}
	if _, ok := dns.IsDomainName(z.Origin); !ok {
		return "", fmt.Errorf("lab: %s: Zone.Origin %q is not a domain name", kind, z.Origin)
	}
	return dns.Fqdn(strings.ToLower(z.Origin)), nil
}
