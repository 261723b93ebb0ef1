package lab

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// installMail installs labmail on both hosts of p.
func installMail(t *testing.T, p *Pair) (old, nw *Mail) {
	t.Helper()
	bin := BuildLabmail(t)
	var err error
	if old, err = InstallMail(context.Background(), p.Old, bin); err != nil {
		t.Fatal(err)
	}
	if nw, err = InstallMail(context.Background(), p.New, bin); err != nil {
		t.Fatal(err)
	}
	return old, nw
}

func states(t *testing.T, m *Mail) []string {
	t.Helper()
	evs, err := m.Events()
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for i, e := range evs {
		s = append(s, e.State)
		if i > 0 && e.Time.Before(evs[i-1].Time) {
			t.Errorf("%s: event %d (%s) at %s is before the previous one", m.Host.Name, i, e.State, e.Time)
		}
	}
	return s
}

func TestMailService(t *testing.T) {
	t.Parallel()
	n := NewNet(t)
	p := NewPair(t, n)
	start := time.Now()
	old, nw := installMail(t, p)
	t.Logf("build + install: %s", time.Since(start))
	ctx := context.Background()

	if on, err := old.Enabled(ctx); err != nil || on {
		t.Fatalf("fresh service: enabled %v, %v; want disabled", on, err)
	}
	err := DeliverMessage(ctx, old.Addr, "early", "user00", "x\n")
	if want := fmt.Sprintf("lab: deliver early: dial tcp %s: connect: connection refused", old.Addr); err == nil || err.Error() != want {
		t.Errorf("deliver to a disabled service: error %v, want %q", err, want)
	}

	if err := old.Enable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := old.Enable(ctx); err != nil { // a no-op
		t.Fatal(err)
	}
	if on, err := old.Enabled(ctx); err != nil || !on {
		t.Fatalf("after Enable: enabled %v, %v", on, err)
	}
	body := "Subject: hi\n\n.starts with a dot\n..two dots\nend\n"
	if err := DeliverMessage(ctx, old.Addr, "id-1", "user03", body); err != nil {
		t.Fatal(err)
	}
	ids, err := MailIDs(p.Old)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || len(ids["id-1"]) != 1 || !strings.HasPrefix(ids["id-1"][0], MailRoot+"/user03/new/") {
		t.Fatalf("old's messages: %v, want id-1 once in user03/new", ids)
	}
	real := p.Old.Path(ids["id-1"][0])
	if b, err := os.ReadFile(real); err != nil || string(b) != "X-Lab-Id: id-1\n"+body {
		t.Errorf("stored message: %q, %v; want %q", b, err, "X-Lab-Id: id-1\n"+body)
	}
	if fi, err := os.Stat(real); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 5000 || fi.Mode().Perm() != 0o600 {
		t.Errorf("stored message not vmail(5000) 0600: %v %v", fi.Sys(), err)
	}
	if ids, err := MailIDs(p.New); err != nil || len(ids) != 0 {
		t.Errorf("new's messages: %v, %v; want none", ids, err)
	}

	t.Run("bad command", func(t *testing.T) {
		c, err := net.Dial("tcp", old.Addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "HELO x\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		if want := "550 bad command \"HELO x\"\n"; line != want {
			t.Errorf("reply %q, want %q", line, want)
		}
	})

	t.Run("ctl over ssh", func(t *testing.T) {
		out, err := sshRun(p.New, p.Identity.Signer, p.KnownHosts, "labmail-ctl enable && labmail-ctl status")
		if err != nil || out != "labmail: enabled\nenabled\n" {
			t.Fatalf("ssh new labmail-ctl enable: %q, %v", out, err)
		}
		if err := DeliverMessage(ctx, nw.Addr, "id-2", "user04", "to new\n"); err != nil {
			t.Fatal(err)
		}
		ids, err := MailIDs(p.New)
		if err != nil || len(ids["id-2"]) != 1 {
			t.Fatalf("new's messages: %v, %v", ids, err)
		}
		if fi, err := os.Stat(p.New.Path(ids["id-2"][0])); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 6000 {
			t.Errorf("message on new not owned by new's vmail (6000): %v", err)
		}
		out, err = sshRun(p.New, p.Identity.Signer, p.KnownHosts, "labmail-ctl bogus")
		if err == nil || out != "usage: labmail-ctl enable|disable|status\n" {
			t.Errorf("labmail-ctl bogus: %q, %v", out, err)
		}
		if out, err := sshRun(p.New, p.Identity.Signer, p.KnownHosts, "labmail-ctl disable"); err != nil || out != "labmail: disabled\n" {
			t.Fatalf("ssh new labmail-ctl disable: %q, %v", out, err)
		}
		if got, want := states(t, nw), []string{"enabling", "enabled", "disabling", "disabled"}; !slices.Equal(got, want) {
			t.Errorf("new's events %q, want %q", got, want)
		}
	})

	t.Run("placeholder outside hosts", func(t *testing.T) {
		out, err := runReal(MailCtl, "status")
		if err == nil || !strings.Contains(out, "only works inside a cutover lab host") {
			t.Errorf("%s on the real fs: %q, %v; want a failure", MailCtl, out, err)
		}
	})

	t.Run("disable with traffic", func(t *testing.T) {
		// A client that never finishes its message must not hold up disable, and its message
		// is not stored. Clients delivering in a loop: whatever was acknowledged is stored once.
		half, err := net.Dial("tcp", old.Addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer half.Close()
		fmt.Fprintf(half, "MSG half user05\nincomplete body\n")
		var (
			mu    sync.Mutex
			acked []string
			wg    sync.WaitGroup
		)
		stop := make(chan struct{})
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("load-%d-%d", w, i)
					dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					err := DeliverMessage(dctx, old.Addr, id, "user06", "load\n")
					cancel()
					if err != nil {
						return // refused once disabled
					}
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		t0 := time.Now()
		if err := old.Disable(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("disable under load took %s", time.Since(t0))
		close(stop)
		wg.Wait()
		if _, err := net.DialTimeout("tcp", old.Addr.String(), time.Second); err == nil {
			t.Errorf("port still open after Disable")
		}
		if on, err := p.Old.MailEnabled(ctx); err != nil || on {
			t.Errorf("after Disable: enabled %v, %v", on, err)
		}
		_ = half.SetReadDeadline(time.Now().Add(2 * time.Second))
		if line, err := bufio.NewReader(half).ReadString('\n'); err == nil {
			t.Errorf("incomplete message got a reply %q", line)
		}
		ids, err := MailIDs(p.Old)
		if err != nil {
			t.Fatal(err)
		}
		if len(acked) < 10 {
			t.Errorf("only %d messages acknowledged under load", len(acked))
		}
		for _, id := range acked {
			if len(ids[id]) != 1 {
				t.Errorf("acknowledged %s stored %d times", id, len(ids[id]))
			}
		}
		if _, ok := ids["half"]; ok {
			t.Errorf("incomplete message stored")
		}
		if got, want := states(t, old), []string{"enabling", "enabled", "disabling", "disabled"}; !slices.Equal(got, want) {
			t.Errorf("old's events %q, want %q", got, want)
		}
	})
}

// runReal runs a command on the real fs and returns its combined output.
func runReal(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
