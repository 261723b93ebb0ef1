package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
)

// legacyJournal is a journal as cutover wrote it before journals recorded
// their identity: config as typed, old and new, no zone.
const legacyJournal = `{
  "version": 1,
  "config": "mail.toml",
  "cutover_at": "2026-11-25T03:00:00Z",
  "old": "127.0.0.10",
  "new": "127.0.0.20",
  "created": "2026-11-23T12:00:00Z",
  "updated": "2026-11-23T12:00:00Z",
  "dns": "original",
  "steps": [
    {"name": "preflight", "state": "pending"}
  ]
}`

// withKey returns legacyJournal with a key replaced, added or (value "")
// removed.
func withKey(t *testing.T, key, value string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(legacyJournal), &m); err != nil {
		t.Fatal(err)
	}
	if value == "" {
		delete(m, key)
	} else {
		m[key] = json.RawMessage(value)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadJournalShape(t *testing.T) {
	snapshot := `{"zone":"example.org.","taken":"2026-11-23T12:00:00Z","names":[{"name":"mail.example.org.","a":{"exists":true,"addrs":["127.0.0.10"],"ttl":3600000000000},"aaaa":{"exists":false,"ttl":0}}]}`
	for _, tc := range []struct {
		desc    string
		journal string
		wantErr string // after `scheduler: journal "PATH" `
	}{
		{desc: "a journal without steps", journal: `{"version":1,"foo":"bar"}`,
			wantErr: `is damaged: missing config, cutover_at, old, new, created, updated, dns, steps`},
		{desc: "not an object", journal: `null`, wantErr: `is damaged: not a JSON object`},
		{desc: "an array", journal: `[]`, wantErr: `is damaged: json: cannot unmarshal array into Go value of type map[string]json.RawMessage`},
		{desc: "cut off", journal: `{"version": 1, `, wantErr: `is damaged: unexpected end of JSON input`},
		{desc: "unknown key", journal: withKey(t, "foo", `"bar"`), wantErr: `is damaged: json: unknown field "foo"`},
		{desc: "unknown step state", journal: withKey(t, "steps", `[{"name":"preflight","state":"exploded"}]`),
			wantErr: `is damaged: steps[0] (preflight): unknown state "exploded"`},
		{desc: "unknown step", journal: withKey(t, "steps", `[{"name":"preflight","state":"done"},{"name":"reboot","state":"done"}]`),
			wantErr: `is damaged: steps[1]: unknown step "reboot"`},
		{desc: "a step twice", journal: withKey(t, "steps", `[{"name":"preflight","state":"done"},{"name":"preflight","state":"pending"}]`),
			wantErr: `is damaged: steps[1]: step preflight appears twice`},
		{desc: "no steps", journal: withKey(t, "steps", `[]`), wantErr: `is damaged: no steps`},
		{desc: "steps null", journal: withKey(t, "steps", `null`), wantErr: `is damaged: no steps`},
		{desc: "unknown DNS state", journal: withKey(t, "dns", `"sideways"`), wantErr: `is damaged: unknown DNS state "sideways"`},
		{desc: "empty DNS state", journal: withKey(t, "dns", `""`), wantErr: `is damaged: unknown DNS state ""`},
		{desc: "unknown outcome", journal: withKey(t, "outcome", `"great"`), wantErr: `is damaged: unknown outcome "great"`},
		{desc: "wrong version", journal: withKey(t, "version", `2`), wantErr: `has version 2; this cutover reads version 1`},
		{desc: "version as a string", journal: withKey(t, "version", `"1"`), wantErr: `is damaged: version: json: cannot unmarshal string into Go value of type int`},
		{desc: "DNS changed without a snapshot", journal: withKey(t, "dns", `"lowered"`),
			wantErr: `is damaged: DNS is lowered but there is no snapshot to go back to`},
		{desc: "rolled back without a rollback", journal: withKey(t, "outcome", `"rolled-back"`),
			wantErr: `is damaged: outcome rolled-back without a rollback`},
		{desc: "no old address", journal: withKey(t, "old", `""`), wantErr: `is damaged: old is empty`},
		{desc: "snapshot without names", journal: withKey(t, "snapshot", `{"zone":"example.org.","taken":"2026-11-23T12:00:00Z","names":[]}`),
			wantErr: `is damaged: snapshot: no names`},
		{desc: "identity without names", journal: withKey(t, "zone", `"example.org."`), wantErr: `is damaged: identity without names`},
		{desc: "data after the journal", journal: legacyJournal + `{}`, wantErr: `is damaged: invalid character '{' after top-level value`},
		{desc: "a journal from before identities", journal: legacyJournal},
		{desc: "with a snapshot", journal: withKey(t, "snapshot", snapshot)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, JournalFile)
			if err := os.WriteFile(path, []byte(tc.journal), 0o600); err != nil {
				t.Fatal(err)
			}
			j, err := LoadJournal(dir)
			want := ""
			if tc.wantErr != "" {
				want = `scheduler: journal "` + path + `" ` + tc.wantErr
			}
			if got := errString(err); got != want {
				t.Fatalf("got  %q\nwant %q", got, want)
			}
			if err != nil {
				return
			}
			// Steps missing from the journal are pending, in order.
			if len(j.Steps) != len(Steps) || j.Steps[len(Steps)-1].Name != RestoreTTL || j.Step(LowerTTL).State != Pending {
				t.Errorf("steps %v, want every step in order", j.Steps)
			}
		})
	}
	_, err := LoadJournal(filepath.Join(t.TempDir(), "nothing"))
	if !errors.Is(err, ErrNoJournal) {
		t.Fatalf("missing journal: %v, want ErrNoJournal", err)
	}
}

// twoConfigs writes a/mail.toml and b/mail.toml (b edited by edit) that
// share one state dir, as two files with the same stem did by default.
func twoConfigs(t *testing.T, edit func(string) string) (a, b *config.Config) {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"a", "b"} {
		os.Mkdir(filepath.Join(root, d), 0o700)
	}
	cfgA := testConfig(t, filepath.Join(root, "a"), t0.Add(time.Hour), "")
	src, err := os.ReadFile(filepath.Join(root, "a", "cutover.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pathB := filepath.Join(root, "b", "cutover.toml")
	if err := os.WriteFile(pathB, []byte(edit(string(src))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgB, err := config.Load(pathB, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfgA, cfgB
}

func TestOpenJournalIdentity(t *testing.T) {
	same := func(s string) string { return s }
	replace := func(old, new string) func(string) string {
		return func(s string) string { return strings.Replace(s, old, new, 1) }
	}
	for _, tc := range []struct {
		desc    string
		edit    func(string) string // b's config from a's
		sameDir bool                // b opened at a's path: only the fields differ
		wantErr string              // after "scheduler: journal at PATH belongs to A (zone example.org.), not B: "
	}{
		{desc: "another config file", edit: same, wantErr: "config: journal A, config B"},
		{desc: "another name", edit: replace(`names = ["mail.example.org."]`, `names = ["mail.example.org.", "mx.example.org."]`), sameDir: true,
			wantErr: "names: journal mail.example.org., config mail.example.org. mx.example.org."},
		{desc: "another new host", edit: replace(`address = "127.0.0.20"`, `address = "127.0.0.30"`), sameDir: true,
			wantErr: "new.address: journal 127.0.0.20, config 127.0.0.30"},
		{desc: "no new IPv6", edit: replace(`address6 = "::20"`, ``), sameDir: true,
			wantErr: "new.address6: journal ::20, config (none)"},
		{desc: "another zone and file", edit: replace(`zone = "example.org."`+"\n"+`names = ["mail.example.org."]`, `zone = "example.net."`+"\n"+`names = ["mail.example.net."]`),
			wantErr: "config: journal A, config B; zone: journal example.org., config example.net.; names: journal mail.example.org., config mail.example.net."},
		{desc: "another provider", edit: func(s string) string {
			return replace(`[providers.main]`, `[providers.other]`)(replace(`"main"`, `"other"`)(s))
		}, sameDir: true,
			wantErr: "dns.provider: journal main, config other"},
		{desc: "the same config with another cutover_at", edit: replace("cutover_at = ", "cutover_at = 2037-01-01T00:00:00Z\n#"), sameDir: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			a, b := twoConfigs(t, tc.edit)
			b.StateDir = a.StateDir
			if tc.sameDir {
				b.File = a.File
			}
			j, err := OpenJournal(a, t0)
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Save(t0); err != nil {
				t.Fatal(err)
			}
			idA, _ := IdentityOf(a)
			idB, _ := IdentityOf(b)
			want := ""
			if tc.wantErr != "" {
				r := strings.NewReplacer("journal A", "journal "+idA.Config, "config B", "config "+idB.Config)
				want = "scheduler: journal at " + strconv.Quote(j.Path()) + " belongs to " + strconv.Quote(idA.Config) + " (zone example.org.), not " + strconv.Quote(idB.Config) + ": " + r.Replace(tc.wantErr)
			}
			for name, open := range map[string]func() error{
				"OpenJournal": func() error { _, err := OpenJournal(b, t0); return err },
				"ReadJournal": func() error { _, err := ReadJournal(b); return err },
			} {
				err := open()
				if got := errString(err); got != want {
					t.Fatalf("%s:\ngot  %q\nwant %q", name, got, want)
				}
				if err != nil && !errors.Is(err, ErrForeignJournal) {
					t.Fatalf("%s: %v is not ErrForeignJournal", name, err)
				}
			}
		})
	}
}

// A journal from before identities is adopted once, by a config whose
// addresses and snapshot match; a config that does not match is refused.
func TestOpenJournalLegacy(t *testing.T) {
	snap := `{"zone":"example.org.","taken":"2026-11-23T12:00:00Z","names":[{"name":"mail.example.org.","a":{"exists":true,"addrs":["127.0.0.10"],"ttl":30000000000},"aaaa":{"exists":true,"addrs":["::10"],"ttl":30000000000}}]}`
	for _, tc := range []struct {
		desc    string
		edits   [][2]string // key, value in legacyJournal
		wantErr string      // after "scheduler: journal at PATH belongs to CONFIG, not THIS: "
	}{
		{desc: "nothing recorded but the addresses"},
		{desc: "a matching snapshot", edits: [][2]string{{"snapshot", snap}, {"dns", `"lowered"`}}},
		{desc: "a relative config path is not compared", edits: [][2]string{{"config", `"elsewhere/mail.toml"`}}},
		{desc: "another new host", edits: [][2]string{{"new", `"127.0.0.30"`}},
			wantErr: "new.address: journal 127.0.0.30, config 127.0.0.20"},
		{desc: "a snapshot of other names", edits: [][2]string{{"snapshot", strings.ReplaceAll(snap, "example.org.", "example.net.")}},
			wantErr: "zone: journal example.net., config example.org.; names: journal mail.example.net., config mail.example.org."},
		{desc: "another absolute config path", edits: [][2]string{{"config", `"/elsewhere/mail.toml"`}},
			wantErr: "config: journal /elsewhere/mail.toml, config THIS"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(time.Hour), "")
			data := legacyJournal
			for _, e := range tc.edits {
				var m map[string]json.RawMessage
				json.Unmarshal([]byte(data), &m)
				m[e[0]] = json.RawMessage(e[1])
				b, _ := json.Marshal(m)
				data = string(b)
			}
			os.MkdirAll(cfg.StateDir, 0o700)
			path := filepath.Join(cfg.StateDir, JournalFile)
			if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			id, _ := IdentityOf(cfg)
			old, _ := LoadJournal(cfg.StateDir)
			j, err := OpenJournal(cfg, t0)
			want := ""
			if tc.wantErr != "" {
				want = "scheduler: journal at " + strconv.Quote(path) + " belongs to " + strconv.Quote(old.Config) + ", not " + strconv.Quote(id.Config) + ": " + strings.ReplaceAll(tc.wantErr, "THIS", id.Config)
			}
			if got := errString(err); got != want {
				t.Fatalf("got  %q\nwant %q", got, want)
			}
			if err != nil {
				return
			}
			// Adopted and saved at once: the journal on disk now belongs to cfg.
			again, err := LoadJournal(cfg.StateDir)
			if err != nil {
				t.Fatal(err)
			}
			if d := again.Identity.differences(id, again.Snapshot); again.Identity.legacy() || len(d) > 0 {
				t.Fatalf("journal on disk: identity %+v, differences %q", again.Identity, d)
			}
			// Noted in the log once something was done (a note alone would
			// make the journal look started).
			var wantLog []string
			if j.Snapshot != nil {
				wantLog = []string{"2026-11-23T12:00:00Z journal adopted by " + id.Config + ": it was written before journals recorded the config they belong to"}
			}
			if !slices.Equal(j.Log, wantLog) {
				t.Fatalf("log %q, want %q", j.Log, wantLog)
			}
		})
	}
}

// A finished cutover finished when its last step ended, whatever was saved
// after: adopting a finished journal from before identities saves it (and
// moves Updated on) but not its end.
func TestJournalFinished(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		steps string
		want  string
	}{
		{desc: "nothing ended", steps: `[{"name": "preflight", "state": "pending"}]`},
		{desc: "the latest end, not the last step's", want: "2026-11-23T13:00:00Z", steps: `[
			{"name": "preflight", "state": "done", "started": "2026-11-23T12:00:00Z", "ended": "2026-11-23T13:00:00Z"},
			{"name": "lower-ttl", "state": "done", "started": "2026-11-23T12:00:00Z", "ended": "2026-11-23T12:30:00Z"},
			{"name": "initial-sync", "state": "skipped", "note": "no [[sync]] entry has initial = true"}]`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(time.Hour), "")
			os.MkdirAll(cfg.StateDir, 0o700)
			if err := os.WriteFile(filepath.Join(cfg.StateDir, JournalFile), []byte(withKey(t, "steps", tc.steps)), 0o600); err != nil {
				t.Fatal(err)
			}
			j, err := OpenJournal(cfg, t0.Add(48*time.Hour)) // adopts it: a save
			if err != nil {
				t.Fatal(err)
			}
			if !j.Updated.Equal(t0.Add(48 * time.Hour)) {
				t.Fatalf("updated %v: the adoption was not saved", j.Updated)
			}
			got := ""
			if f := j.Finished(); !f.IsZero() {
				got = f.UTC().Format(time.RFC3339)
			}
			if got != tc.want {
				t.Fatalf("finished %q, want %q", got, tc.want)
			}
		})
	}
}

// errNoSpace is what a full disk says to a write.
func errNoSpace(path string) error {
	return &fs.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
}

// failWrites makes every save of the engine's journal fail while full
// reports true for the journal about to be written.
func failWrites(t *testing.T, e *Engine, full func(j *Journal) bool) {
	t.Helper()
	id, err := IdentityOf(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	e.Journal.Identity = id
	e.Journal.write = func(path string, data []byte) error {
		var j Journal
		if err := json.Unmarshal(data, &j); err != nil {
			t.Fatal(err)
		}
		if full(&j) {
			return errNoSpace(path)
		}
		return writeAtomic(path, data)
	}
}

func noRetryPause(t *testing.T) {
	saved := saveRetries
	saveRetries = []time.Duration{0, 0, 0}
	t.Cleanup(func() { saveRetries = saved })
}

// A journal that cannot be saved stops the run at once, says what was
// changed, and never starts (or claims) a rollback.
func TestSaveFailure(t *testing.T) {
	noRetryPause(t)
	stepIs := func(s StepName, st StepState) func(j *Journal) bool {
		return func(j *Journal) bool { return j.Step(s).State == st }
	}
	for _, tc := range []struct {
		desc    string
		fail    string // the fakes' operation that fails
		full    func(j *Journal) bool
		wantErr string // PATH is the journal
		wantDNS []string
	}{
		{desc: "the first save", full: func(*Journal) bool { return true },
			wantErr: `preflight: scheduler: journal "PATH" could not be saved (4 attempts): write PATH: no space left on device; DNS and the services were not changed`},
		{desc: "after the TTL was lowered", full: stepIs(LowerTTL, Done),
			wantErr: `lower-ttl: scheduler: journal "PATH" could not be saved (4 attempts): write PATH: no space left on device; changed so far: the TTL of mail.example.org. was lowered (data unchanged)`,
			wantDNS: []string{"lower-ttl"}},
		{desc: "after the swap", full: stepIs(SwapDNS, Done),
			wantErr: `swap-dns: scheduler: journal "PATH" could not be saved (4 attempts): write PATH: no space left on device; changed so far: mail.example.org. point at 127.0.0.20 and ::20 with the lowered TTL; the service on old was stopped (disable)`,
			wantDNS: []string{"lower-ttl", "swap"}},
		{desc: "a failed step whose rollback cannot be journaled", fail: "verify", full: func(j *Journal) bool { return j.Rollback != nil },
			wantErr: `verify: fake: verify fails as told; not rolled back: scheduler: journal "PATH" could not be saved (4 attempts): write PATH: no space left on device; changed so far: the TTL of mail.example.org. was lowered (data unchanged); the service on old was stopped (disable)`,
			wantDNS: []string{"lower-ttl"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir, t0.Add(time.Hour), "")
			if tc.fail != "" {
				os.WriteFile(filepath.Join(dir, "fail"), []byte(tc.fail), 0o600)
			}
			var out bytes.Buffer
			e := newTestEngine(t, dir, cfg, autoClock(t0), &out)
			failWrites(t, e, tc.full)
			err := e.Run(context.Background())
			want := strings.ReplaceAll(tc.wantErr, "PATH", e.Journal.Path())
			if got := errString(err); got != want {
				t.Fatalf("Run:\ngot  %q\nwant %q\n%s", got, want, out.String())
			}
			var rb *RolledBackError
			if errors.As(err, &rb) {
				t.Fatalf("a rollback was claimed: %v", err)
			}
			assertLines(t, filepath.Join(dir, "dns.log"), tc.wantDNS...)
			if hooks := readLines(t, filepath.Join(dir, "hooks.log")); slices.Contains(hooks, "reenable") {
				t.Fatalf("a rollback ran: hooks %q", hooks)
			}
		})
	}
}

// A save that fails a few times and then works is retried, not reported.
func TestSaveRetries(t *testing.T) {
	noRetryPause(t)
	for _, tc := range []struct {
		desc     string
		failures int
		wantErr  string
	}{
		{desc: "one failure", failures: 1},
		{desc: "three failures", failures: 3},
		{desc: "four failures", failures: 4, wantErr: `scheduler: journal "PATH" could not be saved (4 attempts): write PATH: no space left on device; DNS and the services were not changed`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			j := NewJournal(dir, "/x/mail.toml", t0, netip.MustParseAddr("127.0.0.10"), netip.MustParseAddr("127.0.0.20"), t0)
			calls := 0
			j.write = func(path string, data []byte) error {
				calls++
				if calls <= tc.failures {
					return errNoSpace(path)
				}
				return writeAtomic(path, data)
			}
			err := j.Save(t0)
			if got, want := errString(err), strings.ReplaceAll(tc.wantErr, "PATH", j.Path()); got != want {
				t.Fatalf("got  %q\nwant %q", got, want)
			}
			if _, lerr := LoadJournal(dir); (lerr == nil) != (err == nil) {
				t.Fatalf("saved: %v, but loading: %v", err, lerr)
			}
		})
	}
}

// What a SaveError says was changed follows the journal in memory: an
// action that was about to start (running, not ended) changed nothing.
func TestSaveErrorChanged(t *testing.T) {
	snap := &dnsrec.Snapshot{Zone: "example.org.", Names: []dnsrec.Name{{Name: "mail.example.org."}}}
	for _, tc := range []struct {
		desc    string
		dns     DNSState
		steps   map[StepName]StepRecord
		want    []string
		wantDNS bool
	}{
		{desc: "nothing", dns: DNSOriginal},
		{desc: "lower-ttl about to start", dns: DNSOriginal, steps: map[StepName]StepRecord{LowerTTL: {State: Running, Started: t0}}},
		{desc: "lower-ttl cut short", dns: DNSOriginal, steps: map[StepName]StepRecord{LowerTTL: {State: Running, Started: t0, Ended: t0}},
			want: []string{"lower-ttl stopped part-way: the records of mail.example.org. may have changed"}, wantDNS: true},
		{desc: "swap failed", dns: DNSLowered, steps: map[StepName]StepRecord{SwapDNS: {State: Failed}},
			want: []string{"the TTL of mail.example.org. was lowered (data unchanged)", "swap-dns stopped part-way: the records of mail.example.org. may have changed"}, wantDNS: true},
		{desc: "activated, TTL restored", dns: DNSRestored, steps: map[StepName]StepRecord{Disable: {State: Done}, Activate: {State: Done}},
			want: []string{"mail.example.org. point at 127.0.0.20 with the original TTL", "the service on old was stopped (disable)", "the service on new was started (activate)"}, wantDNS: true},
		{desc: "reverted after a failed disable", dns: DNSReverted, steps: map[StepName]StepRecord{Disable: {State: Failed}},
			want: []string{"mail.example.org. were reverted to the snapshot", "disable stopped part-way: the service on old may be stopped"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			j := NewJournal(t.TempDir(), "/x/mail.toml", t0, netip.MustParseAddr("127.0.0.10"), netip.MustParseAddr("127.0.0.20"), t0)
			j.DNS, j.Snapshot = tc.dns, snap
			for name, r := range tc.steps {
				r.Name = name
				*j.Step(name) = r
			}
			got, dns := j.changed()
			if !slices.Equal(got, tc.want) || dns != tc.wantDNS {
				t.Fatalf("changed: %q, %v\nwant     %q, %v", got, dns, tc.want, tc.wantDNS)
			}
		})
	}
}
