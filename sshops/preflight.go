package sshops

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"
)

// HostReport is what preflight found on one host.
type HostReport struct {
	Reachable bool
	Missing   []string      // commands not found, e.g. "rsync"
	Clock     time.Duration // the host's clock minus this machine's (estimate)
}

// SpaceReport compares the space the synced paths need on one filesystem of new with what it has.
type SpaceReport struct {
	Mount string // a mount point of the filesystem on new
	Need  int64  // bytes: used on old for the paths on it, plus 10%, minus what new already holds there
	Avail int64  // bytes available
}

// PreflightReport is the result of Preflight.
type PreflightReport struct {
	Old, New  HostReport
	UsedOld   int64 // bytes the entries use on old (du)
	Space     []SpaceReport
	ClockSkew time.Duration // old's clock minus new's (reported, never a failure)
	Problems  []string      // every failed check; empty when all passed
}

// PreflightError lists every failed preflight check.
type PreflightError struct{ Problems []string }

func (e *PreflightError) Error() string {
	return "sshops: preflight failed:\n\t" + strings.Join(e.Problems, "\n\t")
}

// aptPackage is the Debian package holding a command preflight needs.
var aptPackage = map[string]string{
	"tar": "tar", "rsync": "rsync", "sha256sum": "coreutils", "find": "findutils", "ssh": "openssh-client",
	"du": "coreutils", "df": "coreutils", "xargs": "findutils",
}

// Preflight checks both hosts: reachable; tar, rsync, sha256sum, find (and ssh on old for the
// direct and agent modes) present; for direct and agent, that old reaches new's SSH port (and,
// for agent, that new accepts the forwarded agent's key); every entry a directory on old; free space on new at least
// the space the entries use on old plus 10% (less what new already holds of them); clock skew
// reported. The error is a *PreflightError listing every failed check, the report is returned
// in both cases.
func (p *Pair) Preflight(ctx context.Context, entries []Entry) (*PreflightReport, error) {
	r := &PreflightReport{}
	if p.Old == nil || p.New == nil {
		r.Problems = append(r.Problems, "old and new must both be connected")
		return r, &PreflightError{Problems: r.Problems}
	}
	if err := p.check(entries); err != nil {
		return r, err
	}
	oldTools := []string{"tar", "rsync", "sha256sum", "find", "xargs", "du"}
	if p.mode() != ModeRelay {
		oldTools = append(oldTools, "ssh")
	}
	newTools := []string{"tar", "rsync", "sha256sum", "find", "xargs", "du", "df"}
	oldTools = append(oldTools, p.testExtraTools...)
	newTools = append(newTools, p.testExtraTools...)

	var oldScript, newScript strings.Builder
	tools := func(b *strings.Builder, ts []string) {
		fmt.Fprintf(b, "for t in %s; do command -v \"$t\" >/dev/null 2>&1 || echo \"missing $t\"; done\n", strings.Join(ts, " "))
	}
	tools(&oldScript, oldTools)
	tools(&newScript, newTools)
	for i, e := range entries {
		q := shellQuote(e.Path)
		fmt.Fprintf(&oldScript, "if [ -d %s ]; then echo \"used %d $(du -s -B1 -- %s | cut -f1)\"; else echo \"nodir %d\"; fi\n", q, i, q, i)
		fmt.Fprintf(&newScript, "d=%s; while [ ! -e \"$d\" ]; do d=$(dirname -- \"$d\"); done; echo \"df %d $(stat -c %%d -- \"$d\") $(df -B1 --output=avail,target -- \"$d\" | tail -n 1)\"\n", q, i)
		fmt.Fprintf(&newScript, "if [ -d %s ]; then echo \"used %d $(du -s -B1 -- %s | cut -f1)\"; fi\n", q, i, q)
	}
	for _, b := range []*strings.Builder{&oldScript, &newScript} {
		b.WriteString("echo \"time $(date +%s.%N)\"\n")
	}

	type hostOut struct {
		lines []string
		err   error
		to    time.Time
	}
	var wg sync.WaitGroup
	var oldOut, newOut hostOut
	for _, h := range []struct {
		c      *Client
		script string
		out    *hostOut
	}{{p.Old, oldScript.String(), &oldOut}, {p.New, newScript.String(), &newOut}} {
		wg.Go(func() {
			out, err := h.c.output(ctx, h.script, "preflight checks", nil)
			h.out.to = time.Now()
			h.out.lines, h.out.err = trimLines(out), err
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("sshops: preflight: %w", err)
	}

	usedOld := map[int]int64{}
	usedNew := map[int]int64{}
	type dfInfo struct {
		avail int64
		dev   string
		mount string
	}
	dfNew := map[int]dfInfo{}
	parse := func(role string, ho hostOut, hr *HostReport) {
		if ho.err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %v", role, ho.err))
			return
		}
		hr.Reachable = true
		var nodirs []string
		for _, l := range ho.lines {
			f := strings.Fields(l)
			switch {
			case len(f) == 2 && f[0] == "missing":
				hr.Missing = append(hr.Missing, f[1])
			case len(f) == 2 && f[0] == "nodir":
				i, _ := strconv.Atoi(f[1])
				nodirs = append(nodirs, fmt.Sprintf("%s: %s is not a directory", role, entries[i].Path))
			case len(f) == 3 && f[0] == "used":
				i, _ := strconv.Atoi(f[1])
				n, _ := strconv.ParseInt(f[2], 10, 64)
				if role == "old" {
					usedOld[i] = n
				} else {
					usedNew[i] = n
				}
			case len(f) >= 5 && f[0] == "df":
				i, _ := strconv.Atoi(f[1])
				n, _ := strconv.ParseInt(f[3], 10, 64)
				dfNew[i] = dfInfo{avail: n, dev: f[2], mount: strings.Join(f[4:], " ")}
			case len(f) == 2 && f[0] == "time":
				sec, err := strconv.ParseFloat(f[1], 64)
				if err == nil {
					// The line is printed last and arrives just before the exit status: compare with
					// the time the command returned (session setup would skew a midpoint).
					hr.Clock = time.Unix(0, int64(sec*1e9)).Sub(ho.to)
				}
			}
		}
		if len(hr.Missing) > 0 {
			var pkgs []string
			for _, t := range hr.Missing {
				pkg := aptPackage[t]
				if pkg == "" {
					pkg = t
				}
				pkgs = append(pkgs, pkg)
			}
			slices.Sort(pkgs)
			pkgs = slices.Compact(pkgs)
			r.Problems = append(r.Problems, fmt.Sprintf("%s: missing %s: apt-get install -y %s",
				role, strings.Join(hr.Missing, ", "), strings.Join(pkgs, " ")))
		}
		r.Problems = append(r.Problems, nodirs...)
	}
	parse("old", oldOut, &r.Old)
	parse("new", newOut, &r.New)
	if p.mode() != ModeRelay && r.Old.Reachable && r.New.Reachable && !slices.Contains(r.Old.Missing, "ssh") {
		if problem := p.reachProblem(ctx); problem != "" {
			r.Problems = append(r.Problems, problem)
		}
	}
	if r.Old.Reachable && r.New.Reachable {
		r.ClockSkew = r.Old.Clock - r.New.Clock
		need := map[string]*SpaceReport{}
		var mounts []string
		for i := range entries {
			r.UsedOld += usedOld[i]
			d, ok := dfNew[i]
			if !ok {
				continue
			}
			// Group by filesystem (device), not mount point: bind mounts share space.
			s := need[d.dev]
			if s == nil {
				s = &SpaceReport{Mount: d.mount, Avail: d.avail}
				need[d.dev] = s
				mounts = append(mounts, d.dev)
			}
			s.Need += max(0, usedOld[i]+usedOld[i]/10-usedNew[i])
		}
		for _, m := range mounts {
			s := need[m]
			r.Space = append(r.Space, *s)
			if s.Avail < s.Need {
				r.Problems = append(r.Problems, fmt.Sprintf("new: %s has %s free, the synced paths need %s (used on old plus 10%%)",
					s.Mount, humanBytes(s.Avail), humanBytes(s.Need)))
			}
		}
		p.logf("preflight: old uses %s for the synced paths; clock skew old-new %s", humanBytes(r.UsedOld), r.ClockSkew.Round(time.Millisecond))
	}
	if len(r.Problems) > 0 {
		return r, &PreflightError{Problems: r.Problems}
	}
	return r, nil
}

// reachProblem checks, for the direct and agent transfers, that old reaches new's SSH port and
// knows new by the host key cutover verified; for agent, that new accepts a key of the agent
// forwarded to old. It returns a problem naming the transfer mode that would work instead, or "".
// No key is offered in the direct check (only the "none" method): new refusing it proves that
// old reached new's sshd.
func (p *Pair) reachProblem(ctx context.Context) string {
	newEp := p.New.Endpoint()
	host := newEp.Addr.String()
	port := newEp.port()
	if p.testReachPort != 0 {
		port = p.testReachPort
	}
	target := net.JoinHostPort(host, strconv.Itoa(port))
	khLine := knownhosts.Line([]string{knownhosts.Normalize(target)}, p.New.HostKey())
	sshArgs := []string{"ssh", "-F", "/dev/null", "-p", strconv.Itoa(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"}
	if p.mode() == ModeDirect {
		sshArgs = append(sshArgs, "-o", "PreferredAuthentications=none")
	} else {
		sshArgs = append(sshArgs, "-o", "PreferredAuthentications=publickey", "-o", "IdentitiesOnly=no")
	}
	cmd := fmt.Sprintf(`kh=$(mktemp -p %s cutover-onetime-reachXXXXXX) || exit 1; printf '%%s\n' %s > "$kh"; %s -o UserKnownHostsFile="$kh" %s true 2>&1; echo "rc $?"; rm -f -- "$kh"`,
		shellQuote(p.tempDir()), shellQuote(khLine), shellJoin(sshArgs), shellQuote(newEp.sshDest()))
	spec := runSpec{cmd: cmd, display: "ssh from old to new's " + target, o: RunOptions{Quiet: true}}
	if p.mode() == ModeAgent {
		if err := p.Old.forwardAgent(p.AgentSocket); err != nil {
			return fmt.Sprintf("old: %v; set transfer = \"direct\" (a one-time key) or \"relay\"", err)
		}
		spec.prepare = p.Old.requestAgent
	}
	var out strings.Builder
	spec.stdout = &out
	if _, err := p.Old.run(ctx, spec); err != nil {
		return fmt.Sprintf("old: checking that it reaches new: %v", err)
	}
	lines := trimLines([]byte(out.String()))
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "rc ") {
		return fmt.Sprintf("old: checking that it reaches new: unexpected output %q", out.String())
	}
	rc := strings.TrimPrefix(lines[len(lines)-1], "rc ")
	why := strings.Join(lines[:len(lines)-1], "; ")
	denied := strings.Contains(why, "Permission denied")
	switch {
	case p.mode() == ModeDirect && denied, p.mode() == ModeAgent && rc == "0":
		return ""
	case strings.Contains(why, "Host key verification failed") || strings.Contains(why, "REMOTE HOST IDENTIFICATION HAS CHANGED"):
		return fmt.Sprintf("old: reaches %s but is not shown the host key cutover verified for new (%s): old reaches another host there; set transfer = \"relay\" (data goes through this machine)", target, why)
	case p.mode() == ModeAgent && denied:
		return fmt.Sprintf("old: reaches %s but new accepts none of the forwarded agent's keys (%s): authorize one on new, or set transfer = \"direct\" (a one-time key)", target, why)
	}
	return fmt.Sprintf("old: cannot reach new's SSH port %s (%s): the %s transfer pushes from old to new; open that port to old, or set transfer = \"relay\" (data goes through this machine)", target, why, p.mode())
}
