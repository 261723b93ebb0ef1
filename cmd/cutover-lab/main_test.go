package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/internal/cli"
	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/rogpeppe/go-internal/testscript"
)

// The CLI is tested as scripts over main(): testdata/script/*.txtar (usage errors, no root
// needed) and testdata/lab/*.txtar (as root: labs stood up for real in $LABDIR, outside /tmp,
// and taken down). The test binary also serves as `cutover`, so that a script can run
// `cutover-lab exec -- cutover plan ...` (cutover-lab itself does not link cutover).

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"cutover-lab": main,
		"cutover":     func() { os.Exit(cli.Main(os.Args[1:])) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script", RequireExplicitExec: true})
}

func TestLabScripts(t *testing.T) {
	lab.Require(t, "root", "ip", "sshd", "ssh", "unshare", "nsenter", "named", "unbound", "postfix", "dovecot", "opendkim")
	labmail := lab.BuildLabmail(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/lab",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			d, err := os.MkdirTemp("/var/tmp", "cutover-lab-test-")
			if err != nil {
				return err
			}
			if err := os.Chmod(d, 0o711); err != nil { // the relay's Postfix passes through (lab.StartChatmail)
				return err
			}
			env.Defer(func() { os.RemoveAll(d) })
			// A script that fails midway leaves its lab up: take down every lab under d.
			env.Defer(func() {
				states, _ := filepath.Glob(filepath.Join(d, "*", stateFile))
				for _, st := range states {
					if err := cmdDown([]string{"--dir", filepath.Dir(st)}, io.Discard); err != nil {
						env.T().Log(err)
					}
				}
			})
			env.Setenv("LABDIR", d)
			env.Setenv("LABMAIL", labmail)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// killserve DIR: SIGKILL the lab process of DIR, as a crash would.
			"killserve": func(ts *testscript.TestScript, neg bool, args []string) {
				st := readStateFile(ts, args)
				ts.Check(syscall.Kill(st.PID, syscall.SIGKILL))
			},
			// sshold DIR: succeeds when old's sshd (its address from DIR/cutover.toml) answers
			// from here, the machine's network.
			"sshold": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: sshold DIR")
				}
				cfg, err := os.ReadFile(filepath.Join(args[0], "cutover.toml"))
				ts.Check(err)
				_, rest, _ := strings.Cut(string(cfg), "[old]\naddress = \"")
				addr, _, ok := strings.Cut(rest, "\"")
				if !ok {
					ts.Fatalf("no [old] address in %s/cutover.toml", args[0])
				}
				banner, err := sshBanner(addr + ":22")
				if answered := err == nil; answered != !neg {
					ts.Fatalf("sshd of old at %s:22 from the machine's network: banner %q, %v", addr, banner, err)
				}
				ts.Logf("old at %s:22 from the machine's network: banner %q, %v", addr, banner, err)
			},
			// netns DIR: succeeds when the lab's named network namespace of DIR exists.
			"netns": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: netns DIR")
				}
				_, err := os.Stat(filepath.Join("/run/netns", netnsName(args[0])))
				if exists := err == nil; exists == neg {
					ts.Fatalf("network namespace of %s exists: %v", args[0], exists)
				}
			},
		},
	})
}

func readStateFile(ts *testscript.TestScript, args []string) state {
	if len(args) != 1 {
		ts.Fatalf("usage: killserve DIR")
	}
	b, err := os.ReadFile(filepath.Join(args[0], stateFile))
	ts.Check(err)
	var st state
	ts.Check(json.Unmarshal(b, &st))
	if st.PID <= 0 {
		ts.Fatalf("no lab process in %s", args[0])
	}
	return st
}

// sshBanner reads the SSH identification line at addr.
func sshBanner(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && !strings.HasPrefix(line, "SSH-") {
		err = fmt.Errorf("not an SSH banner")
	}
	return line, err
}
