package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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
	sink     netip.Addr // the remote domain's mail server (down until after the migration)
	// What an IMAP client saw on OLD before the window, after its own changes: per user.
	before   map[string]lab.Mailbox
	kept     map[string][]lab.IMAPMessage
	expunged map[string]bool // Message-IDs
	queued   []string        // Message-IDs in OLD's deferred queue
}

func newRelayScenario(t *testing.T) *relayScenario {
	t.Helper()
	lab.Require(t, "root", "ip", "sshd", "ssh", "unshare", "nsenter", "rsync", "named", "unbound", "postfix", "dovecot", "opendkim")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	s := &relayScenario{scenario: &scenario{t: t, home: t.TempDir(), stateDir: filepath.Join(t.TempDir(), "state")},
		expunged: map[string]bool{}, before: map[string]lab.Mailbox{}, kept: map[string][]lab.IMAPMessage{}}
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
	s.sink = s.net.IP(50)
	transports := map[string]netip.AddrPort{"remote.test": netip.AddrPortFrom(s.sink, 25)}
	if s.old, err = lab.InstallRelay(ctx, p.Old, lab.RelayOptions{GenerateKey: true, Transports: transports}); err != nil {
		t.Fatal(err)
	}
	if err := s.old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// NEW as cmdeploy's install,configure leaves it: configured, not running, no DKIM key yet.
	if s.new, err = lab.InstallRelay(ctx, p.New, lab.RelayOptions{Transports: transports}); err != nil {
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
	s.actAsIMAPClient(ctx)
	s.deferOnOld(ctx, 3)
	t.Logf("relay lab up, %d messages accepted by OLD, %d deferred for remote.test: %s", len(s.sender.Accepted()), len(s.queued), time.Since(start).Round(time.Millisecond))
	return s
}

// session logs in as user at addr and selects the INBOX.
func (s *relayScenario) session(ctx context.Context, addr netip.AddrPort, user string) (*lab.IMAPClient, lab.Mailbox) {
	t := s.t
	c, err := lab.DialIMAP(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user+"@"+lab.RelayDomain, s.old.Password); err != nil {
		t.Fatal(err)
	}
	mb, err := c.Select("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return c, mb
}

// messages lists the selected mailbox, without \Recent (a session's view, not the mailbox's).
func (s *relayScenario) messages(c *lab.IMAPClient) []lab.IMAPMessage {
	msgs, err := c.Messages()
	if err != nil {
		s.t.Fatal(err)
	}
	for i := range msgs {
		msgs[i].Flags = slices.DeleteFunc(msgs[i].Flags, func(f string) bool { return f == `\Recent` })
	}
	return msgs
}

// actAsIMAPClient waits until OLD stored at least 4 messages per user, then per user marks the
// first read, flags the second and expunges the third, and records what is left.
func (s *relayScenario) actAsIMAPClient(ctx context.Context) {
	t := s.t
	for _, u := range relayUsers {
		c, _ := s.session(ctx, s.old.IMAP, u)
		msgs := s.messages(c)
		for deadline := time.Now().Add(30 * time.Second); len(msgs) < 4; msgs = s.messages(c) {
			if time.Now().After(deadline) {
				t.Fatalf("OLD: %s has %d messages after 30 s, want 4", u, len(msgs))
			}
			time.Sleep(200 * time.Millisecond)
			if _, err := c.Select("INBOX"); err != nil {
				t.Fatal(err)
			}
		}
		for i, f := range []string{`\Seen`, `\Flagged`, `\Deleted`} {
			if err := c.Store(msgs[i].UID, "+FLAGS", f); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Expunge(); err != nil {
			t.Fatal(err)
		}
		s.expunged[msgs[2].MessageID] = true
		mb, err := c.Select("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		s.before[u], s.kept[u] = mb, s.messages(c)
		if err := c.Logout(); err != nil {
			t.Fatal(err)
		}
	}
}

// deferOnOld has OLD's own users send n messages to remote.test, whose server is down: they
// wait in OLD's deferred queue.
func (s *relayScenario) deferOnOld(ctx context.Context, n int) {
	t := s.t
	for i := range n {
		id := fmt.Sprintf("<queued-%d@example.org>", i)
		msg := fmt.Sprintf("From: user05@example.org\r\nTo: friend@remote.test\r\nMessage-ID: %s\r\nSubject: queued %d\r\n\r\nwaiting\r\n", id, i)
		if err := lab.SendMail(ctx, s.old.SMTP, "user05@example.org", []string{"friend@remote.test"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		s.queued = append(s.queued, id)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := s.pair.Old.Exec(ctx, "find /var/spool/postfix/deferred -type f | wc -l")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(out)) == fmt.Sprint(n) {
			return
		}
		if time.Now().After(deadline) {
			q, _ := s.pair.Old.Exec(ctx, "postqueue -p")
			t.Fatalf("OLD: %s deferred messages after 30 s, want %d; queue:\n%s", strings.TrimSpace(string(out)), n, q)
		}
	}
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
	id := "<dkim-after@example.org>"
	msg := "From: user02@example.org\r\nTo: user03@example.org\r\nMessage-ID: " + id + "\r\nSubject: signed by NEW\r\n\r\nhello\r\n"
	if err := lab.SendMail(ctx, s.new.SMTP, "user02@example.org", []string{"user03@example.org"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	stored, err := s.new.WaitMessage(ctx, "user03", id)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.VerifyDKIM(ctx, s.dns.Caches[0].Addr, stored); err != nil {
		t.Errorf("NEW's signature: %v", err)
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
	t := s.t
	imap := r.IMAP
	accepted := map[string][]string{} // user -> Message-IDs
	for _, d := range s.sender.Deliveries() {
		accepted[d.User] = append(accepted[d.User], lab.SenderMessageID(d.ID))
	}
	// A message whose acknowledgement the sender never saw (the relay stopped right after
	// queueing it) is sent again: SMTP delivers at least once, so it may be there twice.
	unconfirmed := s.sender.Unconfirmed()
	total, extra := 0, 0
	for _, u := range relayUsers {
		var mb lab.Mailbox
		var msgs []lab.IMAPMessage
		// Messages a relay's Postfix took over in its queue reach the Maildir shortly after it starts.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			c, m := s.session(ctx, imap, u)
			mb, msgs = m, s.messages(c)
			_ = c.Logout()
			if len(msgs) >= len(accepted[u])-1 || time.Now().After(deadline) {
				break
			}
		}
		if mb.UIDValidity != s.before[u].UIDValidity {
			t.Errorf("%s: UIDVALIDITY %d on %s, %d before", u, mb.UIDValidity, r.Host.Name, s.before[u].UIDValidity)
		}
		byID := map[string][]lab.IMAPMessage{}
		for _, m := range msgs {
			byID[m.MessageID] = append(byID[m.MessageID], m)
		}
		for _, k := range s.kept[u] {
			if got := byID[k.MessageID]; len(got) != 1 || got[0].UID != k.UID || !slices.Equal(got[0].Flags, k.Flags) {
				t.Errorf("%s: %s was UID %d flags %v on OLD; on %s: %v", u, k.MessageID, k.UID, k.Flags, r.Host.Name, got)
			}
		}
		for _, id := range accepted[u] {
			n := len(byID[id])
			switch {
			case s.expunged[id] && n != 0:
				t.Errorf("%s: %s expunged on OLD is back on %s", u, id, r.Host.Name)
			case !s.expunged[id] && n > 1 && n <= 1+unconfirmed[senderID(id)]:
				extra += n - 1
			case !s.expunged[id] && n != 1:
				t.Errorf("%s: accepted message %s is on %s %d times, want once; Postfix's log:\n%s", u, id, r.Host.Name, n, s.maillog(id))
			}
			total++
		}
		for id, ms := range byID {
			if len(ms) > 1+unconfirmed[senderID(id)] && !slices.Contains(accepted[u], id) {
				t.Errorf("%s: unacknowledged message %s is on %s %d times", u, id, r.Host.Name, len(ms))
			}
		}
	}
	t.Logf("IMAP on %s: %d accepted messages checked (%d expunged on OLD, %d there twice after a lost acknowledgement), UIDVALIDITY, UIDs and flags of %d users", r.Host.Name, total, len(s.expunged), extra, len(relayUsers))
}

// checkQueueDelivered starts the remote domain's server and asserts that r delivers what
// waited in OLD's deferred queue, each message once, and its queue empties.
func (s *relayScenario) checkQueueDelivered(ctx context.Context, r *lab.Relay) {
	t := s.t
	sink, err := lab.StartSMTPSink(s.sink)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Stop()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := r.Host.Exec(ctx, "postqueue -p")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "Mail queue is empty") && len(sink.MessageIDs()) >= len(s.queued) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's queue after 60 s with the remote server up:\n%s\nremote received %q", r.Host.Name, out, sink.MessageIDs())
		}
	}
	got := slices.Sorted(slices.Values(sink.MessageIDs()))
	if !slices.Equal(got, s.queued) {
		t.Errorf("remote.test received %q, want each of %q once", got, s.queued)
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

// maillog returns the lines of both relays' Postfix logs about the message with Message-ID id.
func (s *relayScenario) maillog(id string) string {
	var out []string
	for _, r := range []*lab.Relay{s.old, s.new} {
		b, _ := os.ReadFile(filepath.Join(r.Dir, "maillog"))
		lines := strings.Split(string(b), "\n")
		var qids []string
		for _, l := range lines {
			if strings.Contains(l, "message-id="+id) {
				if f := strings.Fields(l); len(f) > 5 {
					qids = append(qids, strings.TrimSuffix(f[5], ":"))
				}
			}
		}
		for _, l := range lines {
			for _, q := range qids {
				if strings.Contains(l, q) {
					out = append(out, r.Host.Name+": "+l)
					break
				}
			}
		}
	}
	return strings.Join(out, "\n")
}

// senderID returns the sender's message id in its Message-ID (lab.SenderMessageID).
func senderID(messageID string) string {
	return strings.TrimSuffix(strings.TrimPrefix(messageID, "<"), "@remote.test>")
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
