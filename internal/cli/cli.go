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
	"syscall"
	"time"

	"golang.org/x/term"
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
}

type command struct {
	name    string
	args    string // synopsis after the name
	summary string
	help    string
	run     func(ctx context.Context, e *env, args []string) error
}

var commands []*command

// commandOrder is the order of the usage text: the operator's path first.
var commandOrder = []string{"validate", "plan", "run", "status", "step", "rollback", "watch", "dns", "providers", "version", "help"}

func register(c *command) { commands = append(commands, c) }

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Main runs cutover with args and returns the exit code. SIGINT and SIGTERM
// cancel the context; a second signal exits at once.
func Main(args []string) int {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "cutover: %s: stopping at the next safe point (a second signal aborts at once)\n", s)
		cancel(errInterrupted)
		if _, ok := <-sigs; ok {
			fmt.Fprintln(os.Stderr, "cutover: aborted")
			os.Exit(ExitInterrupted)
		}
	}()
	e := &env{
		stdin:    os.Stdin,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		terminal: term.IsTerminal(int(os.Stdout.Fd())) && term.IsTerminal(int(os.Stdin.Fd())),
		now:      nowFunc(),
	}
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
	return report(e, c.run(ctx, e, rest))
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
	for _, name := range commandOrder {
		c := lookup(name)
		if c == nil {
			continue
		}
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace("cutover "+c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(w, "\nRun 'cutover help COMMAND' for details. Exit codes: 0 ok, 1 failure, 2 usage or invalid config, 130 interrupted.\n")
}

func init() {
	register(&command{
		name: "help", args: "[COMMAND]", summary: "show help for cutover or a command",
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) == 0 {
				usage(e.stdout)
				return nil
			}
			c := lookup(args[0])
			if c == nil {
				return &usageError{err: fmt.Errorf("help: unknown command %q", args[0]), hint: "cutover help"}
			}
			fmt.Fprintf(e.stdout, "Usage: cutover %s %s\n\n%s\n", c.name, c.args, strings.Trim(c.help, "\n"))
			return nil
		},
	})
	register(&command{
		name: "version", summary: "print the version",
		help: "Prints cutover's version.",
		run: func(ctx context.Context, e *env, args []string) error {
			fmt.Fprintf(e.stdout, "cutover %s\n", Version)
			return nil
		},
	})
}
