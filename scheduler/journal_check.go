package scheduler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cutover-dev/cutover/dnsrec"
)

// DamagedJournalError is a journal that does not have the complete, known
// shape this cutover writes. It is never guessed at: a journal read wrong
// could make cutover repeat, skip or "roll back" steps that never ran.
type DamagedJournalError struct {
	Path string
	Err  error // what is wrong
}

func (e *DamagedJournalError) Error() string {
	return fmt.Sprintf("scheduler: journal %q is damaged: %v", e.Path, e.Err)
}
func (e *DamagedJournalError) Unwrap() error { return e.Err }

// versionError is a journal written by another version of cutover.
type versionError struct{ version int }

func (e *versionError) Error() string { return fmt.Sprintf("version %d", e.version) }

// journalKeys are the keys every journal has: Save writes them always.
var journalKeys = []string{"version", "config", "cutover_at", "old", "new", "created", "updated", "dns", "steps"}

var (
	dnsStates  = []DNSState{DNSOriginal, DNSLowered, DNSSwapped, DNSRestored, DNSReverted}
	stepStates = []StepState{Pending, Running, Done, Failed, Skipped}
	outcomes   = []string{"", OutcomeDone, OutcomeRolledBack, OutcomeStopped}
)

// parseJournal reads a journal and refuses anything but the complete,
// known shape: every key Save writes present, no unknown keys, known step
// names (each once), step states, DNS state and outcome, and the facts that
// go together (a changed DNS has a snapshot to go back to; a rolled-back
// outcome has its rollback). Steps added to cutover after the journal was
// written are pending; the steps are kept in the order they run (with
// [bridge] when the journal has its steps).
func parseJournal(data []byte) (*Journal, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return nil, err
	}
	if keys == nil {
		return nil, errors.New("not a JSON object")
	}
	var missing []string
	for _, k := range journalKeys {
		if _, ok := keys[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	var v struct{ Version int }
	if err := json.Unmarshal(keys["version"], &v.Version); err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	if v.Version != journalVersion {
		return nil, &versionError{version: v.Version}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j Journal
	if err := dec.Decode(&j); err != nil {
		return nil, err
	}
	if j.Version != journalVersion { // a second "Version" key: JSON keys match in any case
		return nil, &versionError{version: j.Version}
	}
	if err := j.check(); err != nil {
		return nil, err
	}
	order := Steps
	if j.Step(Bridge) != nil || j.Step(Unbridge) != nil {
		order = bridgeSteps // a handover through old
	}
	steps := make([]StepRecord, 0, len(order))
	for _, s := range order {
		if r := j.Step(s.Name); r != nil {
			steps = append(steps, *r)
		} else {
			steps = append(steps, StepRecord{Name: s.Name, State: Pending})
		}
	}
	j.Steps = steps
	return &j, nil
}

// check is parseJournal's list of rules over the decoded journal.
func (j *Journal) check() error {
	if err := j.Identity.check(); err != nil {
		return err
	}
	if !slices.Contains(dnsStates, j.DNS) {
		return fmt.Errorf("unknown DNS state %q", j.DNS)
	}
	if !slices.Contains(outcomes, j.Outcome) {
		return fmt.Errorf("unknown outcome %q", j.Outcome)
	}
	if len(j.Steps) == 0 {
		return errors.New("no steps")
	}
	seen := map[StepName]bool{}
	for i, s := range j.Steps {
		if _, ok := Info(s.Name); !ok {
			return fmt.Errorf("steps[%d]: unknown step %q", i, s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("steps[%d]: step %s appears twice", i, s.Name)
		}
		seen[s.Name] = true
		if !slices.Contains(stepStates, s.State) {
			return fmt.Errorf("steps[%d] (%s): unknown state %q", i, s.Name, s.State)
		}
		if s.Attempts < 0 {
			return fmt.Errorf("steps[%d] (%s): attempts %d", i, s.Name, s.Attempts)
		}
	}
	if j.Snapshot != nil {
		if err := validSnapshot(j.Snapshot); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	} else if j.DNS != DNSOriginal {
		return fmt.Errorf("DNS is %s but there is no snapshot to go back to", j.DNS)
	}
	if j.Outcome == OutcomeRolledBack && j.Rollback == nil {
		return errors.New("outcome rolled-back without a rollback")
	}
	for i, r := range j.Selftests {
		if err := r.check(); err != nil {
			return fmt.Errorf("selftests[%d]: %w", i, err)
		}
	}
	return nil
}

// check requires what every journal records (config path, addresses) and,
// unless the journal predates identities, the whole identity.
func (id Identity) check() error {
	switch {
	case id.Config == "":
		return errors.New("config is empty")
	case !id.Old.IsValid():
		return errors.New("old is empty")
	case !id.New.IsValid():
		return errors.New("new is empty")
	}
	if id.legacy() {
		if len(id.Names) > 0 || id.Provider != "" || id.ProviderType != "" {
			return errors.New("identity without a zone")
		}
		return nil
	}
	switch {
	case len(id.Names) == 0:
		return errors.New("identity without names")
	case id.Provider == "" || id.ProviderType == "":
		return errors.New("identity without a provider")
	}
	return nil
}

// validSnapshot checks what a journal's snapshot must hold: a zone, names,
// no negative TTL, no empty address.
func validSnapshot(s *dnsrec.Snapshot) error {
	if s.Zone == "" {
		return errors.New("no zone")
	}
	if len(s.Names) == 0 {
		return errors.New("no names")
	}
	for i, n := range s.Names {
		if n.Name == "" {
			return fmt.Errorf("names[%d]: no name", i)
		}
		for _, rr := range n.Sets() {
			if rr.TTL < 0 {
				return fmt.Errorf("%s %s: negative TTL", n.Name, rr.Type)
			}
			for _, a := range rr.Addrs {
				if !a.IsValid() {
					return fmt.Errorf("%s %s: an empty address", n.Name, rr.Type)
				}
			}
		}
	}
	return nil
}

// SaveError is a journal that could not be written, even after a few
// tries. The journal on disk is then behind what cutover did: Changed says
// what cutover has changed so far, so that the operator can check or undo it.
type SaveError struct {
	Path     string
	Attempts int
	Err      error
	Changed  []string // empty: neither DNS nor a service was changed
	// Snapshot is the records to go back to when DNS was (or may have
	// been) changed; nil otherwise.
	Snapshot *dnsrec.Snapshot
}

func (e *SaveError) Error() string {
	changed := "DNS and the services were not changed"
	if len(e.Changed) > 0 {
		changed = "changed so far: " + strings.Join(e.Changed, "; ")
	}
	return fmt.Sprintf("scheduler: journal %q could not be saved (%d attempts): %v; %s", e.Path, e.Attempts, e.Err, changed)
}
func (e *SaveError) Unwrap() error { return e.Err }

// changed lists what cutover has changed outside the state dir, as this
// journal (in memory) says: the DNS records and the services on old and
// new; dns reports whether the records were (or may have been) changed.
func (j *Journal) changed() (out []string, dns bool) {
	names := strings.Join(j.Names, ", ")
	if names == "" && j.Snapshot != nil {
		for _, n := range j.Snapshot.Names {
			names += n.Name + " "
		}
		names = strings.TrimSpace(names)
	}
	newAddrs := j.New.String()
	if j.New6.IsValid() {
		newAddrs += " and " + j.New6.String()
	}
	switch j.DNS {
	case DNSLowered:
		out = append(out, "the TTL of "+names+" was lowered (data unchanged)")
	case DNSSwapped:
		out = append(out, names+" point at "+newAddrs+" with the lowered TTL")
	case DNSRestored:
		out = append(out, names+" point at "+newAddrs+" with the original TTL")
	}
	// A step whose action returned without success (failed, or cut
	// short by a signal) may have done part of its work.
	partly := func(s StepName) bool {
		r := j.Step(s)
		return r != nil && (r.State == Failed || r.State == Running && !r.Ended.IsZero())
	}
	if j.DNS == DNSOriginal || j.DNS == DNSLowered {
		for _, s := range []StepName{LowerTTL, SwapDNS} {
			if partly(s) {
				out = append(out, fmt.Sprintf("%s stopped part-way: the records of %s may have changed", s, names))
			}
		}
	}
	dns = len(out) > 0 // and something to undo
	if j.DNS == DNSReverted {
		out = append(out, names+" were reverted to the snapshot")
	}
	for _, h := range []struct {
		step       StepName
		done, part string
	}{
		{Disable, "the service on old was stopped (disable)", "disable stopped part-way: the service on old may be stopped"},
		{Activate, "the service on new was started (activate)", "activate stopped part-way: the service on new may be running"},
	} {
		if r := j.Step(h.step); r != nil && r.State == Done {
			out = append(out, h.done)
		} else if partly(h.step) {
			out = append(out, h.part)
		}
	}
	return out, dns
}
