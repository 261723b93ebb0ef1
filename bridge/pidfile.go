package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Marker is the part of a forwarder's command line that tells it from any
// other process that may have taken its pid since.
const Marker = "bridge\x00serve\x00"

// Running reports the pid of the forwarder that pidfile names, if that
// process is alive and its command line is a forwarder's.
func Running(pidfile string) (int, bool) {
	b, err := os.ReadFile(pidfile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(Marker)) {
		return 0, false
	}
	return pid, true
}

// WritePid records this process in pidfile, refusing when a forwarder
// already runs under it: there is never more than one. A pid file left by a
// forwarder that is gone is replaced.
func WritePid(pidfile string) error {
	if pid, ok := Running(pidfile); ok && pid != os.Getpid() {
		return fmt.Errorf("bridge: a forwarder already runs as pid %d (pid file %q)", pid, pidfile)
	}
	tmp := pidfile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("bridge: pid file: %w", err)
	}
	if err := os.Rename(tmp, pidfile); err != nil {
		return fmt.Errorf("bridge: pid file: %w", err)
	}
	return nil
}

// RemovePid removes pidfile if it still names this process.
func RemovePid(pidfile string) error {
	b, err := os.ReadFile(pidfile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bridge: pid file: %w", err)
	}
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		return nil
	}
	if err := os.Remove(pidfile); err != nil {
		return fmt.Errorf("bridge: pid file: %w", err)
	}
	return nil
}
