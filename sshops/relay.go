package sshops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// relayBuffer is the copy buffer between the two sessions.
const relayBuffer = 256 << 10

// relay copies one entry as a tar stream old -> this machine -> new. Before the stream, paths on
// new whose type differs on old are removed, and on the final pass of an entry with Delete also
// paths gone on old (so that tar restores directory times afterwards).
func (p *Pair) relay(ctx context.Context, e Entry, final bool) error {
	om, nm, err := p.manifests(ctx, e.Path, false)
	if err != nil {
		return err
	}
	if om == nil {
		return fmt.Errorf("sshops: relay: %q does not exist on old", e.Path)
	}
	if rm := removals(om, nm, final && e.Delete); len(rm) > 0 {
		var list strings.Builder
		for _, r := range rm {
			list.WriteString("./" + r + "\x00")
		}
		cmd := fmt.Sprintf("cd -- %s && xargs -0 rm -rf --", shellQuote(e.Path))
		if _, err := p.New.output(ctx, cmd, cmd, strings.NewReader(list.String())); err != nil {
			return err
		}
		p.New.log.printf("removed %d path(s) under %s that are gone on old or changed type", len(rm), e.Path)
	}
	var files int64
	for _, fi := range om {
		if fi.Type == 'f' {
			files++
		}
	}
	pass := "initial"
	if final {
		pass = "final"
	}
	p.logf("%s sync of %s (relay)", pass, e.Path)
	start := time.Now()
	n, err := p.stream(ctx, e.Path, om.totalSize(), files)
	if err != nil {
		return err
	}
	p.logf("%s sync of %s done: %s in %s", pass, e.Path, humanBytes(n), time.Since(start).Round(time.Millisecond))
	return nil
}

// tarCreate and tarExtract are the two ends of a relay; both run in the synced directory.
// tarFilesChanged is GNU tar's exit status when files changed while it read them.
const tarFilesChanged = 1

func tarCreate(dir string) string {
	return fmt.Sprintf("cd -- %s && exec tar --create --file=- .", shellQuote(dir))
}

func tarExtract(dir string) string {
	return fmt.Sprintf("cd -- %s && exec tar --extract --file=- --preserve-permissions --same-owner --overwrite-dir", shellQuote(dir))
}

// countingWriter counts bytes written through it.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// stream pipes `tar c` on old into `tar x` on new and returns the bytes relayed.
func (p *Pair) stream(ctx context.Context, dir string, total, files int64) (int64, error) {
	src, err := p.Old.conn.NewSession()
	if err != nil {
		return 0, fmt.Errorf("sshops: old: new session: %w", err)
	}
	defer src.Close()
	dst, err := p.New.conn.NewSession()
	if err != nil {
		return 0, fmt.Errorf("sshops: new: new session: %w", err)
	}
	defer dst.Close()

	srcTail, dstTail := &tail{}, &tail{}
	srcErr := &lineSink{log: p.Old.log, tail: srcTail}
	dstErr := &lineSink{log: p.New.log, tail: dstTail}
	dstOut := &lineSink{log: p.New.log, tail: dstTail}
	srcPid, dstPid := &pidCatcher{w: srcErr}, &pidCatcher{w: dstErr}
	src.Stderr, dst.Stderr, dst.Stdout = srcPid, dstPid, dstOut
	out, err := src.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("sshops: old: %w", err)
	}
	in, err := dst.StdinPipe()
	if err != nil {
		return 0, fmt.Errorf("sshops: new: %w", err)
	}
	create, extract := tarCreate(dir), tarExtract(dir)
	if err := dst.Start(wrapCmd(extract)); err != nil {
		return 0, fmt.Errorf("sshops: new: starting %q: %w", extract, err)
	}
	if err := src.Start(wrapCmd(create)); err != nil {
		in.Close()
		return 0, fmt.Errorf("sshops: old: starting %q: %w", create, err)
	}

	cw := &countingWriter{w: in}
	copied := make(chan error, 1)
	go func() {
		_, err := io.CopyBuffer(cw, out, make([]byte, relayBuffer))
		in.Close()
		copied <- err
	}()
	srcDone, dstDone := make(chan error, 1), make(chan error, 1)
	go func() { srcDone <- src.Wait() }()

	start := time.Now()
	report := func(done bool) {
		if p.Progress == nil {
			return
		}
		pr := Progress{Path: dir, Bytes: cw.n.Load(), TotalBytes: total, Done: done}.withRate(time.Since(start))
		if done {
			pr.Files = files
		}
		p.Progress(pr)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()

	var copyErr, srcWait, dstWait error
	gotCopy, gotSrc, gotDst, srcKilled := false, false, false, false
	for !(gotCopy && gotSrc && gotDst) {
		select {
		case copyErr = <-copied:
			gotCopy = true
			go func() { dstDone <- dst.Wait() }()
		case srcWait = <-srcDone:
			gotSrc = true
		case dstWait = <-dstDone:
			gotDst = true
		case <-tick.C:
			report(false)
		case <-ctx.Done():
			p.Old.killRemote(srcPid.pidNow(), "KILL")
			p.New.killRemote(dstPid.pidNow(), "KILL")
			abort(src, dst)
			return cw.n.Load(), fmt.Errorf("sshops: relay of %s: %w", dir, context.Cause(ctx))
		}
		// A failing tar on new stops the copy; make sure old's tar does not wait forever.
		if !srcKilled && !gotSrc && ((gotDst && dstWait != nil) || (gotCopy && copyErr != nil)) {
			srcKilled = true
			p.Old.killRemote(srcPid.pidNow(), "KILL")
			abort(src, nil)
		}
	}
	srcErr.flush()
	dstErr.flush()
	dstOut.flush()
	if err := sessionErr(p.Old.ep.Role, create, srcWait, srcTail); err != nil {
		// GNU tar --create exits 1 exactly when files changed or vanished
		// while it read them (a live service writing); the archive is
		// complete otherwise, and verify compares both sides afterwards.
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Result.ExitStatus != tarFilesChanged || dstWait != nil || copyErr != nil {
			return cw.n.Load(), err
		}
		p.logf("warning: some files under %s changed or vanished while they were read (tar exit %d): the service was still writing there", dir, tarFilesChanged)
	}
	if err := sessionErr(p.New.ep.Role, extract, dstWait, dstTail); err != nil {
		return cw.n.Load(), err
	}
	if copyErr != nil {
		return cw.n.Load(), fmt.Errorf("sshops: relay of %s: %w", dir, copyErr)
	}
	report(true)
	return cw.n.Load(), nil
}

// abort stops the sessions (nil ones are skipped).
func abort(sessions ...*ssh.Session) {
	for _, s := range sessions {
		if s != nil {
			_ = s.Signal(ssh.SIGKILL)
			_ = s.Close()
		}
	}
}

// sessionErr turns a session's Wait error into an *ExitError or a wrapped error.
func sessionErr(role, cmd string, err error, t *tail) error {
	if err == nil {
		return nil
	}
	res := &Result{ExitStatus: -1, Tail: t.get()}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		res.ExitStatus = ee.ExitStatus()
		if ee.Signal() != "" {
			res.ExitStatus, res.Signal = -1, ee.Signal()
		}
		return &ExitError{Role: role, Cmd: cmd, Result: res}
	}
	return fmt.Errorf("sshops: %s: %q: %w", role, cmd, err)
}
