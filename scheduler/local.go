package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// localKillGrace is how long a local command has between SIGTERM and SIGKILL.
const localKillGrace = 5 * time.Second

// running is every local command (hook or [notify] command) running now,
// by process group, so that AbortLocal can stop them before cutover exits.
var running struct {
	sync.Mutex
	groups  map[int]bool
	aborted bool // AbortLocal ran: nothing new starts
}

// errAborted is a local command refused because cutover is exiting.
var errAborted = errors.New("cutover is exiting")

// runLocal runs command in sh on this machine, its output to out and env
// its environment, in a process group of its own. When ctx ends, the whole
// group is stopped (SIGTERM, then SIGKILL after grace) and runLocal returns
// only once no process of the group is left, whatever the shell did with
// the signal or left in the background.
func runLocal(ctx context.Context, out io.Writer, command string, env []string, grace time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not started: %w", context.Cause(ctx))
	}
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	running.Lock()
	if running.aborted {
		running.Unlock()
		return fmt.Errorf("not started: %w", errAborted)
	}
	err := cmd.Start()
	if err == nil {
		if running.groups == nil {
			running.groups = map[int]bool{}
		}
		running.groups[cmd.Process.Pid] = true
	}
	running.Unlock()
	if err != nil {
		return err
	}
	pgid := cmd.Process.Pid
	defer func() {
		running.Lock()
		delete(running.groups, pgid)
		running.Unlock()
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		stopGroup(pgid, grace)
		<-done
		return fmt.Errorf("stopped: %w", context.Cause(ctx))
	}
}

// stopGroup sends SIGTERM to process group pgid, SIGKILL to what is left
// of it after grace, and returns once none of its processes is alive.
func stopGroup(pgid int, grace time.Duration) {
	syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for groupAlive(pgid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for groupAlive(pgid) {
		syscall.Kill(-pgid, syscall.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
}

// AbortLocal is for a second signal, just before cutover exits: every
// local command still running (the first signal already sent its group
// SIGTERM) is killed with its whole process group, and AbortLocal returns
// once none of their processes is alive. No local command starts after it.
func AbortLocal() {
	running.Lock()
	running.aborted = true
	groups := make([]int, 0, len(running.groups))
	for g := range running.groups {
		groups = append(groups, g)
	}
	running.Unlock()
	for _, g := range groups {
		stopGroup(g, 0)
	}
}

// groupAlive reports whether a process of group pgid is alive (a zombie,
// dead but not yet reaped, does not count).
func groupAlive(pgid int) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			return true
		}
	}
	return false
}

// localEnv is this process's environment without the variables in hide
// (the secrets the config names), followed by extra.
func localEnv(hide []string, extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(hide, name)
	})
	return append(env, extra...)
}
