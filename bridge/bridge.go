// Package bridge is the forwarder that old runs during a handover through
// old (issue 14): it listens on old's service ports and forwards every
// connection to the same port on new's address, so that clients that still
// resolve the old address reach new while DNS moves. It is cutover itself,
// started on old as `cutover bridge serve`.
//
// It forwards plain TCP, byte for byte, in both directions; a half-closed
// connection stays half-closed (CloseWrite), a connection with no traffic
// either way for the idle timeout is closed, and connections beyond the cap
// are refused (accepted and closed at once). With PROXY protocol on, each
// connection to new starts with a PROXY v2 header that carries the client's
// address. It logs one line per connection and, when it stops, one line per
// port with the connections it carried: the scheduler reads those. Check
// makes a connection of its own through each listen address and sees it
// reach new, before the forwarder says it is ready; those are not counted.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options is what a forwarder listens on and where it forwards.
type Options struct {
	Listen        []string      // ADDR:PORT to listen on; ADDR is an IP literal
	To            string        // new's address, an IP literal: each port forwards to To:PORT
	ProxyProtocol bool          // start each forwarded connection with a PROXY v2 header
	MaxConns      int           // connections open at once, over all ports; 0: no cap
	Idle          time.Duration // close a connection with no traffic either way for this long; 0: never
	Log           io.Writer     // one line per event; nil: discarded
}

// PortStats counts what one port carried.
type PortStats struct {
	Port     uint16
	Conns    int64 // connections forwarded (dialled through to new)
	Refused  int64 // connections refused over the cap
	Failed   int64 // connections whose dial to new failed
	BytesIn  int64 // client to new
	BytesOut int64 // new to client
}

// Forwarder is a running set of listeners. Make one with Listen, run it
// with Serve.
type Forwarder struct {
	opts      Options
	to        netip.Addr
	listeners []net.Listener
	log       *logger
	open      atomic.Int64
	mu        sync.Mutex
	stats     map[uint16]*PortStats
	conns     map[net.Conn]struct{}
	checks    *checks // Check's connections, once it has started
}

// Listen checks the options and binds every listen address. A port that
// another process holds fails here, naming the address.
func Listen(ctx context.Context, o Options) (*Forwarder, error) {
	to, err := netip.ParseAddr(o.To)
	if err != nil {
		return nil, fmt.Errorf("bridge: --to %q: not an IP address", o.To)
	}
	if len(o.Listen) == 0 {
		return nil, errors.New("bridge: nothing to listen on")
	}
	if o.MaxConns < 0 {
		return nil, fmt.Errorf("bridge: connection cap %d: must be 0 or more", o.MaxConns)
	}
	if o.Idle < 0 {
		return nil, fmt.Errorf("bridge: idle timeout %s: must be 0 or more", o.Idle)
	}
	f := &Forwarder{opts: o, to: to.Unmap(), log: &logger{w: o.Log}, stats: map[uint16]*PortStats{}, conns: map[net.Conn]struct{}{}}
	var lc net.ListenConfig
	for _, a := range o.Listen {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || ap.Port() == 0 {
			f.closeListeners()
			return nil, fmt.Errorf("bridge: listen address %q: want IP:PORT with a port above 0", a)
		}
		l, err := lc.Listen(ctx, "tcp", ap.String())
		if err != nil {
			f.closeListeners()
			return nil, fmt.Errorf("bridge: listen on %s: %w", ap, err)
		}
		f.listeners = append(f.listeners, l)
		if f.stats[ap.Port()] == nil {
			f.stats[ap.Port()] = &PortStats{Port: ap.Port()}
		}
	}
	return f, nil
}

func (f *Forwarder) closeListeners() {
	for _, l := range f.listeners {
		l.Close()
	}
}

// Serve forwards connections until ctx is done, then closes the listeners
// and every open connection, logs the count of each port and returns them.
func (f *Forwarder) Serve(ctx context.Context) []PortStats {
	var wg sync.WaitGroup
	for _, l := range f.listeners {
		ap := netip.MustParseAddrPort(l.Addr().String())
		f.log.printf("listening on %s, forwarding to %s", ap, netip.AddrPortFrom(f.to, ap.Port()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.accept(ctx, l, ap.Port(), &wg)
		}()
	}
	<-ctx.Done()
	f.closeListeners()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	wg.Wait()
	stats := f.Stats()
	for _, s := range stats {
		f.log.printf("stopped port=%d conns=%d refused=%d failed=%d bytes_in=%d bytes_out=%d",
			s.Port, s.Conns, s.Refused, s.Failed, s.BytesIn, s.BytesOut)
	}
	return stats
}

// Stats returns the counts so far, by port.
func (f *Forwarder) Stats() []PortStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []PortStats
	for _, s := range f.stats {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b PortStats) int { return int(a.Port) - int(b.Port) })
	return out
}

func (f *Forwarder) accept(ctx context.Context, l net.Listener, port uint16, wg *sync.WaitGroup) {
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				f.log.printf("accept on port %d: %v", port, err)
			}
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			continue
		}
		if f.opts.MaxConns > 0 && f.open.Load() >= int64(f.opts.MaxConns) {
			f.count(port, func(s *PortStats) { s.Refused++ })
			f.log.printf("refused port=%d from=%s: %d connections open (the cap)", port, c.RemoteAddr(), f.opts.MaxConns)
			c.Close()
			continue
		}
		f.open.Add(1)
		f.track(c, true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer f.open.Add(-1)
			defer f.track(c, false)
			f.forward(ctx, c, port)
		}()
	}
}

func (f *Forwarder) track(c net.Conn, add bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if add {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

func (f *Forwarder) count(port uint16, fn func(*PortStats)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.stats[port])
}

// forward carries one client connection to new and back.
func (f *Forwarder) forward(ctx context.Context, client net.Conn, port uint16) {
	defer client.Close()
	target := netip.AddrPortFrom(f.to, port).String()
	if result := f.checkFor(ctx, client); result != nil {
		result <- f.checkConn(ctx, client, target)
		return
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	up, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		f.count(port, func(s *PortStats) { s.Failed++ })
		f.log.printf("failed port=%d from=%s: %v", port, client.RemoteAddr(), err)
		return
	}
	defer up.Close()
	f.track(up, true)
	defer f.track(up, false)
	if f.opts.ProxyProtocol {
		if _, err := up.Write(ProxyHeader(client.RemoteAddr(), client.LocalAddr())); err != nil {
			f.count(port, func(s *PortStats) { s.Failed++ })
			f.log.printf("failed port=%d from=%s: PROXY header: %v", port, client.RemoteAddr(), err)
			return
		}
	}
	f.count(port, func(s *PortStats) { s.Conns++ })
	f.log.printf("conn port=%d from=%s", port, client.RemoteAddr())
	var last atomic.Int64 // unix nanoseconds of the last byte either way
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	var in, out int64
	go func() { in = f.pipe(up, client, &last); done <- struct{}{} }()
	go func() { out = f.pipe(client, up, &last); done <- struct{}{} }()
	<-done
	<-done
	f.count(port, func(s *PortStats) { s.BytesIn += in; s.BytesOut += out })
}

// checks are the connections Check made, by their local address (the
// accepted connection's remote one).
type checks struct {
	dialled chan struct{} // closed once every check connection is in result
	result  map[netip.AddrPort]chan error
}

// Check connects to each listen address, as a client would, and waits
// until the forwarder has dialled new for each of those connections: every
// port reaches new through old's address. Its connections go no further
// than that dial (closed at once) and are not counted; each is logged as
// a "checked" line. It returns one problem per address that failed. Call
// it once, while Serve runs.
func (f *Forwarder) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c := &checks{dialled: make(chan struct{}), result: map[netip.AddrPort]chan error{}}
	f.mu.Lock()
	f.checks = c
	f.mu.Unlock()
	// Once Check returns, a client is a client, also one whose address and port a check
	// connection used before (the sender's connections come from old's address too).
	defer func() {
		f.mu.Lock()
		f.checks = nil
		f.mu.Unlock()
	}()
	var problems []string
	type wait struct {
		listen net.Addr
		result chan error
	}
	var waits []wait
	d := net.Dialer{Timeout: 5 * time.Second}
	for _, l := range f.listeners {
		conn, err := d.DialContext(ctx, "tcp", l.Addr().String())
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", l.Addr(), err))
			continue
		}
		defer conn.Close()
		w := wait{listen: l.Addr(), result: make(chan error, 1)}
		c.result[unmapped(conn.LocalAddr())] = w.result
		waits = append(waits, w)
	}
	close(c.dialled)
	for _, w := range waits {
		select {
		case err := <-w.result:
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s does not reach new: %v", w.listen, err))
			}
		case <-ctx.Done():
			problems = append(problems, fmt.Sprintf("%s: no answer from the forwarder within 15 s", w.listen))
		}
	}
	if len(problems) > 0 {
		return errors.New("bridge: check: " + strings.Join(problems, "; "))
	}
	return nil
}

// checkFor is where to send the outcome of client when it is one of
// Check's connections, else nil.
func (f *Forwarder) checkFor(ctx context.Context, client net.Conn) chan error {
	f.mu.Lock()
	c := f.checks
	f.mu.Unlock()
	if c == nil {
		return nil
	}
	select {
	case <-c.dialled:
	case <-ctx.Done():
		return nil
	}
	// Each check connection's result is claimed once: its channel holds one result, and a
	// second connection from the same address and port must not wait on it.
	f.mu.Lock()
	defer f.mu.Unlock()
	from := unmapped(client.RemoteAddr())
	r := c.result[from]
	delete(c.result, from)
	return r
}

// checkConn is the forwarder's side of one of Check's connections: the
// dial to new, closed at once. It logs "checked via LISTEN: reaches NEW".
func (f *Forwarder) checkConn(ctx context.Context, client net.Conn, target string) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	up, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		f.log.printf("check failed via %s: %v", client.LocalAddr(), err)
		return err
	}
	up.Close()
	f.log.printf("checked via %s: reaches %s", client.LocalAddr(), target)
	return nil
}

// pipe copies src to dst until src ends, then half-closes dst. An error
// either way (or the idle timeout) closes both. It returns the bytes
// copied.
func (f *Forwarder) pipe(dst, src net.Conn, last *atomic.Int64) int64 {
	buf := make([]byte, 32*1024)
	var n int64
	for {
		if f.opts.Idle > 0 {
			src.SetReadDeadline(time.Unix(0, last.Load()).Add(f.opts.Idle))
		}
		r, err := src.Read(buf)
		if r > 0 {
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:r]); werr != nil {
				src.Close()
				dst.Close()
				return n
			}
			n += int64(r)
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// The other direction may have moved since the deadline was set.
			if time.Since(time.Unix(0, last.Load())) < f.opts.Idle {
				continue
			}
			src.Close()
			dst.Close()
			return n
		}
		if errors.Is(err, io.EOF) {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			} else {
				dst.Close()
			}
			return n
		}
		src.Close()
		dst.Close()
		return n
	}
}

// logger writes timestamped lines; safe for concurrent use.
type logger struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *logger) printf(format string, args ...any) {
	if l.w == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s bridge: %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// ProxyHeader is the PROXY protocol v2 header (PROXY command, TCP) for a
// connection from src to dst. When the two are not the same family, both
// are given as IPv6 (an IPv4 address mapped).
func ProxyHeader(src, dst net.Addr) []byte {
	s, d := addrPort(src), addrPort(dst)
	h := append([]byte(nil), proxySignature...)
	h = append(h, 0x21) // version 2, PROXY
	if s.Addr().Unmap().Is4() && d.Addr().Unmap().Is4() {
		h = append(h, 0x11, 0, 12) // TCP over IPv4, 12 bytes of addresses
		a, b := s.Addr().Unmap().As4(), d.Addr().Unmap().As4()
		h = append(h, a[:]...)
		h = append(h, b[:]...)
	} else {
		h = append(h, 0x21, 0, 36) // TCP over IPv6, 36 bytes
		a, b := s.Addr().As16(), d.Addr().As16()
		h = append(h, a[:]...)
		h = append(h, b[:]...)
	}
	h = append(h, byte(s.Port()>>8), byte(s.Port()), byte(d.Port()>>8), byte(d.Port()))
	return h
}

var proxySignature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// unmapped is a's address and port, an IPv4-mapped address as IPv4: the
// same connection seen from either end.
func unmapped(a net.Addr) netip.AddrPort {
	ap := addrPort(a)
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Conns counts the "conn" lines of a forwarder's log: the connections
// each port has carried so far (a running forwarder's log grows as it
// goes), less one for each "check" line: the connections cutover made
// itself to check the port, which it logs as CheckLine.
func Conns(log string) map[uint16]int64 {
	out := map[uint16]int64{}
	for _, line := range strings.Split(log, "\n") {
		for prefix, n := range map[string]int64{" bridge: conn port=": 1, " bridge: check port=": -1} {
			_, rest, ok := strings.Cut(line, prefix)
			if !ok {
				continue
			}
			p, _, _ := strings.Cut(rest, " ")
			if port, err := strconv.ParseUint(p, 10, 16); err == nil {
				out[uint16(port)] += n
			}
		}
	}
	for p, n := range out {
		if n <= 0 {
			delete(out, p)
		}
	}
	return out
}

// CheckLine is the log line that marks one connection on port as
// cutover's own check, without its timestamp.
func CheckLine(port uint16) string {
	return fmt.Sprintf("bridge: check port=%d (the connection was cutover's own check)", port)
}
