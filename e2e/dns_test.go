package e2e

import (
	"bufio"
	"bytes"
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

	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/scheduler"
)

// TestDNSCommands drives `cutover dns ...` and `cutover watch` against the
// lab's BIND primary/secondary and Unbound caches: one DNS step at a time by
// hand, each journaled; consent; a record changed behind cutover's back.
func TestDNSCommands(t *testing.T) {
	t.Parallel()
	lab.Require(t, "root", "ip", "named", "unbound")
	n := lab.NewNet(t)
	d := lab.NewDNSLab(t, n, lab.Zone{Origin: zone, TTL: origTTL, Minimum: 2, Records: []string{
		fmt.Sprintf("mail %d IN A %s", origTTL, n.IP(10)),
		fmt.Sprintf("mail %d IN AAAA %s", origTTL, old6),
	}})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "dns.toml")
	src := fmt.Sprintf(`cutover_at = 2099-01-01T00:00:00Z
state_dir = %q
[old]
address = %q
address6 = %q
[new]
address = %q
address6 = %q
[ssh]
known_hosts = %q
[dns]
provider = "lab"
zone = %q
names = [%q]
lowered_ttl = "%ds"
authoritative = [%q, %q]
resolvers = [%q, %q]
converge_timeout = "30s"
[providers.lab]
type = "rfc2136"
server = "%s:53"
key_name = %q
key_alg = %q
key = "env:%s"
`, filepath.Join(dir, "state"), n.IP(10), old6, n.IP(20), new6, filepath.Join(dir, "known_hosts"), zone, mailName, loweredS,
		n.IP(31), n.IP(32), n.IP(41), n.IP(42), n.IP(31), d.Key.Name, d.Key.Algorithm, secretEnv)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var outputs []string
	run := func(args ...string) (int, string) {
		t.Helper()
		code, out := runCutover(t, dir, d.Key.Secret, args...)
		outputs = append(outputs, out)
		return code, out
	}
	primary := netip.AddrPortFrom(n.IP(31), 53)
	expectA := func(want netip.Addr, ttl uint32) {
		t.Helper()
		// The primary answers at once; the secondary follows by NOTIFY.
		for _, srv := range []netip.AddrPort{primary, netip.AddrPortFrom(n.IP(32), 53)} {
			deadline := time.Now().Add(10 * time.Second)
			for {
				addrs, gotTTL, err := query(srv, mailName, dns.TypeA, false)
				if err == nil && slices.Equal(addrs, []netip.Addr{want}) && gotTTL == ttl {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s serves A %v TTL %d (%v), want %s TTL %d", srv, addrs, gotTTL, err, want, ttl)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}

	code, out := run("dns", "show", cfg)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("mail.example.org.  A     30s  %s", n.IP(10))) || !strings.Contains(out, "AAAA  30s  "+old6.String()) {
		t.Fatalf("dns show: exit %d\n%s", code, out)
	}
	// No terminal, no --yes: nothing changes.
	if code, out := run("dns", "swap", cfg); code != 1 || !strings.Contains(out, "cutover: error: aborted, no changes made") {
		t.Fatalf("dns swap without consent: exit %d\n%s", code, out)
	}
	expectA(n.IP(10), origTTL)

	if code, out := run("dns", "lower-ttl", cfg, "--yes"); code != 0 {
		t.Fatalf("dns lower-ttl: exit %d\n%s", code, out)
	}
	expectA(n.IP(10), loweredS)
	if code, out := run("dns", "swap", cfg, "--yes"); code != 0 {
		t.Fatalf("dns swap: exit %d\n%s", code, out)
	}
	expectA(n.IP(20), loweredS)

	// watch: converged once the caches' copies (TTL 3 s) ran out; JSON lines.
	watch := []string{"watch", mailName, "--expect", n.IP(20).String(), "--expect", new6.String(),
		"--resolver", n.IP(41).String(), "--resolver", n.IP(42).String(), "--authoritative", n.IP(31).String() + "," + n.IP(32).String()}
	code, out = run(append(watch, "--timeout", "30s", "--json")...)
	if code != 0 {
		t.Fatalf("watch: exit %d\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var summary struct {
		Kind   string `json:"kind"`
		Report struct {
			Converged bool `json:"converged"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &summary); err != nil || summary.Kind != "summary" || !summary.Report.Converged {
		t.Fatalf("watch: last line %q (%v), want a converged summary", lines[len(lines)-1], err)
	}

	if code, out := run("dns", "revert", cfg, "--yes"); code != 0 {
		t.Fatalf("dns revert: exit %d\n%s", code, out)
	}
	expectA(n.IP(10), origTTL)
	// The same watch now times out: exit 1 with the last state.
	code, out = run(append(watch, "--timeout", "2s")...)
	if code != 1 || !strings.Contains(out, "cutover: error: watch: not converged after 2s") {
		t.Fatalf("watch after revert: exit %d, want 1\n%s", code, out)
	}

	// Someone else points the name elsewhere: swap refuses and changes nothing.
	m := new(dns.Msg)
	m.SetUpdate(zone)
	rr, _ := dns.NewRR(fmt.Sprintf("%s 30 IN A %s", mailName, n.IP(99)))
	m.RemoveRRset([]dns.RR{rr})
	m.Insert([]dns.RR{rr})
	c := &dns.Client{Net: "tcp", TsigSecret: d.Key.SecretMap()}
	if r, _, err := c.Exchange(d.Key.Sign(m), primary.String()); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("update behind cutover's back: %v %v", r, err)
	}
	code, out = run("dns", "swap", cfg, "--yes")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("mail.example.org. A holds %s", n.IP(99))) {
		t.Fatalf("dns swap over a foreign change: exit %d, want 1 naming the record\n%s", code, out)
	}
	expectA(n.IP(99), origTTL)

	// Every manual step is in the journal.
	code, out = run("status", cfg, "--json")
	var j scheduler.Journal
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
	if j.Snapshot == nil || j.DNS != scheduler.DNSReverted || len(j.Log) != 5 {
		t.Errorf("journal: snapshot %v, dns %q, log %q; want the snapshot, reverted, and 5 log lines", j.Snapshot, j.DNS, j.Log)
	}
	for _, o := range outputs {
		if strings.Contains(o, d.Key.Secret) {
			t.Fatalf("the TSIG secret appears in cutover's output:\n%s", o)
		}
	}
}

// TestWatchSaysWhatItSees runs `cutover watch` against the lab as in issue
// 17: mail has an A and an AAAA; --expect with an IPv4 address watches A
// only; --absent aaaa makes the AAAA a wrong answer that never changes, which
// watch calls stable but wrong instead of telling the user to wait longer;
// SIGINT stops it with exit 130.
func TestWatchSaysWhatItSees(t *testing.T) {
	t.Parallel()
	lab.Require(t, "root", "ip", "named", "unbound")
	const ttl = 2
	n := lab.NewNet(t)
	d := lab.NewDNSLab(t, n, lab.Zone{Origin: zone, TTL: ttl, Minimum: ttl, Records: []string{
		fmt.Sprintf("mail %d IN A %s", ttl, n.IP(20)),
		fmt.Sprintf("mail %d IN AAAA %s", ttl, new6),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	serial, err := d.Primary.Serial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	watch := []string{"watch", mailName, "--expect", n.IP(20).String(), "--authoritative", "auto", "--json"}
	for _, r := range d.Resolvers() {
		watch = append(watch, "--resolver", r.String())
	}
	var stable []string
	for _, s := range append(d.Authoritative(), d.Resolvers()...) {
		why := fmt.Sprintf("at serial %d, the newest", serial)
		if !slices.Contains(d.Authoritative(), s) {
			why = "served again after its TTL ran out"
		}
		stable = append(stable, fmt.Sprintf("%s mail.example.org. AAAA other {%s}, want none (stable: %s)", s.Addr(), new6, why))
	}
	tests := []struct {
		desc   string
		args   []string
		code   int
		types  []string
		stderr string
	}{
		{desc: "IPv4 expected: A only", args: []string{"--timeout", "30s"}, types: []string{"A"}},
		{desc: "AAAA must be absent", args: []string{"--absent", "aaaa", "--timeout", "8s"}, code: 1, types: []string{"A", "AAAA"},
			stderr: "cutover: error: watch: not converged after 8s, and the answers are stable but wrong: dnsprop: not converged: " +
				strings.Join(stable, "; ") + ": context deadline exceeded\n" +
				"cutover: hint: waiting longer will not help: every wrong answer above came back unchanged after its TTL ran out " +
				"(or is what the authoritative servers serve at their newest serial); check --expect, --absent and the records at your DNS provider\n"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, cutoverBin, append(watch, tc.args...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			code := 0
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || stderr.String() != tc.stderr {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", code, stderr.String(), tc.code, tc.stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			var summary struct {
				Kind   string `json:"kind"`
				Report struct {
					Converged      bool     `json:"converged"`
					StableButWrong bool     `json:"stable_but_wrong"`
					Types          []string `json:"types"`
					ETA            *int     `json:"eta"`
				} `json:"report"`
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &summary); err != nil || summary.Kind != "summary" {
				t.Fatalf("last line %q (%v), want the summary", lines[len(lines)-1], err)
			}
			r := summary.Report
			if r.Converged != (tc.code == 0) || r.StableButWrong != (tc.code != 0) || !slices.Equal(r.Types, tc.types) || r.ETA == nil || *r.ETA != 0 {
				t.Errorf("summary %+v, want converged %v, stable_but_wrong %v, types %q, eta 0 (seconds)", r, tc.code == 0, tc.code != 0, tc.types)
			}
		})
	}

	t.Run("SIGINT", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, cutoverBin, append(watch, "--expect", n.IP(99).String(), "--timeout", "1h")...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The first change line: watch is asking.
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, out)
		err = cmd.Wait()
		var ee *exec.ExitError
		want := "cutover: interrupt: stopping at the next safe point (a second signal aborts at once)\ncutover: error: interrupted\n"
		if !errors.As(err, &ee) || ee.ExitCode() != 130 || stderr.String() != want {
			t.Fatalf("after SIGINT: %v, stderr:\n%s\nwant exit 130, stderr:\n%s", err, stderr.String(), want)
		}
	})
}

// runCutover runs the built binary to the end with a minimal environment
// (HOME in dir, the TSIG secret in secretEnv) and returns its exit code and
// combined output.
func runCutover(t *testing.T, dir, secret string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(cutoverBin, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir, secretEnv + "=" + secret}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}
