package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Event is one line of the event log and what [notify] command receives.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // step-started, step-done, step-failed, step-skipped, step-interrupted, waiting, dns-snapshot, dns-changed, propagation, rollback-started, rollback-done, rollback-failed, run-done
	Step    StepName  `json:"step,omitempty"`
	State   StepState `json:"state,omitempty"`
	Message string    `json:"message,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// EventLog appends events as JSON lines to state_dir/events.jsonl and runs
// the [notify] command for each step change.
type EventLog struct {
	mu     sync.Mutex
	f      *os.File
	notify string
	hide   []string  // environment variables notify must not see
	warn   io.Writer // where notify failures are reported
}

// OpenEventLog opens (creating, 0600) the event log in dir. notify is the
// [notify] command ("" for none), run without the environment variables
// in hide (the secrets the config names); its failures are reported on warn.
func OpenEventLog(dir, notify string, hide []string, warn io.Writer) (*EventLog, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("scheduler: state dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, EventsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("scheduler: event log: %w", err)
	}
	return &EventLog{f: f, notify: notify, hide: hide, warn: warn}, nil
}

// Close closes the log.
func (l *EventLog) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	return l.f.Close()
}

// notified are the kinds that run the notify command: step changes, DNS
// changes and rollbacks, not the frequent progress events.
var notified = map[string]bool{
	"step-started": true, "step-done": true, "step-failed": true, "step-interrupted": true,
	"dns-changed": true, "rollback-started": true, "rollback-done": true, "rollback-failed": true, "run-done": true,
}

// notifyTimeout bounds one run of the notify command.
const notifyTimeout = 30 * time.Second

// Emit writes ev and, for step changes, runs the notify command with the
// event in its environment (CUTOVER_EVENT as JSON, plus CUTOVER_EVENT_KIND,
// CUTOVER_STEP, CUTOVER_STATE, CUTOVER_MESSAGE), stopped with its process
// group after notifyTimeout. It never fails the run.
func (l *EventLog) Emit(ev Event) {
	data, err := json.Marshal(ev)
	if err != nil {
		return
	}
	l.mu.Lock()
	_, werr := l.f.Write(append(data, '\n'))
	l.mu.Unlock()
	if werr != nil && l.warn != nil {
		fmt.Fprintf(l.warn, "cutover: warning: event log: %v\n", werr)
	}
	if l.notify == "" || !notified[ev.Kind] {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
	defer cancel()
	msg := ev.Message
	if ev.Error != "" {
		msg = ev.Error
	}
	env := localEnv(l.hide,
		"CUTOVER_EVENT="+string(data),
		"CUTOVER_EVENT_KIND="+ev.Kind,
		"CUTOVER_STEP="+string(ev.Step),
		"CUTOVER_STATE="+string(ev.State),
		"CUTOVER_MESSAGE="+msg,
	)
	var out bytes.Buffer
	if err := runLocal(ctx, &out, l.notify, env, localKillGrace); err != nil && l.warn != nil {
		fmt.Fprintf(l.warn, "cutover: warning: [notify] command failed for %s: %v: %s\n", ev.Kind, err, tailString(out.Bytes(), 200))
	}
}

func tailString(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
