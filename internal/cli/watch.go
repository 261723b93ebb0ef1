package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
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

func init() {
	c := &command{
		name: "watch", args: "NAME... --expect ADDR... [--resolver ADDR]... [--authoritative auto|ADDR,...] [--quorum all|N] [--timeout D] [--json] [--config FILE]",
		summary: "wait until DNS serves the expected A/AAAA everywhere",
		help: `Asks every authoritative server (recursion off, AA required, serials compared) and every
resolver for the A and AAAA records of each NAME until all serve exactly the --expect addresses
(IPv4 ones as A, IPv6 ones as AAAA; no IPv6 given means no AAAA expected). Resolvers are asked
again when the TTL of what they hold runs out. On a terminal a live table; otherwise, or with
--json, one JSON line per change and a final summary.

With --config FILE the names, the expected addresses ([new]), the old ones ([old]), the servers,
quorum and converge_timeout come from the config; flags override them. Without a config,
--resolver is required: cutover never falls back to /etc/resolv.conf or public resolvers.

Exit 0 when converged, 1 on timeout (with the last state of every server), 2 on usage errors.`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		var expect, resolvers listFlag
		fs.Var(&expect, "expect", "")
		fs.Var(&resolvers, "resolver", "")
		auth := fs.String("authoritative", "", "")
		quorum := fs.String("quorum", "", "")
		timeout := fs.String("timeout", "", "")
		asJSON := fs.Bool("json", false, "")
		cfgFile := fs.String("config", "", "")
		names, err := parse(c, fs, args, 0, -1)
		if err != nil {
			return err
		}
		bad := func(format string, args ...any) error {
			return &usageError{err: fmt.Errorf("watch: "+format, args...), hint: "cutover help watch"}
		}
		chk := &dnsprop.Checker{}
		wait := 2 * time.Hour
		var old, want dnsprop.Sets
		if *cfgFile != "" {
			cfg, err := loadConfig(e, *cfgFile, false)
			if err != nil {
				return err
			}
			chk = checker(cfg)
			wait = cfg.DNS.ConvergeTimeout
			if len(names) == 0 {
				names = cfg.DNS.Names
			}
			old, want = (&propagation{cfg: cfg}).sets()
		}
		if len(names) == 0 {
			return bad("no NAME given")
		}
		for i, n := range names {
			names[i] = strings.ToLower(strings.TrimSuffix(n, ".")) + "."
		}
		if len(expect) > 0 {
			var as []netip.Addr
			for _, s := range expect {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return bad("--expect %q: not an IP address", s)
				}
				as = append(as, a)
			}
			want = dnsprop.SetsOf(as)
		}
		if len(want.A) == 0 && len(want.AAAA) == 0 {
			return bad("no --expect address given")
		}
		if len(resolvers) > 0 {
			chk.Resolvers = nil
			for _, s := range resolvers {
				ap, err := dnsprop.ParseServer(s)
				if err != nil {
					return bad("--resolver: %v", err)
				}
				chk.Resolvers = append(chk.Resolvers, ap)
			}
		}
		if len(chk.Resolvers) == 0 {
			return bad("no --resolver given (cutover never falls back to /etc/resolv.conf)")
		}
		switch *auth {
		case "":
		case "auto":
			chk.Authoritative = nil
		default:
			chk.Authoritative = nil
			for _, s := range strings.Split(*auth, ",") {
				ap, err := dnsprop.ParseServer(s)
				if err != nil {
					return bad("--authoritative: %v", err)
				}
				chk.Authoritative = append(chk.Authoritative, ap)
			}
		}
		switch *quorum {
		case "":
		case "all":
			chk.Quorum = 0
		default:
			n, err := strconv.Atoi(*quorum)
			if err != nil || n < 1 || n > len(chk.Resolvers) {
				return bad("--quorum %q: want \"all\" or a number from 1 to %d", *quorum, len(chk.Resolvers))
			}
			chk.Quorum = n
		}
		if *timeout != "" {
			d, err := config.ParseDuration(*timeout)
			if err != nil || d <= 0 {
				return bad("--timeout %q: want a duration such as 30m", *timeout)
			}
			wait = d
		}
		view := dnsprop.NewView(e.stdout, e.terminal && !*asJSON, *asJSON || !e.terminal)
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		_, err = chk.Wait(wctx, names, old, want, view.Event)
		if werr := view.Err(); werr != nil && err == nil {
			return fmt.Errorf("watch: writing the view: %w", werr)
		}
		var nc *dnsprop.NotConvergedError
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return errInterrupted
		case errors.As(err, &nc):
			return withHint(fmt.Errorf("watch: not converged after %s: %w", config.FormatDuration(wait), err), ExitFailure,
				"wait longer: add --timeout, e.g. --timeout %s", config.FormatDuration(2*wait))
		}
		return fmt.Errorf("watch: %w", err)
	}
	register(c)
}
