package scheduler

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/cutover-dev/cutover/config"
)

// HookRunner runs the configured hooks: on = "local" in sh on this machine,
// on = "old" or "new" through Remote.
type HookRunner struct {
	// Remote runs command on the host with role on ("old" or "new").
	Remote func(ctx context.Context, out io.Writer, on, command string) error
}

// Run runs h, its output to out.
func (r HookRunner) Run(ctx context.Context, out io.Writer, h *config.Hook) error {
	fmt.Fprintf(out, "hook %s on %s: %s\n", h.Name, h.On, h.Run)
	if h.On == config.OnLocal {
		return runLocal(ctx, out, h.Run)
	}
	return r.Remote(ctx, out, h.On, h.Run)
}

// localKillGrace is how long a local hook has between SIGTERM and SIGKILL.
const localKillGrace = 5 * time.Second

// runLocal runs a command in sh with its own process group, killed as a
// whole when ctx ends (SIGTERM, then SIGKILL after localKillGrace).
func runLocal(ctx context.Context, out io.Writer, command string) error {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("hook: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("hook: %q: %w", command, err)
		}
		return nil
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(localKillGrace):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		return fmt.Errorf("hook: %q: stopped: %w", command, context.Cause(ctx))
	}
}
