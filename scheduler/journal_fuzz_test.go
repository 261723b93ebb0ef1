package scheduler

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzJournal feeds the journal reader arbitrary bytes. It must never
// panic; what it accepts must be a journal the rest of cutover can use
// (every step known, in order) and must survive a save and a reload
// unchanged. The seed corpus is in testdata/fuzz/FuzzJournal; run with
// go test -fuzz FuzzJournal ./scheduler.
func FuzzJournal(f *testing.F) {
	f.Add([]byte(legacyJournal))
	f.Add([]byte(`{"version":1,"foo":"bar"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := parseJournal(data)
		if err != nil {
			return
		}
		if len(j.Steps) != len(Steps) {
			t.Fatalf("accepted with %d steps, want %d", len(j.Steps), len(Steps))
		}
		for i, s := range Steps {
			if j.Steps[i].Name != s.Name {
				t.Fatalf("steps[%d] is %s, want %s", i, j.Steps[i].Name, s.Name)
			}
		}
		j.Started()
		j.changed()
		if j.Snapshot != nil {
			_ = j.Snapshot.String()
			j.Snapshot.MaxTTL()
		}
		saved, err := json.Marshal(j)
		if err != nil {
			// A journal that reads but cannot be written back would stop
			// a run at its first save.
			t.Fatalf("accepted but cannot be saved: %v", err)
		}
		again, err := parseJournal(saved)
		if err != nil {
			t.Fatalf("saved journal does not read back: %v\n%s", err, saved)
		}
		resaved, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(saved, resaved) {
			t.Fatalf("journal changed on a save and reload:\n%s\n%s", saved, resaved)
		}
	})
}
