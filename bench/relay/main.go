// Command relay measures sshops relay-mode throughput against the OpenSSH pipeline it replaces,
// `ssh old 'tar c P' | ssh new 'tar x -C /'`, on two lab hosts (internal/lab) on the loopback,
// with the same data: about 1 GB in files of mixed sizes. It prints both rates in MB/s (10^6
// bytes of file data per second) and their ratio; the target is a ratio of at least 0.80.
// Run it as root: go run ./bench/relay (or bench/relay.sh).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cutover-dev/cutover/internal/lab"
	"github.com/cutover-dev/cutover/sshops"
)

const dir = "/home/vmail/mail"

func main() {
	// The lab's servers live in a network namespace of their own, with this program.
	if err := lab.Isolate(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/relay:", err)
		os.Exit(1)
	}
	rounds := flag.Int("rounds", 3, "measurements of each method; the best of each is compared")
	scale := flag.Float64("scale", 1, "data size factor (1 = about 1 GB)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *rounds, *scale); err != nil {
		fmt.Fprintln(os.Stderr, "bench/relay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, rounds int, scale float64) error {
	n, err := lab.ReserveNet()
	if err != nil {
		return err
	}
	defer n.Release()
	tmp, err := os.MkdirTemp("", "cutover-bench-relay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	lp, err := lab.StartPair(n, tmp)
	if err != nil {
		return err
	}
	defer lp.Stop()

	files, size, err := generate(lp.Old.Path(dir), scale)
	if err != nil {
		return err
	}
	fmt.Printf("data: %d files, %.1f MB (mixed: 5 MB, 200 kB, 10 kB, 1 kB)\n", files, float64(size)/1e6)

	auth := sshops.Auth{IdentityFile: lp.Identity.KeyFile, KnownHosts: lp.KnownHosts}
	oldC, err := sshops.Dial(ctx, sshops.Endpoint{Role: "old", Addr: lp.Old.Addr, Port: lp.Old.Port}, auth, io.Discard)
	if err != nil {
		return err
	}
	defer oldC.Close()
	newC, err := sshops.Dial(ctx, sshops.Endpoint{Role: "new", Addr: lp.New.Addr, Port: lp.New.Port}, auth, io.Discard)
	if err != nil {
		return err
	}
	defer newC.Close()
	pair := &sshops.Pair{Old: oldC, New: newC, Mode: sshops.ModeRelay, Log: io.Discard}
	entries := []sshops.Entry{{Path: dir}}

	sshArgs := func(h *lab.Host) []string {
		return []string{"ssh", "-F", "/dev/null", "-i", lp.Identity.KeyFile, "-o", "UserKnownHostsFile=" + lp.KnownHosts,
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", fmt.Sprint(h.Port), "root@" + h.Addr.String()}
	}
	pipeline := fmt.Sprintf("%s 'tar c %s' | %s 'tar x -C /'", shellJoin(sshArgs(lp.Old)), dir, shellJoin(sshArgs(lp.New)))
	clear := func() error {
		_, err := lp.New.Exec(ctx, "rm -rf "+dir+" && sync")
		return err
	}
	var bestTar, bestRelay time.Duration
	for i := range rounds {
		for _, m := range []string{"openssh", "relay"} {
			if err := clear(); err != nil {
				return err
			}
			start := time.Now()
			switch m {
			case "openssh":
				c := exec.CommandContext(ctx, "/bin/sh", "-c", "set -e; "+pipeline)
				c.Stderr = os.Stderr
				if err := c.Run(); err != nil {
					return fmt.Errorf("openssh pipeline: %w", err)
				}
			case "relay":
				if err := pair.Copy(ctx, entries, false); err != nil {
					return err
				}
			}
			d := time.Since(start)
			fmt.Printf("round %d %-8s %6.2fs %8.1f MB/s\n", i+1, m, d.Seconds(), float64(size)/1e6/d.Seconds())
			best := &bestTar
			if m == "relay" {
				best = &bestRelay
			}
			if *best == 0 || d < *best {
				*best = d
			}
		}
	}
	if err := pair.Verify(ctx, entries); err != nil {
		return fmt.Errorf("relay copy does not verify: %w", err)
	}
	tarRate := float64(size) / 1e6 / bestTar.Seconds()
	relayRate := float64(size) / 1e6 / bestRelay.Seconds()
	fmt.Printf("best of %d: openssh tar pipe %.1f MB/s, sshops relay %.1f MB/s, ratio %.2f (target >= 0.80)\n",
		rounds, tarRate, relayRate, relayRate/tarRate)
	return nil
}

// generate writes about scale GB of incompressible data in files of mixed sizes under root.
func generate(root string, scale float64) (files int, size int64, err error) {
	rng := rand.NewChaCha8([32]byte{1})
	mix := []struct {
		count int
		size  int
	}{{100, 5_000_000}, {2000, 200_000}, {8000, 10_000}, {20000, 1_000}}
	buf := make([]byte, 5_000_000)
	for _, m := range mix {
		count := int(float64(m.count) * scale)
		for i := range count {
			d := filepath.Join(root, fmt.Sprintf("d%d-%d", m.size, i%100), "cur")
			if err := os.MkdirAll(d, 0o755); err != nil {
				return 0, 0, err
			}
			b := buf[:m.size]
			_, _ = rng.Read(b)
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("%d.M%dP1.host,S=%d:2,S", 1700000000+i, i, m.size)), b, 0o600); err != nil {
				return 0, 0, err
			}
			files++
			size += int64(m.size)
		}
	}
	return files, size, nil
}

func shellJoin(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		s += "'" + a + "'"
	}
	return s
}
