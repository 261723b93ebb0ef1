package sshops

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// fileInfo is one manifest line: what verify compares for a path below a synced directory.
type fileInfo struct {
	Type  byte   // find's %y: f d l p s c b
	Size  int64  // regular files
	Mtime int64  // seconds; tar keeps whole seconds only
	Mode  string // octal permission bits, e.g. "644", "2755"
	User  string // owner by name (a number when the host has no name for it)
	Group string
	Nlink int    // regular files: hard link count
	Link  string // symlink target
	Sum   string // sha256 hex of regular files, with Content
}

// manifest maps paths relative to the synced directory ("." is the directory itself) to their
// info. A nil manifest means the directory does not exist.
type manifest map[string]fileInfo

const (
	manifestFields  = 9
	manifestMissing = "cutover-missing"
	manifestSums    = "cutover-sha256"
)

// manifestCmd lists dir as NUL-separated records of manifestFields fields; with content it
// appends a marker and `sha256sum -z` of every regular file. A missing dir prints
// manifestMissing.
func manifestCmd(dir string, content bool) string {
	cmd := fmt.Sprintf(`cd -- %s 2>/dev/null || { printf '%s\0'; exit 0; }; find . -printf '%%y\0%%s\0%%T@\0%%m\0%%u\0%%g\0%%n\0%%l\0%%p\0'`,
		shellQuote(dir), manifestMissing)
	if content {
		cmd += fmt.Sprintf(` && printf '%s\0' && find . -type f -exec sha256sum -z -- {} +`, manifestSums)
	}
	return cmd
}

// parseManifest parses manifestCmd's output.
func parseManifest(out []byte) (manifest, error) {
	if string(out) == manifestMissing+"\x00" {
		return nil, nil
	}
	fields := bytes.Split(out, []byte{0})
	if len(fields) == 0 || len(fields[len(fields)-1]) != 0 {
		return nil, fmt.Errorf("sshops: manifest: output does not end with NUL")
	}
	fields = fields[:len(fields)-1]
	m := manifest{}
	i := 0
	for ; i < len(fields); i += manifestFields {
		if string(fields[i]) == manifestSums {
			i++
			break
		}
		if i+manifestFields > len(fields) {
			return nil, fmt.Errorf("sshops: manifest: truncated record at field %d", i)
		}
		f := fields[i : i+manifestFields]
		if len(f[0]) != 1 {
			return nil, fmt.Errorf("sshops: manifest: bad type %q", f[0])
		}
		fi := fileInfo{Type: f[0][0], Mode: string(f[3]), User: string(f[4]), Group: string(f[5]), Link: string(f[7])}
		var err error
		if fi.Size, err = strconv.ParseInt(string(f[1]), 10, 64); err != nil {
			return nil, fmt.Errorf("sshops: manifest: size %q: %w", f[1], err)
		}
		sec, _, _ := strings.Cut(string(f[2]), ".")
		if fi.Mtime, err = strconv.ParseInt(sec, 10, 64); err != nil {
			return nil, fmt.Errorf("sshops: manifest: mtime %q: %w", f[2], err)
		}
		if fi.Nlink, err = strconv.Atoi(string(f[6])); err != nil {
			return nil, fmt.Errorf("sshops: manifest: link count %q: %w", f[6], err)
		}
		m[relPath(string(f[8]))] = fi
	}
	for ; i < len(fields); i++ {
		// "<64 hex>  ./name"
		rec := string(fields[i])
		if len(rec) < 67 || rec[64:66] != "  " {
			return nil, fmt.Errorf("sshops: manifest: bad sha256sum record %q", rec)
		}
		p := relPath(rec[66:])
		fi, ok := m[p]
		if !ok {
			continue // created between the two finds
		}
		fi.Sum = rec[:64]
		m[p] = fi
	}
	return m, nil
}

// relPath turns find's "./a/b" into "a/b" and "." into ".".
func relPath(p string) string {
	if p == "." {
		return p
	}
	return strings.TrimPrefix(p, "./")
}

// Difference is one path that differs between old and new.
type Difference struct {
	Path string // absolute path on the hosts
	What string // e.g. "size 5 on old, 7 on new", "missing on new"
}

// maxDifferences is how many differences a VerifyError lists.
const maxDifferences = 20

// VerifyError lists the first differences found by Verify.
type VerifyError struct {
	Differences []Difference // the first 20, sorted by path within each entry
	Total       int
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sshops: verify: %d difference(s) between old and new", e.Total)
	for _, d := range e.Differences {
		fmt.Fprintf(&b, "\n\t%s: %s", d.Path, d.What)
	}
	if n := e.Total - len(e.Differences); n > 0 {
		fmt.Fprintf(&b, "\n\t(%d more)", n)
	}
	return b.String()
}

// compareManifests lists the differences of new against old for the synced directory dir.
// Paths only on new count when extra is true (the entry deletes them).
func compareManifests(dir string, old, new manifest, extra bool) []Difference {
	var diffs []Difference
	add := func(rel, what string) {
		p := dir
		if rel != "." {
			p = path.Join(dir, rel)
		}
		diffs = append(diffs, Difference{Path: p, What: what})
	}
	if new == nil {
		add(".", "missing on new")
		return diffs
	}
	keys := make([]string, 0, len(old)+len(new))
	for k := range old {
		keys = append(keys, k)
	}
	for k := range new {
		if _, ok := old[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		o, inOld := old[k]
		n, inNew := new[k]
		switch {
		case !inNew:
			add(k, "missing on new")
			continue
		case !inOld:
			if extra {
				add(k, "only on new")
			}
			continue
		}
		if what := compareInfo(o, n); what != "" {
			add(k, what)
		}
	}
	return diffs
}

// compareInfo describes how n differs from o, or returns "".
func compareInfo(o, n fileInfo) string {
	if o.Type != n.Type {
		return fmt.Sprintf("type %s on old, %s on new", typeName(o.Type), typeName(n.Type))
	}
	var what []string
	diff := func(name string, a, b any) {
		if a != b {
			what = append(what, fmt.Sprintf("%s %v on old, %v on new", name, a, b))
		}
	}
	switch o.Type {
	case 'f':
		diff("size", o.Size, n.Size)
		if o.Mtime != n.Mtime {
			diff("mtime", mtimeString(o.Mtime), mtimeString(n.Mtime))
		}
		diff("hard links", o.Nlink, n.Nlink)
		diff("sha256", o.Sum, n.Sum)
	case 'd':
		if o.Mtime != n.Mtime {
			diff("mtime", mtimeString(o.Mtime), mtimeString(n.Mtime))
		}
	case 'l':
		diff("target", strconv.Quote(o.Link), strconv.Quote(n.Link))
	}
	if o.Type != 'l' {
		diff("mode", o.Mode, n.Mode)
	}
	diff("owner", o.User+":"+o.Group, n.User+":"+n.Group)
	return strings.Join(what, ", ")
}

func mtimeString(sec int64) string { return time.Unix(sec, 0).UTC().Format(time.RFC3339) }

func typeName(t byte) string {
	switch t {
	case 'f':
		return "file"
	case 'd':
		return "directory"
	case 'l':
		return "symlink"
	case 'p':
		return "fifo"
	case 's':
		return "socket"
	case 'c':
		return "char device"
	case 'b':
		return "block device"
	}
	return strconv.Quote(string(t))
}

// removals lists the paths under the directory to delete on new before a relay pass: those
// missing on old (only when del) and those whose type differs on old (always: tar cannot replace
// a directory by a file or the reverse). Children of a removed directory are left out. The list
// is sorted.
func removals(old, new manifest, del bool) []string {
	var out []string
	for p, n := range new {
		if p == "." {
			continue
		}
		o, ok := old[p]
		if (!ok && del) || (ok && o.Type != n.Type) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	removed := map[string]bool{}
	var pruned []string
next:
	for _, p := range out {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if removed[d] {
				continue next
			}
		}
		removed[p] = true
		pruned = append(pruned, p)
	}
	return pruned
}

// totalSize sums the sizes of the regular files in m.
func (m manifest) totalSize() int64 {
	var n int64
	for _, fi := range m {
		if fi.Type == 'f' {
			n += fi.Size
		}
	}
	return n
}
