package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
	"github.com/cutover-dev/cutover/scheduler"
)

// journalError adds the way out to a journal that belongs to another
// config, a damaged one, and one that could not be saved.
func journalError(cfg *config.Config, err error) error {
	var fe *scheduler.ForeignJournalError
	var de *scheduler.DamagedJournalError
	var se *scheduler.SaveError
	switch {
	case errors.As(err, &fe):
		return withHint(err, ExitFailure, "to go on with that cutover, use its config: cutover status %s; for a separate cutover of %s, give it its own state_dir, or move this journal aside: mv %s %s.other",
			fe.Journal.Config, cfg.File, cfg.StateDir, cfg.StateDir)
	case errors.As(err, &de):
		return withHint(err, ExitFailure, "it is the record of what cutover changed: repair it by hand or restore it from a backup; to start over (only if nothing was changed): mv %s %s.damaged",
			cfg.StateDir, cfg.StateDir)
	case errors.As(err, &se):
		hint := fmt.Sprintf("make room in %s (or fix the cause), then see the journal: cutover status %s; go on with: cutover run %s", cfg.StateDir, cfg.File, cfg.File)
		if se.Snapshot != nil {
			hint += fmt.Sprintf("; or undo the DNS change: cutover dns revert %s, or by hand set %s", cfg.File, records(se.Snapshot))
		}
		return withHint(err, ExitFailure, "%s", hint)
	}
	return err
}

// records lists a snapshot's records as an operator would type them.
func records(s *dnsrec.Snapshot) string {
	var out []string
	for _, n := range s.Names {
		for _, rr := range n.Sets() {
			if !rr.Exists() {
				out = append(out, fmt.Sprintf("%s %s (none)", n.Name, rr.Type))
				continue
			}
			out = append(out, fmt.Sprintf("%s %s %s TTL %s", n.Name, rr.Type, addrs(rr.RRset), config.FormatDuration(rr.TTL)))
		}
	}
	return strings.Join(out, ", ")
}
