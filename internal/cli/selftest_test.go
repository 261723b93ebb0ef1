package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsprop"
	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/providers/providertest"
)

const selftestZone = "example.org."

// interrupted stands for SIGINT arriving while the at-th write is in
// flight: it cancels the selftest's context and the write fails.
type interrupted struct {
	providers.Client
	n, at  int
	cancel context.CancelFunc
}

func (c *interrupted) SetRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if c.n++; c.n == c.at {
		c.cancel()
		return nil, ctx.Err()
	}
	return c.Client.SetRecords(ctx, zone, recs)
}

// labServer is one real authoritative server of selftestZone and the
// provider that changes it.
type labServer struct {
	desc string
	addr netip.AddrPort
	zone *providers.Zone
}

func openZone(t *testing.T, s *config.ProviderSettings) *providers.Zone {
	t.Helper()
	z, err := providers.Open(s, providers.Env{Zone: selftestZone})
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// labServers starts BIND and Knot (rfc2136) and PowerDNS (its API), each
// serving selftestZone with one A record at "taken".
func labServers(t *testing.T) []labServer {
	n := lab.NewNet(t)
	z := lab.Zone{Origin: selftestZone, TTL: 30, Records: []string{"taken 30 IN A 192.0.2.9"}}
	rfc2136 := func(addr netip.AddrPort, key lab.TSIG, env string) *providers.Zone {
		t.Setenv(env, key.Secret)
		return openZone(t, config.NewProviderSettings("dns", "rfc2136", map[string]any{
			"server": addr.String(), "key_name": key.Name, "key_alg": key.Algorithm, "key": "env:" + env}))
	}
	b := lab.NewBIND(t, lab.BINDOptions{Addr: n.IP(31), Zone: z})
	k := lab.NewKnot(t, lab.KnotOptions{Addr: n.IP(32), Zone: z})
	p := lab.NewPowerDNS(t, lab.PowerDNSOptions{Addr: n.IP(33), Zone: z})
	t.Setenv("CUTOVER_TEST_PDNS", p.APIKey)
	return []labServer{
		{"bind", b.Addr, rfc2136(b.Addr, b.Key, "CUTOVER_TEST_BIND")},
		{"knot", k.Addr, rfc2136(k.Addr, k.Key, "CUTOVER_TEST_KNOT")},
		{"powerdns", p.Addr, openZone(t, config.NewProviderSettings("dns", "powerdns", map[string]any{
			"server_url": p.APIURL, "api_token": "env:CUTOVER_TEST_PDNS"}))},
	}
}

func TestSelftest(t *testing.T) {
	servers := labServers(t)
	const name = "cutover-selftest." + selftestZone
	tests := []struct {
		desc    string
		server  string
		name    string
		wrap    func(c providers.Client, cancel context.CancelFunc) providers.Client
		ops     []string // "op ok" or "op FAIL"
		err     string
		exit    int // when err is set
		cleanup string
	}{
		{desc: "bind", server: "bind", ops: allOK()},
		{desc: "knot", server: "knot", ops: allOK()},
		{desc: "powerdns", server: "powerdns", ops: allOK()},
		{
			desc:    "a provider that drops the second record of a set",
			server:  "bind",
			wrap:    func(c providers.Client, _ context.CancelFunc) providers.Client { return providertest.Lossy(c) },
			ops:     []string{"create FAIL"},
			exit:    ExitFailure,
			err:     "dns selftest: create failed: providers: read-back of " + name + " A after create: got {192.0.2.1} TTL 1h0m0s, want {192.0.2.1, 192.0.2.2} TTL 1h0m0s",
			cleanup: "removed A {192.0.2.1} TTL 1h, no AAAA; nothing left behind",
		},
		{
			desc:   "interrupted during the replace",
			server: "powerdns",
			wrap: func(c providers.Client, cancel context.CancelFunc) providers.Client {
				return &interrupted{Client: c, at: 3, cancel: cancel}
			},
			ops:     []string{"create ok", "lower-ttl ok", "replace FAIL"},
			exit:    ExitInterrupted,
			err:     "dns selftest: replace failed: providers: replace: set records: context canceled",
			cleanup: "removed A {192.0.2.1, 192.0.2.2} TTL 5s, no AAAA; nothing left behind",
		},
		{
			desc:   "a name that exists is refused",
			server: "knot",
			name:   "taken." + selftestZone,
			exit:   ExitFailure,
			err:    "dns selftest: taken." + selftestZone + " already exists (A {192.0.2.9} TTL 30s, no AAAA): the selftest needs a name of its own",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var srv labServer
			for _, s := range servers {
				if s.desc == tc.server {
					srv = s
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			z := srv.zone
			if tc.wrap != nil {
				z = providers.NewZone(tc.wrap(z.Client(), cancel), selftestZone, z.Capabilities())
			}
			n := name
			if tc.name != "" {
				n = tc.name
			}
			st := &selftest{zone: z, checker: &dnsprop.Checker{Zone: selftestZone, Authoritative: []netip.AddrPort{srv.addr}},
				name: n, lowTTL: 5 * time.Second, timeout: 20 * time.Second}
			rep, err := st.run(ctx)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.err {
				t.Fatalf("error: got  %s\nwant %s", got, tc.err)
			}
			if code := report(&env{stderr: io.Discard}, err); err != nil && code != tc.exit {
				t.Errorf("exit %d, want %d", code, tc.exit)
			}
			if tc.err == "" && rep.Cleanup != "nothing left behind" {
				t.Errorf("cleanup %q after a pass", rep.Cleanup)
			}
			if rep == nil {
				if len(tc.ops) > 0 {
					t.Fatalf("no report, want operations %q", tc.ops)
				}
				return
			}
			var ops []string
			for _, op := range rep.Ops {
				if op.OK {
					ops = append(ops, op.Op+" ok")
				} else {
					ops = append(ops, op.Op+" FAIL")
				}
			}
			if strings.Join(ops, ", ") != strings.Join(tc.ops, ", ") {
				t.Errorf("operations %q, want %q", ops, tc.ops)
			}
			if tc.cleanup != "" && rep.Cleanup != tc.cleanup {
				t.Errorf("cleanup: got %q, want %q", rep.Cleanup, tc.cleanup)
			}
			if rep.Passed != (tc.err == "") || rep.Authoritative[0] != srv.addr.String() {
				t.Errorf("passed %v, servers %q", rep.Passed, rep.Authoritative)
			}
			if lowest := time.Duration(rep.LowestTTL); (tc.err == "" || len(tc.ops) > 1) != (lowest == 5*time.Second) {
				t.Errorf("lowest TTL accepted %s", lowest)
			}
			// Nothing left behind, at the provider nor at the server.
			left, err := srv.zone.Snapshot(context.Background(), []string{n})
			if err != nil {
				t.Fatal(err)
			}
			if l := left.Names[0]; l.A.Exists() || l.AAAA.Exists() {
				t.Errorf("left behind at the provider: %s", describeName(l))
			}
			f, err := (&dnsprop.Checker{Zone: selftestZone, Authoritative: []netip.AddrPort{srv.addr}}).Observe(context.Background(), []string{n})
			if err != nil {
				t.Fatal(err)
			}
			if l := f.Names[0]; l.A.Exists() || l.AAAA.Exists() {
				t.Errorf("left behind at %s: %s", srv.addr, describeName(l))
			}
		})
	}
}

func allOK() []string {
	return []string{"create ok", "lower-ttl ok", "replace ok", "remove-aaaa ok", "delete ok"}
}

func TestSelftestName(t *testing.T) {
	tests := []struct {
		desc, label, want, err string
	}{
		{desc: "default", label: "cutover-selftest", want: "cutover-selftest.example.org."},
		{desc: "two labels, upper case", label: "X.Cutover", want: "x.cutover.example.org."},
		{desc: "absolute, inside the zone", label: "t.example.org.", want: "t.example.org."},
		{desc: "absolute, outside the zone", label: "t.example.net.", err: `dns selftest: --name "t.example.net." is not a name inside zone "example.org."`},
		{desc: "the zone itself", label: "example.org.", err: `dns selftest: --name "example.org." is not a name inside zone "example.org."`},
		{desc: "empty", label: "", err: `dns selftest: --name "" is not a domain name`},
		{desc: "empty label", label: "a..b", err: `dns selftest: --name "a..b" is not a domain name`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := selftestName(tc.label, selftestZone)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if got != tc.want || gotErr != tc.err {
				t.Fatalf("got %q, %q\nwant %q, %q", got, gotErr, tc.want, tc.err)
			}
		})
	}
}

// TestSelftestCommand: `cutover dns selftest` on a real BIND journals its
// pass, after which `cutover plan` no longer asks for it; a second run on a
// name that exists is refused with a hint.
func TestSelftestCommand(t *testing.T) {
	n := lab.NewNet(t)
	b := lab.NewBIND(t, lab.BINDOptions{Addr: n.IP(35), Zone: lab.Zone{Origin: selftestZone, Records: []string{"taken 30 IN A 192.0.2.9"}}})
	t.Setenv("CUTOVER_TEST_TSIG", b.Key.Secret)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "known_hosts"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`cutover_at = %s
state_dir = %q
[old]
address = "127.0.0.10"
[new]
address = "127.0.0.20"
[ssh]
known_hosts = %q
[dns]
provider = "main"
zone = "example.org."
names = ["mail.example.org."]
lowered_ttl = "5s"
authoritative = ["%s"]
resolvers = ["%s"]
converge_timeout = "20s"
[providers.main]
type = "rfc2136"
server = "%s"
key_name = %q
key = "env:CUTOVER_TEST_TSIG"
[[sync]]
path = "/home/vmail/mail"
[hooks]
disable  = { on = "old", run = "true" }
activate = { on = "new", run = "true" }
reenable = { on = "old", run = "true" }
`, time.Now().Add(72*time.Hour).UTC().Format(time.RFC3339), filepath.Join(dir, "state"), filepath.Join(dir, "known_hosts"),
		b.Addr.Addr(), b.Addr.Addr(), b.Addr, b.Key.Name)
	path := filepath.Join(dir, "cutover.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		e := &env{stdout: &out, stderr: &errOut, now: time.Now}
		return run(context.Background(), e, args), out.String(), errOut.String()
	}
	note := "note: the journal holds no passed selftest of provider rfc2136 on zone example.org.; before the window, run: cutover dns selftest " + path + "\n"
	if code, out, errOut := cli("plan", path, "--offline"); code != ExitOK || !strings.HasSuffix(out, "\n"+note) {
		t.Fatalf("plan before the selftest: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := cli("dns", "selftest", path)
	if code != ExitOK || errOut != "" {
		t.Fatalf("selftest: exit %d\n%s%s", code, out, errOut)
	}
	for _, line := range []string{
		"selftest of provider rfc2136 on cutover-selftest.example.org. (zone example.org.)\n",
		"authoritative servers: " + b.Addr.String() + "\n",
		"  ok    create      A {192.0.2.1, 192.0.2.2} TTL 1h, no AAAA (authoritative after ",
		"  ok    delete      no A, no AAAA (authoritative after ",
		"lowest TTL accepted: 5s (lowered_ttl)\n",
		"cleanup: nothing left behind\nselftest passed\n",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("selftest output lacks %q:\n%s", line, out)
		}
	}
	if code, out, errOut := cli("plan", path, "--offline"); code != ExitOK || strings.Contains(out, "selftest") {
		t.Fatalf("plan after a passed selftest: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = cli("dns", "selftest", path, "--name", "taken")
	want := "cutover: error: dns selftest: taken.example.org. already exists (A {192.0.2.9} TTL 30s, no AAAA): the selftest needs a name of its own\n" +
		"cutover: hint: cutover dns selftest " + path + " --name taken-2\n"
	if code != ExitUsage || errOut != want {
		t.Fatalf("selftest on a name that exists: exit %d\n%s\nwant exit 2\n%s", code, errOut, want)
	}
}
