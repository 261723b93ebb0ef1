package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/scheduler"
)

// cmdDemo stands the lab up with traffic in a network namespace that lives as long as the demo,
// runs `cutover run --yes` on it, prints a summary and takes everything down.
func cmdDemo(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cutover := fs.String("cutover", "", "")
	labmail := fs.String("labmail", "", "")
	messages := fs.Int("messages", 0, "")
	standIn := fs.Bool("stand-in", false, "")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("demo: %v", err), "cutover-lab demo [--cutover PATH] [--stand-in]"}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("demo: unexpected argument %q", fs.Arg(0)), "cutover-lab demo [--cutover PATH] [--stand-in]"}
	}
	bin, err := findCutover(*cutover)
	if err != nil {
		return err
	}
	if err := needRoot("demo"); err != nil {
		return err
	}
	if err := lab.Isolate(); err != nil {
		return err
	}
	// Ctrl-C stops cutover (it gets the signal from the terminal too) and then the lab.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	dir, err := os.MkdirTemp("/var/tmp", "cutover-lab-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The hosts' files are under dir/tmp, where the relay's Postfix writes its log as postfix.
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return err
	}
	os.Setenv("TMPDIR", filepath.Join(dir, "tmp"))
	fmt.Fprintln(stdout, "== standing the lab up (its own network namespace; nothing of this machine's is touched)")
	logf := func(f string, a ...any) { fmt.Fprintf(stdout, "   "+f+"\n", a...) }
	c, err := lab.StartChatmail(filepath.Join(dir, "lab"), lab.ChatmailOptions{
		StandIn: useStandIn(*standIn, logf), Labmail: labmailBinary(*labmail), Traffic: true, Messages: *messages, Logf: logf,
	})
	if err != nil {
		return err
	}
	runErr := ctx.Err()
	check := c.RelayCheck()
	if runErr == nil && check != nil {
		runErr = demoBefore(ctx, c, check, logf)
	}
	if runErr == nil {
		runErr = demoRun(ctx, c, check, bin, dir, stdout)
	}
	serr := c.Stop()
	fmt.Fprintln(stdout, "\n== the lab is down")
	return errors.Join(runErr, serr)
}

// useStandIn is whether the lab runs the stand-in service: when asked, or when the real
// relay is not installed (said in a line).
func useStandIn(asked bool, logf func(string, ...any)) bool {
	if asked {
		return true
	}
	if err := lab.RelayInstalled(); err != nil {
		logf("%v: the stand-in service instead", err)
		return true
	}
	return false
}

// demoBefore has the relay's users act before the window (an IMAP client changes their
// mailboxes, mail for another domain waits in old's queue) and moves cutover_at to
// lab.ChatmailLead from now again.
func demoBefore(ctx context.Context, c *lab.Chatmail, check *lab.RelayCheck, logf func(string, ...any)) error {
	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := check.Before(bctx); err != nil {
		return err
	}
	logf("clients: an IMAP client marked, flagged and expunged messages in %d mailboxes on old; %d messages for %s wait in old's deferred queue (its server is down)", len(check.Users), check.Deferred, lab.RemoteDomain)
	return c.WriteConfig(time.Time{})
}

// demoRun runs cutover on the lab and prints the summary; with the relay (check not nil) also
// the checks of its migration.
func demoRun(ctx context.Context, c *lab.Chatmail, check *lab.RelayCheck, bin, home string, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	fmt.Fprintf(stdout, "\n== $ cutover run %s --yes   (the window opens at %s)\n", c.Config, time.Now().Add(lab.ChatmailLead).Format(time.TimeOnly))
	command := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "LANG=C", "TMPDIR=" + os.TempDir()}
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 30 * time.Second
		return cmd
	}
	// A watch beside the run records when each DNS server and cache moves to new.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var watched bytes.Buffer
	// Its timeout: past the end of the run (the config's converge_timeout counts from the start).
	watch := command(wctx, "watch", "--config", c.Config, "--json", "--timeout", "10m")
	watch.Stdout = &watched
	if err := watch.Start(); err != nil {
		return fmt.Errorf("cutover watch: %w", err)
	}
	cmd := command(ctx, "run", c.Config, "--yes")
	cmd.Stdout, cmd.Stderr = stdout, stdout
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("cutover run: stopped (%v): %w", context.Cause(ctx), ctx.Err())
	}
	// The sender keeps going a moment so that it reaches new; the watch has seen every
	// server move by then (the run waited for it), or never will.
	time.Sleep(2 * time.Second)
	if err := c.Sender.Stop(); err != nil {
		fmt.Fprintf(stdout, "sender: %v\n", err)
	}
	stopWatch()
	watch.Wait()
	var checked *lab.RelayResult
	if check != nil && runErr == nil {
		r := check.After(ctx, c.NewRelay)
		checked = &r
	}
	var sum bytes.Buffer
	lost, twice, err := summary(&sum, c, dnsMoves(&watched), checked)
	fmt.Fprintf(stdout, "\n== summary\n%s", sum.String())
	if runErr != nil {
		return fmt.Errorf("cutover run: %w", runErr)
	}
	if err != nil {
		return err
	}
	if checked != nil {
		if err := checked.Err(); err != nil {
			return err
		}
	}
	if lost > 0 || twice > 0 {
		return fmt.Errorf("%d accepted messages lost, %d there twice", lost, twice)
	}
	return nil
}

// summary writes the window as a timeline (steps, DNS moves, the sender's first message to
// new), the downtime seen by the sender and the fate of every accepted message on new: with
// the relay as its IMAP check found them, followed by the relay's checks (checked).
func summary(w io.Writer, c *lab.Chatmail, moves []dnsMove, checked *lab.RelayResult) (lost, twice int, _ error) {
	j, err := scheduler.LoadJournal(c.StateDir)
	if err != nil {
		return 0, 0, err
	}
	lastOld, firstNew := c.Sender.Switched(c.Net.IP(10), c.Net.IP(20))
	timeline(w, j, moves, firstNew)
	if !lastOld.IsZero() && !firstNew.IsZero() {
		fmt.Fprintf(w, "downtime seen by the sender: %s (last message accepted by old at %s, first by new at %s)\n",
			firstNew.Sub(lastOld).Round(time.Millisecond), lastOld.Format(time.TimeOnly), firstNew.Format(time.TimeOnly))
	} else {
		fmt.Fprintf(w, "downtime seen by the sender: unknown (no message reached new)\n")
	}
	accepted := c.Sender.Accepted()
	resent := ""
	switch {
	case checked != nil:
		lost, twice = checked.IMAP.Lost, checked.IMAP.Twice
		switch n := checked.IMAP.Resent; {
		case n == 1:
			resent = " (and 1 extra copy of a message whose acknowledgement was lost, as SMTP allows)"
		case n > 1:
			resent = fmt.Sprintf(" (and %d extra copies of messages whose acknowledgement was lost, as SMTP allows)", n)
		}
	case c.NewMail == nil:
		fmt.Fprintf(w, "messages: %d accepted during the demo, not checked (the run did not finish)\n", len(accepted))
		return 0, 0, nil
	default:
		ids, err := lab.MailIDs(c.Pair.New)
		if err != nil {
			return 0, 0, err
		}
		for _, id := range accepted {
			switch n := len(ids[id]); {
			case n == 0:
				lost++
			case n > 1:
				twice++
			}
		}
	}
	fmt.Fprintf(w, "messages: %d accepted during the demo, %d lost, %d twice on new%s\n", len(accepted), lost, twice, resent)
	if checked != nil {
		relaySummary(w, *checked)
	}
	return lost, twice, nil
}

// findCutover returns the cutover binary: flag, else next to cutover-lab, else $PATH.
func findCutover(flagged string) (string, error) {
	if flagged != "" {
		if _, err := os.Stat(flagged); err != nil {
			return "", hintError{fmt.Errorf("--cutover: %w", err), "go build -o cutover ./cmd/cutover"}
		}
		return filepath.Abs(flagged)
	}
	if p := sibling("cutover"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("cutover"); err == nil {
		return filepath.Abs(p)
	}
	return "", hintError{errors.New("no cutover binary next to cutover-lab or in $PATH"), "go build -o cutover ./cmd/cutover && cutover-lab demo --cutover ./cutover"}
}

// sibling returns the path of the executable name next to cutover-lab's own, or "".
func sibling(name string) string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(self), name)
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return p
}

// labmailBinary is --labmail, else the labmail next to cutover-lab (scripts/demo builds it
// there), else "": lab.StartChatmail then builds it from the source tree.
func labmailBinary(flagged string) string {
	if flagged != "" {
		return flagged
	}
	return sibling("labmail")
}
