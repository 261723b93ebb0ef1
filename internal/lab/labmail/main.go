// Command labmail is the lab's stand-in mail service: it accepts messages over a minimal line
// protocol on TCP and stores each one as a Maildir file, and it plays cmdeploy's activate and
// --disable-mail as `labmail enable` and `labmail disable`. It runs inside a lab host's mount
// namespace (internal/lab installs it there); nothing in it is product code.
//
// Protocol, per TCP connection, any number of messages:
//
//	client: MSG <id> <user>\n  body lines (a line starting with "." gets one more ".")  .\n
//	server: 250 <id>\n  only after the file is fsynced and renamed into <maildir>/<user>/new/
//	        550 <reason>\n  on a bad request (the connection is closed)
//
// The stored file starts with "X-Lab-Id: <id>\n", then the body. On SIGTERM the listener closes,
// messages still being received are dropped unacknowledged, messages being stored are finished
// and acknowledged, then the process exits.
//
// Control (each takes a lock in -state, so concurrent calls serialize):
//
//	labmail enable  -state DIR -listen ADDR:PORT -maildir DIR   start `serve`, wait until it listens
//	labmail disable -state DIR -listen ADDR:PORT                stop it, wait until the port is closed
//	labmail status  -state DIR                                  print "enabled" or "disabled"
//
// enable and disable append "<RFC 3339 time> enabling|enabled|disabling|disabled" lines to
// DIR/events.log; a call that finds the service already in the wanted state changes nothing.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: labmail serve|enable|disable|status [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("labmail "+os.Args[1], flag.ExitOnError)
	state := fs.String("state", "", "state directory (lock, pid file, events.log)")
	listen := fs.String("listen", "", "listen address ADDR:PORT")
	maildir := fs.String("maildir", "", "Maildir root; messages go to <maildir>/<user>/new")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(*listen, *maildir)
	case "enable":
		err = locked(*state, func() error { return enable(*state, *listen, *maildir) })
	case "disable":
		err = locked(*state, func() error { return disable(*state, *listen) })
	case "status":
		var pid int
		if pid, err = running(*state); err == nil {
			fmt.Println(map[bool]string{true: "enabled", false: "disabled"}[pid > 0])
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "labmail: %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// locked runs f holding an exclusive flock on state/ctl.lock.
func locked(state string, f func() error) error {
	if state == "" {
		return errors.New("-state is required")
	}
	l, err := os.OpenFile(filepath.Join(state, "ctl.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := syscall.Flock(int(l.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	return f()
}

func event(state, what string) error {
	f, err := os.OpenFile(filepath.Join(state, "events.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), what); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// running returns the PID of the live serve process recorded in state/labmail.pid, or 0.
func running(state string) (int, error) {
	b, err := os.ReadFile(filepath.Join(state, "labmail.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("malformed pid file: %q", b)
	}
	if !alive(pid) {
		return 0, nil
	}
	cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if !strings.Contains(string(cmd), "serve\x00") {
		return 0, nil // the PID was reused
	}
	return pid, nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func enable(state, listen, maildir string) error {
	if listen == "" || maildir == "" {
		return errors.New("-listen and -maildir are required")
	}
	if pid, err := running(state); err != nil {
		return err
	} else if pid > 0 {
		fmt.Println("labmail: already enabled")
		return nil
	}
	if err := event(state, "enabling"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(state, "labmail.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, "serve", "-listen", listen, "-maildir", maildir)
	cmd.Stderr = logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("serve did not start (%v); see %s", err, filepath.Join(state, "labmail.log"))
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return errors.New("serve not ready after 10s")
	}
	if err := os.WriteFile(filepath.Join(state, "labmail.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", listen, 2*time.Second)
	if err != nil {
		return fmt.Errorf("serve is ready but %s refuses: %w", listen, err)
	}
	c.Close()
	_ = cmd.Process.Release() // it outlives us (setsid); init reaps it
	fmt.Println("labmail: enabled")
	return event(state, "enabled")
}

func disable(state, listen string) error {
	pid, err := running(state)
	if err != nil {
		return err
	}
	if pid == 0 {
		fmt.Println("labmail: already disabled")
		return nil
	}
	if err := event(state, "disabling"); err != nil {
		return err
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(15 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if listen != "" {
		if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("serve %d exited but %s still accepts connections", pid, listen)
		}
	}
	if err := os.Remove(filepath.Join(state, "labmail.pid")); err != nil {
		return err
	}
	fmt.Println("labmail: disabled")
	return event(state, "disabled")
}

var (
	validID   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)
	validUser = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

type server struct {
	maildir  string
	uid, gid int // vmail's, or -1
	host     string
	seq      atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	stopping bool
	wg       sync.WaitGroup
}

func serve(listen, maildir string) error {
	if listen == "" || maildir == "" {
		return errors.New("-listen and -maildir are required")
	}
	s := &server{maildir: maildir, uid: -1, gid: -1, conns: map[net.Conn]struct{}{}}
	s.host, _ = os.Hostname()
	s.host = strings.NewReplacer("/", "_", ":", "_").Replace(s.host)
	if b, err := os.ReadFile("/etc/passwd"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Split(l, ":")
			if len(f) >= 4 && f[0] == "vmail" {
				s.uid, _ = strconv.Atoi(f[2])
				s.gid, _ = strconv.Atoi(f[3])
			}
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		s.mu.Lock()
		s.stopping = true
		for c := range s.conns {
			_ = c.SetReadDeadline(time.Unix(1, 0)) // readers give up; storers finish and ack
		}
		s.mu.Unlock()
		ln.Close()
	}()
	fmt.Println("ready")
	os.Stdout.Close()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			stopping := s.stopping
			s.mu.Unlock()
			if stopping {
				break
			}
			fmt.Fprintf(os.Stderr, "accept: %v\n", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(c)
	}
	s.wg.Wait()
	return nil
}

func (s *server) handle(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "MSG" || !validID.MatchString(f[1]) || !validUser.MatchString(f[2]) {
			fmt.Fprintf(c, "550 bad command %q\n", strings.TrimSpace(line))
			return
		}
		id, user := f[1], f[2]
		var body strings.Builder
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return // incomplete message: dropped, not acknowledged
			}
			if l == ".\n" {
				break
			}
			if strings.HasPrefix(l, ".") {
				l = l[1:]
			}
			if body.Len()+len(l) > 10<<20 {
				fmt.Fprintf(c, "550 message too big\n")
				return
			}
			body.WriteString(l)
		}
		if err := s.store(id, user, body.String()); err != nil {
			fmt.Fprintf(os.Stderr, "store %s for %s: %v\n", id, user, err)
			fmt.Fprintf(c, "451 %v\n", err)
			return
		}
		if _, err := io.WriteString(c, "250 "+id+"\n"); err != nil {
			fmt.Fprintf(os.Stderr, "ack %s: %v\n", id, err)
			return
		}
	}
}

// store writes the message to tmp/, fsyncs it, renames it into new/ and fsyncs new/.
func (s *server) store(id, user, body string) error {
	dir := filepath.Join(s.maildir, user)
	for _, d := range []string{"", "tmp", "new", "cur"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		if s.uid >= 0 {
			_ = os.Chown(p, s.uid, s.gid)
		}
	}
	now := time.Now()
	name := fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(), s.seq.Add(1), s.host)
	tmp := filepath.Join(dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, "X-Lab-Id: "+id+"\n"+body)
	if err == nil && s.uid >= 0 {
		err = f.Chown(s.uid, s.gid)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "new", name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Join(dir, "new"))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
