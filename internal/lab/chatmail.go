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

// ChatmailUsers are the mailboxes the chatmail lab's sender delivers to; with the real relay,
// the ones its RelayCheck works on.
var ChatmailUsers = SeedUsers(4)

// ChatmailOptions tune StartChatmail.
type ChatmailOptions struct {
	// StandIn runs the stand-in service (labmail) instead of the real relay (Postfix, Dovecot
	// and OpenDKIM, InstallRelay; see RelayInstalled).
	StandIn   bool
	Labmail   string               // the labmail binary of the stand-in (BuildLabmailBinary when empty)
	Traffic   bool                 // start a Sender delivering through the first cache
	CutoverAt time.Time            // the config's cutover_at; default now + ChatmailLead
	Messages  int                  // seeded on old; 0 means Seed's default
	Logf      func(string, ...any) // progress lines; nil discards them
}

// Chatmail is a whole migration lab: an old and a new host (private /tmp each), old seeded like
// a chatmail relay and running the real relay (Postfix, Dovecot, OpenDKIM; installed on new,
// which the config's prepare hook configures) or the stand-in service (enabled on old,
// installed on new), BIND primary and secondary and two Unbound caches serving example.org
// (mail at old; with the relay also its MX and DKIM key), optionally a Sender, and a ready
// cutover config. It is what `cutover-lab up` and `cutover-lab demo` stand up.
type Chatmail struct {
	Dir                string // identity, known_hosts, TSIG secret, config, cutover's state dir
	Config             string // Dir/cutover.toml
	StateDir           string // Dir/state
	Net                *Net
	Pair               *Pair
	DNS                *DNSLab
	OldRelay, NewRelay *Relay     // the real relay (nil with StandIn)
	Remote             netip.Addr // RemoteDomain's mail server for the relays (down: see RelayCheck)
	OldMail, NewMail   *Mail      // the stand-in service (StandIn only)
	Sender             *Sender    // nil without Traffic
	Seeded             int        // message files seeded on old
}

// RelayInstalled returns nil when the real relay's programs are installed (scripts/setup
// installs them), else an error naming what is missing.
func RelayInstalled() error {
	var missing []string
	for _, b := range []string{"postfix", "dovecot", "opendkim", "opendkim-genkey"} {
		if _, err := lookBin(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("lab: the relay needs %s (apt-get install postfix dovecot-imapd dovecot-lmtpd opendkim opendkim-tools)", strings.Join(missing, ", "))
	}
	return nil
}

// StartChatmail stands the lab up with its files in dir (created if missing). TMPDIR must not
// be under /tmp (see PairOptions.PrivateTmp), and with the relay every directory down to it must
// let other users pass (mode o+x). On error everything already started is stopped.
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
	relay := !opts.StandIn
	if relay {
		if err := searchableByAll(os.TempDir()); err != nil {
			return c, err
		}
	}
	if c.Pair, err = StartPairWith(c.Net, dir, PairOptions{PrivateTmp: true, Relay: relay}); err != nil {
		return c, err
	}
	man, err := Seed(c.Pair.Old, SeedOptions{Messages: opts.Messages})
	if err != nil {
		return c, err
	}
	c.Seeded = len(man.Messages)
	logf("old: seeded %d message files for %d users", c.Seeded, len(man.Users))
	ctx := context.Background()
	records := []string{
		fmt.Sprintf("mail %d IN A %s", chatmailTTL, c.Net.IP(10)),
		fmt.Sprintf("mail %d IN AAAA %s", chatmailTTL, chatmailOld6),
	}
	if relay {
		if err := c.installRelays(ctx); err != nil {
			return c, err
		}
		dkim, err := c.OldRelay.DKIMZoneLine(chatmailTTL)
		if err != nil {
			return c, err
		}
		records = append(records, fmt.Sprintf("@ %d IN MX 10 mail", chatmailTTL), dkim)
		logf("mail: the relay (Postfix, Dovecot, OpenDKIM) runs on old (SMTP %s, IMAP %s); new has it installed, for the prepare hook (relay-ctl prepare) to configure", c.OldRelay.SMTP, c.OldRelay.IMAP)
	} else {
		if err := c.installStandIn(ctx, opts.Labmail); err != nil {
			return c, err
		}
		logf("mail: the stand-in service runs on old (port %d), installed but disabled on new", MailPort)
	}
	logf("DNS: BIND primary %s, secondary %s, Unbound caches %s and %s", c.Net.IP(31), c.Net.IP(32), c.Net.IP(41), c.Net.IP(42))
	z := Zone{Origin: ChatmailZone, TTL: chatmailTTL, Minimum: 2, Records: records}
	if c.DNS, err = StartDNSLab(c.Net, z); err != nil {
		return c, err
	}
	if opts.Traffic {
		so := SenderOptions{Resolver: c.DNS.Caches[0].Addr, Interval: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
		if relay {
			so.Domain, so.Users = RelayDomain, ChatmailUsers
		}
		if c.Sender, err = StartSender(so); err != nil {
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

// searchableByAll checks that every directory from / to dir lets other users pass: the hosts'
// files are under TMPDIR, and the relay's Postfix writes its log there as the host's postfix.
func searchableByAll(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("lab: chatmail: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("lab: chatmail: %q (mode %#o) does not let other users pass: the relay's Postfix writes its log below TMPDIR %q as postfix", d, fi.Mode().Perm(), dir)
		}
		if d == "/" {
			return nil
		}
	}
}

// installRelays installs the relay on both hosts, configured and started on old (with a new
// DKIM key, in place of the seed's), installed only on new.
func (c *Chatmail) installRelays(ctx context.Context) (err error) {
	c.Remote = c.Net.IP(50)
	transports := map[string]netip.AddrPort{RemoteDomain: netip.AddrPortFrom(c.Remote, smtpPort)}
	// The seed's queue and key are files for the stand-in to move: Postfix makes its own queue,
	// opendkim-genkey a real key.
	if _, err := c.Pair.Old.Exec(ctx, "rm -rf /var/spool/postfix/* /etc/dkimkeys/*"); err != nil {
		return err
	}
	if c.OldRelay, err = InstallRelay(ctx, c.Pair.Old, RelayOptions{GenerateKey: true, Transports: transports}); err != nil {
		return err
	}
	if err := c.OldRelay.Start(ctx); err != nil {
		return err
	}
	c.NewRelay, err = InstallRelay(ctx, c.Pair.New, RelayOptions{Transports: transports, ByHook: true})
	return err
}

// installStandIn installs the stand-in service on both hosts and enables it on old.
func (c *Chatmail) installStandIn(ctx context.Context, bin string) (err error) {
	if bin == "" {
		if bin, err = BuildLabmailBinary(); err != nil {
			return err
		}
	}
	if c.OldMail, err = InstallMail(ctx, c.Pair.Old, bin); err != nil {
		return err
	}
	if c.NewMail, err = InstallMail(ctx, c.Pair.New, bin); err != nil {
		return err
	}
	if err := c.OldMail.Enable(ctx); err != nil {
		return err
	}
	return nil
}

// RelayCheck returns the checks of the relay's migration for this lab (nil with the stand-in):
// run Before ahead of the window (it needs the Sender) and After once it closed.
func (c *Chatmail) RelayCheck() *RelayCheck {
	if c.OldRelay == nil {
		return nil
	}
	return &RelayCheck{Old: c.OldRelay, New: c.NewRelay, Sender: c.Sender, Users: ChatmailUsers, Resolver: c.DNS.Caches[0].Addr, Remote: c.Remote, Deferred: 3}
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
		Zone: ChatmailZone, Name: ChatmailName, Old6: chatmailOld6, New6: chatmailNew6, LoweredTTL: 3 * time.Second, SecretFile: secret, Relay: c.OldRelay != nil}.Config()
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
