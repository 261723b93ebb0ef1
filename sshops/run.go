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

// lineLog writes whole lines, each prefixed with "[role] ", to a shared writer. Writes from
// several goroutines never interleave within a line.
type lineLog struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
}

// logMus gives every distinct writer one mutex, so the clients of a pair sharing a log do not
// interleave their lines.
var logMus sync.Map // io.Writer -> *sync.Mutex

func newLineLog(w io.Writer, role string) *lineLog {
	if w == nil {
		w = io.Discard
	}
	mu := &sync.Mutex{}
	if m, ok := tryLoadMutex(w); ok {
		mu = m
	}
	return &lineLog{mu: mu, w: w, prefix: "[" + role + "] "}
}

func tryLoadMutex(w io.Writer) (mu *sync.Mutex, ok bool) {
	defer func() {
		if recover() != nil { // an uncomparable writer cannot be a map key
			mu, ok = nil, false
		}
	}()
	m, _ := logMus.LoadOrStore(w, &sync.Mutex{})
	return m.(*sync.Mutex), true
}

func (l *lineLog) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
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

// Run runs cmd through the login shell of the SSH user. Its stdout and stderr go to the log line by
// line with the "[role] " prefix; a non-zero exit or a signal is an *ExitError carrying the
// Result. When ctx ends or the timeout passes, the command is sent SIGTERM, then SIGKILL, and
// the session is closed; the error wraps ctx's error (or context.DeadlineExceeded).
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
	sess.Stderr = errSink
	if o.Stdin != nil {
		sess.Stdin = o.Stdin
	}
	if spec.prepare != nil {
		if err := spec.prepare(sess); err != nil {
			return nil, fmt.Errorf("sshops: %s: preparing %q: %w", c.ep.Role, display, err)
		}
	}
	if err := sess.Start(cmd); err != nil {
		return nil, fmt.Errorf("sshops: %s: starting %q: %w", c.ep.Role, display, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		stopSession(sess, waited)
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

// stopSession asks the remote command to stop (TERM, then KILL) and closes the session.
func stopSession(sess *ssh.Session, waited <-chan error) {
	_ = sess.Signal(ssh.SIGTERM)
	select {
	case <-waited:
		return
	case <-time.After(2 * time.Second):
	}
	_ = sess.Signal(ssh.SIGKILL)
	select {
	case <-waited:
	case <-time.After(2 * time.Second):
	}
	_ = sess.Close()
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
