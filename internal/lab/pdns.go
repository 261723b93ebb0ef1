package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// pdnsSchema is the gsqlite3 schema that pdns-backend-sqlite3 ships.
const pdnsSchema = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"

// pdnsAPIPort is the port of PowerDNS's HTTP API, on the server's own address.
const pdnsAPIPort = 8081

// PowerDNSOptions configures one PowerDNS Authoritative Server.
type PowerDNSOptions struct {
	Addr netip.Addr // DNS on Addr:53, the HTTP API on Addr:8081
	Zone Zone
	// APIKey is the API's X-API-Key; empty gets a fresh random one.
	APIKey string
}

// PowerDNS is a running pdns_server with the gsqlite3 backend and its HTTP API.
type PowerDNS struct {
	daemon
	APIURL string // "http://127.x.y.z:8081"
	APIKey string
	zone   string
}

// StartPowerDNS creates a gsqlite3 database in a fresh temp dir, loads the zone StartBIND writes
// for a primary without secondaries (pdnsutil load-zone; SOA-EDIT-API INCREASE, so every API
// change raises the serial), starts `pdns_server` in the foreground with the API on Addr:8081
// and waits until it answers the zone's SOA with AA and the API accepts the key.
func StartPowerDNS(opts PowerDNSOptions) (*PowerDNS, error) {
	if err := checkLabAddr("pdns", opts.Addr); err != nil {
		return nil, err
	}
	origin, err := zoneOrigin("pdns", opts.Zone)
	if err != nil {
		return nil, err
	}
	server, err := mustBin("pdns", "pdns_server")
	if err != nil {
		return nil, err
	}
	util, err := mustBin("pdns", "pdnsutil")
	if err != nil {
		return nil, err
	}
	sqlite, err := mustBin("sqlite3", "sqlite3")
	if err != nil {
		return nil, err
	}
	if opts.APIKey == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("lab: pdns: %w", err)
		}
		opts.APIKey = hex.EncodeToString(b)
	}
	p := &PowerDNS{APIURL: fmt.Sprintf("http://%s", netip.AddrPortFrom(opts.Addr, pdnsAPIPort)), APIKey: opts.APIKey, zone: origin}
	write := func(dir string) ([]string, error) {
		conf := pdnsConf(dir, opts.Addr, opts.APIKey)
		if err := os.WriteFile(filepath.Join(dir, "pdns.conf"), []byte(conf), 0o600); err != nil {
			return nil, err
		}
		zf := filepath.Join(dir, "zone.db")
		if err := os.WriteFile(zf, []byte(zoneFile(BINDOptions{Addr: opts.Addr, Zone: opts.Zone}, origin)), 0o644); err != nil {
			return nil, err
		}
		cd := "--config-dir=" + dir
		for _, argv := range [][]string{
			{sqlite, filepath.Join(dir, "pdns.sqlite3"), ".read " + pdnsSchema},
			{util, cd, "load-zone", origin, zf},
			{util, cd, "set-meta", origin, "SOA-EDIT-API", "INCREASE"},
		} {
			if err := runTool(dir, argv); err != nil {
				return nil, err
			}
		}
		return []string{server, cd}, nil
	}
	ready := func(ctx context.Context) error {
		if logContains(p.LogPath(), "Fatal error") || logContains(p.LogPath(), "Exiting because") {
			return errFatal
		}
		if _, err := soaSerial(ctx, p.Addr, origin); err != nil {
			return err
		}
		return p.checkAPI(ctx)
	}
	if err := p.start("pdns", fmt.Sprintf("pdns_server %s", opts.Addr), opts.Addr, "pdns.log", write, ready); err != nil {
		return nil, err
	}
	return p, nil
}

// NewPowerDNS starts a PowerDNS server for the test and stops it at the end of the test.
func NewPowerDNS(t testing.TB, opts PowerDNSOptions) *PowerDNS {
	t.Helper()
	Require(t, "root", "ip", "pdns", "sqlite3")
	p, err := StartPowerDNS(opts)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, p.Stop)
	return p
}

// Serial queries the server for the SOA of its zone and returns the serial it serves now.
func (p *PowerDNS) Serial(ctx context.Context) (uint32, error) {
	return soaSerial(ctx, p.Addr, p.zone)
}

// checkAPI asks the API for the zone with the key.
func (p *PowerDNS) checkAPI(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.APIURL+"/api/v1/servers/localhost/zones/"+p.zone, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", p.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("lab: pdns API: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("lab: pdns API: GET zone %s: %s", p.zone, resp.Status)
	}
	return nil
}

// runTool runs a short setup command in dir, in its own process group (killed as a group after
// startTimeout); the error carries its output.
func runTool(dir string, argv []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + strings.Join(extraPath, ":"), "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(argv[0]), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// pdnsConf is a pdns.conf for the gsqlite3 database dir/pdns.sqlite3, DNS on addr:53 and the
// API on addr:8081, open to the lab's loopback only; everything else in dir too.
func pdnsConf(dir string, addr netip.Addr, apiKey string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "launch=gsqlite3\ngsqlite3-database=%s\n", filepath.Join(dir, "pdns.sqlite3"))
	fmt.Fprintf(&s, "local-address=%s\nlocal-port=53\n", addr)
	fmt.Fprintf(&s, "socket-dir=%s\n", dir)
	s.WriteString("daemon=no\nguardian=no\nwrite-pid=no\ndisable-syslog=yes\nloglevel=4\n")
	s.WriteString("distributor-threads=1\nreceiver-threads=1\nprimary=no\nsecondary=no\n")
	fmt.Fprintf(&s, "api=yes\napi-key=%s\n", apiKey)
	fmt.Fprintf(&s, "webserver=yes\nwebserver-address=%s\nwebserver-port=%d\n", addr, pdnsAPIPort)
	s.WriteString("webserver-allow-from=127.0.0.0/8\n")
	return s.String()
}
