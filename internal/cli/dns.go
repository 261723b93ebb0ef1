package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/scheduler"
)

// dnsQuestions are the consent questions of the DNS changes run by hand
// (names, lowered TTL).
var dnsQuestions = map[scheduler.DNSChange]string{
	scheduler.ChangeLowerTTL:   "Lower the TTL of %s to %s?",
	scheduler.ChangeSwap:       "Point %s at the new host (TTL %s, never above the one served)?",
	scheduler.ChangeRestoreTTL: "Put the original TTL of %s back (now %s)?",
	scheduler.ChangeRevert:     "Revert %s to the snapshot (TTL now %s)?",
}

// cmdDNS shows the records, runs one DNS step by hand, or the selftest.
func cmdDNS(ctx context.Context, e *env, c *command, args []string) error {
	if len(args) > 0 && args[0] == "selftest" {
		return cmdSelftest(ctx, e, c, args[1:])
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	yes := fs.Bool("yes", false, "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parse(c, fs, args, 2, 2)
	if err != nil {
		return err
	}
	sub := pos[0]
	op := scheduler.DNSChange(sub)
	_, known := dnsQuestions[op]
	if sub != "show" && !known {
		return &usageError{err: fmt.Errorf("dns: unknown subcommand %q (valid: show, lower-ttl, swap, restore-ttl, revert, selftest)", sub), hint: "cutover help dns"}
	}
	if *asJSON && sub != "show" {
		return &usageError{err: fmt.Errorf("dns: --json is for dns show only"), hint: "cutover dns show " + pos[1] + " --json"}
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
		if *asJSON {
			return writeJSON(e.stdout, recordsJSON{Zone: snap.Zone, Names: toSnapshot(snap).Names})
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "NAME\tTYPE\tTTL\tVALUES\n")
		for _, n := range snap.Names {
			for _, rr := range n.Sets() {
				if !rr.Exists() {
					fmt.Fprintf(tw, "%s\t%s\t-\t(none)\n", n.Name, rr.Type)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, rr.Type, config.FormatDuration(rr.TTL), addrs(rr.RRset))
			}
		}
		return tw.Flush()
	}
	if err := refuseTestNow(); err != nil {
		return err
	}
	return runDNSOp(ctx, e, cfg, d, op, *yes)
}

func addrs(r dnsrec.RRset) string {
	s := make([]string, len(r.Addrs))
	for i, a := range r.Addrs {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}

// runDNSOp runs one change by hand through the engine, which journals it.
func runDNSOp(ctx context.Context, e *env, cfg *config.Config, d *dnsOps, op scheduler.DNSChange, yes bool) error {
	s, err := openSession(e, cfg, "cutover dns "+string(op)+" "+cfg.File)
	if err != nil {
		return err
	}
	defer s.close()
	eng := &scheduler.Engine{Config: cfg, Journal: s.journal, DNS: d, Clock: scheduler.SystemClock{}, Out: e.stdout, Events: s.events}
	question := fmt.Sprintf(dnsQuestions[op], strings.Join(cfg.DNS.Names, ", "), config.FormatDuration(cfg.DNS.LoweredTTL))
	err = eng.ChangeDNS(ctx, op, func() error {
		return consent(e, yes, question, fmt.Sprintf("cutover dns %s %s --yes", op, cfg.File))
	})
	if errors.Is(err, scheduler.ErrNoSnapshot) {
		return withHint(fmt.Errorf("dns %s: the journal in %s holds no snapshot to go back to", op, cfg.StateDir), ExitFailure,
			"nothing was changed by cutover; see the records with: cutover dns show %s", cfg.File)
	}
	if err != nil {
		return journalError(cfg, err)
	}
	fmt.Fprintf(e.stdout, "dns %s: done\n", op)
	return nil
}
