package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// layoutRow is a row of the README's layout table: its path in backquotes.
var layoutRow = regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")

// TestREADMELayout checks that the README's layout table matches the
// folders: every path it names exists; every top-level folder, and every
// folder directly under cmd/ and internal/, has a row of its own; and every
// Go package lies under a row. Folders that .gitignore names (bin/, which
// scripts/demo builds, bench/out/) are not the project's and need no row.
func TestREADMELayout(t *testing.T) {
	const root = "../.."
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Layout\n")
	section, _, _ = strings.Cut(section, "\n## ")
	if !ok {
		t.Fatal(`README.md has no "## Layout" section`)
	}
	var rows []string
	for _, m := range layoutRow.FindAllStringSubmatch(section, -1) {
		rows = append(rows, m[1])
		if fi, err := os.Stat(filepath.Join(root, m[1])); err != nil || !fi.IsDir() {
			t.Errorf("the layout table names %s, which is not a folder", m[1])
		}
	}
	if len(rows) == 0 {
		t.Fatal("the layout section has no table rows")
	}

	ignored := gitignoredDirs(t, root)
	var want []string // folders that need a row of their own
	for _, parent := range []string{".", "cmd", "internal"} {
		entries, err := os.ReadDir(filepath.Join(root, parent))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			name := filepath.ToSlash(filepath.Join(parent, e.Name()))
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && name != "cmd" && name != "internal" && !ignored[name] {
				want = append(want, name)
			}
		}
	}
	for _, w := range want {
		if !slices.Contains(rows, w) {
			t.Errorf("the layout table has no row for %s", w)
		}
	}

	under := func(dir string) bool {
		return slices.ContainsFunc(rows, func(r string) bool { return dir == r || strings.HasPrefix(dir, r+"/") })
	}
	reported := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if rel, err := filepath.Rel(root, path); err == nil && d.IsDir() && ignored[filepath.ToSlash(rel)] {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".go") {
			return nil
		}
		dir, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		if dir = filepath.ToSlash(dir); !under(dir) && !reported[dir] {
			reported[dir] = true
			t.Errorf("package %s is not under any row of the layout table", dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// gitignoredDirs returns the folders that root's .gitignore names as
// anchored directories ("/bin/"), relative to root.
func gitignoredDirs(t *testing.T, root string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "/") && strings.HasSuffix(l, "/") && len(l) > 2 {
			dirs[strings.Trim(l, "/")] = true
		}
	}
	return dirs
}
