package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// The real relay of a lab host: Debian's Postfix, Dovecot (IMAP and LMTP) and OpenDKIM,
// configured like a chatmail relay and run inside the host's mount namespace, where its
// configuration, spool, state and runtime directories are the host's own (RelayMounts).
const (
	// RelayDomain is the mail domain of the lab's relays.
	RelayDomain = "example.org"
	// RelayMailRoot is where Dovecot stores a user's Maildir: RelayMailRoot/<domain>/<user>/.
	RelayMailRoot = "/home/vmail/mail"
	// RelayCtl is the relay's control command inside a host (on root's PATH there, also over
	// ssh): `relay-ctl prepare|start|stop|status`. On the real fs it is a placeholder that fails.
	RelayCtl = "/usr/local/sbin/relay-ctl"
	// DKIMSelector is the selector OpenDKIM signs with; the key is /etc/dkimkeys/<selector>.private.
	DKIMSelector = "opendkim"
	// DKIMKeyFile is the private key OpenDKIM signs with, as seen inside a host.
	DKIMKeyFile = "/etc/dkimkeys/opendkim.private"
	// The pid files of the relay's daemons, by which relay-ctl (and the tests) find them:
	// Postfix's master, Dovecot's master and OpenDKIM. Each leads a session of its processes.
	PostfixPIDFile  = "/var/spool/postfix/pid/master.pid"
	DovecotPIDFile  = "/run/dovecot/master.pid"
	OpenDKIMPIDFile = "/run/opendkim/opendkim.pid"

	smtpPort     = 25
	imapPort     = 143
	opendkimPort = 8891
)

// RelayMounts are the directories a host needs private, besides DefaultMounts, to run the relay.
var RelayMounts = []string{"/etc/postfix", "/etc/dovecot", "/etc/opendkim", "/var/lib/postfix", "/var/lib/dovecot", "/run/dovecot", "/run/opendkim"}

// RelayAccounts returns the relay's service users with ids from base on: vmail, opendkim,
// postfix, postdrop (Postfix's setgid group), dovecot and dovenull. Give OLD and NEW
// different bases: cmdeploy fixes no uid, so they differ between real hosts too.
func RelayAccounts(base int) map[string]int {
	m := map[string]int{}
	for i, n := range []string{"vmail", "opendkim", "postfix", "postdrop", "dovecot", "dovenull"} {
		m[n] = base + i
	}
	return m
}

// RelayOptions configure InstallRelay.
type RelayOptions struct {
	// Password is every IMAP user's password (a static passdb); default "lab".
	Password string
	// Transports route mail for other domains to a fixed SMTP server each (no DNS): what the
	// deferred-queue checks deliver to.
	Transports map[string]netip.AddrPort
	// GenerateKey makes a DKIM key with opendkim-genkey (the first deployment of a relay).
	// Without it /etc/dkimkeys stays as it is: NEW gets OLD's key by the migration.
	GenerateKey bool
	// ByHook leaves the configuration to `relay-ctl prepare`, as a migration's prepare hook
	// runs it on NEW (cmdeploy's install,configure): InstallRelay then only installs, that is
	// stages the configuration and puts relay-ctl and Postfix's setgid programs in place.
	ByHook bool
}

// Relay is the relay installed on a host.
type Relay struct {
	Host     *Host
	SMTP     netip.AddrPort // Host.Addr:25
	IMAP     netip.AddrPort // Host.Addr:143
	Domain   string         // RelayDomain
	Password string
	Dir      string // the control script and the logs of Dovecot and the control script (same path on the real fs and in the host)
}

// InstallRelay installs the relay in h (which must have been started with RelayMounts and
// RelayAccounts): the configuration of Postfix, Dovecot and OpenDKIM staged in Dir/conf, the
// control script bind-mounted over RelayCtl inside the host, Postfix's setgid programs. Unless
// opts.ByHook it then configures the relay (`relay-ctl prepare`: the staged files in place,
// Postfix's queue created and checked) and optionally generates the DKIM key. Nothing is started.
func InstallRelay(ctx context.Context, h *Host, opts RelayOptions) (*Relay, error) {
	if opts.Password == "" {
		opts.Password = "lab"
	}
	r := &Relay{Host: h, SMTP: netip.AddrPortFrom(h.Addr, smtpPort), IMAP: netip.AddrPortFrom(h.Addr, imapPort),
		Domain: RelayDomain, Password: opts.Password, Dir: filepath.Join(h.Dir, "relay")}
	fail := func(err error) (*Relay, error) {
		return nil, fmt.Errorf("lab: host %q: install relay: %w", h.Name, err)
	}
	if strings.ContainsAny(opts.Password, " \t\n'\"\\:") {
		return fail(fmt.Errorf("password %q: want no blanks, quotes, backslashes or colons", opts.Password))
	}
	for _, m := range RelayMounts {
		if !slices.Contains(h.mounts, m) {
			return fail(fmt.Errorf("%s is not private to the host (start it with RelayMounts)", m))
		}
	}
	for _, b := range []string{"postfix", "dovecot", "opendkim", "opendkim-genkey"} {
		if _, err := mustBin(b, b); err != nil {
			return fail(err)
		}
	}
	// Debian's files of /etc/postfix besides the configuration (postfix-files, postfix-script,
	// dynamicmaps.cf, ...): what `postfix check` and `postfix start` read.
	if err := copyTree("/etc/postfix", filepath.Join(r.stage(), "etc/postfix")); err != nil {
		return fail(err)
	}
	files := map[string]string{
		"etc/postfix/main.cf":        r.postfixMain(),
		"etc/postfix/master.cf":      postfixMaster,
		"etc/postfix/transport":      transportMap(opts.Transports),
		"etc/dovecot/dovecot.conf":   r.dovecotConf(),
		"etc/opendkim/opendkim.conf": r.opendkimConf(),
	}
	for p, content := range files {
		p = filepath.Join(r.stage(), p)
		if err := errors.Join(os.MkdirAll(filepath.Dir(p), 0o755), os.WriteFile(p, []byte(content), 0o644)); err != nil {
			return fail(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "relay-ctl"), []byte(r.ctlScript()), 0o755); err != nil {
		return fail(err)
	}
	if err := ensurePlaceholder(RelayCtl, "relay-ctl"); err != nil {
		return fail(err)
	}
	setup := []string{
		"mount --bind " + shellQuote(filepath.Join(r.Dir, "relay-ctl")) + " " + RelayCtl,
	}
	// Postfix's setgid programs belong to the machine's postdrop group; inside the host they are
	// copies that belong to the host's own.
	for _, b := range []string{"/usr/sbin/postdrop", "/usr/sbin/postqueue"} {
		cp := shellQuote(filepath.Join(r.Dir, filepath.Base(b)))
		setup = append(setup, fmt.Sprintf("cp %s %s && chgrp postdrop %s && chmod 2555 %s && mount --bind %s %s", b, cp, cp, cp, cp, b))
	}
	if !opts.ByHook {
		setup = append(setup, RelayCtl+" prepare")
	}
	if opts.GenerateKey {
		setup = append(setup,
			"mkdir -p /etc/dkimkeys && opendkim-genkey -D /etc/dkimkeys -d "+RelayDomain+" -s "+DKIMSelector,
			"chown -R opendkim:opendkim /etc/dkimkeys && chmod 755 /etc/dkimkeys && chmod 600 "+DKIMKeyFile)
	}
	for _, c := range setup {
		if _, err := h.Exec(ctx, c); err != nil {
			return fail(err)
		}
	}
	return r, nil
}

// stage is where InstallRelay puts the relay's configuration (etc/postfix, etc/dovecot,
// etc/opendkim) for `relay-ctl prepare` to copy into place.
func (r *Relay) stage() string { return filepath.Join(r.Dir, "conf") }

// copyTree copies the regular files and directories under src to dst (created if missing).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm())
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, info.Mode().Perm())
		}
		return nil
	})
}

// transportMap is /etc/postfix/transport (a texthash map: no postmap needed).
func transportMap(ts map[string]netip.AddrPort) string {
	var lines []string
	for dom, ap := range ts {
		lines = append(lines, fmt.Sprintf("%s smtp:[%s]:%d", dom, ap.Addr(), ap.Port()))
	}
	sort.Strings(lines)
	return "# lab relay: fixed next hops (no DNS)\n" + strings.Join(lines, "\n") + "\n"
}

// postfixMain is main.cf: the lab domain's mail goes to Dovecot over LMTP, every message
// passes OpenDKIM (which signs what the lab's own hosts send for the domain), other domains go
// where the transport map says, and retries come quickly.
func (r *Relay) postfixMain() string {
	milter := fmt.Sprintf("inet:%s:%d", r.Host.Addr, opendkimPort)
	return strings.Join([]string{
		"# lab relay " + r.Host.Name,
		"compatibility_level = 3.6",
		"myhostname = mail." + r.Domain,
		"mydomain = " + r.Domain,
		"myorigin = $mydomain",
		"mydestination =",
		"inet_interfaces = " + r.Host.Addr.String(),
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		"virtual_mailbox_domains = " + r.Domain,
		"virtual_transport = lmtp:unix:/run/dovecot/lmtp",
		"smtpd_reject_unlisted_recipient = no",
		"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
		"smtpd_peername_lookup = no",
		"smtpd_milters = " + milter,
		"non_smtpd_milters = " + milter,
		// As chatmail's issue #464 saw it: OpenDKIM unable to sign means 451 4.7.1.
		"milter_default_action = tempfail",
		"alias_maps =",
		"alias_database =",
		"local_recipient_maps =",
		"smtp_dns_support_level = disabled",
		"transport_maps = texthash:/etc/postfix/transport",
		"queue_run_delay = 2s",
		"minimal_backoff_time = 2s",
		"maximal_backoff_time = 4s",
		"smtp_connect_timeout = 2s",
		"maillog_file_prefixes = " + r.Dir,
		"maillog_file = " + filepath.Join(r.Dir, "maillog"),
		"biff = no",
		"smtputf8_enable = no",
	}, "\n") + "\n"
}

// postfixMaster is master.cf: Debian's services, none chrooted (a chroot would need copies of
// the host's files inside the spool).
const postfixMaster = `# lab relay: service type private unpriv chroot wakeup maxproc command
smtp       inet  n - n - -  smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n - 0  cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n - -  trivial-rewrite
bounce     unix  - - n - 0  bounce
defer      unix  - - n - 0  bounce
trace      unix  - - n - 0  bounce
verify     unix  - - n - 1  verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n - -  proxymap
proxywrite unix  - - n - 1  proxymap
smtp       unix  - - n - -  smtp
relay      unix  - - n - -  smtp
showq      unix  n - n - -  showq
error      unix  - - n - -  error
retry      unix  - - n - -  error
discard    unix  - - n - -  discard
local      unix  - n n - -  local
virtual    unix  - n n - -  virtual
lmtp       unix  - - n - -  lmtp
anvil      unix  - - n - 1  anvil
scache     unix  - - n - 1  scache
postlog    unix-dgram n - n - 1 postlogd
`

// dovecotConf is dovecot.conf: IMAP without TLS for every user of the domain with one
// password, LMTP on a socket Postfix delivers to, Maildirs with their index and UID files
// inside (so that they move with the mail).
func (r *Relay) dovecotConf() string {
	return strings.Join([]string{
		"# lab relay " + r.Host.Name,
		"protocols = imap lmtp",
		"listen = " + r.Host.Addr.String(),
		"base_dir = /run/dovecot",
		"state_dir = /var/lib/dovecot",
		"log_path = " + filepath.Join(r.Dir, "dovecot.log"),
		"ssl = no",
		"disable_plaintext_auth = no",
		"auth_mechanisms = plain login",
		"auth_username_format = %Lu",
		"mail_location = maildir:~",
		"first_valid_uid = 1",
		"passdb {\n  driver = static\n  args = password=" + r.Password + "\n}",
		"userdb {\n  driver = static\n  args = uid=vmail gid=vmail home=" + RelayMailRoot + "/%d/%n\n}",
		"service imap-login {\n  inet_listener imap {\n    port = " + fmt.Sprint(imapPort) + "\n  }\n}",
		"service lmtp {\n  unix_listener lmtp {\n    mode = 0666\n  }\n}",
		"protocol lmtp {\n  postmaster_address = postmaster@" + r.Domain + "\n}",
	}, "\n") + "\n"
}

// opendkimConf is OpenDKIM's configuration: sign only (verifying would need DNS), for the
// domain, what the lab's hosts send.
func (r *Relay) opendkimConf() string {
	return strings.Join([]string{
		"# lab relay " + r.Host.Name,
		"Syslog no",
		"Mode s",
		"Domain " + r.Domain,
		"Selector " + DKIMSelector,
		"KeyFile " + DKIMKeyFile,
		fmt.Sprintf("Socket inet:%d@%s", opendkimPort, r.Host.Addr),
		"PidFile " + OpenDKIMPIDFile,
		"UserID opendkim",
		"InternalHosts 127.0.0.0/8",
		"Canonicalization relaxed/simple",
		"OversignHeaders From",
	}, "\n") + "\n"
}

// ctlScript is relay-ctl: prepare (cmdeploy's install,configure: the staged configuration in
// place, the directories of the service users, Postfix's queue created by `postfix check`;
// nothing started), start (OpenDKIM unless it runs, Dovecot, Postfix; cmdeploy's
// activate), stop (Postfix drained: it stops listening, delivers its incoming and active
// queues, then stops; then Dovecot; each waiting until every process of its master's session
// is gone; --disable-mail) and
// status ("running" when Postfix and Dovecot both run, "stopped" when neither does).
// Daemons are found by their pid files (and their processes by session id), never by name.
func (r *Relay) ctlScript() string {
	log := shellQuote(filepath.Join(r.Dir, "relay-ctl.log"))
	maillog, stage := shellQuote(filepath.Join(r.Dir, "maillog")), shellQuote(r.stage())
	return `#!/bin/sh
# relay-ctl of lab host ` + r.Host.Name + `
set -u
exec 3>>` + log + `
failed() { echo "relay-ctl: $1 failed to start; the end of its log:" >&2; tail -n 8 ` + log + ` >&2; exit 1; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# waitgone SID NAME: waits until no process is left in the session of a daemon's master (its
# pid): Postfix's delivery agents finish what they deliver after the master has gone.
waitgone() { end=$(($(date +%s) + 30)); while ps -e -o sid= | grep -qx " *$1"; do [ "$(date +%s)" -lt $end ] || { echo "relay-ctl: $2 does not stop" >&2; exit 1; }; sleep 0.1; done; }
# pending: how many queued messages (not deferred, not held) still have a recipient in the
# relay's own domain, i.e. wait for a delivery to Dovecot. Mail deferred for other domains is
# not waited for: it moves with the spool and goes out from the new host.
pending() { postqueue -j 2>/dev/null | grep -v '"queue_name": *"\(deferred\|hold\)"' | grep -c '"address": *"[^"]*@` + strings.ReplaceAll(r.Domain, ".", `\.`) + `"'; }
PF=` + PostfixPIDFile + ` DC=` + DovecotPIDFile + ` DK=` + OpenDKIMPIDFile + `
case "${1:-}" in
prepare)
	(
		set -e
		cp -R ` + stage + `/etc/postfix/. /etc/postfix/
		cp ` + stage + `/etc/dovecot/dovecot.conf /etc/dovecot/
		cp ` + stage + `/etc/opendkim/opendkim.conf /etc/opendkim/
		mkdir -p /home/vmail/mail && chown vmail:vmail /home/vmail /home/vmail/mail
		chown opendkim:opendkim /run/opendkim
		chown postfix:postfix /var/lib/postfix
		# Postfix's own programs write the log after dropping to postfix: it must exist.
		touch ` + maillog + ` && chown postfix:postfix ` + maillog + `
		mkdir -p /etc/dkimkeys && chmod 755 /etc/dkimkeys
		# Creates the queue's directories with their owners and modes, and reports what is wrong.
		postfix check
	) || { echo "relay-ctl: prepare failed" >&2; exit 1; }
	;;
start)
	if ! alive $DK; then opendkim -x /etc/opendkim/opendkim.conf </dev/null >&3 2>&3 || failed opendkim; fi
	# OpenDKIM forks before it listens: Postfix started before that answers 451 4.7.1.
	end=$(($(date +%s) + 30))
	until ss -Hltn "src ` + fmt.Sprintf("%s:%d", r.Host.Addr, opendkimPort) + `" | grep -q .; do
		[ "$(date +%s)" -lt $end ] || { echo "relay-ctl: opendkim does not listen" >&2; exit 1; }
		sleep 0.05
	done
	if ! alive $DC; then dovecot </dev/null >&3 2>&3 || failed dovecot; fi
	if ! alive $PF; then postfix start </dev/null >&3 2>&3 || failed postfix; fi
	;;
stop)
	# Postfix first, and drained: it stops accepting mail, delivers what it has accepted to
	# Dovecot, then stops, all of it. A delivery to Dovecot cut off after Dovecot stored the
	# message leaves it in the queue, to be delivered a second time (from NEW, after the move).
	if alive $PF; then
		pid=$(cat $PF)
		postconf -e 'master_service_disable = inet' && postfix reload </dev/null >&3 2>&3
		# Drained: three looks in a row (a message cleanup is still writing may not show in the
		# first) find no local delivery pending; at most 15 s.
		end=$(($(date +%s) + 15)) empty=0
		while [ $empty -lt 3 ] && [ "$(date +%s)" -lt $end ]; do
			if [ "$(pending)" = 0 ]; then empty=$((empty+1)); else empty=0; fi
			sleep 0.1
		done
		postfix stop </dev/null >&3 2>&3
		postconf -X master_service_disable
		waitgone "$pid" postfix
	fi
	if alive $DC; then pid=$(cat $DC); kill "$pid"; waitgone "$pid" dovecot; fi
	;;
status)
	if alive $PF && alive $DC; then echo running
	elif ! alive $PF && ! alive $DC; then echo stopped
	else echo partial; fi
	;;
*) echo 'usage: relay-ctl prepare|start|stop|status' >&2; exit 2 ;;
esac
`
}

func (r *Relay) ctl(ctx context.Context, op string) (string, error) {
	out, err := r.Host.Exec(ctx, RelayCtl+" "+op)
	return strings.TrimSpace(string(out)), err
}

// Start starts the relay (as cmdeploy's activate would): OpenDKIM unless it runs, Dovecot and
// Postfix, which listen when it returns.
func (r *Relay) Start(ctx context.Context) error {
	_, err := r.ctl(ctx, "start")
	return err
}

// Stop stops Postfix and Dovecot (as --disable-mail would) and returns once they are gone.
func (r *Relay) Stop(ctx context.Context) error {
	_, err := r.ctl(ctx, "stop")
	return err
}

// Running reports whether Postfix and Dovecot run; one without the other is an error.
func (r *Relay) Running(ctx context.Context) (bool, error) {
	out, err := r.ctl(ctx, "status")
	if err != nil {
		return false, err
	}
	switch out {
	case "running":
		return true, nil
	case "stopped":
		return false, nil
	}
	return false, fmt.Errorf("lab: host %q: relay-ctl status: %q", r.Host.Name, out)
}

// Check runs `postfix check` in the host and returns its complaints: an error if there are any.
func (r *Relay) Check(ctx context.Context) error {
	out, err := r.Host.Exec(ctx, "postfix check 2>&1")
	if err != nil {
		return err
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		return fmt.Errorf("lab: host %q: postfix check: %s", r.Host.Name, s)
	}
	return nil
}

// Maildir returns the path, inside the host, of user's Maildir.
func (r *Relay) Maildir(user string) string {
	return filepath.Join(RelayMailRoot, r.Domain, user)
}

var quoted = regexp.MustCompile(`"([^"]*)"`)

// DKIMRecord returns the TXT record (its name and its strings, each at most 255 bytes) that
// publishes the public half of the host's DKIM key, read from the opendkim.txt that
// opendkim-genkey wrote next to the key.
func (r *Relay) DKIMRecord() (name string, txt []string, err error) {
	b, err := os.ReadFile(r.Host.Path("/etc/dkimkeys/" + DKIMSelector + ".txt"))
	if err != nil {
		return "", nil, fmt.Errorf("lab: host %q: dkim record: %w", r.Host.Name, err)
	}
	var data strings.Builder
	for _, m := range quoted.FindAllStringSubmatch(string(b), -1) {
		data.WriteString(m[1])
	}
	s := data.String()
	if !strings.Contains(s, "p=") {
		return "", nil, fmt.Errorf("lab: host %q: dkim record: no p= in %q", r.Host.Name, string(b))
	}
	for len(s) > 255 {
		txt, s = append(txt, s[:255]), s[255:]
	}
	txt = append(txt, s)
	return DKIMSelector + "._domainkey." + r.Domain + ".", txt, nil
}

// DKIMZoneLine returns DKIMRecord as a zone file line for Zone.Records.
func (r *Relay) DKIMZoneLine(ttl int) (string, error) {
	name, txt, err := r.DKIMRecord()
	if err != nil {
		return "", err
	}
	q := make([]string, len(txt))
	for i, t := range txt {
		q[i] = `"` + t + `"`
	}
	return fmt.Sprintf("%s %d IN TXT %s", name, ttl, strings.Join(q, " ")), nil
}

// VerifyDKIM verifies the DKIM signature of msg with OpenDKIM's test mode (`opendkim -t`),
// which fetches the public key as a real verifier does: the TXT record, asked of resolver (a
// lab cache). It returns nil only if OpenDKIM reports the signature verified.
func VerifyDKIM(ctx context.Context, resolver netip.AddrPort, msg []byte) error {
	bin, err := mustBin("opendkim", "opendkim")
	if err != nil {
		return err
	}
	if resolver.Port() != 53 {
		return fmt.Errorf("lab: dkim: resolver %s: OpenDKIM asks port 53 only", resolver)
	}
	dir, err := os.MkdirTemp("", tempPrefix+"dkim-")
	if err != nil {
		return fmt.Errorf("lab: dkim: %w", err)
	}
	defer os.RemoveAll(dir)
	conf := "Syslog no\nMode v\nNameservers " + resolver.Addr().String() + "\n"
	msgFile := filepath.Join(dir, "message")
	if err := errors.Join(os.WriteFile(filepath.Join(dir, "opendkim.conf"), []byte(conf), 0o644),
		os.WriteFile(msgFile, msg, 0o644)); err != nil {
		return fmt.Errorf("lab: dkim: %w", err)
	}
	out, err := exec.CommandContext(ctx, bin, "-x", filepath.Join(dir, "opendkim.conf"), "-t", msgFile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: dkim: opendkim -t: %w%s", err, outputTail(out))
	}
	// One line per message: "opendkim: FILE: verification (s=SEL, d=DOMAIN, N-bit key) succeeded",
	// or what went wrong ("message not signed", "bad signature data", ...).
	res := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "opendkim: "+msgFile+": "))
	if !strings.HasPrefix(res, "verification (") || !strings.HasSuffix(res, ") succeeded") {
		return fmt.Errorf("lab: dkim: not verified: %s", res)
	}
	return nil
}

// WaitMessage waits until a message with the Message-ID id is in user's Maildir (new/ or cur/)
// and returns it.
func (r *Relay) WaitMessage(ctx context.Context, user, id string) ([]byte, error) {
	return waitMessage(ctx, r.Host, r.Maildir(user), id)
}

// waitMessage waits until a message with the Message-ID id is in the new/ or cur/ of the
// Maildir dir (a path inside h) and returns it.
func waitMessage(ctx context.Context, h *Host, dir, id string) ([]byte, error) {
	for {
		for _, sub := range []string{"new", "cur"} {
			files, _ := filepath.Glob(filepath.Join(h.Path(dir), sub, "*"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err == nil && headerValue(string(b[:bytesIndexOr(b, "\n\n")]), "Message-ID") == id {
					return b, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lab: host %q: no message %s in %s: %w", h.Name, id, dir, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// bytesIndexOr returns the index of sep in b, or len(b).
func bytesIndexOr(b []byte, sep string) int {
	if i := strings.Index(string(b), sep); i >= 0 {
		return i
	}
	return len(b)
}
