package sshops

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseTarLines(t *testing.T) {
	for _, tc := range []struct {
		desc        string
		line        string
		bytes       int64
		done, ok    bool
		progressful bool // isProgressLine
	}{
		{desc: "checkpoint", line: "cutover-tar-progress 5120000", bytes: 5120000, ok: true, progressful: true},
		{desc: "totals", line: "cutover-tar-done 5130240", bytes: 5130240, done: true, ok: true, progressful: true},
		{desc: "status", line: "cutover-tar-status 1"},
		{desc: "tar's warning", line: "tar: ./sock: socket ignored"},
		{desc: "two numbers", line: "cutover-tar-progress 5120000 12", progressful: true},
		{desc: "negative", line: "cutover-tar-progress -1", progressful: true},
		{desc: "not a number", line: "cutover-tar-done x", progressful: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b, done, ok := parseTarProgress(tc.line)
			if b != tc.bytes || done != tc.done || ok != tc.ok {
				t.Errorf("parseTarProgress(%q) = %d, %v, %v; want %d, %v, %v", tc.line, b, done, ok, tc.bytes, tc.done, tc.ok)
			}
			if got := isProgressLine(tc.line); got != tc.progressful {
				t.Errorf("isProgressLine(%q) = %v, want %v", tc.line, got, tc.progressful)
			}
		})
	}
	for _, tc := range []struct {
		desc     string
		out      string
		bytes, n int64
		ok       bool
	}{
		{desc: "padded to a record", out: "4096 3\n", bytes: 10240, n: 3, ok: true},
		{desc: "whole records", out: "20480 7\n", bytes: 20480, n: 7, ok: true},
		{desc: "empty", out: ""},
		{desc: "garbage", out: "cutover-missing\x00"},
	} {
		t.Run("size "+tc.desc, func(t *testing.T) {
			b, n, ok := parseTarSize(tc.out)
			if b != tc.bytes || n != tc.n || ok != tc.ok {
				t.Errorf("parseTarSize(%q) = %d, %d, %v; want %d, %d, %v", tc.out, b, n, ok, tc.bytes, tc.n, tc.ok)
			}
		})
	}
}

// TestTarAwk runs the awk programs of a push on lines like tar's and find's, with numbers past
// 2^31 (which mawk's print and %d get wrong).
func TestTarAwk(t *testing.T) {
	for _, tc := range []struct {
		desc, prog, in, want string
	}{
		{desc: "counter", prog: tarCounter,
			in:   "tar: cutover-tar-progress 500000\ntar: ./s: socket ignored\nTotal bytes written: 5120010240 (4.8GiB, 50MiB/s)\ncutover-tar-status 1\n",
			want: "cutover-tar-progress 5120000000\ntar: ./s: socket ignored\ncutover-tar-done 5120010240\ncutover-tar-status 1\n"},
		{desc: "sizer", prog: tarSizer,
			in:   "d 2 10 4096 1700000000.0000000000\nf 1 11 5000000000 1700000000.5000000000\nf 2 12 1 1700000000.0000000000\nf 2 12 1 1700000000.0000000000\nl 1 13 3 1700000000.0000000000\n",
			want: "5000005120 5\n"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := exec.Command("sh", "-c", tc.prog)
			c.Stdin = strings.NewReader(tc.in)
			out, err := c.CombinedOutput()
			if err != nil || string(out) != tc.want {
				t.Errorf("got %q (%v), want %q", out, err, tc.want)
			}
		})
	}
}

func TestTarProgress(t *testing.T) {
	for _, tc := range []struct {
		desc                string
		bytes, total, names int64
		elapsed             time.Duration
		want                Progress
	}{
		{desc: "total known: files in proportion", bytes: 1 << 20, total: 4 << 20, names: 100, elapsed: time.Second,
			want: Progress{Path: "/d", Bytes: 1 << 20, TotalBytes: 4 << 20, Files: 25, Rate: 1 << 20, ETA: 3 * time.Second}},
		{desc: "not counted yet", bytes: 1 << 20, elapsed: 2 * time.Second,
			want: Progress{Path: "/d", Bytes: 1 << 20, Rate: 1 << 19}},
		{desc: "past the estimate", bytes: 5 << 20, total: 4 << 20, names: 100, elapsed: time.Second,
			want: Progress{Path: "/d", Bytes: 5 << 20, TotalBytes: 5 << 20, Files: 100, Rate: 5 << 20}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := tarProgress("/d", tc.bytes, tc.total, tc.names, tc.elapsed); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestInitialTarStream copies into an empty directory on new: the initial pass streams it with
// tar, keeps what rsync keeps (owners by name, modes, hard links, symlinks, mtimes to the
// nanosecond), reports progress with a total, and the final pass's rsync finds nothing to copy
// again.
func TestInitialTarStream(t *testing.T) {
	for _, mode := range []Mode{ModeDirect, ModeAgent} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e, p, progress := modeEnv(t, mode)
			lp := e.lab
			mustExec(t, lp.Old, tree+`
touch -d '2024-05-06 07:08:09.123456789' /home/vmail/mail/example.org/alice/dovecot-uidlist
head -c 3000000 /dev/zero > /home/vmail/mail/example.org/alice/cur/big:2,S
chown vmail: /home/vmail/mail/example.org/alice/cur/big:2,S
printf 'f' > /home/vmail/mail/example.org/alice/cur/future:2,S
touch -d '2099-01-02 03:04:05' /home/vmail/mail/example.org/alice/cur/future:2,S`)
			// The estimate of the archive's size is what tar writes.
			est := mustExec(t, lp.Old, tarSizeCmd(maildir))
			size := mustExec(t, lp.Old, "cd "+maildir+" && tar --create --file=- --format=posix --pax-option=delete=atime,delete=ctime . | wc -c")
			names, _ := strconv.ParseInt(strings.TrimSpace(mustExec(t, lp.Old, "find "+maildir+" -printf x | wc -c")), 10, 64)
			if b, n, ok := parseTarSize(est); !ok || strconv.FormatInt(b, 10) != strings.TrimSpace(size) || n != names {
				t.Errorf("estimated archive size and names %q, tar writes %q bytes of %d names", est, size, names)
			}

			entries := []Entry{{Path: maildir, Delete: true, Owner: "vmail:", Content: true}, {Path: "/etc/dkimkeys", Owner: "opendkim:"}}
			if err := p.Copy(t.Context(), entries, false); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"[cutover] initial sync of /home/vmail/mail (" + string(mode) + ", tar stream)",
				"[cutover] initial sync of /etc/dkimkeys (" + string(mode) + ", tar stream)",
			} {
				if !strings.Contains(e.log.String(), want) {
					t.Errorf("log has no line %q", want)
				}
			}
			if l := e.leftovers(t, p); len(l) > 0 {
				t.Errorf("left over after initial copy: %q", l)
			}
			// New's tar takes an mtime ahead of its clock without a warning per file.
			if strings.Contains(e.log.String(), "in the future") {
				t.Errorf("log warns about an mtime in the future:\n%s", e.log)
			}
			if last, _ := progress.lastOf(maildir); !last.Done || last.Bytes < 3000000 || last.TotalBytes != last.Bytes || last.Files != names {
				t.Errorf("last progress of %s: %+v, want done, at least 3,000,000 bytes, %d names", maildir, last, names)
			}
			stat := `cd /home/vmail/mail/example.org/alice && stat -c '%U:%G %a %h %y %N' cur/1700000000.M1P1.host,S=5:2,S .Archive/cur/hardlinked:2,S dovecot-uidlist .Archive "$(printf 'cur/new\nline')" new/link-to-cur new/1700000001.M2P1.host && stat -c '%U:%G %a %n' /etc/dkimkeys/opendkim.private`
			if o, n := mustExec(t, lp.Old, stat), mustExec(t, lp.New, stat); o != n {
				t.Errorf("on new:\n%s\nwant (as on old)\n%s", n, o)
			}
			if err := p.Verify(t.Context(), entries); err != nil {
				t.Fatal(err)
			}
			// The final rsync's quick check finds every file equal: it replaces none.
			inodes := `find /home/vmail/mail /etc/dkimkeys -type f -printf '%i %p\n' | sort`
			before := mustExec(t, lp.New, inodes)
			if err := p.Copy(t.Context(), entries, true); err != nil {
				t.Fatal(err)
			}
			if after := mustExec(t, lp.New, inodes); after != before {
				t.Errorf("the final pass copied files again:\nbefore\n%s\nafter\n%s", before, after)
			}
			if err := p.Verify(t.Context(), entries); err != nil {
				t.Fatal(err)
			}
			// A directory on new that is not empty is copied with rsync (a resumed initial sync).
			mustExec(t, lp.Old, "printf 'k2' > /etc/dkimkeys/opendkim2.private")
			if err := p.Copy(t.Context(), entries, false); err != nil {
				t.Fatal(err)
			}
			if want := "[cutover] initial sync of /etc/dkimkeys (" + string(mode) + ")"; !strings.Contains(e.log.String(), want) {
				t.Errorf("log has no line %q", want)
			}
			mustExec(t, lp.New, "test -f /etc/dkimkeys/opendkim2.private")
		})
	}
}
