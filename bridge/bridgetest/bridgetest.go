// Package bridgetest is test support for the forwarder: new's side of a
// bridged port, a TCP server on an address of the test's choosing.
package bridgetest

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// Backend listens on addr at a free port and runs handle for each
// connection (closing it after) until the test ends. It returns the port.
func Backend(t testing.TB, addr netip.Addr, handle func(net.Conn)) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); handle(c) }()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String()).Port()
}

// Echo sends back what it reads.
func Echo(c net.Conn) { io.Copy(c, c) }

// Buffer is a log that a test reads while the forwarder writes to it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
