package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RemoteDomain is the other domain of the relay lab: the sender's (SenderMessageID) and the
// one OLD's deferred mail is for. Give both relays a transport for it to RelayCheck.Remote.
const RemoteDomain = "remote.test"

// RelayCheck is what the users of a relay see of its migration, checked the way they would see
// it. Before the window (Before), an IMAP client works on OLD's mailboxes (marks a message
// read, flags one, expunges one, per user) and records what it left, and OLD's users send mail
// for RemoteDomain, whose server is down: it waits in OLD's deferred queue. After the
// migration (After, on the relay clients reach then): every mailbox has the UIDVALIDITY of
// before and every message the client kept the same UID and flags, what it expunged stays
// gone and every message the sender saw accepted is there once; RemoteDomain's server comes up
// and receives the deferred mail once; a message submitted on the relay carries a DKIM
// signature that verifies against the zone's TXT record.
type RelayCheck struct {
	Old, New *Relay
	Sender   *Sender        // the remote MTA delivering to Users
	Users    []string       // the mailboxes checked: the sender's recipients
	Resolver netip.AddrPort // the lab cache a DKIM verifier asks for the key's TXT record
	Remote   netip.Addr     // where both relays send RemoteDomain's mail (down until the queue check)
	Deferred int            // messages Before leaves in OLD's deferred queue; default 3

	// What the client left on OLD, per user, and the Message-IDs it expunged.
	before   map[string]Mailbox
	kept     map[string][]IMAPMessage
	expunged map[string][]string
	queued   []string // Message-IDs in OLD's deferred queue
}

// The result of each check: counts for a person to read, and Problems, one line per failed
// assertion (none: the check holds).

// IMAPResult is what a client finds in the mailboxes after the migration.
type IMAPResult struct {
	Host        string // the relay checked ("new", or "old" after a rollback)
	Mailboxes   int    // mailboxes checked
	UIDValidity int    // of them, with the UIDVALIDITY of before
	Kept        int    // messages the client kept, there once with the same UID and flags
	Expunged    int    // messages the client expunged, still gone
	Accepted    int    // messages the sender saw accepted (and the client did not expunge)
	Lost        int    // of them, not there
	Twice       int    // of them, there more than once (beyond Resent)
	Resent      int    // extra copies after an acknowledgement the sender never saw (SMTP delivers at least once)
	Problems    []string
}

// QueueResult is the fate of OLD's deferred queue.
type QueueResult struct {
	Host      string   // the relay that delivered it
	Queued    []string // Message-IDs left in OLD's deferred queue by Before
	Delivered []string // Message-IDs RemoteDomain's server received, sorted
	Problems  []string
}

// DKIMResult is the verification of a message submitted on the relay.
type DKIMResult struct {
	Host   string
	Record string // the TXT record with the public key, e.g. "opendkim._domainkey.example.org."
	Err    error  // nil: the signature verifies
}

// RelayResult are the three checks of After.
type RelayResult struct {
	IMAP  IMAPResult
	Queue QueueResult
	DKIM  DKIMResult
}

// Err returns the problems of every check as one error, nil when all hold.
func (r RelayResult) Err() error {
	var errs []error
	for _, c := range []struct {
		name     string
		problems []string
	}{{"imap", r.IMAP.Problems}, {"queue", r.Queue.Problems}} {
		if len(c.problems) > 0 {
			errs = append(errs, fmt.Errorf("lab: relay check: %s: %s", c.name, strings.Join(c.problems, "; ")))
		}
	}
	errs = append(errs, r.DKIM.Err) // "lab: dkim: ...", "lab: smtp ..."
	return errors.Join(errs...)
}

// Before waits until OLD stored at least 4 messages per user, then per user marks the first
// read, flags the second and expunges the third, and records what is left; then it queues
// Deferred messages for RemoteDomain on OLD and waits until they are deferred.
func (c *RelayCheck) Before(ctx context.Context) error {
	c.before, c.kept, c.expunged = map[string]Mailbox{}, map[string][]IMAPMessage{}, map[string][]string{}
	for _, u := range c.Users {
		if err := c.actAsClient(ctx, u); err != nil {
			return fmt.Errorf("lab: relay check: %s on %s: %w", u, c.Old.Host.Name, err)
		}
	}
	if err := c.deferOnOld(ctx); err != nil {
		return fmt.Errorf("lab: relay check: %s: %w", c.Old.Host.Name, err)
	}
	return nil
}

// actAsClient is Before's IMAP client for one user.
func (c *RelayCheck) actAsClient(ctx context.Context, user string) error {
	s, _, err := c.session(ctx, c.Old, user)
	if err != nil {
		return err
	}
	defer s.Close()
	msgs, err := sessionMessages(s)
	for deadline := time.Now().Add(30 * time.Second); err == nil && len(msgs) < 4; msgs, err = sessionMessages(s) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d messages after 30 s, want 4", len(msgs))
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
		if _, err := s.Select("INBOX"); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	for i, f := range []string{`\Seen`, `\Flagged`, `\Deleted`} {
		if err := s.Store(msgs[i].UID, "+FLAGS", f); err != nil {
			return err
		}
	}
	if err := s.Expunge(); err != nil {
		return err
	}
	c.expunged[user] = append(c.expunged[user], msgs[2].MessageID)
	mb, err := s.Select("INBOX")
	if err != nil {
		return err
	}
	if c.kept[user], err = sessionMessages(s); err != nil {
		return err
	}
	c.before[user] = mb
	return s.Logout()
}

// deferOnOld has OLD's own users send Deferred messages to RemoteDomain, whose server is down:
// they wait in OLD's deferred queue.
func (c *RelayCheck) deferOnOld(ctx context.Context) error {
	n := c.Deferred
	if n == 0 {
		n = 3
	}
	c.queued = nil
	from, to := "user05@"+c.Old.Domain, "friend@"+RemoteDomain
	for i := range n {
		id := fmt.Sprintf("<queued-%d@%s>", i, c.Old.Domain)
		msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nMessage-ID: %s\r\nSubject: queued %d\r\n\r\nwaiting\r\n", from, to, id, i)
		if err := SendMail(ctx, c.Old.SMTP, from, []string{to}, []byte(msg)); err != nil {
			return err
		}
		c.queued = append(c.queued, id)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := c.Old.Host.Exec(ctx, "find /var/spool/postfix/deferred -type f | wc -l")
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(out)) == fmt.Sprint(n) {
			return nil
		}
		if time.Now().After(deadline) {
			q, _ := c.Old.Host.Exec(ctx, "postqueue -p")
			return fmt.Errorf("%s deferred messages after 30 s, want %d; queue:\n%s", strings.TrimSpace(string(out)), n, q)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// After runs the three checks on r, the relay that clients reach after the migration (New; Old
// after a rollback), in order: IMAP, the queue, DKIM. The sender should have stopped.
func (c *RelayCheck) After(ctx context.Context, r *Relay) RelayResult {
	return RelayResult{IMAP: c.CheckIMAP(ctx, r), Queue: c.CheckQueue(ctx, r), DKIM: c.CheckDKIM(ctx, r)}
}

// CheckIMAP checks what a client finds on r over IMAP: per user the UIDVALIDITY, UIDs and flags
// it left on OLD, what it expunged gone, and every accepted message exactly once.
func (c *RelayCheck) CheckIMAP(ctx context.Context, r *Relay) IMAPResult {
	res := IMAPResult{Host: r.Host.Name}
	problem := func(f string, a ...any) { res.Problems = append(res.Problems, fmt.Sprintf(f, a...)) }
	accepted := map[string][]string{} // user -> Message-IDs
	for _, d := range c.Sender.Deliveries() {
		accepted[d.User] = append(accepted[d.User], SenderMessageID(d.ID))
	}
	// A message whose acknowledgement the sender never saw (the relay stopped right after
	// queueing it) is sent again: SMTP delivers at least once, so it may be there twice.
	unconfirmed := c.Sender.Unconfirmed()
	resends := func(messageID string) int {
		id, ok := strings.CutSuffix(strings.TrimPrefix(messageID, "<"), "@"+RemoteDomain+">")
		if !ok {
			return 0
		}
		return unconfirmed[id]
	}
	for _, u := range c.Users {
		var mb Mailbox
		var msgs []IMAPMessage
		// Messages a relay's Postfix took over in its queue reach the Maildir shortly after it starts.
		for deadline := time.Now().Add(30 * time.Second); ; {
			s, m, err := c.session(ctx, r, u)
			if err == nil {
				mb = m
				msgs, err = sessionMessages(s)
				_ = s.Logout()
				s.Close()
			}
			if err != nil {
				problem("%s: %v", u, err)
				return res
			}
			if len(msgs) >= len(accepted[u])-1 || time.Now().After(deadline) {
				break
			}
			if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
				problem("%s: %v", u, err)
				return res
			}
		}
		res.Mailboxes++
		if mb.UIDValidity != c.before[u].UIDValidity {
			problem("%s: UIDVALIDITY %d on %s, %d before", u, mb.UIDValidity, r.Host.Name, c.before[u].UIDValidity)
		} else {
			res.UIDValidity++
		}
		byID := map[string][]IMAPMessage{}
		for _, m := range msgs {
			byID[m.MessageID] = append(byID[m.MessageID], m)
		}
		for _, k := range c.kept[u] {
			if got := byID[k.MessageID]; len(got) != 1 || got[0].UID != k.UID || !slices.Equal(got[0].Flags, k.Flags) {
				problem("%s: %s was UID %d flags %v on %s; on %s: %v", u, k.MessageID, k.UID, k.Flags, c.Old.Host.Name, r.Host.Name, got)
			} else {
				res.Kept++
			}
		}
		for _, id := range c.expunged[u] {
			if n := len(byID[id]); n != 0 {
				problem("%s: %s expunged on %s is back on %s", u, id, c.Old.Host.Name, r.Host.Name)
			} else {
				res.Expunged++
			}
		}
		for _, id := range accepted[u] {
			if slices.Contains(c.expunged[u], id) {
				continue
			}
			res.Accepted++
			switch n := len(byID[id]); {
			case n > 1 && n <= 1+resends(id):
				res.Resent += n - 1
			case n == 0:
				res.Lost++
				problem("%s: accepted message %s is on %s %d times, want once; Postfix's log:\n%s", u, id, r.Host.Name, n, c.maillog(id))
			case n > 1:
				res.Twice++
				problem("%s: accepted message %s is on %s %d times, want once; Postfix's log:\n%s", u, id, r.Host.Name, n, c.maillog(id))
			}
		}
		for id, ms := range byID {
			if len(ms) > 1+resends(id) && !slices.Contains(accepted[u], id) {
				problem("%s: unacknowledged message %s is on %s %d times", u, id, r.Host.Name, len(ms))
			}
		}
	}
	return res
}

// CheckQueue starts RemoteDomain's server and checks that r delivers what waited in OLD's
// deferred queue, each message once, and its queue empties.
func (c *RelayCheck) CheckQueue(ctx context.Context, r *Relay) QueueResult {
	res := QueueResult{Host: r.Host.Name, Queued: slices.Clone(c.queued)}
	sink, err := StartSMTPSink(c.Remote)
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
		return res
	}
	defer sink.Stop()
	// The queue is flushed (postqueue -f) now and every few seconds, as an operator does once the
	// new host is up. A queue manager that found a message locked (OLD's, while it was being
	// stopped) puts it back into incoming to cool down for 60 s, mtime in the future; copied to
	// NEW, it is skipped when NEW's queue manager starts, and after that only new mail or a flush
	// makes it scan incoming again: without one, a delivered message's file can sit there after
	// the sender has stopped (seen in CI: four files, every recipient done).
	flushed := time.Time{}
	for deadline := time.Now().Add(60 * time.Second); ; {
		if time.Since(flushed) >= 5*time.Second {
			if _, err := r.Host.Exec(ctx, "postqueue -f"); err != nil {
				res.Problems = append(res.Problems, err.Error())
				return res
			}
			flushed = time.Now()
		}
		out, err := r.Host.Exec(ctx, "postqueue -p")
		if err != nil {
			res.Problems = append(res.Problems, err.Error())
			return res
		}
		if strings.Contains(string(out), "Mail queue is empty") && len(sink.MessageIDs()) >= len(c.queued) {
			break
		}
		if time.Now().After(deadline) {
			res.Problems = append(res.Problems, fmt.Sprintf("%s's queue after 60 s with the remote server up:\n%s\nremote received %q\n%s", r.Host.Name, out, sink.MessageIDs(), c.queueFiles(ctx, r)))
			return res
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			res.Problems = append(res.Problems, err.Error())
			return res
		}
	}
	res.Delivered = slices.Sorted(slices.Values(sink.MessageIDs()))
	if !slices.Equal(res.Delivered, slices.Sorted(slices.Values(c.queued))) {
		res.Problems = append(res.Problems, fmt.Sprintf("%s received %q, want each of %q once", RemoteDomain, res.Delivered, c.queued))
	}
	return res
}

// CheckDKIM submits a message for one user to another on r and verifies the DKIM signature r
// stored it with against the TXT record, asked of Resolver as a real verifier would.
func (c *RelayCheck) CheckDKIM(ctx context.Context, r *Relay) DKIMResult {
	res := DKIMResult{Host: r.Host.Name, Record: DKIMSelector + "._domainkey." + r.Domain + "."}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	from, to := c.Users[0], c.Users[len(c.Users)-1]
	id := "<dkim-after@" + r.Domain + ">"
	msg := fmt.Sprintf("From: %s@%s\r\nTo: %s@%s\r\nMessage-ID: %s\r\nSubject: signed by %s\r\n\r\nhello\r\n", from, r.Domain, to, r.Domain, id, r.Host.Name)
	if err := SendMail(ctx, r.SMTP, from+"@"+r.Domain, []string{to + "@" + r.Domain}, []byte(msg)); err != nil {
		res.Err = err
		return res
	}
	stored, err := r.WaitMessage(ctx, to, id)
	if err != nil {
		res.Err = err
		return res
	}
	res.Err = VerifyDKIM(ctx, c.Resolver, stored)
	return res
}

// session logs in as user on r and selects the INBOX.
func (c *RelayCheck) session(ctx context.Context, r *Relay, user string) (*IMAPClient, Mailbox, error) {
	s, err := DialIMAP(ctx, r.IMAP)
	if err != nil {
		return nil, Mailbox{}, err
	}
	if err := s.Login(user+"@"+r.Domain, r.Password); err != nil {
		s.Close()
		return nil, Mailbox{}, err
	}
	mb, err := s.Select("INBOX")
	if err != nil {
		s.Close()
		return nil, Mailbox{}, err
	}
	return s, mb, nil
}

// sessionMessages lists the selected mailbox, without \Recent (a session's view, not the
// mailbox's).
func sessionMessages(s *IMAPClient) ([]IMAPMessage, error) {
	msgs, err := s.Messages()
	for i := range msgs {
		msgs[i].Flags = slices.DeleteFunc(msgs[i].Flags, func(f string) bool { return f == `\Recent` })
	}
	return msgs, err
}

// maillog returns the lines of both relays' Postfix logs about the message with Message-ID id.
// queueFiles describes what a queue that does not empty holds, to tell why: each queue file
// (queue, mode, size, mtime against the host's clock), its envelope, and both hosts' log
// lines that name its queue ID.
func (c *RelayCheck) queueFiles(ctx context.Context, r *Relay) string {
	out, err := r.Host.Exec(ctx, `date '+now %F %T'; cd /var/spool/postfix && for f in $(find incoming active deferred hold maildrop -type f 2>/dev/null); do
	stat -c '%n %A links %h %s %y' "$f"; postcat -e "$f" 2>&1 | sed 's/^/    /'; done`)
	if err != nil {
		return fmt.Sprintf("queue files: %v", err)
	}
	var b strings.Builder
	b.WriteString("queue files on " + r.Host.Name + ":\n" + string(out))
	// A file's name on NEW is not the ID OLD logged it under: copied, it was renamed to match
	// its new inode; its envelope's log_ident keeps the first.
	var ids []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.Contains(f[0], "/") {
			ids = append(ids, filepath.Base(f[0]))
		} else if _, id, ok := strings.Cut(l, "log_ident="); ok {
			ids = append(ids, strings.TrimSpace(id))
		}
	}
	for _, l := range c.logLines(namesOneOf(ids)) {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// maillog returns both hosts' log lines about the message with Message-ID id: those that name
// a queue ID under which either host logged it.
func (c *RelayCheck) maillog(id string) string {
	var qids []string
	for _, l := range c.logLines(func(l string) bool { return strings.Contains(l, "message-id="+id) }) {
		if f := strings.Fields(l); len(f) > 6 {
			qids = append(qids, strings.TrimSuffix(f[6], ":")) // after the host's name
		}
	}
	return strings.Join(c.logLines(namesOneOf(qids)), "\n")
}

// namesOneOf matches a line that contains one of ids; none when ids is empty.
func namesOneOf(ids []string) func(string) bool {
	return func(l string) bool {
		return slices.ContainsFunc(ids, func(id string) bool { return strings.Contains(l, id) })
	}
}

// logLines returns the lines of OLD's and NEW's maillogs that match, each after its host's name.
func (c *RelayCheck) logLines(match func(line string) bool) []string {
	var out []string
	for _, r := range []*Relay{c.Old, c.New} {
		if r == nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(r.Dir, "maillog"))
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" && match(l) {
				out = append(out, r.Host.Name+": "+l)
			}
		}
	}
	return out
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
