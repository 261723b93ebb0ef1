package scheduler

import (
	"context"
	"errors"
	"fmt"

	"github.com/cutover-dev/cutover/dnsrec"
)

// DNSChange is one DNS operation run by hand (cutover dns NAME), outside
// the steps.
type DNSChange string

// The DNS changes that can be run by hand.
const (
	ChangeLowerTTL   DNSChange = "lower-ttl"
	ChangeSwap       DNSChange = "swap"
	ChangeRestoreTTL DNSChange = "restore-ttl"
	ChangeRevert     DNSChange = "revert"
)

// dnsChanges says, for each change, what it calls and what the zone holds
// after it.
var dnsChanges = map[DNSChange]struct {
	do    func(DNS, context.Context, *dnsrec.Snapshot) error
	after DNSState
}{
	ChangeLowerTTL:   {DNS.LowerTTL, DNSLowered},
	ChangeSwap:       {DNS.Swap, DNSSwapped},
	ChangeRestoreTTL: {DNS.RestoreTTL, DNSRestored},
	ChangeRevert:     {DNS.Revert, DNSReverted},
}

// ErrNoSnapshot is a change that goes back to the snapshot (restore-ttl,
// revert) while the journal holds none: cutover changed nothing yet.
var ErrNoSnapshot = errors.New("scheduler: the journal holds no snapshot to go back to")

// ChangeDNS runs one DNS change by hand and journals it. Without a snapshot
// in the journal it first takes one (refusing a zone that does not point at
// old) and prints it; then confirm decides whether anything is changed at
// all. The snapshot, the outcome and the DNS state are journaled; the
// change is logged in the journal and the event log.
func (e *Engine) ChangeDNS(ctx context.Context, c DNSChange, confirm func() error) error {
	op, ok := dnsChanges[c]
	if !ok {
		return fmt.Errorf("scheduler: unknown DNS change %q", c)
	}
	j := e.Journal
	snap := j.Snapshot
	if snap == nil {
		if op.after == DNSRestored || op.after == DNSReverted {
			return ErrNoSnapshot
		}
		var err error
		if snap, err = e.takeSnapshot(ctx); err != nil {
			return err
		}
		fmt.Fprintf(e.Out, "snapshot: %s\n", snap)
	}
	if err := confirm(); err != nil {
		return err
	}
	if j.Snapshot == nil {
		j.Snapshot = snap
		j.Note(e.Clock.Now(), "dns %s: snapshot taken: %s", c, snap)
		if err := e.save(); err != nil {
			return err
		}
	}
	if err := op.do(e.DNS, ctx, snap); err != nil {
		j.Note(e.Clock.Now(), "dns %s by hand failed: %v", c, err)
		if serr := e.save(); serr != nil {
			return errors.Join(err, serr)
		}
		return fmt.Errorf("dns %s: %w", c, err)
	}
	e.setDNS(op.after)
	j.Note(e.Clock.Now(), "dns %s by hand: done", c)
	if err := e.save(); err != nil {
		return err
	}
	e.event(Event{Kind: "dns-changed", Message: "by hand: " + string(c)})
	return nil
}
