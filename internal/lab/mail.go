package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MailPort is the port of the stand-in mail service.
const MailPort = 2525

// MailRoot is where the stand-in mail service stores messages, as seen inside a host:
// MailRoot/<user>/new/<unique>.
const MailRoot = "/home/vmail/mail/example.org"

// MailCtl is the control command of the stand-in mail service inside a host (on root's PATH
// there, also over ssh): `labmail-ctl enable|disable|status`. On the real fs it is a placeholder
// that fails.
const MailCtl = "/usr/local/sbin/labmail-ctl"

var (
	labmailOnce sync.Once
	labmailBin  string
	labmailErr  error
)

// BuildLabmailBinary builds the labmail program (internal/lab/labmail) with `go build` once per
// process and returns the binary's path. It needs the source tree and the go command; the binary
// lives in a cutover-lab-labmail-<pid>-* temp dir that the next build in another process removes
// once this process has exited.
func BuildLabmailBinary() (string, error) {
	labmailOnce.Do(func() { labmailBin, labmailErr = buildLabmail() })
	return labmailBin, labmailErr
}

// BuildLabmail is BuildLabmailBinary for tests: it fails the test on error.
func BuildLabmail(t testing.TB) string {
	t.Helper()
	bin, err := BuildLabmailBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func buildLabmail() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("lab: labmail: cannot locate the source")
	}
	src := filepath.Join(filepath.Dir(file), "labmail")
	if _, err := os.Stat(filepath.Join(src, "main.go")); err != nil {
		return "", fmt.Errorf("lab: labmail: source: %w", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		if goBin, err = lookBin("go"); err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
	}
	// Remove builds of processes that are gone.
	prefix := tempPrefix + "labmail-"
	if old, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*")); len(old) > 0 {
		for _, d := range old {
			pidStr, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), prefix), "-")
			if pid, err := strconv.Atoi(pidStr); err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) != nil && isLabTempDir(d) {
				_ = os.RemoveAll(d)
			}
		}
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", prefix, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("lab: labmail: %w", err)
	}
	bin := filepath.Join(dir, "labmail")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("lab: labmail: go build: %w%s", err, outputTail(out))
	}
	return bin, nil
}

// Mail is the stand-in mail service installed on a host: labmail listening on Addr while
// enabled, storing messages under MailRoot in the host.
type Mail struct {
	Host *Host
	Addr netip.AddrPort // Host.Addr:MailPort
	Dir  string         // state dir (same path on the real fs and in the host): events.log, labmail.log
}

// MailEvent is one line of the service's events.log.
type MailEvent struct {
	Time  time.Time
	State string // "enabling", "enabled", "disabling", "disabled"
}

// InstallMail copies the labmail binary into the host, writes its labmail-ctl script and
// bind-mounts it over MailCtl inside the host. The service starts disabled.
func InstallMail(ctx context.Context, h *Host, labmail string) (*Mail, error) {
	m := &Mail{Host: h, Addr: netip.AddrPortFrom(h.Addr, MailPort), Dir: filepath.Join(h.Dir, "labmail")}
	fail := func(err error) (*Mail, error) { return nil, fmt.Errorf("lab: host %q: install mail: %w", h.Name, err) }
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return fail(err)
	}
	b, err := os.ReadFile(labmail)
	if err != nil {
		return fail(err)
	}
	bin := filepath.Join(m.Dir, "labmail")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		return fail(err)
	}
	script := fmt.Sprintf("#!/bin/sh\n# labmail-ctl of lab host %s\n"+
		"case \"$1\" in enable|disable|status) ;; *) echo 'usage: labmail-ctl enable|disable|status' >&2; exit 2;; esac\n"+
		"exec %s \"$1\" -state %s -listen %s -maildir %s\n",
		h.Name, shellQuote(bin), shellQuote(m.Dir), shellQuote(m.Addr.String()), shellQuote(MailRoot))
	ctl := filepath.Join(m.Dir, "labmail-ctl")
	if err := os.WriteFile(ctl, []byte(script), 0o755); err != nil {
		return fail(err)
	}
	if err := ensurePlaceholder(MailCtl, "labmail-ctl"); err != nil {
		return fail(err)
	}
	if _, err := h.Exec(ctx, fmt.Sprintf("mount --bind %s %s", shellQuote(ctl), MailCtl)); err != nil {
		return fail(err)
	}
	return m, nil
}

// ensurePlaceholder creates the real-fs mount point of a host's control command p (MailCtl,
// RelayCtl): a script named what that fails outside a host.
func ensurePlaceholder(p, what string) error {
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", p, os.Getpid())
	s := "#!/bin/sh\necho '" + what + ": only works inside a cutover lab host' >&2\nexit 1\n"
	if err := os.WriteFile(tmp, []byte(s), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (m *Mail) ctl(ctx context.Context, op string) (string, error) {
	out, err := m.Host.Exec(ctx, MailCtl+" "+op)
	return strings.TrimSpace(string(out)), err
}

// Enable starts the service (as cmdeploy's activate would) and returns once it listens.
func (m *Mail) Enable(ctx context.Context) error {
	_, err := m.ctl(ctx, "enable")
	return err
}

// Disable stops the service (as --disable-mail would) and returns once the port is closed;
// messages being stored are finished and acknowledged first.
func (m *Mail) Disable(ctx context.Context) error {
	_, err := m.ctl(ctx, "disable")
	return err
}

// Enabled reports whether the service runs.
func (m *Mail) Enabled(ctx context.Context) (bool, error) { return m.Host.MailEnabled(ctx) }

// MailEnabled reports whether the stand-in mail service installed on h (InstallMail) runs,
// asking `labmail-ctl status` inside the host.
func (h *Host) MailEnabled(ctx context.Context) (bool, error) {
	b, err := h.Exec(ctx, MailCtl+" status")
	if err != nil {
		return false, err
	}
	switch out := strings.TrimSpace(string(b)); out {
	case "enabled":
		return true, nil
	case "disabled":
		return false, nil
	default:
		return false, fmt.Errorf("lab: host %q: labmail-ctl status: unexpected output %q", h.Name, out)
	}
}

// Events returns the service's state changes in order.
func (m *Mail) Events() ([]MailEvent, error) {
	f, err := os.Open(filepath.Join(m.Dir, "events.log"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab: host %q: mail events: %w", m.Host.Name, err)
	}
	defer f.Close()
	var evs []MailEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ts, state, ok := strings.Cut(sc.Text(), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if !ok || err != nil {
			return nil, fmt.Errorf("lab: host %q: mail events: malformed line %q", m.Host.Name, sc.Text())
		}
		evs = append(evs, MailEvent{Time: t, State: state})
	}
	return evs, sc.Err()
}

// MailIDs maps the X-Lab-Id of every message under MailRoot/*/{new,cur} on h to the host paths
// of the files carrying it (more than one path: the message is there twice).
func MailIDs(h *Host) (map[string][]string, error) {
	root := h.Path(MailRoot)
	ids := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return fs.SkipAll
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if parent := filepath.Base(filepath.Dir(p)); parent != "new" && parent != "cur" {
			return nil
		}
		id, err := labID(p)
		if err != nil || id == "" {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		ids[id] = append(ids[id], filepath.Join(MailRoot, rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lab: host %q: mail ids: %w", h.Name, err)
	}
	return ids, nil
}

// labID returns the X-Lab-Id of a message file, or "".
func labID(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := f.Read(buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	id, ok := strings.CutPrefix(line, "X-Lab-Id: ")
	if !ok {
		return "", nil
	}
	return id, nil
}
