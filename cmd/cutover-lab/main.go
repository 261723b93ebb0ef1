// Command cutover-lab stands up cutover's lab, a whole chatmail-style migration on this machine
// (two sshd hosts running the real relay, Postfix, Dovecot and OpenDKIM, or with --stand-in a
// stand-in mail service; BIND primary and secondary, two Unbound caches, optionally live
// traffic), in a network namespace of its own: nothing binds the machine's
// addresses or ports and none of its services is touched. It is test support, not product:
// cutover does not link it.
//
//	cutover-lab up [--dir DIR] [--traffic] [--stand-in]   stand the lab up, write DIR/cutover.toml
//	cutover-lab exec [--dir DIR] -- CMD...   run CMD inside the lab's network
//	cutover-lab shell [--dir DIR]            a shell inside the lab's network
//	cutover-lab down [--dir DIR]             take everything down (also after a crash of up)
//	cutover-lab demo [--cutover PATH] [--stand-in]   up, a real `cutover run --yes` under traffic, a summary, down
//
// Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted; exec and shell exit with
// their command's code.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cutover-dev/cutover/internal/lab"
)

// defaultDir is where the lab keeps its files unless --dir says otherwise: outside /tmp, so that
// each host can have a private /tmp.
const defaultDir = "/var/tmp/cutover-lab"

// stateFile (in DIR) records what `up` made, so that `down` can undo it after a crash.
const stateFile = "lab.json"

// state is DIR/lab.json.
type state struct {
	Netns string `json:"netns"`           // the named network namespace (ip netns)
	PID   int    `json:"pid,omitempty"`   // the lab process (`cutover-lab serve`)
	Start uint64 `json:"start,omitempty"` // its start time (/proc/PID/stat field 22): a reused PID is not ours
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg, hint string }

func (e usageError) Error() string { return e.msg }

// hintError carries the exact next command for the user.
type hintError struct {
	err  error
	hint string
}

func (e hintError) Error() string { return e.err.Error() }
func (e hintError) Unwrap() error { return e.err }

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage:
  cutover-lab up [--dir DIR] [--traffic] [--stand-in]
                                           stand the lab up in its own network namespace
  cutover-lab exec [--dir DIR] -- CMD...   run CMD inside the lab's network
  cutover-lab shell [--dir DIR]            open a shell inside the lab's network
  cutover-lab down [--dir DIR]             take the lab down, also after a crash of up
  cutover-lab demo [--cutover PATH] [--stand-in]
                                           up, cutover run under traffic, a summary, down
DIR defaults to ` + defaultDir + `. The lab's hosts run the real relay (Postfix, Dovecot,
OpenDKIM) when it is installed; --stand-in runs a stand-in mail service instead.
`

// run is main without os.Exit.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmds := map[string]func([]string, io.Writer) error{
		"up": cmdUp, "down": cmdDown, "exec": cmdExec, "shell": cmdShell, "demo": cmdDemo, "serve": cmdServe,
	}
	f, ok := cmds[args[0]]
	if !ok {
		return fail(stderr, usageError{fmt.Sprintf("unknown command %q", args[0]), "cutover-lab help"})
	}
	return fail(stderr, f(args[1:], stdout))
}

// fail prints err (if any) as `cutover-lab: error:` and its hint, and returns the exit code.
func fail(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	fmt.Fprintf(stderr, "cutover-lab: error: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "cutover-lab: hint: %s\n", ue.hint)
		return 2
	}
	var he hintError
	if errors.As(err, &he) {
		fmt.Fprintf(stderr, "cutover-lab: hint: %s\n", he.hint)
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return 1
}

// flags parses a command's flags; --dir is common to all but demo.
func flags(name string, args []string, define func(fs *flag.FlagSet)) (dir string, rest []string, err error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&dir, "dir", defaultDir, "")
	if define != nil {
		define(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", nil, usageError{fmt.Sprintf("%s: %v", name, err), "cutover-lab help"}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", nil, err
	}
	return dir, fs.Args(), nil
}

// needRoot is the first check of every command that makes namespaces.
func needRoot(cmd string) error {
	if os.Geteuid() != 0 {
		return hintError{errors.New("needs root (network namespaces, sshd, BIND)"), "sudo cutover-lab " + cmd}
	}
	return nil
}

// netnsName is the named network namespace of the lab in dir.
func netnsName(dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "cutover-lab-" + hex.EncodeToString(sum[:4])
}

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, hintError{fmt.Errorf("no lab in %q", dir), "cutover-lab up --dir " + shellArg(dir)}
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.Netns == "" {
		return nil, fmt.Errorf("%s: not a lab state file (%v)", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

func writeState(dir string, st state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, stateFile), append(b, '\n'), 0o600)
}

// netnsLink returns "net:[INODE]" of the named namespace, the value of lab.NetnsEnv inside it.
func netnsLink(name string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+name, &st); err != nil {
		return "", fmt.Errorf("network namespace %q: %w", name, err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino), nil
}

// inNetns returns a command that runs argv in the named namespace, marked as the lab's.
func inNetns(name string, argv []string) (*exec.Cmd, error) {
	link, err := netnsLink(name)
	if err != nil {
		return nil, err
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, hintError{err, "apt-get install util-linux"}
	}
	cmd := exec.Command(nsenter, append([]string{"--net=/run/netns/" + name, "--"}, argv...)...)
	cmd.Env = append(os.Environ(), lab.NetnsEnv+"="+link)
	return cmd, nil
}

func cmdUp(args []string, stdout io.Writer) error {
	var traffic, standIn bool
	var messages int
	var labmail string
	dir, rest, err := flags("up", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&traffic, "traffic", false, "")
		fs.BoolVar(&standIn, "stand-in", false, "")
		fs.IntVar(&messages, "messages", 0, "")
		fs.StringVar(&labmail, "labmail", "", "")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("up: unexpected argument %q", rest[0]), "cutover-lab up [--dir DIR] [--traffic] [--stand-in]"}
	}
	if err := needRoot("up"); err != nil {
		return err
	}
	if dir == "/tmp" || strings.HasPrefix(dir, "/tmp/") {
		return hintError{fmt.Errorf("--dir %q is under /tmp, which each lab host has a private one of", dir), "cutover-lab up --dir /var/tmp/cutover-lab"}
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		return hintError{fmt.Errorf("a lab is already up in %q (or was not taken down)", dir), "cutover-lab down --dir " + shellArg(dir)}
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return hintError{fmt.Errorf("%q is not empty", dir), "cutover-lab up --dir NEW-DIR"}
	}
	// The hosts' files are under DIR/tmp, where the relay's Postfix writes its log as postfix:
	// other users may pass through DIR, not list it.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	name := netnsName(dir)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	if err := writeState(dir, state{Netns: name}); err != nil {
		return err
	}
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return hintError{fmt.Errorf("ip -n %s link set lo up: %w: %s", name, err, strings.TrimSpace(string(out))), "cutover-lab down --dir " + shellArg(dir)}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := []string{self, "serve", "--dir", dir, "--messages", strconv.Itoa(messages), "--labmail", labmailBinary(labmail), "--self", os.Args[0]}
	if traffic {
		argv = append(argv, "--traffic")
	}
	if standIn {
		argv = append(argv, "--stand-in")
	}
	cmd, err := inNetns(name, argv)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "lab.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := filepath.Join(dir, "ready")
	for deadline := time.Now().Add(3 * time.Minute); ; {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "lab.log"))
			return hintError{fmt.Errorf("the lab did not come up (%v):\n%s", err, strings.TrimSpace(string(b))), "cutover-lab down --dir " + shellArg(dir)}
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return hintError{errors.New("the lab is not up after 3 minutes"), "cutover-lab down --dir " + shellArg(dir)}
		}
	}
	b, err := os.ReadFile(ready)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, string(b))
	return nil
}

// cmdServe is the lab process that `up` starts in the named namespace: it stands the lab up,
// writes DIR/ready (what up prints), and stops everything on SIGTERM or SIGINT.
func cmdServe(args []string, stdout io.Writer) error {
	var traffic, standIn bool
	var messages int
	var labmail string
	selfName := "cutover-lab"
	dir, _, err := flags("serve", args, func(fs *flag.FlagSet) {
		fs.StringVar(&selfName, "self", selfName, "")
		fs.BoolVar(&traffic, "traffic", false, "")
		fs.BoolVar(&standIn, "stand-in", false, "")
		fs.IntVar(&messages, "messages", 0, "")
		fs.StringVar(&labmail, "labmail", "", "")
	})
	if err != nil {
		return err
	}
	if !lab.InLabNetwork() {
		return fmt.Errorf("serve: not in the lab's network namespace: %w", lab.ErrNotIsolated)
	}
	st, err := readState(dir)
	if err != nil {
		return err
	}
	st.PID = os.Getpid()
	st.Start, _ = lab.ProcStart(st.PID)
	if err := writeState(dir, *st); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return err
	}
	os.Setenv("TMPDIR", filepath.Join(dir, "tmp"))
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	logf := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	// Time to look around first: plan, dns show, the hosts.
	at := time.Now().Add(upLead).Truncate(time.Second)
	c, err := lab.StartChatmail(dir, lab.ChatmailOptions{StandIn: useStandIn(standIn, logf), Labmail: labmail, Traffic: traffic, Messages: messages, CutoverAt: at, Logf: logf})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte(upSummary(selfName, dir, c, at)), 0o644); err != nil {
		return errors.Join(err, c.Stop())
	}
	s := <-sigs
	logf("%v: taking the lab down", s)
	return c.Stop()
}

// upLead is how far ahead of `up` the config's cutover_at is.
const upLead = 10 * time.Minute

// upSummary is what `up` prints: what runs where and the commands to try. self is how up was
// invoked ("cutover-lab", "bin/cutover-lab"); a cutover next to it is named the same way.
func upSummary(self, dir string, c *lab.Chatmail, at time.Time) string {
	var b strings.Builder
	d := shellArg(dir)
	x := self + " exec --dir " + d + " --"
	if dir == defaultDir {
		x = self + " exec --"
	}
	cutover := "cutover"
	if sibling("cutover") != "" {
		cutover = filepath.Join(filepath.Dir(self), "cutover")
	}
	cfg := shellArg(c.Config)
	fmt.Fprintf(&b, "The lab is up in its own network namespace (files in %s):\n", dir)
	if c.OldRelay != nil {
		fmt.Fprintf(&b, "  old  %s  sshd, the relay (Postfix, Dovecot, OpenDKIM) running, %d seeded message files\n", c.Net.IP(10), c.Seeded)
		fmt.Fprintf(&b, "  new  %s  sshd, the relay installed: the config's prepare hook configures it, activate starts it\n", c.Net.IP(20))
	} else {
		fmt.Fprintf(&b, "  old  %s  sshd, the stand-in mail service (port %d), %d seeded message files\n", c.Net.IP(10), lab.MailPort, c.Seeded)
		fmt.Fprintf(&b, "  new  %s  sshd, the stand-in mail service installed but disabled\n", c.Net.IP(20))
	}
	fmt.Fprintf(&b, "  DNS  %s (BIND primary), %s (secondary): %s A %s\n", c.Net.IP(31), c.Net.IP(32), strings.TrimSuffix(lab.ChatmailName, "."), c.Net.IP(10))
	fmt.Fprintf(&b, "  caches  %s, %s (Unbound)\n", c.Net.IP(41), c.Net.IP(42))
	if c.Sender != nil {
		fmt.Fprintf(&b, "  traffic  a sender delivers through %s\n", c.Net.IP(41))
	}
	fmt.Fprintf(&b, "\nThe config is %s, with cutover_at = %s (edit it freely; it must be at least\n%s ahead when you run).\nTry:\n", c.Config, at.UTC().Format(time.RFC3339), lab.ChatmailLead)
	for _, a := range []string{"plan " + cfg, "dns show " + cfg, "run " + cfg + " --yes", "status " + cfg, "rollback " + cfg,
		fmt.Sprintf("watch %s --expect %s --resolver %s --resolver %s", lab.ChatmailName, c.Net.IP(20), c.Net.IP(41), c.Net.IP(42))} {
		fmt.Fprintf(&b, "  %s %s %s\n", x, cutover, a)
	}
	ssh := fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s", shellArg(c.Pair.Identity.KeyFile), shellArg(c.Pair.KnownHosts))
	fmt.Fprintf(&b, "\nThe hosts:\n  %s %s root@%s   (old; new is %s)\n", x, ssh, c.Net.IP(10), c.Net.IP(20))
	shell, down := self+" shell", self+" down"
	if dir != defaultDir {
		shell, down = shell+" --dir "+d, down+" --dir "+d
	}
	fmt.Fprintf(&b, "  %s   (a shell inside the lab's network)\n", shell)
	if r := c.OldRelay; r != nil {
		fmt.Fprintf(&b, "\nThe relay, inside the lab's network: SMTP %s, IMAP %s on old (%s and %s on new once activated);\nany user@%s logs in with the password %s:\n",
			r.SMTP, r.IMAP, c.NewRelay.SMTP, c.NewRelay.IMAP, r.Domain, r.Password)
		fmt.Fprintf(&b, "  %s curl -u user00@%s:%s imap://%s/INBOX -X 'EXAMINE INBOX'\n", x, r.Domain, r.Password, r.IMAP.Addr())
		fmt.Fprintf(&b, "  %s %s root@%s relay-ctl status   (prepare|start|stop|status: what the hooks run)\n", x, ssh, c.Net.IP(10))
	}
	fmt.Fprintf(&b, "\nWhen done: %s\n", down)
	return b.String()
}

func cmdExec(args []string, stdout io.Writer) error {
	dir, rest, err := flags("exec", args, nil)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return usageError{"exec: no command given", "cutover-lab exec -- cutover plan " + shellArg(filepath.Join(dir, "cutover.toml"))}
	}
	return execIn(dir, rest, stdout)
}

func cmdShell(args []string, stdout io.Writer) error {
	dir, rest, err := flags("shell", args, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("shell: unexpected argument %q", rest[0]), "cutover-lab exec -- " + strings.Join(rest, " ")}
	}
	sh := os.Getenv("SHELL")
	if sh == "" {
		sh = "/bin/bash"
	}
	return execIn(dir, []string{sh}, stdout)
}

// execIn runs argv in the lab's namespace with the caller's stdio; its exit code becomes ours.
func execIn(dir string, argv []string, stdout io.Writer) error {
	if err := needRoot("exec -- " + strings.Join(argv, " ")); err != nil {
		return err
	}
	st, err := readState(dir)
	if err != nil {
		return err
	}
	cmd, err := inNetns(st.Netns, argv)
	if err != nil {
		return hintError{err, "cutover-lab down --dir " + shellArg(dir) + " && cutover-lab up --dir " + shellArg(dir)}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, os.Stderr
	signal.Ignore(syscall.SIGINT) // the command gets it from the terminal
	return cmd.Run()
}

func cmdDown(args []string, stdout io.Writer) error {
	dir, rest, err := flags("down", args, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("down: unexpected argument %q", rest[0]), "cutover-lab down [--dir DIR]"}
	}
	if err := needRoot("down"); err != nil {
		return err
	}
	st, err := readState(dir)
	if err != nil {
		return err
	}
	var errs []error
	if st.PID > 0 {
		if start, err := lab.ProcStart(st.PID); err == nil && start == st.Start {
			_ = syscall.Kill(st.PID, syscall.SIGTERM)
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if s, err := lab.ProcStart(st.PID); err != nil || s != st.Start {
					break
				}
			}
		}
	}
	if link, err := netnsLink(st.Netns); err == nil {
		errs = append(errs, lab.KillNetworkNamespace(link))
		if out, err := exec.Command("ip", "netns", "del", st.Netns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %w: %s", st.Netns, err, strings.TrimSpace(string(out))))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The block's records of killed servers: cleaned up by the next lab that reserves it.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "The lab in %s is down: its processes, network namespace and files are gone.\n", dir)
	return nil
}

// shellArg quotes s for a shell when it needs it.
func shellArg(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
