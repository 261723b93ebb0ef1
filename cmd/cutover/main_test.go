package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/rogpeppe/go-internal/testscript"
)

// The CLI is tested as scripts over main(): testdata/script/*.txtar, with
// golden output. `exits N cmd...` runs a command and checks its exit code.
// Each script gets an in-process authoritative DNS server for example.org
// on 127.0.0.1 ($DNS): no test ever asks a server off this machine.

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"cutover": main})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		UpdateScripts:       os.Getenv("UPDATE_GOLDEN") != "",
		Setup: func(env *testscript.Env) error {
			addr, stop, err := startZone()
			if err != nil {
				return err
			}
			env.Defer(stop)
			env.Setenv("DNS", addr)
			// Config files name the server and absolute paths: fill them in.
			tomls, _ := filepath.Glob(filepath.Join(env.WorkDir, "*.toml"))
			for _, f := range tomls {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				b = bytes.ReplaceAll(b, []byte("$DNS"), []byte(addr))
				b = bytes.ReplaceAll(b, []byte("$WORK"), []byte(env.WorkDir))
				if err := os.WriteFile(f, b, 0o600); err != nil {
					return err
				}
			}
			env.Setenv("XDG_STATE_HOME", env.WorkDir+"/state")
			env.Setenv("SSH_AUTH_SOCK", "")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
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
				for _, k := range []string{"PATH", "HOME", "WORK", "DNS", "XDG_STATE_HOME", "CUTOVER_TEST_NOW", "SSH_AUTH_SOCK", "TSIG_KEY"} {
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
			},
		},
	})
}

// startZone serves example.org. with mail A 127.0.0.10 / AAAA ::10 (TTL 3600),
// authoritatively, on 127.0.0.1 (UDP and TCP on the same port).
func startZone() (string, func(), error) {
	records := []string{
		"example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 7 3600 600 86400 300",
		"example.org. 3600 IN NS ns1.example.org.",
		"ns1.example.org. 3600 IN A 127.0.0.1",
		"mail.example.org. 3600 IN A 127.0.0.10",
		"mail.example.org. 3600 IN AAAA ::10",
	}
	var rrs []dns.RR
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			return "", nil, err
		}
		rrs = append(rrs, rr)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		if !dns.IsSubDomain("example.org.", q.Name) {
			m.Rcode = dns.RcodeRefused
			w.WriteMsg(m)
			return
		}
		found := false
		for _, rr := range rrs {
			if strings.EqualFold(rr.Header().Name, q.Name) {
				found = true
				if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, dns.Copy(rr))
				}
			}
		}
		if len(m.Answer) == 0 {
			m.Ns = []dns.RR{dns.Copy(rrs[0])}
			if !found {
				m.Rcode = dns.RcodeNameError
			}
		}
		w.WriteMsg(m)
	})
	for try := 0; try < 20; try++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		addr := pc.LocalAddr().String()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close()
			continue
		}
		udp := &dns.Server{PacketConn: pc, Handler: handler}
		tcp := &dns.Server{Listener: l, Handler: handler}
		go udp.ActivateAndServe()
		go tcp.ActivateAndServe()
		time.Sleep(10 * time.Millisecond)
		return addr, func() { udp.Shutdown(); tcp.Shutdown() }, nil
	}
	return "", nil, errors.New("no free port on 127.0.0.1 for UDP and TCP")
}
