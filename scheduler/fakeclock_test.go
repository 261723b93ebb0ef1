package scheduler

import (
	"sync"
	"time"
)

// FakeClock is a Clock that moves only when told to. Like a real machine
// it has two clocks: the wall clock that Now reads, which Jump can move
// anywhere, and the elapsed time that timers (After) run on, which only
// Advance moves.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	elapsed time.Duration
	waiters []fakeWaiter
	// OnAfter, if set, is called (without the lock) each time someone
	// starts waiting: tests use it to advance the clock.
	OnAfter func(c *FakeClock, d time.Duration)
}

type fakeWaiter struct {
	at time.Duration // elapsed time at which it fires
	ch chan time.Time
}

// NewFakeClock starts a fake clock at t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *FakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{at: c.elapsed + d, ch: ch})
	hook := c.OnAfter
	c.mu.Unlock()
	if hook != nil {
		hook(c, d)
	}
	return ch
}

// Jump sets the wall clock to t (also backwards) without time passing,
// as when someone sets the clock.
func (c *FakeClock) Jump(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance lets d pass: both clocks move and due timers fire.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.elapsed += d
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at <= c.elapsed {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}
