package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/cutover-dev/cutover/config"
)

func init() {
	c := &command{
		name: "validate", args: "FILE", summary: "check a config file; changes nothing",
		help: `Checks FILE and reports every problem at once, each with file:line:column and the
key's full name. Nothing is looked up on the network and nothing is changed anywhere.
Exit 0 when the file is valid, 2 when it is not.`,
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		pos, err := parse(c, fs, args, 1, 1)
		if err != nil {
			return err
		}
		cfg, err := loadConfig(e, pos[0], true)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: valid: %d name(s) move from %s to %s at %s, %d path(s) synced, provider %q (%s)\n",
			pos[0], len(cfg.DNS.Names), cfg.Old.Address, cfg.New.Address, cfg.CutoverAt.UTC().Format("2006-01-02 15:04:05 UTC"),
			len(cfg.Sync), cfg.DNS.Provider, cfg.Provider().Type)
		return nil
	}
	register(c)
}

// loadConfig reads and validates a config file, including each provider
// table. With future set, a cutover_at in the past is a problem. Invalid
// config is a usage error (exit 2).
func loadConfig(e *env, path string, future bool) (*config.Config, error) {
	opts := config.Options{CheckProvider: checkProvider}
	if future {
		opts.Now = e.now()
	}
	if _, err := os.Stat(path); err != nil {
		return nil, &usageError{err: fmt.Errorf("config: %w", err), hint: "cp config.example.toml " + path + " and edit it"}
	}
	cfg, err := config.Load(path, opts)
	var ce *config.Error
	if errors.As(err, &ce) {
		return nil, &usageError{err: err, hint: "fix the lines above, then run: cutover validate " + path}
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}
