// Command downtime measures the mail downtime of a migration as a sending MTA sees it: the time
// from the last message accepted by OLD to the first message accepted by NEW, taken from the
// acknowledgements of a lab.Sender that resolves mail.example.org through an Unbound cache before
// every attempt and retries with backoff (10 ms between messages, backoff up to 200 ms).
//
// Each scenario runs on a fresh lab (internal/lab, a block of 127.0.0.0/8 reserved with
// lab.ReserveNet; nothing else is ever queried, /etc/resolv.conf is never read): BIND primary
// and secondary for example.org, two Unbound caches, OLD and NEW as OpenSSH hosts (own uids for
// vmail/opendkim, private /tmp), OLD seeded with the same data (lab.Seed defaults: 5,000 Maildir
// messages over 20 users, acme, dkimkeys, spool), labmail enabled on OLD, the sender running.
// mail.example.org A/AAAA have TTL 30 s; every scenario lowers it to 3 s ahead of the window
// and starts the window only once no cache can still hold the 30 s TTL:
//
//	(a) cutover: `cutover run --yes` with a config like the e2e test's (cutover_at = now + the
//	    lead the plan needs; cutover lowers the TTL itself, syncs ahead, and in the window
//	    disables OLD, final-syncs, verifies, fixes ownership, swaps A/AAAA, waits until both
//	    authoritative servers and both caches serve NEW, activates NEW, restores the TTL).
//	(b) the current chatmail guide as a plain shell script (current-initial.sh ahead of the
//	    window, current-window.sh at it): the TTL is lowered with a TSIG-signed update (miekg/dns)
//	    first; initial rsync of /home/vmail/mail; at the window: labmail-ctl disable on OLD, final
//	    rsync -avzHR --delete of /var/lib/acme /etc/dkimkeys /var/spool/postfix /home/vmail/mail
//	    from OLD to NEW (ssh -A, the operator's key in an agent), chown on NEW, nsupdate of A/AAAA,
//	    labmail-ctl enable on NEW right away (what the guide says).
//	(b') the same, but waiting the lowered TTL after the DNS change before activating NEW, so
//	    that NEW is activated only once DNS points at it everywhere (cutover's rule).
//	(c) the older English guide (older-window.sh): at the window, disable OLD, copy everything
//	    with tar over ssh, chown on NEW, nsupdate, enable NEW.
//	(d) cutover with [bridge] (a handover through old): the same as (a), but NEW is activated
//	    right after fixup and OLD forwards the mail port to NEW while DNS moves; the downtime no
//	    longer waits for the caches. The lab's hosts have no IPv6 address for the forwarder to
//	    listen on, so here the zone has no AAAA and the config no address6.
//	(e) the same at TTL 30 s with nothing lowered (lowered_ttl = 30 s: lower-ttl is skipped and
//	    the window may open at once): the downtime is (d)'s, whatever the TTL.
//
// It prints the downtimes, the ratios of (a) to the others, the phases of each, and the physical
// floor: final-sync time + lowered TTL + activation time, with final-sync and activation taken
// from cutover's journal (`cutover status --json`) in (a).
//
// For (d) and (e) the downtime is the sender's longest gap between accepted messages (through
// the forwarder, both sides of the gap are accepted at OLD's address), printed beside the
// window from the journal: disable -> bridge up, and how long after bridge up the first message
// was accepted (the sender's backoff, up to 200 ms, plus one delivery).
//
// It also prints the floor with the guide's single final rsync in place of cutover's final-sync.
// One run per scenario: (b) and (c) activate NEW right after the DNS change, so their downtime
// is max(their window, swap + what is left of the cache's 3 s TTL), which varies from run to run
// by up to the TTL; (a) and (b') wait for the caches and vary little. The sender's backoff (up to
// 200 ms) bounds the resolution.
//
// Run it as root from the module root: go run ./bench/downtime [-only a,b,b',c,d,e] [-v]
// (or bench/downtime.sh). A full run takes about 8 minutes.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/scheduler"
)

//go:embed *.sh
var scripts embed.FS

const (
	zone      = "example.org."
	mailName  = "mail.example.org."
	origTTL   = 30 // seconds, the zone's TTL before the migration
	loweredS  = 3  // the lowered TTL in seconds
	secretEnv = "CUTOVER_BENCH_TSIG"
	// lead is how far ahead cutover_at is in (a): the 30 s TTL served today + the 10 s margin
	// before the window, plus time for preflight and lower-ttl (as in e2e).
	lead = origTTL*time.Second + 10*time.Second + 6*time.Second
)

// verbose is -v.
var verbose bool

var (
	old6 = netip.MustParseAddr("2001:db8::10")
	new6 = netip.MustParseAddr("2001:db8::20")
)

func main() {
	// The lab's servers live in a network namespace of their own, with this program.
	if err := lab.Isolate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/downtime:", err)
		os.Exit(1)
	}
	only := flag.String("only", "a,b,b',c,d,e", "scenarios to run, comma-separated")
	flag.BoolVar(&verbose, "v", false, "print cutover's output and the guide scripts' phase marks")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, strings.Split(*only, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "bench/downtime:", err)
		os.Exit(1)
	}
}

// result is one scenario's measurement.
type result struct {
	name, what         string
	downtime           time.Duration
	lastOld, firstNew  time.Time
	phases             []phase
	finalSync, activat time.Duration // (a), (d), (e), from the journal
	accepted, failures int
	// (d), (e): a handover through old, from the journal: when disable started and the
	// bridge step ended (the forwarder up and checked).
	disabled, bridged time.Time
}

type phase struct {
	name string
	took time.Duration
}

func run(ctx context.Context, only []string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (network addresses on lo, mount namespaces)")
	}
	for _, bin := range []string{"nsupdate", "rsync", "ssh", "sshd", "named", "unbound", "tar"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + bin); err2 != nil {
				return fmt.Errorf("%q not found: %w", bin, err)
			}
		}
	}
	// The hosts get a private /tmp: the lab's own files (host dirs, labmail) must not live
	// under /tmp, as in e2e.
	base, err := os.MkdirTemp("/var/tmp", "cutover-bench-downtime-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil {
		return err
	}
	os.Setenv("TMPDIR", base)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	cutoverBin := filepath.Join(base, "bin", "cutover")
	build := exec.CommandContext(ctx, "go", "build", "-o", cutoverBin, "./cmd/cutover")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/cutover: %w\n%s", err, out)
	}
	labmail, err := lab.BuildLabmailBinary()
	if err != nil {
		return err
	}
	scriptDir := filepath.Join(base, "scripts")
	if err := os.MkdirAll(scriptDir, 0o755); err != nil {
		return err
	}
	ents, _ := scripts.ReadDir(".")
	for _, e := range ents {
		b, _ := scripts.ReadFile(e.Name())
		if err := os.WriteFile(filepath.Join(scriptDir, e.Name()), b, 0o755); err != nil {
			return err
		}
	}

	start := time.Now()
	var results []*result
	for _, name := range only {
		var r *result
		var err error
		fmt.Printf("--- scenario %s ---\n", name)
		noAAAA := name == "d" || name == "e"
		switch name {
		case "a":
			r, err = scenario(ctx, labmail, false, func(e *labEnv) (*result, error) { return runCutover(ctx, e, cutoverBin, false, loweredS) })
		case "d":
			r, err = scenario(ctx, labmail, noAAAA, func(e *labEnv) (*result, error) { return runCutover(ctx, e, cutoverBin, true, loweredS) })
		case "e":
			r, err = scenario(ctx, labmail, noAAAA, func(e *labEnv) (*result, error) { return runCutover(ctx, e, cutoverBin, true, origTTL) })
		case "b":
			r, err = scenario(ctx, labmail, false, func(e *labEnv) (*result, error) { return runGuide(ctx, e, scriptDir, "b", false) })
		case "b'":
			r, err = scenario(ctx, labmail, false, func(e *labEnv) (*result, error) { return runGuide(ctx, e, scriptDir, "b'", true) })
		case "c":
			r, err = scenario(ctx, labmail, false, func(e *labEnv) (*result, error) { return runGuide(ctx, e, scriptDir, "c", false) })
		default:
			return fmt.Errorf("unknown scenario %q (want a, b, b', c, d, e)", name)
		}
		if err != nil {
			return fmt.Errorf("scenario %s: %w", name, err)
		}
		r.name = name
		results = append(results, r)
		fmt.Printf("%s: downtime %s (last OLD %s, first NEW %s)\n", name, r.downtime.Round(time.Millisecond),
			r.lastOld.Format("15:04:05.000"), r.firstNew.Format("15:04:05.000"))
	}
	report(results, time.Since(start))
	return nil
}

// labEnv is one fresh lab with a seeded OLD and a running sender.
type labEnv struct {
	net              *lab.Net
	dns              *lab.DNSLab
	pair             *lab.Pair
	oldMail, newMail *lab.Mail
	sender           *lab.Sender
	dir              string
}

// scenario stands up a lab (with noAAAA, a zone without AAAA records), runs f on it and takes
// everything down again.
func scenario(ctx context.Context, labmail string, noAAAA bool, f func(*labEnv) (*result, error)) (*result, error) {
	e := &labEnv{}
	defer e.stop()
	if err := e.start(ctx, labmail, noAAAA); err != nil {
		return nil, err
	}
	r, err := f(e)
	if err != nil {
		return nil, err
	}
	if err := e.measure(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

func (e *labEnv) start(ctx context.Context, labmail string, noAAAA bool) error {
	t0 := time.Now()
	var err error
	if e.net, err = lab.ReserveNet(); err != nil {
		return err
	}
	if e.dir, err = os.MkdirTemp("", "scenario-"); err != nil {
		return err
	}
	if e.pair, err = startPair(e.net, e.dir); err != nil {
		return err
	}
	z := lab.Zone{Origin: zone, TTL: origTTL, Minimum: 2, Records: []string{fmt.Sprintf("mail %d IN A %s", origTTL, e.net.IP(10))}}
	if !noAAAA {
		z.Records = append(z.Records, fmt.Sprintf("mail %d IN AAAA %s", origTTL, old6))
	}
	if e.dns, err = lab.StartDNSLab(e.net, z); err != nil {
		return err
	}
	man, err := lab.Seed(e.pair.Old, lab.SeedOptions{})
	if err != nil {
		return err
	}
	if e.oldMail, err = lab.InstallMail(ctx, e.pair.Old, labmail); err != nil {
		return err
	}
	if e.newMail, err = lab.InstallMail(ctx, e.pair.New, labmail); err != nil {
		return err
	}
	if err := e.oldMail.Enable(ctx); err != nil {
		return err
	}
	e.sender, err = lab.StartSender(lab.SenderOptions{Resolver: e.dns.Caches[0].Addr, Interval: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := e.sender.WaitAccepted(wctx, 10); err != nil {
		return err
	}
	fmt.Printf("lab %s up: OLD seeded with %d message files (%d MB), sender running (%s)\n", e.net, len(man.Messages), man.Bytes>>20, time.Since(t0).Round(time.Millisecond))
	return nil
}

func (e *labEnv) stop() {
	if e.sender != nil {
		e.sender.Stop()
	}
	if e.dns != nil {
		if err := e.dns.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/downtime: stop dns:", err)
		}
	}
	if e.pair != nil {
		if err := e.pair.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/downtime: stop hosts:", err)
		}
	}
	if e.net != nil {
		if err := e.net.Release(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/downtime: release net:", err)
		}
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// startPair is the lab pair with a private /tmp in each host (as the e2e test does), so that
// cutover's temp dirs and its clean-up of them stay inside these hosts; OLD knows NEW's host key,
// as after the operator's first `ssh root@NEW` from OLD (the guides' scripts need it).
func startPair(n *lab.Net, dir string) (*lab.Pair, error) {
	return lab.StartPairWith(n, dir, lab.PairOptions{PrivateTmp: true, OldKnowsNew: true})
}

// measure waits for 20 messages accepted by NEW, stops the sender and computes the downtime.
func (e *labEnv) measure(ctx context.Context, r *result) error {
	oldA, newA := e.net.IP(10), e.net.IP(20)
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		for _, d := range e.sender.Deliveries() {
			if d.Addr == newA {
				n++
			}
		}
		if n >= 20 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f, last := e.sender.Failures()
			return fmt.Errorf("sender: %d messages accepted by NEW within 30 s after the migration (%d failed attempts, last: %v)", n, f, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.sender.Stop()
	ds := e.sender.Deliveries()
	for _, d := range ds {
		if d.Addr == newA {
			r.firstNew = d.At
			break
		}
	}
	for _, d := range ds {
		if d.Addr == oldA && d.At.Before(r.firstNew) {
			r.lastOld = d.At
		}
		if d.Addr == oldA && d.At.After(r.firstNew) {
			return fmt.Errorf("sender: %s accepted by OLD at %s, after NEW's first at %s", d.ID, d.At.Format(time.StampMilli), r.firstNew.Format(time.StampMilli))
		}
	}
	r.downtime = r.firstNew.Sub(r.lastOld)
	if !r.bridged.IsZero() {
		// Through the forwarder, messages are accepted at OLD's address until DNS moves: the
		// downtime is the longest gap between accepted messages.
		r.downtime, r.lastOld = longestGap(ds)
		r.firstNew = r.lastOld.Add(r.downtime)
	}
	r.accepted = len(ds)
	r.failures, _ = e.sender.Failures()
	return nil
}

// longestGap is the longest time between two accepted messages, and when it began.
func longestGap(ds []lab.Delivery) (gap time.Duration, from time.Time) {
	at := make([]time.Time, len(ds))
	for i, d := range ds {
		at[i] = d.At
	}
	slices.SortFunc(at, time.Time.Compare)
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d > gap {
			gap, from = d, at[i-1]
		}
	}
	return gap, from
}

// --- (a), (d), (e) cutover ---

// runCutover runs cutover, with bridge a handover through old of the mail port, at lowered_ttl
// lowered seconds.
func runCutover(ctx context.Context, e *labEnv, bin string, bridge bool, lowered int) (*result, error) {
	home := filepath.Join(e.dir, "home")
	stateDir := filepath.Join(e.dir, "state")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	cfg := filepath.Join(home, "cutover.toml")
	at := time.Now().Add(lead).Truncate(time.Second)
	if err := os.WriteFile(cfg, []byte(cutoverConfig(e, at, stateDir, bridge, lowered)), 0o600); err != nil {
		return nil, err
	}
	cutover := func(ctx context.Context, args ...string) ([]byte, error) {
		c := exec.CommandContext(ctx, bin, args...)
		c.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=" + home, "LANG=C", "TMPDIR=" + os.TempDir(), secretEnv + "=" + e.dns.Key.Secret}
		c.WaitDelay = 5 * time.Second
		return c.CombinedOutput()
	}
	out, err := cutover(ctx, "plan", cfg, "--json")
	if err != nil {
		return nil, fmt.Errorf("cutover plan: %w\n%s", err, out)
	}
	var p scheduler.Plan
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, fmt.Errorf("cutover plan --json: %w\n%s", err, out)
	}
	if p.TooLate {
		return nil, fmt.Errorf("cutover plan: window %s too late (earliest safe %s)", at.Format(time.TimeOnly), p.EarliestSafe.Format(time.TimeOnly))
	}
	fmt.Printf("cutover run --yes: window at %s (in %s)\n", at.Format(time.TimeOnly), time.Until(at).Round(time.Second))
	rctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	out, err = cutover(rctx, "run", cfg, "--yes")
	if err != nil {
		return nil, fmt.Errorf("cutover run: %w\n%s", err, out)
	}
	if verbose {
		fmt.Printf("%s", out)
	}
	out, err = cutover(ctx, "status", cfg, "--json")
	if err != nil {
		return nil, fmt.Errorf("cutover status: %w\n%s", err, out)
	}
	var j scheduler.Journal
	if err := json.Unmarshal(out, &j); err != nil {
		return nil, fmt.Errorf("cutover status --json: %w\n%s", err, out)
	}
	if j.Outcome != scheduler.OutcomeDone {
		return nil, fmt.Errorf("cutover: outcome %q, want done", j.Outcome)
	}
	r := &result{what: "cutover run --yes"}
	if bridge {
		r.what = fmt.Sprintf("cutover [bridge], TTL %d s", lowered)
		if lowered == origTTL {
			r.what += ", nothing lowered"
		}
	}
	for _, st := range j.Steps {
		d := st.Ended.Sub(st.Started)
		if st.State != scheduler.Done || st.Started.Before(at.Add(-time.Second)) || st.Name == scheduler.RestoreTTL || !r.bridged.IsZero() {
			continue // not part of the window (with [bridge]: it ends at bridge)
		}
		r.phases = append(r.phases, phase{string(st.Name), d})
		switch st.Name {
		case scheduler.Disable:
			r.disabled = st.Started
		case scheduler.FinalSync:
			r.finalSync = d
		case scheduler.Activate:
			r.activat = d
		case scheduler.Bridge:
			r.bridged = st.Ended
		}
	}
	if bridge && (r.disabled.IsZero() || r.bridged.IsZero()) {
		return nil, fmt.Errorf("cutover journal: disable started %s, bridge ended %s: want both done", r.disabled, r.bridged)
	}
	if r.finalSync == 0 || r.activat == 0 {
		return nil, fmt.Errorf("cutover journal: final-sync %s, activate %s: want both done", r.finalSync, r.activat)
	}
	return r, nil
}

// cutoverConfig is the config of (a), or with bridge of (d) and (e): [bridge] of the mail port,
// no address6 (the lab's hosts have no IPv6 address to listen on).
func cutoverConfig(e *labEnv, at time.Time, stateDir string, bridge bool, lowered int) string {
	m := lab.Migration{Net: e.net, Pair: e.pair, DNS: e.dns, CutoverAt: at, StateDir: stateDir,
		Zone: zone, Name: mailName, Old6: old6, New6: new6, LoweredTTL: time.Duration(lowered) * time.Second, SecretEnv: secretEnv}
	if bridge {
		m.Old6, m.New6, m.Bridge = netip.Addr{}, netip.Addr{}, []uint16{lab.MailPort}
	}
	return m.Config()
}

// --- (b), (b'), (c): the guides as shell scripts ---

// runGuide lowers the TTL with a signed update, runs the guide's steps ahead of the window
// ((b) only: the initial copy), waits until no cache can hold the 30 s TTL any more, and runs
// the guide's window script.
func runGuide(ctx context.Context, e *labEnv, scriptDir, which string, waitTTL bool) (*result, error) {
	if err := e.lowerTTL(ctx); err != nil {
		return nil, err
	}
	window := time.Now().Add(origTTL*time.Second + time.Second)
	sock, stopAgent, err := startAgent(e.pair.Identity.KeyFile, e.dir)
	if err != nil {
		return nil, err
	}
	defer stopAgent()
	keyFile := filepath.Join(e.dir, "nsupdate.key")
	k := e.dns.Key
	if err := os.WriteFile(keyFile, []byte(fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", strings.TrimSuffix(k.Name, "."), k.Algorithm, k.Secret)), 0o600); err != nil {
		return nil, err
	}
	home := filepath.Join(e.dir, "operator")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "LANG=C",
		"SSH_AUTH_SOCK=" + sock, "KNOWN_HOSTS=" + e.pair.KnownHosts, "KEY=" + e.pair.Identity.KeyFile,
		"OLD=" + e.net.IP(10).String(), "NEW=" + e.net.IP(20).String(), "NEW6=" + new6.String(),
		"NSUPDATE_KEY=" + keyFile, "DNS_SERVER=" + e.net.IP(31).String(), "ZONE=" + zone, "NAME=" + mailName,
		"TTL=" + strconv.Itoa(loweredS), "LOG=" + filepath.Join(e.dir, "guide.log")}
	if waitTTL {
		env = append(env, "WAIT_TTL=1")
	}
	r := &result{}
	script := "older-window.sh"
	switch which {
	case "b", "b'":
		r.what = "current guide (two-phase)"
		if waitTTL {
			r.what = "current guide, activation after the TTL"
		}
		script = "current-window.sh"
		ph, err := runScript(ctx, filepath.Join(scriptDir, "current-initial.sh"), env)
		if err != nil {
			return nil, err
		}
		fmt.Printf("initial rsync of /home/vmail/mail ahead of the window: %s\n", ph[0].took.Round(time.Millisecond))
	case "c":
		r.what = "older guide (one-shot)"
	}
	fmt.Printf("%s: window at %s (in %s)\n", script, window.Format(time.TimeOnly), time.Until(window).Round(time.Second))
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Until(window)):
	}
	if r.phases, err = runScript(ctx, filepath.Join(scriptDir, script), env); err != nil {
		return nil, err
	}
	return r, nil
}

// runScript runs a guide script and returns its phases from its "@ <time> <phase>" marks.
func runScript(ctx context.Context, path string, env []string) ([]phase, error) {
	c := exec.CommandContext(ctx, "/bin/bash", path)
	c.Env = env
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s%s", filepath.Base(path), err, out, stderr.Bytes())
	}
	if verbose {
		fmt.Printf("%s", out)
	}
	var marks []phase
	var times []time.Time
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "@" {
			continue
		}
		sec, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: bad mark %q", filepath.Base(path), sc.Text())
		}
		times = append(times, time.Unix(0, int64(sec*1e9)))
		marks = append(marks, phase{name: f[2]})
	}
	if len(marks) < 2 {
		return nil, fmt.Errorf("%s: no phases marked:\n%s", filepath.Base(path), out)
	}
	for i := range marks[:len(marks)-1] {
		marks[i].took = times[i+1].Sub(times[i])
	}
	return marks[:len(marks)-1], nil
}

// lowerTTL replaces mail.example.org A and AAAA (still at OLD) by the same records with the
// lowered TTL, with a TSIG-signed update to the primary, and waits until the secondary serves it.
func (e *labEnv) lowerTTL(ctx context.Context) error {
	m := new(dns.Msg)
	m.SetUpdate(zone)
	a, err := dns.NewRR(fmt.Sprintf("%s %d IN A %s", mailName, loweredS, e.net.IP(10)))
	if err != nil {
		return err
	}
	aaaa, err := dns.NewRR(fmt.Sprintf("%s %d IN AAAA %s", mailName, loweredS, old6))
	if err != nil {
		return err
	}
	m.RemoveRRset([]dns.RR{a, aaaa})
	m.Insert([]dns.RR{a, aaaa})
	e.dns.Key.Sign(m)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, TsigSecret: e.dns.Key.SecretMap()}
	r, _, err := c.ExchangeContext(ctx, m, e.dns.Primary.Addr.String())
	if err != nil {
		return fmt.Errorf("lower ttl: update: %w", err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("lower ttl: update: %s", dns.RcodeToString[r.Rcode])
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		q := new(dns.Msg)
		q.SetQuestion(mailName, dns.TypeA)
		q.RecursionDesired = false
		qc := &dns.Client{Net: "udp", Timeout: time.Second}
		if r, _, err := qc.ExchangeContext(ctx, q, e.dns.Secondary.Addr.String()); err == nil && len(r.Answer) > 0 && r.Answer[0].Header().Ttl == loweredS {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("lower ttl: the secondary does not serve the lowered TTL after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("TTL of %s lowered from %d s to %d s (signed update)\n", mailName, origTTL, loweredS)
	return nil
}

// startAgent serves an ssh-agent holding the operator's key on a unix socket in dir, as the
// operator's own agent would for `ssh -A`.
func startAgent(keyFile, dir string) (string, func(), error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return "", nil, err
	}
	key, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		return "", nil, fmt.Errorf("agent: %w", err)
	}
	if k, ok := key.(*ed25519.PrivateKey); ok {
		key = *k
	}
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: key, Comment: "operator"}); err != nil {
		return "", nil, fmt.Errorf("agent: %w", err)
	}
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return "", nil, fmt.Errorf("agent: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return "", nil, fmt.Errorf("agent: %w", err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(kr, c)
			}()
		}
	}()
	return sock, func() { l.Close() }, nil
}

// --- report ---

func report(rs []*result, total time.Duration) {
	by := map[string]*result{}
	for _, r := range rs {
		by[r.name] = r
	}
	fmt.Printf("\n=== mail downtime seen by the sender (last accepted by OLD -> first accepted by NEW) ===\n")
	fmt.Printf("same data (5,000 messages, 20 users), TTL 30 s lowered to %d s ahead of the window, fresh lab each\n\n", loweredS)
	fmt.Printf("%-4s %-45s %10s  %s\n", "", "scenario", "downtime", "phases in the window")
	for _, r := range rs {
		var ps []string
		for _, p := range r.phases {
			ps = append(ps, fmt.Sprintf("%s %.2fs", p.name, p.took.Seconds()))
		}
		fmt.Printf("%-4s %-45s %9.2fs  %s\n", "("+r.name+")", r.what, r.downtime.Seconds(), strings.Join(ps, ", "))
	}
	fmt.Println()
	for _, name := range []string{"d", "e"} {
		if r := by[name]; r != nil {
			window := r.bridged.Sub(r.disabled)
			fmt.Printf("(%s): disable -> bridge up %.2fs (journal); downtime %.2fs = that %+.2fs; first message accepted %.2fs after bridge up\n",
				name, window.Seconds(), r.downtime.Seconds(), (r.downtime - window).Seconds(), r.firstNew.Sub(r.bridged).Seconds())
		}
	}
	if d, e := by["d"], by["e"]; d != nil && e != nil {
		fmt.Printf("(e) - (d) = %+.2fs; over their windows: %+.2fs\n", (e.downtime - d.downtime).Seconds(),
			((e.downtime - e.bridged.Sub(e.disabled)) - (d.downtime - d.bridged.Sub(d.disabled))).Seconds())
	}
	if a := by["a"]; a != nil {
		for _, o := range []string{"b", "b'", "c", "d", "e"} {
			if r := by[o]; r != nil {
				fmt.Printf("ratio (a)/(%s) = %.2f\n", o, a.downtime.Seconds()/r.downtime.Seconds())
			}
		}
		floor := a.finalSync + loweredS*time.Second + a.activat
		fmt.Printf("physical floor = final-sync %.2fs + lowered TTL %ds + activation %.2fs = %.2fs (from cutover's journal); (a) is %.2fs above it\n",
			a.finalSync.Seconds(), loweredS, a.activat.Seconds(), floor.Seconds(), (a.downtime - floor).Seconds())
		for _, o := range []string{"b", "b'"} {
			if r := by[o]; r != nil {
				for _, p := range r.phases {
					if p.name == "final-sync" {
						fmt.Printf("  with (%s)'s single final rsync (%.2fs) instead: %.2fs\n", o, p.took.Seconds(), (p.took + loweredS*time.Second + a.activat).Seconds())
					}
				}
			}
		}
	}
	fmt.Printf("total bench time %s\n", total.Round(time.Second))
}
