package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/scheduler"
)

var t0 = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// watchLines are what `cutover watch --json` prints: the authoritative
// server moves once both its A and AAAA are new; the cache's A moves before
// its AAAA was seen at all (which is not a move yet); a summary line and a
// line that is not JSON are ignored.
const watchLines = `{"kind":"change","obs":{"server":"127.0.0.31:53","role":"authoritative","name":"mail.example.org.","type":"A","state":"old","time":"2026-11-25T02:59:00Z"}}
{"kind":"change","obs":{"server":"127.0.0.31:53","role":"authoritative","name":"mail.example.org.","type":"AAAA","state":"old","time":"2026-11-25T02:59:00Z"}}
{"kind":"change","obs":{"server":"127.0.0.41:53","role":"resolver","name":"mail.example.org.","type":"A","state":"new","time":"2026-11-25T03:00:05Z"}}
{"kind":"change","obs":{"server":"127.0.0.31:53","role":"authoritative","name":"mail.example.org.","type":"A","state":"new","time":"2026-11-25T03:00:04Z"}}
{"kind":"change","obs":{"server":"127.0.0.31:53","role":"authoritative","name":"mail.example.org.","type":"AAAA","state":"new","time":"2026-11-25T03:00:04.5Z"}}
{"kind":"change","obs":{"server":"127.0.0.41:53","role":"resolver","name":"mail.example.org.","type":"AAAA","state":"old","time":"2026-11-25T03:00:05Z"}}
{"kind":"change","obs":{"server":"127.0.0.41:53","role":"resolver","name":"mail.example.org.","type":"AAAA","state":"new","time":"2026-11-25T03:00:08Z"}}
{"kind":"summary","report":{"converged":true}}
not json
`

func TestDNSMoves(t *testing.T) {
	got := dnsMoves(strings.NewReader(watchLines))
	want := []dnsMove{{"authoritative", "127.0.0.31:53", at(4500 * time.Millisecond)}, {"resolver", "127.0.0.41:53", at(8 * time.Second)}}
	if len(got) != len(want) {
		t.Fatalf("moves %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Role != want[i].Role || got[i].Server != want[i].Server || !got[i].At.Equal(want[i].At) {
			t.Fatalf("move %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestTimeline(t *testing.T) {
	step := func(n scheduler.StepName, st scheduler.StepState, from, to time.Duration) scheduler.StepRecord {
		return scheduler.StepRecord{Name: n, State: st, Started: at(from), Ended: at(to)}
	}
	j := &scheduler.Journal{Steps: []scheduler.StepRecord{
		step(scheduler.Preflight, scheduler.Done, -90*time.Second, -89*time.Second),
		{Name: scheduler.Prepare, State: scheduler.Skipped},
		step(scheduler.Disable, scheduler.Done, 0, 500*time.Millisecond),
		step(scheduler.FinalSync, scheduler.Done, 500*time.Millisecond, 2500*time.Millisecond),
		step(scheduler.SwapDNS, scheduler.Done, 2500*time.Millisecond, 3*time.Second),
		step(scheduler.AwaitResolvers, scheduler.Done, 3*time.Second, 8*time.Second),
		step(scheduler.Activate, scheduler.Failed, 8*time.Second, 10*time.Second),
		step(scheduler.RestoreTTL, scheduler.Done, 12*time.Second, 12020*time.Millisecond), // after the window: no bar
	}}
	var b bytes.Buffer
	timeline(&b, j, dnsMoves(strings.NewReader(watchLines)), at(11*time.Second)) // the sender reaches new after activate: the window ends then
	want := `timeline (from disable at 03:00:00; the bars span the window, 11s):
  -1m30s     preflight                            1s
  +0s        disable                              500ms     |=                                       |
  +500ms     final-sync                           2s        | ========                               |
  +2.5s      swap-dns                             500ms     |         =                              |
  +3s        await-resolvers                      5s        |          ===================           |
  +4.5s      DNS authoritative 127.0.0.31:53 serves new     |                =                       |
  +8s        activate (failed)                    2s        |                             =======    |
  +8s        DNS resolver 127.0.0.41:53 serves new          |                             =          |
  +11s       the sender's first message reaches new         |                                       =|
  +12s       restore-ttl                          20ms
`
	if b.String() != want {
		t.Fatalf("timeline:\n%s\nwant:\n%s", b.String(), want)
	}
}
