package sshops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/internal/lab"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestVerifyCatchesDifferences(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeDirect)
	mustExec(t, e.lab.Old, `set -e; cd /home/vmail/mail; printf hello > 'a:2,S'; printf bye > b; mkdir d; printf same > d/c`)
	entry := Entry{Path: maildir, Delete: true, Content: true}
	if err := e.pair.Copy(t.Context(), []Entry{entry}, true); err != nil {
		t.Fatal(err)
	}
	if err := e.pair.Verify(t.Context(), []Entry{entry}); err != nil {
		t.Fatalf("verify right after the copy: %v", err)
	}
	// Same size and mtime, other content; one file gone; one extra; times restored so only the
	// intended differences remain.
	mustExec(t, e.lab.New, `set -e; cd /home/vmail/mail; t=$(stat -c %Y .); ta=$(stat -c %Y 'a:2,S')
printf HELLO > 'a:2,S'; touch -d @$ta 'a:2,S'; rm b; printf x > extra; touch -d @$t .`)
	for _, tc := range []struct {
		desc  string
		entry Entry
		want  string
	}{
		{desc: "content", entry: entry, want: fmt.Sprintf("sshops: verify: 3 difference(s) between old and new"+
			"\n\t/home/vmail/mail/a:2,S: sha256 %s on old, %s on new"+
			"\n\t/home/vmail/mail/b: missing on new"+
			"\n\t/home/vmail/mail/extra: only on new", sum("hello"), sum("HELLO"))},
		{desc: "metadata only", entry: Entry{Path: maildir, Delete: true}, want: "sshops: verify: 2 difference(s) between old and new" +
			"\n\t/home/vmail/mail/b: missing on new" +
			"\n\t/home/vmail/mail/extra: only on new"},
		{desc: "without delete extra paths are fine", entry: Entry{Path: maildir}, want: "sshops: verify: 1 difference(s) between old and new" +
			"\n\t/home/vmail/mail/b: missing on new"},
		{desc: "missing on old", entry: Entry{Path: "/var/lib/acme/nope"}, want: `sshops: verify: "/var/lib/acme/nope" does not exist on old`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := e.pair.Verify(t.Context(), []Entry{tc.entry})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error\n%v\nwant\n%s", err, tc.want)
			}
		})
	}
	// More than 20 differences: the first 20 are listed.
	mustExec(t, e.lab.New, `cd /home/vmail/mail && for i in $(seq 30); do printf x > "more$i"; done`)
	var ve *VerifyError
	if err := e.pair.Verify(t.Context(), []Entry{entry}); !errors.As(err, &ve) || ve.Total < 33 || len(ve.Differences) != 20 {
		t.Fatalf("want a *VerifyError with >= 33 differences, 20 listed; got %v", err)
	}
}

func TestFixupOwners(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeRelay)
	// chatmail #464: keys copied as root must end up owned by opendkim (uid 6001 on new).
	mustExec(t, e.lab.Old, `set -e; printf k > /etc/dkimkeys/opendkim.private; mkdir /etc/dkimkeys/sub; ln -s /etc/shadow /etc/dkimkeys/sub/link`)
	entries := []Entry{{Path: "/etc/dkimkeys", Owner: "opendkim:"}}
	if err := e.pair.Copy(t.Context(), entries, false); err != nil {
		t.Fatal(err)
	}
	if err := e.pair.Fixup(t.Context(), entries); err != nil {
		t.Fatal(err)
	}
	out := mustExec(t, e.lab.New, `stat -c '%u:%g %n' /etc/dkimkeys /etc/dkimkeys/opendkim.private /etc/dkimkeys/sub/link /etc/shadow`)
	if want := "6001:6001 /etc/dkimkeys\n6001:6001 /etc/dkimkeys/opendkim.private\n6001:6001 /etc/dkimkeys/sub/link\n0:42 /etc/shadow\n"; out != want {
		t.Errorf("after fixup:\n%s\nwant\n%s", out, want)
	}
	// The check after chown finds what is still owned by someone else.
	mustExec(t, e.lab.New, `chown root:root /etc/dkimkeys/opendkim.private && chown opendkim:vmail /etc/dkimkeys/sub`)
	for _, tc := range []struct {
		desc, user, group string
		withGroup         bool
		want              string
	}{
		{desc: "login group", user: "opendkim", withGroup: true,
			want: `sshops: fixup "/etc/dkimkeys": not owned by opendkim:opendkim after chown: "/etc/dkimkeys/sub" (opendkim:vmail), "/etc/dkimkeys/opendkim.private" (root:root)`},
		{desc: "named group", user: "opendkim", group: "vmail", withGroup: true,
			want: `sshops: fixup "/etc/dkimkeys": not owned by opendkim:vmail after chown: "/etc/dkimkeys" (opendkim:opendkim), "/etc/dkimkeys/sub/link" (opendkim:opendkim), "/etc/dkimkeys/opendkim.private" (root:root)`},
		{desc: "user only", user: "opendkim",
			want: `sshops: fixup "/etc/dkimkeys": not owned by opendkim after chown: "/etc/dkimkeys/opendkim.private" (root:root)`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := e.pair.checkOwners(t.Context(), "/etc/dkimkeys", tc.user, tc.group, tc.withGroup)
			if err == nil || sortedBad(err.Error()) != sortedBad(tc.want) {
				t.Errorf("error\n%v\nwant\n%s", err, tc.want)
			}
		})
	}
	err := e.pair.Fixup(t.Context(), []Entry{{Path: "/etc/dkimkeys", Owner: "nosuchuser:"}})
	if want := `sshops: new: "chown -R -h -- nosuchuser: /etc/dkimkeys" exited with status 1: chown: invalid spec: 'nosuchuser:'`; err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
}

// sortedBad makes an OwnerError text independent of find's order.
func sortedBad(s string) string {
	head, list, ok := strings.Cut(s, "after chown: ")
	if !ok {
		return s
	}
	items := strings.Split(list, ", ")
	for i := range items {
		for j := i + 1; j < len(items); j++ {
			if items[j] < items[i] {
				items[i], items[j] = items[j], items[i]
			}
		}
	}
	return head + "after chown: " + strings.Join(items, ", ")
}

// bigTree writes a 300 MB incompressible file on old so that a copy lasts long enough to be
// interrupted.
const bigTree = `set -e; head -c 300M /dev/urandom > /home/vmail/mail/big; printf x > /home/vmail/mail/small`

func TestDirectCleanup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeDirect)
	mustExec(t, e.lab.Old, bigTree)
	entries := []Entry{{Path: maildir}}
	rsyncs := func() string {
		// rsync or the tar stream's ssh of this test, found by its temp dir in the command line.
		out, _ := e.lab.Old.Exec(context.Background(), "pgrep -f '^(rsync|ssh) .*"+e.pair.tempDir()+"' || true")
		return strings.TrimSpace(string(out))
	}

	for _, tc := range []struct {
		desc   string
		onNew  string // prepares new's copy of the missing directory
		status int
	}{
		// An empty directory on new: the initial pass streams with tar, which cannot cd.
		{desc: "failure of the tar stream", onNew: "rm -rf /var/lib/acme/missing", status: 2},
		// A directory with files: rsync, which cannot read the source.
		{desc: "failure", onNew: "mkdir -p /var/lib/acme/missing && touch /var/lib/acme/missing/f", status: 23},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			mustExec(t, e.lab.New, tc.onNew)
			err := e.pair.Copy(t.Context(), []Entry{{Path: "/var/lib/acme/missing"}}, false)
			var ee *ExitError
			if !errors.As(err, &ee) || ee.Role != "old" || ee.Result.ExitStatus != tc.status {
				t.Fatalf("error %v, want an *ExitError on old with status %d", err, tc.status)
			}
			if l := e.leftovers(t, e.pair); len(l) > 0 {
				t.Errorf("left over after a failed copy: %q", l)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(e.log.String(), "PRIVATE KEY") {
				t.Errorf("a private key shows in the error or the log")
			}
		})
	}

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e.pair.Progress = func(Progress) { cancel() }
		defer func() { e.pair.Progress = nil }()
		err := e.pair.Copy(ctx, entries, false)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if l := e.leftovers(t, e.pair); len(l) > 0 {
			t.Errorf("left over after a cancelled copy: %q", l)
		}
		if r := rsyncs(); r != "" {
			t.Errorf("transfer still running on old: %s", r)
		}
	})

	t.Run("crash then Cleanup", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		e.pair.Progress = func(Progress) { cancel() }
		e.pair.testHookAbandon = true
		defer func() { e.pair.Progress, e.pair.testHookAbandon = nil, false }()
		if err := e.pair.Copy(ctx, entries, false); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		l := e.leftovers(t, e.pair)
		if len(l) != 2 || !strings.HasPrefix(l[0], "new authorized_keys: from=\""+e.lab.Old.Addr.String()+"\",restrict ssh-ed25519 ") || !strings.HasPrefix(l[1], "temp dir: "+onetimeMarker) {
			t.Fatalf("left over after the simulated crash: %q, want the key on new and the temp dir", l)
		}
		// The next run: new connections, Cleanup.
		p2 := e.connect(t, ModeDirect)
		p2.TempDir = e.pair.TempDir
		if err := p2.Cleanup(t.Context()); err != nil {
			t.Fatal(err)
		}
		if l := e.leftovers(t, e.pair); len(l) > 0 {
			t.Errorf("left over after Cleanup: %q", l)
		}
		if !strings.Contains(e.log.String(), "[new] removed 1 left-over one-time key(s) from authorized_keys") {
			t.Errorf("log does not report the removed key")
		}
		// Cleanup with nothing left is fine, and the next copy works.
		if err := p2.Cleanup(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := p2.Copy(t.Context(), entries, true); err != nil {
			t.Fatal(err)
		}
		if err := p2.Verify(t.Context(), entries); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRelayCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeRelay)
	mustExec(t, e.lab.Old, bigTree)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	e.pair.Progress = func(pr Progress) {
		if pr.Bytes > 0 {
			cancel()
		}
	}
	err := e.pair.Copy(ctx, []Entry{{Path: maildir}}, false)
	if want := "sshops: relay of /home/vmail/mail: context canceled"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	time.Sleep(time.Second)
	for _, h := range []struct {
		name string
		exec func(context.Context, string) ([]byte, error)
	}{{"old", e.lab.Old.Exec}, {"new", e.lab.New.Exec}} {
		// Only processes in this host's mount namespace: other tests relay at the same time.
		out, _ := h.exec(context.Background(), "pgrep --ns $$ --nslist mnt -f '^tar --(create|extract) --file=-' || true")
		if s := strings.TrimSpace(string(out)); s != "" {
			t.Errorf("tar still running on %s: %s", h.name, s)
		}
	}
}

func TestManySmallFiles(t *testing.T) {
	for _, mode := range []Mode{ModeDirect, ModeRelay} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, mode)
			mustExec(t, e.lab.Old, `set -e; cd /home/vmail/mail; i=0; while [ $i -lt 100 ]; do mkdir "d$i"; i=$((i+1)); done
i=0; while [ $i -lt 10000 ]; do printf 'message %d' $i > "d$((i % 100))/17000$i.M$i.host:2,S"; i=$((i+1)); done; chown -R vmail: .`)
			entries := []Entry{{Path: maildir, Delete: true, Content: true, Owner: "vmail:"}}
			start := time.Now()
			if err := e.pair.Copy(t.Context(), entries, false); err != nil {
				t.Fatal(err)
			}
			copied := time.Since(start)
			if err := e.pair.Verify(t.Context(), entries); err != nil {
				t.Fatal(err)
			}
			n, err := countFiles(e.lab.New.Path(maildir))
			if err != nil || n != 10000 {
				t.Errorf("%d files on new (%v), want 10000", n, err)
			}
			t.Logf("%s: 10,000 files copied in %s, verified with content in %s", mode, copied.Round(time.Millisecond), (time.Since(start) - copied).Round(time.Millisecond))
		})
	}
}

func countFiles(dir string) (int, error) {
	n := 0
	ds, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, d := range ds {
		fs, err := os.ReadDir(dir + "/" + d.Name())
		if err != nil {
			return 0, err
		}
		n += len(fs)
	}
	return n, nil
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeDirect)
	mustExec(t, e.lab.Old, `head -c 1M /dev/urandom > /home/vmail/mail/m; mkdir -p /etc/dkimkeys`)
	entries := []Entry{{Path: maildir}, {Path: "/etc/dkimkeys"}}
	r, err := e.pair.Preflight(t.Context(), entries)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Old.Reachable || !r.New.Reachable || len(r.Old.Missing)+len(r.New.Missing) > 0 || r.UsedOld < 1<<20 ||
		len(r.Space) != 1 || r.Space[0].Need < r.UsedOld || r.Space[0].Avail <= 0 || r.ClockSkew > 2*time.Second || r.ClockSkew < -2*time.Second {
		t.Errorf("report %+v", r)
	}

	e.pair.testExtraTools = []string{"cutover-no-such-tool"}
	_, err = e.pair.Preflight(t.Context(), append(entries, Entry{Path: "/home/vmail/nonexistent"}))
	want := "sshops: preflight failed:" +
		"\n\told: missing cutover-no-such-tool: apt-get install -y cutover-no-such-tool" +
		"\n\told: /home/vmail/nonexistent is not a directory" +
		"\n\tnew: missing cutover-no-such-tool: apt-get install -y cutover-no-such-tool"
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
}

// TestPreflightReach: for the direct and agent transfers, preflight checks from old that new's
// SSH port answers (and, for agent, takes the forwarded agent's key) and names the mode that
// would work instead.
func TestPreflightReach(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeDirect)
	entries := []Entry{{Path: maildir}}
	closed := func() int { // a port of new's address where nothing listens
		l, err := net.Listen("tcp", net.JoinHostPort(e.lab.New.Addr.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()
	stranger, err := lab.NewIdentity(t.TempDir()) // authorized nowhere
	if err != nil {
		t.Fatal(err)
	}
	newAt := func(port int) string { return net.JoinHostPort(e.lab.New.Addr.String(), strconv.Itoa(port)) }
	for _, tc := range []struct {
		desc  string
		mode  Mode
		port  int
		agent string // key file the forwarded agent holds
		want  string
	}{
		{desc: "direct reaches new", mode: ModeDirect},
		{desc: "agent with a key new accepts", mode: ModeAgent, agent: e.lab.Identity.KeyFile},
		{desc: "direct, port closed", mode: ModeDirect, port: closed,
			want: "old: cannot reach new's SSH port " + newAt(closed) + " (ssh: connect to host " + e.lab.New.Addr.String() + " port " + strconv.Itoa(closed) + ": Connection refused): the direct transfer pushes from old to new; open that port to old, or set transfer = \"relay\" (data goes through this machine)"},
		{desc: "agent with a key new refuses", mode: ModeAgent, agent: stranger.KeyFile,
			want: "old: reaches " + newAt(22) + " but new accepts none of the forwarded agent's keys (root@" + e.lab.New.Addr.String() + ": Permission denied (publickey).): authorize one on new, or set transfer = \"direct\" (a one-time key)"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p := e.connect(t, tc.mode)
			p.testReachPort = tc.port
			if tc.agent != "" {
				p.AgentSocket = startAgent(t, tc.agent)
			}
			_, err := p.Preflight(t.Context(), entries)
			want := ""
			if tc.want != "" {
				want = "sshops: preflight failed:\n\t" + tc.want
			}
			if got := fmt.Sprint(err); (err != nil || want != "") && got != want {
				t.Errorf("error\n%v\nwant\n%s", err, want)
			}
		})
	}
}

// TestVerifyAfterCrash: a final copy leaves old's manifests for its Verify; a run killed in
// between leaves them behind, and the Verify of the next process (which reads old again)
// removes them.
func TestVerifyAfterCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeDirect)
	mustExec(t, e.lab.Old, `set -e; cd /home/vmail/mail; printf a > a; mkdir d; printf b > d/b`)
	entries := []Entry{{Path: maildir, Delete: true}}
	if err := e.pair.Copy(t.Context(), entries, true); err != nil {
		t.Fatal(err)
	}
	if l := e.leftovers(t, e.pair); len(l) != 1 || !strings.HasPrefix(l[0], "temp dir: "+onetimeMarker+"manifest-") {
		t.Fatalf("left over after the final copy: %q, want old's manifest", l)
	}
	next := e.connect(t, ModeDirect)
	next.TempDir = e.pair.TempDir
	if err := next.Verify(t.Context(), entries); err != nil {
		t.Fatal(err)
	}
	if l := e.leftovers(t, next); len(l) > 0 {
		t.Errorf("left over after the next process's verify: %q", l)
	}
}

// Old's manifests taken by a final Copy (files in TempDir on old) are removed on every path:
// by Verify as it reads them, by a later Copy, by a failed Copy, by Close when no Verify read
// them, and by Cleanup after a run that was killed in between.
func TestOldManifestsRemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeDirect)
	mustExec(t, e.lab.Old, "set -e; mkdir -p /home/vmail/mail/a /var/lib/acme; printf x > /home/vmail/mail/a/m; printf c > /var/lib/acme/cert")
	entries := []Entry{{Path: maildir}, {Path: "/var/lib/acme"}}
	manifests := func(p *Pair) []string {
		var out []string
		for _, l := range e.leftovers(t, p) {
			if !strings.HasPrefix(l, "temp dir: "+onetimeMarker+"manifest-") {
				t.Fatalf("left over: %q, not a manifest", l)
			}
			out = append(out, l)
		}
		return out
	}
	for _, tc := range []struct {
		desc  string
		after func(t *testing.T, p *Pair) error // what follows a final Copy
	}{
		{desc: "Verify reads them", after: func(t *testing.T, p *Pair) error { return p.Verify(t.Context(), entries) }},
		{desc: "another final Copy", after: func(t *testing.T, p *Pair) error {
			if err := p.Copy(t.Context(), entries, true); err != nil {
				return err
			}
			if m := manifests(p); len(m) != len(entries) {
				t.Errorf("after the second final copy: %q, want its %d manifests only", m, len(entries))
			}
			return p.Verify(t.Context(), entries)
		}},
		{desc: "a failed final Copy", after: func(t *testing.T, p *Pair) error {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			p.Progress = func(Progress) { cancel() }
			if err := p.Copy(ctx, entries, true); !errors.Is(err, context.Canceled) {
				t.Errorf("a cancelled final copy: error %v, want context.Canceled", err)
			}
			return nil
		}},
		{desc: "Close without Verify", after: func(t *testing.T, p *Pair) error {
			return (&Hosts{pair: p}).Close()
		}},
		{desc: "killed, then Cleanup", after: func(t *testing.T, p *Pair) error {
			p.window.reset() // forgotten, as by a process that died
			if m := manifests(p); len(m) != len(entries) {
				t.Errorf("after the simulated kill: %q, want %d manifests", m, len(entries))
			}
			p2 := e.connect(t, ModeDirect)
			p2.TempDir = p.TempDir
			return p2.Cleanup(t.Context())
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p := e.connect(t, ModeDirect)
			if err := p.Copy(t.Context(), entries, true); err != nil {
				t.Fatal(err)
			}
			if m := manifests(p); len(m) != len(entries) {
				t.Fatalf("after the final copy: %q, want %d manifests", m, len(entries))
			}
			if err := tc.after(t, p); err != nil {
				t.Fatal(err)
			}
			if l := e.leftovers(t, p); len(l) > 0 {
				t.Errorf("left over: %q", l)
			}
		})
	}
}

// The final copy's transfer set up ahead of the window (Prepare): used by the final Copy,
// dropped when no Copy comes, removed by Cleanup after a crash; a master connection that died
// in between costs a handshake, not the copy.
func TestPrepare(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeDirect)
	mustExec(t, e.lab.Old, tree)
	entries := []Entry{{Path: maildir, Delete: true, Owner: "vmail:"}, {Path: "/etc/dkimkeys", Owner: "opendkim:", Content: true}}
	if err := e.pair.Copy(t.Context(), entries, false); err != nil {
		t.Fatal(err)
	}
	master := func() string {
		out, _ := e.lab.Old.Exec(context.Background(), "pgrep -f '^ssh .*ControlMaster=yes.*"+e.pair.tempDir()+"' || true")
		return strings.TrimSpace(string(out))
	}
	prepared := func(t *testing.T, p *Pair) {
		t.Helper()
		if err := p.Prepare(t.Context(), entries); err != nil {
			t.Fatal(err)
		}
		l := e.leftovers(t, p)
		if len(l) != 2 || !strings.HasPrefix(l[0], "new authorized_keys: from=") || !strings.HasPrefix(l[1], "temp dir: "+onetimeMarker) {
			t.Fatalf("after Prepare: %q, want the key on new and the temp dir", l)
		}
		if master() == "" {
			t.Fatalf("after Prepare: no ssh master connection on old")
		}
	}
	for _, tc := range []struct {
		desc    string
		between func(t *testing.T) *Pair // what happens between Prepare and the final copy; the pair that copies
		copies  bool
		wantLog string
	}{
		{desc: "the final copy uses it", copies: true, wantLog: "final sync through the transfer set up ahead"},
		{desc: "the master connection died: the copy connects anew", copies: true, wantLog: "final sync through the transfer set up ahead",
			between: func(t *testing.T) *Pair {
				mustExec(t, e.lab.Old, "kill "+master())
				return e.pair
			}},
		{desc: "no final copy comes: dropped",
			between: func(t *testing.T) *Pair {
				if err := e.pair.DropPrepared(t.Context()); err != nil {
					t.Fatal(err)
				}
				return e.pair
			}},
		{desc: "a crash: the next run's Cleanup removes it, and sets up its own",
			between: func(t *testing.T) *Pair {
				e.pair.prepared = nil // this run is gone
				p2 := e.connect(t, ModeDirect)
				p2.TempDir = e.pair.TempDir
				if err := p2.Cleanup(t.Context()); err != nil {
					t.Fatal(err)
				}
				if l := e.leftovers(t, p2); len(l) > 0 {
					t.Errorf("left over after Cleanup: %q", l)
				}
				return p2
			}, copies: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			logFrom := len(e.log.String())
			mustExec(t, e.lab.Old, `printf 'more' > /home/vmail/mail/example.org/alice/new/`+strings.ReplaceAll(tc.desc[:5], " ", "_"))
			prepared(t, e.pair)
			p := e.pair
			if tc.between != nil {
				p = tc.between(t)
			}
			if tc.copies {
				if err := p.Copy(t.Context(), entries, true); err != nil {
					t.Fatal(err)
				}
				if err := p.Verify(t.Context(), entries); err != nil {
					t.Fatal(err)
				}
			}
			if l := e.leftovers(t, p); len(l) > 0 {
				t.Errorf("left over: %q", l)
			}
			if m := master(); m != "" {
				t.Errorf("ssh master connection still running on old: pid %s", m)
			}
			if log := e.log.String()[logFrom:]; tc.wantLog != "" && !strings.Contains(log, tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, log)
			}
		})
	}
}

// Verify with new walked in parts (splitManifestCmd) finds differences in each part: above
// depth 2, a file at depth 2, inside the directories at depth 2.
func TestVerifySplitWalk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ModeDirect)
	e.pair.testSplitWalk = true
	mustExec(t, e.lab.Old, `set -e; cd /home/vmail/mail; printf top > top; mkdir -p example.org/alice/cur example.org/bob/cur other/x/y
printf a > example.org/alice/cur/1; printf b > example.org/bob/cur/2; printf two > example.org/at-depth-2; printf deep > other/x/y/z`)
	entry := Entry{Path: maildir, Delete: true}
	for round, tamper := range []string{"", `set -e; cd /home/vmail/mail
t=$(stat -c %Y .); printf extra > extra; touch -d @$t .
t=$(stat -c %Y example.org); rm example.org/at-depth-2; touch -d @$t example.org
t=$(stat -c %Y example.org/bob/cur/2); printf bigger > example.org/bob/cur/2; touch -d @$t example.org/bob/cur/2
t=$(stat -c %Y other/x/y); rm other/x/y/z; touch -d @$t other/x/y`} {
		// The final copy takes old's manifest; new is changed behind its back in each part
		// (directory times restored) before Verify walks it.
		if err := e.pair.Copy(t.Context(), []Entry{entry}, true); err != nil {
			t.Fatal(err)
		}
		if tamper != "" {
			mustExec(t, e.lab.New, tamper)
		}
		err := e.pair.Verify(t.Context(), []Entry{entry})
		want := "<nil>"
		if round == 1 {
			want = "sshops: verify: 4 difference(s) between old and new" +
				"\n\t/home/vmail/mail/example.org/at-depth-2: missing on new" +
				"\n\t/home/vmail/mail/example.org/bob/cur/2: size 1 on old, 6 on new" +
				"\n\t/home/vmail/mail/extra: only on new" +
				"\n\t/home/vmail/mail/other/x/y/z: missing on new"
		}
		if fmt.Sprint(err) != want {
			t.Fatalf("round %d: error\n%v\nwant\n%s", round, err, want)
		}
	}
	if l := e.leftovers(t, e.pair); len(l) > 0 {
		t.Errorf("left over: %q", l)
	}
}
