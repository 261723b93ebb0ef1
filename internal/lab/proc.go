package lab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a server gets between SIGTERM and SIGKILL.
const stopGrace = 3 * time.Second

// Children are started from one goroutine locked to its own OS thread that never exits, so that
// Pdeathsig (which fires when the *thread* that forked the child exits) fires only when this
// process dies: a killed test run takes its servers with it.
var (
	spawnOnce sync.Once
	spawnCh   chan spawnReq
)

type spawnReq struct {
	cmd *exec.Cmd
	res chan error
}

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range spawnCh {
				r.res <- r.cmd.Start()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	res := make(chan error, 1)
	spawnCh <- spawnReq{cmd, res}
	return <-res
}

// liveChildren holds the PIDs this process started and has not reaped, so that stale-state
// cleanup never kills a server of its own.
var liveChildren sync.Map // int -> struct{}

// proc is one started server process.
type proc struct {
	name    string // for errors: `named 127.100.0.31`
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
	record  string // state record path ("" if none)
}

// startProc starts argv with stdout and stderr appended to logPath, in its own process group.
func startProc(name, logPath string, argv []string, dir string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lab: %s: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("lab: %s: start %q: %w", name, argv[0], err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	liveChildren.Store(cmd.Process.Pid, struct{}{})
	go func() {
		p.waitErr = cmd.Wait()
		liveChildren.Delete(cmd.Process.Pid)
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitErr describes how the process ended, with the tail of its log.
func (p *proc) exitErr() error {
	return fmt.Errorf("lab: %s exited early (%v)%s", p.name, p.waitErr, logTail(p.logPath))
}

// stop sends SIGTERM to the process group, SIGKILL after grace, and waits for the process.
// It is safe after the process has died on its own.
func (p *proc) stop(grace time.Duration) {
	if !p.exited() {
		_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
	}
	// Whatever is left of the group (the leader may be gone while members live on).
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
	if p.record != "" {
		_ = os.Remove(p.record)
	}
}

// logTail returns the last lines of a log file, formatted for inclusion in an error.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("; no log: %v", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "; log " + path + " is empty"
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Sprintf("; last lines of %s:\n\t%s", path, strings.Join(lines, "\n\t"))
}

// procStart returns the start time of pid (field 22 of /proc/PID/stat, in clock ticks) and
// whether it is a zombie.
func procStart(pid int) (start uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("lab: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false, fmt.Errorf("lab: malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z" || f[0] == "X", err
}

// mntNS returns the mount namespace link of pid, e.g. "mnt:[4026532301]".
func mntNS(pid int) (string, error) { return os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt") }

// nsMembers lists the live (non-zombie) processes in namespace ns, a link such as
// "mnt:[4026532301]" or "net:[4026532305]" (its kind names the /proc/PID/ns entry).
func nsMembers(ns string) []int {
	kind, _, ok := strings.Cut(ns, ":")
	if !ok {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/" + kind); err != nil || l != ns {
			continue
		}
		if _, zombie, err := procStart(pid); err != nil || zombie {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// killNamespace terminates every process in namespace ns (see nsMembers): SIGTERM, then SIGKILL after
// grace, repeated until none is left or the deadline passes.
func killNamespace(ns string, grace time.Duration) error {
	if ns == "" {
		return nil
	}
	for _, pid := range nsMembers(ns) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	// Empty means empty on two scans in a row: a scan of /proc can miss a process that is being
	// forked or exec'd at that moment (sshd forks a child per connection).
	empty := func() bool {
		if len(nsMembers(ns)) > 0 {
			return false
		}
		time.Sleep(20 * time.Millisecond)
		return len(nsMembers(ns)) == 0
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if empty() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		left := nsMembers(ns)
		if len(left) == 0 && empty() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: processes %v of namespace %s survived SIGKILL", left, ns)
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stateRecord is what the lab remembers on disk about a started server, so that the next
// reservation of its block can clean up after a run that was killed.
type stateRecord struct {
	Kind  string `json:"kind"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	Dir   string `json:"dir"`
	MntNS string `json:"mnt_ns,omitempty"`
}

// writeRecord stores rec in the state directory of the block of addr and returns its path.
func writeRecord(block string, rec stateRecord) (string, error) {
	d := filepath.Join(lockDir, block+".d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("lab: state dir: %w", err)
	}
	if rec.Start == 0 {
		if s, _, err := procStart(rec.PID); err == nil {
			rec.Start = s
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	p := filepath.Join(d, fmt.Sprintf("%s-%d.json", rec.Kind, rec.PID))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return "", fmt.Errorf("lab: state record: %w", err)
	}
	return p, nil
}

// cleanStale kills what killed runs left behind in block (processes, namespaces, temp dirs),
// removes their records, and returns what it did (for tests and logs).
func cleanStale(block string) []string {
	d := filepath.Join(lockDir, block+".d")
	ents, err := os.ReadDir(d)
	if err != nil {
		return nil
	}
	var did []string
	for _, e := range ents {
		p := filepath.Join(d, e.Name())
		b, err := os.ReadFile(p)
		var rec stateRecord
		if err != nil || json.Unmarshal(b, &rec) != nil {
			_ = os.Remove(p)
			continue
		}
		if _, mine := liveChildren.Load(rec.PID); mine {
			continue
		}
		if start, zombie, err := procStart(rec.PID); err == nil && !zombie && start == rec.Start {
			_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
			_ = syscall.Kill(rec.PID, syscall.SIGKILL)
			did = append(did, fmt.Sprintf("killed %s pid %d", rec.Kind, rec.PID))
		}
		if rec.MntNS != "" {
			// Only a namespace whose members still show our mounts: a dead namespace's inode
			// number may have been reused by an unrelated one.
			for _, pid := range nsMembers(rec.MntNS) {
				mi, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
				if err == nil && rec.Dir != "" && bytes.Contains(mi, []byte(filepath.Base(rec.Dir))) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					did = append(did, fmt.Sprintf("killed pid %d of %s namespace", pid, rec.Kind))
				}
			}
		}
		if isLabTempDir(rec.Dir) {
			if err := os.RemoveAll(rec.Dir); err == nil {
				did = append(did, "removed "+rec.Dir)
			}
		}
		_ = os.Remove(p)
	}
	return did
}

// tempPrefix starts the name of every per-instance directory.
const tempPrefix = "cutover-lab-"

func makeTempDir(kind string) (string, error) {
	d, err := os.MkdirTemp("", tempPrefix+kind+"-")
	if err != nil {
		return "", fmt.Errorf("lab: temp dir: %w", err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		return "", fmt.Errorf("lab: temp dir: %w", err)
	}
	return d, nil
}

// isLabTempDir guards RemoveAll of recorded paths.
func isLabTempDir(d string) bool {
	return d != "" && filepath.IsAbs(d) && strings.HasPrefix(filepath.Base(d), tempPrefix) &&
		filepath.Clean(d) == d && strings.Count(d, "/") >= 2
}
