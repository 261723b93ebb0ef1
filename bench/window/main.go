// Command window measures cutover's window (final-sync, verify, fixup) against the chatmail
// guide's own commands on the same tree and the same delta, at 10,000 and 100,000 message files
// (and 1,000,000 with -million).
//
// For each size it starts three lab hosts (internal/lab): OLD seeded with lab.Seed (Maildirs with
// hard links, ACME, DKIM keys, a Postfix spool) and two empty NEW hosts, NEW-C for cutover and
// NEW-G for the guide. The initial copy goes to NEW-C with cutover's initial sync and to NEW-G
// with `tar c | ssh tar x` (both timed; cutover streams into the empty directory with tar and
// reports progress with an ETA). Then the delta lands on OLD (lab.SimulateClient: 1% of
// the messages move from new/ to cur/, 0.5% are deleted, 1% arrive) and OLD is frozen, as after
// disable. The guide's window, run on OLD as the guide's operator would, is
//
//	tar -C / -cf - var/lib/acme etc/dkimkeys var/spool/postfix | ssh root@NEW-G tar -C / -xpf -
//	rsync -azH --delete /home/vmail/mail/ root@NEW-G:/home/vmail/mail/
//	ssh root@NEW-G 'chown -R root: /var/lib/acme; chown -R opendkim: /etc/dkimkeys; chown -R vmail: /home/vmail/mail'
//
// and cutover's is sshops' Copy (final), Verify and Fixup on one Pair, as `cutover run` calls
// them, in a child process (this program with -child) whose peak RSS it reports itself (VmHWM).
// The entries are the lab's migration config (lab.Migration.Config). The disable hook is left
// out of both: it is the same command for both.
//
// Afterwards both NEW hosts are compared with OLD (lab.Snapshot: type, mode, size, mtime,
// owner by name, sha256, hard links); a difference fails the run.
//
// Run it as root from the module root: go run ./bench/window [-million] [-v] (or bench/window.sh).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/sshops"
)

// entries are the [[sync]] entries of lab.Migration.Config.
var entries = []sshops.Entry{
	{Path: "/home/vmail/mail", Delete: true, Owner: "vmail:"},
	{Path: "/var/lib/acme", Owner: "root:"},
	{Path: "/etc/dkimkeys", Owner: "opendkim:", Content: true},
	{Path: "/var/spool/postfix"},
}

var snapshotRoots = []string{"/home/vmail/mail", "/var/lib/acme", "/etc/dkimkeys", "/var/spool/postfix"}

var verbose bool

func main() {
	// The lab's hosts live in a network namespace of this program's own (the child inherits it).
	if err := lab.Isolate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/window:", err)
		os.Exit(1)
	}
	million := flag.Bool("million", false, "also run 1,000,000 files (about 8 GB of disk and half an hour)")
	sizes := flag.String("sizes", "10000,100000", "message counts, comma-separated")
	child := flag.String("child", "", "internal: run cutover's side (initial or window) with the JSON job on stdin")
	flag.BoolVar(&verbose, "v", false, "print sshops' log")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *child != "" {
		if err := runChild(ctx, *child); err != nil {
			fmt.Fprintln(os.Stderr, "bench/window (child):", err)
			os.Exit(1)
		}
		return
	}
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1000 {
			fmt.Fprintf(os.Stderr, "bench/window: bad size %q (want a number >= 1000)\n", s)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	if *million {
		ns = append(ns, 1_000_000)
	}
	if err := run(ctx, ns); err != nil {
		fmt.Fprintln(os.Stderr, "bench/window:", err)
		os.Exit(1)
	}
}

// job is what the child needs to reach both hosts.
type job struct {
	Old, New   netip.Addr
	KeyFile    string
	KnownHosts string
}

// timing is one step of the child's run.
type timing struct {
	Step string
	Took time.Duration
}

// runChild runs cutover's side: the initial sync, or the window's final-sync, verify and fixup
// on one Pair, and prints the step timings as JSON on stdout.
func runChild(ctx context.Context, what string) error {
	var j job
	if err := json.NewDecoder(os.Stdin).Decode(&j); err != nil {
		return err
	}
	var log io.Writer = io.Discard
	if verbose {
		log = &stampWriter{w: os.Stderr, start: time.Now()}
	}
	auth := sshops.Auth{IdentityFile: j.KeyFile, KnownHosts: j.KnownHosts}
	oldc, err := sshops.Dial(ctx, sshops.Endpoint{Role: "old", Addr: j.Old}, auth, log)
	if err != nil {
		return err
	}
	defer oldc.Close()
	newc, err := sshops.Dial(ctx, sshops.Endpoint{Role: "new", Addr: j.New}, auth, log)
	if err != nil {
		return err
	}
	defer newc.Close()
	var last sshops.Progress
	p := &sshops.Pair{Old: oldc, New: newc, Log: log, Progress: func(pr sshops.Progress) { last = pr }}
	var ts []timing
	step := func(name string, f func() error) error {
		start := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		ts = append(ts, timing{name, time.Since(start)})
		return nil
	}
	switch what {
	case "initial":
		var initial []sshops.Entry
		for _, e := range entries {
			if e.Path == "/home/vmail/mail" {
				initial = append(initial, e)
			}
		}
		if err := step("initial-sync", func() error { return p.Copy(ctx, initial, false) }); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "  last progress line: %s\n", last)
	case "window":
		// As cutover run does before the window opens (PrepareFinalSync): the final copy's
		// one-time key and ssh connection from old to new are set up ahead.
		if err := p.Prepare(ctx, entries); err != nil {
			return err
		}
		if err := step("final-sync", func() error { return p.Copy(ctx, entries, true) }); err != nil {
			return err
		}
		if err := step("verify", func() error { return p.Verify(ctx, entries) }); err != nil {
			return err
		}
		if err := step("fixup", func() error { return p.Fixup(ctx, entries) }); err != nil {
			return err
		}
	case "again":
		if err := step("final-sync", func() error { return p.Copy(ctx, entries, true) }); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown child job %q", what)
	}
	peak, err := peakRSS()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(childResult{Steps: ts, PeakRSS: peak})
}

// childResult is what the child prints: its step timings and its peak RSS in KiB.
type childResult struct {
	Steps   []timing
	PeakRSS int64
}

// peakRSS is this process's peak resident set in KiB (VmHWM). Not the rusage of the child as its
// parent sees it: Go starts children with vfork, and exec records the parent's peak as the
// child's (the parent holds the seeded tree's manifest: hundreds of MB at 1,000,000 files).
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

// stampWriter prefixes each line of sshops' log with the time since the child started, so
// that -v shows where a step's time goes.
type stampWriter struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (s *stampWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range strings.SplitAfter(string(p), "\n") {
		if l != "" {
			fmt.Fprintf(s.w, "%7.3f %s", time.Since(s.start).Seconds(), l)
		}
	}
	return len(p), nil
}

// result is one size's measurement.
type result struct {
	files              int
	seed               time.Duration
	initialC, initialG time.Duration
	initialRSS         int64 // KiB
	steps              []timing
	window             time.Duration
	windowRSS          int64 // KiB
	guideSteps         []timing
	guide              time.Duration
	delta              string
}

func run(ctx context.Context, sizes []int) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (lab hosts in mount namespaces); the lab names any command it misses")
	}
	// The hosts get a private /tmp: the lab's own files must not live under /tmp.
	base, err := os.MkdirTemp("/var/tmp", "cutover-bench-window-")
	if err == nil {
		defer os.RemoveAll(base)
		err = os.Chmod(base, 0o755)
	}
	if err != nil {
		return err
	}
	os.Setenv("TMPDIR", base)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var results []*result
	for _, n := range sizes {
		fmt.Printf("--- %d messages ---\n", n)
		r, err := measure(ctx, base, self, n)
		if err != nil {
			return fmt.Errorf("%d messages: %w", n, err)
		}
		results = append(results, r)
	}
	report(results)
	return nil
}

// lab3 is OLD and the two NEW hosts of one size.
type lab3 struct {
	net   *lab.Net
	pair  *lab.Pair // OLD and NEW-C
	guide *lab.Host // NEW-G
	dir   string
}

func (l *lab3) stop() {
	if l.guide != nil {
		if err := l.guide.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/window: stop NEW-G:", err)
		}
	}
	if l.pair != nil {
		if err := l.pair.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/window: stop hosts:", err)
		}
	}
	if l.net != nil {
		if err := l.net.Release(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/window: release net:", err)
		}
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

func startLab(base string) (*lab3, error) {
	l := &lab3{}
	var err error
	if l.net, err = lab.ReserveNet(); err != nil {
		return l, err
	}
	if l.dir, err = os.MkdirTemp(base, "size-"); err != nil {
		return l, err
	}
	if l.pair, err = lab.StartPairWith(l.net, l.dir, lab.PairOptions{PrivateTmp: true}); err != nil {
		return l, err
	}
	l.guide, err = lab.StartHost(lab.HostOptions{
		Name:           "new-g",
		Addr:           l.net.IP(21),
		Mounts:         append(slices.Clone(lab.DefaultMounts), "/tmp"),
		Users:          map[string]int{"vmail": 6000, "opendkim": 6001},
		AuthorizedKeys: []string{l.pair.Identity.AuthorizedKey},
	})
	if err != nil {
		return l, err
	}
	if err := os.Chmod(l.guide.Path("/tmp"), 0o1777); err != nil {
		return l, err
	}
	// The guide's operator on OLD reaches NEW-G with a key of OLD's root.
	id, err := lab.NewIdentity(l.pair.Old.Path("/root/.ssh"))
	if err != nil {
		return l, err
	}
	if err := l.guide.AddAuthorizedKey(id.AuthorizedKey); err != nil {
		return l, err
	}
	if err := os.WriteFile(l.pair.Old.Path("/root/.ssh/known_hosts"), []byte(l.guide.KnownHostsLine()+"\n"), 0o644); err != nil {
		return l, err
	}
	return l, nil
}

func measure(ctx context.Context, base, self string, n int) (*result, error) {
	l, err := startLab(base)
	defer l.stop()
	if err != nil {
		return nil, err
	}
	r := &result{files: n}
	t0 := time.Now()
	m, err := lab.Seed(l.pair.Old, lab.SeedOptions{Messages: n, Users: max(20, n/2000)})
	if err != nil {
		return nil, err
	}
	r.seed = time.Since(t0)
	fmt.Printf("seeded OLD: %d message files (%d hard-link pairs), %d MB, in %s\n", len(m.Messages), len(m.HardLinks), m.Bytes>>20, r.seed.Round(time.Millisecond))
	m = nil

	j := job{Old: l.pair.Old.Addr, New: l.pair.New.Addr, KeyFile: l.pair.Identity.KeyFile, KnownHosts: l.pair.KnownHosts}
	// Each side starts with no dirty pages to write back: the seed's (hundreds of MB) would
	// otherwise slow down whichever copy runs first.
	syscall.Sync()
	var initial []timing
	if initial, r.initialRSS, err = child(ctx, self, "initial", j); err != nil {
		return nil, err
	}
	r.initialC = initial[0].Took
	ssh := "ssh -o BatchMode=yes root@" + l.guide.Addr.String()
	syscall.Sync()
	t0 = time.Now()
	if _, err := l.pair.Old.Exec(ctx, "tar -C / -cf - home/vmail/mail | "+ssh+" 'tar -C / -xpf -'"); err != nil {
		return nil, err
	}
	r.initialG = time.Since(t0)
	fmt.Printf("initial copy: cutover %s (peak RSS %d MB), tar c | ssh tar x %s; ratio %.2f\n", r.initialC.Round(time.Millisecond), r.initialRSS>>10,
		r.initialG.Round(time.Millisecond), float64(r.initialC)/float64(r.initialG))

	a, err := lab.SimulateClient(l.pair.Old, lab.ClientOptions{Read: n / 100, Delete: n / 200, Arrive: n / 100})
	if err != nil {
		return nil, err
	}
	r.delta = fmt.Sprintf("%d moved new/ -> cur/, %d deleted, %d arrived", len(a.Moved), len(a.Deleted), len(a.Arrived))
	fmt.Println("delta on OLD:", r.delta)
	// Both sides start with OLD's tree in the page cache, as on a server that just ran.
	if _, err := l.pair.Old.Exec(ctx, "tar -C / -cf - home/vmail var/lib/acme etc/dkimkeys var/spool/postfix >/dev/null"); err != nil {
		return nil, err
	}

	guide := []struct{ name, cmd string }{
		{"tar small dirs", "tar -C / -cf - var/lib/acme etc/dkimkeys var/spool/postfix | " + ssh + " 'tar -C / -xpf -'"},
		{"rsync -azH mail", "rsync -azH --delete -e 'ssh -o BatchMode=yes' /home/vmail/mail/ root@" + l.guide.Addr.String() + ":/home/vmail/mail/"},
		{"chown -R x3", ssh + " 'chown -R root: /var/lib/acme && chown -R opendkim: /etc/dkimkeys && chown -R vmail: /home/vmail/mail'"},
	}
	syscall.Sync()
	for _, g := range guide {
		t0 := time.Now()
		if _, err := l.pair.Old.Exec(ctx, g.cmd); err != nil {
			return nil, err
		}
		r.guideSteps = append(r.guideSteps, timing{g.name, time.Since(t0)})
		r.guide += time.Since(t0)
	}
	syscall.Sync()
	if r.steps, r.windowRSS, err = child(ctx, self, "window", j); err != nil {
		return nil, err
	}
	for _, s := range r.steps {
		r.window += s.Took
	}
	fmt.Printf("window: cutover %s %s (peak RSS %d MB); guide %s %s; ratio %.2f\n",
		r.window.Round(time.Millisecond), stepList(r.steps), r.windowRSS>>10, r.guide.Round(time.Millisecond), stepList(r.guideSteps),
		float64(r.window)/float64(r.guide))

	// A second pass with nothing to copy shows each side's fixed cost of walking the trees:
	// cutover's final copy again, the guide's rsync again, and cutover's rsync options run like
	// the guide's (on OLD, to NEW-G).
	again, _, err := child(ctx, self, "again", j)
	if err != nil {
		return nil, err
	}
	var rerun []timing
	for _, g := range []struct{ name, cmd string }{
		{"guide's rsync -azH", guide[1].cmd},
		{"rsync -aHs --info=progress2 (cutover's options)", "rsync -aHs --info=progress2 --out-format= --delete -e 'ssh -o BatchMode=yes' /home/vmail/mail/ root@" + l.guide.Addr.String() + ":/home/vmail/mail/ >/dev/null"},
	} {
		t0 := time.Now()
		if _, err := l.pair.Old.Exec(ctx, g.cmd); err != nil {
			return nil, err
		}
		rerun = append(rerun, timing{g.name, time.Since(t0)})
	}
	fmt.Printf("nothing to copy: cutover %s; %s\n", stepList(again), stepList(rerun))

	if n <= 100_000 {
		oldSnap, err := lab.Snapshot(l.pair.Old, snapshotRoots...)
		if err != nil {
			return nil, err
		}
		for _, h := range []*lab.Host{l.pair.New, l.guide} {
			s, err := lab.Snapshot(h, snapshotRoots...)
			if err != nil {
				return nil, err
			}
			if d := lab.DiffSnapshots(oldSnap, s, 5); len(d) > 0 {
				return nil, fmt.Errorf("%s differs from OLD after the window:\n%s", h.Name, strings.Join(d, "\n"))
			}
		}
		fmt.Println("checked: NEW-C and NEW-G equal OLD (type, mode, size, mtime, owner by name, sha256, hard links)")
	}
	return r, nil
}

// child runs this program with -child what and returns its timings and peak RSS in KiB.
func child(ctx context.Context, self, what string, j job) ([]timing, int64, error) {
	in, err := json.Marshal(j)
	if err != nil {
		return nil, 0, err
	}
	args := []string{"-child", what}
	if verbose {
		args = append(args, "-v")
	}
	c := exec.CommandContext(ctx, self, args...)
	c.Stdin = bytes.NewReader(in)
	c.Stderr = os.Stderr
	out, err := c.Output()
	if err != nil {
		return nil, 0, fmt.Errorf("cutover %s: %w", what, err)
	}
	var res childResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, 0, fmt.Errorf("cutover %s: output %q: %w", what, out, err)
	}
	return res.Steps, res.PeakRSS, nil
}

func stepList(ts []timing) string {
	var parts []string
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s %s", t.Step, t.Took.Round(time.Millisecond)))
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func report(rs []*result) {
	fmt.Println()
	fmt.Println("| messages | cutover window | final-sync | verify | fixup | guide (tar + rsync -azH + chown -R) | ratio | cutover peak RSS | initial: cutover / tar c \\| ssh tar x | initial ratio |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		d := func(t time.Duration) string { return fmt.Sprintf("%.2f s", t.Seconds()) }
		var cells []string
		for _, s := range r.steps {
			cells = append(cells, d(s.Took))
		}
		fmt.Printf("| %d | %s | %s | %s | %.2f | %d MB | %s / %s | %.2f |\n", r.files, d(r.window), strings.Join(cells, " | "), d(r.guide),
			float64(r.window)/float64(r.guide), r.windowRSS>>10, d(r.initialC), d(r.initialG), float64(r.initialC)/float64(r.initialG))
	}
}
