package scheduler

import "time"

// SelftestRecord is one run of `cutover dns selftest`: the provider type
// and zone it tested and whether every operation passed.
type SelftestRecord struct {
	At       time.Time `json:"at"`
	Provider string    `json:"provider"`
	Zone     string    `json:"zone"`
	Passed   bool      `json:"passed"`
}

// RecordSelftest journals a selftest run (the CLI runs the selftest; the
// journal has one writer).
func (e *Engine) RecordSelftest(r SelftestRecord) error {
	j := e.Journal
	j.Selftests = append(j.Selftests, r)
	outcome := "failed"
	if r.Passed {
		outcome = "passed"
	}
	j.Note(r.At, "dns selftest of provider %s on zone %s: %s", r.Provider, r.Zone, outcome)
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
