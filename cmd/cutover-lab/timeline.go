package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/scheduler"
)

// dnsMove is when one DNS server (an authoritative one or a cache) first
// served the new addresses for every name and type watched.
type dnsMove struct {
	Role, Server string
	At           time.Time
}

// dnsMoves reads the JSON lines of `cutover watch --json` (README "JSON
// output") and returns, per server, when it first served the new
// addresses for all the names and types that any server was asked about,
// in that order.
func dnsMoves(r io.Reader) []dnsMove {
	type key struct{ role, server string }
	states := map[key]map[string]string{} // server -> "name type" -> state
	questions := map[string]bool{}
	moved := map[key]bool{}
	var moves []dnsMove
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Kind string `json:"kind"`
			Obs  *struct {
				Server, Role, Name, Type, State, Time string
			} `json:"obs"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Kind != "change" || line.Obs == nil {
			continue
		}
		o := line.Obs
		at, err := time.Parse(time.RFC3339Nano, o.Time)
		if err != nil {
			continue
		}
		k, q := key{o.Role, o.Server}, o.Name+" "+o.Type
		if states[k] == nil {
			states[k] = map[string]string{}
		}
		states[k][q] = o.State
		questions[q] = true
		if moved[k] || len(states[k]) < len(questions) {
			continue
		}
		all := true
		for _, s := range states[k] {
			all = all && s == "new"
		}
		if all {
			moved[k] = true
			moves = append(moves, dnsMove{Role: o.Role, Server: o.Server, At: at})
		}
	}
	return moves
}

// timelineWidth is the number of cells of the bars, for the window.
const timelineWidth = 40

// timeline writes the window as a text timeline: every step that ran, with
// its start relative to disable and its length (and a bar over the window:
// from disable to the end of activate, the last DNS move or the sender's
// first message to new, whichever is last), when each DNS server moved to
// the new address, and when the sender first reached new.
func timeline(w io.Writer, j *scheduler.Journal, moves []dnsMove, firstNew time.Time) {
	var t0, end time.Time
	for _, s := range j.Steps {
		if s.Name == scheduler.Disable {
			t0 = s.Started
		}
		if s.Ended.After(end) && s.Name != scheduler.RestoreTTL {
			end = s.Ended
		}
	}
	if t0.IsZero() {
		for _, s := range j.Steps {
			if !s.Started.IsZero() && (t0.IsZero() || s.Started.Before(t0)) {
				t0 = s.Started
			}
		}
	}
	for _, m := range moves {
		end = later(end, m.At)
	}
	end = later(end, firstNew)
	span := end.Sub(t0)
	rel := func(t time.Time) string {
		d := t.Sub(t0).Round(10 * time.Millisecond)
		if d < 0 {
			return "-" + (-d).String()
		}
		return "+" + d.String()
	}
	// cells is the bar of [from, to] over the window.
	cells := func(from, to time.Time) string {
		if span <= 0 || from.Before(t0) || from.After(end) {
			return ""
		}
		a := int(from.Sub(t0) * timelineWidth / span)
		b := max(int(to.Sub(t0)*timelineWidth/span), a+1)
		a, b = min(a, timelineWidth-1), min(b, timelineWidth)
		return "|" + strings.Repeat(" ", a) + strings.Repeat("=", b-a) + strings.Repeat(" ", timelineWidth-b) + "|"
	}
	type row struct {
		at   time.Time
		text string
	}
	var rows []row
	for _, s := range j.Steps {
		if s.Started.IsZero() {
			continue
		}
		length := "running"
		bar := cells(s.Started, s.Started)
		if !s.Ended.IsZero() {
			length = s.Ended.Sub(s.Started).Round(10 * time.Millisecond).String()
			bar = cells(s.Started, s.Ended)
		}
		state := ""
		if s.State != scheduler.Done {
			state = " (" + string(s.State) + ")"
		}
		rows = append(rows, row{s.Started, fmt.Sprintf("%-10s %-36s %-9s %s", rel(s.Started), string(s.Name)+state, length, bar)})
	}
	for _, m := range moves {
		rows = append(rows, row{m.At, fmt.Sprintf("%-10s %-46s %s", rel(m.At), "DNS "+m.Role+" "+m.Server+" serves new", cells(m.At, m.At))})
	}
	if !firstNew.IsZero() {
		rows = append(rows, row{firstNew, fmt.Sprintf("%-10s %-46s %s", rel(firstNew), "the sender's first message reaches new", cells(firstNew, firstNew))})
	}
	slices.SortStableFunc(rows, func(a, b row) int { return a.at.Compare(b.at) })
	fmt.Fprintf(w, "timeline (from disable at %s; the bars span the window, %s):\n", t0.Format(time.TimeOnly), span.Round(10*time.Millisecond))
	for _, r := range rows {
		fmt.Fprintf(w, "  %s\n", strings.TrimRight(r.text, " "))
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
