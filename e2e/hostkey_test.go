package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/scheduler"
)

// TestUnknownHostKey: with an empty known_hosts, `cutover run` stops at
// preflight before changing anything, names the key and the exact next
// command, and stays resumable.
func TestUnknownHostKey(t *testing.T) {
	t.Parallel()
	lab.Require(t, "root", "ip", "sshd", "unshare", "nsenter", "named", "unbound")
	n := lab.NewNet(t)
	pair := startPair(t, n)
	d := lab.NewDNSLab(t, n, lab.Zone{Origin: zone, TTL: origTTL, Minimum: 2, Records: []string{
		fmt.Sprintf("mail %d IN A %s", origTTL, n.IP(10)),
		fmt.Sprintf("mail %d IN AAAA %s", origTTL, old6),
	}})
	dir := t.TempDir()
	empty := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := *pair
	p.KnownHosts = empty
	cfg := filepath.Join(dir, "cutover.toml")
	src := lab.Migration{Net: n, Pair: &p, DNS: d, CutoverAt: time.Now().Add(time.Hour), StateDir: filepath.Join(dir, "state"),
		Zone: zone, Name: mailName, Old6: old6, New6: new6, LoweredTTL: loweredS * time.Second, SecretEnv: secretEnv}.Config()
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) { return runCutover(t, dir, d.Key.Secret, args...) }
	code, out := run("run", cfg, "--yes")
	fp := strings.Fields(pair.Old.KnownHostsLine())
	wantHint := "cutover: hint: if ssh-ed25519 SHA256:"
	if code != 1 || !strings.Contains(out, "cutover: error: preflight: sshops: unknown host "+n.IP(10).String()+":22") ||
		!strings.Contains(out, fp[len(fp)-1]) || !strings.Contains(out, wantHint) ||
		!strings.Contains(out, "is the right key, trust it and go on: cutover run "+cfg+" --accept-new-host-key") {
		t.Fatalf("run with an unknown host: exit %d, want 1 naming the key and --accept-new-host-key\n%s", code, out)
	}
	code, out = run("status", cfg, "--json")
	var j scheduler.Journal
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if j.Rollback != nil || j.DNS != scheduler.DNSOriginal || j.Step(scheduler.Preflight).State != scheduler.Failed || j.Step(scheduler.LowerTTL).State != scheduler.Pending {
		t.Fatalf("journal: rollback %v, dns %q, preflight %s, lower-ttl %s; want nothing changed", j.Rollback, j.DNS, j.Step(scheduler.Preflight).State, j.Step(scheduler.LowerTTL).State)
	}
	if b, _ := os.ReadFile(empty); len(b) != 0 {
		t.Fatalf("known_hosts was written without --accept-new-host-key: %q", b)
	}
}
