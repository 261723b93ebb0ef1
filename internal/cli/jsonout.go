package cli

import (
	"encoding/json"
	"io"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/scheduler"
)

// This file is the JSON that status --json and dns show --json print: the
// shape documented in the README's "JSON output" (durations in seconds,
// times in UTC, snake_case names), not the journal file's own format.

// writeJSON prints v indented, with a final newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

type rrsetJSON struct {
	Exists bool              `json:"exists"`
	Addrs  []string          `json:"addrs"`
	TTL    scheduler.Seconds `json:"ttl"` // 0 when the RRset does not exist
}

type nameJSON struct {
	Name string    `json:"name"`
	A    rrsetJSON `json:"a"`
	AAAA rrsetJSON `json:"aaaa"`
}

type snapshotJSON struct {
	Zone  string     `json:"zone"`
	Taken time.Time  `json:"taken"`
	Names []nameJSON `json:"names"`
}

// recordsJSON is `cutover dns show --json`: the names' records as the
// provider reports them now.
type recordsJSON struct {
	Zone  string     `json:"zone"`
	Names []nameJSON `json:"names"`
}

func toRRset(r dnsrec.RRset) rrsetJSON {
	out := rrsetJSON{Exists: r.Exists(), Addrs: []string{}, TTL: scheduler.Seconds(r.TTL)}
	for _, a := range r.Addrs {
		out.Addrs = append(out.Addrs, a.String())
	}
	return out
}

func toSnapshot(s *dnsrec.Snapshot) *snapshotJSON {
	if s == nil {
		return nil
	}
	out := &snapshotJSON{Zone: s.Zone, Taken: s.Taken.UTC(), Names: []nameJSON{}}
	for _, n := range s.Names {
		out.Names = append(out.Names, nameJSON{Name: n.Name, A: toRRset(n.A), AAAA: toRRset(n.AAAA)})
	}
	return out
}

type stepJSON struct {
	Name     scheduler.StepName  `json:"name"`
	State    scheduler.StepState `json:"state"`
	Started  time.Time           `json:"started,omitzero"`
	Ended    time.Time           `json:"ended,omitzero"`
	Duration *scheduler.Seconds  `json:"duration,omitempty"` // set once the step started and ended
	Attempts int                 `json:"attempts"`
	Note     string              `json:"note,omitempty"`
	Error    string              `json:"error,omitempty"`
	Tail     []string            `json:"tail,omitempty"`
}

type rollbackJSON struct {
	Reason  string    `json:"reason"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	Actions []string  `json:"actions"`
	Error   string    `json:"error,omitempty"`
}

// statusJSON is `cutover status --json`.
type statusJSON struct {
	Config     string        `json:"config"`
	Journal    string        `json:"journal"`
	CutoverAt  time.Time     `json:"cutover_at"`
	Created    time.Time     `json:"created"`
	Updated    time.Time     `json:"updated"`
	Outcome    string        `json:"outcome"` // not-started, in-progress, done, rolled-back, stopped
	AcceptSlow bool          `json:"accept_slow"`
	DNS        string        `json:"dns"`
	LoweredAt  time.Time     `json:"lowered_at,omitzero"`
	Snapshot   *snapshotJSON `json:"snapshot,omitempty"`
	Steps      []stepJSON    `json:"steps"`
	Rollback   *rollbackJSON `json:"rollback,omitempty"`
	Log        []string      `json:"log"`
}

// toStatus is the journal in the output shape.
func toStatus(cfg *config.Config, j *scheduler.Journal) statusJSON {
	out := statusJSON{Config: cfg.File, Journal: j.Path(), CutoverAt: j.CutoverAt.UTC(), Created: j.Created.UTC(), Updated: j.Updated.UTC(),
		Outcome: j.Outcome, AcceptSlow: j.AcceptSlow, DNS: string(j.DNS), LoweredAt: j.LoweredAt.UTC(), Snapshot: toSnapshot(j.Snapshot),
		Steps: []stepJSON{}, Log: append([]string{}, j.Log...)}
	switch {
	case out.Outcome != "":
	case j.Started():
		out.Outcome = "in-progress"
	default:
		out.Outcome = "not-started"
	}
	for _, s := range j.Steps {
		st := stepJSON{Name: s.Name, State: s.State, Started: s.Started.UTC(), Ended: s.Ended.UTC(), Attempts: s.Attempts,
			Note: s.Note, Error: s.Error, Tail: s.Tail}
		if !s.Started.IsZero() && !s.Ended.IsZero() {
			d := scheduler.Seconds(s.Ended.Sub(s.Started))
			st.Duration = &d
		}
		out.Steps = append(out.Steps, st)
	}
	if r := j.Rollback; r != nil {
		out.Rollback = &rollbackJSON{Reason: r.Reason, Started: r.Started.UTC(), Ended: r.Ended.UTC(), Actions: append([]string{}, r.Actions...), Error: r.Error}
	}
	return out
}
