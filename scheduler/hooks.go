package scheduler

import (
	"context"
	"fmt"
	"io"

	"github.com/cutover-dev/cutover/config"
)

// HookRunner runs the configured hooks: on = "local" in sh on this machine,
// on = "old" or "new" through Remote.
type HookRunner struct {
	// Remote runs command on the host with role on ("old" or "new").
	Remote func(ctx context.Context, out io.Writer, on, command string) error
	// Hide names the environment variables a local hook must not see: the
	// secrets the config names (config.Config.SecretEnv).
	Hide []string
}

// Run runs h, its output to out. A local hook that ctx stops is stopped
// with its whole process group (see runLocal).
func (r HookRunner) Run(ctx context.Context, out io.Writer, h *config.Hook) error {
	fmt.Fprintf(out, "hook %s on %s: %s\n", h.Name, h.On, h.Run)
	if h.On == config.OnLocal {
		if err := runLocal(ctx, out, h.Run, localEnv(r.Hide), localKillGrace); err != nil {
			return fmt.Errorf("hook: %q: %w", h.Run, err)
		}
		return nil
	}
	return r.Remote(ctx, out, h.On, h.Run)
}
