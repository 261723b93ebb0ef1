package sshops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// lineLog writes whole lines, each prefixed with "[role] ", to a shared writer, one Write per
// line: a writer that is safe for concurrent use (as Dial asks) never interleaves two lines.
type lineLog struct {
	w      io.Writer
	prefix string
}

func newLineLog(w io.Writer, role string) *lineLog {
	if w == nil {
		w = io.Discard
	}
	return &lineLog{w: w, prefix: "[" + role + "] "}
}

func (l *lineLog) line(s string) {
	_, _ = io.WriteString(l.w, l.prefix+s+"\n")
}

func (l *lineLog) printf(format string, args ...any) { l.line(fmt.Sprintf(format, args...)) }

// tailLines is how many output lines Result.Tail keeps.
const tailLines = 20

// lineSink splits a stream into lines (on \n and \r), sends each to the log unless quiet and
// keeps the last tailLines in a shared tail.
type lineSink struct {
	log   *lineLog
	quiet bool
	tail  *tail
	buf   []byte
	onCR  func(string) // optional: receives every line, including \r-terminated ones
}

type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > tailLines {
		t.lines = append(t.lines[:0], t.lines[len(t.lines)-tailLines:]...)
	}
}

func (t *tail) get() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}

func (s *lineSink) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexAny(s.buf, "\r\n")
		if i < 0 {
			break
		}
		s.emit(string(s.buf[:i]), s.buf[i] == '\r')
		s.buf = s.buf[i+1:]
	}
	if len(s.buf) > 64<<10 { // a very long line: flush it in pieces
		s.emit(string(s.buf), false)
		s.buf = s.buf[:0]
	}
	return len(p), nil
}

func (s *lineSink) emit(line string, cr bool) {
	if s.onCR != nil {
		s.onCR(line)
		if cr || isProgressLine(line) {
			return // progress updates are not log lines
		}
	} else if cr && line == "" {
		return
	}
	if line == "" {
		return
	}
	s.tail.add(line)
	if !s.quiet {
		s.log.line(line)
	}
}

func (s *lineSink) flush() {
	if len(s.buf) > 0 {
		s.emit(string(s.buf), false)
		s.buf = nil
	}
}

// RunOptions tunes one command.
type RunOptions struct {
	Timeout time.Duration // 0: none beyond ctx
	Stdin   io.Reader     // nil: empty
	Quiet   bool          // do not copy output to the log (Result.Tail still has it)
}

// Result is how a command ended.
type Result struct {
	ExitStatus int      // -1 when killed by a signal or when the status is unknown
	Signal     string   // e.g. "KILL", when killed by a signal
	Tail       []string // the last 20 lines of stdout and stderr together
}

// ExitError is returned by Run when the command exits non-zero or is killed by a signal.
type ExitError struct {
	Role   string
	Cmd    string
	Result *Result
}

func (e *ExitError) Error() string {
	how := fmt.Sprintf("exited with status %d", e.Result.ExitStatus)
	if e.Result.Signal != "" {
		how = "killed by signal " + e.Result.Signal
	}
	last := ""
	if n := len(e.Result.Tail); n > 0 {
		last = ": " + e.Result.Tail[n-1]
	}
	return fmt.Sprintf("sshops: %s: %q %s%s", e.Role, e.Cmd, how, last)
}

// Run runs cmd with /bin/sh -c on the host (started from the SSH user's login shell). Its
// stdout and stderr go to the log line by line with the "[role] " prefix; a non-zero exit or a
// signal is an *ExitError carrying the Result. When ctx ends or the timeout passes, the command is sent SIGTERM, then SIGKILL, and
// the session is closed; the error wraps ctx's error (or context.DeadlineExceeded). The signals
// go to every process of the remote session (pkill -s), sent from a second session, because
// sshd refuses signal requests in root sessions.
func (c *Client) Run(ctx context.Context, cmd string, o RunOptions) (*Result, error) {
	return c.run(ctx, runSpec{cmd: cmd, display: cmd, o: o})
}

// runSpec is one command for run.
type runSpec struct {
	cmd     string
	display string // the command in errors; never holds a secret
	o       RunOptions
	stdout  io.Writer                // instead of the log
	onLine  func(string)             // receives every output line, progress lines included
	prepare func(*ssh.Session) error // before Start, e.g. agent forwarding
}

// run runs spec.cmd.
func (c *Client) run(ctx context.Context, spec runSpec) (*Result, error) {
	cmd, display, o, stdout, onLine := spec.cmd, spec.display, spec.o, spec.stdout, spec.onLine
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, o.Timeout, fmt.Errorf("timed out after %s: %w", o.Timeout, context.DeadlineExceeded))
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sshops: %s: %q: %w", c.ep.Role, display, context.Cause(ctx))
	}
	sess, err := c.conn.NewSession()
	if err != nil {
		return nil, fmt.Errorf("sshops: %s: new session for %q: %w", c.ep.Role, display, err)
	}
	defer sess.Close()
	t := &tail{}
	errSink := &lineSink{log: c.log, quiet: o.Quiet, tail: t}
	outSink := &lineSink{log: c.log, quiet: o.Quiet, tail: t, onCR: onLine}
	if stdout != nil {
		sess.Stdout = stdout
	} else {
		sess.Stdout = outSink
	}
	if onLine != nil {
		errSink.onCR = onLine
	}
	pc := &pidCatcher{w: errSink}
	sess.Stderr = pc
	if o.Stdin != nil {
		sess.Stdin = o.Stdin
	}
	if spec.prepare != nil {
		if err := spec.prepare(sess); err != nil {
			return nil, fmt.Errorf("sshops: %s: preparing %q: %w", c.ep.Role, display, err)
		}
	}
	if err := sess.Start(wrapCmd(cmd)); err != nil {
		return nil, fmt.Errorf("sshops: %s: starting %q: %w", c.ep.Role, display, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		c.stopRemote(sess, pc, waited)
		outSink.flush()
		errSink.flush()
		return &Result{ExitStatus: -1, Tail: t.get()}, fmt.Errorf("sshops: %s: %q: %w", c.ep.Role, display, context.Cause(ctx))
	}
	outSink.flush()
	errSink.flush()
	res := &Result{Tail: t.get()}
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case werr == nil:
		return res, nil
	case errors.As(werr, &ee):
		res.ExitStatus = ee.ExitStatus()
		if ee.Signal() != "" {
			res.ExitStatus, res.Signal = -1, ee.Signal()
		}
		return res, &ExitError{Role: c.ep.Role, Cmd: display, Result: res}
	case errors.As(werr, &missing):
		res.ExitStatus = -1
		return res, fmt.Errorf("sshops: %s: %q: connection closed before an exit status: %w", c.ep.Role, display, werr)
	default:
		res.ExitStatus = -1
		return res, fmt.Errorf("sshops: %s: %q: %w", c.ep.Role, display, werr)
	}
}

// wrapCmd makes the remote command report the PID of its session leader on stderr (the first
// line) and run under /bin/sh. sshd refuses "signal" requests in root sessions, so cancellation
// kills the remote session's processes by that PID from a second session instead.
func wrapCmd(cmd string) string {
	return `printf '` + pidPrefix + `%d\n' "$$" >&2 && exec /bin/sh -c ` + shellQuote(cmd)
}

const pidPrefix = "cutover-pid "

// pidCatcher takes the first line written (wrapCmd's PID line) and passes the rest on.
type pidCatcher struct {
	w     io.Writer
	ready chan struct{} // closed once the first line is in; nil until then
	once  sync.Once
	mu    sync.Mutex
	buf   []byte
	done  bool
	pid   int
}

func (p *pidCatcher) Write(b []byte) (int, error) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return p.w.Write(b)
	}
	p.buf = append(p.buf, b...)
	i := bytes.IndexByte(p.buf, '\n')
	if i < 0 {
		p.mu.Unlock()
		return len(b), nil
	}
	line, rest := string(p.buf[:i]), p.buf[i+1:]
	p.done, p.buf = true, nil
	p.once.Do(func() { close(p.readyChan()) })
	if n, ok := strings.CutPrefix(line, pidPrefix); ok {
		fmt.Sscanf(n, "%d", &p.pid)
	} else {
		rest = append([]byte(line+"\n"), rest...)
	}
	p.mu.Unlock()
	if len(rest) > 0 {
		if _, err := p.w.Write(rest); err != nil {
			return len(b), err
		}
	}
	return len(b), nil
}

func (p *pidCatcher) readyChan() chan struct{} {
	if p.ready == nil {
		p.ready = make(chan struct{})
	}
	return p.ready
}

// get returns the PID, waiting up to 5s (or until the command ends) for the line to arrive.
func (p *pidCatcher) get(waited <-chan error) (pid int, ended bool, err error) {
	p.mu.Lock()
	ready := p.readyChan()
	p.mu.Unlock()
	select {
	case <-ready:
	case err = <-waited:
		return 0, true, err
	case <-time.After(5 * time.Second):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid, false, nil
}

// stopRemote ends a running command: SIGTERM to every process of its remote session (from a
// second session), SIGKILL after a grace period, then closes the session.
func (c *Client) stopRemote(sess *ssh.Session, pc *pidCatcher, waited <-chan error) {
	pid, ended, _ := pc.get(waited)
	if ended {
		return
	}
	for _, sig := range []string{"TERM", "KILL"} {
		if pid > 1 {
			c.killRemote(pid, sig)
		} else {
			_ = sess.Signal(ssh.Signal(sig))
		}
		select {
		case <-waited:
			return
		case <-time.After(2 * time.Second):
		}
	}
	_ = sess.Close()
}

// killRemote sends sig to the processes of the remote session led by pid.
func (c *Client) killRemote(pid int, sig string) {
	if pid <= 1 {
		return
	}
	s, err := c.conn.NewSession()
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{})
	go func() {
		_ = s.Run(fmt.Sprintf("pkill -%s -s %d 2>/dev/null; kill -%s -- -%d 2>/dev/null; true", sig, pid, sig, pid))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// output runs cmd quietly and returns its stdout; stderr lines go to the result's tail (and the
// error).
func (c *Client) output(ctx context.Context, cmd, display string, stdin io.Reader) ([]byte, error) {
	var out bytes.Buffer
	_, err := c.run(ctx, runSpec{cmd: cmd, display: display, o: RunOptions{Quiet: true, Stdin: stdin}, stdout: &out})
	return out.Bytes(), err
}

// trimLines splits output into non-empty trimmed lines.
func trimLines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// pidNow returns the PID if its line has arrived, else 0.
func (p *pidCatcher) pidNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}
