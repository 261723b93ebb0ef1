package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A signal while plan looks up the records, or during a provider call, ends
// the command at once with exit 130 and "interrupted" (plan without the
// hint about the resolvers that a failed look-up gets). The servers here
// receive the queries and never answer.
func TestInterruptedLookups(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Each server tells its own channel: a late query of one sub-test must
	// not interrupt the next one before it reaches its server.
	askedDNS, askedProvider := make(chan struct{}, 1), make(chan struct{}, 1)
	tell := func(asked chan struct{}) {
		select {
		case asked <- struct{}{}:
		default:
		}
	}
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			tell(askedDNS)
		}
	}()
	server := pc.LocalAddr().String()
	// The provider's server (rfc2136 over TCP) reads the query, never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			if _, err := c.Read(make([]byte, 2)); err == nil {
				tell(askedProvider)
			}
		}
	}()
	t.Setenv("CUTOVER_TEST_TSIG", "c2VjcmV0c2VjcmV0")
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.toml")
	src := `cutover_at = 2030-06-01T03:00:00Z
state_dir = "` + filepath.Join(dir, "state") + `"
[old]
address = "192.0.2.1"
[new]
address = "192.0.2.2"
[ssh]
known_hosts = "/k"
[dns]
provider = "main"
zone = "example.org."
names = ["mail.example.org."]
resolvers = ["` + server + `"]
authoritative = ["` + server + `"]
[providers.main]
type = "rfc2136"
server = "` + ln.Addr().String() + `"
key_name = "cutover."
key_alg = "hmac-sha256"
key = "env:CUTOVER_TEST_TSIG"
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc       string
		args       []string
		asked      chan struct{}
		wantStderr string
		wantCode   int
	}{
		{desc: "plan's look-ups", args: []string{"plan", path}, asked: askedDNS, wantStderr: "cutover: error: plan: interrupted\n", wantCode: ExitInterrupted},
		{desc: "a provider call", args: []string{"dns", "show", path}, asked: askedProvider, wantStderr: "cutover: error: providers: snapshot: get records: rfc2136: get records: interrupted\n", wantCode: ExitInterrupted},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			go func() {
				select {
				case <-tc.asked:
					cancel(errInterrupted)
				case <-ctx.Done():
				}
			}()
			var stdout, stderr bytes.Buffer
			e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, now: func() time.Time { return time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC) }}
			code := run(ctx, e, tc.args)
			if stderr.String() != tc.wantStderr || code != tc.wantCode {
				t.Fatalf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tc.wantCode, tc.wantStderr)
			}
		})
	}
}
