package sshops

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Entry is one synced directory: the same absolute path on both hosts.
type Entry struct {
	Path    string
	Delete  bool   // the final pass removes on new what is gone on old
	Owner   string // "user:", "user:group" or "user" for chown -R on new; "" leaves owners as copied
	Content bool   // verify compares sha256 of every file, not only metadata
	Xattrs  bool   // the copies keep ACLs and extended attributes (rsync -AX: a call per file on both hosts)
}

// Mode is how data moves from old to new.
type Mode string

// Transfer modes.
const (
	ModeDirect Mode = "direct" // old pushes to new with rsync and a one-time key
	ModeAgent  Mode = "agent"  // old pushes to new with rsync and the operator's forwarded agent
	ModeRelay  Mode = "relay"  // a tar stream old -> this machine -> new
)

// Progress reports a copy in flight.
type Progress struct {
	Path       string  // the entry
	Bytes      int64   // transferred so far (relay: tar stream bytes)
	TotalBytes int64   // estimate; 0 when unknown
	Files      int64   // files transferred so far (rsync), old's counted names in proportion to the bytes (tar stream; all when Done), or the entry's files when Done (relay)
	Rate       float64 // bytes per second
	ETA        time.Duration
	Done       bool
}

// withRate sets pr's Rate from its Bytes over elapsed, and its ETA from what is left of
// TotalBytes at that rate (none when done or the total is not known).
func (pr Progress) withRate(elapsed time.Duration) Progress {
	if s := elapsed.Seconds(); s > 0 {
		pr.Rate = float64(pr.Bytes) / s
	}
	if !pr.Done && pr.Rate > 0 && pr.TotalBytes > pr.Bytes {
		pr.ETA = time.Duration(float64(pr.TotalBytes-pr.Bytes) / pr.Rate * float64(time.Second))
	}
	return pr
}

// Pair is the two hosts of a migration.
type Pair struct {
	Old, New    *Client
	Mode        Mode           // "" means ModeDirect
	Log         io.Writer      // safe for concurrent use: the copies run side by side
	Progress    func(Progress) // nil ok; called from the copying goroutine
	AgentSocket string         // for ModeAgent; default os.Getenv("SSH_AUTH_SOCK")
	TempDir     string         // where temp dirs are made on the hosts; default /tmp

	// What one window's steps hand to the next on this Pair (see windowState).
	window windowState
	// prepared is the final Copy's transfer set up ahead of the window (Prepare).
	prepared *transfer

	// testSplitWalk, when set, makes Verify walk new with splitManifestCmd whatever the size.
	testSplitWalk bool
	// testHookAbandon, when set, makes Copy skip its cleanup (to simulate a crash).
	testHookAbandon bool
	// testReachPort, when set, is the port of new that preflight checks old reaches.
	testReachPort int
	// testExtraTools are commands preflight also requires on both hosts (to test missing ones).
	testExtraTools []string
}

// onetimeMarker starts the comment of one-time keys and the names of temp dirs.
const onetimeMarker = "cutover-onetime-"

func (p *Pair) tempDir() string {
	if p.TempDir == "" {
		return "/tmp"
	}
	return strings.TrimSuffix(p.TempDir, "/")
}

func (p *Pair) mode() Mode {
	if p.Mode == "" {
		return ModeDirect
	}
	return p.Mode
}

func (p *Pair) logf(format string, args ...any) {
	newLineLog(p.Log, "cutover").printf(format, args...)
}

func (p *Pair) check(entries []Entry) error {
	if p.Old == nil || p.New == nil {
		return errors.New("sshops: pair needs both Old and New clients")
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Path, "/") || e.Path == "/" || strings.Contains(e.Path, "\x00") {
			return fmt.Errorf("sshops: entry %q: want an absolute path other than /", e.Path)
		}
	}
	switch p.mode() {
	case ModeDirect, ModeAgent, ModeRelay:
		return nil
	}
	return fmt.Errorf("sshops: unknown transfer mode %q (want direct, agent or relay)", p.Mode)
}

// cleanupCtx is a context for cleanup that survives the cancellation of ctx.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// Copy copies every entry from old to new. The initial pass (final false) never deletes; the
// final pass deletes on new what is gone on old for entries with Delete. Temporary keys and
// directories are removed before Copy returns, also on failure and cancellation.
func (p *Pair) Copy(ctx context.Context, entries []Entry, final bool) (err error) {
	if err := p.check(entries); err != nil {
		return err
	}
	pass := "initial"
	if final {
		pass = "final"
	}
	if err := p.removeOldManifests(ctx, p.window.reset()); err != nil {
		return err
	}
	if final {
		// Verify names owners from both hosts' user and group tables: read them now, so that
		// Verify starts with its manifests (a failure here is Verify's to report).
		var wg sync.WaitGroup
		defer wg.Wait()
		for _, c := range []*Client{p.Old, p.New} {
			wg.Go(func() { _, _ = c.idNames(ctx) })
		}
	}
	// Old is frozen once the service is stopped: its manifests are taken while the copy runs
	// (once the transfer is set up: that is on the window's path), and Verify only has to
	// walk new.
	var stopOld func(failed bool) error
	takeOld := func() {
		if final {
			stopOld = p.takeOldManifests(ctx, entries)
		}
	}
	defer func() {
		if stopOld != nil {
			err = errors.Join(err, stopOld(err != nil))
		}
	}()
	// The entries' directories are made on new (in the session that authorizes the one-time
	// key: each session is a set-up in the window), which also names those that are empty:
	// the initial pass streams those with tar (see tarPush).
	mkdir := emptyDirsCmd(entries)
	switch p.mode() {
	case ModeRelay:
		if _, err := p.New.output(ctx, mkdir, mkdir, nil); err != nil {
			return err
		}
		takeOld()
		for _, e := range entries {
			if err := p.relay(ctx, e, final); err != nil {
				return err
			}
		}
		return nil
	case ModeAgent:
		if err := p.Old.forwardAgent(p.AgentSocket); err != nil {
			return err
		}
	}
	var t *transfer
	var out []byte
	if final && p.prepared != nil {
		t, p.prepared = p.prepared, nil
		p.logf("final sync through the transfer set up ahead (%s)", t.marker)
	} else {
		t, out, err = p.setupTransfer(ctx, mkdir)
	}
	if t != nil && !p.testHookAbandon {
		defer func() { err = errors.Join(err, p.removeTransfer(ctx, t.marker)) }()
	}
	if err != nil {
		return err
	}
	takeOld()
	empty := parseEmptyDirs(out)
	// The entries are copied side by side: each rsync costs a connection
	// set-up, and in the window the small paths (acme, dkimkeys, spool)
	// would otherwise add theirs to the downtime one after another. The
	// first failure stops the others; its error is the one returned.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		slots    = make(chan struct{}, maxParallelCopies)
	)
	for _, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			if cctx.Err() != nil {
				return
			}
			start := time.Now()
			push, how := p.rsync, string(p.mode())
			if !final && empty[e.Path] && !e.Xattrs {
				push, how = func(ctx context.Context, t *transfer, e Entry, _ bool) error { return p.tarPush(ctx, t, e) }, how+", tar stream"
			}
			p.logf("%s sync of %s (%s)", pass, e.Path, how)
			if err := push(cctx, t, e, final); err != nil {
				once.Do(func() { firstErr = err; cancel() })
				return
			}
			p.logf("%s sync of %s done in %s", pass, e.Path, time.Since(start).Round(time.Millisecond))
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return fmt.Errorf("sshops: %s sync: %w", pass, context.Cause(ctx))
	}
	return firstErr
}

// maxParallelCopies bounds the rsyncs of one Copy running at once (sshd's
// MaxSessions and MaxStartups defaults are 10).
const maxParallelCopies = 4

// transfer is the state on the hosts for one direct or agent Copy.
type transfer struct {
	marker string // "cutover-onetime-<hex>", the temp dir's base name and the key's comment
	dir    string // temp dir on old
	sshCmd string // ssh command for rsync -e and the tar stream
}

// controlSocket is the socket of the transfer's ssh master connection, in its temp dir.
func (t *transfer) controlSocket() string { return t.dir + "/ctl" }

// maxControlPath is the longest control socket path used (sun_path is 108 bytes, and ssh
// appends a temporary suffix while it binds); with a longer TempDir each ssh connects on its own.
const maxControlPath = 80

// masterPersist is how long (seconds) the master connection waits for a client (Prepare sets it
// up before the disable hook, which may take a while) and outlives its last one when nobody stops
// it (a killed run); removeTransfer and Cleanup stop it at once. Without it ssh connects anew.
const masterPersist = "120"

// startMaster starts on old the ssh master connection through which every rsync and tar stream
// of this Copy reaches new: one key exchange and authentication for all entries instead of one
// per entry, each a cost in the window. base is the ssh command without a host. The master
// goes to the background once authenticated (ControlPersist) and outlives this session.
func (p *Pair) startMaster(ctx context.Context, t *transfer, base string) error {
	t.sshCmd = base
	if len(t.controlSocket()) > maxControlPath {
		p.logf("temp dir %s is too long for an ssh control socket: each entry connects on its own", t.dir)
		return nil
	}
	ctl, errFile := shellQuote(t.controlSocket()), shellQuote(t.dir+"/master.err")
	cmd := fmt.Sprintf("%s -o ControlMaster=yes -o ControlPath=%s -o ControlPersist=%s -N -- %s </dev/null >/dev/null 2>%s || { cat -- %s >&2; exit 1; }",
		base, ctl, masterPersist, shellQuote(p.New.Endpoint().sshDest()), errFile, errFile)
	spec := runSpec{cmd: cmd, display: cmd, o: RunOptions{Quiet: true}, stdout: io.Discard}
	if p.mode() == ModeAgent {
		spec.prepare = p.Old.requestAgent
	}
	if _, err := p.Old.run(ctx, spec); err != nil {
		return fmt.Errorf("sshops: connecting old to new: %w", err)
	}
	// ControlMaster=no: should the master be gone, ssh connects on its own.
	t.sshCmd = base + " -o ControlMaster=no -o ControlPath=" + ctl
	return nil
}

// stopMasterCmd stops the master connection of the transfer in dir, if it runs.
func stopMasterCmd(dir string) string {
	return fmt.Sprintf("if [ -S %[1]s ]; then ssh -F /dev/null -o ControlPath=%[1]s -O exit cutover-master >/dev/null 2>&1 || true; fi", shellQuote(dir+"/ctl"))
}

// setupTransfer creates the temp dir on old with new's host key as known_hosts and, for
// ModeDirect, a one-time key authorized on new for old's address only; it runs newCmd on new
// in the same session and returns its output. On error the returned transfer (if not nil) still
// needs removeTransfer.
func (p *Pair) setupTransfer(ctx context.Context, newCmd string) (t *transfer, newOut []byte, err error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, nil, fmt.Errorf("sshops: %w", err)
	}
	t = &transfer{marker: onetimeMarker + hex.EncodeToString(rnd[:])}
	t.dir = p.tempDir() + "/" + t.marker
	newEp := p.New.Endpoint()
	khLine := knownhosts.Line([]string{knownhosts.Normalize(newEp.hostPort())}, p.New.HostKey())
	kh := t.dir + "/known_hosts"
	// new and old are set up side by side: each command is a session set-up in the window.
	var newErr error
	var wg sync.WaitGroup
	if p.mode() == ModeAgent {
		wg.Go(func() { newOut, newErr = p.New.output(ctx, newCmd, newCmd, nil) })
		cmd := fmt.Sprintf("umask 077 && mkdir -m 700 -- %s && printf '%%s\\n' %s > %s",
			shellQuote(t.dir), shellQuote(khLine), shellQuote(kh))
		_, oldErr := p.Old.output(ctx, cmd, cmd, nil)
		wg.Wait()
		if err := errors.Join(newErr, oldErr); err != nil {
			return t, nil, err
		}
		return t, newOut, p.startMaster(ctx, t, sshCommand(newEp.port(), "", kh, ""))
	}

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("sshops: one-time key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, t.marker)
	if err != nil {
		return nil, nil, fmt.Errorf("sshops: one-time key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("sshops: one-time key: %w", err)
	}
	oldAddr := p.Old.Endpoint().Addr
	authLine := fmt.Sprintf(`from="%s",restrict %s %s`, oldAddr, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))), t.marker)
	addKey := fmt.Sprintf(`umask 077 && mkdir -p ~/.ssh && printf '%%s\n' %s >> ~/.ssh/authorized_keys`, shellQuote(authLine))
	id := t.dir + "/id"
	// The private key travels on stdin only: the command line (logged, in errors) never holds it.
	// The same command lists old's addresses: when old's address is configured there, old's ssh
	// binds to it, so that new sees the address its from= option names.
	write := fmt.Sprintf("umask 077 && mkdir -m 700 -- %s && cat > %s && printf '%%s\\n' %s > %s && { ip -o addr show 2>/dev/null || true; }",
		shellQuote(t.dir), shellQuote(id), shellQuote(khLine), shellQuote(kh))
	wg.Go(func() {
		// The key is authorized first: newCmd's output is all the session prints.
		cmd := addKey + " && " + newCmd
		if newOut, newErr = p.New.output(ctx, cmd, cmd, nil); newErr == nil {
			p.New.log.printf("authorized one-time key %s for %s", t.marker, oldAddr)
		}
	})
	out, writeErr := p.Old.output(ctx, write, write, strings.NewReader(string(pem.EncodeToMemory(block))))
	wg.Wait()
	if err := errors.Join(newErr, writeErr); err != nil {
		return t, nil, err
	}
	p.Old.log.printf("wrote one-time key and known_hosts to %s", t.dir)
	bind := ""
	if hasAddress(out, oldAddr) {
		bind = oldAddr.String()
	}
	return t, newOut, p.startMaster(ctx, t, sshCommand(newEp.port(), id, kh, bind))
}

// hasAddress reports whether the output of `ip -o addr show` lists addr on an interface.
func hasAddress(ipOut []byte, addr netip.Addr) bool {
	for _, l := range strings.Split(string(ipOut), "\n") {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				if pfx, err := netip.ParsePrefix(f[i+1]); err == nil && pfx.Addr() == addr {
					return true
				}
			}
		}
	}
	return false
}

// removeTransfer removes the one-time key with marker from new's authorized_keys and the temp dir
// from old (stopping its ssh master connection), and checks that both are gone; on a context
// that survives the cancellation of ctx, as every path that set a transfer up must remove it.
func (p *Pair) removeTransfer(ctx context.Context, marker string) error {
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	var keyErr, dirErr error
	var wg sync.WaitGroup
	if p.mode() == ModeDirect {
		wg.Go(func() {
			if _, err := p.New.output(ctx, removeKeyCmd(marker), removeKeyCmd(marker), nil); err != nil {
				keyErr = fmt.Errorf("sshops: removing one-time key %s from new: %w", marker, err)
			} else {
				p.New.log.printf("removed one-time key %s", marker)
			}
		})
	}
	dir := p.tempDir() + "/" + marker
	rm := fmt.Sprintf("%s; rm -rf -- %s && ! test -e %s", stopMasterCmd(dir), shellQuote(dir), shellQuote(dir))
	if _, err := p.Old.output(ctx, rm, rm, nil); err != nil {
		dirErr = fmt.Errorf("sshops: removing %s from old: %w", dir, err)
	} else {
		p.Old.log.printf("removed %s", dir)
	}
	wg.Wait()
	return errors.Join(keyErr, dirErr)
}

// removeKeyCmd removes every authorized_keys line containing pattern (a plain word) and fails
// unless none is left.
func removeKeyCmd(pattern string) string {
	return fmt.Sprintf(`f=~/.ssh/authorized_keys; if [ -f "$f" ] && grep -qF -- %[1]s "$f"; then sed -i --follow-symlinks '/%[1]s/d' "$f"; fi; ! grep -qsF -- %[1]s "$f"`, pattern)
}

// rsync's exit statuses for files that vanished during the transfer, and
// for a partial transfer (some files or attributes not copied).
const (
	rsyncVanished = 24
	rsyncPartial  = 23
)

// isRsyncError reports whether an output line of rsync is an error report
// about a file (not the final summary line).
func isRsyncError(line string) bool {
	line = strings.TrimSpace(line)
	return (strings.HasPrefix(line, "rsync: ") || strings.HasPrefix(line, "rsync error: ") || strings.HasPrefix(line, "file has vanished: ")) &&
		!strings.Contains(line, "some files/attrs were not transferred") && !strings.Contains(line, "some files vanished before")
}

// isVanished reports whether an rsync error line is about a file that no
// longer exists on the sending side.
// Only the calls rsync makes on a file it already listed count: a missing
// entry root (change_dir, link_stat) is a real error.
func isVanished(line string) bool {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "file has vanished: ") {
		return true
	}
	if !strings.Contains(line, "[sender]") || !strings.HasSuffix(line, "No such file or directory (2)") {
		return false
	}
	for _, call := range []string{"xattr", "_acl_", "send_files failed to open"} {
		if strings.Contains(line, call) {
			return true
		}
	}
	return false
}

// rsync runs rsync on old for one entry.
func (p *Pair) rsync(ctx context.Context, t *transfer, e Entry, final bool) error {
	args := rsyncArgs(t.sshCmd, e, p.New.Endpoint().rsyncDest(), final)
	cmd := "exec " + shellJoin(args)
	var (
		mu         sync.Mutex // onLine runs for stdout and stderr
		last       Progress
		hardErrors []string // rsync errors other than files vanishing under it
		deleted    int
	)
	// Per-file lines ("deleting ...") stay out of the log: a large store would flood it. They
	// are counted, and the last ones are in the Result's tail; every other line is logged.
	onLine := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		if isRsyncError(line) && !isVanished(line) {
			hardErrors = append(hardErrors, line)
		}
		pr, ok := parseProgress(line)
		if !ok {
			if strings.HasPrefix(line, "deleting ") {
				deleted++
			} else if strings.TrimSpace(line) != "" {
				p.Old.log.line(line)
			}
			return
		}
		pr.Path = e.Path
		last = pr
		if p.Progress != nil {
			p.Progress(pr)
		}
	}
	spec := runSpec{cmd: cmd, display: cmd, onLine: onLine, o: RunOptions{Quiet: true}}
	if p.mode() == ModeAgent {
		spec.prepare = p.Old.requestAgent
	}
	if _, err := p.Old.run(ctx, spec); err != nil {
		// Exit 24: files vanished between rsync's listing and their copy. On a
		// live mail server that is normal (Dovecot renames and deletes while
		// the initial pass runs); in the final pass the service is stopped and
		// verify decides whether both sides match.
		// Exit 23 with only "No such file or directory" errors is the same
		// thing seen by -X (listing the xattrs of a file that just went).
		var ee *ExitError
		if !errors.As(err, &ee) || ctx.Err() != nil || len(hardErrors) > 0 ||
			(ee.Result.ExitStatus != rsyncVanished && ee.Result.ExitStatus != rsyncPartial) {
			return err
		}
		p.logf("warning: some files under %s vanished while they were copied (rsync exit %d): the service was still writing there", e.Path, ee.Result.ExitStatus)
	}
	if !last.Done && p.Progress != nil {
		last.Path, last.Done, last.ETA, last.TotalBytes = e.Path, true, 0, last.Bytes
		p.Progress(last)
	}
	if deleted > 0 {
		p.logf("%s: deleted %d path(s) on new that are gone on old", e.Path, deleted)
	}
	return nil
}

// forwardAgent registers forwarding of the agent at sock (default SSH_AUTH_SOCK) on the client.
func (c *Client) forwardAgent(sock string) error {
	c.fwdOnce.Do(func() {
		if sock == "" {
			sock = os.Getenv("SSH_AUTH_SOCK")
		}
		if sock == "" {
			c.fwdErr = errors.New("sshops: agent transfer: no agent socket (SSH_AUTH_SOCK is not set)")
			return
		}
		if err := agent.ForwardToRemote(c.conn, sock); err != nil {
			c.fwdErr = fmt.Errorf("sshops: agent transfer: forwarding %q: %w", sock, err)
		}
	})
	return c.fwdErr
}

// requestAgent asks sshd for agent forwarding on the first session of the connection: sshd
// grants it once per connection, and later sessions get the same SSH_AUTH_SOCK.
func (c *Client) requestAgent(s *ssh.Session) error {
	c.agentMu.Lock()
	defer c.agentMu.Unlock()
	if c.agentOn {
		return nil
	}
	if err := agent.RequestAgentForwarding(s); err != nil {
		return err
	}
	c.agentOn = true
	return nil
}

// Prepare sets up the final Copy's transfer ahead of the window: new's directories, the
// one-time key and old's ssh master connection to new (about half a second of SSH sessions and
// key exchange that the window then does not wait for). The next final Copy uses it and removes
// it; DropPrepared (Close) removes one that no Copy used, Cleanup one of a killed run. In relay
// mode there is nothing to set up.
func (p *Pair) Prepare(ctx context.Context, entries []Entry) error {
	if err := p.check(entries); err != nil {
		return err
	}
	if err := p.DropPrepared(ctx); err != nil {
		return err
	}
	switch p.mode() {
	case ModeRelay:
		return nil
	case ModeAgent:
		if err := p.Old.forwardAgent(p.AgentSocket); err != nil {
			return err
		}
	}
	t, _, err := p.setupTransfer(ctx, emptyDirsCmd(entries))
	if err != nil {
		if t != nil {
			err = errors.Join(err, p.removeTransfer(ctx, t.marker))
		}
		return err
	}
	p.prepared = t
	return nil
}

// DropPrepared removes the transfer Prepare set up, if no Copy used it.
func (p *Pair) DropPrepared(ctx context.Context) error {
	t := p.prepared
	if t == nil {
		return nil
	}
	p.prepared = nil
	return p.removeTransfer(ctx, t.marker)
}

// Cleanup removes what a crashed run left behind on both hosts: one-time keys in the SSH user's
// authorized_keys, and cutover temp dirs and old's manifest files (onetimeMarker*) in TempDir.
// It is safe when nothing is left. It must not run between a final Copy and the Verify that
// reads that Copy's manifests.
func (p *Pair) Cleanup(ctx context.Context) error {
	if p.Old == nil || p.New == nil {
		return errors.New("sshops: pair needs both Old and New clients")
	}
	var errs []error
	for _, c := range []*Client{p.Old, p.New} {
		// A killed run may have left its rsync and ssh running (they carry
		// the marker in their command line: the key file): stop them first,
		// so that no orphan keeps writing after verify or fixup. The [0-9a-f]
		// keeps pgrep from matching this very shell's command line.
		// Only processes in this shell's mount namespace: on one machine
		// with several hosts in their own namespaces (the test lab), the
		// others' transfers are not ours.
		cmd := fmt.Sprintf(`ns=$(readlink /proc/$$/ns/mnt); for p in $(pgrep -f -- '%[1]s[0-9a-f]'); do [ "$(readlink /proc/$p/ns/mnt 2>/dev/null)" = "$ns" ] && kill -KILL "$p" 2>/dev/null && echo "killed left-over transfer process $p"; done; f=~/.ssh/authorized_keys; n=$(grep -csF -- %[1]s "$f" || true); echo "keys ${n:-0}"; %[2]s || exit 1; for d in %[3]s/%[1]s*; do [ -e "$d" ] || continue; rm -rf -- "$d" && echo "removed $d" || exit 1; done`,
			onetimeMarker, removeKeyCmd(onetimeMarker), shellQuote(p.tempDir()))
		out, err := c.output(ctx, cmd, "cleanup of one-time keys and "+p.tempDir()+"/"+onetimeMarker+"*", nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, l := range trimLines(out) {
			if l == "keys 0" {
				continue
			}
			if n, ok := strings.CutPrefix(l, "keys "); ok {
				c.log.printf("removed %s left-over one-time key(s) from authorized_keys", n)
				continue
			}
			c.log.line(l)
		}
	}
	return errors.Join(errs...)
}

// Verify compares manifests of every entry on both hosts and returns a *VerifyError listing the
// first differences. Paths only on new count as differences for entries with Delete.
func (p *Pair) Verify(ctx context.Context, entries []Entry) error {
	if err := p.check(entries); err != nil {
		return err
	}
	if !p.window.hasOld() {
		p.removeStaleManifests(ctx)
	}
	// The entries are compared side by side, as they are copied.
	found := make([][]Difference, len(entries))
	totals := make([]int, len(entries))
	errs := make([]error, len(entries))
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxParallelCopies)
	for i, e := range entries {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			found[i], totals[i], errs[i] = p.verifyEntry(ctx, e)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ve := &VerifyError{}
	for i, d := range found {
		ve.Differences = append(ve.Differences, d...)
		ve.Total += totals[i]
	}
	if ve.Total == 0 {
		return nil
	}
	ve.Differences = ve.Differences[:min(len(ve.Differences), maxDifferences)]
	return ve
}

// manifest reads the manifest of dir on the host.
func (c *Client) manifest(ctx context.Context, dir string, content bool) (manifest, error) {
	out, err := c.output(ctx, manifestCmd(dir, content), "manifest of "+dir, nil)
	if err != nil {
		return nil, err
	}
	return parseManifest(out)
}

// manifests reads the manifest of dir on both hosts at once.
func (p *Pair) manifests(ctx context.Context, dir string, content bool) (old, new manifest, err error) {
	var wg sync.WaitGroup
	var oerr, nerr error
	wg.Go(func() { old, oerr = p.Old.manifest(ctx, dir, content) })
	wg.Go(func() { new, nerr = p.New.manifest(ctx, dir, content) })
	wg.Wait()
	if err := errors.Join(oerr, nerr); err != nil {
		return nil, nil, err
	}
	return old, new, nil
}

// OwnerError lists paths under an entry that do not have the expected owner after Fixup's chown.
type OwnerError struct {
	Path  string   // the entry
	Owner string   // "user:group" expected
	Bad   []string // "path (user:group)", the first 20
}

func (e *OwnerError) Error() string {
	return fmt.Sprintf("sshops: fixup %q: not owned by %s after chown: %s", e.Path, e.Owner, strings.Join(e.Bad, ", "))
}

// Fixup makes every path under an entry with an Owner owned by it on new (user, and group when
// Owner names or implies one) and checks the result; a path left with another owner is an
// *OwnerError. After a Verify on this Pair it reads the owners from new's manifest, chowns only
// the paths with another owner and checks those; otherwise it runs chown -R and walks the
// entry to check.
func (p *Pair) Fixup(ctx context.Context, entries []Entry) error {
	if err := p.check(entries); err != nil {
		return err
	}
	for _, e := range entries {
		if e.Owner == "" {
			continue
		}
		if s, ok := p.window.takeOwners(e); ok {
			if len(s.bad) > 0 {
				if err := p.fixOwners(ctx, e.Path, e.Owner, s.want, s.bad); err != nil {
					return err
				}
			}
			p.New.log.printf("%s owned by %s (%d path(s) changed)", e.Path, e.Owner, len(s.bad))
			continue
		}
		user, group, _ := strings.Cut(e.Owner, ":")
		if user == "" {
			return fmt.Errorf("sshops: fixup %q: owner %q has no user", e.Path, e.Owner)
		}
		cmd := fmt.Sprintf("chown -R -h -- %s %s", shellQuote(e.Owner), shellQuote(e.Path))
		if _, err := p.New.output(ctx, cmd, cmd, nil); err != nil {
			return err
		}
		if err := p.checkOwners(ctx, e.Path, user, group, strings.Contains(e.Owner, ":")); err != nil {
			return err
		}
		p.New.log.printf("%s owned by %s", e.Path, e.Owner)
	}
	return nil
}

// checkOwners lists paths under dir on new not owned by user (and group: the given one, or the
// user's login group when group is "" and withGroup).
func (p *Pair) checkOwners(ctx context.Context, dir, user, group string, withGroup bool) error {
	g := shellQuote(group)
	if group == "" {
		g = `"$(id -gn -- ` + shellQuote(user) + `)"`
	}
	cond := "! -user " + shellQuote(user)
	if withGroup {
		cond = `\( ! -user ` + shellQuote(user) + ` -o ! -group "$g" \)`
	}
	cmd := fmt.Sprintf(`g=%s && [ -n "$g" ] && printf '%%s\0' "$g" && find %s %s -printf '%%u:%%g\0%%p\0'`, g, shellQuote(dir), cond)
	out, err := p.New.output(ctx, cmd, "owner check of "+dir, nil)
	if err != nil {
		return err
	}
	fields := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	want := user
	if withGroup {
		want += ":" + fields[0]
	}
	if len(fields) < 3 {
		return nil
	}
	oe := &OwnerError{Path: dir, Owner: want}
	for i := 1; i+1 < len(fields) && len(oe.Bad) < maxDifferences; i += 2 {
		oe.Bad = append(oe.Bad, fmt.Sprintf("%s (%s)", strconv.Quote(fields[i+1]), fields[i]))
	}
	return oe
}
