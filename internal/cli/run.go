package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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
	ev, err := scheduler.OpenEventLog(cfg.StateDir, cfg.Notify.Command, cfg.SecretEnv(), e.stderr)
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
	out              *renderer // where the run's output and progress go
}

// engine builds the real engine: the provider (secrets resolved here),
// SSH to both hosts (on first use), dnsprop.
func (s *session) engine(e *env, o engineOptions) (*scheduler.Engine, error) {
	d, err := openDNS(s.cfg, o.out)
	if err != nil {
		return nil, err
	}
	fault, err := scheduler.FaultFromEnv()
	if err != nil {
		return nil, err
	}
	s.hosts = newHosts(s.cfg, o.acceptNewHostKey, o.out.progress)
	eng := &scheduler.Engine{Config: s.cfg, Journal: s.journal, DNS: d, Hosts: s.hosts, Hooks: scheduler.HookRunner{Remote: s.hosts.Run, Hide: s.cfg.SecretEnv()},
		Prop: &propagation{cfg: s.cfg}, Clock: scheduler.SystemClock{}, Out: o.out, Events: s.events,
		RerunInterrupted: o.rerunInterrupted, Fault: fault}
	if f := newForwarder(s.cfg, s.hosts); f != nil {
		eng.Forwarder = f
	}
	if o.out.live {
		eng.Wait = o.out.wait
	}
	return eng, nil
}

// startOver is the hint after a rolled-back cutover.
func startOver(cfg *config.Config) string {
	return fmt.Sprintf("to try again, keep the old journal and start a new one: mv %s %s.rolled-back && cutover run %s", cfg.StateDir, cfg.StateDir, cfg.File)
}

// engineError turns the engine's errors into messages with the next
// command. again is the command that was run ("cutover run FILE", "cutover
// step NAME FILE"): the one to run again, with a flag added where needed.
func engineError(cfg *config.Config, again string, err error) error {
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
		return withHint(err, ExitFailure, "if %s is the right key, trust it and go on: %s --accept-new-host-key", uh.Fingerprint, again)
	case errors.As(err, &hm):
		return withHint(err, ExitFailure, "%s, then: %s --accept-new-host-key", hm.Hint(), again)
	case errors.As(err, &ie):
		return withHint(err, ExitInterrupted, "the journal says where it stopped; resume with: %s", again)
	case errors.As(err, &de):
		return withHint(err, ExitFailure, "check by hand whether %s took effect, then either run it again: %s --rerun-interrupted, or record that it did: cutover step %s %s --mark-done",
			de.Step, again, de.Step, cfg.File)
	case errors.As(err, &rb):
		if rb.Rollback != nil {
			return withHint(err, ExitFailure, "see what is left with: cutover status %s; retry the rollback with: cutover rollback %s", cfg.File, cfg.File)
		}
		return withHint(err, ExitFailure, "DNS points at old again; fix the cause, then %s", startOver(cfg))
	case errors.Is(err, scheduler.ErrFinished):
		return withHint(err, ExitFailure, "see how it ended: cutover status %s; %s", cfg.File, startOver(cfg))
	case errors.As(err, &rp):
		return withHint(err, ExitFailure, "finish the rollback first: cutover rollback %s", cfg.File)
	case errors.As(err, &oe):
		return withHint(err, ExitFailure, "cutover step %s %s", oe.Missing, cfg.File)
	case errors.As(err, &se):
		return withHint(err, ExitFailure, "fix the cause, then continue at %s: %s; or put everything back: cutover rollback %s", se.Step, again, cfg.File)
	}
	return err
}

// cmdRun carries out the cutover on schedule, resuming from the journal.
func cmdRun(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	yes := fs.Bool("yes", false, "")
	acceptSlow := fs.Bool("accept-slow-propagation", false, "")
	rerun := fs.Bool("rerun-interrupted", false, "")
	acceptKey := fs.Bool("accept-new-host-key", false, "")
	level := verbosityFlags(fs)
	pos, out, err := parseRunning(e, c, fs, args, 1, level)
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
		fmt.Fprintf(e.stdout, "%s: the cutover finished at %s; nothing to do\n", cfg.File, j.Finished().UTC().Format(time.RFC3339))
		return nil
	case scheduler.OutcomeRolledBack:
		return withHint(fmt.Errorf("run: this cutover was rolled back (%s)", j.Rollback.Reason), ExitFailure, "%s", startOver(cfg))
	}
	if !j.Started() {
		p, err := makePlan(ctx, e, cfg, false)
		if err != nil {
			return err
		}
		if out.level != quiet {
			p.Render(e.stdout, time.Local)
		}
		if p.TooLate && !*acceptSlow {
			return tooLate(cfg, p)
		}
	} else if out.level != quiet {
		renderStatus(e.stdout, cfg, j)
		fmt.Fprintf(e.stdout, "resuming from the journal in %s\n", cfg.StateDir)
	}
	if err := consent(e, *yes, "Carry out this cutover?", "to proceed without asking: cutover run "+cfg.File+" --yes"); err != nil {
		return err
	}
	eng, err := s.engine(e, engineOptions{acceptNewHostKey: *acceptKey, rerunInterrupted: *rerun, out: out})
	if err != nil {
		return err
	}
	eng.AcceptSlow = *acceptSlow
	err = eng.Run(ctx)
	out.close()
	if err := engineError(cfg, "cutover run "+cfg.File, err); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "cutover done: %s now point at %s\n", strings.Join(cfg.DNS.Names, ", "), cfg.New.Address)
	return nil
}

// cmdStatus prints the journal; it reads only.
func cmdStatus(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "")
	cfg, err := parseConfig(e, c, fs, args, false)
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
		return writeJSON(e.stdout, toStatus(cfg, j))
	}
	renderStatus(e.stdout, cfg, j)
	return nil
}

// cmdStep runs one step by hand, or records that it took effect (--mark-done).
func cmdStep(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	yes := fs.Bool("yes", false, "")
	markDone := fs.Bool("mark-done", false, "")
	rerun := fs.Bool("rerun-interrupted", false, "")
	acceptKey := fs.Bool("accept-new-host-key", false, "")
	level := verbosityFlags(fs)
	pos, out, err := parseRunning(e, c, fs, args, 2, level)
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
			return withHint(err, ExitFailure, "see the state of every step: cutover status %s", cfg.File)
		}
		fmt.Fprintf(e.stdout, "%s marked done; continue with: cutover run %s\n", name, cfg.File)
		return nil
	}
	info, _ := scheduler.Info(name)
	if err := consent(e, *yes, fmt.Sprintf("Run %s now (%s)?", name, info.Summary), "cutover step "+string(name)+" "+cfg.File+" --yes"); err != nil {
		return err
	}
	eng, err := s.engine(e, engineOptions{acceptNewHostKey: *acceptKey, rerunInterrupted: *rerun, out: out})
	if err != nil {
		return err
	}
	err = eng.RunStep(ctx, name)
	out.close()
	return engineError(cfg, "cutover step "+string(name)+" "+cfg.File, err)
}

// cmdRollback re-enables old and reverts DNS to the snapshot, by hand.
func cmdRollback(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	yes := fs.Bool("yes", false, "")
	acceptKey := fs.Bool("accept-new-host-key", false, "")
	level := verbosityFlags(fs)
	pos, out, err := parseRunning(e, c, fs, args, 1, level)
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
	if j.Outcome == scheduler.OutcomeRolledBack {
		return withHint(fmt.Errorf("rollback: nothing to roll back: this cutover was rolled back already (%s)", j.Rollback.Reason), ExitFailure,
			"see what was done: cutover status %s", cfg.File)
	}
	if out.level != quiet {
		renderStatus(e.stdout, cfg, j)
	}
	if err := consent(e, *yes, "Roll back (re-enable old, revert DNS to the snapshot)?", "cutover rollback "+cfg.File+" --yes"); err != nil {
		return err
	}
	eng, err := s.engine(e, engineOptions{acceptNewHostKey: *acceptKey, out: out})
	if err != nil {
		return err
	}
	err = eng.Rollback(context.WithoutCancel(ctx), "by hand (cutover rollback)")
	out.close()
	if err != nil {
		err = engineError(cfg, "cutover rollback "+cfg.File, fmt.Errorf("rollback: %w", err))
		var he *hintError
		if errors.As(err, &he) { // a host key to trust first
			return err
		}
		return withHint(err, ExitFailure, "fix the cause and run it again: cutover rollback %s", cfg.File)
	}
	fmt.Fprintf(e.stdout, "rolled back\n")
	return nil
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
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
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
		if s.Error != "" && (s.State != scheduler.Done || note == "") {
			note = "error: " + s.Error // a step marked done keeps its error, but the note says what happened since
		}
		if s.State == scheduler.Running && note == "" {
			note = "interrupted (or running now)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, ts(s.Started), ts(s.Ended), took, firstLine(note))
	}
	tw.Flush()
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n")) // a step without a note ends in padding
	}
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
