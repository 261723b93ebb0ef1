package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/scheduler"
	"github.com/miekg/dns"
)

// relayUsers are the mailboxes the sender delivers to and the IMAP client works on.
var relayUsers = []string{"user00", "user01", "user02", "user03"}

// relayScenario is a lab whose OLD and NEW run the real relay (Postfix, Dovecot, OpenDKIM):
// OLD active with mail arriving from a remote MTA, NEW configured and inactive, the zone with
// MX, A, AAAA and the DKIM key's TXT record.
type relayScenario struct {
	*scenario
	old, new *lab.Relay
	// What an IMAP client, a remote MTA and a DKIM verifier check across the migration.
	check *lab.RelayCheck
}

func newRelayScenario(t *testing.T) *relayScenario {
	t.Helper()
	lab.Require(t, "root", "ip", "sshd", "ssh", "unshare", "nsenter", "rsync", "named", "unbound", "postfix", "dovecot", "opendkim")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	s := &relayScenario{scenario: &scenario{t: t, home: t.TempDir(), stateDir: filepath.Join(t.TempDir(), "state")}}
	s.net = lab.NewNet(t)
	p, err := lab.StartPairWith(s.net, t.TempDir(), lab.PairOptions{PrivateTmp: true, Relay: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	s.pair = p
	sink := s.net.IP(50) // the remote domain's mail server (down until after the migration)
	transports := map[string]netip.AddrPort{lab.RemoteDomain: netip.AddrPortFrom(sink, 25)}
	if s.old, err = lab.InstallRelay(ctx, p.Old, lab.RelayOptions{GenerateKey: true, Transports: transports}); err != nil {
		t.Fatal(err)
	}
	if err := s.old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// NEW as cmdeploy's install leaves it: the config's prepare hook configures it (relay-ctl
	// prepare); not running, no DKIM key yet.
	if s.new, err = lab.InstallRelay(ctx, p.New, lab.RelayOptions{Transports: transports, ByHook: true}); err != nil {
		t.Fatal(err)
	}
	dkim, err := s.old.DKIMZoneLine(origTTL)
	if err != nil {
		t.Fatal(err)
	}
	s.dns = lab.NewDNSLab(t, s.net, lab.Zone{Origin: zone, TTL: origTTL, Minimum: 2, Records: []string{
		fmt.Sprintf("@ %d IN MX 10 mail", origTTL),
		fmt.Sprintf("mail %d IN A %s", origTTL, s.net.IP(10)),
		fmt.Sprintf("mail %d IN AAAA %s", origTTL, old6),
		dkim,
	}})
	s.secret = s.dns.Key.Secret
	s.sender, err = lab.StartSender(lab.SenderOptions{Resolver: s.dns.Caches[0].Addr, Domain: lab.RelayDomain, Users: relayUsers,
		Interval: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.sender.Stop() })
	if err := s.sender.WaitAccepted(ctx, 4*len(relayUsers)); err != nil {
		t.Fatal(err)
	}
	s.check = &lab.RelayCheck{Old: s.old, New: s.new, Sender: s.sender, Users: relayUsers, Resolver: s.dns.Caches[0].Addr, Remote: sink, Deferred: 3}
	if err := s.check.Before(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("relay lab up, %d messages accepted by OLD, 3 deferred for %s: %s", len(s.sender.Accepted()), lab.RemoteDomain, time.Since(start).Round(time.Millisecond))
	return s
}

// writeRelayConfig writes the config with the relay's hooks, cutover_at = now + lead.
func (s *relayScenario) writeRelayConfig(lead time.Duration) {
	s.cutoverAt = time.Now().Add(lead).Truncate(time.Second)
	cfg := lab.Migration{Net: s.net, Pair: s.pair, DNS: s.dns, CutoverAt: s.cutoverAt, StateDir: s.stateDir,
		Zone: zone, Name: mailName, Old6: old6, New6: new6, LoweredTTL: loweredS * time.Second, SecretEnv: secretEnv, Relay: true}.Config()
	s.cfgPath = filepath.Join(s.home, "cutover.toml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// resolveMail asks the first cache for the name's A record, as a mail client would.
func (s *relayScenario) resolveMail() netip.Addr {
	addrs, _, err := query(s.dns.Caches[0].Addr, mailName, dns.TypeA, true)
	if err != nil || len(addrs) != 1 {
		s.t.Fatalf("A %s at the cache: %v, %v; want one address", mailName, addrs, err)
	}
	return addrs[0]
}

// checkRelayMigrated is every assertion of a finished migration of the real relay.
func (s *relayScenario) checkRelayMigrated() {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s.stopSender(s.net.IP(20), 10)

	j := s.status()
	if j.Outcome != scheduler.OutcomeDone || j.DNS != scheduler.DNSRestored || j.Rollback != nil {
		t.Errorf("journal: outcome %q, dns %q, rollback %v; want done, restored, none", j.Outcome, j.DNS, j.Rollback)
	}
	s.checkDNS(s.net.IP(20), new6, origTTL)
	if on, err := s.old.Running(ctx); err != nil || on {
		t.Errorf("OLD relay running %v (%v), want stopped", on, err)
	}
	if on, err := s.new.Running(ctx); err != nil || !on {
		t.Errorf("NEW relay running %v (%v), want running", on, err)
	}
	// Ownership: the spool's, the keys' and the Maildirs' owners are NEW's own users.
	if err := s.new.Check(ctx); err != nil {
		t.Error(err)
	}

	// A client that connects by name reaches NEW and finds its mailboxes as it left them.
	imap := netip.AddrPortFrom(s.resolveMail(), 143)
	if imap != s.new.IMAP {
		t.Fatalf("mail client reaches %s, want NEW %s", imap, s.new.IMAP)
	}
	s.checkMailboxes(ctx, s.new)
	// The remote domain's server comes up: NEW delivers OLD's deferred queue, each message once.
	s.checkQueueDelivered(ctx, s.new)
	// NEW signs with the moved key, and the signature verifies against the zone's TXT record.
	if d := s.check.CheckDKIM(ctx, s.new); d.Err != nil {
		t.Errorf("NEW's signature: %v", d.Err)
	}
	s.checkRelayClean(s.new.Host, s.old.Host) // no leftovers: on NEW only the relay, on OLD only OpenDKIM
	s.checkSecret()
	s.logDowntime()
}

// TestMigrationRelay is an uninterrupted cutover of the real relay under live SMTP traffic.
func TestMigrationRelay(t *testing.T) {
	t.Parallel()
	s := newRelayScenario(t)
	s.writeRelayConfig(lead)
	r := s.startRun(nil)()
	s.succeeded("cutover run", r)
	s.checkRelayMigrated()
}

// checkMailboxes asserts what a client finds on r over IMAP: per user the UIDVALIDITY, UIDs and
// flags it left on OLD, what it expunged gone, and every accepted message exactly once.
func (s *relayScenario) checkMailboxes(ctx context.Context, r *lab.Relay) {
	res := s.check.CheckIMAP(ctx, r)
	for _, p := range res.Problems {
		s.t.Error(p)
	}
	s.t.Logf("IMAP on %s: %d accepted messages checked (%d expunged on OLD, %d there twice after a lost acknowledgement), UIDVALIDITY, UIDs and flags of %d users",
		r.Host.Name, res.Accepted, res.Expunged, res.Resent, res.Mailboxes)
}

// checkQueueDelivered starts the remote domain's server and asserts that r delivers what
// waited in OLD's deferred queue, each message once, and its queue empties.
func (s *relayScenario) checkQueueDelivered(ctx context.Context, r *lab.Relay) {
	for _, p := range s.check.CheckQueue(ctx, r).Problems {
		s.t.Error(p)
	}
}

// TestMigrationRelayKilledDuringFinalSync kills cutover (SIGKILL) while final-sync copies the
// real relay's data, then runs it again: the resumed run ends like a clean one.
func TestMigrationRelayKilledDuringFinalSync(t *testing.T) {
	t.Parallel()
	s := newRelayScenario(t)
	s.writeRelayConfig(lead)
	r := s.startRun([]string{"CUTOVER_FAULT=during:final-sync", "CUTOVER_FAULT_DELAY=1s"})()
	s.killed("during final-sync", r)
	if st := stepOf(s.journal(), scheduler.FinalSync); st == nil || st.State != scheduler.Running {
		t.Fatalf("journal after the kill: final-sync %+v, want running", st)
	}
	r = s.resume()
	s.checkRelayMigrated()
}

// TestMigrationRelayKilledAfterSwapDNS kills cutover (SIGKILL) right after swap-dns is
// journaled, with the relay stopped on both hosts, then runs it again.
func TestMigrationRelayKilledAfterSwapDNS(t *testing.T) {
	t.Parallel()
	s := newRelayScenario(t)
	s.writeRelayConfig(lead)
	r := s.startRun([]string{"CUTOVER_FAULT=after:swap-dns"})()
	s.killed("after swap-dns", r)
	if j := s.journal(); j == nil || stepOf(j, scheduler.SwapDNS).State != scheduler.Done || j.DNS != scheduler.DNSSwapped {
		t.Fatalf("journal after the kill: %+v, want swap-dns done and DNS swapped", j)
	}
	r = s.resume()
	s.checkRelayMigrated()
}

// TestRollbackRelay changes NEW's copy of the DKIM key behind cutover's back between final-sync
// and verify: verify fails, the run rolls back, OLD's relay runs again with its mailboxes and
// queue as they were, and NEW's never started.
func TestRollbackRelay(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := newRelayScenario(t)
	s.writeRelayConfig(lead)
	r := s.startRun([]string{"CUTOVER_FAULT=after:final-sync"})()
	s.killed("after final-sync", r)
	flipByte(t, s.pair.New.Path(lab.DKIMKeyFile))
	r = s.cutover(nil, "run", s.cfgPath, "--yes")
	s.logRun("cutover run (resume, verify fails)", r)
	if r.code != 1 || r.signal != 0 || !strings.Contains(r.out, lab.DKIMKeyFile) {
		t.Errorf("cutover run (resume): exit %d, signal %v; want exit 1 naming %s\n%s", r.code, r.signal, lab.DKIMKeyFile, r.out)
	}
	s.stopSender(s.net.IP(10), 10)
	j := s.status()
	if j.Outcome != scheduler.OutcomeRolledBack || j.DNS != scheduler.DNSReverted || j.Rollback == nil || j.Rollback.Error != "" {
		t.Errorf("journal: outcome %q, dns %q, rollback %+v; want rolled-back, reverted, no error", j.Outcome, j.DNS, j.Rollback)
	}
	s.checkDNS(s.net.IP(10), old6, origTTL)
	if on, err := s.old.Running(ctx); err != nil || !on {
		t.Errorf("OLD relay running %v (%v), want running again", on, err)
	}
	if on, err := s.new.Running(ctx); err != nil || on {
		t.Errorf("NEW relay running %v (%v), want never started", on, err)
	}
	for _, d := range s.sender.Deliveries() {
		if d.Addr != s.net.IP(10) {
			t.Errorf("sender: %s accepted at %s, want only OLD", d.ID, d.Addr)
		}
	}
	if imap := netip.AddrPortFrom(s.resolveMail(), 143); imap != s.old.IMAP {
		t.Fatalf("mail client reaches %s, want OLD %s", imap, s.old.IMAP)
	}
	s.checkMailboxes(ctx, s.old)
	s.checkQueueDelivered(ctx, s.old)
	if err := s.old.Check(ctx); err != nil {
		t.Error(err)
	}
	s.checkRelayClean(s.old.Host, nil) // no leftovers: on OLD only the relay, on NEW nothing
	s.checkSecret()
}

// flipByte changes one byte of the file at p, keeping its size and mtime: only verify =
// "content" can see the change.
func flipByte(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[40] ^= 0x01
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}
