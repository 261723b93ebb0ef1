package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/cutover-dev/cutover/config"
)

// cmdValidate checks a config file and prints what it describes.
func cmdValidate(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	cfg, err := parseConfig(e, c, fs, args, true)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: valid: %d name(s) move from %s to %s at %s, %d path(s) synced, provider %q (%s)\n",
		cfg.File, len(cfg.DNS.Names), cfg.Old.Address, cfg.New.Address, cfg.CutoverAt.UTC().Format("2006-01-02 15:04:05 UTC"),
		len(cfg.Sync), cfg.DNS.Provider, cfg.Provider().Type)
	return nil
}

// parseConfig parses the command line of a command whose one argument is
// the config file, and loads that file as loadConfig does.
func parseConfig(e *env, c *command, fs *flag.FlagSet, args []string, future bool) (*config.Config, error) {
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return nil, err
	}
	return loadConfig(e, pos[0], future)
}

// loadConfig reads and validates a config file, including each provider
// table, and prints its warnings on stderr. With future set, a cutover_at
// in the past is a problem. Invalid config is a usage error (exit 2).
func loadConfig(e *env, path string, future bool) (*config.Config, error) {
	opts := config.Options{CheckProvider: checkProvider}
	if future {
		opts.Now = e.now()
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, &usageError{err: fmt.Errorf("config: %w", err), hint: "cp config.example.toml " + path + " and edit it"}
	}
	cfg, err := config.Load(path, opts)
	var ce *config.Error
	switch {
	case errors.Is(err, config.ErrUnusableFile):
		return nil, &usageError{err: err, hint: "give the path of a regular TOML file of at most 1 MiB that cutover can read, then run: cutover validate FILE"}
	case errors.As(err, &ce):
		return nil, &usageError{err: err, hint: "fix the lines above, then run: cutover validate " + path}
	case err != nil:
		return nil, err
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(e.stderr, "cutover: warning: config: %s\n", w)
	}
	return cfg, nil
}
