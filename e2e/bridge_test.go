package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/scheduler"
)

// writeBridgeConfig is writeConfig for a handover through old: old forwards
// the mail port (and ports) to new while DNS moves. The lab's hosts have no
// IPv6 address of their own: with old6 invalid, old and new have no
// address6 and the zone no AAAA (what a rollback puts back is then what old
// serves); with old6 (an address on the lab's lo, lab.AddIP6), old's
// address6 is old6, the forwarder listens there too, and the zone's AAAA
// points at it. The forwarder's dir is in old's private /tmp (its log stays
// there after unbridge, as it would on a real old).
func (s *scenario) writeBridgeConfig(lead, lowered time.Duration, old6 netip.Addr, ports ...uint16) {
	s.cutoverAt = time.Now().Add(lead).Truncate(time.Second)
	m := lab.Migration{Net: s.net, Pair: s.pair, DNS: s.dns, CutoverAt: s.cutoverAt, StateDir: s.stateDir,
		Zone: zone, Name: mailName, LoweredTTL: lowered, SecretEnv: secretEnv, Bridge: append([]uint16{lab.MailPort}, ports...)}
	if old6.IsValid() {
		m.Old6, m.New6 = old6, lab.IP6(s.net.IP(20))
	}
	s.cfgPath = filepath.Join(s.home, "cutover.toml")
	if err := os.WriteFile(s.cfgPath, []byte(m.Config()), 0o600); err != nil {
		s.t.Fatal(err)
	}
	msg := new(dns.Msg)
	msg.SetUpdate(zone)
	msg.RemoveRRset([]dns.RR{&dns.AAAA{Hdr: dns.RR_Header{Name: mailName, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}}})
	if old6.IsValid() {
		msg.Insert([]dns.RR{&dns.AAAA{Hdr: dns.RR_Header{Name: mailName, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: origTTL}, AAAA: old6.AsSlice()}})
	}
	s.dns.Key.Sign(msg)
	c := &dns.Client{TsigSecret: s.dns.Key.SecretMap(), Timeout: 5 * time.Second}
	r, _, err := c.Exchange(msg, netip.AddrPortFrom(s.net.IP(31), 53).String())
	if err != nil || r.Rcode != dns.RcodeSuccess {
		s.t.Fatalf("update the AAAA records: %v %v", err, r)
	}
}

// TestMigrationBridge is a handover through old under live traffic, at
// the lowered TTL (3 s; old with address6 too) and at TTL 30 s with nothing
// lowered: new is activated before DNS moves, old forwards the mail port
// meanwhile, and every accepted message ends up on new exactly once. The
// downtime the sender sees does not depend on the TTL (issue 14): in both
// it is at most the window's own time (disable -> bridge up, from the
// journal) + 0.5 s, and the two differ by under 0.5 s once that window is
// taken out. On a loaded machine the window's steps (final-sync above all)
// vary by seconds from run to run and the disable hook by hundreds of ms,
// so the two are compared by what the TTL could change: how long after
// bridge up the sender's first message was accepted.
func TestMigrationBridge(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc    string
		lowered time.Duration
		ipv6    bool // old has address6 too: the forwarder listens there as well
	}{
		{desc: "TTL 3 s, lowered, old with address6", lowered: loweredS * time.Second, ipv6: true},
		{desc: "TTL 30 s, nothing lowered", lowered: origTTL * time.Second},
	}
	after := make([]time.Duration, len(cases)) // bridge up -> the first message accepted
	t.Run("ttl", func(t *testing.T) {
		for i, tc := range cases {
			t.Run(tc.desc, func(t *testing.T) {
				t.Parallel()
				after[i] = bridgeMigration(t, tc.lowered, tc.ipv6)
			})
		}
	})
	if t.Failed() {
		return
	}
	if d := (after[1] - after[0]).Abs(); d >= 500*time.Millisecond {
		t.Errorf("first message accepted after bridge up: %s at %s, %s at %s: they differ by %s, want under 0.5 s",
			after[0].Round(time.Millisecond), cases[0].desc, after[1].Round(time.Millisecond), cases[1].desc, d.Round(time.Millisecond))
	}
}

// bridgeMigration runs one handover through old at the lowered TTL, with
// ipv6 old's address6 on the lab's lo, and checks it; it returns how long
// after bridge up (the journal's end of the bridge step) the sender's
// first message after the gap was accepted (negative: before the step had
// ended, the forwarder being up already).
func bridgeMigration(t *testing.T, lowered time.Duration, ipv6 bool) time.Duration {
	s := newScenario(t)
	var old6 netip.Addr
	if ipv6 {
		old6 = lab.AddIP6(t, s.net.IP(10))
	}
	s.writeBridgeConfig(lead, lowered, old6)
	r := s.startRun(nil)()
	s.succeeded("cutover run ([bridge])", r)
	s.stopSender(s.net.IP(20), 20)
	s.obs.stop()

	j := s.status()
	s.logSteps(j)
	if j.Outcome != scheduler.OutcomeDone || j.DNS != scheduler.DNSRestored || j.Rollback != nil {
		t.Errorf("journal: outcome %q, dns %q, rollback %v; want done, restored, none", j.Outcome, j.DNS, j.Rollback)
	}
	var order []scheduler.StepName
	for _, st := range j.Steps {
		order = append(order, st.Name)
		skippable := st.Name == scheduler.Prepare || (lowered >= origTTL*time.Second && (st.Name == scheduler.LowerTTL || st.Name == scheduler.RestoreTTL))
		if st.State != scheduler.Done && !(skippable && st.State == scheduler.Skipped) {
			t.Errorf("step %s is %s (%s), want done", st.Name, st.State, st.Error)
		}
	}
	want := []scheduler.StepName{scheduler.Preflight, scheduler.LowerTTL, scheduler.InitialSync, scheduler.Prepare, scheduler.Disable,
		scheduler.FinalSync, scheduler.Verify, scheduler.Fixup, scheduler.Activate, scheduler.Bridge, scheduler.SwapDNS,
		scheduler.AwaitAuthoritative, scheduler.AwaitResolvers, scheduler.Unbridge, scheduler.RestoreTTL}
	if !slices.Equal(order, want) {
		t.Errorf("steps %v\nwant  %v", order, want)
	}
	note := stepOf(j, scheduler.Unbridge).Note
	if !strings.HasPrefix(note, fmt.Sprintf("forwarder stopped; connections carried: %d: ", lab.MailPort)) {
		t.Errorf("unbridge note %q", note)
	}
	t.Logf("unbridge: %s", note)

	ctx := context.Background()
	if on, err := s.pair.Old.MailEnabled(ctx); err != nil || on {
		t.Errorf("OLD mail enabled %v (%v), want disabled", on, err)
	}
	if on, err := s.pair.New.MailEnabled(ctx); err != nil || !on {
		t.Errorf("NEW mail enabled %v (%v), want enabled", on, err)
	}
	// new was enabled before DNS moved.
	if ev := s.mailEvents(s.newMail); len(ev) == 0 || !ev[0].Time.Before(stepOf(j, scheduler.SwapDNS).Started) {
		t.Errorf("NEW mail events %v: not enabled before swap-dns started", ev)
	}
	s.checkMessages(s.pair.New)
	s.checkClean() // no forwarder left on old
	// The mail port on old is free again.
	l, err := net.Listen("tcp", netip.AddrPortFrom(s.net.IP(10), lab.MailPort).String())
	if err != nil {
		t.Errorf("old's mail port after unbridge: %v", err)
	} else {
		l.Close()
	}
	s.checkSecret()
	// The forwarder checked each of old's addresses itself before bridge
	// was done: IPv4 and, with address6, IPv6 reach new's mail port.
	log, err := s.pair.Old.Exec(ctx, "cat /tmp/forwarder/bridge.log")
	if err != nil {
		t.Fatalf("old's forwarder log: %v", err)
	}
	listen := []netip.Addr{s.net.IP(10)}
	if old6.IsValid() {
		listen = append(listen, old6)
	}
	for _, a := range listen {
		if want := fmt.Sprintf(" bridge: checked via %s: reaches %s\n", netip.AddrPortFrom(a, lab.MailPort), netip.AddrPortFrom(s.net.IP(20), lab.MailPort)); !strings.Contains(string(log), want) {
			t.Errorf("no line%sin old's forwarder log:\n%s", want, log)
		}
	}
	if old6.IsValid() {
		s.checkDNS(s.net.IP(20), lab.IP6(s.net.IP(20)), origTTL)
	}

	// The downtime against the window's own time.
	disable, bridged := stepOf(j, scheduler.Disable), stepOf(j, scheduler.Bridge)
	window := bridged.Ended.Sub(disable.Started)
	gap, from := s.longestGap()
	after := from.Add(gap).Sub(bridged.Ended)
	t.Logf("downtime seen by the sender %s from %s; disable -> bridge up %s (bridge step %s); the first message accepted %s after bridge up",
		gap.Round(time.Millisecond), from.Format(time.StampMilli), window.Round(time.Millisecond),
		bridged.Ended.Sub(bridged.Started).Round(time.Millisecond), after.Round(time.Millisecond))
	if gap > window+500*time.Millisecond {
		t.Errorf("downtime seen by the sender %s (from %s): more than disable -> bridge up (%s) + 0.5 s",
			gap.Round(time.Millisecond), from.Format(time.StampMilli), window.Round(time.Millisecond))
	}
	if !from.Before(bridged.Ended) || from.Add(gap).Before(disable.Started) {
		t.Errorf("the longest gap (%s from %s) is not the window (disable %s, bridge up %s)",
			gap.Round(time.Millisecond), from.Format(time.StampMilli), disable.Started.Format(time.StampMilli), bridged.Ended.Format(time.StampMilli))
	}
	return after
}

// TestBridgeHeldPort: a bridged port that another process still holds on
// old after disable fails the bridge step, naming the process; nothing was
// forwarded, so the run rolls back: new deactivated, old enabled again,
// DNS never swapped.
func TestBridgeHeldPort(t *testing.T) {
	t.Parallel()
	s := newScenario(t)
	held, err := net.Listen("tcp", netip.AddrPortFrom(s.net.IP(10), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := netip.MustParseAddrPort(held.Addr().String()).Port()
	s.writeBridgeConfig(lead, loweredS*time.Second, netip.Addr{}, port)
	r := s.startRun(nil)()
	s.logRun("cutover run ([bridge], a port held)", r)
	if r.code != 1 {
		t.Fatalf("cutover run: exit %d, signal %v; want 1\n%s", r.code, r.signal, r.out)
	}
	if want := fmt.Sprintf("port %d held by users:((\"e2e.test\"", port); !strings.Contains(r.out, want) {
		t.Errorf("cutover run output does not say %s:\n%s", want, r.out)
	}
	s.stopSender(s.net.IP(10), 20)
	s.obs.stop()

	j := s.status()
	if j.Outcome != scheduler.OutcomeRolledBack || j.DNS != scheduler.DNSReverted || j.Rollback == nil || j.Rollback.Error != "" {
		t.Errorf("journal: outcome %q, dns %q, rollback %+v; want rolled-back, reverted, no error", j.Outcome, j.DNS, j.Rollback)
	}
	if st := stepOf(j, scheduler.SwapDNS); st.State != scheduler.Pending {
		t.Errorf("swap-dns is %s, want pending", st.State)
	}
	s.obs.mu.Lock()
	for srv, fn := range s.obs.firstNew {
		t.Errorf("%s served NEW at %s: DNS must never have pointed at NEW", srv, fn.Format(time.StampMilli))
	}
	s.obs.mu.Unlock()
	ctx := context.Background()
	if on, err := s.pair.Old.MailEnabled(ctx); err != nil || !on {
		t.Errorf("OLD mail enabled %v (%v), want enabled again", on, err)
	}
	if on, err := s.pair.New.MailEnabled(ctx); err != nil || on {
		t.Errorf("NEW mail enabled %v (%v), want deactivated", on, err)
	}
	s.checkClean() // no forwarder left on old
	s.checkSecret()
}

// forwarders lists the forwarders running on old.
func (s *scenario) forwarders() []string {
	var out []string
	for _, p := range hostProcs(s.t, s.pair.Old) {
		if _, comm, _ := strings.Cut(p, " "); comm == "cutover" {
			out = append(out, p)
		}
	}
	return out
}

// TestBridgeKilled kills cutover (SIGKILL) right after bridge and right
// after swap-dns, then runs it again: the forwarder keeps running through
// the kill (exactly one), the resumed run goes on with it and finishes,
// and none is left after unbridge. (Adopting a forwarder when bridge
// itself was cut short is sshops' TestBridgeOnOld.)
func TestBridgeKilled(t *testing.T) {
	for _, step := range []scheduler.StepName{scheduler.Bridge, scheduler.SwapDNS} {
		t.Run(string(step), func(t *testing.T) {
			t.Parallel()
			s := newScenario(t)
			s.writeBridgeConfig(lead, loweredS*time.Second, netip.Addr{})
			r := s.startRun([]string{"CUTOVER_FAULT=after:" + string(step)})()
			s.killed("after "+string(step), r)
			if f := s.forwarders(); len(f) != 1 {
				t.Fatalf("after the kill: forwarders on old %q, want exactly one", f)
			}
			r = s.resume()
			if strings.Count(r.out, "already runs on old") > 1 {
				t.Errorf("the resumed run adopted the forwarder more than once:\n%s", r.out)
			}
			s.stopSender(s.net.IP(20), 20)
			s.obs.stop()
			j := s.status()
			if j.Outcome != scheduler.OutcomeDone {
				t.Errorf("journal: outcome %q, want done", j.Outcome)
			}
			if st := stepOf(j, scheduler.Bridge); st.Attempts != 1 {
				t.Errorf("bridge ran %d times, want once", st.Attempts)
			}
			s.checkMessages(s.pair.New)
			s.checkClean() // no forwarder left
			s.logGap()
		})
	}
}

// longestGap is the longest time without an accepted message, as the
// sender saw it, and when it began.
func (s *scenario) longestGap() (gap time.Duration, from time.Time) {
	var at []time.Time
	for _, d := range s.sender.Deliveries() {
		at = append(at, d.At)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d > gap {
			gap, from = d, at[i-1]
		}
	}
	return gap, from
}

// logGap logs the longest time without an accepted message around the
// window, as the sender saw it.
func (s *scenario) logGap() {
	gap, from := s.longestGap()
	s.t.Logf("downtime seen by the sender (longest gap between accepted messages): %s from %s", gap.Round(time.Millisecond), from.Format(time.StampMilli))
}

// logSteps logs how long each step of the window took, from the journal.
func (s *scenario) logSteps(j *scheduler.Journal) {
	var parts []string
	for _, st := range j.Steps {
		if st.State == scheduler.Done && !st.Ended.IsZero() {
			parts = append(parts, fmt.Sprintf("%s %s", st.Name, st.Ended.Sub(st.Started).Round(time.Millisecond)))
		}
	}
	s.t.Logf("steps: %s", strings.Join(parts, ", "))
}
