package scheduler

import "time"

// Clock is the engine's view of time, replaceable in tests.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// SystemClock reads the wall clock. Now strips the monotonic reading, so
// comparisons follow the wall clock: after a suspend or a clock jump the
// engine sees the real time, not the time the process was running.
type SystemClock struct{}

func (SystemClock) Now() time.Time                         { return time.Now().Round(0) }
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
