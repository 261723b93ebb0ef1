package e2e

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
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/scheduler"
)

// cutoverBin is the cutover binary built once by TestMain.
var cutoverBin string

// TestMain runs the tests (and the cutover binaries they start) in a network namespace of their
// own (lab.RunIsolated), builds cmd/cutover once and points TMPDIR at a directory outside /tmp, so
// that the lab's own files (host dirs, labmail) do not live under /tmp and each host can get a
// private /tmp (see startPair).
func TestMain(m *testing.M) {
	lab.RunIsolated(func() int { return setup(m) })
}

func setup(m *testing.M) int {
	flag.Parse()
	// The scenarios spend most of their time waiting for the 30 s TTL to expire: let them all
	// wait at once, even on 2 cores, unless -parallel was given.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(max(runtime.GOMAXPROCS(0), 4)))
	}
	return run(m)
}

func run(m *testing.M) int {
	base, err := os.MkdirTemp("/var/tmp", "cutover-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	os.Setenv("TMPDIR", base)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	cutoverBin = filepath.Join(base, "bin", "cutover")
	build := exec.Command("go", "build", "-o", cutoverBin, "./cmd/cutover")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/cutover: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

const (
	zone      = "example.org."
	mailName  = "mail.example.org."
	origTTL   = 30 // seconds, the zone's TTL before the cutover
	loweredS  = 3  // lowered_ttl in seconds
	secretEnv = "CUTOVER_E2E_TSIG"
)

var (
	old6 = netip.MustParseAddr("2001:db8::10")
	new6 = netip.MustParseAddr("2001:db8::20")
)

// syncPaths are the [[sync]] paths of the config, in order.
var syncPaths = []string{"/home/vmail/mail", "/var/lib/acme", "/etc/dkimkeys", "/var/spool/postfix"}

// owners are the configured owners ("user:" = the user and its login group).
var owners = map[string]string{"/home/vmail/mail": "vmail", "/var/lib/acme": "root", "/etc/dkimkeys": "opendkim"}

// scenario is one lab with a seeded OLD, a running sender and a cutover config.
type scenario struct {
	t          *testing.T
	net        *lab.Net
	dns        *lab.DNSLab
	pair       *lab.Pair
	oldMail    *lab.Mail
	newMail    *lab.Mail
	sender     *lab.Sender
	obs        *observer
	secret     string
	home       string
	stateDir   string
	cfgPath    string
	outputs    []string // every cutover invocation's output
	client     []*lab.ClientActions
	cutoverAt  time.Time
	senderDone bool
}

// startPair is lab.NewPair with a private /tmp in each host, so that cutover's temp dirs
// (/tmp/cutover-onetime-*) and its clean-up of them stay inside this test's hosts: with the
// shared /tmp, the preflight clean-up of one run removes the temp dirs of every other run on
// the machine, including other tests' transfers in flight.
func startPair(t *testing.T, n *lab.Net) *lab.Pair {
	t.Helper()
	lab.Require(t, "root", "ip", "sshd", "unshare", "nsenter", "rsync")
	p, err := lab.StartPairWith(n, t.TempDir(), lab.PairOptions{PrivateTmp: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// newScenario stands up the lab, seeds OLD, enables mail on OLD and starts the sender.
func newScenario(t *testing.T) *scenario {
	t.Helper()
	lab.Require(t, "root", "ip", "sshd", "ssh", "unshare", "nsenter", "rsync", "named", "unbound")
	start := time.Now()
	s := &scenario{t: t, home: t.TempDir(), stateDir: filepath.Join(t.TempDir(), "state")}
	s.net = lab.NewNet(t)
	s.pair = startPair(t, s.net)
	z := lab.Zone{Origin: zone, TTL: origTTL, Minimum: 2, Records: []string{
		fmt.Sprintf("mail %d IN A %s", origTTL, s.net.IP(10)),
		fmt.Sprintf("mail %d IN AAAA %s", origTTL, old6),
	}}
	s.dns = lab.NewDNSLab(t, s.net, z)
	s.secret = s.dns.Key.Secret
	man, err := lab.Seed(s.pair.Old, lab.SeedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Messages) < 5000 || len(man.Users) != 20 || len(man.HardLinks) == 0 {
		t.Fatalf("seed: %d messages, %d users, %d hard links", len(man.Messages), len(man.Users), len(man.HardLinks))
	}
	ctx := context.Background()
	bin := lab.BuildLabmail(t)
	if s.oldMail, err = lab.InstallMail(ctx, s.pair.Old, bin); err != nil {
		t.Fatal(err)
	}
	if s.newMail, err = lab.InstallMail(ctx, s.pair.New, bin); err != nil {
		t.Fatal(err)
	}
	if err := s.oldMail.Enable(ctx); err != nil {
		t.Fatal(err)
	}
	s.obs = startObserver(s)
	t.Cleanup(s.obs.stop)
	s.sender, err = lab.StartSender(lab.SenderOptions{Resolver: s.dns.Caches[0].Addr, Interval: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.sender.Stop() })
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.sender.WaitAccepted(wctx, 10); err != nil {
		t.Fatal(err)
	}
	t.Logf("lab up, OLD seeded with %d message files, sender running: %s", len(man.Messages), time.Since(start).Round(time.Millisecond))
	return s
}

// writeConfig writes the cutover config with cutover_at = now + lead.
func (s *scenario) writeConfig(lead time.Duration) {
	s.cutoverAt = time.Now().Add(lead).Truncate(time.Second)
	cfg := lab.Migration{Net: s.net, Pair: s.pair, DNS: s.dns, CutoverAt: s.cutoverAt, StateDir: s.stateDir,
		Zone: zone, Name: mailName, Old6: old6, New6: new6, LoweredTTL: loweredS * time.Second, SecretEnv: secretEnv}.Config()
	s.cfgPath = filepath.Join(s.home, "cutover.toml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// result is one finished cutover invocation.
type result struct {
	out    string
	code   int // -1 when killed by a signal
	signal syscall.Signal
	took   time.Duration
}

// command builds a cutover invocation with a minimal environment: no agent, no real HOME.
func (s *scenario) command(ctx context.Context, extraEnv []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, cutoverBin, args...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + s.home, "LANG=C", "TMPDIR=" + os.TempDir(), secretEnv + "=" + s.secret}, extraEnv...)
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if demo {
		// scripts/demo: the operator watches cutover's own output live.
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, os.Stdout), io.MultiWriter(&out, os.Stdout)
		fmt.Printf("\n$ cutover %s\n", strings.Join(args, " "))
	}
	return cmd, &out
}

// demo is set by scripts/demo: cutover's output goes to the terminal too.
var demo = os.Getenv("CUTOVER_DEMO") != ""

func (s *scenario) finish(cmd *exec.Cmd, out *bytes.Buffer, start time.Time, err error) result {
	r := result{out: out.String(), took: time.Since(start)}
	s.outputs = append(s.outputs, r.out)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signal = ws.Signal()
		}
	default:
		s.t.Fatalf("cutover %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, r.out)
	}
	return r
}

// cutover runs the binary to the end.
func (s *scenario) cutover(extraEnv []string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd, out := s.command(ctx, extraEnv, args...)
	start := time.Now()
	return s.finish(cmd, out, start, cmd.Run())
}

// startRun starts `cutover run --yes` and returns a func that waits for it.
func (s *scenario) startRun(extraEnv []string) func() result {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	cmd, out := s.command(ctx, extraEnv, "run", s.cfgPath, "--yes")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var once sync.Once
	var r result
	wait := func() result {
		once.Do(func() {
			defer cancel()
			r = s.finish(cmd, out, start, <-done)
		})
		return r
	}
	// A test that fails while the run is in progress stops it and shows its output.
	s.t.Cleanup(func() {
		select {
		case <-ctx.Done():
		default:
			if s.t.Failed() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				r := wait()
				s.t.Logf("cutover run stopped at the end of the failed test: exit %d signal %v\n%s", r.code, r.signal, r.out)
			}
		}
		cancel()
	})
	return wait
}

// plan checks `cutover plan --json`: not too late, lower-ttl due before the window by the
// served TTL plus margin.
func (s *scenario) plan() {
	t := s.t
	r := s.cutover(nil, "plan", s.cfgPath, "--json")
	if r.code != 0 {
		t.Fatalf("cutover plan: exit %d\n%s", r.code, r.out)
	}
	var p scheduler.Plan
	if err := json.Unmarshal([]byte(r.out), &p); err != nil {
		t.Fatalf("cutover plan --json: %v\n%s", err, r.out)
	}
	if p.TooLate || p.MaxTTL != origTTL*time.Second {
		t.Fatalf("plan: too_late %v (earliest safe %s), max_ttl %s; want in time with max_ttl 30s", p.TooLate, p.EarliestSafe, p.MaxTTL)
	}
	for _, st := range p.Steps {
		if st.Name == scheduler.LowerTTL {
			t.Logf("plan: lower-ttl by %s, window at %s (lead %s)", st.Deadline.Format(time.TimeOnly), p.CutoverAt.Format(time.TimeOnly), time.Until(p.CutoverAt).Round(time.Second))
		}
	}
}

// journal reads the journal file directly (for polling while a run is in progress).
func (s *scenario) journal() *scheduler.Journal {
	b, err := os.ReadFile(filepath.Join(s.stateDir, scheduler.JournalFile))
	if err != nil {
		return nil
	}
	var j scheduler.Journal
	if json.Unmarshal(b, &j) != nil {
		return nil
	}
	return &j
}

func stepOf(j *scheduler.Journal, name scheduler.StepName) *scheduler.StepRecord {
	for i := range j.Steps {
		if j.Steps[i].Name == name {
			return &j.Steps[i]
		}
	}
	return nil
}

// actAsClient waits until initial-sync is done, then plays a mail client on OLD twice (read
// some messages, delete others), while the sender keeps delivering: all of it lands between
// the initial and the final sync.
func (s *scenario) actAsClient() {
	t := s.t
	deadline := time.Now().Add(time.Until(s.cutoverAt) - 2*time.Second)
	for {
		if j := s.journal(); j != nil {
			st := stepOf(j, scheduler.InitialSync)
			if st != nil && st.State == scheduler.Done {
				break
			}
			if st != nil && st.State == scheduler.Failed {
				t.Fatalf("initial-sync failed: %s", st.Error)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("initial-sync not done 2 s before the window")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a few sender messages after the initial copy
	for i, o := range []lab.ClientOptions{{Read: 150, Delete: 100, Seed: 7}, {Read: 50, Delete: 150, Seed: 8}} {
		a, err := lab.SimulateClient(s.pair.Old, o)
		if err != nil {
			t.Fatal(err)
		}
		s.client = append(s.client, a)
		if i == 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if time.Now().After(s.cutoverAt) {
		t.Fatalf("the mail client finished after the window opened")
	}
}

// churn plays the deliveries of a busy mail server on OLD until stop is closed: in every
// mailbox, files appear in tmp/ and go away again, as Dovecot's tmp/ files do (written, then
// renamed into new/ or dropped), from two writers. It returns how many came and went.
func (s *scenario) churn(stop <-chan struct{}) <-chan int {
	done := make(chan int, 1)
	users := lab.SeedUsers(20)
	body := bytes.Repeat([]byte("churn line of a message being delivered\n"), 50)
	var total sync.WaitGroup
	counts := make([]int, 2)
	for w := range counts {
		total.Go(func() {
			for {
				for _, u := range users {
					select {
					case <-stop:
						return
					default:
					}
					p := s.pair.Old.Path(fmt.Sprintf("%s/%s/tmp/%d.churn%d", lab.MailRoot, u, counts[w], w))
					if err := os.WriteFile(p, body, 0o600); err == nil {
						_ = os.Remove(p)
						counts[w]++
					}
				}
			}
		})
	}
	go func() {
		total.Wait()
		done <- counts[0] + counts[1]
	}()
	return done
}

// stopSender waits for n more messages accepted at addr, then stops the sender.
func (s *scenario) stopSender(addr netip.Addr, n int) {
	t := s.t
	count := func() int {
		c := 0
		for _, d := range s.sender.Deliveries() {
			if d.Addr == addr {
				c++
			}
		}
		return c
	}
	want := count() + n
	deadline := time.Now().Add(30 * time.Second)
	for count() < want {
		if time.Now().After(deadline) {
			f, last := s.sender.Failures()
			t.Fatalf("sender: fewer than %d messages accepted at %s within 30 s (%d failed attempts, last: %v)", want, addr, f, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.sender.Stop()
	s.senderDone = true
}

// observer polls A of the name on both authoritative servers and both caches and records,
// per server, the last time it answered OLD and the first time it answered NEW.
type observer struct {
	mu       sync.Mutex
	lastOld  map[netip.AddrPort]time.Time
	firstNew map[netip.AddrPort]time.Time
	errs     map[netip.AddrPort]int
	quit     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func startObserver(s *scenario) *observer {
	o := &observer{lastOld: map[netip.AddrPort]time.Time{}, firstNew: map[netip.AddrPort]time.Time{},
		errs: map[netip.AddrPort]int{}, quit: make(chan struct{}), done: make(chan struct{})}
	oldA, newA := s.net.IP(10), s.net.IP(20)
	auth := s.dns.Authoritative()
	servers := append(slices.Clone(auth), s.dns.Resolvers()...)
	go func() {
		defer close(o.done)
		for {
			for _, srv := range servers {
				before := time.Now()
				addrs, _, err := query(srv, mailName, dns.TypeA, !slices.Contains(auth, srv))
				o.mu.Lock()
				switch {
				case err != nil:
					o.errs[srv]++
				case slices.Contains(addrs, oldA):
					// The answer was produced no earlier than before: OLD was served then.
					o.lastOld[srv] = before
				case slices.Contains(addrs, newA):
					if o.firstNew[srv].IsZero() {
						o.firstNew[srv] = time.Now()
					}
				}
				o.mu.Unlock()
			}
			select {
			case <-o.quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return o
}

func (o *observer) stop() {
	o.once.Do(func() { close(o.quit) })
	<-o.done
}

// query asks server for name/typ and returns the addresses and the smallest TTL.
func query(server netip.AddrPort, name string, typ uint16, recursion bool) ([]netip.Addr, uint32, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, typ)
	m.RecursionDesired = recursion
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	r, _, err := c.Exchange(m, server.String())
	if err != nil {
		return nil, 0, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, 0, fmt.Errorf("%s %s at %s: %s", name, dns.TypeToString[typ], server, dns.RcodeToString[r.Rcode])
	}
	if !recursion && !r.Authoritative {
		return nil, 0, fmt.Errorf("%s %s at %s: answer without AA", name, dns.TypeToString[typ], server)
	}
	var addrs []netip.Addr
	var ttl uint32
	for _, rr := range r.Answer {
		var ip []byte
		switch v := rr.(type) {
		case *dns.A:
			ip = v.A
		case *dns.AAAA:
			ip = v.AAAA
		default:
			continue
		}
		a, _ := netip.AddrFromSlice(ip)
		addrs = append(addrs, a.Unmap())
		if ttl == 0 || rr.Header().Ttl < ttl {
			ttl = rr.Header().Ttl
		}
	}
	return addrs, ttl, nil
}

// checkDNS asserts A and AAAA on all four servers; on the authoritative ones also the TTL.
func (s *scenario) checkDNS(wantA, wantAAAA netip.Addr, wantTTL uint32) {
	t := s.t
	auth := s.dns.Authoritative()
	for _, srv := range append(slices.Clone(auth), s.dns.Resolvers()...) {
		isAuth := slices.Contains(auth, srv)
		for _, q := range []struct {
			typ  uint16
			want netip.Addr
		}{{dns.TypeA, wantA}, {dns.TypeAAAA, wantAAAA}} {
			addrs, ttl, err := query(srv, mailName, q.typ, !isAuth)
			if err != nil {
				t.Errorf("DNS: %v", err)
				continue
			}
			if !slices.Equal(addrs, []netip.Addr{q.want}) {
				t.Errorf("DNS: %s %s at %s = %v, want %s", mailName, dns.TypeToString[q.typ], srv, addrs, q.want)
			}
			if isAuth && ttl != wantTTL {
				t.Errorf("DNS: %s %s at %s has TTL %d, want %d", mailName, dns.TypeToString[q.typ], srv, ttl, wantTTL)
			}
		}
	}
}

// status runs `cutover status --json`.
func (s *scenario) status() *scheduler.Journal {
	t := s.t
	r := s.cutover(nil, "status", s.cfgPath, "--json")
	if r.code != 0 {
		t.Fatalf("cutover status: exit %d\n%s", r.code, r.out)
	}
	var j scheduler.Journal
	if err := json.Unmarshal([]byte(r.out), &j); err != nil {
		t.Fatalf("cutover status --json: %v\n%s", err, r.out)
	}
	return &j
}

// checkSteps asserts every step's state and attempts; unlisted steps must be done once.
func (s *scenario) checkSteps(j *scheduler.Journal, states map[scheduler.StepName]scheduler.StepState, attempts map[scheduler.StepName]int) {
	t := s.t
	for _, info := range scheduler.Steps {
		rec := stepOf(j, info.Name)
		if rec == nil {
			t.Errorf("journal: no step %s", info.Name)
			continue
		}
		wantState, ok := states[info.Name]
		if !ok {
			wantState = scheduler.Done
		}
		wantAttempts, ok := attempts[info.Name]
		if !ok {
			wantAttempts = 0
			if wantState == scheduler.Done || wantState == scheduler.Failed {
				wantAttempts = 1
			}
		}
		if rec.State != wantState || rec.Attempts != wantAttempts {
			t.Errorf("journal: step %s is %s after %d attempt(s), want %s after %d (error %q)", info.Name, rec.State, rec.Attempts, wantState, wantAttempts, rec.Error)
		}
	}
}

// mailEvents returns the states of a mail service's event log, checked to be in time order.
func (s *scenario) mailEvents(m *lab.Mail) []lab.MailEvent {
	evs, err := m.Events()
	if err != nil {
		s.t.Fatal(err)
	}
	return evs
}

func states(evs []lab.MailEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.State)
	}
	return out
}

// checkClean asserts no one-time key, no cutover temp dir and nothing cutover started (an rsync
// of a killed run, a forwarder) still running on either host: only sshd and the stand-in mail
// service.
func (s *scenario) checkClean() {
	s.checkLeftovers(func(_ *lab.Host, _ int, comm string) bool { return comm == "labmail" })
}

// checkRelayClean is checkClean for the real relay, which runs on active: there only the
// relay's daemons (every process in the session of Postfix's, Dovecot's or OpenDKIM's pid)
// may run besides sshd; on disabled, the host whose relay the disable hook stopped (nil when
// there is none), only OpenDKIM, which relay-ctl stop leaves running (README: the lab); on a
// host that is neither, nothing but sshd.
func (s *scenario) checkRelayClean(active, disabled *lab.Host) {
	sessions := map[*lab.Host]map[int]bool{active: s.daemonSessions(active, lab.PostfixPIDFile, lab.DovecotPIDFile, lab.OpenDKIMPIDFile)}
	if disabled != nil {
		sessions[disabled] = s.daemonSessions(disabled, lab.OpenDKIMPIDFile)
	}
	s.checkLeftovers(func(h *lab.Host, sid int, _ string) bool { return sessions[h][sid] })
}

// daemonSessions returns the sessions led by the daemons of h whose pid files (paths inside h)
// are given: a pid file whose process is not a session leader in h adds none.
func (s *scenario) daemonSessions(h *lab.Host, pidFiles ...string) map[int]bool {
	inHost := map[string]bool{}
	for _, p := range hostProcs(s.t, h) {
		pid, _, _ := strings.Cut(p, " ")
		inHost[pid] = true
	}
	out := map[int]bool{}
	for _, f := range pidFiles {
		b, err := os.ReadFile(h.Path(f))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && inHost[strconv.Itoa(pid)] && procSession(pid) == pid {
			out[pid] = true
		}
	}
	return out
}

// checkLeftovers asserts no one-time key in authorized_keys and no cutover temp dir in /tmp
// on either host, and that no process runs in a host besides sshd (its listener, or a session
// just closing) and those allowed (pid's session sid, comm) reports; strays get 3 s to go.
func (s *scenario) checkLeftovers(allowed func(h *lab.Host, sid int, comm string) bool) {
	t := s.t
	for _, h := range []*lab.Host{s.pair.Old, s.pair.New} {
		b, err := os.ReadFile(h.Path("/root/.ssh/authorized_keys"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "cutover-onetime") {
			t.Errorf("%s: a one-time key is left in authorized_keys:\n%s", h.Name, b)
		}
		if left, _ := filepath.Glob(filepath.Join(h.Path("/tmp"), "cutover*")); len(left) > 0 {
			t.Errorf("%s: temp dirs left in /tmp: %v", h.Name, left)
		}
		var stray []string
		for deadline := time.Now().Add(3 * time.Second); ; {
			stray = stray[:0]
			for _, p := range hostProcs(t, h) {
				pidText, comm, _ := strings.Cut(p, " ")
				pid, _ := strconv.Atoi(pidText)
				if comm != "sshd" && !allowed(h, procSession(pid), comm) {
					stray = append(stray, p)
				}
			}
			if len(stray) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(stray) > 0 {
			t.Errorf("%s: processes left running: %q", h.Name, stray)
		}
	}
}

// checkSecret asserts the TSIG secret is in no output, journal or event log.
func (s *scenario) checkSecret() {
	t := s.t
	texts := slices.Clone(s.outputs)
	for _, f := range []string{scheduler.JournalFile, scheduler.EventsFile} {
		b, err := os.ReadFile(filepath.Join(s.stateDir, f))
		if err != nil {
			t.Errorf("state dir: %v", err)
		}
		texts = append(texts, string(b))
	}
	for i, txt := range texts {
		if strings.Contains(txt, s.secret) {
			t.Errorf("the TSIG secret appears in output/file #%d", i)
		}
	}
}

// deleted returns what the mail client deleted on OLD: paths and sender ids.
func (s *scenario) deleted() (paths, ids map[string]bool) {
	paths, ids = map[string]bool{}, map[string]bool{}
	for _, a := range s.client {
		for _, p := range a.Deleted {
			paths[p] = true
		}
		for _, id := range a.DeletedIDs {
			ids[id] = true
		}
	}
	return paths, ids
}

// checkMessages asserts every accepted message not deleted by the client is on h exactly once,
// no deleted one is, and no message is there twice.
func (s *scenario) checkMessages(h *lab.Host) map[string][]string {
	t := s.t
	ids, err := lab.MailIDs(h)
	if err != nil {
		t.Fatal(err)
	}
	_, deletedIDs := s.deleted()
	accepted := s.sender.Accepted()
	lost, twice, back := 0, 0, 0
	for _, id := range accepted {
		switch n := len(ids[id]); {
		case deletedIDs[id]:
			if n != 0 {
				back++
				t.Errorf("%s: message %s deleted on OLD is back: %v", h.Name, id, ids[id])
			}
		case n == 0:
			lost++
			if lost <= 10 {
				t.Errorf("%s: accepted message %s is missing", h.Name, id)
			}
		case n > 1:
			twice++
			t.Errorf("%s: message %s is there %d times: %v", h.Name, id, n, ids[id])
		}
	}
	for id, ps := range ids {
		if len(ps) > 1 && !slices.Contains(accepted, id) {
			t.Errorf("%s: unacknowledged message %s is there %d times: %v", h.Name, id, len(ps), ps)
		}
	}
	if lost > 0 {
		t.Errorf("%s: %d of %d accepted messages missing", h.Name, lost, len(accepted))
	}
	t.Logf("%s: %d accepted messages checked (%d deleted by the client), %d missing, %d twice, %d deleted ones back", h.Name, len(accepted), len(deletedIDs), lost, twice, back)
	return ids
}

// checkFiles compares every synced path on NEW with OLD: content, mode, mtime, hard links,
// symlinks, with owners by name as configured. Extra entries on NEW may only be messages the
// sender delivered to NEW after the activation.
func (s *scenario) checkFiles(newIDs map[string][]string) {
	t := s.t
	want, err := lab.Snapshot(s.pair.Old, syncPaths...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := lab.Snapshot(s.pair.New, syncPaths...)
	if err != nil {
		t.Fatal(err)
	}
	for p, fi := range want {
		for root, u := range owners {
			if p == root || strings.HasPrefix(p, root+"/") {
				fi.Owner, fi.Group = u, u
			}
		}
		want[p] = fi
	}
	deletedPaths, _ := s.deleted()
	for p := range deletedPaths {
		if _, ok := got[p]; ok {
			t.Errorf("NEW: %s deleted on OLD is back", p)
		}
	}
	for _, a := range s.client {
		for from := range a.Moved {
			if _, ok := got[from]; ok {
				t.Errorf("NEW: %s moved to cur/ on OLD is still in new/ on NEW", from)
			}
		}
	}
	atNew := map[string]bool{}
	for _, d := range s.sender.Deliveries() {
		if d.Addr == s.net.IP(20) {
			for _, p := range newIDs[d.ID] {
				atNew[p] = true
			}
		}
	}
	extra := 0
	for p, fi := range got {
		if _, ok := want[p]; !ok && atNew[p] && fi.Type == "file" {
			delete(got, p)
			extra++
		}
	}
	if diffs := lab.DiffSnapshots(want, got, 20); len(diffs) > 0 {
		t.Errorf("NEW differs from OLD (first %d differences):\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
	links := 0
	for _, fi := range want {
		if len(fi.Links) > 1 {
			links++
		}
	}
	t.Logf("files: %d entries compared (%d hard-linked names), %d messages delivered to NEW after activation", len(want), links, extra)
}

// checkMigrated is every assertion of a finished cutover.
func (s *scenario) checkMigrated(attempts map[scheduler.StepName]int) {
	t := s.t
	ctx := context.Background()
	s.stopSender(s.net.IP(20), 20)
	s.obs.stop()

	j := s.status()
	if j.Outcome != scheduler.OutcomeDone || j.DNS != scheduler.DNSRestored || j.Rollback != nil {
		t.Errorf("journal: outcome %q, dns %q, rollback %v; want done, restored, none", j.Outcome, j.DNS, j.Rollback)
	}
	s.checkSteps(j, map[scheduler.StepName]scheduler.StepState{scheduler.Prepare: scheduler.Skipped}, attempts)

	s.checkDNS(s.net.IP(20), new6, origTTL)

	if on, err := s.pair.Old.MailEnabled(ctx); err != nil || on {
		t.Errorf("OLD mail enabled %v (%v), want disabled", on, err)
	}
	if on, err := s.pair.New.MailEnabled(ctx); err != nil || !on {
		t.Errorf("NEW mail enabled %v (%v), want enabled", on, err)
	}
	oldEv, newEv := s.mailEvents(s.oldMail), s.mailEvents(s.newMail)
	if got, want := states(oldEv), []string{"enabling", "enabled", "disabling", "disabled"}; !slices.Equal(got, want) {
		t.Errorf("OLD mail events %q, want %q", got, want)
	}
	if got, want := states(newEv), []string{"enabling", "enabled"}; !slices.Equal(got, want) {
		t.Errorf("NEW mail events %q, want %q", got, want)
	} else {
		enabling := newEv[0].Time
		ar := stepOf(j, scheduler.AwaitResolvers)
		if ar == nil || ar.Ended.IsZero() || !enabling.After(ar.Ended) {
			t.Errorf("NEW enabling at %s, not after await-resolvers ended (%v)", enabling.Format(time.StampMicro), ar)
		}
		s.obs.mu.Lock()
		for srv, last := range s.obs.lastOld {
			if !last.Before(enabling) {
				t.Errorf("%s still served OLD at %s, after NEW was enabled at %s", srv, last.Format(time.StampMicro), enabling.Format(time.StampMicro))
			}
		}
		for _, srv := range append(s.dns.Authoritative(), s.dns.Resolvers()...) {
			fn := s.obs.firstNew[srv]
			if fn.IsZero() {
				t.Errorf("observer never saw NEW at %s", srv)
				continue
			}
			t.Logf("DNS %s: last OLD %s, first NEW %s (NEW enabled %s, %d query errors)", srv, s.obs.lastOld[srv].Format(time.StampMilli), fn.Format(time.StampMilli), enabling.Format(time.StampMilli), s.obs.errs[srv])
		}
		s.obs.mu.Unlock()
	}
	if len(oldEv) == 4 {
		if d := stepOf(j, scheduler.Disable); d == nil || oldEv[2].Time.Before(d.Started) {
			t.Errorf("OLD disabling at %s, before the disable step started (%v)", oldEv[2].Time, d)
		}
		if oldEv[2].Time.Before(s.cutoverAt) {
			t.Errorf("OLD disabled at %s, before cutover_at %s", oldEv[2].Time, s.cutoverAt)
		}
	}

	newIDs := s.checkMessages(s.pair.New)
	s.checkFiles(newIDs)
	s.checkClean()
	s.checkSecret()
	s.logDowntime()
}

// logDowntime logs the mail downtime seen by the sender: last message accepted by OLD to the
// first accepted by NEW.
func (s *scenario) logDowntime() {
	lastOld, firstNew := s.sender.Switched(s.net.IP(10), s.net.IP(20))
	if !lastOld.IsZero() && !firstNew.IsZero() {
		s.t.Logf("downtime seen by the sender: %s (last OLD %s, first NEW %s)", firstNew.Sub(lastOld).Round(time.Millisecond), lastOld.Format(time.StampMilli), firstNew.Format(time.StampMilli))
	}
}

// lead is how far ahead cutover_at is: the 30 s TTL served today + the 10 s margin before the
// window, plus time for preflight, lower-ttl and the initial copy, which must be done before the
// client acts (actAsClient) on a loaded CI machine too.
const lead = origTTL*time.Second + 10*time.Second + 20*time.Second

// killed requires a run started with a CUTOVER_FAULT (what: "after swap-dns", say) to have
// been killed by it (SIGKILL), as a crash would.
func (s *scenario) killed(what string, r result) {
	s.t.Helper()
	s.logRun("cutover run (fault "+what+")", r)
	if r.signal != syscall.SIGKILL {
		s.t.Fatalf("cutover run (fault %s): exit %d, signal %v; want SIGKILL\n%s", what, r.code, r.signal, r.out)
	}
}

// resume runs cutover again after a kill and requires it to finish the cutover.
func (s *scenario) resume() result {
	s.t.Helper()
	r := s.cutover(nil, "run", s.cfgPath, "--yes")
	s.succeeded("cutover run (resume)", r)
	return r
}

// succeeded logs a run and requires it to have finished the cutover (exit 0).
func (s *scenario) succeeded(what string, r result) {
	s.t.Helper()
	s.logRun(what, r)
	if r.code != 0 || r.signal != 0 {
		s.t.Fatalf("%s: exit %d, signal %v; want 0\n%s", what, r.code, r.signal, r.out)
	}
}

func (s *scenario) logRun(what string, r result) {
	s.t.Logf("%s: exit %d signal %v after %s", what, r.code, r.signal, r.took.Round(time.Millisecond))
	switch {
	case s.t.Failed():
		s.t.Logf("%s output:\n%s", what, r.out)
	case testing.Verbose():
		lines := strings.Split(strings.TrimRight(r.out, "\n"), "\n")
		s.t.Logf("%s output (last 40 lines):\n%s", what, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}

// TestMigration is an uninterrupted cutover under live traffic.
func TestMigration(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	s.writeConfig(lead)
	s.plan()
	// A busy server: files come and go on OLD while the initial copy reads it.
	stop := make(chan struct{})
	churned := s.churn(stop)
	wait := s.startRun(nil)
	func() {
		defer func() {
			close(stop)
			t.Logf("churn: %d temp files came and went on OLD during the initial copy", <-churned)
		}()
		s.actAsClient()
	}()
	r := wait()
	s.succeeded("cutover run", r)
	s.checkMigrated(nil)
	if demo {
		s.cutover(nil, "status", s.cfgPath)
		fmt.Printf("\n%d messages were accepted during the migration; every one is on NEW exactly once.\n", len(s.sender.Accepted()))
	}
}

// TestMigrationKilledDuringFinalSync kills cutover (SIGKILL) while final-sync copies, then runs
// it again.
func TestMigrationKilledDuringFinalSync(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	s.writeConfig(lead)
	s.plan()
	wait := s.startRun([]string{"CUTOVER_FAULT=during:final-sync", "CUTOVER_FAULT_DELAY=1s"})
	s.actAsClient()
	r := wait()
	s.killed("during final-sync", r)
	b, _ := os.ReadFile(s.pair.New.Path("/root/.ssh/authorized_keys"))
	tmps, _ := filepath.Glob(filepath.Join(s.pair.Old.Path("/tmp"), "cutover-onetime-*"))
	t.Logf("after the kill: one-time key on NEW: %v; temp dir on OLD: %v; processes left in OLD: %q; in NEW: %q",
		strings.Contains(string(b), "cutover-onetime"), tmps, hostProcs(t, s.pair.Old), hostProcs(t, s.pair.New))
	if st := stepOf(s.journal(), scheduler.FinalSync); st == nil || st.State != scheduler.Running {
		t.Fatalf("journal after the kill: final-sync %+v, want running", st)
	}
	r = s.resume()
	s.checkMigrated(map[scheduler.StepName]int{scheduler.FinalSync: 2})
}

// TestMigrationKilledAfterSwapDNS kills cutover (SIGKILL) right after swap-dns is journaled,
// then runs it again.
func TestMigrationKilledAfterSwapDNS(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	s.writeConfig(lead)
	s.plan()
	wait := s.startRun([]string{"CUTOVER_FAULT=after:swap-dns"})
	s.actAsClient()
	r := wait()
	s.killed("after swap-dns", r)
	if j := s.journal(); j == nil || stepOf(j, scheduler.SwapDNS).State != scheduler.Done || j.DNS != scheduler.DNSSwapped {
		t.Fatalf("journal after the kill: %+v, want swap-dns done and DNS swapped", j)
	}
	r = s.resume()
	s.checkMigrated(nil)
}

// TestRollbackOnVerifyFailure changes a file on NEW behind cutover's back between final-sync and
// verify: verify fails, the run rolls back, and mail goes on at OLD.
func TestRollbackOnVerifyFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newScenario(t)
	s.writeConfig(lead)
	s.plan()
	wait := s.startRun([]string{"CUTOVER_FAULT=after:final-sync"})
	s.actAsClient()
	r := wait()
	s.killed("after final-sync", r)
	const dkim = "/etc/dkimkeys/opendkim.private"
	flipByte(t, s.pair.New.Path(dkim))

	r = s.cutover(nil, "run", s.cfgPath, "--yes")
	s.logRun("cutover run (resume, verify fails)", r)
	if r.code != 1 || r.signal != 0 {
		t.Errorf("cutover run (resume): exit %d, signal %v; want exit 1\n%s", r.code, r.signal, r.out)
	}
	if !strings.Contains(r.out, dkim) {
		t.Errorf("cutover run output does not name %s:\n%s", dkim, r.out)
	}
	s.stopSender(s.net.IP(10), 20)
	s.obs.stop()

	j := s.status()
	if j.Outcome != scheduler.OutcomeRolledBack || j.DNS != scheduler.DNSReverted || j.Rollback == nil || j.Rollback.Error != "" {
		t.Errorf("journal: outcome %q, dns %q, rollback %+v; want rolled-back, reverted, no error", j.Outcome, j.DNS, j.Rollback)
	} else if !strings.HasPrefix(j.Rollback.Reason, "verify failed") || len(j.Rollback.Actions) != 3 {
		t.Errorf("journal: rollback %+v; want reason verify failed, re-enable, revert, and the wait for the authoritative servers", j.Rollback)
	}
	pending := map[scheduler.StepName]scheduler.StepState{scheduler.Prepare: scheduler.Skipped, scheduler.Verify: scheduler.Failed}
	for _, st := range []scheduler.StepName{scheduler.Fixup, scheduler.SwapDNS, scheduler.AwaitAuthoritative, scheduler.AwaitResolvers, scheduler.Activate, scheduler.RestoreTTL} {
		pending[st] = scheduler.Pending
	}
	s.checkSteps(j, pending, nil)

	s.checkDNS(s.net.IP(10), old6, origTTL)
	s.obs.mu.Lock()
	for srv, fn := range s.obs.firstNew {
		t.Errorf("%s served NEW at %s: DNS must never have pointed at NEW", srv, fn.Format(time.StampMilli))
	}
	s.obs.mu.Unlock()

	if on, err := s.pair.Old.MailEnabled(ctx); err != nil || !on {
		t.Errorf("OLD mail enabled %v (%v), want enabled again", on, err)
	}
	if on, err := s.pair.New.MailEnabled(ctx); err != nil || on {
		t.Errorf("NEW mail enabled %v (%v), want disabled", on, err)
	}
	if got, want := states(s.mailEvents(s.oldMail)), []string{"enabling", "enabled", "disabling", "disabled", "enabling", "enabled"}; !slices.Equal(got, want) {
		t.Errorf("OLD mail events %q, want %q", got, want)
	}
	if got := states(s.mailEvents(s.newMail)); len(got) != 0 {
		t.Errorf("NEW mail events %q, want none", got)
	}
	for _, d := range s.sender.Deliveries() {
		if d.Addr != s.net.IP(10) {
			t.Errorf("sender: %s accepted at %s, want only OLD", d.ID, d.Addr)
		}
	}
	s.checkMessages(s.pair.Old)
	s.checkClean()
	s.checkSecret()
	var gap time.Duration
	ds := s.sender.Deliveries()
	for i := 1; i < len(ds); i++ {
		gap = max(gap, ds[i].At.Sub(ds[i-1].At))
	}
	t.Logf("longest gap between accepted messages (the window until the rollback): %s", gap.Round(time.Millisecond))
}

// hostProcs lists the processes in h's mount namespace other than its sshd listener, as
// "pid comm" strings.
func hostProcs(t *testing.T, h *lab.Host) []string {
	t.Helper()
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", h.PID))
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == h.PID {
			continue
		}
		if n, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err != nil || n != ns {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		out = append(out, fmt.Sprintf("%d %s", pid, strings.TrimSpace(string(comm))))
	}
	return out
}

// procSession returns the session id of process pid (-1 when it is gone): the sixth field of
// /proc/PID/stat, the fourth after the command name in parentheses.
func procSession(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 4 {
		return -1
	}
	sid, err := strconv.Atoi(f[3])
	if err != nil {
		return -1
	}
	return sid
}
