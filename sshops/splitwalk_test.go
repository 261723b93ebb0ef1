package sshops

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// splitManifestCmd prints exactly what sortedManifestCmd prints, on trees of every shape, and
// leaves no temp dir behind.
func TestSplitManifestCmd(t *testing.T) {
	for _, tc := range []struct {
		desc string
		tree string // run in the tree's root
	}{
		{desc: "empty directory", tree: "true"},
		{desc: "only files at the top", tree: "echo a > a; echo b > b"},
		{desc: "one directory at depth 2", tree: "mkdir -p d/e && echo x > d/e/f"},
		{desc: "a Maildir store", tree: `for u in alice bob carol dave eve; do for s in cur new tmp; do mkdir -p "example.org/$u/$s"; done
for i in 1 2 3; do echo "$i" > "example.org/$u/cur/$i:2,S"; done; echo uid > "example.org/$u/dovecot-uidlist"; done
ln example.org/alice/cur/1:2,S example.org/bob/cur/hard`},
		{desc: "awkward names, links and files at depth 2", tree: `mkdir -p 'a b/c d' 'a b/-x/y' "$(printf 'n\nl')/z/w" a.b/c a/b
echo 1 > 'a b/c d/f'; echo 2 > 'a b/file at depth 2'; echo 3 > "$(printf 'n\nl')/z/w/g"; ln -s ../a 'a b/link to dir'
ln -s missing a/b/dangling; echo 4 > a.b/c/h; chmod 2750 a/b; mkdir -p e/f/g/h/i`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			root, tmp := filepath.Join(t.TempDir(), "tree"), t.TempDir()
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			sh := func(cmd string) []byte {
				t.Helper()
				c := exec.Command("/bin/sh", "-c", cmd)
				c.Dir = root
				var stderr bytes.Buffer
				c.Stderr = &stderr
				out, err := c.Output()
				if err != nil {
					t.Fatalf("%s: %v: %s", cmd, err, stderr.String())
				}
				return out
			}
			sh(tc.tree)
			want, got := sh(sortedManifestCmd(root)), sh(splitManifestCmd(root, tmp))
			if !bytes.Equal(got, want) {
				t.Errorf("split walk:\n%q\nwant\n%q", strings.ReplaceAll(string(got), "\x00", "\n"), strings.ReplaceAll(string(want), "\x00", "\n"))
			}
			if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
				t.Errorf("left in the temp dir: %v", ents)
			}
		})
	}
	t.Run("missing dir", func(t *testing.T) {
		out, err := exec.Command("/bin/sh", "-c", splitManifestCmd("/nonexistent/cutover", t.TempDir())).Output()
		if err != nil || string(out) != manifestMissing+"\x00" {
			t.Errorf("got %q, %v; want %q", out, err, manifestMissing+"\x00")
		}
	})
	t.Run("a directory gone between the listing and its walk: status 1", func(t *testing.T) {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := strings.Replace(splitManifestCmd(root, t.TempDir()), "xargs -0", "rm -rf ./a/b; xargs -0", 1)
		out, _ := exec.Command("/bin/sh", "-c", cmd).Output()
		if !bytes.HasSuffix(out, []byte(findStatus+"1\x00")) {
			t.Errorf("got %q, want it to end with status 1", out)
		}
	})
}
