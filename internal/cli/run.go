package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/scheduler"
	"github.com/cutover-dev/cutover/sshops"
)

// errAborted is a "no" (or no way to ask) at a consent prompt.
var errAborted = errors.New("aborted, no changes made")

// consent asks before anything changes. --yes answers for the operator;
// without a terminal and without --yes nothing happens.
func consent(e *env, yes bool, question, yesHint string) error {
	if yes {
		return nil
	}
	if !e.terminal {
		return withHint(fmt.Errorf("%w: no terminal to ask for consent", errAborted), ExitFailure, "%s", yesHint)
	}
	fmt.Fprintf(e.stdout, "%s [y/N] ", question)
	line, _ := bufio.NewReader(e.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errAborted
}

// refuseTestNow keeps the scripted-test clock away from commands that change things.
func refuseTestNow() error {
	if os.Getenv("CUTOVER_TEST_NOW") != "" {
		return &usageError{err: errors.New("CUTOVER_TEST_NOW is set: it is for tests of validate, plan and status only"), hint: "unset CUTOVER_TEST_NOW"}
	}
	return nil
}

// session is an open state dir: lock, journal, event log.
type session struct {
	cfg     *config.Config
	lock    *scheduler.Lock
	journal *scheduler.Journal
	events  *scheduler.EventLog
	hosts   *sshops.Hosts
}

func openSession(e *env, cfg *config.Config, what string) (*session, error) {
	now := e.now()
	lock, err := scheduler.AcquireLock(cfg.StateDir, what, now)
	var le *scheduler.LockedError
	if errors.As(err, &le) {
		return nil, withHint(err, ExitFailure, "wait for that run to end, or stop it (it resumes from the journal): see cutover status %s", cfg.File)
	}
	if err != nil {
		return nil, err
	}
	j, err := scheduler.OpenJournal(cfg, now)
	if err != nil {
		lock.Release()
		return nil, journalError(cfg, err)
	}
	ev, err := scheduler.OpenEventLog(cfg.StateDir, cfg.Notify.Command, e.stderr)
	if err != nil {
		lock.Release()
		return nil, err
	}
	return &session{cfg: cfg, lock: lock, journal: j, events: ev}, nil
}

// openForChange is the start of every command that changes things: the
// scripted clock refused, the config loaded, the state dir locked.
func openForChange(e *env, path, command string) (*session, error) {
	if err := refuseTestNow(); err != nil {
		return nil, err
	}
	cfg, err := loadConfig(e, path, false)
	if err != nil {
		return nil, err
	}
	return openSession(e, cfg, "cutover "+command+" "+cfg.File)
}

func (s *session) close() {
	if s.hosts != nil {
		s.hosts.Close()
	}
	s.events.Close()
	s.lock.Release()
}

type engineOptions struct {
	acceptNewHostKey bool
	rerunInterrupted bool
}

// engine builds the real engine: the provider (secrets resolved here),
// SSH to both hosts (on first use), dnsprop.
func (s *session) engine(e *env, o engineOptions) (*scheduler.Engine, error) {
	d, err := openDNS(s.cfg, e.stdout)
	if err != nil {
		return nil, err
	}
	fault, err := scheduler.FaultFromEnv()
	if err != nil {
		return nil, err
	}
	s.hosts = newHosts(s.cfg, o.acceptNewHostKey, copyProgress(e))
	eng := &scheduler.Engine{Config: s.cfg, Journal: s.journal, DNS: d, Hosts: s.hosts, Hooks: scheduler.HookRunner{Remote: s.hosts.Run},
		Prop: &propagation{cfg: s.cfg}, Clock: scheduler.SystemClock{}, Out: e.stdout, Events: s.events,
		RerunInterrupted: o.rerunInterrupted, Fault: fault}
	if e.terminal {
		eng.Wait = func(step scheduler.StepName, until, now time.Time) {
			left := until.Sub(now).Round(time.Second)
			fmt.Fprintf(e.stdout, "\r\x1b[Kwaiting for %s: %s left (until %s)", step, left, until.Local().Format("2006-01-02 15:04:05 MST"))
			if left <= time.Second {
				fmt.Fprintln(e.stdout)
			}
		}
	}
	return eng, nil
}

// copyProgress renders transfer progress: one line rewritten in place on a
// terminal, otherwise a line every 10 seconds and one when a path is done.
func copyProgress(e *env) func(sshops.Progress) {
	var mu sync.Mutex
	var last time.Time
	done := map[string]bool{} // paths whose end was printed: the end is reported more than once
	return func(p sshops.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Done && done[p.Path] {
			return
		}
		done[p.Path] = p.Done
		line := "copy " + p.String()
		switch {
		case e.terminal:
			fmt.Fprintf(e.stdout, "\r\x1b[K%s", line)
			if p.Done {
				fmt.Fprintln(e.stdout)
			}
		case p.Done || time.Since(last) >= 10*time.Second:
			fmt.Fprintln(e.stdout, line)
			last = time.Now()
		}
	}
}

// engineError turns the engine's errors into messages with the next command.
func engineError(cfg *config.Config, err error) error {
	var ie *scheduler.InterruptedError
	var de *scheduler.NeedsDecisionError
	var rb *scheduler.RolledBackError
	var se *scheduler.StepError
	var oe *scheduler.OrderError
	var rp *scheduler.RollbackPendingError
	var uh *sshops.UnknownHostError
	var hm *sshops.HostKeyMismatchError
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*scheduler.SaveError)):
		return journalError(cfg, err)
	case errors.As(err, &uh):
		return withHint(err, ExitFailure, "if %s is the right key, trust it and go on: cutover run %s --accept-new-host-key", uh.Fingerprint, cfg.File)
	case errors.As(err, &hm):
		return withHint(err, ExitFailure, "%s, then: cutover run %s --accept-new-host-key", hm.Hint(), cfg.File)
	case errors.As(err, &ie):
		return withHint(err, ExitInterrupted, "the journal says where it stopped; resume with: cutover run %s", cfg.File)
	case errors.As(err, &de):
		return withHint(err, ExitFailure, "check by hand whether %s took effect, then either run it again: cutover run %s --rerun-interrupted, or record that it did: cutover step %s %s --mark-done",
			de.Step, cfg.File, de.Step, cfg.File)
	case errors.As(err, &rb):
		if rb.Rollback != nil {
			return withHint(err, ExitFailure, "see what is left with: cutover status %s; retry the rollback with: cutover rollback %s", cfg.File, cfg.File)
		}
		return withHint(err, ExitFailure, "DNS points at old again; fix the cause, then start over: move %s away and run cutover run %s", cfg.StateDir, cfg.File)
	case errors.As(err, &rp):
		return withHint(err, ExitFailure, "finish the rollback first: cutover rollback %s", cfg.File)
	case errors.As(err, &oe):
		return withHint(err, ExitFailure, "cutover step %s %s", oe.Missing, cfg.File)
	case errors.As(err, &se):
		return withHint(err, ExitFailure, "fix the cause, then continue at %s: cutover run %s; or put everything back: cutover rollback %s", se.Step, cfg.File, cfg.File)
	}
	return err
}

func init() {
	c := &command{
		name: "run", args: "FILE [--yes] [--accept-slow-propagation] [--rerun-interrupted] [--accept-new-host-key]",
		summary: "carry out the cutover on schedule; resumes from the journal",
		help: `Shows the plan, asks for consent, then runs every step no earlier than its planned time,
journaling each transition in state_dir. Run it again after a crash or a stop: finished steps are
never repeated; an interrupted copy, DNS change or wait runs again; an interrupted hook stops and asks.
With on_failure = "rollback", a failure before activate puts DNS back and re-enables old.

  --yes                      do not ask (required without a terminal)
  --accept-slow-propagation  go ahead although the TTL can no longer be lowered in time
  --rerun-interrupted        run a hook again that a previous run left interrupted
  --accept-new-host-key      trust and record an unknown host key in [ssh] known_hosts

SIGINT or SIGTERM stops at the next safe point (a second one aborts at once).
Exit 0 when the cutover is done, 1 when a step failed or consent was not given, 130 when interrupted.`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		yes := fs.Bool("yes", false, "")
		acceptSlow := fs.Bool("accept-slow-propagation", false, "")
		rerun := fs.Bool("rerun-interrupted", false, "")
		acceptKey := fs.Bool("accept-new-host-key", false, "")
		pos, err := parse(c, fs, args, 1, 1)
		if err != nil {
			return err
		}
		s, err := openForChange(e, pos[0], "run")
		if err != nil {
			return err
		}
		defer s.close()
		cfg := s.cfg
		j := s.journal
		switch j.Outcome {
		case scheduler.OutcomeDone:
			fmt.Fprintf(e.stdout, "%s: the cutover finished at %s; nothing to do\n", cfg.File, j.Updated.UTC().Format(time.RFC3339))
			return nil
		case scheduler.OutcomeRolledBack:
			return withHint(fmt.Errorf("run: this cutover was rolled back (%s)", j.Rollback.Reason), ExitFailure,
				"to try again, keep the old journal and start a new one: mv %s %s.rolled-back && cutover run %s", cfg.StateDir, cfg.StateDir, cfg.File)
		}
		if !j.Started() {
			p, err := makePlan(ctx, e, cfg, false)
			if err != nil {
				return err
			}
			p.Render(e.stdout, time.Local)
			if p.TooLate && !*acceptSlow {
				return tooLate(cfg, p)
			}
			j.AcceptSlow = *acceptSlow
		} else {
			renderStatus(e.stdout, cfg, j)
			fmt.Fprintf(e.stdout, "resuming from the journal in %s\n", cfg.StateDir)
		}
		if err := consent(e, *yes, "Carry out this cutover?", "to proceed without asking: cutover run "+cfg.File+" --yes"); err != nil {
			return err
		}
		eng, err := s.engine(e, engineOptions{acceptNewHostKey: *acceptKey, rerunInterrupted: *rerun})
		if err != nil {
			return err
		}
		if err := engineError(cfg, eng.Run(ctx)); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "cutover done: %s now point at %s\n", strings.Join(cfg.DNS.Names, ", "), cfg.New.Address)
		return nil
	}
	register(c)

	st := &command{
		name: "status", args: "FILE [--json]", summary: "show the journal: every step, its state and times",
		help: `Prints the journal of FILE's cutover as a table (step, state, start, end, duration, note),
the DNS state and the outcome. Reads only; works while a run is in progress.
  --json  print the journal itself`,
	}
	st.run = func(ctx context.Context, e *env, args []string) error {
		fs := flag.NewFlagSet(st.name, flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "")
		pos, err := parse(st, fs, args, 1, 1)
		if err != nil {
			return err
		}
		cfg, err := loadConfig(e, pos[0], false)
		if err != nil {
			return err
		}
		j, err := scheduler.ReadJournal(cfg)
		if errors.Is(err, scheduler.ErrNoJournal) {
			return withHint(fmt.Errorf("status: nothing has run yet: no journal in %s", cfg.StateDir), ExitFailure, "cutover plan %s", cfg.File)
		}
		if err != nil {
			return journalError(cfg, err)
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(j)
		}
		renderStatus(e.stdout, cfg, j)
		return nil
	}
	register(st)

	sp := &command{
		name: "step", args: "NAME FILE [--yes] [--mark-done] [--rerun-interrupted] [--accept-new-host-key]",
		summary: "run one step by hand, journaled",
		help: `Runs one step now, as in the manual migration guide, and journals it like cutover run would.
Every step before it must be done: activate cannot run before DNS points at the new host.
A failure is journaled and not rolled back. Steps: ` + strings.Join(scheduler.StepNames(), ", ") + `.

  --mark-done          do not run it: record that an interrupted or failed step did take effect
                       (after checking by hand)
  --rerun-interrupted  run a hook again although it already ran or was interrupted`,
	}
	sp.run = func(ctx context.Context, e *env, args []string) error {
		fs := flag.NewFlagSet(sp.name, flag.ContinueOnError)
		yes := fs.Bool("yes", false, "")
		markDone := fs.Bool("mark-done", false, "")
		rerun := fs.Bool("rerun-interrupted", false, "")
		acceptKey := fs.Bool("accept-new-host-key", false, "")
		pos, err := parse(sp, fs, args, 2, 2)
		if err != nil {
			return err
		}
		name := scheduler.StepName(pos[0])
		if _, ok := scheduler.Info(name); !ok {
			return &usageError{err: fmt.Errorf("step: unknown step %q (valid: %s)", pos[0], strings.Join(scheduler.StepNames(), ", ")), hint: "cutover help step"}
		}
		s, err := openForChange(e, pos[1], "step "+string(name))
		if err != nil {
			return err
		}
		defer s.close()
		cfg := s.cfg
		if *markDone {
			if err := consent(e, *yes, fmt.Sprintf("Record that %s took effect, without running it?", name), "cutover step "+string(name)+" "+cfg.File+" --mark-done --yes"); err != nil {
				return err
			}
			eng := &scheduler.Engine{Config: cfg, Journal: s.journal, Clock: scheduler.SystemClock{}, Out: e.stdout, Events: s.events}
			if err := eng.MarkDone(name); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s marked done; continue with: cutover run %s\n", name, cfg.File)
			return nil
		}
		info, _ := scheduler.Info(name)
		if err := consent(e, *yes, fmt.Sprintf("Run %s now (%s)?", name, info.Summary), "cutover step "+string(name)+" "+cfg.File+" --yes"); err != nil {
			return err
		}
		eng, err := s.engine(e, engineOptions{acceptNewHostKey: *acceptKey, rerunInterrupted: *rerun})
		if err != nil {
			return err
		}
		return engineError(cfg, eng.RunStep(ctx, name))
	}
	register(sp)

	rb := &command{
		name: "rollback", args: "FILE [--yes] [--accept-new-host-key]", summary: "put DNS back and re-enable old, by hand",
		help: `Puts things back as they were: the service re-enabled on old ([hooks] reenable) if it was
disabled, and DNS reverted to the snapshot in the journal (original addresses and TTLs) if it was
changed. Runs every action even when one fails, and journals each. After activate, the new host
keeps running: stop it yourself.`,
	}
	rb.run = func(ctx context.Context, e *env, args []string) error {
		fs := flag.NewFlagSet(rb.name, flag.ContinueOnError)
		yes := fs.Bool("yes", false, "")
		acceptKey := fs.Bool("accept-new-host-key", false, "")
		pos, err := parse(rb, fs, args, 1, 1)
		if err != nil {
			return err
		}
		s, err := openForChange(e, pos[0], "rollback")
		if err != nil {
			return err
		}
		defer s.close()
		cfg := s.cfg
		j := s.journal
		if !j.Started() {
			return withHint(fmt.Errorf("rollback: nothing to roll back: no journal in %s", cfg.StateDir), ExitFailure, "cutover status %s", cfg.File)
		}
		renderStatus(e.stdout, cfg, j)
		if err := consent(e, *yes, "Roll back (re-enable old, revert DNS to the snapshot)?", "cutover rollback "+cfg.File+" --yes"); err != nil {
			return err
		}
		eng, err := s.engine(e, engineOptions{acceptNewHostKey: *acceptKey})
		if err != nil {
			return err
		}
		if err := eng.Rollback(context.WithoutCancel(ctx), "by hand (cutover rollback)"); err != nil {
			return withHint(fmt.Errorf("rollback: %w", err), ExitFailure, "fix the cause and run it again: cutover rollback %s", cfg.File)
		}
		fmt.Fprintf(e.stdout, "rolled back\n")
		return nil
	}
	register(rb)
}

// renderStatus prints the journal as a table.
func renderStatus(w io.Writer, cfg *config.Config, j *scheduler.Journal) {
	fmt.Fprintf(w, "journal %s\n", j.Path())
	outcome := j.Outcome
	if outcome == "" {
		outcome = "in progress"
		if !j.Started() {
			outcome = "not started"
		}
	}
	fmt.Fprintf(w, "  cutover_at %s, outcome: %s, DNS: %s\n", j.CutoverAt.UTC().Format("2006-01-02 15:04:05 UTC"), outcome, j.DNS)
	if j.Snapshot != nil {
		fmt.Fprintf(w, "  snapshot: %s\n", j.Snapshot)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATE\tSTARTED (UTC)\tENDED (UTC)\tTOOK\tNOTE")
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	}
	for _, s := range j.Steps {
		took := "-"
		if !s.Started.IsZero() && !s.Ended.IsZero() {
			took = s.Ended.Sub(s.Started).Round(time.Millisecond).String()
		}
		note := s.Note
		if s.Error != "" {
			note = "error: " + s.Error
		}
		if s.State == scheduler.Running && note == "" {
			note = "interrupted (or running now)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, ts(s.Started), ts(s.Ended), took, firstLine(note))
	}
	tw.Flush()
	if r := j.Rollback; r != nil {
		fmt.Fprintf(w, "rollback (%s) started %s: %s\n", r.Reason, ts(r.Started), strings.Join(r.Actions, "; "))
		if r.Error != "" {
			fmt.Fprintf(w, "rollback error: %s\n", r.Error)
		}
	}
	for _, l := range j.Log {
		fmt.Fprintf(w, "log: %s\n", l)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
