package scheduler

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// FaultEnv is the environment variable that injects a crash, for tests
// only: "before:STEP", "during:STEP" or "after:STEP". The process kills
// itself with SIGKILL at that point, so nothing after it runs, not even
// deferred cleanup, exactly as after a power cut or an OOM kill.
//
//   - before:STEP  after the journal says the previous step is done
//   - during:STEP  while STEP's action runs: after CUTOVER_FAULT_DELAY
//     (default 0) or when the action returns, whichever is first, and
//     before its outcome is journaled
//   - after:STEP   right after the journal says STEP is done
const (
	FaultEnv      = "CUTOVER_FAULT"
	FaultDelayEnv = "CUTOVER_FAULT_DELAY"
)

// Fault points.
const (
	FaultBefore = "before"
	FaultDuring = "during"
	FaultAfter  = "after"
)

// Fault is a parsed CUTOVER_FAULT.
type Fault struct {
	When  string
	Step  StepName
	Delay time.Duration
	// Crash ends the process; nil means SIGKILL to itself.
	Crash func()
}

// FaultFromEnv reads CUTOVER_FAULT and CUTOVER_FAULT_DELAY.
func FaultFromEnv() (Fault, error) {
	v := os.Getenv(FaultEnv)
	if v == "" {
		return Fault{}, nil
	}
	when, step, ok := strings.Cut(v, ":")
	if !ok || (when != FaultBefore && when != FaultDuring && when != FaultAfter) {
		return Fault{}, fmt.Errorf("scheduler: %s=%q: want before:STEP, during:STEP or after:STEP", FaultEnv, v)
	}
	if _, ok := Info(StepName(step)); !ok {
		return Fault{}, fmt.Errorf("scheduler: %s=%q: unknown step %q", FaultEnv, v, step)
	}
	f := Fault{When: when, Step: StepName(step)}
	if d := os.Getenv(FaultDelayEnv); d != "" {
		delay, err := time.ParseDuration(d)
		if err != nil {
			return Fault{}, fmt.Errorf("scheduler: %s=%q: %w", FaultDelayEnv, d, err)
		}
		f.Delay = delay
	}
	return f, nil
}

func (f Fault) crash() {
	fmt.Fprintf(os.Stderr, "cutover: %s=%s:%s: crashing now\n", FaultEnv, f.When, f.Step)
	if f.Crash != nil {
		f.Crash()
		return
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL is not delivered synchronously; never go on
}

// fault crashes the process if CUTOVER_FAULT names this point.
func (e *Engine) fault(when string, step StepName) {
	if e.Fault.Step == step && e.Fault.When == when {
		e.Fault.crash()
	}
}

// faultDuring arms a during:STEP fault; the returned func fires it (if
// the delay has not yet) and must be called when the action returns.
func (e *Engine) faultDuring(step StepName) (actionReturned func()) {
	if e.Fault.Step != step || e.Fault.When != FaultDuring {
		return func() {}
	}
	t := time.AfterFunc(e.Fault.Delay, e.Fault.crash)
	return func() {
		if t.Stop() {
			e.Fault.crash()
		}
	}
}
