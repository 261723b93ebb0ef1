package scheduler

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
)

func planConfig(t *testing.T, cutoverAt time.Time, new6 bool) *config.Config {
	t.Helper()
	return planConfigWith(t, cutoverAt, new6, "")
}

// planConfigWith is planConfig with more TOML (tables) at the end.
func planConfigWith(t *testing.T, cutoverAt time.Time, new6 bool, more string) *config.Config {
	t.Helper()
	src := `cutover_at = ` + cutoverAt.Format(time.RFC3339) + `
[old]
address = "192.0.2.1"
[new]
address = "192.0.2.2"
` + map[bool]string{true: "address6 = \"2001:db8::2\"\n"}[new6] + `
[ssh]
known_hosts = "/k"
[dns]
provider = "main"
zone = "example.org."
names = ["mail.example.org."]
lowered_ttl = "5m"
resolvers = ["127.0.0.1"]
[providers.main]
type = "x"
` + more
	cfg, err := config.Parse([]byte(src), "c.toml", config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestMakePlan(t *testing.T) {
	a := func(ttl time.Duration, addrs ...string) dnsrec.RRset {
		r := dnsrec.RRset{TTL: ttl}
		for _, s := range addrs {
			r.Addrs = append(r.Addrs, netip.MustParseAddr(s))
		}
		return r
	}
	now := t0
	for _, tc := range []struct {
		desc         string
		cutoverIn    time.Duration
		facts        Facts
		new6         bool
		minTTL       time.Duration
		wantErr      string
		wantTooLate  bool
		wantDeadline time.Time
		wantSafe     time.Time
		wantWarning  string
	}{
		{desc: "TTL 3600, window two days out: lower by then - 1h - 6m",
			cutoverIn: 48 * time.Hour, facts: Facts{Names: []dnsrec.Name{{Name: "mail.example.org.", A: a(time.Hour, "192.0.2.1")}}},
			wantDeadline: now.Add(48*time.Hour - time.Hour - 6*time.Minute)},
		{desc: "TTL 86400, window in 1h: too late, earliest safe names the day after",
			cutoverIn: time.Hour, facts: Facts{Names: []dnsrec.Name{{Name: "mail.example.org.", A: a(24*time.Hour, "192.0.2.1")}}},
			wantTooLate: true, wantDeadline: now.Add(time.Hour - 24*time.Hour - 144*time.Minute),
			wantSafe: now.Add(24*time.Hour + 144*time.Minute + time.Minute)},
		{desc: "a new AAAA: the negative TTL counts like a TTL",
			cutoverIn: 48 * time.Hour, new6: true,
			facts:        Facts{NegativeTTL: 3 * time.Hour, Names: []dnsrec.Name{{Name: "mail.example.org.", A: a(time.Hour, "192.0.2.1")}}},
			wantDeadline: now.Add(48*time.Hour - 3*time.Hour - 18*time.Minute),
			wantWarning:  "the new host adds AAAA records that do not exist today: caches may hold the negative answer for up to 3h (the zone's negative-caching TTL)"},
		{desc: "records moved already",
			cutoverIn: 48 * time.Hour, facts: Facts{Names: []dnsrec.Name{{Name: "mail.example.org.", A: a(time.Hour, "192.0.2.2")}}},
			wantErr: "plan: mail.example.org. A is {192.0.2.2}, which does not include old.address 192.0.2.1"},
		{desc: "lowered_ttl below the provider's floor",
			cutoverIn: 48 * time.Hour, minTTL: 10 * time.Minute, facts: Facts{Names: []dnsrec.Name{{Name: "mail.example.org.", A: a(time.Hour, "192.0.2.1")}}},
			wantErr: `plan: dns.lowered_ttl 5m is below the minimum TTL of provider type "x", 10m (floor)`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := planConfig(t, now.Add(tc.cutoverIn), tc.new6)
			p, err := MakePlan(Input{Config: cfg, Facts: &tc.facts, Now: now,
				Provider: ProviderInfo{Type: "x", MinTTL: tc.minTTL, MinTTLReason: "floor"}})
			if got := errString(err); got != tc.wantErr {
				t.Fatalf("error %q, want %q", got, tc.wantErr)
			}
			var pe *PlanError
			if err != nil {
				if !errors.As(err, &pe) || pe.Hint == "" {
					t.Fatalf("want a *PlanError with a hint, got %#v", err)
				}
				return
			}
			if p.TooLate != tc.wantTooLate {
				t.Errorf("TooLate %v, want %v", p.TooLate, tc.wantTooLate)
			}
			if got := p.Steps[1].Deadline; !got.Equal(tc.wantDeadline) {
				t.Errorf("lower-ttl deadline %s, want %s", got, tc.wantDeadline)
			}
			if !p.EarliestSafe.Equal(tc.wantSafe) {
				t.Errorf("earliest safe %s, want %s", p.EarliestSafe, tc.wantSafe)
			}
			if tc.wantWarning != "" && !slices.Contains(p.Warnings, tc.wantWarning) {
				t.Errorf("warnings %q lack %q", p.Warnings, tc.wantWarning)
			}
		})
	}
}

// TestStillAtOld: plan, run and cutover dns refuse a zone that does not
// point at old with one check (notAtOld), A and AAAA alike: the plan as a
// PlanError, the snapshot of run and cutover dns through checkSnapshot,
// which also says when the records point at new already.
func TestStillAtOld(t *testing.T) {
	set := func(addrs ...string) dnsrec.RRset {
		r := dnsrec.RRset{TTL: time.Hour}
		for _, s := range addrs {
			r.Addrs = append(r.Addrs, netip.MustParseAddr(s))
		}
		return r
	}
	for _, tc := range []struct {
		desc     string
		old6     bool
		name     dnsrec.Name
		wantPlan string
		wantSnap string
	}{
		{desc: "A and AAAA at old", old6: true,
			name: dnsrec.Name{A: set("192.0.2.1"), AAAA: set("2001:db8::1")}},
		{desc: "old among other addresses", old6: true,
			name: dnsrec.Name{A: set("192.0.2.1", "192.0.2.7"), AAAA: set("2001:db8::1", "2001:db8::7")}},
		{desc: "no A today: the swap creates it",
			name: dnsrec.Name{}},
		{desc: "old has address6, no AAAA today", old6: true,
			name: dnsrec.Name{A: set("192.0.2.1")}},
		{desc: "old has no address6: the AAAA is not checked",
			name: dnsrec.Name{A: set("192.0.2.1"), AAAA: set("2001:db8::9")}},
		{desc: "A elsewhere",
			name:     dnsrec.Name{A: set("192.0.2.9")},
			wantPlan: "plan: mail.example.org. A is {192.0.2.9}, which does not include old.address 192.0.2.1",
			wantSnap: "scheduler: mail.example.org. A is {192.0.2.9}, which does not include old.address 192.0.2.1"},
		{desc: "A at new already",
			name:     dnsrec.Name{A: set("192.0.2.2")},
			wantPlan: "plan: mail.example.org. A is {192.0.2.2}, which does not include old.address 192.0.2.1",
			wantSnap: "scheduler: mail.example.org. A is {192.0.2.2}, which does not include old.address 192.0.2.1: it already points at the new host"},
		{desc: "AAAA elsewhere", old6: true,
			name:     dnsrec.Name{A: set("192.0.2.1"), AAAA: set("2001:db8::9")},
			wantPlan: "plan: mail.example.org. AAAA is {2001:db8::9}, which does not include old.address6 2001:db8::1",
			wantSnap: "scheduler: mail.example.org. AAAA is {2001:db8::9}, which does not include old.address6 2001:db8::1"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := planConfig(t, t0.Add(48*time.Hour), false)
			if tc.old6 {
				cfg.Old.Address6 = netip.MustParseAddr("2001:db8::1")
			}
			tc.name.Name = "mail.example.org."
			_, err := MakePlan(Input{Config: cfg, Facts: &Facts{Names: []dnsrec.Name{tc.name}}, Now: t0, Provider: ProviderInfo{Type: "x"}})
			if got := errString(err); got != tc.wantPlan {
				t.Errorf("plan: error %q, want %q", got, tc.wantPlan)
			}
			err = checkSnapshot(cfg, &dnsrec.Snapshot{Zone: "example.org.", Names: []dnsrec.Name{tc.name}})
			if got := errString(err); got != tc.wantSnap {
				t.Errorf("snapshot: error %q, want %q", got, tc.wantSnap)
			}
		})
	}
}

// The actions of a plan say what the commands will do, values quoted as the
// commands quote them, and the TTL the swap writes is never above the one
// served.
func TestPlanActions(t *testing.T) {
	a := func(ttl time.Duration, addr string) dnsrec.RRset {
		return dnsrec.RRset{TTL: ttl, Addrs: []netip.Addr{netip.MustParseAddr(addr)}}
	}
	served := func(ttl time.Duration) *Facts {
		return &Facts{NegativeTTL: time.Minute, Names: []dnsrec.Name{{Name: "mail.example.org.", A: a(ttl, "192.0.2.1")}}}
	}
	syncs := `[[sync]]
path = "/var/mail/it's here"
initial = true
owner = "vmail:"
[[sync]]
path = "/etc/dkim; rm -rf x"
`
	for _, tc := range []struct {
		desc        string
		more        string
		new6        bool
		facts       *Facts
		step        StepName
		want        []string
		wantWarning string // "": none about lowered_ttl
	}{
		{desc: "initial-sync quotes the paths", more: syncs, facts: served(time.Hour), step: InitialSync,
			want: []string{`copy '/var/mail/it'\''s here' from old to new (direct transfer, nothing deleted)`}},
		{desc: "final-sync quotes each path", more: syncs, facts: served(time.Hour), step: FinalSync,
			want: []string{`copy '/var/mail/it'\''s here' from old to new (direct transfer)`, `copy '/etc/dkim; rm -rf x' from old to new (direct transfer)`}},
		{desc: "verify quotes each path", more: syncs, facts: served(time.Hour), step: Verify,
			want: []string{`compare '/var/mail/it'\''s here' on both hosts (paths, types, sizes, times and modes)`, `compare '/etc/dkim; rm -rf x' on both hosts (paths, types, sizes, times and modes)`}},
		{desc: "fixup quotes owner and path", more: syncs, facts: served(time.Hour), step: Fixup,
			want: []string{`on new: chown -R vmail: '/var/mail/it'\''s here', then check nothing under it has another owner`}},
		{desc: "swap at the lowered TTL", facts: served(time.Hour), step: SwapDNS,
			want: []string{"mail.example.org. A -> 192.0.2.2 (TTL 5m)", "mail.example.org. AAAA: removed (the new host has no address6)"}},
		{desc: "swap keeps a served TTL below lowered_ttl", facts: served(2 * time.Minute), step: SwapDNS, new6: true,
			want:        []string{"mail.example.org. A -> 192.0.2.2 (TTL 2m)", "mail.example.org. AAAA -> 2001:db8::2 (TTL 2m)"},
			wantWarning: "dns.lowered_ttl 5m is not below the TTL served (at most 2m): lower-ttl is skipped, and the swap keeps each record's served TTL"},
		{desc: "lowered_ttl equal to the served TTL", facts: served(5 * time.Minute), step: SwapDNS,
			want:        []string{"mail.example.org. A -> 192.0.2.2 (TTL 5m)", "mail.example.org. AAAA: removed (the new host has no address6)"},
			wantWarning: "dns.lowered_ttl 5m is not below the TTL served (at most 5m): lower-ttl is skipped, and the swap keeps each record's served TTL"},
		{desc: "offline: the lowered TTL", step: SwapDNS,
			want: []string{"mail.example.org. A -> 192.0.2.2 (TTL 5m)", "mail.example.org. AAAA: removed (the new host has no address6)"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := planConfigWith(t, t0.Add(48*time.Hour), tc.new6, tc.more)
			p, err := MakePlan(Input{Config: cfg, Facts: tc.facts, Now: t0, Provider: ProviderInfo{Type: "x"}})
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(p.Steps, func(s PlannedStep) bool { return s.Name == tc.step })
			if got := p.Steps[i].Action; !slices.Equal(got, tc.want) {
				t.Errorf("%s actions:\n%q\nwant\n%q", tc.step, got, tc.want)
			}
			var got string
			for _, w := range p.Warnings {
				if strings.HasPrefix(w, "dns.lowered_ttl") {
					got = w
				}
			}
			if got != tc.wantWarning {
				t.Errorf("warning %q, want %q", got, tc.wantWarning)
			}
			if tc.wantWarning != "" && p.Steps[1].Skip == "" {
				t.Errorf("lower-ttl not skipped although lowered_ttl >= the TTL served")
			}
		})
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestPlanGolden renders whole plans and compares them with testdata/*.golden
// (go test ./scheduler -run TestPlanGolden -update rewrites them).
func TestPlanGolden(t *testing.T) {
	a := func(ttl time.Duration, addr string) dnsrec.RRset {
		return dnsrec.RRset{TTL: ttl, Addrs: []netip.Addr{netip.MustParseAddr(addr)}}
	}
	for _, tc := range []struct {
		desc, golden string
		cutoverIn    time.Duration
		new6         bool
		bridge       bool
		facts        Facts
	}{
		{desc: "TTL 3600, window 2 days out", golden: "ttl3600-2days", cutoverIn: 48 * time.Hour,
			facts: Facts{NegativeTTL: 300 * time.Second, Names: []dnsrec.Name{{Name: "mail.example.org.", A: a(time.Hour, "192.0.2.1")}}}},
		{desc: "TTL 86400, window in 1 hour: too late", golden: "ttl86400-1hour", cutoverIn: time.Hour,
			facts: Facts{NegativeTTL: 300 * time.Second, Names: []dnsrec.Name{{Name: "mail.example.org.", A: a(24*time.Hour, "192.0.2.1")}}}},
		{desc: "new AAAA where none existed", golden: "new-aaaa", cutoverIn: 48 * time.Hour, new6: true,
			facts: Facts{NegativeTTL: 3 * time.Hour, Names: []dnsrec.Name{{Name: "mail.example.org.", A: a(time.Hour, "192.0.2.1")}}}},
		{desc: "handover through old", golden: "bridge", cutoverIn: 48 * time.Hour, bridge: true,
			facts: Facts{NegativeTTL: 300 * time.Second, Names: []dnsrec.Name{{Name: "mail.example.org.", A: a(time.Hour, "192.0.2.1")}}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := planConfig(t, t0.Add(tc.cutoverIn), tc.new6)
			if tc.bridge {
				cfg.Bridge = &config.Bridge{Ports: []uint16{25, 993}, ProxyProtocol: true}
				cfg.Hooks.Activate = &config.Hook{Name: "activate", On: config.OnNew, Run: "systemctl start postfix", Timeout: time.Minute}
				cfg.Hooks.Deactivate = &config.Hook{Name: "deactivate", On: config.OnNew, Run: "systemctl stop postfix", Timeout: time.Minute}
			}
			p, err := MakePlan(Input{Config: cfg, Facts: &tc.facts, Now: t0, Provider: ProviderInfo{Type: "x"}})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			p.Render(&b, time.UTC)
			if p.TooLate {
				fmt.Fprintf(&b, "\ntoo late: caches may serve the old address until %s; earliest safe cutover_at %s\n",
					p.CachesUntil.Format(time.RFC3339), p.EarliestSafe.Format(time.RFC3339))
			}
			path := filepath.Join("testdata", tc.golden+".golden")
			if *update {
				os.MkdirAll("testdata", 0o755)
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("plan differs from %s:\n%s", path, b.String())
			}
		})
	}
}
