package scheduler

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
