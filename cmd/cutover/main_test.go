package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/scheduler"
)

// The CLI is tested as scripts over main(): testdata/script/*.txtar, with
// golden output. go test ./cmd/cutover -update rewrites the sections that
// `cmp` compares with; those compared by `cmpenv` (they name $WORK or
// $LOCKHOLDER) are edited by hand.
//
// Each script gets its own BIND primary for example.org from internal/lab
// ($DNS, port 53, on a reserved 127.A.B.0/24 block): mail A 127.0.0.10 and
// AAAA ::10 with TTL 3600, updates and transfers allowed with the TSIG key
// "cutover." whose secret is in $TSIG_KEY. No test asks a server off this
// machine. Commands added to the script language:
//
//	exits CODE cutover ARGS...   run a command, require exit code CODE
//	query NAME TYPE              print what $DNS serves for NAME TYPE, one "TTL TYPE VALUE" line per record
//	zoneset NAME TYPE TTL VALUE  replace the NAME TYPE records on $DNS, as someone else than cutover would
//	holdlock DIR                 hold the lock of state dir DIR until the script ends; $LOCKHOLDER is what it says

var update = flag.Bool("update", false, "rewrite the golden sections of the scripts")

// TestMain runs the tests in a network namespace of the lab (lab.RunIsolated),
// where setup's BIND servers may start. The scripts' cutover commands are this
// binary run again as "cutover" (testscript.RunMain); they get the lab's mark
// from setup and the exits command, so Isolate lets them run where they are,
// in the scripts' namespace, next to $DNS.
func TestMain(m *testing.M) {
	lab.RunIsolated(func() int {
		return testscript.RunMain(m, map[string]func() int{"cutover": func() int { main(); return 0 }})
	})
}

func TestScripts(t *testing.T) {
	lab.Require(t, "root", "ip", "named")
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       *update,
		Setup:               setup,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":    exits,
			"query":    query,
			"holdlock": holdLock,
			"zoneset":  zoneSet,
		},
	})
}

// setup starts the script's BIND server and fills in the config files,
// which name the server ($DNS) and absolute paths ($WORK).
func setup(env *testscript.Env) error {
	n, err := lab.ReserveNet()
	if err != nil {
		return err
	}
	env.Defer(func() { n.Release() })
	key := lab.NewTSIG("cutover")
	b, err := lab.StartBIND(lab.BINDOptions{Addr: n.IP(53), Key: key, Zone: lab.Zone{
		Origin: "example.org.", TTL: 3600, Minimum: 300,
		Records: []string{"mail 3600 IN A 127.0.0.10", "mail 3600 IN AAAA ::10"},
	}})
	if err != nil {
		return err
	}
	env.Defer(func() { b.Stop() })
	addr := b.Addr.Addr().String() // port 53
	env.Setenv("DNS", addr)
	env.Setenv("TSIG_KEY", key.Secret)
	tomls, _ := filepath.Glob(filepath.Join(env.WorkDir, "*.toml"))
	for _, f := range tomls {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		data = bytes.ReplaceAll(data, []byte("$DNS"), []byte(addr))
		data = bytes.ReplaceAll(data, []byte("$WORK"), []byte(env.WorkDir))
		if err := os.WriteFile(f, data, 0o600); err != nil {
			return err
		}
	}
	if err := absJournalConfigs(filepath.Join(env.WorkDir, "state"), env.WorkDir); err != nil {
		return err
	}
	env.Setenv("XDG_STATE_HOME", env.WorkDir+"/state")
	env.Setenv("SSH_AUTH_SOCK", "")
	env.Setenv(lab.NetnsEnv, os.Getenv(lab.NetnsEnv))
	return nil
}

// relConfig is the "config" field of a hand-written journal that names its
// config file relative to the script's directory, as "config": "stopped.toml".
var relConfig = regexp.MustCompile(`"config": "([^"/][^"]*)"`)

// absJournalConfigs makes the config path in every state/**/journal.json of a
// script absolute ($WORK/stopped.toml): a journal records the absolute path
// of the config it belongs to, which is only known once $WORK is. With that
// and the rest of its identity written out (zone, names, addresses,
// provider), a hand-written journal is a current one, used as it is; one
// without an identity is a journal from before identities, which the first
// command that changes things adopts (journal.txtar tests that, with a
// journal outside state/ whose relative path is left as written).
func absJournalConfigs(stateDir, work string) error {
	return filepath.WalkDir(stateDir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path == stateDir {
			return nil
		}
		if err != nil || d.IsDir() || d.Name() != scheduler.JournalFile {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		data = relConfig.ReplaceAll(data, []byte(`"config": "`+work+`/$1"`))
		return os.WriteFile(path, data, 0o600)
	})
}

// exits runs a command with the script's environment and checks its exit code.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: exits CODE command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	path, err := exec.LookPath(args[1])
	if p := ts.Getenv("PATH"); err != nil || p != "" {
		for _, dir := range strings.Split(p, ":") {
			if _, serr := os.Stat(dir + "/" + args[1]); serr == nil {
				path, err = dir+"/"+args[1], nil
				break
			}
		}
	}
	ts.Check(err)
	cmd := exec.Command(path, args[2:]...)
	cmd.Dir = ts.Getenv("WORK")
	var env []string
	for _, k := range []string{"PATH", "HOME", "WORK", "DNS", "XDG_STATE_HOME", "CUTOVER_TEST_NOW", "SSH_AUTH_SOCK", "TSIG_KEY", lab.NetnsEnv} {
		env = append(env, k+"="+ts.Getenv(k))
	}
	// testscript.Main re-executes this binary as "cutover".
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GO") || strings.HasPrefix(kv, "TESTSCRIPT") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = ts.Stdout(), ts.Stderr()
	err = cmd.Run()
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	if (got == want) == neg {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// query asks $DNS directly (not through cutover) for NAME TYPE and prints
// the records of the answer, sorted, or "none" and the rcode.
func query(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: query NAME TYPE")
	}
	qtype, ok := dns.StringToType[args[1]]
	if !ok {
		ts.Fatalf("query: unknown type %q", args[1])
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(args[0]), qtype)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, _, err := (&dns.Client{}).ExchangeContext(ctx, m, net.JoinHostPort(ts.Getenv("DNS"), "53"))
	ts.Check(err)
	var lines []string
	for _, rr := range r.Answer {
		h := rr.Header()
		lines = append(lines, fmt.Sprintf("%d %s %s", h.Ttl, dns.TypeToString[h.Rrtype], strings.TrimPrefix(rr.String(), h.String())))
	}
	if len(lines) == 0 {
		lines = append(lines, "none "+dns.RcodeToString[r.Rcode])
	}
	slices.Sort(lines)
	fmt.Fprintln(ts.Stdout(), strings.Join(lines, "\n"))
}

// zoneSet replaces an RRset on $DNS by an update signed with the script's
// TSIG key: a change behind cutover's back.
func zoneSet(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: zoneset NAME TYPE TTL VALUE")
	}
	rr, err := dns.NewRR(strings.Join([]string{dns.Fqdn(args[0]), args[2], "IN", args[1], args[3]}, " "))
	ts.Check(err)
	m := new(dns.Msg)
	m.SetUpdate("example.org.")
	m.RemoveRRset([]dns.RR{rr})
	m.Insert([]dns.RR{rr})
	m.SetTsig("cutover.", dns.HmacSHA256, 300, time.Now().Unix())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := &dns.Client{TsigSecret: map[string]string{"cutover.": ts.Getenv("TSIG_KEY")}}
	r, _, err := c.ExchangeContext(ctx, m, net.JoinHostPort(ts.Getenv("DNS"), "53"))
	ts.Check(err)
	if r.Rcode != dns.RcodeSuccess {
		ts.Fatalf("zoneset: update refused: %s", dns.RcodeToString[r.Rcode])
	}
}

// holdLock takes the lock of a state dir, as a running cutover would,
// until the script ends.
func holdLock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: holdlock DIR")
	}
	dir := ts.MkAbs(args[0])
	l, err := scheduler.AcquireLock(dir, "cutover run (held by the test)", time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	ts.Check(err)
	ts.Defer(func() { l.Release() })
	holder, err := os.ReadFile(filepath.Join(dir, scheduler.LockFile))
	ts.Check(err)
	ts.Setenv("LOCKHOLDER", strings.TrimSpace(string(holder)))
}
