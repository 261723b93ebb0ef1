package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// IMAPClient is the smallest IMAP4rev1 client that checks what a migration must keep: LOGIN,
// SELECT (UIDVALIDITY, UIDNEXT), UID FETCH of flags and Message-ID, UID STORE of flags and
// EXPUNGE, over plain TCP (the lab's Dovecot has no TLS). It is not safe for concurrent use.
type IMAPClient struct {
	conn net.Conn
	r    *bufio.Reader
	addr netip.AddrPort
	tag  int
}

// Mailbox is what SELECT reports.
type Mailbox struct {
	Exists      int
	UIDValidity uint32
	UIDNext     uint32
}

// IMAPMessage is one message as a client keeps track of it.
type IMAPMessage struct {
	UID       uint32
	Flags     []string // as the server lists them, e.g. `\Seen`, `\Flagged`
	MessageID string   // the Message-ID header's value, "" if none
}

// imapResponse is one response line with its literals cut out (each replaced by "{}").
type imapResponse struct {
	text     string
	literals []string
}

// DialIMAP connects to addr and reads the greeting. ctx bounds the whole session: when it
// ends, every call fails.
func DialIMAP(ctx context.Context, addr netip.AddrPort) (*IMAPClient, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("lab: imap %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	c := &IMAPClient{conn: conn, r: bufio.NewReader(conn), addr: addr}
	greet, err := c.read()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !strings.HasPrefix(greet.text, "* OK") {
		conn.Close()
		return nil, fmt.Errorf("lab: imap %s: greeting %q", addr, greet.text)
	}
	return c, nil
}

// Close closes the connection (without LOGOUT).
func (c *IMAPClient) Close() error { return c.conn.Close() }

// read reads one response, literals included.
func (c *IMAPClient) read() (imapResponse, error) {
	var res imapResponse
	var text strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return res, fmt.Errorf("lab: imap %s: %w", c.addr, err)
		}
		line = strings.TrimRight(line, "\r\n")
		n, ok := literalSize(line)
		if !ok {
			text.WriteString(line)
			res.text = text.String()
			return res, nil
		}
		text.WriteString(line[:strings.LastIndexByte(line, '{')] + "{}")
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return res, fmt.Errorf("lab: imap %s: literal: %w", c.addr, err)
		}
		res.literals = append(res.literals, string(buf))
	}
}

// literalSize returns N if line ends with a literal's announcement "{N}".
func literalSize(line string) (int, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(line[i+1 : len(line)-1])
	return n, err == nil && n >= 0
}

// cmd sends a command and returns the untagged responses; a tagged reply other than OK is an
// error carrying it.
func (c *IMAPClient) cmd(format string, args ...any) ([]imapResponse, error) {
	c.tag++
	tag := fmt.Sprintf("a%d", c.tag)
	line := fmt.Sprintf(format, args...)
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, line); err != nil {
		return nil, fmt.Errorf("lab: imap %s: %w", c.addr, err)
	}
	verb, _, _ := strings.Cut(line, " ")
	if verb == "UID" {
		verb = strings.Join(strings.Fields(line)[:2], " ")
	}
	var untagged []imapResponse
	for {
		res, err := c.read()
		if err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(res.text, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return nil, fmt.Errorf("lab: imap %s: %s: %s", c.addr, verb, rest)
			}
			return untagged, nil
		}
		untagged = append(untagged, res)
	}
}

// quoteIMAP makes s an IMAP quoted string.
func quoteIMAP(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Login logs in with LOGIN.
func (c *IMAPClient) Login(user, password string) error {
	_, err := c.cmd("LOGIN %s %s", quoteIMAP(user), quoteIMAP(password))
	return err
}

var (
	reExists      = regexp.MustCompile(`^\* (\d+) EXISTS`)
	reUIDValidity = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)
	reUIDNext     = regexp.MustCompile(`\[UIDNEXT (\d+)\]`)
	reFetchUID    = regexp.MustCompile(`[( ]UID (\d+)`)
	reFetchFlags  = regexp.MustCompile(`[( ]FLAGS \(([^)]*)\)`)
)

// Select selects mailbox (read-write) and returns its UIDVALIDITY, UIDNEXT and size.
func (c *IMAPClient) Select(mailbox string) (Mailbox, error) {
	rs, err := c.cmd("SELECT %s", quoteIMAP(mailbox))
	if err != nil {
		return Mailbox{}, err
	}
	var mb Mailbox
	for _, r := range rs {
		if m := reExists.FindStringSubmatch(r.text); m != nil {
			mb.Exists, _ = strconv.Atoi(m[1])
		}
		if m := reUIDValidity.FindStringSubmatch(r.text); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 32)
			mb.UIDValidity = uint32(v)
		}
		if m := reUIDNext.FindStringSubmatch(r.text); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 32)
			mb.UIDNext = uint32(v)
		}
	}
	if mb.UIDValidity == 0 || mb.UIDNext == 0 {
		return mb, fmt.Errorf("lab: imap %s: SELECT %q: no UIDVALIDITY or UIDNEXT", c.addr, mailbox)
	}
	return mb, nil
}

// Messages returns every message of the selected mailbox in UID order, leaving \Seen as it is.
func (c *IMAPClient) Messages() ([]IMAPMessage, error) {
	rs, err := c.cmd("UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
	if err != nil {
		return nil, err
	}
	var msgs []IMAPMessage
	for _, r := range rs {
		if !strings.Contains(r.text, " FETCH (") {
			continue
		}
		u := reFetchUID.FindStringSubmatch(r.text)
		f := reFetchFlags.FindStringSubmatch(r.text)
		if u == nil || f == nil {
			return nil, fmt.Errorf("lab: imap %s: malformed FETCH response %q", c.addr, r.text)
		}
		uid, _ := strconv.ParseUint(u[1], 10, 32)
		m := IMAPMessage{UID: uint32(uid), Flags: strings.Fields(f[1])}
		if len(r.literals) > 0 {
			m.MessageID = headerValue(r.literals[0], "Message-ID")
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// headerValue returns the unfolded value of header name in a header block, or "".
func headerValue(block, name string) string {
	var val []string
	in := false
	for _, l := range strings.Split(strings.ReplaceAll(block, "\r\n", "\n"), "\n") {
		switch {
		case in && (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")):
			val = append(val, strings.TrimSpace(l))
		case in:
			return strings.TrimSpace(strings.Join(val, " "))
		default:
			if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
				in, val = true, []string{strings.TrimSpace(v)}
			}
		}
	}
	return strings.TrimSpace(strings.Join(val, " "))
}

// Store changes the flags of the message with uid: op is "+FLAGS", "-FLAGS" or "FLAGS".
func (c *IMAPClient) Store(uid uint32, op string, flags ...string) error {
	switch op {
	case "+FLAGS", "-FLAGS", "FLAGS":
	default:
		return fmt.Errorf("lab: imap: store: invalid operation %q", op)
	}
	for _, f := range flags {
		if f == "" || strings.ContainsAny(f, " ()\r\n\"{") {
			return fmt.Errorf("lab: imap: store: invalid flag %q", f)
		}
	}
	_, err := c.cmd("UID STORE %d %s.SILENT (%s)", uid, op, strings.Join(flags, " "))
	return err
}

// Expunge removes the messages flagged \Deleted from the selected mailbox.
func (c *IMAPClient) Expunge() error {
	_, err := c.cmd("EXPUNGE")
	return err
}

// Logout logs out and closes the connection.
func (c *IMAPClient) Logout() error {
	_, err := c.cmd("LOGOUT")
	return errors.Join(err, c.conn.Close())
}
