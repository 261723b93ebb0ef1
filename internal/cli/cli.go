// Package cli is cutover's command line: flags, subcommands, printing and
// exit codes. It builds the real dependencies (config, providers, dnsprop,
// sshops, scheduler) and hands them down; how each step works lives in
// those packages.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/cutover-dev/cutover/providers"
	"github.com/cutover-dev/cutover/scheduler"
)

// Exit codes, documented in the README.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2 // bad command line or invalid config
	ExitInterrupted = 130
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=v1.2.3".
var Version = "devel"

// env is the process's world, replaceable in tests.
type env struct {
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	terminal bool // stdout and stdin are terminals: live views and prompts
	now      func() time.Time

	mu    sync.Mutex
	block *renderer // the live status block on the terminal, if one is drawn
}

// notice writes a line to stderr that interrupts whatever runs (a signal's
// message): above the live status block, which is redrawn below it, so that
// no stale line of the block stays on the screen.
func (e *env) notice(line string) {
	e.mu.Lock()
	r := e.block
	e.mu.Unlock()
	if r == nil {
		fmt.Fprintln(e.stderr, line)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.erase()
	fmt.Fprintln(e.stderr, line)
	r.draw()
}

// command is one subcommand: its synopsis, its help text and the function
// that runs it (in the file named after the command). run gets the command
// itself for the usage hints of parse.
type command struct {
	name    string
	args    string // synopsis after the name
	summary string
	help    string
	run     func(ctx context.Context, e *env, c *command, args []string) error
}

// commands is every command, in the order of the usage text: the operator's
// path first. It is filled in by init only because help reads it.
var commands []*command

func init() {
	commands = []*command{
		{name: "validate", args: "FILE", summary: "check a config file; changes nothing", run: cmdValidate,
			help: `Checks FILE and reports every problem at once, each with file:line:column and the
key's full name. Nothing is looked up on the network and nothing is changed anywhere.
Exit 0 when the file is valid, 2 when it is not.`},
		{name: "plan", args: "FILE [--offline] [--json] [--accept-slow-propagation]", summary: "show the timeline; changes nothing", run: cmdPlan,
			help: `Computes the cutover's timeline from the config, the TTLs the authoritative servers
serve now, and the current time, and prints every step with its absolute time (UTC and
local), why it runs then, and exactly what it will do. Nothing is changed anywhere.

  --offline                  do not query DNS; times that depend on the served TTLs are unknown
  --json                     print the plan as JSON (durations in seconds, times in UTC)
  --accept-slow-propagation  exit 0 even when the TTL can no longer be lowered in time

Exit 1 when the TTL cannot be lowered in time (the plan names the earliest safe cutover_at).`},
		{name: "run", args: "FILE [--yes] [--accept-slow-propagation] [--rerun-interrupted] [--accept-new-host-key]",
			summary: "carry out the cutover on schedule; resumes from the journal", run: cmdRun,
			help: `Shows the plan, asks for consent, then runs every step no earlier than its planned time,
journaling each transition in state_dir. Run it again after a crash or a stop: finished steps are
never repeated; an interrupted copy, DNS change or wait runs again; an interrupted hook stops and asks.
With on_failure = "rollback", a failure before activate puts DNS back and re-enables old.

  --yes                      do not ask (required without a terminal)
  --accept-slow-propagation  go ahead although the TTL can no longer be lowered in time
  --rerun-interrupted        run a hook again that a previous run left interrupted
  --accept-new-host-key      trust and record an unknown host key in [ssh] known_hosts
  --quiet                    print only errors, the result and hints (not the plan, steps or progress)
  --verbose                  also print every line the hosts print ("[old] ...", "[new] ...")

On a terminal, a status block at the bottom shows the current step, a progress bar for each
copy, the countdown of a wait and, during the awaits, what each DNS server serves; without
one, plain lines (a copy's progress every 10 seconds).

SIGINT or SIGTERM stops at the next safe point (a second one aborts at once).
Exit 0 when the cutover is done, 1 when a step failed or consent was not given, 130 when interrupted.`},
		{name: "status", args: "FILE [--json]", summary: "show the journal: every step, its state and times", run: cmdStatus,
			help: `Prints the journal of FILE's cutover as a table (step, state, start, end, duration, note),
the DNS state and the outcome. Reads only; works while a run is in progress.
  --json  print the journal as JSON (durations in seconds, times in UTC; see the README)`},
		{name: "step", args: "NAME FILE [--yes] [--mark-done] [--rerun-interrupted] [--accept-new-host-key]",
			summary: "run one step by hand, journaled", run: cmdStep,
			help: `Runs one step now, as in the manual migration guide, and journals it like cutover run would.
Every step before it must be done: activate cannot run before DNS points at the new host.
A failure is journaled and not rolled back. Steps: ` + strings.Join(scheduler.StepNames(), ", ") + `;
with [bridge], activate follows fixup and bridge and unbridge join (cutover plan FILE shows the order).

  --yes                  do not ask (required without a terminal)
  --mark-done            do not run it: record that an interrupted or failed step did take effect
                         (after checking by hand)
  --rerun-interrupted    run a hook again although it already ran or was interrupted
  --accept-new-host-key  trust and record an unknown host key in [ssh] known_hosts
  --quiet, --verbose     print less or more, as for cutover run`},
		{name: "rollback", args: "FILE [--yes] [--accept-new-host-key]", summary: "put DNS back and re-enable old, by hand", run: cmdRollback,
			help: `Puts things back as they were: the service re-enabled on old ([hooks] reenable) if it was
disabled, and DNS reverted to the snapshot in the journal (original addresses and TTLs) if it was
changed. Runs every action even when one fails, and journals each. With [bridge], it also stops
the forwarder on old and runs [hooks] deactivate on new; without it, after activate the new host
keeps running: stop it yourself.

  --yes                  do not ask (required without a terminal)
  --accept-new-host-key  trust and record an unknown host key in [ssh] known_hosts
  --quiet, --verbose     print less or more, as for cutover run`},
		{name: "watch", args: "NAME... --expect ADDR... [--absent a|aaaa] (--resolver ADDR... | --resolvers public) [--authoritative auto|ADDR,...] [--quorum all|N] [--timeout D] [--json] [--config FILE]",
			summary: "wait until DNS serves the expected A/AAAA everywhere", run: cmdWatch,
			help: `Asks every authoritative server (recursion off, AA required, serials compared) and every
resolver for the records of each NAME until all serve exactly the --expect addresses. IPv4
addresses are the A set, IPv6 ones the AAAA set; a record type with no --expect address is not
watched unless --absent a|aaaa says it must have no record. Resolvers are asked again when the
TTL of what they hold runs out. On a terminal a live table; otherwise, or with --json, one JSON
line per change and a final summary.

Each row says what the server serves: "new", "missing", "old {192.0.2.1}, want {192.0.2.2}" or
"other {2001:db8::20}, want none". An answer that a resolver serves again after its TTL ran out,
or an authoritative server at the newest serial, is "stable": it will not change until the
records do. When every wrong answer is stable, watch says so instead of counting down.

--resolvers public stands for 1.1.1.1 (Cloudflare), 8.8.8.8 (Google), 9.9.9.9 (Quad9) and
208.67.222.222 (OpenDNS), for watching a real cutover from outside.

With --config FILE the names, the expected addresses ([new], A and AAAA), the old ones ([old]),
the servers, quorum and converge_timeout come from the config; flags override them. Without a
config, --resolver or --resolvers is required: cutover never falls back to /etc/resolv.conf.

Exit 0 when converged, 1 on timeout (with the last state of every server), 2 on usage errors,
130 when interrupted.`},
		{name: "dns", args: "show|lower-ttl|swap|restore-ttl|revert|selftest FILE [--yes] [--name LABEL] [--json]",
			summary: "show the records, run one DNS step by hand, or test the provider", run: cmdDNS,
			help: `  show         the A/AAAA records and TTLs of [dns] names as the provider reports them
  lower-ttl    set their TTL to lowered_ttl, data unchanged
  swap         point them at [new] (A, and AAAA or none), with lowered_ttl
  restore-ttl  keep the current data, put the snapshot's TTLs back
  revert       put the snapshot's data and TTLs back

The first change takes a snapshot of the records into the journal (what revert restores) and
checks they point at [old]. Each change is recorded in the same journal cutover run uses, and
refuses to touch a record that holds neither the value expected before nor after it.

  --yes        do not ask before a change (required without a terminal)
  --json       dns show and selftest: print as JSON (TTLs and delays in seconds)

  selftest     test the provider on the real zone before the window, on a scratch name
               (--name LABEL, default cutover-selftest; a name that exists is refused):
               create an A set of two values, lower its TTL to lowered_ttl, replace the A and
               add an AAAA, remove the AAAA, delete. Each change is read back through the
               provider and asked of every authoritative server, timing how long it took to
               show there. Whatever happens (a failure, SIGINT), what it created is removed.
               Uses documentation addresses only (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32).
               --json prints the report as JSON. Exit 0 when every operation passed.`},
		{name: "bridge", args: "serve --listen ADDR:PORT,... --to ADDR --pidfile F --log F [--proxy-protocol] [--max-conns N] [--idle D] [--ready-fd N]",
			summary: "the forwarder old runs during a handover through old ([bridge])", run: cmdBridge, help: bridgeHelp},
		{name: "providers", args: "[--json]", summary: "list the DNS provider types and their settings", run: cmdProviders, help: providersHelp},
		{name: "version", summary: "print the version", help: "Prints cutover's version.", run: cmdVersion},
		{name: "help", args: "[COMMAND]", summary: "show help for cutover or a command", run: cmdHelp,
			help: "Prints the list of commands, or the help of COMMAND."},
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Main runs cutover with args and returns the exit code. SIGINT and SIGTERM
// cancel the context; a second signal exits at once, once the local hooks
// still running are killed with their process groups.
func Main(args []string) int {
	// Most provider libraries (porkbun, gandi, bunny, ionos, ovh, ...) send
	// through Go's default HTTP client and take no client of ours: the
	// process-wide default transport is the one place to make them wait out
	// 429 and Retry-After. The program installs it, once, here; no package
	// does so on import, so tests and other users of the packages keep Go's.
	providers.InstallRetryTransport()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	e := &env{
		stdin:    os.Stdin,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		terminal: term.IsTerminal(int(os.Stdout.Fd())) && term.IsTerminal(int(os.Stdin.Fd())),
		now:      nowFunc(),
	}
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		e.notice(fmt.Sprintf("cutover: %s: stopping at the next safe point (a second signal aborts at once)", s))
		cancel(errInterrupted)
		if _, ok := <-sigs; ok {
			e.notice("cutover: aborted")
			scheduler.AbortLocal()
			os.Exit(ExitInterrupted)
		}
	}()
	return run(ctx, e, args)
}

var errInterrupted = errors.New("interrupted")

// nowFunc honours CUTOVER_TEST_NOW (RFC 3339) so that scripted tests of
// validate and plan print stable times. Commands that change anything
// refuse to run with it set.
func nowFunc() func() time.Time {
	if s := os.Getenv("CUTOVER_TEST_NOW"); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return func() time.Time { return t }
		}
	}
	return time.Now
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return ExitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		name = "help"
	case "-v", "-version", "--version":
		name = "version"
	}
	c := lookup(name)
	if c == nil {
		return report(e, &usageError{err: fmt.Errorf("unknown command %q", name), hint: "cutover help"})
	}
	return report(e, c.run(ctx, e, c, rest))
}

func report(e *env, err error) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	code := ExitFailure
	var hint string
	var ue *usageError
	var he *hintError
	switch {
	case errors.As(err, &ue):
		code, hint = ExitUsage, ue.hint
	case errors.As(err, &he):
		code, hint = he.code, he.hint
	}
	if errors.Is(err, errInterrupted) || errors.Is(err, context.Canceled) {
		code = ExitInterrupted
	}
	msg := err.Error()
	fmt.Fprintf(e.stderr, "cutover: error: %s\n", strings.ReplaceAll(msg, "\n", "\ncutover:   "))
	if hint != "" {
		fmt.Fprintf(e.stderr, "cutover: hint: %s\n", hint)
	}
	return code
}

// usageError is a bad command line or an invalid config: exit 2.
type usageError struct {
	err  error
	hint string
}

func (u *usageError) Error() string { return u.err.Error() }
func (u *usageError) Unwrap() error { return u.err }

// hintError carries the next command to run and the exit code.
type hintError struct {
	err  error
	hint string
	code int
}

func (h *hintError) Error() string { return h.err.Error() }
func (h *hintError) Unwrap() error { return h.err }

func withHint(err error, code int, format string, args ...any) error {
	return &hintError{err: err, code: code, hint: fmt.Sprintf(format, args...)}
}

// parse parses flags that may stand before or after the positional
// arguments, as people type them, and checks the positional count.
func parse(c *command, fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err: fmt.Errorf("%s: %w", c.name, err), hint: "cutover help " + c.name}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return nil, &usageError{err: fmt.Errorf("%s: wrong number of arguments", c.name), hint: "cutover " + c.name + " " + c.args}
	}
	return pos, nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "cutover moves a live service from an old server to a new one, with DNS in the loop.\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace("cutover "+c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(w, "\nRun 'cutover help COMMAND' for details. Exit codes: 0 ok, 1 failure, 2 usage or invalid config, 130 interrupted.\n")
}

// cmdHelp prints the usage text, or the help of one command.
func cmdHelp(ctx context.Context, e *env, c *command, args []string) error {
	if len(args) == 0 {
		usage(e.stdout)
		return nil
	}
	h := lookup(args[0])
	if h == nil {
		return &usageError{err: fmt.Errorf("help: unknown command %q", args[0]), hint: "cutover help"}
	}
	fmt.Fprintf(e.stdout, "Usage: cutover %s %s\n\n%s\n", h.name, h.args, strings.Trim(h.help, "\n"))
	return nil
}

// cmdVersion prints the version.
func cmdVersion(ctx context.Context, e *env, c *command, args []string) error {
	fmt.Fprintf(e.stdout, "cutover %s\n", Version)
	return nil
}
