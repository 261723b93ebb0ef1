package sshops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
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

// oldManifest is old's manifest of an entry, taken during the final copy: in memory for an
// entry with Content, otherwise a sorted manifest in a file on old that Verify streams.
type oldManifest struct {
	content bool // with sha256 sums
	m       manifest
	file    string
	size    int64 // of file, in bytes
}

// splitWalkBytes is the size of old's manifest (about 100 bytes a path) from which Verify walks
// new with splitManifestCmd: below it, the processes of the split cost more than they save.
const splitWalkBytes = 2 << 20

// ownerScan is what Verify found about an entry's owners on new.
type ownerScan struct {
	owner string   // the entry's Owner when scanned
	want  string   // "user" or "user:group", as the check compares
	bad   []string // paths relative to the entry with another owner
}

// maxOwnerFixes is how many wrong owners Fixup fixes one by one; with more it runs chown -R.
const maxOwnerFixes = 10000

// reset forgets everything (a new Copy makes it stale) and returns the files on old of the
// manifests it forgot, for the caller to remove.
func (w *windowState) reset() (files []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, om := range w.old {
		if om.file != "" {
			files = append(files, om.file)
		}
	}
	w.old, w.owners = nil, nil
	return files
}

// removeOldManifests removes manifest files from old, on a context that survives the
// cancellation of ctx: every path that takes one removes it (Verify as it reads it; a failed
// copy, a failed read, a new Copy and Close the ones nobody will read), and Cleanup removes
// those of a killed run.
func (p *Pair) removeOldManifests(ctx context.Context, files []string) error {
	if len(files) == 0 {
		return nil
	}
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	rm := "rm -f --"
	for _, f := range files {
		rm += " " + shellQuote(f)
	}
	if _, err := p.Old.output(cctx, rm, rm, nil); err != nil {
		return fmt.Errorf("sshops: removing manifests from old: %w", err)
	}
	return nil
}

// takeOld returns and forgets old's manifest of dir taken by the final Copy, if any.
func (w *windowState) takeOld(dir string, content bool) (oldManifest, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	om, ok := w.old[dir]
	delete(w.old, dir)
	return om, ok && om.content == content
}

// hasOld reports whether the final Copy left old's manifests.
func (w *windowState) hasOld() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.old) > 0
}

// removeStaleManifests removes the manifest files a final Copy of another process (killed
// before its Verify) left on old. A failure is only logged: Cleanup removes them later.
func (p *Pair) removeStaleManifests(ctx context.Context) {
	pattern := shellQuote(p.tempDir()) + "/" + onetimeMarker + "manifest-*"
	cmd := fmt.Sprintf(`for f in %s; do [ -e "$f" ] || continue; rm -f -- "$f" && echo "removed $f"; done`, pattern)
	out, err := p.Old.output(ctx, cmd, "removal of stale manifests "+pattern, nil)
	if err != nil {
		p.logf("warning: %v", err)
		return
	}
	for _, l := range trimLines(out) {
		p.Old.log.line(l)
	}
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

// lowPriority starts a command that old runs beside the final copy at the lowest CPU
// priority: the manifest has until the copy ends, the copy is the window's path.
const lowPriority = "renice -n 19 -p $$ >/dev/null 2>&1;"

// takeOldManifests reads old's manifest of every entry in the background. The returned stop
// waits for them (a failed copy cancels them first) and keeps those that were read; after a
// failed copy it removes the files it wrote on old.
func (p *Pair) takeOldManifests(ctx context.Context, entries []Entry) (stop func(failed bool) error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	got := make([]oldManifest, len(entries))
	ok := make([]bool, len(entries))
	for i, e := range entries {
		wg.Go(func() {
			if !e.Content {
				// Sorted into a file on old (its name starts like a transfer's temp dir, so
				// that Cleanup removes it after a crash): Verify streams it.
				var rnd [8]byte
				if _, err := rand.Read(rnd[:]); err != nil {
					return
				}
				f := p.tempDir() + "/" + onetimeMarker + "manifest-" + hex.EncodeToString(rnd[:])
				cmd := fmt.Sprintf("%s umask 077 && ( %s ) > %s && wc -c < %s", lowPriority, sortedManifestCmd(e.Path), shellQuote(f), shellQuote(f))
				out, err := p.Old.output(ctx, cmd, "manifest of "+e.Path+" into "+f, nil)
				if err != nil {
					_ = p.removeOldManifests(ctx, []string{f}) // Verify walks old itself
					return
				}
				size, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
				got[i], ok[i] = oldManifest{file: f, size: size}, true
				return
			}
			out, err := p.Old.output(ctx, lowPriority+" "+manifestCmd(e.Path, e.Content), "manifest of "+e.Path, nil)
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
	return func(failed bool) error {
		if failed {
			cancel()
		}
		wg.Wait()
		cancel()
		if failed {
			var files []string
			for i := range entries {
				if ok[i] && got[i].file != "" {
					files = append(files, got[i].file)
				}
			}
			return p.removeOldManifests(ctx, files)
		}
		p.window.mu.Lock()
		defer p.window.mu.Unlock()
		p.window.old = map[string]oldManifest{}
		for i, e := range entries {
			if ok[i] {
				p.window.old[e.Path] = got[i]
			}
		}
		return nil
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
		// From the names Verify reads anyway (the final Copy read them ahead); `id -gn` for a
		// user the host does not list (a directory service that does not enumerate).
		if ids, err := p.New.idNames(ctx); err == nil {
			if g, ok := ids.loginGroup(user); ok {
				return user, g, true, nil
			}
		}
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

// ownerCheck collects the paths of new's manifest that do not have an entry's owner, up to
// maxOwnerFixes (then tooMany).
type ownerCheck struct {
	user, group string
	withGroup   bool
	bad         []string
	tooMany     bool
}

func (c *ownerCheck) add(rel string, fi fileInfo) {
	if c.tooMany || fi.User == c.user && (!c.withGroup || fi.Group == c.group) {
		return
	}
	if len(c.bad) == maxOwnerFixes {
		c.tooMany, c.bad = true, nil
		return
	}
	c.bad = append(c.bad, rel)
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

// verifyEntry compares one entry on both hosts (with old's manifest from the final Copy when it
// took one) and leaves the owners it found on new for Fixup. It returns the first differences
// (at most maxDifferences) and their total.
func (p *Pair) verifyEntry(ctx context.Context, e Entry) ([]Difference, int, error) {
	var oc *ownerCheck
	if e.Owner != "" {
		// Fixup reads the owners from new's manifest instead of walking new again. An owner
		// that cannot be resolved is Fixup's to report.
		if user, group, withGroup, err := p.wantOwner(ctx, e); err == nil {
			oc = &ownerCheck{user: user, group: group, withGroup: withGroup}
		}
	}
	owner := func(rel string, fi fileInfo) {
		if oc != nil {
			oc.add(rel, fi)
		}
	}
	done := func(n, total int) {
		p.logf("verified %s: %d paths, %d difference(s)", e.Path, n, total)
		if oc != nil && !oc.tooMany {
			want := oc.user
			if oc.withGroup {
				want += ":" + oc.group
			}
			p.window.putOwners(e.Path, ownerScan{owner: e.Owner, want: want, bad: oc.bad})
		}
	}
	om, took := p.window.takeOld(e.Path, e.Content)
	if e.Content {
		var nm manifest
		var err error
		if took {
			nm, err = p.New.manifest(ctx, e.Path, true)
		} else {
			om.m, nm, err = p.manifests(ctx, e.Path, true)
		}
		if err != nil {
			return nil, 0, err
		}
		if om.m == nil {
			return nil, 0, fmt.Errorf("sshops: verify: %q does not exist on old", e.Path)
		}
		d := compareManifests(e.Path, om.m, nm, e.Delete)
		for rel, fi := range nm {
			owner(rel, fi)
		}
		done(len(om.m), len(d))
		return d[:min(len(d), maxDifferences)], len(d), nil
	}
	oldCmd, oldDisplay := sortedManifestCmd(e.Path), "manifest of "+e.Path
	if took {
		oldCmd = fmt.Sprintf("cat -- %[1]s && rm -f -- %[1]s", shellQuote(om.file))
		oldDisplay = "manifest of " + e.Path + " from " + om.file
	}
	var oldIDs, newIDs *idNames
	var oerr, nerr error
	var wg sync.WaitGroup
	wg.Go(func() { oldIDs, oerr = p.Old.idNames(ctx) })
	wg.Go(func() { newIDs, nerr = p.New.idNames(ctx) })
	wg.Wait()
	if err := errors.Join(oerr, nerr); err != nil {
		return nil, 0, err
	}
	var sd streamDiff
	err := p.Old.streamCmd(ctx, oldCmd, oldDisplay, func(or io.Reader) error {
		orr := newRecordReader(or, oldIDs)
		if orr.missing {
			return fmt.Errorf("sshops: verify: %q does not exist on old", e.Path)
		}
		newCmd := sortedManifestCmd(e.Path)
		if om.size >= splitWalkBytes || (p.testSplitWalk && took) {
			newCmd = splitManifestCmd(e.Path, p.tempDir())
		}
		return p.New.streamCmd(ctx, newCmd, "manifest of "+e.Path, func(nr io.Reader) error {
			var err error
			sd, err = compareStreams(e.Path, orr, newRecordReader(nr, newIDs), e.Delete, owner)
			return err
		})
	})
	if err != nil {
		if took { // the stream stopped before cat's rm ran
			err = errors.Join(err, p.removeOldManifests(ctx, []string{om.file}))
		}
		return nil, 0, err
	}
	done(sd.oldSize, sd.total)
	return sd.first, sd.total, nil
}
