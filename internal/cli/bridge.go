package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cutover-dev/cutover/bridge"
)

const bridgeHelp = `The forwarder of a handover through old ([bridge] in the config). cutover run copies
cutover to old and starts it there, detached, after new is activated; it stops it at unbridge.
You do not normally run it yourself.

  serve  listen on each ADDR:PORT and forward every connection to the same PORT on --to

  --listen ADDR:PORT,...  where to listen (old's address and address6, each bridged port)
  --to ADDR               new's address: the only place it forwards to
  --pidfile F             its pid while it runs; refuses to start while another forwarder runs under F
  --log F                 appended: one line per connection, and per port the connections it
                          carried when it stops
  --proxy-protocol        start each forwarded connection with a PROXY v2 header (the client's address)
  --max-conns N           connections open at once over all ports; more are refused (default 1000)
  --idle D                close a connection with no traffic either way for D (default 10m)
  --ready-fd N            once it listens on every address, check each (a connection of its own
                          through it reaches new's port), then write one line to file descriptor N
                          and close it: "ready", or "failed: " and what the check found

It stops on SIGTERM or SIGINT: it closes every connection, logs the counts and removes F.`

// cmdBridge runs the forwarder of a handover through old.
func cmdBridge(ctx context.Context, e *env, c *command, args []string) error {
	if len(args) == 0 || args[0] != "serve" {
		return &usageError{err: fmt.Errorf("bridge: want the subcommand serve"), hint: "cutover help bridge"}
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	listen := fs.String("listen", "", "")
	to := fs.String("to", "", "")
	pidfile := fs.String("pidfile", "", "")
	logPath := fs.String("log", "", "")
	proxy := fs.Bool("proxy-protocol", false, "")
	maxConns := fs.Int("max-conns", 1000, "")
	idle := fs.Duration("idle", 10*time.Minute, "")
	readyFd := fs.Int("ready-fd", 0, "")
	if _, err := parse(c, fs, args[1:], 0, 0); err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"--listen", *listen}, {"--to", *to}, {"--pidfile", *pidfile}, {"--log", *logPath}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return &usageError{err: fmt.Errorf("bridge: missing %s", strings.Join(missing, ", ")), hint: "cutover " + c.name + " " + c.args}
	}
	logf, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("bridge: log: %w", err)
	}
	defer logf.Close()
	if err := bridge.WritePid(*pidfile); err != nil {
		return err
	}
	defer bridge.RemovePid(*pidfile)
	f, err := bridge.Listen(ctx, bridge.Options{
		Listen:        strings.Split(*listen, ","),
		To:            *to,
		ProxyProtocol: *proxy,
		MaxConns:      *maxConns,
		Idle:          *idle,
		Log:           logf,
	})
	if err != nil {
		fmt.Fprintf(logf, "%s %v\n", time.Now().UTC().Format(time.RFC3339), err)
		return err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		f.Serve(ctx)
	}()
	if *readyFd > 0 {
		ready := os.NewFile(uintptr(*readyFd), "ready-fd")
		line := "ready"
		if err := f.Check(ctx); err != nil {
			line = "failed: " + err.Error()
		}
		fmt.Fprintln(ready, line)
		ready.Close()
	}
	<-served
	return nil
}
