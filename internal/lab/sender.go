package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// SenderOptions configures a Sender.
type SenderOptions struct {
	Resolver netip.AddrPort // the cache asked for Name's A record before every attempt (required)
	Name     string         // default "mail.example.org."
	Port     int            // default MailPort (25 with Domain)
	// Domain makes the sender a remote MTA speaking SMTP: for every attempt it resolves Domain's
	// MX, then the A of the MX's host, and hands user@Domain the message over SMTP, which has
	// the Message-ID SenderMessageID(id). Without it the sender asks for Name's A and speaks the
	// stand-in service's protocol.
	Domain     string
	Users      []string      // recipients, in turn; default SeedUsers(20)
	Interval   time.Duration // pause after an accepted message; default 20ms
	MinBackoff time.Duration // first pause after a failed attempt; default 20ms
	MaxBackoff time.Duration // the pause doubles up to this; default 500ms
	IDPrefix   string        // message ids are IDPrefix + a 6-digit sequence number; default "m"
	// Logf receives a line per accepted message and per failed attempt; nil discards them.
	Logf func(format string, args ...any)
}

// Delivery is one accepted message.
type Delivery struct {
	ID, User string
	Addr     netip.Addr // where it was accepted
	At       time.Time  // when the acknowledgement arrived
}

// Sender plays an MTA delivering to mail.example.org: for every attempt it resolves the name
// through the given cache (never the system resolver), connects to that address on MailPort,
// and retries the same message with exponential backoff until it is acknowledged.
type Sender struct {
	opts     SenderOptions
	deliver  func(ctx context.Context, addr netip.AddrPort, id, user, body string) error
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu          sync.Mutex
	accepted    []Delivery
	failures    int
	lastErr     error
	unconfirmed map[string]int // id -> attempts that failed with ErrUnconfirmed
	notify      chan struct{}  // closed and replaced on every accepted message
	dnsClient   *dns.Client
	dialer      net.Dialer
	deliverTTL  time.Duration
}

// StartSender validates opts and starts sending in a goroutine.
func StartSender(opts SenderOptions) (*Sender, error) {
	if !opts.Resolver.IsValid() {
		return nil, errors.New("lab: sender: Resolver is required")
	}
	if !opts.Resolver.Addr().IsLoopback() {
		return nil, fmt.Errorf("lab: sender: resolver %q is not on loopback", opts.Resolver)
	}
	if opts.Name == "" {
		opts.Name = "mail.example.org."
	}
	opts.Name = dns.Fqdn(opts.Name)
	deliver := DeliverMessage
	if opts.Domain != "" {
		opts.Domain = strings.TrimSuffix(opts.Domain, ".")
		if _, ok := dns.IsDomainName(opts.Domain); !ok {
			return nil, fmt.Errorf("lab: sender: Domain %q is not a domain name", opts.Domain)
		}
		deliver = func(ctx context.Context, addr netip.AddrPort, id, user, body string) error {
			return deliverSMTP(ctx, addr, id, user+"@"+opts.Domain, body)
		}
		if opts.Port == 0 {
			opts.Port = smtpPort
		}
	}
	if opts.Port == 0 {
		opts.Port = MailPort
	}
	if len(opts.Users) == 0 {
		opts.Users = SeedUsers(20)
	}
	if opts.Interval == 0 {
		opts.Interval = 20 * time.Millisecond
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 20 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 500 * time.Millisecond
	}
	if opts.IDPrefix == "" {
		opts.IDPrefix = "m"
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	s := &Sender{
		opts: opts, deliver: deliver, unconfirmed: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{}), notify: make(chan struct{}),
		dnsClient:  &dns.Client{Net: "udp", Timeout: time.Second},
		dialer:     net.Dialer{Timeout: 2 * time.Second},
		deliverTTL: 5 * time.Second,
	}
	go s.run()
	return s, nil
}

func (s *Sender) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

func (s *Sender) sleep(d time.Duration) {
	select {
	case <-s.stop:
	case <-time.After(d):
	}
}

func (s *Sender) run() {
	defer close(s.done)
	for seq := 1; ; seq++ {
		id := fmt.Sprintf("%s%06d", s.opts.IDPrefix, seq)
		user := s.opts.Users[(seq-1)%len(s.opts.Users)]
		body := fmt.Sprintf("Subject: lab message %s\n\nHello %s,\n.this line starts with a dot\nbye\n", id, user)
		backoff := s.opts.MinBackoff
		for {
			if s.stopped() {
				return
			}
			// The attempt in flight is finished even when Stop is called meanwhile, so an
			// acknowledged message is always recorded.
			ctx, cancel := context.WithTimeout(context.Background(), s.deliverTTL)
			addr, err := s.resolve(ctx)
			if err == nil {
				err = s.deliver(ctx, netip.AddrPortFrom(addr, uint16(s.opts.Port)), id, user, body)
			}
			cancel()
			if err == nil {
				d := Delivery{ID: id, User: user, Addr: addr, At: time.Now()}
				s.mu.Lock()
				s.accepted = append(s.accepted, d)
				close(s.notify)
				s.notify = make(chan struct{})
				s.mu.Unlock()
				s.opts.Logf("sender: %s accepted by %s", id, addr)
				break
			}
			s.mu.Lock()
			s.failures++
			s.lastErr = err
			if errors.Is(err, ErrUnconfirmed) {
				s.unconfirmed[id]++
			}
			s.mu.Unlock()
			s.opts.Logf("sender: %s: %v; retrying in %s", id, err, backoff)
			s.sleep(backoff)
			backoff = min(2*backoff, s.opts.MaxBackoff)
		}
		s.sleep(s.opts.Interval)
	}
}

// resolve finds where to deliver: the A record of Name, or with Domain the A record of the
// host that Domain's MX names (the most preferred one), both asked of the cache.
func (s *Sender) resolve(ctx context.Context) (netip.Addr, error) {
	name := s.opts.Name
	if s.opts.Domain != "" {
		rrs, err := s.query(ctx, dns.Fqdn(s.opts.Domain), dns.TypeMX)
		if err != nil {
			return netip.Addr{}, err
		}
		var best *dns.MX
		for _, rr := range rrs {
			if mx, ok := rr.(*dns.MX); ok && (best == nil || mx.Preference < best.Preference) {
				best = mx
			}
		}
		if best == nil {
			return netip.Addr{}, fmt.Errorf("lab: sender: resolve %q at %s: no MX record", s.opts.Domain, s.opts.Resolver)
		}
		name = best.Mx
	}
	rrs, err := s.query(ctx, name, dns.TypeA)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, rr := range rrs {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("lab: sender: resolve %q at %s: no A record", name, s.opts.Resolver)
}

// query asks the cache for name's records of type t and returns the answer section.
func (s *Sender) query(ctx context.Context, name string, t uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	m.RecursionDesired = true
	r, _, err := s.dnsClient.ExchangeContext(ctx, m, s.opts.Resolver.String())
	if err != nil {
		return nil, fmt.Errorf("lab: sender: resolve %q at %s: %w", name, s.opts.Resolver, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("lab: sender: resolve %q at %s: %s", name, s.opts.Resolver, dns.RcodeToString[r.Rcode])
	}
	return r.Answer, nil
}

// Stop lets the attempt in flight finish and stops sending. It is idempotent.
func (s *Sender) Stop() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

// Accepted returns the ids of the acknowledged messages, in order.
func (s *Sender) Accepted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.accepted))
	for i, d := range s.accepted {
		ids[i] = d.ID
	}
	return ids
}

// Deliveries returns the acknowledged messages with where and when, in order.
func (s *Sender) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.accepted...)
}

// Switched returns when the deliveries moved from old to new, the downtime the sender saw: the
// last message accepted at old and the first accepted at new (zero times when there is none).
func (s *Sender) Switched(old, new netip.Addr) (lastOld, firstNew time.Time) {
	for _, d := range s.Deliveries() {
		switch d.Addr {
		case old:
			lastOld = d.At
		case new:
			if firstNew.IsZero() {
				firstNew = d.At
			}
		}
	}
	return lastOld, firstNew
}

// Unconfirmed returns, per message id, the attempts that failed with ErrUnconfirmed: the
// server may hold that many extra copies.
func (s *Sender) Unconfirmed() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.unconfirmed))
	for id, n := range s.unconfirmed {
		m[id] = n
	}
	return m
}

// Failures returns the number of failed attempts and the last failure.
func (s *Sender) Failures() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures, s.lastErr
}

// WaitAccepted waits until at least n messages have been acknowledged in total.
func (s *Sender) WaitAccepted(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, ch := len(s.accepted), s.notify
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-s.done:
			return fmt.Errorf("lab: sender: stopped after %d of %d accepted messages", got, n)
		case <-ctx.Done():
			failures, last := s.Failures()
			return fmt.Errorf("lab: sender: %d of %d messages accepted, %d failed attempts (last: %v): %w", got, n, failures, last, ctx.Err())
		}
	}
}

// DeliverMessage sends one message to a labmail service at addr and waits for its
// acknowledgement. A nil error means the message is stored and synced on the service's host.
func DeliverMessage(ctx context.Context, addr netip.AddrPort, id, user, body string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return fmt.Errorf("lab: deliver %s: %w", id, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var msg strings.Builder
	fmt.Fprintf(&msg, "MSG %s %s\n", id, user)
	for _, l := range strings.SplitAfter(body, "\n") {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, ".") {
			msg.WriteString(".")
		}
		msg.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			msg.WriteString("\n")
		}
	}
	msg.WriteString(".\n")
	if _, err := c.Write([]byte(msg.String())); err != nil {
		return fmt.Errorf("lab: deliver %s to %s: %w", id, addr, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("lab: deliver %s to %s: no acknowledgement: %w", id, addr, err)
	}
	if line != "250 "+id+"\n" {
		return fmt.Errorf("lab: deliver %s to %s: refused: %q", id, addr, strings.TrimSpace(line))
	}
	return nil
}

// ErrUnconfirmed marks an SMTP delivery whose message was sent whole but whose reply never came
// (connection lost, timeout): the server may have queued it, and the retry that follows may
// then store it a second time. SMTP delivers at least once, and this is its known duplicate.
var ErrUnconfirmed = errors.New("reply to the message lost")

// SenderMessageID is the Message-ID of the sender's message id when it speaks SMTP.
func SenderMessageID(id string) string { return "<" + id + "@remote.test>" }

// deliverSMTP hands the message id to the SMTP server at addr for rcpt, as a remote MTA would.
// A nil error means the server accepted the message (250 after DATA).
func deliverSMTP(ctx context.Context, addr netip.AddrPort, id, rcpt, body string) error {
	msg := fmt.Sprintf("Message-ID: %s\r\nFrom: lab-sender@remote.test\r\nTo: %s\r\nSubject: lab message %s\r\nX-Lab-Id: %s\r\n\r\n%s",
		SenderMessageID(id), rcpt, id, id, strings.ReplaceAll(body, "\n", "\r\n"))
	if err := SendMail(ctx, addr, "lab-sender@remote.test", []string{rcpt}, []byte(msg)); err != nil {
		return fmt.Errorf("lab: deliver %s: %w", id, err)
	}
	return nil
}

// SendMail hands msg (CRLF line ends) from from to the recipients over SMTP at addr: EHLO,
// MAIL, RCPT, DATA, QUIT. Any reply other than success is an error carrying it.
func SendMail(ctx context.Context, addr netip.AddrPort, from string, to []string, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return fmt.Errorf("lab: smtp %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, addr.Addr().String())
	if err != nil {
		return fmt.Errorf("lab: smtp %s: greeting: %w", addr, err)
	}
	if err := c.Hello("remote.test"); err != nil {
		return fmt.Errorf("lab: smtp %s: EHLO: %w", addr, err)
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("lab: smtp %s: MAIL: %w", addr, err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("lab: smtp %s: RCPT %q: %w", addr, rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("lab: smtp %s: DATA: %w", addr, err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("lab: smtp %s: DATA: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		var reply *textproto.Error
		if !errors.As(err, &reply) {
			// The message was sent and the server's verdict lost: it may have been queued.
			return fmt.Errorf("lab: smtp %s: end of DATA: %w: %w", addr, ErrUnconfirmed, err)
		}
		return fmt.Errorf("lab: smtp %s: end of DATA: %w", addr, err)
	}
	_ = c.Quit()
	return nil
}
