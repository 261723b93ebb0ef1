package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/cutover-dev/cutover/scheduler"
	"github.com/cutover-dev/cutover/sshops"
)

// verbosity is how much of a run's output is printed (--quiet, --verbose).
type verbosity int

const (
	normal  verbosity = iota // steps, DNS changes, progress and notes; not the hosts' own lines
	quiet                    // nothing of the run: only errors, the final result and hints
	verbose                  // also every line the hosts print ("[old] ...", "[new] ...")
)

// verbosityFlags adds --quiet and --verbose to fs; the function returned
// reads them after parsing.
func verbosityFlags(fs *flag.FlagSet) func() (verbosity, error) {
	q := fs.Bool("quiet", false, "")
	v := fs.Bool("verbose", false, "")
	return func() (verbosity, error) {
		switch {
		case *q && *v:
			return normal, errors.New("--quiet and --verbose exclude each other")
		case *q:
			return quiet, nil
		case *v:
			return verbose, nil
		}
		return normal, nil
	}
}

// renderer shows a run as it goes: the engine's output lines (its Out),
// the copies' progress and the countdown of waits. On a terminal (live) it
// keeps one status block at the bottom, redrawn in place: the current step,
// a progress bar for a copy, the countdown of a wait and the DNS table
// during the awaits; finished lines scroll above it. Without a terminal it
// writes plain lines, one per event, and a copy's progress every 10 seconds.
type renderer struct {
	mu    sync.Mutex
	w     io.Writer
	live  bool
	level verbosity
	width int              // of the terminal; block lines are cut to it
	now   func() time.Time // for the redraw and progress-line pacing

	partial  []byte // an incomplete line written to Out
	step     string // the current step's header, without "== "
	copies   map[string]sshops.Progress
	order    []string // copies in the order they started
	waitLine string
	dns      map[string]string // during the awaits: "role server name type" -> state
	dnsOrder []string
	drawn    int       // lines of the block on the screen now
	lastDraw time.Time // of the block, for pacing progress redraws
	lastLine time.Time // of a plain progress line
	done     map[string]bool
}

// parseRunning is parse for the commands that run steps: n positional
// arguments, and --quiet or --verbose for the renderer of their output.
func parseRunning(e *env, c *command, fs *flag.FlagSet, args []string, n int, level func() (verbosity, error)) ([]string, *renderer, error) {
	pos, err := parse(c, fs, args, n, n)
	if err != nil {
		return nil, nil, err
	}
	l, err := level()
	if err != nil {
		return nil, nil, &usageError{err: fmt.Errorf("%s: %w", c.name, err), hint: "cutover help " + c.name}
	}
	return pos, newRenderer(e, l), nil
}

func newRenderer(e *env, level verbosity) *renderer {
	r := &renderer{w: e.stdout, live: e.terminal, level: level, width: 80, now: time.Now, done: map[string]bool{}}
	if f, ok := e.stdout.(*os.File); ok && r.live {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			r.width = w
		}
	}
	r.reset()
	if r.live {
		e.mu.Lock()
		e.block = r
		e.mu.Unlock()
	}
	return r
}

// reset forgets what the block shows about the step that ended.
func (r *renderer) reset() {
	r.copies, r.order, r.waitLine, r.dns, r.dnsOrder = map[string]sshops.Progress{}, nil, "", map[string]string{}, nil
}

// Write takes the engine's output (the scheduler's Engine.Out): whole or
// partial lines, from several goroutines.
func (r *renderer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partial = append(r.partial, p...)
	for {
		i := strings.IndexByte(string(r.partial), '\n')
		if i < 0 {
			break
		}
		line := string(r.partial[:i])
		r.partial = r.partial[i+1:]
		r.line(line)
	}
	return len(p), nil
}

// line handles one line of the engine's output.
func (r *renderer) line(line string) {
	if r.level == quiet {
		return
	}
	if strings.HasPrefix(line, "[old] ") || strings.HasPrefix(line, "[new] ") {
		if r.level == verbose {
			r.print(line)
		}
		return
	}
	if rest, ok := strings.CutPrefix(line, "== "); ok {
		name, what, _ := strings.Cut(rest, ": ")
		if _, isStep := scheduler.Info(scheduler.StepName(name)); isStep && !strings.HasPrefix(what, "done in ") && !strings.HasPrefix(what, "failed after ") {
			r.reset()
			r.step = rest
			if r.live { // the block shows it until the step ends
				r.draw()
				return
			}
		} else if strings.HasPrefix(r.step, name+":") {
			r.reset()
			r.step = ""
		}
	}
	if rest, ok := strings.CutPrefix(line, "[dns] "); ok && r.live {
		// "[dns] ROLE SERVER NAME TYPE: STATE ...": a row of the table.
		key, state, found := strings.Cut(rest, ": ")
		if found {
			if _, seen := r.dns[key]; !seen {
				r.dnsOrder = append(r.dnsOrder, key)
			}
			r.dns[key] = state
			r.draw()
			return
		}
	}
	r.print(line)
}

// print writes a line that stays (above the block on a terminal).
func (r *renderer) print(line string) {
	r.erase()
	fmt.Fprintln(r.w, line)
	r.draw()
}

// progress takes a copy's progress (sshops.Hosts.Progress).
func (r *renderer) progress(p sshops.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.level == quiet || (p.Done && r.done[p.Path]) {
		return // the end of a copy is reported more than once
	}
	r.done[p.Path] = p.Done
	if !r.live {
		if now := r.now(); p.Done || r.lastLine.IsZero() || now.Sub(r.lastLine) >= 10*time.Second {
			fmt.Fprintln(r.w, "copy "+p.String())
			r.lastLine = now
		}
		return
	}
	_, seen := r.copies[p.Path]
	if !seen {
		r.order = append(r.order, p.Path)
	}
	r.copies[p.Path] = p
	if p.Done {
		r.print("copy " + p.String())
		return
	}
	if !seen || r.now().Sub(r.lastDraw) >= 100*time.Millisecond { // at most 10 frames a second
		r.draw()
	}
}

// wait is the engine's countdown callback (scheduler.Engine.Wait); it is
// used on a terminal only: otherwise the engine prints a line now and then.
func (r *renderer) wait(step scheduler.StepName, until, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.level == quiet {
		return
	}
	r.waitLine = fmt.Sprintf("waiting for %s: %s left (until %s)", step, until.Sub(now).Round(time.Second), until.Local().Format("15:04:05"))
	r.draw()
}

// block is the status block's lines.
func (r *renderer) block() []string {
	var b []string
	if r.step != "" {
		b = append(b, "> "+r.step)
	}
	if r.waitLine != "" {
		b = append(b, "  "+r.waitLine)
	}
	for _, path := range r.order {
		p := r.copies[path]
		if p.Done {
			continue
		}
		b = append(b, "  "+bar(p.Bytes, p.TotalBytes, 20)+" "+p.String())
	}
	for _, k := range r.dnsOrder {
		b = append(b, "  "+k+": "+r.dns[k])
	}
	for i, l := range b {
		if len(l) > r.width-1 {
			b[i] = l[:r.width-2] + "~"
		}
	}
	return b
}

// bar is a progress bar of width cells, "[#####.....]"; "[?...]" when the
// total is unknown.
func bar(n, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("?", width) + "]"
	}
	full := int(min(n, total) * int64(width) / total)
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", width-full) + "]"
}

// erase takes the block off the screen: the cursor ends at the start of
// the block's first line.
func (r *renderer) erase() {
	if !r.live || r.drawn == 0 {
		return
	}
	var b strings.Builder
	b.WriteString("\r\x1b[K")
	for range r.drawn - 1 {
		b.WriteString("\x1b[1A\x1b[K")
	}
	io.WriteString(r.w, b.String())
	r.drawn = 0
}

// draw redraws the block; the cursor stays at the end of its last line.
func (r *renderer) draw() {
	if !r.live {
		return
	}
	r.erase()
	b := r.block()
	io.WriteString(r.w, strings.Join(b, "\n"))
	r.drawn = len(b)
	r.lastDraw = r.now()
}

// close takes the block away and writes out an incomplete last line, so
// that what follows (the result, an error) starts on a clean line.
func (r *renderer) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.partial) > 0 {
		line := string(r.partial)
		r.partial = nil
		r.line(line)
	}
	r.erase()
	r.live = false // gone for good: a later notice does not draw it again
}
