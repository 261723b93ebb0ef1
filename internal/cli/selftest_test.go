package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/internal/lab"
)

const selftestZone = "example.org."

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
	path := selftestConfig(t, b, b.Addr.Addr())
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
	// The journal records the selftest, and no cutover started.
	if code, out, errOut := cli("status", path); code != ExitOK || !strings.Contains(out, "outcome: not started") {
		t.Fatalf("status after the selftest: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("dns", "selftest", path, "--json", "--name", "json")
	var rep struct {
		Provider, Name string
		Passed         bool
		Ops            []struct {
			Op    string
			OK    bool
			Delay *float64 `json:"authoritative_delay"`
		} `json:"operations"`
		LowestTTL float64 `json:"lowest_ttl_accepted"`
		Cleanup   string
	}
	if err := json.Unmarshal([]byte(out), &rep); code != ExitOK || err != nil {
		t.Fatalf("selftest --json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if rep.Provider != "rfc2136" || rep.Name != "json.example.org." || !rep.Passed || len(rep.Ops) != 5 || !rep.Ops[4].OK ||
		rep.Ops[4].Delay == nil || rep.LowestTTL != 5 || rep.Cleanup != "nothing left behind" {
		t.Fatalf("selftest --json:\n%s", out)
	}
	for _, args := range [][]string{{"plan", path, "--offline"}, {"plan", path, "--offline", "--json"}} {
		if code, out, errOut := cli(args...); code != ExitOK || strings.Contains(out, "selftest") {
			t.Fatalf("%s after a passed selftest: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
	}
	code, _, errOut = cli("dns", "selftest", path, "--name", "taken")
	want := "cutover: error: selftest: taken.example.org. already exists (A {192.0.2.9} TTL 30s, no AAAA): the selftest needs a name of its own\n" +
		"cutover: hint: cutover dns selftest " + path + " --name taken-2\n"
	if code != ExitUsage || errOut != want {
		t.Fatalf("selftest on a name that exists: exit %d\n%s\nwant exit 2\n%s", code, errOut, want)
	}
}

// selftestConfig writes a config whose provider is b (rfc2136) and whose
// authoritative server is auth (port 53), and returns its path.
func selftestConfig(t *testing.T, b *lab.BIND, auth netip.Addr) string {
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
		auth, auth, b.Addr, b.Key.Name)
	path := filepath.Join(dir, "cutover.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSelftestInterrupted: a signal during the selftest (here: once the
// authoritative server serves the created set) stops it with exit 130,
// and what it created is removed all the same, as the report says. The
// authoritative server the selftest asks is a relay to BIND that
// interrupts the command, instead of answering, when BIND first serves the
// scratch name's records.
func TestSelftestInterrupted(t *testing.T) {
	n := lab.NewNet(t)
	b := lab.NewBIND(t, lab.BINDOptions{Addr: n.IP(37), Zone: lab.Zone{Origin: selftestZone}})
	relay := netip.AddrPortFrom(n.IP(38), 53)
	path := selftestConfig(t, b, relay.Addr())
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	const name = "cutover-selftest.example.org."
	pc, err := net.ListenPacket("udp", relay.String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r, err := dns.Exchange(q, b.Addr.String())
		if err != nil {
			return
		}
		if len(r.Answer) > 0 && r.Answer[0].Header().Name == name {
			cancel(errInterrupted) // and no answer: the create is not yet seen served
			return
		}
		_ = w.WriteMsg(r)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	defer pc.Close()

	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, now: time.Now}
	if code := run(ctx, e, []string{"dns", "selftest", path}); code != ExitInterrupted {
		t.Fatalf("exit %d, want %d\n%s%s", code, ExitInterrupted, out.String(), errOut.String())
	}
	for _, line := range []string{
		"  FAIL  create      A {192.0.2.1, 192.0.2.2} TTL 1h, no AAAA: selftest: after create, ",
		"cleanup: removed A {192.0.2.1, 192.0.2.2} TTL 1h, no AAAA; nothing left behind\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("report lacks %q:\n%s", line, out.String())
		}
	}
	if want := ": interrupted\n"; !strings.HasPrefix(errOut.String(), "cutover: error: selftest: create failed: ") || !strings.HasSuffix(errOut.String(), want) {
		t.Errorf("stderr %q, want the create's failure ending in %q", errOut.String(), want)
	}
	// Nothing is left at BIND, and the failed selftest does not count.
	for _, typ := range []uint16{dns.TypeA, dns.TypeAAAA} {
		q := new(dns.Msg).SetQuestion(name, typ)
		if r, err := dns.Exchange(q, b.Addr.String()); err != nil || r.Rcode != dns.RcodeNameError {
			t.Errorf("BIND after the selftest: %v, %v; want NXDOMAIN", r, err)
		}
	}
	var plan bytes.Buffer
	if code := run(context.Background(), &env{stdout: &plan, stderr: &plan, now: time.Now}, []string{"plan", path, "--offline"}); code != ExitOK ||
		!strings.Contains(plan.String(), "no passed selftest") {
		t.Errorf("plan after an interrupted selftest: exit %d\n%s", code, plan.String())
	}
}
