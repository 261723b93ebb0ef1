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
// role, name, A, AAAA, state, TTL left, ETA, and a footer), or JSON lines (one
// per change plus the final summary). It is safe for concurrent use.
type View struct {
	mu    sync.Mutex
	w     io.Writer
	table bool
	now   func() time.Time

	rows   map[rowKey]*viewRow
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

type viewRow struct {
	a, aaaa *Observation
}

// NewView returns a View writing to w: the live table when terminal is true and
// jsonLines is false, JSON lines otherwise.
func NewView(w io.Writer, terminal bool, jsonLines bool) *View {
	return &View{w: w, table: terminal && !jsonLines, now: time.Now, rows: map[rowKey]*viewRow{}}
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
		v.rows, v.order = map[rowKey]*viewRow{}, nil
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
		r = &viewRow{}
		v.rows[k] = r
		v.order = append(v.order, k)
	}
	if o.Type == "AAAA" {
		r.aaaa = &o
	} else {
		r.a = &o
	}
}

// render redraws the table over the previous one. After the final summary the
// table stays and the next render starts below it.
func (v *View) render(final bool) {
	now := v.now()
	if v.report != nil && final {
		now = v.report.At
	}
	var b strings.Builder
	if v.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\r\x1b[J", v.lines)
	}
	var t strings.Builder
	tw := tabwriter.NewWriter(&t, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tROLE\tNAME\tA\tAAAA\tSTATE\tTTL LEFT\tETA")
	for _, k := range v.order {
		r := v.rows[k]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", serverString(k.srv), k.role, k.name,
			cellAddrs(r.a), cellAddrs(r.aaaa), rowState(r), rowTTL(r, now), rowETA(r, now))
	}
	tw.Flush()
	b.WriteString(t.String())
	lines := strings.Count(t.String(), "\n")
	if rep := v.report; rep != nil {
		status := "waiting"
		switch {
		case rep.Converged:
			status = "converged"
		case final:
			status = "NOT converged"
		}
		eta := "-"
		if !rep.Converged {
			eta = fmtSeconds(max(0, rep.ETA-now.Sub(rep.At)))
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

func rowState(r *viewRow) string {
	switch {
	case r.a == nil || r.aaaa == nil:
		return "…"
	case r.a.State == r.aaaa.State:
		return string(r.a.State)
	}
	return "A " + string(r.a.State) + ", AAAA " + string(r.aaaa.State)
}

// rowTTL is the TTL left on the row's answers (resolvers count down; the
// authoritative TTL is the configured one).
func rowTTL(r *viewRow, now time.Time) string {
	var d time.Duration
	seen := false
	for _, o := range []*Observation{r.a, r.aaaa} {
		if o == nil || o.State == StateUnknown {
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

// rowETA is when a resolver row's answer may become the new one: the TTL left
// on what is not new yet; "-" when new, "?" when unknown or authoritative and
// not new (authoritative servers have no countdown).
func rowETA(r *viewRow, now time.Time) string {
	var d time.Duration
	for _, o := range []*Observation{r.a, r.aaaa} {
		switch {
		case o == nil || o.State == StateUnknown:
			return "?"
		case o.State == StateNew:
		case o.Role != RoleResolver:
			return "?"
		default:
			d = max(d, o.TTLLeft(now))
		}
	}
	if r.a.State == StateNew && r.aaaa.State == StateNew {
		return "-"
	}
	return fmtSeconds(d)
}

func fmtSeconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int64(d.Round(time.Second)/time.Second))
}
