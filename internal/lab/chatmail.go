package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The chatmail lab's zone and the name that moves.
const (
	ChatmailZone = "example.org."
	ChatmailName = "mail.example.org."
	chatmailTTL  = 30 // seconds, the zone's TTL before the cutover
)

// The AAAA values of old and new (documentation addresses: never reached).
var (
	chatmailOld6 = netip.MustParseAddr("2001:db8::10")
	chatmailNew6 = netip.MustParseAddr("2001:db8::20")
)

// ChatmailLead is the least time from now to a cutover_at the chatmail lab can keep: the zone's
// 30 s TTL, the 10 s margin before the window, and time for the preflight and lower-ttl.
const ChatmailLead = chatmailTTL*time.Second + 16*time.Second

// ChatmailOptions tune StartChatmail.
type ChatmailOptions struct {
	Labmail   string               // the labmail binary (BuildLabmailBinary when empty)
	Traffic   bool                 // start a Sender delivering through the first cache
	CutoverAt time.Time            // the config's cutover_at; default now + ChatmailLead
	Messages  int                  // seeded on old; 0 means Seed's default
	Logf      func(string, ...any) // progress lines; nil discards them
}

// Chatmail is a whole migration lab: an old and a new host (private /tmp each) with the
// labmail service enabled on old, old seeded like a chatmail relay, BIND primary and
// secondary and two Unbound caches serving example.org (mail at old), optionally a Sender, and
// a ready cutover config. It is what `cutover-lab up` and `cutover-lab demo` stand up.
type Chatmail struct {
	Dir              string // identity, known_hosts, TSIG secret, config, cutover's state dir
	Config           string // Dir/cutover.toml
	StateDir         string // Dir/state
	Net              *Net
	Pair             *Pair
	DNS              *DNSLab
	OldMail, NewMail *Mail
	Sender           *Sender // nil without Traffic
	Seeded           int     // message files seeded on old
}

// StartChatmail stands the lab up with its files in dir (created if missing). TMPDIR must not
// be under /tmp (see PairOptions.PrivateTmp). On error everything already started is stopped.
func StartChatmail(dir string, opts ChatmailOptions) (c *Chatmail, err error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lab: chatmail: %w", err)
	}
	c = &Chatmail{Dir: dir, Config: filepath.Join(dir, "cutover.toml"), StateDir: filepath.Join(dir, "state")}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
			c = nil
		}
	}()
	if c.Net, err = ReserveNet(); err != nil {
		return c, err
	}
	logf("hosts: old %s, new %s (sshd, own mount namespaces)", c.Net.IP(10), c.Net.IP(20))
	if c.Pair, err = StartPairWith(c.Net, dir, PairOptions{PrivateTmp: true}); err != nil {
		return c, err
	}
	z := Zone{Origin: ChatmailZone, TTL: chatmailTTL, Minimum: 2, Records: []string{
		fmt.Sprintf("mail %d IN A %s", chatmailTTL, c.Net.IP(10)),
		fmt.Sprintf("mail %d IN AAAA %s", chatmailTTL, chatmailOld6),
	}}
	logf("DNS: BIND primary %s, secondary %s, Unbound caches %s and %s", c.Net.IP(31), c.Net.IP(32), c.Net.IP(41), c.Net.IP(42))
	if c.DNS, err = StartDNSLab(c.Net, z); err != nil {
		return c, err
	}
	man, err := Seed(c.Pair.Old, SeedOptions{Messages: opts.Messages})
	if err != nil {
		return c, err
	}
	c.Seeded = len(man.Messages)
	logf("old: seeded %d message files for %d users", c.Seeded, len(man.Users))
	bin := opts.Labmail
	if bin == "" {
		if bin, err = BuildLabmailBinary(); err != nil {
			return c, err
		}
	}
	ctx := context.Background()
	if c.OldMail, err = InstallMail(ctx, c.Pair.Old, bin); err != nil {
		return c, err
	}
	if c.NewMail, err = InstallMail(ctx, c.Pair.New, bin); err != nil {
		return c, err
	}
	if err := c.OldMail.Enable(ctx); err != nil {
		return c, err
	}
	logf("mail: the stand-in service runs on old (port %d), installed but disabled on new", MailPort)
	if opts.Traffic {
		if c.Sender, err = StartSender(SenderOptions{Resolver: c.DNS.Caches[0].Addr, Interval: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}); err != nil {
			return c, err
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := c.Sender.WaitAccepted(wctx, 10); err != nil {
			return c, err
		}
		logf("traffic: a sender delivers to %s through the cache %s", strings.TrimSuffix(ChatmailName, "."), c.DNS.Caches[0].Addr)
	}
	if err := c.WriteConfig(opts.CutoverAt); err != nil {
		return c, err
	}
	return c, nil
}

// WriteConfig writes Dir/cutover.toml with cutover_at at (now + ChatmailLead if zero) and the
// TSIG secret in Dir/tsig.secret (0600), which the config names.
func (c *Chatmail) WriteConfig(at time.Time) error {
	if at.IsZero() {
		at = time.Now().Add(ChatmailLead)
	}
	secret := filepath.Join(c.Dir, "tsig.secret")
	if err := os.WriteFile(secret, []byte(c.DNS.Key.Secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("lab: chatmail: %w", err)
	}
	cfg := Migration{Net: c.Net, Pair: c.Pair, DNS: c.DNS, CutoverAt: at.Truncate(time.Second), StateDir: c.StateDir,
		Zone: ChatmailZone, Name: ChatmailName, Old6: chatmailOld6, New6: chatmailNew6, LoweredTTL: 3 * time.Second, SecretFile: secret}.Config()
	if err := os.WriteFile(c.Config, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("lab: chatmail: %w", err)
	}
	return nil
}

// Stop stops everything StartChatmail started (the mail services go with their hosts) and
// releases the block. It is idempotent.
func (c *Chatmail) Stop() error {
	var errs []error
	if c.Sender != nil {
		errs = append(errs, c.Sender.Stop())
	}
	if c.DNS != nil {
		errs = append(errs, c.DNS.Stop())
	}
	if c.Pair != nil {
		errs = append(errs, c.Pair.Stop())
	}
	if c.Net != nil {
		errs = append(errs, c.Net.Release())
	}
	return errors.Join(errs...)
}
