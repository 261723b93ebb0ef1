package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
)

// The fakes keep their state in files under one directory, so that a test
// can crash a child process that uses them and inspect the state after.

// fakeZone is the zone as a JSON file: name -> records.
type fakeZone struct {
	dir string
	cfg *config.Config
}

func (z *fakeZone) path() string { return filepath.Join(z.dir, "zone.json") }

func (z *fakeZone) read() (map[string]dnsrec.Name, error) {
	data, err := os.ReadFile(z.path())
	if err != nil {
		return nil, err
	}
	m := map[string]dnsrec.Name{}
	return m, json.Unmarshal(data, &m)
}

func (z *fakeZone) write(m map[string]dnsrec.Name) error {
	data, _ := json.MarshalIndent(m, "", "  ")
	return writeAtomic(z.path(), data)
}

func (z *fakeZone) log(op string) { appendLine(filepath.Join(z.dir, "dns.log"), op) }

func (z *fakeZone) fail(op string) error {
	if b, err := os.ReadFile(filepath.Join(z.dir, "fail")); err == nil && strings.TrimSpace(string(b)) == op {
		return fmt.Errorf("fake: %s fails as told", op)
	}
	return nil
}

func (z *fakeZone) Snapshot(ctx context.Context) (*dnsrec.Snapshot, error) {
	m, err := z.read()
	if err != nil {
		return nil, err
	}
	s := &dnsrec.Snapshot{Zone: z.cfg.DNS.Zone, Taken: time.Unix(0, 0).UTC()}
	for _, n := range z.cfg.DNS.Names {
		s.Names = append(s.Names, m[n])
	}
	return s, nil
}

// change applies f to every name after checking that each name holds
// either before or after (the providers' precondition rule).
func (z *fakeZone) change(op string, snap *dnsrec.Snapshot, f func(orig dnsrec.Name) dnsrec.Name, before func(orig dnsrec.Name) []dnsrec.Name) error {
	if err := z.fail(op); err != nil {
		return err
	}
	m, err := z.read()
	if err != nil {
		return err
	}
	for _, orig := range snap.Names {
		cur := m[orig.Name]
		want := f(orig)
		ok := sameFacts(cur, want)
		for _, b := range before(orig) {
			ok = ok || sameFacts(cur, b)
		}
		if !ok {
			return fmt.Errorf("fake: %s: %s holds %v, neither before nor after", op, orig.Name, cur)
		}
	}
	for _, orig := range snap.Names {
		m[orig.Name] = f(orig)
	}
	z.log(op)
	return z.write(m)
}

func sameFacts(a, b dnsrec.Name) bool {
	eq := func(x, y dnsrec.RRset) bool {
		return x.Exists() == y.Exists() && slices.Equal(x.Addrs, y.Addrs) && (x.TTL == y.TTL || !x.Exists())
	}
	return a.Name == b.Name && eq(a.A, b.A) && eq(a.AAAA, b.AAAA)
}

func withTTL(n dnsrec.Name, ttl time.Duration) dnsrec.Name {
	n.A.TTL, n.AAAA.TTL = ttl, ttl
	return n
}

func (z *fakeZone) swapped(orig dnsrec.Name) dnsrec.Name {
	n := dnsrec.Name{Name: orig.Name, A: dnsrec.RRset{Addrs: []netip.Addr{z.cfg.New.Address}, TTL: z.cfg.DNS.LoweredTTL}}
	if z.cfg.New.Address6.IsValid() {
		n.AAAA = dnsrec.RRset{Addrs: []netip.Addr{z.cfg.New.Address6}, TTL: z.cfg.DNS.LoweredTTL}
	}
	return n
}

func (z *fakeZone) LowerTTL(ctx context.Context, snap *dnsrec.Snapshot) error {
	return z.change("lower-ttl", snap, func(o dnsrec.Name) dnsrec.Name { return withTTL(o, z.cfg.DNS.LoweredTTL) },
		func(o dnsrec.Name) []dnsrec.Name { return []dnsrec.Name{o} })
}

func (z *fakeZone) Swap(ctx context.Context, snap *dnsrec.Snapshot) error {
	return z.change("swap", snap, z.swapped,
		func(o dnsrec.Name) []dnsrec.Name { return []dnsrec.Name{o, withTTL(o, z.cfg.DNS.LoweredTTL)} })
}

func (z *fakeZone) RestoreTTL(ctx context.Context, snap *dnsrec.Snapshot) error {
	return z.change("restore-ttl", snap, func(o dnsrec.Name) dnsrec.Name { return withTTL(z.swapped(o), o.A.TTL) },
		func(o dnsrec.Name) []dnsrec.Name { return []dnsrec.Name{z.swapped(o)} })
}

func (z *fakeZone) Revert(ctx context.Context, snap *dnsrec.Snapshot) error {
	return z.change("revert", snap, func(o dnsrec.Name) dnsrec.Name { return o },
		func(o dnsrec.Name) []dnsrec.Name {
			return []dnsrec.Name{withTTL(o, z.cfg.DNS.LoweredTTL), z.swapped(o), withTTL(z.swapped(o), o.A.TTL)}
		})
}

// fakeHosts logs each operation; a file "fail" naming an operation makes it fail.
type fakeHosts struct{ dir string }

func (h *fakeHosts) op(ctx context.Context, out io.Writer, name string) error {
	fmt.Fprintf(out, "fake %s\n", name)
	if b, err := os.ReadFile(filepath.Join(h.dir, "fail")); err == nil && strings.TrimSpace(string(b)) == name {
		return fmt.Errorf("fake: %s fails as told", name)
	}
	appendLine(filepath.Join(h.dir, "hosts.log"), name)
	return ctx.Err()
}

func (h *fakeHosts) Preflight(ctx context.Context, out io.Writer) error {
	return h.op(ctx, out, "preflight")
}
func (h *fakeHosts) Copy(ctx context.Context, out io.Writer, final bool) error {
	if final {
		return h.op(ctx, out, "final-sync")
	}
	return h.op(ctx, out, "initial-sync")
}
func (h *fakeHosts) CatchUp(ctx context.Context, out io.Writer) error {
	return h.op(ctx, out, "catch-up")
}
func (h *fakeHosts) PrepareFinalSync(ctx context.Context, out io.Writer) error {
	return h.op(ctx, out, "prepare-final-sync")
}
func (h *fakeHosts) Verify(ctx context.Context, out io.Writer) error { return h.op(ctx, out, "verify") }
func (h *fakeHosts) Fixup(ctx context.Context, out io.Writer) error  { return h.op(ctx, out, "fixup") }

// shellHooks runs hooks with on = "local" in sh, like the real thing.
type shellHooks struct{}

func (shellHooks) Run(ctx context.Context, out io.Writer, h *config.Hook) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", h.Run)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

// fakeProp converges once the zone file points at the new host; with a
// file "stuck" it never does and waits for ctx.
type fakeProp struct{ z *fakeZone }

func (p *fakeProp) wait(ctx context.Context) error {
	for {
		m, err := p.z.read()
		if err != nil {
			return err
		}
		_, stuck := os.Stat(filepath.Join(p.z.dir, "stuck"))
		if stuck != nil && slices.Contains(m[p.z.cfg.DNS.Names[0]].A.Addrs, p.z.cfg.New.Address) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fake: not converged: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (p *fakeProp) WaitAuthoritative(ctx context.Context, out io.Writer) error { return p.wait(ctx) }
func (p *fakeProp) WaitResolvers(ctx context.Context, out io.Writer) error     { return p.wait(ctx) }

// WaitAuthoritativeReverted checks the zone file points at the old host.
func (p *fakeProp) WaitAuthoritativeReverted(ctx context.Context, out io.Writer) error {
	m, err := p.z.read()
	if err != nil {
		return err
	}
	if !slices.Contains(m[p.z.cfg.DNS.Names[0]].A.Addrs, p.z.cfg.Old.Address) {
		return fmt.Errorf("fake: not reverted: %v", m)
	}
	return nil
}

func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	fmt.Fprintln(f, line)
	f.Sync()
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// testConfig writes a config whose hooks append to dir/hooks.log and an
// original zone, and loads it.
func testConfig(t testing.TB, dir string, cutoverAt time.Time, extra string) *config.Config {
	t.Helper()
	hook := func(name string) string {
		return fmt.Sprintf("%s = { on = \"local\", run = \"echo %s >> %s/hooks.log\" }\n", name, name, dir)
	}
	src := fmt.Sprintf(`cutover_at = %s
state_dir = %q
[old]
address = "127.0.0.10"
address6 = "::10"
[new]
address = "127.0.0.20"
address6 = "::20"
[ssh]
known_hosts = %q
[dns]
provider = "main"
zone = "example.org."
names = ["mail.example.org."]
lowered_ttl = "3s"
restore_ttl_after = "2s"
authoritative = ["127.0.0.31"]
resolvers = ["127.0.0.41"]
converge_timeout = "2s"
[providers.main]
type = "fake"
[[sync]]
path = "/home/vmail/mail"
initial = true
delete = true
owner = "vmail:"
[hooks]
%s%s%s%s%s`, cutoverAt.UTC().Format(time.RFC3339), filepath.Join(dir, "state"), filepath.Join(dir, "known_hosts"),
		hook("prepare"), hook("disable"), hook("activate"), hook("reenable"), extra)
	path := filepath.Join(dir, "cutover.toml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "zone.json")); err != nil {
		z := &fakeZone{dir: dir, cfg: cfg}
		orig := dnsrec.Name{Name: "mail.example.org.",
			A:    dnsrec.RRset{Addrs: []netip.Addr{cfg.Old.Address}, TTL: 30 * time.Second},
			AAAA: dnsrec.RRset{Addrs: []netip.Addr{cfg.Old.Address6}, TTL: 30 * time.Second}}
		if err := z.write(map[string]dnsrec.Name{orig.Name: orig}); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

// newTestEngine wires the fakes in dir to a fresh or resumed journal.
func newTestEngine(t testing.TB, dir string, cfg *config.Config, clock Clock, out io.Writer) *Engine {
	t.Helper()
	j, err := LoadJournal(cfg.StateDir)
	if errors.Is(err, ErrNoJournal) {
		j = NewJournal(cfg.StateDir, cfg.File, cfg.CutoverAt, cfg.Old.Address, cfg.New.Address, clock.Now())
	} else if err != nil {
		t.Fatal(err)
	}
	ev, err := OpenEventLog(cfg.StateDir, "", nil, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Close() })
	z := &fakeZone{dir: dir, cfg: cfg}
	return &Engine{Config: cfg, Journal: j, DNS: z, Hosts: &fakeHosts{dir: dir}, Hooks: shellHooks{},
		Prop: &fakeProp{z: z}, Clock: clock, Out: out, Events: ev}
}
