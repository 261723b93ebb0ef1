package lab

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
)

// SMTPSink is a remote domain's mail server as far as a relay's outgoing queue is concerned: it
// accepts every message over SMTP on Addr:25 and records its Message-ID. Start it late to keep
// mail for its domain deferred until then.
type SMTPSink struct {
	Addr netip.AddrPort

	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	ids   []string
	conns map[net.Conn]bool
	once  sync.Once
}

// StartSMTPSink puts addr on the lab's loopback and listens on addr:25.
func StartSMTPSink(addr netip.Addr) (*SMTPSink, error) {
	if err := checkLabAddr("smtp sink", addr); err != nil {
		return nil, err
	}
	if err := acquireAddr(addr); err != nil {
		return nil, err
	}
	s := &SMTPSink{Addr: netip.AddrPortFrom(addr, smtpPort), conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", s.Addr.String())
	if err != nil {
		_ = releaseAddr(addr)
		return nil, fmt.Errorf("lab: smtp sink: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
		}
	}()
	return s, nil
}

// serve speaks the server side of one SMTP session.
func (s *SMTPSink) serve(c net.Conn) {
	r := bufio.NewReader(c)
	reply := func(l string) bool { _, err := fmt.Fprintf(c, "%s\r\n", l); return err == nil }
	if !reply("220 sink.remote.test ESMTP lab sink") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(line)), " ")
		switch verb {
		case "EHLO", "HELO":
			reply("250 sink.remote.test")
		case "MAIL", "RCPT", "RSET", "NOOP":
			reply("250 ok")
		case "DATA":
			reply("354 go ahead")
			var head strings.Builder
			inHead := true
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				if strings.TrimRight(l, "\r\n") == "" {
					inHead = false
				}
				if inHead {
					head.WriteString(l)
				}
			}
			s.mu.Lock()
			s.ids = append(s.ids, headerValue(head.String(), "Message-ID"))
			s.mu.Unlock()
			reply("250 queued")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

// MessageIDs returns the Message-IDs of the messages received, in order, repeats included.
func (s *SMTPSink) MessageIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

// Stop closes the listener, waits for the sessions and takes the address off lo (unless
// another lab server uses it). It is idempotent.
func (s *SMTPSink) Stop() error {
	var err error
	s.once.Do(func() {
		err = s.ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		err = errors.Join(err, releaseAddr(s.Addr.Addr()))
	})
	return err
}
