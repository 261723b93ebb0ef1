package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// This file is the JSON output shape of what the scheduler hands to the
// CLI (the plan): durations as seconds, numbers such as "ttl": 30 or
// "margin": 0.5. The journal file keeps its own format; see the README's
// "JSON output".

// Seconds is a duration that is written to JSON as a number of seconds
// (fractional below a second) and read back from one.
type Seconds time.Duration

// MarshalJSON writes s as seconds: 30, 1.5.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, time.Duration(s).Seconds(), 'f', -1, 64), nil
}

// UnmarshalJSON reads a number of seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("scheduler: seconds: %w", err)
	}
	*s = Seconds(time.Duration(f * float64(time.Second)).Round(time.Microsecond))
	return nil
}

// providerJSON is ProviderInfo with its minimum TTL in seconds.
type providerJSON struct {
	Type         string  `json:"type"`
	MinTTL       Seconds `json:"min_ttl"`
	MinTTLReason string  `json:"min_ttl_reason,omitempty"`
}

// MarshalJSON writes min_ttl in seconds.
func (p ProviderInfo) MarshalJSON() ([]byte, error) {
	return marshal(providerJSON{p.Type, Seconds(p.MinTTL), p.MinTTLReason})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *ProviderInfo) UnmarshalJSON(b []byte) error {
	var v providerJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = ProviderInfo{v.Type, time.Duration(v.MinTTL), v.MinTTLReason}
	return nil
}

// plainPlan is Plan without its methods, so that its fields marshal as usual.
type plainPlan Plan

// planJSON is the plan with its durations in seconds: the outer fields
// shadow those of the same JSON names in plainPlan.
type planJSON struct {
	plainPlan
	MaxTTL Seconds `json:"max_ttl"`
	Margin Seconds `json:"margin"`
}

// MarshalJSON writes the plan with max_ttl and margin in seconds and its
// times in UTC.
func (p Plan) MarshalJSON() ([]byte, error) {
	q := plainPlan(p)
	q.Now, q.CutoverAt, q.CachesUntil, q.EarliestSafe = q.Now.UTC(), q.CutoverAt.UTC(), q.CachesUntil.UTC(), q.EarliestSafe.UTC()
	q.Steps = make([]PlannedStep, len(p.Steps))
	for i, s := range p.Steps {
		s.Earliest, s.Deadline = s.Earliest.UTC(), s.Deadline.UTC()
		if s.Action == nil {
			s.Action = []string{}
		}
		q.Steps[i] = s
	}
	return marshal(planJSON{q, Seconds(p.MaxTTL), Seconds(p.Margin)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *Plan) UnmarshalJSON(b []byte) error {
	var v planJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Plan(v.plainPlan)
	p.MaxTTL, p.Margin = time.Duration(v.MaxTTL), time.Duration(v.Margin)
	return nil
}

// plainEvent is Event without its methods.
type plainEvent Event

// MarshalJSON writes the event with its time in UTC, as every time in
// cutover's JSON output.
func (ev Event) MarshalJSON() ([]byte, error) {
	q := plainEvent(ev)
	q.Time = q.Time.UTC()
	return marshal(q)
}

// marshal is json.Marshal without HTML escaping: the plan's actions say
// "A -> 127.0.0.20", and a person reads them.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
