package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStartSenderValidation(t *testing.T) {
	tests := []struct {
		desc string
		opts SenderOptions
		want string
	}{
		{desc: "no resolver", opts: SenderOptions{}, want: "lab: sender: Resolver is required"},
		{desc: "off-machine resolver", opts: SenderOptions{Resolver: netip.MustParseAddrPort("9.9.9.9:53")}, want: `lab: sender: resolver "9.9.9.9:53" is not on loopback`},
	}
	for _, tc := range tests {
		s, err := StartSender(tc.opts)
		if err == nil {
			s.Stop()
			t.Errorf("%s: StartSender succeeded", tc.desc)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%s: error %q, want %q", tc.desc, err, tc.want)
		}
	}
}

// TestSender moves mail.example.org from old to new while the sender runs, the way a cutover
// does: disable old, point DNS at new, enable new. Nothing the sender saw accepted is lost or
// stored twice, and it follows DNS through the cache.
func TestSender(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	p := NewPair(t, n)
	const ttl = 1
	d := NewDNSLab(t, n, Zone{Origin: "example.org.", TTL: ttl, Minimum: 1, Records: []string{fmt.Sprintf("mail %d IN A %s", ttl, p.Old.Addr)}})
	old, nw := installMail(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := old.Enable(ctx); err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var logLines []string
	s, err := StartSender(SenderOptions{Resolver: d.Resolvers()[0], IDPrefix: "t", Interval: 5 * time.Millisecond,
		Logf: func(f string, a ...any) {
			logMu.Lock()
			logLines = append(logLines, fmt.Sprintf(f, a...))
			logMu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := s.WaitAccepted(ctx, 20); err != nil {
		t.Fatal(err)
	}
	if err := old.Disable(ctx); err != nil {
		t.Fatal(err)
	}
	disabledAt := time.Now()
	time.Sleep(300 * time.Millisecond) // the sender hits a closed port and backs off
	atOld := len(s.Accepted())
	if rc := update(d.Authoritative()[0], "example.org.", "mail.example.org.", p.New.Addr, d.Key); rc != "NOERROR" {
		t.Fatalf("update mail A -> new: %s", rc)
	}
	if err := nw.Enable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitAccepted(ctx, atOld+20); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	dels := s.Deliveries()
	accepted := s.Accepted()
	for i, id := range accepted {
		if want := fmt.Sprintf("t%06d", i+1); id != want || dels[i].ID != id {
			t.Fatalf("accepted[%d] = %s (delivery %s), want %s: ids must be consecutive", i, id, dels[i].ID, want)
		}
	}
	// Old up to the switch, new after, never back.
	switched := slices.IndexFunc(dels, func(d Delivery) bool { return d.Addr == p.New.Addr })
	if switched != atOld {
		t.Errorf("first delivery to new is #%d, want #%d (all before on old)", switched, atOld)
	}
	for i, dl := range dels {
		want := p.Old.Addr
		if i >= atOld {
			want = p.New.Addr
		}
		if dl.Addr != want {
			t.Errorf("delivery %s went to %s, want %s", dl.ID, dl.Addr, want)
		}
	}
	t.Logf("%d on old, %d on new; gap %s after disable", atOld, len(dels)-atOld, dels[atOld].At.Sub(disabledAt).Round(time.Millisecond))
	if f, last := s.Failures(); f == 0 || !strings.Contains(fmt.Sprint(last), "connection refused") && !strings.Contains(fmt.Sprint(last), "no acknowledgement") {
		t.Errorf("failures %d (last %v): want refused attempts while old was disabled", f, last)
	}
	oldIDs, err := MailIDs(p.Old)
	if err != nil {
		t.Fatal(err)
	}
	newIDs, err := MailIDs(p.New)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range accepted {
		where := oldIDs
		if i >= atOld {
			where = newIDs
		}
		if len(where[id]) != 1 || len(oldIDs[id])+len(newIDs[id]) != 1 {
			t.Errorf("%s stored %d times on old, %d on new", id, len(oldIDs[id]), len(newIDs[id]))
		}
	}
	logMu.Lock()
	if !slices.Contains(logLines, fmt.Sprintf("sender: t000001 accepted by %s", p.Old.Addr)) {
		t.Errorf("log lacks the first acceptance: %q", logLines[:min(5, len(logLines))])
	}
	logMu.Unlock()

	t.Run("mail client", func(t *testing.T) {
		read, err := SimulateClient(p.Old, ClientOptions{Read: 5})
		if err != nil {
			t.Fatal(err)
		}
		if len(read.Moved) != 5 || len(read.Deleted) != 0 {
			t.Fatalf("read: moved %d, deleted %d; want 5, 0", len(read.Moved), len(read.Deleted))
		}
		del, err := SimulateClient(p.Old, ClientOptions{Delete: 3, Seed: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(del.Deleted) != 3 || len(del.DeletedIDs) != 3 {
			t.Fatalf("delete: %v (ids %v), want 3 sender messages", del.Deleted, del.DeletedIDs)
		}
		ids, err := MailIDs(p.Old)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range del.DeletedIDs {
			if len(ids[id]) != 0 {
				t.Errorf("deleted %s still at %v", id, ids[id])
			}
		}
		for from, to := range read.Moved {
			if !strings.Contains(from, "/new/") || to != strings.Replace(from, "/new/", "/cur/", 1)+":2,S" {
				t.Errorf("moved %s -> %s", from, to)
			}
		}
		if len(ids) != atOld-3 {
			t.Errorf("old holds %d messages, want %d", len(ids), atOld-3)
		}
		_, err = SimulateClient(p.Old, ClientOptions{Delete: 1000})
		if want := fmt.Sprintf(`lab: host "old": mail client: only %d read messages to delete, 1000 wanted`, 2); err == nil || err.Error() != want {
			t.Errorf("too many deletions: error %v, want %q", err, want)
		}
	})
}
