package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/scheduler"
)

// dnsOp is one of the DNS steps run by hand.
type dnsOp struct {
	name     string
	question string
	state    scheduler.DNSState
	do       func(d *dnsOps, ctx context.Context, s *scheduler.Snapshot) error
}

var dnsOpsByName = map[string]dnsOp{
	"lower-ttl":   {"lower-ttl", "Lower the TTL of %s to %s?", scheduler.DNSLowered, (*dnsOps).LowerTTL},
	"swap":        {"swap", "Point %s at the new host (TTL %s)?", scheduler.DNSSwapped, (*dnsOps).Swap},
	"restore-ttl": {"restore-ttl", "Put the original TTL of %s back (now %s)?", scheduler.DNSRestored, (*dnsOps).RestoreTTL},
	"revert":      {"revert", "Revert %s to the snapshot (TTL now %s)?", scheduler.DNSReverted, (*dnsOps).Revert},
}

func init() {
	c := &command{
		name: "dns", args: "show|lower-ttl|swap|restore-ttl|revert FILE [--yes]",
		summary: "show the records, or run one DNS step by hand",
		help: `  show         the A/AAAA records and TTLs of [dns] names as the provider reports them
  lower-ttl    set their TTL to lowered_ttl, data unchanged
  swap         point them at [new] (A, and AAAA or none), with lowered_ttl
  restore-ttl  keep the current data, put the snapshot's TTLs back
  revert       put the snapshot's data and TTLs back

The first change takes a snapshot of the records into the journal (what revert restores) and
checks they point at [old]. Each change is recorded in the same journal cutover run uses, and
refuses to touch a record that holds neither the value expected before nor after it.`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		yes := fs.Bool("yes", false, "")
		pos, err := parse(c, fs, args, 2, 2)
		if err != nil {
			return err
		}
		sub := pos[0]
		op, known := dnsOpsByName[sub]
		if sub != "show" && !known {
			return &usageError{err: fmt.Errorf("dns: unknown subcommand %q (valid: show, lower-ttl, swap, restore-ttl, revert)", sub), hint: "cutover help dns"}
		}
		cfg, err := loadConfig(e, pos[1], false)
		if err != nil {
			return err
		}
		d, err := openDNS(cfg, e.stdout)
		if err != nil {
			return err
		}
		if sub == "show" {
			snap, err := d.Snapshot(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "NAME\tTYPE\tTTL\tVALUES\n")
			for _, n := range snap.Names {
				for _, rr := range []struct {
					typ string
					set scheduler.RRset
				}{{"A", n.A}, {"AAAA", n.AAAA}} {
					if !rr.set.Exists {
						fmt.Fprintf(tw, "%s\t%s\t-\t(none)\n", n.Name, rr.typ)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, rr.typ, config.FormatDuration(rr.set.TTL), addrs(rr.set))
				}
			}
			return tw.Flush()
		}
		if err := refuseTestNow(); err != nil {
			return err
		}
		return runDNSOp(ctx, e, cfg, d, op, *yes)
	}
	register(c)
}

func addrs(r scheduler.RRset) string {
	s := make([]string, len(r.Addrs))
	for i, a := range r.Addrs {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

func runDNSOp(ctx context.Context, e *env, cfg *config.Config, d *dnsOps, op dnsOp, yes bool) error {
	s, err := openSession(e, cfg, "cutover dns "+op.name+" "+cfg.File)
	if err != nil {
		return err
	}
	defer s.close()
	j := s.journal
	snap := j.Snapshot
	if snap == nil {
		if op.name == "revert" || op.name == "restore-ttl" {
			return withHint(fmt.Errorf("dns %s: the journal in %s holds no snapshot to go back to", op.name, cfg.StateDir), ExitFailure,
				"nothing was changed by cutover; see the records with: cutover dns show %s", cfg.File)
		}
		snap, err = d.Snapshot(ctx)
		if err != nil {
			return err
		}
		if err := scheduler.CheckSnapshot(cfg, snap); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "snapshot: %s\n", snap)
	}
	names := strings.Join(cfg.DNS.Names, ", ")
	if err := consent(e, yes, fmt.Sprintf(op.question, names, config.FormatDuration(cfg.DNS.LoweredTTL)), fmt.Sprintf("cutover dns %s %s --yes", op.name, cfg.File)); err != nil {
		return err
	}
	now := e.now()
	if j.Snapshot == nil {
		j.Snapshot = snap
		j.Note(now, "dns %s: snapshot taken: %s", op.name, snap)
		if err := j.Save(now); err != nil {
			return journalError(cfg, fmt.Errorf("dns %s: %w", op.name, err))
		}
	}
	err = op.do(d, ctx, snap)
	now = e.now()
	if err != nil {
		j.Note(now, "dns %s by hand failed: %v", op.name, err)
		if serr := j.Save(now); serr != nil {
			return journalError(cfg, fmt.Errorf("dns %s: %w; %w", op.name, err, serr))
		}
		return fmt.Errorf("dns %s: %w", op.name, err)
	}
	j.DNS = op.state
	if op.state == scheduler.DNSLowered {
		j.LoweredAt = now
	}
	j.Note(now, "dns %s by hand: done", op.name)
	if err := j.Save(now); err != nil {
		return journalError(cfg, fmt.Errorf("dns %s: done, but %w", op.name, err))
	}
	s.events.Emit(scheduler.Event{Time: now, Kind: "dns-changed", Message: "by hand: " + op.name})
	fmt.Fprintf(e.stdout, "dns %s: done\n", op.name)
	return nil
}
