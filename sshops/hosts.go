package sshops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Hosts is the old and the new host of one cutover, connected on first use
// and kept connected until Close. Its methods are what the scheduler's steps
// do on the hosts; each sends the step's output (the clients' lines) to out.
type Hosts struct {
	Old, New Endpoint
	Auth     Auth
	Mode     Mode
	Progress func(Progress) // nil ok
	// Entries are the paths to copy, verify and fix up; Initial those of
	// them that are copied ahead of the window too.
	Entries, Initial []Entry

	log     switchWriter
	pair    *Pair
	cleaned bool // Cleanup ran on this connection
}

// connect dials both hosts the first time, then returns the same pair;
// either way the clients' lines go to out from now on.
func (h *Hosts) connect(ctx context.Context, out io.Writer) (*Pair, error) {
	h.log.set(out)
	if h.pair != nil {
		return h.pair, nil
	}
	oldc, err := Dial(ctx, h.Old, h.Auth, &h.log)
	if err != nil {
		return nil, err
	}
	newc, err := Dial(ctx, h.New, h.Auth, &h.log)
	if err != nil {
		oldc.Close()
		return nil, err
	}
	h.pair = &Pair{Old: oldc, New: newc, Mode: h.Mode, Log: &h.log, Progress: h.Progress}
	return h.pair, nil
}

// cleanup removes a one-time key or temp dir left by a crashed run, once
// per connection, before the first transfer.
func (h *Hosts) cleanup(ctx context.Context, p *Pair) error {
	if h.cleaned {
		return nil
	}
	if err := p.Cleanup(ctx); err != nil {
		return err
	}
	h.cleaned = true
	return nil
}

// Close removes old's manifests that the final Copy took and no Verify read (a run stopped
// in between) and a transfer PrepareFinalSync set up for a final sync that did not come, then
// ends the connections.
func (h *Hosts) Close() error {
	if h.pair == nil {
		return nil
	}
	err := h.pair.removeOldManifests(context.Background(), h.pair.window.reset())
	err = errors.Join(err, h.pair.DropPrepared(context.Background()))
	return errors.Join(err, h.pair.Old.Close(), h.pair.New.Close())
}

// Preflight cleans up after a crashed run, then checks both hosts; the
// report (space used, clock skew) goes to out, the error lists every failed
// check.
func (h *Hosts) Preflight(ctx context.Context, out io.Writer) error {
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	if err := h.cleanup(ctx, p); err != nil {
		return err
	}
	_, err = p.Preflight(ctx, h.Entries)
	return err
}

// Copy copies the Initial entries ahead of the window, or every entry
// (with deletions where asked) in the final sync.
func (h *Hosts) Copy(ctx context.Context, out io.Writer, final bool) error {
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	if err := h.cleanup(ctx, p); err != nil {
		return err
	}
	entries := h.Initial
	if final {
		entries = h.Entries
	}
	return p.Copy(ctx, entries, final)
}

// CatchUp copies the Initial entries again (what changed since the initial sync), while the
// window is ahead: the final sync then copies only the last changes.
func (h *Hosts) CatchUp(ctx context.Context, out io.Writer) error {
	return h.Copy(ctx, out, false)
}

// PrepareFinalSync sets up the final sync's transfer (one-time key, ssh master connection from
// old to new) just before the window, so that the window starts with the copy.
func (h *Hosts) PrepareFinalSync(ctx context.Context, out io.Writer) error {
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	if err := h.cleanup(ctx, p); err != nil {
		return err
	}
	return p.Prepare(ctx, h.Entries)
}

// Verify compares both hosts' copies of the entries. A run resumed at verify first cleans up
// after the run that was killed (its manifests of old, a transfer still running).
func (h *Hosts) Verify(ctx context.Context, out io.Writer) error {
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	if err := h.cleanup(ctx, p); err != nil {
		return err
	}
	return p.Verify(ctx, h.Entries)
}

// Fixup sets and checks the entries' owners on new, after cleaning up as Verify does.
func (h *Hosts) Fixup(ctx context.Context, out io.Writer) error {
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	if err := h.cleanup(ctx, p); err != nil {
		return err
	}
	return p.Fixup(ctx, h.Entries)
}

// Run runs command on the host with role "old" or "new".
func (h *Hosts) Run(ctx context.Context, out io.Writer, role, command string) error {
	p, err := h.connect(ctx, out)
	if err != nil {
		return err
	}
	var c *Client
	switch role {
	case h.Old.Role:
		c = p.Old
	case h.New.Role:
		c = p.New
	default:
		return fmt.Errorf("sshops: no host %q (want %q or %q)", role, h.Old.Role, h.New.Role)
	}
	_, err = c.Run(ctx, command, RunOptions{})
	return err
}

// switchWriter forwards to whatever step output is current.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return len(p), nil
	}
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}
