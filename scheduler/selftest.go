package scheduler

import (
	"errors"
	"time"
)

// SelftestRecord is one run of `cutover dns selftest`: the provider type
// and zone it tested and whether every operation passed.
type SelftestRecord struct {
	At       time.Time `json:"at"`
	Provider string    `json:"provider"`
	Zone     string    `json:"zone"`
	Passed   bool      `json:"passed"`
}

// RecordSelftest journals a selftest run (the CLI runs the selftest; the
// journal has one writer). It adds no note to the log: a journal that
// holds only selftests is not a started cutover (Journal.Started).
func (e *Engine) RecordSelftest(r SelftestRecord) error {
	e.Journal.Selftests = append(e.Journal.Selftests, r)
	return e.save()
}

// SelftestPassed reports whether the journal holds a passed selftest of
// provider and zone.
func (j *Journal) SelftestPassed(provider, zone string) bool {
	for _, r := range j.Selftests {
		if r.Passed && r.Provider == provider && r.Zone == zone {
			return true
		}
	}
	return false
}

// check is the journal's rule for a selftest record: what was tested, and when.
func (r SelftestRecord) check() error {
	if r.Provider == "" || r.Zone == "" || r.At.IsZero() {
		return errors.New("a selftest without provider, zone or time")
	}
	return nil
}
