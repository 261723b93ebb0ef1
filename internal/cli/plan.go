package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/scheduler"
)

// cmdPlan prints the timeline; it changes nothing.
func cmdPlan(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	offline := fs.Bool("offline", false, "")
	asJSON := fs.Bool("json", false, "")
	acceptSlow := fs.Bool("accept-slow-propagation", false, "")
	cfg, err := parseConfig(e, c, fs, args, true)
	if err != nil {
		return err
	}
	p, err := makePlan(ctx, e, cfg, *offline)
	if err != nil {
		return err
	}
	note := selftestNote(cfg)
	if *asJSON {
		if note != "" {
			p.Warnings = append(p.Warnings, note)
		}
		if err := writeJSON(e.stdout, p); err != nil {
			return err
		}
	} else {
		p.Render(e.stdout, time.Local)
		if note != "" {
			fmt.Fprintf(e.stdout, "\nnote: %s\n", note)
		}
	}
	if p.TooLate && !*acceptSlow {
		return tooLate(cfg, p)
	}
	return nil
}

func tooLate(cfg *config.Config, p *scheduler.Plan) error {
	return withHint(fmt.Errorf("plan: too late to lower the TTL before the window: caches may serve the old address until %s",
		p.CachesUntil.UTC().Format("2006-01-02 15:04:05 UTC")), ExitFailure,
		"set cutover_at = %s in %s, or accept a slower switch: cutover run %s --accept-slow-propagation",
		p.EarliestSafe.UTC().Format(time.RFC3339), cfg.File, cfg.File)
}

// makePlan gathers the provider's capabilities and, unless offline, the
// records the authoritative servers serve, and computes the plan.
func makePlan(ctx context.Context, e *env, cfg *config.Config, offline bool) (*scheduler.Plan, error) {
	info, err := providerInfo(cfg)
	if err != nil {
		return nil, err
	}
	in := scheduler.Input{Config: cfg, Provider: info, Now: e.now()}
	if !offline {
		facts, err := observe(ctx, cfg)
		if err != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("plan: %w", context.Cause(ctx)) // a signal, not the resolvers
		}
		if err != nil {
			return nil, withHint(err, ExitFailure, "check [dns] resolvers and authoritative, or plan without DNS: cutover plan %s --offline", cfg.File)
		}
		in.Facts = facts
	}
	p, err := scheduler.MakePlan(in)
	var pe *scheduler.PlanError
	if errors.As(err, &pe) {
		return nil, withHint(err, ExitUsage, "%s", pe.Hint)
	}
	return p, err
}
