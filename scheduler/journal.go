package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/dnsrec"
)

// StepState is where a step stands in the journal.
type StepState string

// Step states. A step is Running in the journal from the moment its action
// starts until its outcome is written: a Running step found at startup was
// interrupted.
const (
	Pending StepState = "pending"
	Running StepState = "running"
	Done    StepState = "done"
	Failed  StepState = "failed"
	Skipped StepState = "skipped"
)

// DNSState is what the zone holds, as far as cutover changed it.
type DNSState string

// DNS states, in the order a cutover moves through them.
const (
	DNSOriginal DNSState = "original" // as in the snapshot
	DNSLowered  DNSState = "lowered"  // old addresses, lowered TTL
	DNSSwapped  DNSState = "swapped"  // new addresses, lowered TTL
	DNSRestored DNSState = "restored" // new addresses, original TTL
	DNSReverted DNSState = "reverted" // back to the snapshot after a rollback
)

// StepRecord is one step in the journal.
type StepRecord struct {
	Name     StepName  `json:"name"`
	State    StepState `json:"state"`
	Started  time.Time `json:"started,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`
	Attempts int       `json:"attempts,omitempty"`
	Note     string    `json:"note,omitempty"`
	Error    string    `json:"error,omitempty"`
	Tail     []string  `json:"tail,omitempty"` // last lines of output
}

// RollbackRecord is a rollback in the journal.
type RollbackRecord struct {
	Reason  string    `json:"reason"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	Actions []string  `json:"actions,omitempty"` // what was done, in order
	Error   string    `json:"error,omitempty"`   // empty once it succeeded
}

// Outcome of a whole run.
const (
	OutcomeDone       = "done"
	OutcomeRolledBack = "rolled-back"
	OutcomeStopped    = "stopped" // failed with on_failure = stop, or a rollback that failed
)

// Journal is the durable record of a cutover. It is rewritten atomically
// after every transition, before the next action starts, so that after a
// crash it says exactly what was done.
type Journal struct {
	Version int `json:"version"`
	// Identity is the config the journal belongs to (see OpenJournal).
	Identity
	CutoverAt time.Time `json:"cutover_at"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	// AcceptSlow records that the operator accepted a window opening before
	// every cache could hold the lowered TTL (--accept-slow-propagation).
	AcceptSlow bool             `json:"accept_slow,omitempty"`
	Snapshot   *dnsrec.Snapshot `json:"snapshot,omitempty"` // taken once, never overwritten: what rollback restores
	DNS        DNSState         `json:"dns"`
	LoweredAt  time.Time        `json:"lowered_at,omitzero"` // when lower-ttl finished
	Steps      []StepRecord     `json:"steps"`
	Rollback   *RollbackRecord  `json:"rollback,omitempty"`
	Outcome    string           `json:"outcome,omitempty"`
	Log        []string         `json:"log,omitempty"` // manual DNS operations and other notes, timestamped

	// Selftests are the runs of cutover dns selftest (see RecordSelftest).
	Selftests []SelftestRecord `json:"selftests,omitempty"`

	path  string
	write func(path string, data []byte) error // nil: writeAtomic; the seam for tests of a full disk
}

const journalVersion = 1

// JournalFile, LockFile and EventsFile are the names of the files in state_dir.
const (
	JournalFile = "journal.json"
	LockFile    = "lock"
	EventsFile  = "events.jsonl"
)

// NewJournal is an empty journal for a config, not yet written.
func NewJournal(dir, config string, cutoverAt time.Time, old, new netip.Addr, now time.Time) *Journal {
	j := &Journal{Version: journalVersion, Identity: Identity{Config: config, Old: old, New: new}, CutoverAt: cutoverAt,
		Created: now, Updated: now, DNS: DNSOriginal, path: filepath.Join(dir, JournalFile)}
	j.Steps = pendingSteps(Steps)
	return j
}

// pendingSteps is a journal's list of steps before anything ran.
func pendingSteps(steps []Step) []StepRecord {
	out := make([]StepRecord, len(steps))
	for i, s := range steps {
		out[i] = StepRecord{Name: s.Name, State: Pending}
	}
	return out
}

// conform gives the journal the steps of cfg's cutover (with or without
// [bridge]) while nothing was done yet; once something was, a config that
// asks for the other mode is refused.
func (j *Journal) conform(cfg *config.Config) error {
	want := table(cfg)
	same := len(want) == len(j.Steps)
	for i := 0; same && i < len(want); i++ {
		same = want[i].Name == j.Steps[i].Name
	}
	if same {
		return nil
	}
	if !j.Started() {
		j.Steps = pendingSteps(want)
		return nil
	}
	mode := func(bridge bool) string {
		if bridge {
			return "with [bridge] (a handover through old)"
		}
		return "without [bridge]"
	}
	return fmt.Errorf("scheduler: journal %q is of a cutover %s, but %s is %s: finish it (or roll it back) with the config it was started with",
		j.path, mode(j.Step(Bridge) != nil), cfg.File, mode(cfg.Bridge != nil))
}

// ErrNoJournal is returned by LoadJournal when nothing was journaled yet.
var ErrNoJournal = errors.New("scheduler: no journal")

// LoadJournal reads the journal in dir and checks that it has the shape
// this cutover writes (see parseJournal); it does not check what config it
// belongs to: commands open a journal with OpenJournal or ReadJournal.
func LoadJournal(dir string) (*Journal, error) {
	path := filepath.Join(dir, JournalFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %q", ErrNoJournal, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("scheduler: journal: %w", err)
	}
	j, err := parseJournal(data)
	var ve *versionError
	if errors.As(err, &ve) {
		return nil, fmt.Errorf("scheduler: journal %q has version %d; this cutover reads version %d", path, ve.version, journalVersion)
	}
	if err != nil {
		return nil, &DamagedJournalError{Path: path, Err: err}
	}
	j.path = path
	return j, nil
}

// Path is where the journal lives.
func (j *Journal) Path() string { return j.path }

// Step returns the record of a step (nil for an unknown name).
func (j *Journal) Step(name StepName) *StepRecord {
	for i := range j.Steps {
		if j.Steps[i].Name == name {
			return &j.Steps[i]
		}
	}
	return nil
}

// Started reports whether anything was done yet.
func (j *Journal) Started() bool {
	for _, s := range j.Steps {
		if s.State != Pending {
			return true
		}
	}
	return j.Snapshot != nil || j.Rollback != nil || len(j.Log) > 0
}

// Finished is when the cutover's last step ended: the time a finished
// cutover finished. (Updated is when the journal was last written, which a
// later save moves on: a note, or the adoption of a journal from before
// identities.) Zero when no step has ended.
func (j *Journal) Finished() time.Time {
	var t time.Time
	for _, s := range j.Steps {
		if s.Ended.After(t) {
			t = s.Ended
		}
	}
	return t
}

// Note appends a timestamped line to the journal's log (not yet saved).
func (j *Journal) Note(now time.Time, format string, args ...any) {
	j.Log = append(j.Log, now.UTC().Format(time.RFC3339)+" "+fmt.Sprintf(format, args...))
}

// saveRetries are the pauses between attempts to save the journal: a
// full disk or a passing I/O error gets a few brief chances.
var saveRetries = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, time.Second}

// Save writes the journal atomically: a temp file in the same directory,
// fsynced, renamed over the journal, and the directory fsynced, mode 0600.
// It tries again a few times, briefly; after that the error is a
// *SaveError that says what cutover has changed so far.
func (j *Journal) Save(now time.Time) error {
	j.Updated = now
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("scheduler: journal: %w", err)
	}
	data = append(data, '\n')
	write := j.write
	if write == nil {
		write = writeAtomic
	}
	attempts := 0
	for {
		attempts++
		if err = write(j.path, data); err == nil {
			return nil
		}
		if attempts > len(saveRetries) {
			se := &SaveError{Path: j.path, Attempts: attempts, Err: err}
			var dns bool
			if se.Changed, dns = j.changed(); dns {
				se.Snapshot = j.Snapshot
			}
			return se
		}
		time.Sleep(saveRetries[attempts-1])
	}
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".journal-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %q: %w", dir, err)
	}
	return nil
}

// Lock is an exclusive hold on a state directory. The lock file names its
// holder so a second run can say who is running.
type Lock struct{ f *os.File }

// LockedError is returned when another process holds the lock.
type LockedError struct {
	Dir    string
	Holder string // "pid 1234 on host since 2026-...: cutover run ..."
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("scheduler: %q is in use by another cutover (%s)", e.Dir, e.Holder)
}

// AcquireLock locks dir (creating it, 0700) for this process. The lock is
// an flock: it is released by the kernel when the process dies, so a crash
// never leaves a stale lock behind.
func AcquireLock(dir, what string, now time.Time) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("scheduler: state dir: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("scheduler: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "holder unknown"
			}
			return nil, &LockedError{Dir: dir, Holder: h}
		}
		return nil, fmt.Errorf("scheduler: lock %q: %w", path, err)
	}
	host, _ := os.Hostname()
	info := fmt.Sprintf("pid %d on %s since %s: %s\n", os.Getpid(), host, now.UTC().Format(time.RFC3339), what)
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(info), 0)
	}
	return &Lock{f: f}, nil
}

// Release gives the lock up.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close() // closing drops the flock
	l.f = nil
	return err
}
