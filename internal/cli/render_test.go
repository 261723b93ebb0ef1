package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/scheduler"
	"github.com/cutover-dev/cutover/sshops"
)

// screen is a fake terminal: it interprets what the renderer writes
// (text, "\n", "\r", erase to end of line "\x1b[K", cursor up "\x1b[1A")
// into the lines a person would see.
type screen struct {
	lines    []string
	row, col int
}

func (s *screen) Write(p []byte) (int, error) {
	for str := string(p); str != ""; {
		if len(s.lines) == 0 {
			s.lines = []string{""}
		}
		switch {
		case strings.HasPrefix(str, "\x1b[K"):
			s.lines[s.row] = s.lines[s.row][:s.col]
			str = str[3:]
		case strings.HasPrefix(str, "\x1b[1A"):
			s.row = max(s.row-1, 0)
			str = str[4:]
		case str[0] == '\r':
			s.col = 0
			str = str[1:]
		case str[0] == '\n':
			s.row, s.col = s.row+1, 0
			if s.row == len(s.lines) {
				s.lines = append(s.lines, "")
			}
			str = str[1:]
		case str[0] == '\x1b':
			panic("screen: unknown escape sequence " + strings.ReplaceAll(str, "\x1b", "ESC"))
		default:
			l := s.lines[s.row]
			for len(l) < s.col {
				l += " "
			}
			s.lines[s.row] = l[:s.col] + str[:1] + l[min(s.col+1, len(l)):]
			s.col++
			str = str[1:]
		}
	}
	return len(p), nil
}

func (s *screen) String() string { return strings.Join(s.lines, "\n") }

// event is one thing the engine or a copy tells the renderer.
type event struct {
	out      string           // a write to the engine's Out
	progress *sshops.Progress // a copy's progress
	wait     time.Duration    // a countdown: this much left for disable
	advance  time.Duration    // the clock moves on
}

var until = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

func feed(r *renderer, clock *time.Time, evs []event) {
	for _, ev := range evs {
		switch {
		case ev.out != "":
			r.Write([]byte(ev.out))
		case ev.progress != nil:
			r.progress(*ev.progress)
		case ev.wait > 0:
			r.wait(scheduler.Disable, until, until.Add(-ev.wait))
		}
		*clock = clock.Add(ev.advance)
	}
}

// A run as the renderer sees it: a step with a host line, a wait, a copy
// in three reports (one repeated at the end), the DNS rows of an await, a
// line without its newline.
var runEvents = []event{
	{out: "== preflight: check both hosts\n"},
	{out: "[old] 12 GiB used\n"},
	{out: "== preflight: done in 1.2s\n"},
	{wait: 90 * time.Second, advance: time.Second},
	{wait: 89 * time.Second, advance: time.Second},
	{out: "== final-sync: copy the delta\n"},
	{progress: &sshops.Progress{Path: "/home/vmail/mail", Bytes: 512 << 20, TotalBytes: 2 << 30, Files: 10, Rate: 1 << 20, ETA: 25 * time.Minute}, advance: 10 * time.Second},
	{progress: &sshops.Progress{Path: "/home/vmail/mail", Bytes: 1 << 30, TotalBytes: 2 << 30, Files: 20, Rate: 1 << 20, ETA: 16 * time.Minute}, advance: 20 * time.Second},
	{progress: &sshops.Progress{Path: "/home/vmail/mail", Bytes: 2 << 30, TotalBytes: 2 << 30, Files: 40, Rate: 1 << 20, Done: true}},
	{progress: &sshops.Progress{Path: "/home/vmail/mail", Bytes: 2 << 30, TotalBytes: 2 << 30, Files: 40, Rate: 1 << 20, Done: true}},
	{out: "[new] deleted 3 files\n"},
	{out: "== final-sync: done in 21s\n"},
	{out: "== await-authoritative: wait for the authoritative servers\n"},
	{out: "[dns] authoritative 127.0.0.53 mail.example.org. A: old {127.0.0.10} ttl 30s\n"},
	{out: "[dns] authoritative 127.0.0.53 mail.example.org. A: new {127.0.0.20} ttl 30s\n"},
	{out: "== await-authoritative: done in 2s\n"},
	{out: "rollback: nothing to undo"},
}

// TestRendererPlain is the output without a terminal: plain lines, one per
// event, no carriage return or escape sequence, at each verbosity.
func TestRendererPlain(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		level verbosity
		want  string
	}{
		{desc: "normal", level: normal, want: `== preflight: check both hosts
== preflight: done in 1.2s
== final-sync: copy the delta
copy /home/vmail/mail: 512.0 MiB of 2.0 GiB (25%), 10 files, 1.0 MiB/s, ETA 25m0s
copy /home/vmail/mail: 1.0 GiB of 2.0 GiB (50%), 20 files, 1.0 MiB/s, ETA 16m0s
copy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done
== final-sync: done in 21s
== await-authoritative: wait for the authoritative servers
[dns] authoritative 127.0.0.53 mail.example.org. A: old {127.0.0.10} ttl 30s
[dns] authoritative 127.0.0.53 mail.example.org. A: new {127.0.0.20} ttl 30s
== await-authoritative: done in 2s
rollback: nothing to undo
`},
		{desc: "verbose", level: verbose, want: `== preflight: check both hosts
[old] 12 GiB used
== preflight: done in 1.2s
== final-sync: copy the delta
copy /home/vmail/mail: 512.0 MiB of 2.0 GiB (25%), 10 files, 1.0 MiB/s, ETA 25m0s
copy /home/vmail/mail: 1.0 GiB of 2.0 GiB (50%), 20 files, 1.0 MiB/s, ETA 16m0s
copy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done
[new] deleted 3 files
== final-sync: done in 21s
== await-authoritative: wait for the authoritative servers
[dns] authoritative 127.0.0.53 mail.example.org. A: old {127.0.0.10} ttl 30s
[dns] authoritative 127.0.0.53 mail.example.org. A: new {127.0.0.20} ttl 30s
== await-authoritative: done in 2s
rollback: nothing to undo
`},
		{desc: "quiet", level: quiet, want: ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var b bytes.Buffer
			clock := until.Add(-time.Hour)
			r := newRenderer(&env{stdout: &b}, tc.level)
			r.now = func() time.Time { return clock }
			feed(r, &clock, runEvents)
			r.close()
			if b.String() != tc.want {
				t.Fatalf("output:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

// TestRendererLive checks the frames on a terminal: what the screen shows
// after each event, the status block redrawn in place below the lines
// that stay.
func TestRendererLive(t *testing.T) {
	var s screen
	clock := until.Add(-time.Hour)
	r := newRenderer(&env{stdout: &s, terminal: true}, normal)
	r.now = func() time.Time { return clock }
	r.width = 60
	left := func(d time.Duration) string {
		return "  waiting for disable: " + d.String() + " left (until " + until.Local().Format("15:04:05") + ")"
	}
	frames := []string{
		"> preflight: check both hosts",
		"> preflight: check both hosts",
		"== preflight: done in 1.2s\n",
		"== preflight: done in 1.2s\n" + left(90*time.Second),
		"== preflight: done in 1.2s\n" + left(89*time.Second),
		"== preflight: done in 1.2s\n> final-sync: copy the delta",
		"== preflight: done in 1.2s\n> final-sync: copy the delta\n  [#####...............] /home/vmail/mail: 512.0 MiB of 2.~",
		"== preflight: done in 1.2s\n> final-sync: copy the delta\n  [##########..........] /home/vmail/mail: 1.0 GiB of 2.0 ~",
		"== preflight: done in 1.2s\ncopy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done\n> final-sync: copy the delta",
		"== preflight: done in 1.2s\ncopy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done\n> final-sync: copy the delta",
		"== preflight: done in 1.2s\ncopy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done\n> final-sync: copy the delta",
		"== preflight: done in 1.2s\ncopy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done\n== final-sync: done in 21s\n",
		"== preflight: done in 1.2s\ncopy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done\n== final-sync: done in 21s\n" +
			"> await-authoritative: wait for the authoritative servers",
		"== preflight: done in 1.2s\ncopy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done\n== final-sync: done in 21s\n" +
			"> await-authoritative: wait for the authoritative servers\n  authoritative 127.0.0.53 mail.example.org. A: old {127.0~",
		"== preflight: done in 1.2s\ncopy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done\n== final-sync: done in 21s\n" +
			"> await-authoritative: wait for the authoritative servers\n  authoritative 127.0.0.53 mail.example.org. A: new {127.0~",
		"== preflight: done in 1.2s\ncopy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done\n== final-sync: done in 21s\n" +
			"== await-authoritative: done in 2s\n",
		"== preflight: done in 1.2s\ncopy /home/vmail/mail: 2.0 GiB of 2.0 GiB (100%), 40 files, 1.0 MiB/s, done\n== final-sync: done in 21s\n" +
			"== await-authoritative: done in 2s\n", // an incomplete line waits for its end
	}
	if len(frames) != len(runEvents) {
		t.Fatalf("%d frames for %d events", len(frames), len(runEvents))
	}
	for i, ev := range runEvents {
		feed(r, &clock, []event{ev})
		if got := s.String(); got != frames[i] {
			t.Fatalf("after event %d (%+v), the screen shows:\n%s\nwant:\n%s", i, ev, got, frames[i])
		}
	}
	r.close()
	want := frames[len(frames)-1] + "rollback: nothing to undo\n"
	if got := s.String(); got != want {
		t.Fatalf("after close, the screen shows:\n%s\nwant:\n%s", got, want)
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		n, total int64
		want     string
	}{
		{desc: "empty", n: 0, total: 100, want: "[..........]"},
		{desc: "half", n: 50, total: 100, want: "[#####.....]"},
		{desc: "full", n: 100, total: 100, want: "[##########]"},
		{desc: "more than the estimate", n: 150, total: 100, want: "[##########]"},
		{desc: "unknown total", n: 5, total: 0, want: "[??????????]"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := bar(tc.n, tc.total, 10); got != tc.want {
				t.Fatalf("bar(%d, %d) = %q, want %q", tc.n, tc.total, got, tc.want)
			}
		})
	}
}

// TestRendererQuietLive checks that --quiet draws no block on a terminal
// either, and that --verbose there prints the hosts' lines above it.
func TestRendererQuietLive(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		level verbosity
		want  string
	}{
		{desc: "quiet", level: quiet, want: ""},
		{desc: "verbose", level: verbose, want: "[old] 12 GiB used\n== preflight: done in 1.2s\n> disable: stop"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var s screen
			clock := until.Add(-time.Hour)
			r := newRenderer(&env{stdout: &s, terminal: true}, tc.level)
			r.now = func() time.Time { return clock }
			feed(r, &clock, []event{
				{out: "== preflight: check both hosts\n"},
				{out: "[old] 12 GiB used\n"},
				{out: "== preflight: done in 1.2s\n"},
				{wait: 90 * time.Second},
				{out: "== disable: stop\n"},
			})
			if got := s.String(); got != tc.want {
				t.Fatalf("the screen shows:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestNotice: a signal's message (env.notice, written to stderr on the same terminal) lands
// above the live status block, which is redrawn below it, and leaves no stale line of the
// block; after the block is closed, or without one, it is a plain line.
func TestNotice(t *testing.T) {
	const msg = "cutover: interrupt: stopping at the next safe point (a second signal aborts at once)"
	for _, tc := range []struct {
		desc     string
		terminal bool
		closed   bool
		want     string
	}{
		{desc: "live block", terminal: true,
			want: "== preflight: done in 1.2s\n" + msg + "\n> final-sync: copy the delta"},
		{desc: "block closed", terminal: true, closed: true,
			want: "== preflight: done in 1.2s\n" + msg + "\n"},
		{desc: "no terminal", terminal: false,
			want: "== preflight: done in 1.2s\n" + msg + "\n"},
	} {
		var s screen
		e := &env{stdout: &s, stderr: &s, terminal: tc.terminal}
		r := newRenderer(e, normal)
		r.now = func() time.Time { return until }
		r.width = 60
		io.WriteString(r, "== preflight: check both hosts\n== preflight: done in 1.2s\n== final-sync: copy the delta\n")
		if tc.closed {
			r.close()
		}
		e.notice(msg)
		if !tc.terminal {
			// Plain output: the step's start line stays, the notice follows it.
			tc.want = "== preflight: check both hosts\n== preflight: done in 1.2s\n== final-sync: copy the delta\n" + msg + "\n"
		}
		if got := s.String(); got != tc.want {
			t.Errorf("%s: the screen shows:\n%q\nwant:\n%q", tc.desc, got, tc.want)
		}
	}
}
