package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// newRelayHost starts a host that can run the relay, with the relay's users from uid base.
func newRelayHost(t *testing.T, n *Net, name string, host byte, base int) *Host {
	t.Helper()
	Require(t, "postfix", "dovecot", "opendkim")
	return NewHost(t, HostOptions{Name: name, Addr: n.IP(host), Mounts: append(slices.Clone(DefaultMounts), RelayMounts...), Users: RelayAccounts(base)})
}

// inbox logs in as user and returns the INBOX's state and messages.
func inbox(ctx context.Context, t *testing.T, r *Relay, user string) (Mailbox, []IMAPMessage) {
	t.Helper()
	c, err := DialIMAP(ctx, r.IMAP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user+"@"+r.Domain, r.Password); err != nil {
		t.Fatal(err)
	}
	mb, err := c.Select("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Messages()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(); err != nil {
		t.Fatal(err)
	}
	return mb, msgs
}

// TestRelay runs the relay on a host: a remote MTA (the Sender, through MX and A in a lab
// cache) delivers over SMTP into the Maildirs, IMAP reads and changes them, what the relay
// submits for its own domain carries a DKIM signature that verifies against the zone's TXT,
// and relay-ctl stops and starts Postfix and Dovecot.
func TestRelay(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	h := newRelayHost(t, n, "old", 10, 5000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := InstallRelay(ctx, h, RelayOptions{GenerateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if on, err := r.Running(ctx); err != nil || on {
		t.Fatalf("installed relay: running %v, %v; want stopped", on, err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(ctx); err != nil {
		t.Error(err)
	}
	dkim, err := r.DKIMZoneLine(30)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDNSLab(t, n, Zone{Origin: "example.org.", Records: []string{
		"@ 30 IN MX 10 mail.example.org.",
		"mail 30 IN A " + h.Addr.String(),
		dkim,
	}})

	users := []string{"user00", "user01"}
	s, err := StartSender(SenderOptions{Resolver: d.Caches[0].Addr, Domain: RelayDomain, Users: users, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitAccepted(ctx, 6); err != nil {
		t.Fatal(err)
	}
	_ = s.Stop()
	want := map[string][]string{}
	for _, dl := range s.Deliveries() {
		if dl.Addr != h.Addr {
			t.Errorf("%s accepted by %s, want %s", dl.ID, dl.Addr, h.Addr)
		}
		want[dl.User] = append(want[dl.User], SenderMessageID(dl.ID))
	}
	// Postfix acknowledges before Dovecot stores: wait until every accepted message is in.
	var msgs []IMAPMessage
	var mb Mailbox
	for _, u := range users {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			mb, msgs = inbox(ctx, t, r, u)
			if len(msgs) >= len(want[u]) || time.Now().After(deadline) {
				break
			}
		}
		var got []string
		for _, m := range msgs {
			got = append(got, m.MessageID)
		}
		// Postfix delivers in parallel: the UIDs' order need not be the order of acceptance.
		slices.Sort(got)
		if !slices.Equal(got, slices.Sorted(slices.Values(want[u]))) {
			t.Errorf("%s's INBOX: Message-IDs %q, want %q", u, got, want[u])
		}
	}

	// A client marks the first message of user01 read, flags the second, deletes the third.
	c, err := DialIMAP(ctx, r.IMAP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("user01@"+RelayDomain, r.Password); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX"); err != nil {
		t.Fatal(err)
	}
	for i, f := range []string{`\Seen`, `\Flagged`, `\Deleted`} {
		if err := c.Store(msgs[i].UID, "+FLAGS", f); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Expunge(); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(); err != nil {
		t.Fatal(err)
	}
	mb2, msgs2 := inbox(ctx, t, r, "user01")
	if mb2.UIDValidity != mb.UIDValidity || mb2.UIDNext != mb.UIDNext || mb.UIDNext != msgs[len(msgs)-1].UID+1 {
		t.Errorf("mailbox before %+v, after %+v: want the same UIDVALIDITY and UIDNEXT (last UID %d + 1)", mb, mb2, msgs[len(msgs)-1].UID)
	}
	wantMsgs := []IMAPMessage{{UID: msgs[0].UID, Flags: []string{`\Seen`}, MessageID: msgs[0].MessageID}, {UID: msgs[1].UID, Flags: []string{`\Flagged`}, MessageID: msgs[1].MessageID}}
	if got := fmt.Sprint(msgs2); got != fmt.Sprint(wantMsgs) {
		t.Errorf("after the client's changes: %s, want %s", got, fmt.Sprint(wantMsgs))
	}

	// What the relay's own users send is signed; what arrives from elsewhere is not.
	for _, tc := range []struct {
		desc, from, tamper, wantErr string
	}{
		{desc: "own domain", from: "user02@example.org"},
		{desc: "own domain, body changed", from: "user02@example.org", tamper: "hello again", wantErr: "lab: dkim: not verified: verification (s=opendkim d=example.org, 2048-bit key, insecure) failed: signature verification failed"},
		{desc: "remote sender", from: "someone@remote.test", wantErr: "lab: dkim: not verified: message not signed"},
	} {
		id := fmt.Sprintf("<dkim-%d@lab>", time.Now().UnixNano())
		msg := "From: " + tc.from + "\r\nTo: user03@example.org\r\nMessage-ID: " + id + "\r\nSubject: dkim\r\n\r\nhello\r\n"
		if err := SendMail(ctx, r.SMTP, tc.from, []string{"user03@example.org"}, []byte(msg)); err != nil {
			t.Fatalf("%s: %v", tc.desc, err)
		}
		stored, err := waitMessage(ctx, h, r.Maildir("user03"), id)
		if err != nil {
			t.Fatalf("%s: %v", tc.desc, err)
		}
		if tc.tamper != "" {
			stored = []byte(strings.Replace(string(stored), "\nhello\n", "\n"+tc.tamper+"\n", 1))
		}
		err = VerifyDKIM(ctx, d.Caches[0].Addr, stored)
		if got := fmt.Sprint(err); (tc.wantErr == "" && err != nil) || (tc.wantErr != "" && got != tc.wantErr) {
			t.Errorf("%s: VerifyDKIM: %v, want %q", tc.desc, err, tc.wantErr)
		}
	}

	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if on, err := r.Running(ctx); err != nil || on {
		t.Fatalf("stopped relay: running %v, %v; want stopped", on, err)
	}
	for _, ap := range []netip.AddrPort{r.SMTP, r.IMAP} {
		if err := SendMail(ctx, ap, "a@remote.test", []string{"user00@example.org"}, []byte("x\r\n")); err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("stopped relay: %s: %v, want connection refused", ap, err)
		}
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if on, err := r.Running(ctx); err != nil || !on {
		t.Fatalf("restarted relay: running %v, %v; want running", on, err)
	}
	if _, msgs3 := inbox(ctx, t, r, "user01"); fmt.Sprint(msgs3) != fmt.Sprint(wantMsgs) {
		t.Errorf("after a restart: %v, want %v", msgs3, wantMsgs)
	}
}

func TestIMAPHeaderValue(t *testing.T) {
	for _, tc := range []struct{ desc, block, want string }{
		{"plain", "Message-ID: <a@b>\r\n\r\n", "<a@b>"},
		{"case", "message-id:<a@b>\r\n\r\n", "<a@b>"},
		{"folded", "Message-ID:\r\n <a@b>\r\n\r\n", "<a@b>"},
		{"absent", "\r\n", ""},
		{"other header first", "X: y\r\nMessage-Id: <c@d>\r\n", "<c@d>"},
	} {
		if got := headerValue(tc.block, "Message-ID"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.desc, got, tc.want)
		}
	}
}
