package sshops

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// Verify of an entry without Content streams both manifests, sorted by path on the hosts, and
// compares them record by record: cutover holds neither tree in memory, whatever its size.

const (
	// sortedSep separates the fields of a sorted manifest record; a path holding it is refused.
	sortedSep = '\x01'
	// findStatus is the last record of a sorted manifest: find's exit status ('c' sorts after
	// every "./" path).
	findStatus = "cutover-find-status "
)

// sortedManifestCmd lists dir as NUL-terminated records "./rel\x01type\x01size\x01mtime\x01mode
// \x01uid\x01gid\x01nlink\x01target" sorted by bytes (LC_ALL=C), then find's exit status. A
// missing dir prints manifestMissing. Owners are numbers: find would look every name up again
// (a read of /etc/passwd per file); the reader names them from the host's tables (idNames).
func sortedManifestCmd(dir string) string {
	return fmt.Sprintf(`cd -- %s 2>/dev/null || { printf '%s\0'; exit 0; }; { find . -printf %s; printf '%s%%d\0' "$?"; } | LC_ALL=C sort -z`,
		shellQuote(dir), manifestMissing, shellQuote(manifestFormat), findStatus)
}

// manifestFormat is find's -printf format of the sorted manifests' records.
const manifestFormat = `%p\001%y\001%s\001%T@\001%m\001%U\001%G\001%n\001%l\0`

// splitManifestCmd prints what sortedManifestCmd prints, with the walk split across two
// cores: the paths above depth 2 and the non-directories at depth 2 in one find, the
// directories at depth 2 (a Maildir store's users) shared between two finds that run side by
// side, each part sorted, then merged (sort -m). Verify walks new with it right after the final
// copy, when nothing else runs there, for an entry whose manifest on old has splitWalkBytes.
// The parts live in a temp dir under tmp (cleaned up by the shell, or by Cleanup after a kill).
func splitManifestCmd(dir, tmp string) string {
	f := shellQuote(manifestFormat)
	part := shellQuote(`p=$(mktemp "$0/part.XXXXXXXX") || exit 1; find "$@" -printf ` + f + ` > "$p.u" || r=1; LC_ALL=C sort -z -o "$p" "$p.u" && rm -f -- "$p.u" || exit 1; exit ${r:-0}`)
	return fmt.Sprintf(`cd -- %[1]s 2>/dev/null || { printf '%[2]s\0'; exit 0; }
t=$(mktemp -d %[3]s/%[4]swalk-XXXXXXXX) || exit 1
trap 'rm -rf -- "$t"' EXIT
find . -mindepth 2 -maxdepth 2 -type d -print0 > "$t/dirs"; s1=$?
n=$(tr -cd '\000' < "$t/dirs" | wc -c); k=$(( (n + 1) / 2 )); [ "$k" -gt 0 ] || k=1
xargs -0 -r -P 2 -n "$k" sh -c %[5]s "$t" < "$t/dirs"; s2=$?
{ find . -maxdepth 2 ! \( -path './*/*' -type d \) -printf %[6]s; s3=$?; st=0; [ "$s1$s2$s3" = 000 ] || st=1; printf '%[7]s%%d\0' "$st"; } | LC_ALL=C sort -z > "$t/top" || exit 1
set -- "$t"/part.*; [ -e "$1" ] || set --
LC_ALL=C sort -z -m -- "$t/top" "$@"`,
		shellQuote(dir), manifestMissing, shellQuote(tmp), onetimeMarker, part, f, findStatus)
}

// idNames maps a host's uids and gids to names, as getpwuid and getgrgid would (the first
// entry of a number wins); a number without a name stays a number, as find's %u prints it.
type idNames struct {
	users, groups map[string]string
	loginGID      map[string]string // user name -> the number of its login group (the first entry wins)
}

const idsGroups = "cutover-groups"

// idNames reads the host's user and group names once per connection.
func (c *Client) idNames(ctx context.Context) (*idNames, error) {
	c.idsMu.Lock()
	defer c.idsMu.Unlock()
	if c.ids != nil {
		return c.ids, nil
	}
	cmd := "getent passwd && echo " + idsGroups + " && getent group"
	out, err := c.output(ctx, cmd, cmd, nil)
	if err != nil {
		return nil, err
	}
	c.ids = parseIDNames(string(out))
	return c.ids, nil
}

func parseIDNames(out string) *idNames {
	ids := &idNames{users: map[string]string{}, groups: map[string]string{}, loginGID: map[string]string{}}
	m, inUsers := ids.users, true
	for _, l := range strings.Split(out, "\n") {
		if l == idsGroups {
			m, inUsers = ids.groups, false
			continue
		}
		f := strings.Split(l, ":")
		if len(f) < 3 || f[0] == "" {
			continue
		}
		if _, ok := m[f[2]]; !ok {
			m[f[2]] = f[0]
		}
		if _, ok := ids.loginGID[f[0]]; !ok && len(f) > 3 && inUsers {
			ids.loginGID[f[0]] = f[3]
		}
	}
	return ids
}

// loginGroup returns the name of user's login group, as `id -gn` prints it.
func (ids *idNames) loginGroup(user string) (string, bool) {
	gid, ok := ids.loginGID[user]
	if !ok {
		return "", false
	}
	g, ok := ids.groups[gid]
	return g, ok
}

func (ids *idNames) name(m map[string]string, id []byte) string {
	if n, ok := m[string(id)]; ok {
		return n
	}
	return string(id)
}

// recordReader reads a sorted manifest stream one record at a time.
type recordReader struct {
	r       *bufio.Reader
	ids     *idNames
	missing bool // the directory does not exist
	done    bool
	raw     string // the current record's path as find printed it ("./rel"), the sort key
	rel     string // the same relative to the directory
	fi      fileInfo
}

// newRecordReader starts reading, naming owners by ids; it tells a missing directory apart from
// the first record.
func newRecordReader(r io.Reader, ids *idNames) *recordReader {
	rr := &recordReader{r: bufio.NewReaderSize(r, 256<<10), ids: ids}
	b, err := rr.r.Peek(len(manifestMissing) + 1)
	if err == nil && string(b) == manifestMissing+"\x00" {
		rr.missing, rr.done = true, true
	}
	return rr
}

// next reads the following record; false at the end (err nil) or on an error.
func (rr *recordReader) next() (bool, error) {
	if rr.done {
		return false, nil
	}
	rec, err := rr.r.ReadSlice(0)
	if err == bufio.ErrBufferFull {
		var long []byte
		long = append(long, rec...)
		for err == bufio.ErrBufferFull {
			rec, err = rr.r.ReadSlice(0)
			long = append(long, rec...)
		}
		rec = long
	}
	if err == io.EOF {
		return false, errors.New("sshops: manifest: stream ended before find's status")
	}
	if err != nil {
		return false, fmt.Errorf("sshops: manifest: %w", err)
	}
	rec = rec[:len(rec)-1]
	if s, ok := strings.CutPrefix(string(rec), findStatus); ok {
		rr.done = true
		if s != "0" {
			return false, fmt.Errorf("sshops: manifest: find exited with status %s", s)
		}
		return false, nil
	}
	f := bytes.Split(rec, []byte{sortedSep})
	if len(f) != manifestFields || len(f[1]) != 1 {
		return false, fmt.Errorf("sshops: manifest: record %q: a name holding \\x01 is not supported", rec)
	}
	fi := fileInfo{Type: f[1][0], Mode: string(f[4]), User: rr.ids.name(rr.ids.users, f[5]), Group: rr.ids.name(rr.ids.groups, f[6]), Link: string(f[8])}
	if fi.Size, err = strconv.ParseInt(string(f[2]), 10, 64); err != nil {
		return false, fmt.Errorf("sshops: manifest: size %q: %w", f[2], err)
	}
	sec, _, _ := strings.Cut(string(f[3]), ".")
	if fi.Mtime, err = strconv.ParseInt(sec, 10, 64); err != nil {
		return false, fmt.Errorf("sshops: manifest: mtime %q: %w", f[3], err)
	}
	if fi.Nlink, err = strconv.Atoi(string(f[7])); err != nil {
		return false, fmt.Errorf("sshops: manifest: link count %q: %w", f[7], err)
	}
	rr.raw = string(f[0])
	rr.rel, rr.fi = relPath(rr.raw), fi
	return true, nil
}

// streamDiff is the result of comparing one entry's streams.
type streamDiff struct {
	first   []Difference // at most maxDifferences, in path order
	total   int
	oldSize int // paths on old
}

// compareStreams compares two sorted manifest streams of dir like compareManifests; onNew is
// called for every record of new.
func compareStreams(dir string, old, new *recordReader, extra bool, onNew func(rel string, fi fileInfo)) (streamDiff, error) {
	var sd streamDiff
	add := func(rel, what string) {
		sd.total++
		if len(sd.first) == maxDifferences {
			return
		}
		p := dir
		if rel != "." {
			p = path.Join(dir, rel)
		}
		sd.first = append(sd.first, Difference{Path: p, What: what})
	}
	if new.missing {
		add(".", "missing on new")
		return sd, nil
	}
	okO, err := old.next()
	if err != nil {
		return sd, err
	}
	okN, err := new.next()
	if err != nil {
		return sd, err
	}
	for okO || okN {
		c := 0
		switch {
		case !okN:
			c = -1
		case !okO:
			c = 1
		default:
			// sort -z compares whole records; a path that is a prefix of another is
			// followed by \x01, below any byte of a name: plain comparison of the paths
			// gives the same order.
			c = strings.Compare(old.raw, new.raw)
		}
		if c <= 0 {
			sd.oldSize++
		}
		switch {
		case c < 0:
			add(old.rel, "missing on new")
		case c > 0:
			if extra {
				add(new.rel, "only on new")
			}
		default:
			if what := compareInfo(old.fi, new.fi); what != "" {
				add(old.rel, what)
			}
		}
		if c >= 0 {
			onNew(new.rel, new.fi)
			if okN, err = new.next(); err != nil {
				return sd, err
			}
		}
		if c <= 0 {
			if okO, err = old.next(); err != nil {
				return sd, err
			}
		}
	}
	return sd, nil
}

// streamCmd runs cmd on the host and hands its stdout to read while it runs. When read fails,
// the command is stopped; when read returns early without error, the rest is discarded.
func (c *Client) streamCmd(ctx context.Context, cmd, display string, read func(io.Reader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := c.run(ctx, runSpec{cmd: cmd, display: display, stdout: pw, o: RunOptions{Quiet: true}})
		pw.CloseWithError(err)
		done <- err
	}()
	rerr := read(pr)
	if rerr != nil {
		cancel()
	}
	_, _ = io.Copy(io.Discard, pr)
	err := <-done
	if rerr != nil {
		return rerr
	}
	return err
}
