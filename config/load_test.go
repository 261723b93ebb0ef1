package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLoadOddFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock.toml")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, strings.Repeat("n", 300)+".toml")
	for _, tc := range []struct {
		desc, path, wantErr string
	}{
		{desc: "a directory", path: dir, wantErr: "config: " + dir + ": is a directory, not a config file: give the path of the TOML file"},
		{desc: "a named pipe does not block", path: fifo, wantErr: "config: " + fifo + ": is a named pipe, not a regular file: give the path of the TOML file"},
		{desc: "a socket", path: sock, wantErr: "config: " + sock + ": is a socket, not a regular file: give the path of the TOML file"},
		{desc: "a device", path: os.DevNull, wantErr: "config: /dev/null: is a character device, not a regular file: give the path of the TOML file"},
		{desc: "larger than 1 MiB", path: big, wantErr: "config: " + big + ": is 1048579 bytes; a config file is at most 1048576 (1 MiB)"},
		{desc: "missing", path: dir + "/nope.toml", wantErr: "config: " + dir + "/nope.toml: cannot be read: no such file or directory"},
		{desc: "a name the kernel refuses", path: long, wantErr: "config: " + long + ": cannot be read: file name too long"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Load(tc.path, Options{})
			if got := errString(err); got != tc.wantErr {
				t.Fatalf("got  %q\nwant %q", got, tc.wantErr)
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error is %T, want *Error (exit 2 in the CLI)", err)
			}
			if !errors.Is(err, ErrUnusableFile) {
				t.Fatalf("errors.Is(err, ErrUnusableFile) is false: the CLI would say to fix lines")
			}
		})
	}
	// A problem in the lines is not about the file.
	if _, err := Parse([]byte("on_failure = 1\n"+minimal), "c.toml", Options{}); err == nil || errors.Is(err, ErrUnusableFile) {
		t.Fatalf("a problem in a line: error %v, want one that is not ErrUnusableFile", err)
	}
}

func TestParseBOM(t *testing.T) {
	cfg, err := Parse([]byte("\ufeff"+minimal), "c.toml", Options{})
	if err != nil {
		t.Fatalf("a byte order mark is refused: %v", err)
	}
	if cfg.DNS.Zone != "example.org." {
		t.Fatalf("zone %q", cfg.DNS.Zone)
	}
	// Positions count from after the mark.
	_, err = Parse([]byte("\ufeffon_failure = \"panic\"\n"+minimal), "c.toml", Options{})
	want := `config: c.toml:1:1: on_failure: "panic" is not one of rollback, stop`
	if got := errString(err); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestFileSecrets(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.toml")
	src := strings.Replace(minimal, `key = "env:TSIG"`, `key = "file:keys/tsig"`, 1)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "keys", "tsig")
	if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // never resolved against the working directory
	for _, tc := range []struct {
		desc     string
		mode     os.FileMode
		warnings []string
	}{
		{desc: "private", mode: 0o600},
		{desc: "group can read", mode: 0o640, warnings: []string{
			path + `:15:1: providers.main.key: secret file "` + key + `" can be read by group or others (mode 0640); run: chmod 600 ` + key}},
		{desc: "anyone can read", mode: 0o604, warnings: []string{
			path + `:15:1: providers.main.key: secret file "` + key + `" can be read by group or others (mode 0604); run: chmod 600 ` + key}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if err := os.WriteFile(key, []byte("c2VjcmV0\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(key, tc.mode); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range cfg.Warnings {
				got = append(got, w.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.warnings, "\n") {
				t.Fatalf("warnings %q, want %q", got, tc.warnings)
			}
			sec := cfg.Provider().Secret("key", true)
			if sec.String() != "file:"+key {
				t.Fatalf("secret %q, want file:%s", sec, key)
			}
			v, err := sec.Resolve()
			if err != nil || v != "c2VjcmV0" {
				t.Fatalf("resolve: %q, %v", v, err)
			}
		})
	}
}

// FuzzLoad feeds the loader arbitrary files: it must never panic, must
// report problems as an *Error with positions inside the file, must give
// the same answer twice, and whatever it accepts must satisfy the rules
// it documents. The seed corpus is in testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "f.toml", Options{})
		_, again := Parse(data, "f.toml", Options{})
		if errString(err) != errString(again) {
			t.Fatalf("two answers for one file:\n%v\n%v", err, again)
		}
		if err != nil {
			checkProblems(t, data, err)
			return
		}
		checkConfig(t, cfg)
	})
}

func checkProblems(t *testing.T, data []byte, err error) {
	ce, ok := err.(*Error)
	if !ok || len(ce.Problems) == 0 {
		t.Fatalf("error %T %v, want an *Error with problems", err, err)
	}
	lines := strings.Count(string(data), "\n") + 1
	for _, p := range ce.Problems {
		if p.File != "f.toml" || p.Msg == "" || p.Line < 0 || p.Col < 0 || p.Line > lines {
			t.Fatalf("bad problem %#v (file has %d lines)", p, lines)
		}
	}
}

func checkConfig(t *testing.T, cfg *Config) {
	if !strings.HasSuffix(cfg.DNS.Zone, ".") || len(cfg.DNS.Names) == 0 {
		t.Fatalf("zone %q, names %q", cfg.DNS.Zone, cfg.DNS.Names)
	}
	for _, n := range cfg.DNS.Names {
		if checkName(n, n) != "" || (n != cfg.DNS.Zone && !strings.HasSuffix(n, "."+cfg.DNS.Zone)) {
			t.Fatalf("name %q accepted in zone %q", n, cfg.DNS.Zone)
		}
	}
	for _, h := range []Host{cfg.Old, cfg.New} {
		if !h.Address.Is4() || notAHost(h.Address) != "" || h.Address6.Zone() != "" || !userRE.MatchString(h.SSHUser) || len(h.SSHUser) > maxUserName {
			t.Fatalf("host accepted: %+v", h)
		}
	}
	if cfg.Old.Address == cfg.New.Address {
		t.Fatalf("old and new both %s", cfg.Old.Address)
	}
	if len(cfg.DNS.Resolvers) == 0 || cfg.DNS.Quorum > len(cfg.DNS.Resolvers) {
		t.Fatalf("resolvers %v, quorum %d", cfg.DNS.Resolvers, cfg.DNS.Quorum)
	}
	for _, list := range [][]netip.AddrPort{cfg.DNS.Resolvers, cfg.DNS.Authoritative} {
		seen := map[netip.AddrPort]bool{}
		for _, ap := range list {
			if seen[ap] {
				t.Fatalf("%s accepted twice in %v", ap, list)
			}
			seen[ap] = true
		}
	}
	if ttl := cfg.DNS.LoweredTTL; ttl < time.Second || ttl > MaxLoweredTTL || ttl%time.Second != 0 {
		t.Fatalf("lowered_ttl %s accepted", ttl)
	}
	if !filepath.IsAbs(cfg.StateDir) || hasControl(cfg.StateDir) {
		t.Fatalf("state_dir %q accepted", cfg.StateDir)
	}
	for i, s := range cfg.Sync {
		if !filepath.IsAbs(s.Path) || s.Path != filepath.Clean(s.Path) || s.Path == "/" || hasControl(s.Path) {
			t.Fatalf("sync path %q accepted", s.Path)
		}
		for _, o := range cfg.Sync[:i] {
			if o.Path == s.Path || strings.HasPrefix(s.Path, o.Path+"/") || strings.HasPrefix(o.Path, s.Path+"/") {
				t.Fatalf("sync paths %q and %q accepted together", o.Path, s.Path)
			}
		}
	}
	for _, h := range []*Hook{cfg.Hooks.Prepare, cfg.Hooks.Disable, cfg.Hooks.Activate, cfg.Hooks.Reenable} {
		if h != nil && (strings.TrimSpace(h.Run) == "" || h.Timeout <= 0) {
			t.Fatalf("hook accepted: %+v", h)
		}
	}
}

// BenchmarkParseSyncs validates a file with 20,000 [[sync]] entries (issue
// 12: the overlap check used to compare every pair, 15 s for this file).
func BenchmarkParseSyncs(b *testing.B) {
	var src strings.Builder
	src.WriteString(minimal)
	for i := range 20000 {
		fmt.Fprintf(&src, "[[sync]]\npath = \"/srv/d%d/sub%d\"\n", i%100, i)
	}
	data := []byte(src.String())
	for b.Loop() {
		if _, err := Parse(data, "c.toml", Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
