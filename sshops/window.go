package sshops

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// windowState is what the final Copy, Verify and Fixup of one Pair hand on to each other, so
// that the window walks each tree once: old's manifests are taken while the final copy runs (old
// is frozen once its service is stopped), and Verify reads the owners from new's manifest, so
// that Fixup only touches and checks what has the wrong owner. Each step falls back to doing
// the work itself when the state is not there (another process, a resumed run).
type windowState struct {
	mu     sync.Mutex
	old    map[string]oldManifest // entry path -> old's manifest, from the final Copy
	owners map[string]ownerScan   // entry path -> owners found by Verify on new
}

type oldManifest struct {
	content bool // with sha256 sums
	m       manifest
}

// ownerScan is what Verify found about an entry's owners on new.
type ownerScan struct {
	owner string   // the entry's Owner when scanned
	want  string   // "user" or "user:group", as the check compares
	bad   []string // paths relative to the entry with another owner
}

// maxOwnerFixes is how many wrong owners Fixup fixes one by one; with more it runs chown -R.
const maxOwnerFixes = 10000

// reset forgets everything: a new Copy makes it stale.
func (w *windowState) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.old, w.owners = nil, nil
}

// takeOld returns and forgets old's manifest of dir taken by the final Copy, if any.
func (w *windowState) takeOld(dir string, content bool) (manifest, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	om, ok := w.old[dir]
	delete(w.old, dir)
	if !ok || om.content != content {
		return nil, false
	}
	return om.m, true
}

// takeOwners returns and forgets Verify's owner scan of e, if any.
func (w *windowState) takeOwners(e Entry) (ownerScan, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.owners[e.Path]
	delete(w.owners, e.Path)
	return s, ok && s.owner == e.Owner
}

func (w *windowState) putOwners(dir string, s ownerScan) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.owners == nil {
		w.owners = map[string]ownerScan{}
	}
	w.owners[dir] = s
}

// takeOldManifests reads old's manifest of every entry in the background. The returned stop
// waits for them (a failed copy cancels them first) and keeps those that were read.
func (p *Pair) takeOldManifests(ctx context.Context, entries []Entry) (stop func(failed bool)) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	got := make([]oldManifest, len(entries))
	ok := make([]bool, len(entries))
	for i, e := range entries {
		wg.Go(func() {
			out, err := p.Old.output(ctx, manifestCmd(e.Path, e.Content), "manifest of "+e.Path, nil)
			if err != nil {
				return
			}
			m, err := parseManifest(out)
			if err != nil || m == nil {
				return // Verify reads it again and reports what is wrong
			}
			got[i], ok[i] = oldManifest{content: e.Content, m: m}, true
		})
	}
	return func(failed bool) {
		if failed {
			cancel()
		}
		wg.Wait()
		cancel()
		if failed {
			return
		}
		p.window.mu.Lock()
		defer p.window.mu.Unlock()
		p.window.old = map[string]oldManifest{}
		for i, e := range entries {
			if ok[i] {
				p.window.old[e.Path] = got[i]
			}
		}
	}
}

// wantOwner returns the owner an entry's paths must have, as "user" or "user:group" (the
// user's login group on new when Owner is "user:").
func (p *Pair) wantOwner(ctx context.Context, e Entry) (user, group string, withGroup bool, err error) {
	user, group, withGroup = strings.Cut(e.Owner, ":")
	if user == "" {
		return "", "", false, fmt.Errorf("sshops: fixup %q: owner %q has no user", e.Path, e.Owner)
	}
	if withGroup && group == "" {
		cmd := "id -gn -- " + shellQuote(user)
		out, err := p.New.output(ctx, cmd, cmd, nil)
		if err != nil {
			return "", "", false, err
		}
		if group = strings.TrimSpace(string(out)); group == "" {
			return "", "", false, fmt.Errorf("sshops: fixup %q: no login group for %q on new", e.Path, user)
		}
	}
	return user, group, withGroup, nil
}

// scanOwners lists the paths of new's manifest nm of e that do not have e's owner; a nil bad
// list with ok false means there are more than maxOwnerFixes.
func scanOwners(nm manifest, user, group string, withGroup bool) (bad []string, ok bool) {
	for rel, fi := range nm {
		if fi.User == user && (!withGroup || fi.Group == group) {
			continue
		}
		if len(bad) == maxOwnerFixes {
			return nil, false
		}
		bad = append(bad, rel)
	}
	return bad, true
}

// fixOwners chowns the paths (relative to dir) on new and checks them again.
func (p *Pair) fixOwners(ctx context.Context, dir, owner, want string, bad []string) error {
	var list strings.Builder
	for _, rel := range bad {
		list.WriteString("./" + rel + "\x00")
	}
	cmd := fmt.Sprintf("cd -- %s && xargs -0 chown -h -- %s", shellQuote(dir), shellQuote(owner))
	if _, err := p.New.Run(ctx, cmd, RunOptions{Stdin: strings.NewReader(list.String())}); err != nil {
		return err
	}
	check := fmt.Sprintf("cd -- %s && xargs -0 stat --printf '%%U:%%G\\0%%n\\0' --", shellQuote(dir))
	out, err := p.New.output(ctx, check, "owner check of "+dir, strings.NewReader(list.String()))
	if err != nil {
		return err
	}
	fields := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	oe := &OwnerError{Path: dir, Owner: want}
	for i := 0; i+1 < len(fields) && len(oe.Bad) < maxDifferences; i += 2 {
		got := fields[i]
		if !strings.Contains(want, ":") {
			got, _, _ = strings.Cut(got, ":")
		}
		if got != want {
			name := dir
			if rel := strings.TrimPrefix(fields[i+1], "./"); rel != "." {
				name += "/" + rel
			}
			oe.Bad = append(oe.Bad, fmt.Sprintf("%q (%s)", name, fields[i]))
		}
	}
	if len(oe.Bad) > 0 {
		return oe
	}
	return nil
}
