package scheduler

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/config"
)

// Render writes the plan for a person: every step with its absolute time in
// UTC and in loc, why it runs then, and exactly what it will do.
func (p *Plan) Render(w io.Writer, loc *time.Location) {
	when := func(t time.Time) string {
		s := t.UTC().Format("2006-01-02 15:04:05 UTC")
		if loc != nil {
			if name, off := t.In(loc).Zone(); off != 0 || name != "UTC" {
				s += " (" + t.In(loc).Format("2006-01-02 15:04:05 MST") + ")"
			}
		}
		return s
	}
	fmt.Fprintf(w, "plan for %s\n", p.Config)
	fmt.Fprintf(w, "  now:          %s\n", when(p.Now))
	fmt.Fprintf(w, "  window opens: %s (%s)\n", when(p.CutoverAt), relative(p.CutoverAt.Sub(p.Now)))
	if p.Offline {
		fmt.Fprintf(w, "  DNS:          not looked up (--offline): the TTLs served are unknown\n")
	} else {
		fmt.Fprintf(w, "  DNS:          longest TTL a cache may hold %s, margin %s\n", config.FormatDuration(p.MaxTTL), config.FormatDuration(p.Margin))
	}
	fmt.Fprintf(w, "  downtime:     %s\n", p.Downtime)
	fmt.Fprintln(w)
	for i, s := range p.Steps {
		fmt.Fprintf(w, "%2d  %s\n", i+1, s.Name)
		switch {
		case s.Skip != "":
			fmt.Fprintf(w, "    skipped: %s\n", s.Skip)
		case !s.Earliest.IsZero():
			fmt.Fprintf(w, "    starts:  %s\n", when(s.Earliest))
		case s.After != "":
			fmt.Fprintf(w, "    starts:  after %s\n", s.After)
		}
		if !s.Deadline.IsZero() && s.Skip == "" {
			fmt.Fprintf(w, "    done by: %s\n", when(s.Deadline))
		}
		if s.Why != "" && s.Skip == "" {
			fmt.Fprintf(w, "    why:     %s\n", s.Why)
		}
		if s.Skip == "" {
			for _, a := range s.Action {
				fmt.Fprintf(w, "    - %s\n", a)
			}
		}
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintln(w)
		for _, warn := range p.Warnings {
			fmt.Fprintf(w, "warning: %s\n", warn)
		}
	}
}

// roughly prints a duration for people: "2d 3h", "45m", "30s".
func roughly(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d >= 48*time.Hour:
		s = fmt.Sprintf("%dd %dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		s = fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		s = fmt.Sprintf("%dm %ds", d/time.Minute, (d%time.Minute)/time.Second)
	default:
		s = fmt.Sprintf("%ds", d/time.Second)
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, " 0h"), " 0m")
	s = strings.TrimSuffix(s, " 0s")
	if neg {
		return "-" + s
	}
	return s
}

// relative says when something is, seen from now: "in 2d 3h", "5m ago", "now".
func relative(d time.Duration) string {
	switch {
	case d > -time.Second && d < time.Second:
		return "now"
	case d < 0:
		return roughly(-d) + " ago"
	}
	return "in " + roughly(d)
}
