package scheduler

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
)

// Identity is what a journal belongs to: the config file (its absolute
// path) and every field that decides which records a cutover changes and to
// what. A journal is only ever used with the config it was written for, so
// that one config can never act on the state of another (two files both
// named mail.toml used to share a state dir: the second swapped the first
// one's names). It is stored inline at the top of the journal.
type Identity struct {
	Config       string     `json:"config"` // absolute path of the config file
	Zone         string     `json:"zone,omitempty"`
	Names        []string   `json:"names,omitempty"` // sorted
	Old          netip.Addr `json:"old"`
	Old6         netip.Addr `json:"old6,omitzero"`
	New          netip.Addr `json:"new"`
	New6         netip.Addr `json:"new6,omitzero"`
	Provider     string     `json:"provider,omitempty"`      // [providers.NAME]
	ProviderType string     `json:"provider_type,omitempty"` // its type
}

// IdentityOf is the identity of a config.
func IdentityOf(cfg *config.Config) (Identity, error) {
	path, err := filepath.Abs(cfg.File)
	if err != nil {
		return Identity{}, fmt.Errorf("scheduler: journal identity: %w", err)
	}
	id := Identity{Config: path, Zone: cfg.DNS.Zone, Names: slices.Sorted(slices.Values(cfg.DNS.Names)),
		Old: cfg.Old.Address, Old6: cfg.Old.Address6, New: cfg.New.Address, New6: cfg.New.Address6,
		Provider: cfg.DNS.Provider}
	if p := cfg.Provider(); p != nil {
		id.ProviderType = p.Type
	}
	return id, nil
}

// legacy reports whether the journal was written before journals recorded
// their identity: it names no zone.
func (id Identity) legacy() bool { return id.Zone == "" }

// differences lists the fields in which a journal's identity (id) differs
// from the config's (cfg), as "field: journal X, config Y". A journal
// written before identities is compared on what it recorded: the
// addresses, the zone and names of its snapshot, and its config path when
// that was absolute.
func (id Identity) differences(cfg Identity, snap *dnsrec.Snapshot) []string {
	var out []string
	diff := func(field, j, c string) {
		if j != c {
			out = append(out, fmt.Sprintf("%s: journal %s, config %s", field, orNone(j), orNone(c)))
		}
	}
	addr := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return a.String()
	}
	if !id.legacy() || filepath.IsAbs(id.Config) {
		diff("config", id.Config, cfg.Config)
	}
	if id.legacy() {
		if snap != nil {
			names := make([]string, len(snap.Names))
			for i, n := range snap.Names {
				names[i] = n.Name
			}
			diff("zone", snap.Zone, cfg.Zone)
			diff("names", strings.Join(slices.Sorted(slices.Values(names)), " "), strings.Join(cfg.Names, " "))
		}
		diff("old.address", addr(id.Old), addr(cfg.Old))
		diff("new.address", addr(id.New), addr(cfg.New))
		return out
	}
	diff("zone", id.Zone, cfg.Zone)
	diff("names", strings.Join(id.Names, " "), strings.Join(cfg.Names, " "))
	diff("old.address", addr(id.Old), addr(cfg.Old))
	diff("old.address6", addr(id.Old6), addr(cfg.Old6))
	diff("new.address", addr(id.New), addr(cfg.New))
	diff("new.address6", addr(id.New6), addr(cfg.New6))
	diff("dns.provider", id.Provider, cfg.Provider)
	diff("provider type", id.ProviderType, cfg.ProviderType)
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// ForeignJournalError is a journal that belongs to another config (or to
// this one before a change that alters what the cutover would touch).
type ForeignJournalError struct {
	Path        string   // the journal file
	Journal     Identity // what it belongs to
	Config      string   // the config that opened it
	Differences []string // "field: journal X, config Y"
}

func (e *ForeignJournalError) Error() string {
	owner := strconv.Quote(e.Journal.Config)
	if e.Journal.Zone != "" {
		owner += " (zone " + e.Journal.Zone + ")"
	}
	return fmt.Sprintf("scheduler: journal at %q belongs to %s, not %q: %s", e.Path, owner, e.Config, strings.Join(e.Differences, "; "))
}

// ErrForeignJournal matches every ForeignJournalError.
var ErrForeignJournal = errors.New("scheduler: journal belongs to another config")

func (e *ForeignJournalError) Is(target error) bool { return target == ErrForeignJournal }

// checkIdentity refuses a journal that does not belong to id.
func (j *Journal) checkIdentity(id Identity) error {
	if d := j.Identity.differences(id, j.Snapshot); len(d) > 0 {
		return &ForeignJournalError{Path: j.path, Journal: j.Identity, Config: id.Config, Differences: d}
	}
	return nil
}

// OpenJournal is the journal of cfg's cutover (in its state_dir), for a
// command that holds the lock and may change things: a new journal (not yet
// written) when there is none; an error when it is damaged or belongs to
// another config. A journal written before journals recorded their identity
// is adopted once, by the first config that opens it, if what it did record
// matches (addresses, snapshot zone and names): its identity is filled in,
// noted in its log (once anything was done) and saved at once.
func OpenJournal(cfg *config.Config, now time.Time) (*Journal, error) {
	id, err := IdentityOf(cfg)
	if err != nil {
		return nil, err
	}
	j, err := LoadJournal(cfg.StateDir)
	if errors.Is(err, ErrNoJournal) {
		j = NewJournal(cfg.StateDir, id.Config, cfg.CutoverAt, id.Old, id.New, now)
		j.Identity = id
		j.Steps = pendingSteps(table(cfg))
		return j, nil
	}
	if err != nil {
		return nil, err
	}
	if err := j.checkIdentity(id); err != nil {
		return nil, err
	}
	if err := j.conform(cfg); err != nil {
		return nil, err
	}
	if j.Identity.legacy() {
		j.Identity = id
		if j.Started() { // a note would make a journal of nothing look started
			j.Note(now, "journal adopted by %s: it was written before journals recorded the config they belong to", id.Config)
		}
		if err := j.Save(now); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// ReadJournal is the journal of cfg's cutover for a command that only reads
// it (status): ErrNoJournal when there is none, an error when it is damaged
// or belongs to another config. It writes nothing: a journal from before
// identities is checked like OpenJournal does but adopted only by a command
// that changes things.
func ReadJournal(cfg *config.Config) (*Journal, error) {
	id, err := IdentityOf(cfg)
	if err != nil {
		return nil, err
	}
	j, err := LoadJournal(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if err := j.checkIdentity(id); err != nil {
		return nil, err
	}
	return j, nil
}
