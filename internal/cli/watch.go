package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsprop"
)

// listFlag collects a repeatable flag; commas also separate values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// publicResolvers is what `--resolvers public` stands for: one well-known
// public resolver of each of four operators, for watching a real-world
// cutover from outside. The README's `cutover watch` notes list the same.
var publicResolvers = []string{
	"1.1.1.1",        // Cloudflare
	"8.8.8.8",        // Google Public DNS
	"9.9.9.9",        // Quad9
	"208.67.222.222", // Cisco OpenDNS
}

// cmdWatch waits until DNS serves the expected addresses everywhere.
func cmdWatch(ctx context.Context, e *env, c *command, args []string) error {
	w, err := parseWatch(c, e, args)
	if err != nil {
		return err
	}
	return w.run(ctx, e)
}

// watchRun is a checked `cutover watch` command line.
type watchRun struct {
	names     []string
	types     []string // "A", "AAAA" or both
	old, want dnsprop.Sets
	chk       *dnsprop.Checker
	timeout   time.Duration
	json      bool
	cfgFile   string
}

// parseWatch checks the whole command line (and the config it names) before
// anything is asked: every mistake is a usage error (exit 2).
func parseWatch(c *command, e *env, args []string) (*watchRun, error) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	var expect, absent, resolvers, auth listFlag
	fs.Var(&expect, "expect", "")
	fs.Var(&absent, "absent", "")
	fs.Var(&resolvers, "resolver", "")
	lists := fs.String("resolvers", "", "")
	fs.Var(&auth, "authoritative", "")
	quorum := fs.String("quorum", "", "")
	timeout := fs.String("timeout", "", "")
	asJSON := fs.Bool("json", false, "")
	cfgFile := fs.String("config", "", "")
	names, err := parse(c, fs, args, 0, -1)
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return &usageError{err: fmt.Errorf("watch: "+format, args...), hint: "cutover help watch"}
	}
	w := &watchRun{chk: &dnsprop.Checker{}, timeout: 2 * time.Hour, json: *asJSON, cfgFile: *cfgFile, types: []string{"A", "AAAA"}}
	if *cfgFile != "" {
		cfg, err := loadConfig(e, *cfgFile, false)
		if err != nil {
			return nil, err
		}
		w.chk, w.timeout = checker(cfg), cfg.DNS.ConvergeTimeout
		if len(names) == 0 {
			names = cfg.DNS.Names
		}
		w.old, w.want = (&propagation{cfg: cfg}).sets()
	}
	if len(names) == 0 {
		return nil, bad("no NAME given")
	}
	for _, n := range names {
		cn, err := dnsprop.CanonName(n)
		if err != nil {
			return nil, bad("%w", err)
		}
		w.names = append(w.names, cn)
	}
	if len(expect) > 0 {
		var as []netip.Addr
		for _, s := range expect {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, bad("--expect %q: not an IP address", s)
			}
			as = append(as, a)
		}
		w.want = dnsprop.SetsOf(as)
		w.types = nil
		for _, t := range []string{"A", "AAAA"} {
			if len(w.want.Of(t)) > 0 {
				w.types = append(w.types, t)
			}
		}
	}
	if len(w.want.A) == 0 && len(w.want.AAAA) == 0 {
		return nil, bad("no --expect address given")
	}
	for _, s := range absent {
		t := strings.ToUpper(s)
		if t != "A" && t != "AAAA" {
			return nil, bad("--absent %q: want a or aaaa", s)
		}
		if got := w.want.Of(t); len(got) > 0 {
			return nil, bad("--absent %s contradicts the expected %s %s", s, t, got[0])
		}
		if !slices.Contains(w.types, t) {
			w.types = append(w.types, t)
		}
	}
	slices.Sort(w.types) // A before AAAA
	var given []serverArg
	for i, v := range resolvers {
		given = append(given, serverArg{v, fmt.Sprintf("--resolver value %d", i+1)})
	}
	switch *lists {
	case "":
	case "public":
		for _, v := range publicResolvers {
			given = append(given, serverArg{v, "--resolvers public"})
		}
	default:
		return nil, bad("--resolvers %q: the only list is \"public\"", *lists)
	}
	if len(given) > 0 {
		if w.chk.Resolvers, err = parseServers("--resolver", given); err != nil {
			return nil, bad("%w", err)
		}
	}
	if len(w.chk.Resolvers) == 0 {
		return nil, bad("no --resolver given (cutover never falls back to /etc/resolv.conf)")
	}
	switch {
	case len(auth) == 0:
	case slices.Equal(auth, []string{"auto"}):
		w.chk.Authoritative = nil
	default:
		given = nil
		for i, v := range auth {
			given = append(given, serverArg{v, fmt.Sprintf("--authoritative value %d", i+1)})
		}
		if w.chk.Authoritative, err = parseServers("--authoritative", given); err != nil {
			return nil, bad("%w", err)
		}
	}
	switch *quorum {
	case "":
	case "all":
		w.chk.Quorum = 0
	default:
		n, err := strconv.Atoi(*quorum)
		if err != nil || n < 1 || n > len(w.chk.Resolvers) {
			return nil, bad("--quorum %q: want \"all\" or a number from 1 to %d", *quorum, len(w.chk.Resolvers))
		}
		w.chk.Quorum = n
	}
	if *timeout != "" {
		d, err := config.ParseDuration(*timeout)
		if err != nil || d <= 0 {
			return nil, bad("--timeout %q: want a duration such as 30m", *timeout)
		}
		w.timeout = d
	}
	return w, nil
}

// serverArg is a server address from the command line and where it came
// from ("--resolver value 2", "--resolvers public").
type serverArg struct{ value, where string }

// parseServers parses the servers of flagName. One given twice is an error
// naming both places: it would count twice towards the quorum.
func parseServers(flagName string, args []serverArg) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for i, a := range args {
		ap, err := dnsprop.ParseServer(a.value)
		if err != nil {
			if a.value == "auto" {
				return nil, fmt.Errorf("%s: auto goes alone, not with addresses", flagName)
			}
			return nil, fmt.Errorf("%s: %w", flagName, err)
		}
		if j := slices.Index(out, ap); j >= 0 {
			return nil, fmt.Errorf("%s given twice: %s and %s", a.value, args[j].where, args[i].where)
		}
		out = append(out, ap)
	}
	return out, nil
}

// run waits, showing what it sees, and turns the outcome into the error that
// says what to do next.
func (w *watchRun) run(ctx context.Context, e *env) error {
	view := dnsprop.NewView(e.stdout, e.terminal && !w.json, w.json || !e.terminal)
	wctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	_, err := w.chk.WaitTypes(wctx, w.names, w.types, w.old, w.want, view.Event)
	if werr := view.Err(); werr != nil && err == nil {
		return fmt.Errorf("watch: writing the view: %w", werr)
	}
	var nc *dnsprop.NotConvergedError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return errInterrupted
	case errors.As(err, &nc) && nc.Report != nil && nc.Report.StableButWrong:
		check := "the records at your DNS provider"
		if w.cfgFile != "" {
			check = "the records: cutover dns show " + w.cfgFile
		}
		return withHint(fmt.Errorf("watch: not converged after %s, and the answers are stable but wrong: %w", config.FormatDuration(w.timeout), err), ExitFailure,
			"waiting longer will not help: every wrong answer above came back unchanged after its TTL ran out (or is what the authoritative servers serve at their newest serial); check --expect, --absent and %s", check)
	case errors.As(err, &nc):
		return withHint(fmt.Errorf("watch: not converged after %s: %w", config.FormatDuration(w.timeout), err), ExitFailure,
			"wait longer: add --timeout, e.g. --timeout %s", config.FormatDuration(2*w.timeout))
	}
	return fmt.Errorf("watch: %w", err)
}
