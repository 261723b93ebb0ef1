package sshops

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseProgress(t *testing.T) {
	for _, tc := range []struct {
		desc string
		line string
		want Progress
		ok   bool
	}{
		{desc: "running", line: "     52,428,800  42%   12.50MB/s    0:00:06 (xfr#12, to-chk=100/2000)",
			want: Progress{Bytes: 52428800, TotalBytes: 124830476, Files: 12, Rate: 12.5 * (1 << 20), ETA: 6 * time.Second}, ok: true},
		{desc: "incremental recursion", line: "        1,024   0%    1.00kB/s    1:02:03 (xfr#1, ir-chk=1000/1002)",
			want: Progress{Bytes: 1024, Files: 1, Rate: 1024, ETA: time.Hour + 2*time.Minute + 3*time.Second}, ok: true},
		{desc: "listing not finished is not done", line: "      2,048 100%    1.00kB/s    0:00:02 (xfr#2, ir-chk=0/1002)",
			want: Progress{Bytes: 2048, TotalBytes: 2048, Files: 2, Rate: 1024, ETA: 2 * time.Second}, ok: true},
		{desc: "done", line: "  1,000,000 100%  953.67kB/s    0:00:01 (xfr#3, to-chk=0/5)",
			want: Progress{Bytes: 1000000, TotalBytes: 1000000, Files: 3, Rate: 953.67 * 1024, Done: true}, ok: true},
		{desc: "before the first file", line: "              0   0%    0.00kB/s    0:00:00",
			want: Progress{}, ok: true},
		{desc: "done below 100% (hard links)", line: "    950,000  95%  953.67kB/s    0:00:01 (xfr#3, to-chk=0/5)",
			want: Progress{Bytes: 950000, TotalBytes: 950000, Files: 3, Rate: 953.67 * 1024, Done: true}, ok: true},
		{desc: "plain bytes rate", line: "            512  50%  512.00B/s    0:00:01 (xfr#1, to-chk=1/3)",
			want: Progress{Bytes: 512, TotalBytes: 1024, Files: 1, Rate: 512, ETA: time.Second}, ok: true},
		{desc: "error line", line: "rsync: [sender] link_stat \"/x\" failed: No such file or directory (2)", ok: false},
		{desc: "empty", line: "", ok: false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, ok := parseProgress(tc.line)
			if ok != tc.ok {
				t.Fatalf("parseProgress(%q) ok = %v, want %v", tc.line, ok, tc.ok)
			}
			if got != tc.want {
				t.Errorf("parseProgress(%q) = %+v, want %+v", tc.line, got, tc.want)
			}
		})
	}
}

func TestRsyncArgs(t *testing.T) {
	ssh := sshCommand(2222, "/tmp/cutover-onetime-ab/id", "/tmp/cutover-onetime-ab/known_hosts", "127.0.0.10")
	wantSSH := "ssh -F /dev/null -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/tmp/cutover-onetime-ab/known_hosts -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=15 -o ServerAliveInterval=15 -o IdentitiesOnly=yes -o IdentityAgent=none -i /tmp/cutover-onetime-ab/id -o BindAddress=127.0.0.10"
	if ssh != wantSSH {
		t.Fatalf("sshCommand =\n%s\nwant\n%s", ssh, wantSSH)
	}
	for _, tc := range []struct {
		desc  string
		final bool
		e     Entry
		want  string
	}{
		{desc: "initial never deletes and lists the tree first", e: Entry{Path: "/home/vmail/mail", Delete: true},
			want: "rsync -aHs --info=progress2 --out-format= -e 'ssh -p 22' --no-inc-recursive -- /home/vmail/mail/ root@127.0.0.20:/home/vmail/mail/"},
		{desc: "final with delete", final: true, e: Entry{Path: "/home/vmail/mail/", Delete: true},
			want: "rsync -aHs --info=progress2 --out-format= -e 'ssh -p 22' --delete -- /home/vmail/mail/ root@127.0.0.20:/home/vmail/mail/"},
		{desc: "final without delete", final: true, e: Entry{Path: "/etc/dkim keys"},
			want: "rsync -aHs --info=progress2 --out-format= -e 'ssh -p 22' -- '/etc/dkim keys/' 'root@127.0.0.20:/etc/dkim keys/'"},
		{desc: "ACLs and xattrs on request", final: true, e: Entry{Path: "/srv/acl", Xattrs: true},
			want: "rsync -aHsAX --info=progress2 --out-format= -e 'ssh -p 22' -- /srv/acl/ root@127.0.0.20:/srv/acl/"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := shellJoin(rsyncArgs("ssh -p 22", tc.e, "root@127.0.0.20", tc.final))
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestOwnerCheck(t *testing.T) {
	m := manifest{
		".":       {Type: 'd', User: "vmail", Group: "vmail"},
		"a":       {Type: 'f', User: "vmail", Group: "vmail"},
		"b":       {Type: 'f', User: "root", Group: "vmail"},
		"c":       {Type: 'f', User: "vmail", Group: "root"},
		"d/5000":  {Type: 'f', User: "5000", Group: "5000"},
		"d/other": {Type: 'l', User: "vmail", Group: "vmail"},
	}
	for _, tc := range []struct {
		desc, user, group string
		withGroup         bool
		want              []string
	}{
		{desc: "user and group", user: "vmail", group: "vmail", withGroup: true, want: []string{"b", "c", "d/5000"}},
		{desc: "user only", user: "vmail", want: []string{"b", "d/5000"}},
		{desc: "all wrong", user: "opendkim", want: []string{".", "a", "b", "c", "d/5000", "d/other"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := &ownerCheck{user: tc.user, group: tc.group, withGroup: tc.withGroup}
			for rel, fi := range m {
				c.add(rel, fi)
			}
			slices.Sort(c.bad)
			if c.tooMany || !slices.Equal(c.bad, tc.want) {
				t.Errorf("bad %q, too many %v; want %q, false", c.bad, c.tooMany, tc.want)
			}
		})
	}
	c := &ownerCheck{user: "vmail"}
	for i := range maxOwnerFixes + 1 {
		c.add(strconv.Itoa(i), fileInfo{Type: 'f', User: "root"})
	}
	if !c.tooMany || c.bad != nil {
		t.Errorf("more than %d wrong owners: %d listed, too many %v; want none, true (Fixup runs chown -R)", maxOwnerFixes, len(c.bad), c.tooMany)
	}
}

func TestParseIDNames(t *testing.T) {
	ids := parseIDNames("root:x:0:0:root:/root:/bin/bash\nvmail:x:5000:5000::/home/vmail:/usr/sbin/nologin\ntwin:x:5000:5000::/:/bin/sh\n" +
		idsGroups + "\nroot:x:0:\nvmail:x:5000:\n")
	for _, tc := range []struct {
		desc string
		m    map[string]string
		id   string
		want string
	}{
		{desc: "user", m: ids.users, id: "0", want: "root"},
		{desc: "first name of a uid wins", m: ids.users, id: "5000", want: "vmail"},
		{desc: "group", m: ids.groups, id: "5000", want: "vmail"},
		{desc: "no name stays a number", m: ids.groups, id: "6001", want: "6001"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := ids.name(tc.m, []byte(tc.id)); got != tc.want {
				t.Errorf("name(%s) = %q, want %q", tc.id, got, tc.want)
			}
		})
	}
}

func TestLoginGroup(t *testing.T) {
	ids := parseIDNames("root:x:0:0:root:/root:/bin/bash\nvmail:x:5000:5000::/home/vmail:/usr/sbin/nologin\nvmail:x:5001:0::/:/bin/sh\n" +
		"orphan:x:6000:6000::/:/bin/sh\n" + idsGroups + "\nroot:x:0:\nvmail:x:5000:\n")
	for _, tc := range []struct {
		desc  string
		user  string
		want  string
		found bool
	}{
		{desc: "login group", user: "vmail", want: "vmail", found: true},
		{desc: "root", user: "root", want: "root", found: true},
		{desc: "group without a name", user: "orphan"},
		{desc: "unknown user", user: "nobody"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got, ok := ids.loginGroup(tc.user); got != tc.want || ok != tc.found {
				t.Errorf("loginGroup(%q) = %q, %v; want %q, %v", tc.user, got, ok, tc.want, tc.found)
			}
		})
	}
}

// TestManifestLocal runs manifestCmd with the local shell on a tree with awkward names and
// parses it.
func TestManifestLocal(t *testing.T) {
	dir := t.TempDir()
	names := []string{"cur/1700000000.M1P2.host:2,S", "new/with space", "new/line\nbreak", "-dash"}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"+n), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, names[0]), filepath.Join(dir, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("cur", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", manifestCmd(dir, true)).Output()
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"-dash", ".", "cur", "cur/1700000000.M1P2.host:2,S", "hard", "link", "new", "new/line\nbreak", "new/with space"}
	if !slices.Equal(keys, want) {
		t.Fatalf("paths %q, want %q", keys, want)
	}
	f := m["new/line\nbreak"]
	if f.Type != 'f' || f.Size != int64(len("xnew/line\nbreak")) || f.Mode != "640" || len(f.Sum) != 64 || f.Nlink != 1 {
		t.Errorf("file info %+v", f)
	}
	if m["hard"].Nlink != 2 || m["hard"].Sum != m[names[0]].Sum {
		t.Errorf("hard link info %+v vs %+v", m["hard"], m[names[0]])
	}
	if m["link"].Type != 'l' || m["link"].Link != "cur" {
		t.Errorf("symlink info %+v", m["link"])
	}

	missing, err := exec.Command("sh", "-c", manifestCmd(filepath.Join(dir, "nope"), true)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if mm, err := parseManifest(missing); err != nil || mm != nil {
		t.Errorf("missing dir: manifest %v, err %v; want nil, nil", mm, err)
	}
}

func TestParseManifestErrors(t *testing.T) {
	for _, tc := range []struct {
		desc, in, want string
	}{
		{desc: "no final NUL", in: "f", want: "sshops: manifest: output does not end with NUL"},
		{desc: "truncated", in: "f\x001\x00", want: "sshops: manifest: truncated record at field 0"},
		{desc: "bad size", in: "f\x00x\x001.5\x00644\x00root\x00root\x001\x00\x00./a\x00", want: `sshops: manifest: size "x": strconv.ParseInt: parsing "x": invalid syntax`},
		{desc: "bad sum", in: "f\x001\x001.5\x00644\x00root\x00root\x001\x00\x00./a\x00cutover-sha256\x00abc\x00", want: `sshops: manifest: bad sha256sum record "abc"`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := parseManifest([]byte(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %s", err, tc.want)
			}
		})
	}
}

func TestCompareManifests(t *testing.T) {
	file := fileInfo{Type: 'f', Size: 5, Mtime: 1700000000, Mode: "644", User: "vmail", Group: "vmail", Nlink: 1, Sum: "aa"}
	dir := fileInfo{Type: 'd', Size: 4096, Mtime: 1700000000, Mode: "755", User: "vmail", Group: "vmail", Nlink: 2}
	with := func(f fileInfo, mod func(*fileInfo)) fileInfo { mod(&f); return f }
	old := manifest{".": dir, "cur": dir, "cur/a:2,S": file, "cur/b": file}
	for _, tc := range []struct {
		desc  string
		new   manifest
		extra bool
		want  []Difference
	}{
		{desc: "equal, directory sizes ignored", new: manifest{".": with(dir, func(f *fileInfo) { f.Size = 60 }), "cur": dir, "cur/a:2,S": file, "cur/b": file}},
		{desc: "missing dir on new", new: nil, want: []Difference{{"/m", "missing on new"}}},
		{desc: "extra ignored without delete", new: manifest{".": dir, "cur": dir, "cur/a:2,S": file, "cur/b": file, "x": file}},
		{desc: "extra counted with delete", extra: true, new: manifest{".": dir, "cur": dir, "cur/a:2,S": file, "cur/b": file, "x": file},
			want: []Difference{{"/m/x", "only on new"}}},
		{desc: "every kind", new: manifest{
			".":         with(dir, func(f *fileInfo) { f.Mtime++ }),
			"cur":       with(dir, func(f *fileInfo) { f.Type = 'l'; f.Link = "x" }),
			"cur/a:2,S": with(file, func(f *fileInfo) { f.Size = 6; f.Sum = "bb"; f.User = "root"; f.Nlink = 2 }),
		}, want: []Difference{
			{"/m", "mtime 2023-11-14T22:13:20Z on old, 2023-11-14T22:13:21Z on new"},
			{"/m/cur", "type directory on old, symlink on new"},
			{"/m/cur/a:2,S", "size 5 on old, 6 on new, hard links 1 on old, 2 on new, sha256 aa on old, bb on new, owner vmail:vmail on old, root:vmail on new"},
			{"/m/cur/b", "missing on new"},
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := compareManifests("/m", old, tc.new, tc.extra)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestVerifyErrorText(t *testing.T) {
	e := &VerifyError{Total: 22, Differences: []Difference{{"/m/a", "missing on new"}, {"/m/b", "size 1 on old, 2 on new"}}}
	want := "sshops: verify: 22 difference(s) between old and new\n\t/m/a: missing on new\n\t/m/b: size 1 on old, 2 on new\n\t(20 more)"
	if e.Error() != want {
		t.Errorf("got  %q\nwant %q", e.Error(), want)
	}
}

func TestRemovals(t *testing.T) {
	f := fileInfo{Type: 'f'}
	d := fileInfo{Type: 'd'}
	old := manifest{".": d, "a": d, "a/x": f, "b": f, "c": d}
	new := manifest{".": d, "a": d, "a/x": f, "a/gone": f, "b": d, "b/inner": f, "c": f, "z": d, "z/deep": d, "z b": f}
	for _, tc := range []struct {
		desc string
		del  bool
		want []string
	}{
		{desc: "type changes only", want: []string{"b", "c"}},
		{desc: "with delete", del: true, want: []string{"a/gone", "b", "c", "z", "z b"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := removals(old, new, tc.del); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLineSink(t *testing.T) {
	var buf bytes.Buffer
	tl := &tail{}
	var progress []string
	s := &lineSink{log: newLineLog(&buf, "old"), tail: tl, onCR: func(l string) {
		if isProgressLine(l) {
			progress = append(progress, l)
		}
	}}
	in := "first\n  1,024  50%  1.00kB/s    0:00:01 (xfr#1, to-chk=1/2)\r  2,048 100%  2.00kB/s    0:00:01 (xfr#2, to-chk=0/2)\nlast without newline"
	for _, b := range []byte(in) { // byte by byte: lines split across writes
		s.Write([]byte{b})
	}
	s.flush()
	if got, want := buf.String(), "[old] first\n[old] last without newline\n"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
	if len(progress) != 2 {
		t.Errorf("progress lines %q, want 2", progress)
	}
	for i := range 30 {
		tl.add(strings.Repeat("x", i))
	}
	if got := tl.get(); len(got) != 20 || got[19] != strings.Repeat("x", 29) {
		t.Errorf("tail %q", got)
	}
}

func TestProgressString(t *testing.T) {
	for _, tc := range []struct {
		desc string
		p    Progress
		want string
	}{
		{desc: "running", p: Progress{Path: "/home/vmail/mail", Bytes: 3 << 30, TotalBytes: 12 << 30, Files: 1200, Rate: 50 << 20, ETA: 3*time.Minute + 400*time.Millisecond},
			want: "/home/vmail/mail: 3.0 GiB of 12.0 GiB (25%), 1200 files, 50.0 MiB/s, ETA 3m0s"},
		{desc: "unknown total", p: Progress{Path: "/etc/dkimkeys", Bytes: 512, Rate: 100},
			want: "/etc/dkimkeys: 512 B, 0 files, 100 B/s"},
		{desc: "done", p: Progress{Path: "/x", Bytes: 1536, TotalBytes: 1536, Files: 2, Rate: 2048, Done: true},
			want: "/x: 1.5 KiB of 1.5 KiB (100%), 2 files, 2.0 KiB/s, done"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := tc.p.String(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestRsyncVanishedLines(t *testing.T) {
	for _, tc := range []struct {
		desc            string
		line            string
		error, vanished bool
	}{
		{desc: "vanished file", line: `file has vanished: "/home/vmail/mail/u/tmp/1.churn"`, error: true, vanished: true},
		{desc: "xattr of a file that just went", line: `rsync: [sender] get_xattr_names: llistxattr("/home/vmail/mail/u/tmp/1.vm") failed: No such file or directory (2)`, error: true, vanished: true},
		{desc: "permission denied is a real error", line: `rsync: [sender] send_files failed to open "/etc/dkimkeys/x": Permission denied (13)`, error: true},
		{desc: "a missing entry root is a real error", line: `rsync: [sender] change_dir "/var/lib/acme/missing" failed: No such file or directory (2)`, error: true},
		{desc: "a missing top-level source is a real error", line: `rsync: [sender] link_stat "/x" failed: No such file or directory (2)`, error: true},
		{desc: "a file gone before it was opened", line: `rsync: [sender] send_files failed to open "/home/vmail/mail/u/new/1": No such file or directory (2)`, error: true, vanished: true},
		{desc: "ENOENT on the receiver is a real error", line: `rsync: [receiver] mkstemp "/x" failed: No such file or directory (2)`, error: true},
		{desc: "summary of code 23", line: `rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1338) [sender=3.2.7]`},
		{desc: "summary of code 24", line: `rsync warning: some files vanished before they could be transferred (code 24) at main.c(1338) [sender=3.2.7]`},
		{desc: "progress", line: `     32,768 100%   31.25MB/s    0:00:00 (xfr#1, to-chk=0/1)`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := isRsyncError(tc.line); got != tc.error {
				t.Errorf("isRsyncError = %v, want %v", got, tc.error)
			}
			if got := isRsyncError(tc.line) && isVanished(tc.line); got != tc.vanished {
				t.Errorf("vanished = %v, want %v", got, tc.vanished)
			}
		})
	}
}

// TestCompareStreamsLocal compares two local trees with awkward names both ways: the sorted
// streams must find exactly what the in-memory manifests find.
func TestCompareStreamsLocal(t *testing.T) {
	root := t.TempDir()
	old, new := filepath.Join(root, "old"), filepath.Join(root, "new")
	script := `set -e; for d in "$1" "$2"; do mkdir -p "$d/cur" "$d/new" "$d/a b" "$d/a"; printf 1 > "$d/cur/m:2,S"; printf 2 > "$d/new/line
break"; printf 3 > "$d/a b/x"; printf 4 > "$d/a/x"; printf 5 > "$d/-dash"; ln "$d/cur/m:2,S" "$d/hard"; ln -s cur "$d/link"; done
printf 11 > "$2/cur/m:2,S"; rm "$2/a/x"; printf e > "$2/a/extra"; chmod 600 "$2/a b/x"; rm "$2/link"; ln -s new "$2/link"; rm "$1/-dash"
touch -d @1700000000 "$1"/* "$1"/*/* "$2"/* "$2"/*/* "$1" "$2"`
	if out, err := exec.Command("sh", "-c", script, "sh", old, new).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	mapOf := func(dir string) manifest {
		out, err := exec.Command("sh", "-c", manifestCmd(dir, false)).Output()
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseManifest(out)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	streamOf := func(dir string) *recordReader {
		out, err := exec.Command("sh", "-c", sortedManifestCmd(dir)).Output()
		if err != nil {
			t.Fatal(err)
		}
		ids, err := exec.Command("sh", "-c", "getent passwd && echo "+idsGroups+" && getent group").Output()
		if err != nil {
			t.Fatal(err)
		}
		return newRecordReader(bytes.NewReader(out), parseIDNames(string(ids)))
	}
	for _, extra := range []bool{true, false} {
		want := compareManifests("/m", mapOf(old), mapOf(new), extra)
		if len(want) < 5 {
			t.Fatalf("the trees differ in %d ways, want at least 5: %v", len(want), want)
		}
		var seen []string
		got, err := compareStreams("/m", streamOf(old), streamOf(new), extra, func(rel string, _ fileInfo) { seen = append(seen, rel) })
		if err != nil {
			t.Fatal(err)
		}
		if got.total != len(want) || !slices.Equal(got.first, want) {
			t.Errorf("extra %v: streams found %d: %v\nmaps found %d: %v", extra, got.total, got.first, len(want), want)
		}
		if len(seen) != len(mapOf(new)) || got.oldSize != len(mapOf(old)) {
			t.Errorf("extra %v: %d records of new seen, %d of old counted; want %d, %d", extra, len(seen), got.oldSize, len(mapOf(new)), len(mapOf(old)))
		}
	}
	if rr := streamOf(filepath.Join(root, "nope")); !rr.missing {
		t.Errorf("missing dir: not reported as missing")
	}
	for _, tc := range []struct{ desc, in, want string }{
		{desc: "no status", in: "", want: "sshops: manifest: stream ended before find's status"},
		{desc: "find failed", in: "cutover-find-status 1\x00", want: "sshops: manifest: find exited with status 1"},
		{desc: "separator in a name", in: "./a\x01b\x01f\x011\x011.0\x01644\x01root\x01root\x011\x01\x00", want: "sshops: manifest: record \"./a\\x01b\\x01f\\x011\\x011.0\\x01644\\x01root\\x01root\\x011\\x01\": a name holding \\x01 is not supported"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			rr := newRecordReader(strings.NewReader(tc.in), parseIDNames(""))
			if _, err := rr.next(); err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %s", err, tc.want)
			}
		})
	}
}

// TestEndpointDest: ssh takes an IPv6 address bare (it cannot resolve "[::1]"), rsync's remote
// path needs it in brackets before the ":dir".
func TestEndpointDest(t *testing.T) {
	for _, tc := range []struct {
		desc            string
		ep              Endpoint
		wantSSH, wantRs string
	}{
		{desc: "IPv4, default user", ep: Endpoint{Addr: netip.MustParseAddr("192.0.2.20")}, wantSSH: "root@192.0.2.20", wantRs: "root@192.0.2.20"},
		{desc: "IPv6, a user", ep: Endpoint{Addr: netip.MustParseAddr("2001:db8::20"), User: "admin"}, wantSSH: "admin@2001:db8::20", wantRs: "admin@[2001:db8::20]"},
	} {
		if got := tc.ep.sshDest(); got != tc.wantSSH {
			t.Errorf("%s: sshDest %q, want %q", tc.desc, got, tc.wantSSH)
		}
		if got := tc.ep.rsyncDest(); got != tc.wantRs {
			t.Errorf("%s: rsyncDest %q, want %q", tc.desc, got, tc.wantRs)
		}
	}
}
