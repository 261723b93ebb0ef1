package sshops

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The initial pass copies an entry whose directory on new is still empty as one tar stream
// from old straight to new (`tar c | ssh new tar x`, over the transfer's one-time key or agent),
// not with rsync: into an empty directory there is nothing to compare, and rsync's exchanges per
// file make a first copy of many small files (a Maildir store) slower than tar.
// The archive is POSIX (pax), so that mtimes keep their nanoseconds and the final rsync's quick
// check (size and mtime, to the nanosecond) finds nothing to do for the files that did not
// change. An entry with Xattrs, or a directory on new that is not empty (a resumed initial
// sync), is copied with rsync as before.

// Markers of the lines the push prints on old's stderr besides tar's own messages.
const (
	tarProgressMark = "cutover-tar-progress " // "<bytes written>", every tarCheckpoint records
	tarDoneMark     = "cutover-tar-done "     // the same, once tar --create has written everything
	tarStatusMark   = "cutover-tar-status "   // tar --create's exit status
	tarRecord       = 10240                   // tar's default record size (blocking factor 20)
	tarCheckpoint   = 500                     // records between progress lines (5 MB)
)

// tarPushCmd is the command run on old: tar --create in dir, its archive to ssh (the transfer's
// sshCmd to userHost) running tar --extract in the same dir on new. Awk turns tar's checkpoints
// and totals on stderr into progress lines, passing tar's own messages on; tar's exit status
// follows on its own line (the command's exit status is ssh's, that is new's tar's). What ssh
// and new's tar print comes on stdout: on one stream with awk's lines, their writes would split
// a progress line. Tar does not list the names (--verbose): it writes each on unbuffered stderr,
// a system call per name, which doubled the CPU time of a stream of small files.
func tarPushCmd(sshCmd, dir, userHost string) string {
	create := shellJoin([]string{"tar", "--create", "--file=-", "--format=posix", "--pax-option=delete=atime,delete=ctime",
		"--totals", "--checkpoint=" + strconv.Itoa(tarCheckpoint), "--checkpoint-action=echo=" + tarProgressMark + "%u", "."})
	// New's tar does not warn about mtimes ahead of its clock (the hosts' clocks may differ).
	extract := tarExtract(dir) + " --warning=no-timestamp"
	return fmt.Sprintf(`cd -- %s && { { %s 2>&1 >&3 3>&-; echo "%s$?"; } | %s >&2 3>&-; } 3>&1 | %s %s %s 2>&1`,
		shellQuote(dir), create, tarStatusMark, tarCounter, sshCmd, shellQuote(userHost), shellQuote(extract))
}

// tarCounter reads tar --create's stderr (tarPushCmd). Numbers go through printf %.0f: mawk
// prints a large product as 5.12e+09 and clamps %d to 2^31-1.
var tarCounter = fmt.Sprintf(`awk '/^tar: %[1]s/ { printf "%[1]s%%.0f\n", $3 * %[3]d; fflush(); next } /^Total bytes written: / { printf "%[2]s%%s\n", $4; fflush(); next } { print; fflush() }'`,
	tarProgressMark, tarDoneMark, tarRecord)

// tarSizeCmd estimates, on old, the size of dir's archive and its number of names: per name a
// header block (and a pax header of two blocks for an mtime with a fraction of a second), the
// data in whole blocks once per file (further names of a hard link carry none). It prints
// "<bytes> <names>".
func tarSizeCmd(dir string) string {
	return fmt.Sprintf(`cd -- %s && find . -printf '%%y %%n %%i %%s %%T@\n' | %s`, shellQuote(dir), tarSizer)
}

// tarSizer sums find's lines in tarSizeCmd (printf %.0f as in tarCounter).
const tarSizer = `awk '{ n++; b += 512; if ($5 !~ /\.0*$/) b += 1024; if ($1 == "f") { if ($2 > 1) { if ($3 in seen) next; seen[$3] = 1 }; b += int(($4 + 511) / 512) * 512 } } END { printf "%.0f %.0f\n", b + 1024, n }'`

// parseTarSize parses tarSizeCmd's output; the archive is padded to whole records.
func parseTarSize(out string) (bytes, names int64, ok bool) {
	f := strings.Fields(out)
	if len(f) != 2 {
		return 0, 0, false
	}
	b, err1 := strconv.ParseInt(f[0], 10, 64)
	n, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || b < 0 || n < 0 {
		return 0, 0, false
	}
	return (b + tarRecord - 1) / tarRecord * tarRecord, n, true
}

// parseTarProgress parses a progress or done line of tarPushCmd into the bytes written.
func parseTarProgress(line string) (bytes int64, done, ok bool) {
	rest, ok := strings.CutPrefix(line, tarProgressMark)
	if !ok {
		if rest, done = strings.CutPrefix(line, tarDoneMark); !done {
			return 0, false, false
		}
	}
	bytes, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || bytes < 0 {
		return 0, false, false
	}
	return bytes, done, true
}

// tarProgress is the Progress of a push at bytes, elapsed into it, against the estimated total
// of bytes and names (0: not counted yet). Tar does not list the names it archives: the files
// so far are the counted names in proportion to the bytes.
func tarProgress(path string, bytes, total, names int64, elapsed time.Duration) Progress {
	pr := Progress{Path: path, Bytes: bytes}
	if total > 0 {
		pr.TotalBytes = max(total, bytes)
		pr.Files = min(names, int64(float64(names)*float64(bytes)/float64(total)))
	}
	return pr.withRate(elapsed)
}

// tarPush copies entry e into its empty directory on new as a tar stream from old.
func (p *Pair) tarPush(ctx context.Context, t *transfer, e Entry) error {
	cmd := tarPushCmd(t.sshCmd, e.Path, p.New.Endpoint().sshDest())

	// The size of the archive and its names, for the ETA and the files, are counted alongside:
	// the copy does not wait for them. Not at a low priority: on a busy host the count would
	// then end after the stream, which would have no ETA.
	var total, names atomic.Int64
	cctx, cancel := context.WithCancel(ctx)
	counted := make(chan struct{})
	defer func() { cancel(); <-counted }()
	go func() {
		defer close(counted)
		out, err := p.Old.output(cctx, tarSizeCmd(e.Path), "size of "+e.Path, nil)
		if b, n, ok := parseTarSize(string(out)); err == nil && ok {
			names.Store(n)
			total.Store(b)
		}
	}()

	var (
		mu     sync.Mutex // onLine runs for stdout and stderr
		last   Progress
		status = -1 // tar --create's exit status
	)
	start := time.Now()
	onLine := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		if b, done, ok := parseTarProgress(line); ok {
			last = tarProgress(e.Path, b, total.Load(), names.Load(), time.Since(start))
			if done {
				last.TotalBytes, last.ETA, last.Done = b, 0, true
				if total.Load() > 0 {
					last.Files = names.Load()
				}
			}
			if p.Progress != nil {
				p.Progress(last)
			}
			return
		}
		if s, ok := strings.CutPrefix(line, tarStatusMark); ok {
			status, _ = strconv.Atoi(s)
			return
		}
		if strings.TrimSpace(line) != "" {
			p.Old.log.line(line)
		}
	}
	spec := runSpec{cmd: cmd, display: "tar stream of " + e.Path + " to new", onLine: onLine, o: RunOptions{Quiet: true}}
	if p.mode() == ModeAgent {
		spec.prepare = p.Old.requestAgent
	}
	_, err := p.Old.run(ctx, spec)
	mu.Lock()
	defer mu.Unlock()
	switch {
	case err != nil:
		return err
	case status == tarFilesChanged:
		// A live service renamed or removed files while tar read them; the final pass copies
		// them again and verify compares both sides.
		p.logf("warning: some files under %s changed or vanished while they were read (tar exit %d): the service was still writing there", e.Path, status)
	case status < 0:
		return fmt.Errorf("sshops: old: tar stream of %q to new: tar --create reported no exit status", e.Path)
	case status != 0:
		return fmt.Errorf("sshops: old: tar stream of %q to new: tar --create exited %d", e.Path, status)
	}
	if !last.Done && p.Progress != nil {
		last.Path, last.Done, last.ETA, last.TotalBytes = e.Path, true, 0, last.Bytes
		p.Progress(last)
	}
	return nil
}

// emptyDirsCmd creates the entries' directories on new and prints, NUL-terminated, those that
// are empty.
func emptyDirsCmd(entries []Entry) string {
	var dirs []string
	for _, e := range entries {
		dirs = append(dirs, shellQuote(e.Path))
	}
	list := strings.Join(dirs, " ")
	return fmt.Sprintf(`mkdir -p -- %[1]s && for d in %[1]s; do [ -n "$(find "$d" -mindepth 1 -maxdepth 1 -print -quit)" ] || printf '%%s\0' "$d"; done`, list)
}

// parseEmptyDirs parses emptyDirsCmd's output.
func parseEmptyDirs(out []byte) map[string]bool {
	empty := map[string]bool{}
	for _, d := range strings.Split(string(out), "\x00") {
		if d != "" {
			empty[d] = true
		}
	}
	return empty
}
