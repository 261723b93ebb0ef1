package dnsprop

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// View renders the events of a wait for `cutover watch`: a table rewritten in
// place with ANSI escapes on a terminal (one row per server and name: server,
// role, name, the addresses of each record type watched, state, TTL left,
// ETA, and a footer), or JSON lines (one per change plus the final summary).
// It is safe for concurrent use.
type View struct {
	mu    sync.Mutex
	w     io.Writer
	table bool
	now   func() time.Time

	rows   map[rowKey]viewRow
	order  []rowKey
	report *Report
	lines  int   // lines drawn by the last table render
	err    error // first write error
}

type rowKey struct {
	srv  netip.AddrPort
	role string
	name string
}

// viewRow holds the last observation of each record type of one row.
type viewRow map[string]*Observation

// NewView returns a View writing to w: the live table when terminal is true and
// jsonLines is false, JSON lines otherwise.
func NewView(w io.Writer, terminal bool, jsonLines bool) *View {
	return &View{w: w, table: terminal && !jsonLines, now: time.Now, rows: map[rowKey]viewRow{}}
}

// Err is the first error writing to the View's writer, if any.
func (v *View) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Event renders ev. It has the signature of a progress function.
func (v *View) Event(ev Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.table {
		if ev.Kind == EventProgress {
			return
		}
		b, err := json.Marshal(ev)
		if err == nil {
			_, err = v.w.Write(append(b, '\n'))
		}
		v.setErr(err)
		return
	}
	switch {
	case ev.Obs != nil:
		v.put(*ev.Obs)
	case ev.Report != nil:
		v.report = ev.Report
		v.rows, v.order = map[rowKey]viewRow{}, nil
		for _, o := range ev.Report.Observations {
			v.put(o)
		}
	}
	v.render(ev.Kind == EventSummary)
}

func (v *View) setErr(err error) {
	if err != nil && v.err == nil {
		v.err = err
	}
}

func (v *View) put(o Observation) {
	k := rowKey{srv: o.Server, role: o.Role, name: o.Name}
	r, ok := v.rows[k]
	if !ok {
		r = viewRow{}
		v.rows[k] = r
		v.order = append(v.order, k)
	}
	r[o.Type] = &o
}

// types are the record types watched: those of the report, or before the
// first report those seen so far.
func (v *View) types() []string {
	if v.report != nil && len(v.report.Types) > 0 {
		return v.report.Types
	}
	var out []string
	for _, t := range bothTypes {
		for _, r := range v.rows {
			if r[t] != nil {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// render redraws the table over the previous one. After the final summary the
// table stays and the next render starts below it.
func (v *View) render(final bool) {
	now := v.now()
	if v.report != nil && final {
		now = v.report.At
	}
	types := v.types()
	var b strings.Builder
	if v.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\r\x1b[J", v.lines)
	}
	var t strings.Builder
	tw := tabwriter.NewWriter(&t, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SERVER\tROLE\tNAME\t%s\tSTATE\tTTL LEFT\tETA\n", strings.Join(types, "\t"))
	for _, k := range v.order {
		r := v.rows[k]
		cells := []string{serverString(k.srv), k.role, k.name}
		for _, typ := range types {
			cells = append(cells, cellAddrs(r[typ]))
		}
		cells = append(cells, r.state(types), r.ttl(now), r.eta(types, now))
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
	b.WriteString(t.String())
	lines := strings.Count(t.String(), "\n")
	if rep := v.report; rep != nil {
		status, eta := "waiting", fmtSeconds(max(0, rep.ETA-now.Sub(rep.At)))
		switch {
		case rep.Converged:
			status, eta = "converged", "-"
		case rep.StableButWrong:
			status, eta = "stable but wrong", "none"
		}
		if final && !rep.Converged {
			status = strings.Replace("NOT converged, "+status, ", waiting", "", 1)
		}
		fmt.Fprintf(&b, "%s · ETA %s · %d queries\n", status, eta, rep.TotalQueries())
		lines++
		if final {
			for _, l := range rep.Lagging {
				fmt.Fprintf(&b, "  %s\n", l)
				lines++
			}
		}
	}
	v.lines = lines
	if final {
		v.lines = 0
	}
	_, err := io.WriteString(v.w, b.String())
	v.setErr(err)
}

func cellAddrs(o *Observation) string {
	switch {
	case o == nil:
		return "…"
	case o.State == StateUnknown:
		return "?"
	case len(o.Addrs) == 0:
		return "-"
	}
	return strings.Join(addrStrings(o.Addrs), ",")
}

// state is "new" when every type watched is; otherwise what each type that
// is not serves (Observation.What), prefixed by its type when more than one
// is watched; "…" until every type has an answer.
func (r viewRow) state(types []string) string {
	var parts []string
	for _, t := range types {
		o := r[t]
		switch {
		case o == nil:
			return "…"
		case o.State == StateNew:
			continue
		}
		p := o.What()
		if o.Stable {
			p += " (stable)"
		}
		if len(types) > 1 {
			p = t + " " + p
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return string(StateNew)
	}
	return strings.Join(parts, "; ")
}

// ttl is the TTL left on the row's answers (resolvers count down; the
// authoritative TTL is the configured one).
func (r viewRow) ttl(now time.Time) string {
	var d time.Duration
	seen := false
	for _, o := range r {
		if o.State == StateUnknown {
			continue
		}
		seen = true
		if o.Role == RoleResolver {
			d = max(d, o.TTLLeft(now))
		} else {
			d = max(d, o.TTL)
		}
	}
	if !seen {
		return "-"
	}
	return fmtSeconds(d)
}

// eta is when a resolver row's answers may become the new ones: the TTL left
// on what is not new yet; "-" when new; "none" when what is not new is
// stable; "?" when unknown, or authoritative, not new and not stable
// (authoritative servers have no countdown).
func (r viewRow) eta(types []string, now time.Time) string {
	var d time.Duration
	waiting, stable := false, false
	for _, t := range types {
		o := r[t]
		switch {
		case o == nil || o.State == StateUnknown:
			return "?"
		case o.State == StateNew:
		case o.Stable:
			stable = true
		case o.Role != RoleResolver:
			return "?"
		default:
			waiting = true
			d = max(d, o.TTLLeft(now))
		}
	}
	switch {
	case waiting:
		return fmtSeconds(d)
	case stable:
		return "none"
	}
	return "-"
}

func fmtSeconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int64(d.Round(time.Second)/time.Second))
}
