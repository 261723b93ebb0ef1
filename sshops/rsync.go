package sshops

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// rsyncArgs builds the rsync command run on old that pushes the entry's directory to the same
// path on new (user@host) over the given ssh command. Owners are kept by name (no
// --numeric-ids); -s (--protect-args) keeps the remote shell of an rsync older than 3.2.4 from
// splitting a path with spaces or shell characters; ACLs and extended attributes (-AX: one call
// per file on both hosts) only for an entry with Xattrs; --delete only in the final pass of an
// entry with Delete. The initial pass lists the whole tree first (--no-inc-recursive), so that
// its progress has a true total and ETA; the final pass keeps rsync's incremental recursion, so
// that the first bytes move before the whole tree is listed (hard links come out right either
// way).
func rsyncArgs(sshCmd string, e Entry, userHost string, final bool) []string {
	flags := "-aHs"
	if e.Xattrs {
		flags += "AX"
	}
	args := []string{"rsync", flags, "--info=progress2", "--out-format=", "-e", sshCmd}
	if !final {
		args = append(args, "--no-inc-recursive")
	}
	if final && e.Delete {
		args = append(args, "--delete")
	}
	dir := strings.TrimSuffix(e.Path, "/") + "/"
	return append(args, "--", dir, userHost+":"+dir)
}

// sshCommand is the ssh command line rsync runs on old to reach new.
func sshCommand(port int, identity, knownHosts, bind string) string {
	args := []string{"ssh", "-F", "/dev/null", "-p", strconv.Itoa(port),
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15"}
	if identity != "" {
		args = append(args, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", identity)
	}
	if bind != "" {
		args = append(args, "-o", "BindAddress="+bind)
	}
	return shellJoin(args)
}

// shellJoin quotes each argument for a POSIX shell and joins them with spaces.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// rsync --info=progress2 lines look like
//
//	"    123,456,789  42%   12.34MB/s    0:01:02 (xfr#12, to-chk=100/2000)"
//	"    123,456,789 100%   12.34MB/s    0:01:02 (xfr#12, ir-chk=1000/2001)"
//
// ir-chk means rsync is still listing the tree (incremental recursion): its counts are not final.
var progressRE = regexp.MustCompile(`^\s*([\d,]+)\s+(\d+)%\s+([\d.]+)([kMGT]?B)/s\s+(\d+):(\d\d):(\d\d)(?:\s+\(xfr#(\d+),\s+(to|ir)-chk=(\d+)/(\d+)\))?\s*$`)

// isProgressLine reports whether s is a progress line of rsync or of a tar push (tarPushCmd).
func isProgressLine(s string) bool {
	return progressRE.MatchString(s) || strings.HasPrefix(s, tarProgressMark) || strings.HasPrefix(s, tarDoneMark)
}

// parseProgress parses one rsync progress2 line. Rsync shows the ETA while running and the
// elapsed time on the last line (when to-chk reaches 0); the caller marks Done.
func parseProgress(line string) (Progress, bool) {
	m := progressRE.FindStringSubmatch(line)
	if m == nil {
		return Progress{}, false
	}
	bytes, err := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
	if err != nil {
		return Progress{}, false
	}
	pct, _ := strconv.ParseInt(m[2], 10, 64)
	rate, _ := strconv.ParseFloat(m[3], 64)
	switch m[4] {
	case "kB":
		rate *= 1 << 10
	case "MB":
		rate *= 1 << 20
	case "GB":
		rate *= 1 << 30
	case "TB":
		rate *= 1 << 40
	}
	h, _ := strconv.Atoi(m[5])
	mi, _ := strconv.Atoi(m[6])
	s, _ := strconv.Atoi(m[7])
	p := Progress{Bytes: bytes, Rate: rate, ETA: time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second}
	switch {
	case pct >= 100:
		p.TotalBytes = bytes
	case pct > 0:
		p.TotalBytes = bytes * 100 / pct
	}
	if m[8] != "" {
		p.Files, _ = strconv.ParseInt(m[8], 10, 64)
		if m[9] == "to" && m[10] == "0" {
			// Rsync's total counts the second names of hard links, which move no bytes.
			p.Done, p.ETA, p.TotalBytes = true, 0, bytes
		}
	}
	return p, true
}

// String formats the progress for a log line.
func (p Progress) String() string {
	s := fmt.Sprintf("%s: %s", p.Path, humanBytes(p.Bytes))
	if p.TotalBytes > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", humanBytes(p.TotalBytes), p.Bytes*100/p.TotalBytes)
	}
	s += fmt.Sprintf(", %d files, %s/s", p.Files, humanBytes(int64(p.Rate)))
	if p.Done {
		return s + ", done"
	}
	if p.ETA > 0 {
		s += ", ETA " + p.ETA.Round(time.Second).String()
	}
	return s
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
