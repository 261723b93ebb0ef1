package scheduler

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/config"
)

func TestHookRunner(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	background := "sleep 61.3 >/dev/null 2>&1 & echo $! > " + pidFile + "; exec sleep 62.7"
	for _, tc := range []struct {
		desc    string
		hook    config.Hook
		cancel  bool // cancel once the hook started its background process
		wantErr string
		wantOut string
	}{
		{
			desc: "local", hook: config.Hook{Name: "prepare", On: config.OnLocal, Run: "echo hi"},
			wantOut: "hook prepare on local: echo hi\nhi\n",
		},
		{
			desc: "local exit status", hook: config.Hook{Name: "disable", On: config.OnLocal, Run: "echo no; exit 3"},
			wantErr: `hook: "echo no; exit 3": exit status 3`, wantOut: "hook disable on local: echo no; exit 3\nno\n",
		},
		{
			desc: "remote", hook: config.Hook{Name: "activate", On: config.OnNew, Run: "systemctl start x"},
			wantOut: "hook activate on new: systemctl start x\nremote new: systemctl start x\n",
		},
		{
			desc: "cancelled: the whole process group is stopped", hook: config.Hook{Name: "prepare", On: config.OnLocal, Run: background},
			cancel:  true,
			wantErr: `hook: "` + background + `": stopped: context canceled`, wantOut: "hook prepare on local: " + background + "\n",
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cancel {
				go func() {
					for ctx.Err() == nil {
						if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
							cancel()
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
				}()
			}
			var out bytes.Buffer
			r := HookRunner{Remote: func(ctx context.Context, out io.Writer, on, command string) error {
				_, err := io.WriteString(out, "remote "+on+": "+command+"\n")
				return err
			}}
			err := r.Run(ctx, &out, &tc.hook)
			if got := errString(err); got != tc.wantErr {
				t.Fatalf("error %q, want %q", got, tc.wantErr)
			}
			if out.String() != tc.wantOut {
				t.Errorf("output %q, want %q", out.String(), tc.wantOut)
			}
			if !tc.cancel {
				return
			}
			b, _ := os.ReadFile(pidFile)
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			// The background sleep got SIGTERM with its group: it ends
			// (gone, or a zombie nobody reaped) instead of running on.
			giveUp := time.After(30 * time.Second) // a bound on a hang, not a measurement
			for !ended(pid) {
				select {
				case <-giveUp:
					t.Fatalf("the hook's background process %d still runs", pid)
				case <-time.After(10 * time.Millisecond):
				}
			}
		})
	}
}

// ended reports whether process pid is gone or a zombie.
func ended(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// A local command ctx stops is stopped with its whole process group, even
// when the shell exits on SIGTERM and leaves a process that ignores it, and
// the second signal's AbortLocal kills a group that ignores SIGTERM. When
// Run (or AbortLocal) returns, no process of the group is alive.
func TestLocalCommandGroupStopped(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		run   string // writes the pids to stay alive to $PIDS, one a line, then blocks
		abort bool   // a second signal: AbortLocal after the cancel
	}{
		{desc: "the shell exits on TERM, its background process ignores it",
			run: `trap 'exit 0' TERM; (trap '' TERM INT; exec sleep 63.1) >/dev/null 2>&1 & echo $! > "$PIDS"; echo $$ >> "$PIDS"; wait`},
		{desc: "second signal: the hook traps TERM and INT", abort: true,
			run: `trap '' TERM INT; sleep 63.2 & echo $! > "$PIDS"; echo $$ >> "$PIDS"; while :; do wait; done`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			defer func() { running.Lock(); running.aborted = false; running.Unlock() }()
			pidFile := filepath.Join(t.TempDir(), "pids")
			t.Setenv("PIDS", pidFile)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			started := make(chan []int)
			go func() {
				for ctx.Err() == nil {
					if pids := readPids(pidFile); len(pids) == 2 {
						started <- pids
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			ran := make(chan error)
			go func() {
				ran <- HookRunner{}.Run(ctx, io.Discard, &config.Hook{Name: "prepare", On: config.OnLocal, Run: tc.run})
			}()
			pids := <-started
			cancel()
			var err error
			if tc.abort {
				AbortLocal()
				checkEnded(t, pids)
				err = <-ran
			} else {
				err = <-ran
				checkEnded(t, pids)
			}
			want := fmt.Sprintf("hook: %q: stopped: context canceled", tc.run)
			if got := errString(err); got != want {
				t.Errorf("error %q, want %q", got, want)
			}
		})
	}
}

func readPids(path string) []int {
	b, _ := os.ReadFile(path)
	var pids []int
	for _, l := range strings.Split(string(b), "\n") {
		if pid, err := strconv.Atoi(l); err == nil {
			pids = append(pids, pid)
		}
	}
	if !strings.HasSuffix(string(b), "\n") {
		return nil
	}
	return pids
}

// checkEnded fails unless every process in pids is gone or a zombie now.
func checkEnded(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if !ended(pid) {
			t.Errorf("process %d of the hook's group is still alive", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Local hooks and the notify command never see the environment variables
// the config names as secrets; other variables pass.
func TestLocalCommandsHideSecrets(t *testing.T) {
	cfg := planConfigWith(t, t0.Add(time.Hour), false, `key = "env:CUTOVER_TEST_TSIG"
tokens = ["env:CUTOVER_TEST_TOKEN", "file:/k"]
`)
	if got, want := cfg.SecretEnv(), []string{"CUTOVER_TEST_TOKEN", "CUTOVER_TEST_TSIG"}; !slices.Equal(got, want) {
		t.Fatalf("SecretEnv %q, want %q", got, want)
	}
	t.Setenv("CUTOVER_TEST_TSIG", "tsig-secret")
	t.Setenv("CUTOVER_TEST_TOKEN", "token-secret")
	t.Setenv("CUTOVER_TEST_PLAIN", "plain")
	const show = `env | grep '^CUTOVER_TEST_' | sort`
	for _, tc := range []struct {
		desc string
		run  func(t *testing.T) string // the output of show
		want string
	}{
		{desc: "local hook", want: "hook prepare on local: " + show + "\nCUTOVER_TEST_PLAIN=plain\n", run: func(t *testing.T) string {
			var out bytes.Buffer
			if err := (HookRunner{Hide: cfg.SecretEnv()}).Run(t.Context(), &out, &config.Hook{Name: "prepare", On: config.OnLocal, Run: show}); err != nil {
				t.Fatal(err)
			}
			return out.String()
		}},
		{desc: "notify command", want: "CUTOVER_TEST_PLAIN=plain\n", run: func(t *testing.T) string {
			dir := t.TempDir()
			got := filepath.Join(dir, "env")
			l, err := OpenEventLog(dir, show+" > "+got, cfg.SecretEnv(), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			l.Emit(Event{Kind: "step-done", Step: Prepare})
			b, err := os.ReadFile(got)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := tc.run(t); got != tc.want {
				t.Errorf("output %q, want %q", got, tc.want)
			}
		})
	}
}
