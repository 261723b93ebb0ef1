package sshops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cutover-dev/cutover/internal/shellquote"
)

// Endpoint is one host as cutover reaches it.
type Endpoint struct {
	Role string // "old" or "new"; prefixes log lines as "[old] "
	Addr netip.Addr
	Port int    // 0 means 22
	User string // "" means root
}

func (ep Endpoint) port() int {
	if ep.Port == 0 {
		return 22
	}
	return ep.Port
}

func (ep Endpoint) user() string {
	if ep.User == "" {
		return "root"
	}
	return ep.User
}

// sshDest is ep as ssh's destination argument: user@address, an IPv6 address bare (ssh cannot
// resolve "[::1]").
func (ep Endpoint) sshDest() string { return ep.user() + "@" + ep.Addr.String() }

// rsyncDest is ep as the host part of an rsync remote path ("DEST:dir"): user@address, an IPv6
// address in brackets.
func (ep Endpoint) rsyncDest() string {
	if ep.Addr.Is6() {
		return ep.user() + "@[" + ep.Addr.String() + "]"
	}
	return ep.sshDest()
}

// hostPort is "addr:port" (IPv6 in brackets), the form used to dial and to look up known_hosts.
func (ep Endpoint) hostPort() string {
	return net.JoinHostPort(ep.Addr.String(), strconv.Itoa(ep.port()))
}

// Auth says how cutover authenticates and how it verifies host keys.
type Auth struct {
	IdentityFile     string        // "" = agent at AgentSocket
	AgentSocket      string        // default os.Getenv("SSH_AUTH_SOCK")
	KnownHosts       string        // required; host keys are always verified, by address and port
	AcceptNewHostKey bool          // record an unknown host's key in KnownHosts instead of stopping
	DialTimeout      time.Duration // default 15s; also the keepalive interval
}

const defaultDialTimeout = 15 * time.Second

// UnknownHostError is returned by Dial when KnownHosts has no key for the host and
// AcceptNewHostKey is false.
type UnknownHostError struct {
	Host        string // "addr:port"
	KnownHosts  string // the file searched
	Fingerprint string // "ssh-ed25519 SHA256:..."
	Line        string // the exact known_hosts line that would trust the key
}

func (e *UnknownHostError) Error() string {
	return fmt.Sprintf("sshops: unknown host %s: its key %s is not in %q; if that is the right key, add this line to the file: %s",
		e.Host, e.Fingerprint, e.KnownHosts, e.Line)
}

// HostKeyMismatchError is returned by Dial when KnownHosts holds other keys for the host than
// the one it presented.
type HostKeyMismatchError struct {
	Host       string   // "addr:port"
	KnownHosts string   // the file holding the stored keys
	Want       []string // fingerprints stored, "ssh-ed25519 SHA256:... (line N)"
	Got        string   // fingerprint presented, "ssh-ed25519 SHA256:..."
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("sshops: host key mismatch for %s: it presented %s but %q has %s; if the host was reinstalled, remove the old key with: %s",
		e.Host, e.Got, e.KnownHosts, strings.Join(e.Want, ", "), e.Hint())
}

// Hint is the command that removes the stored keys of the host.
func (e *HostKeyMismatchError) Hint() string {
	return fmt.Sprintf("ssh-keygen -R %s -f %s", shellQuote(knownhosts.Normalize(e.Host)), shellQuote(e.KnownHosts))
}

// ErrEncryptedIdentity is wrapped by Dial's error when the identity file is encrypted and no agent
// holds it.
var ErrEncryptedIdentity = errors.New("encrypted identity file")

// Client is an SSH connection to one host.
type Client struct {
	ep      Endpoint
	conn    *ssh.Client
	hostKey ssh.PublicKey
	log     *lineLog
	done    chan struct{}

	closeOnce sync.Once
	closeErr  error
	fwdOnce   sync.Once
	fwdErr    error
	agentMu   sync.Mutex
	agentOn   bool
	idsMu     sync.Mutex
	ids       *idNames // the host's user and group names, read once (see Client.idNames)
}

// Endpoint returns the endpoint the client is connected to.
func (c *Client) Endpoint() Endpoint { return c.ep }

// HostKey returns the verified host key of the server.
func (c *Client) HostKey() ssh.PublicKey { return c.hostKey }

// Close closes the connection.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}

func fingerprint(k ssh.PublicKey) string {
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}

// knownHostsMu serialises appends to known_hosts files within the process.
var knownHostsMu sync.Mutex

// hostKeyCheck loads the known_hosts file (a missing file is empty) and returns the callback and
// the key algorithms stored for the host (nil: none, let the server choose).
func hostKeyCheck(ep Endpoint, auth Auth, log *lineLog) (ssh.HostKeyCallback, []string, error) {
	if auth.KnownHosts == "" {
		return nil, nil, errors.New("sshops: known_hosts file is required")
	}
	path := auth.KnownHosts
	var check ssh.HostKeyCallback
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		check = func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
	} else {
		cb, err := knownhosts.New(path)
		if err != nil {
			return nil, nil, fmt.Errorf("sshops: known_hosts %q: %w", path, err)
		}
		check = cb
	}
	hostPort := ep.hostPort()
	remote := &net.TCPAddr{IP: ep.Addr.AsSlice(), Port: ep.port()}

	// Ask for the stored key types with a key that cannot match.
	var algos []string
	var ke *knownhosts.KeyError
	if err := check(hostPort, remote, probeKey{}); errors.As(err, &ke) {
		for _, k := range ke.Want {
			algos = append(algos, algorithmsFor(k.Key.Type())...)
		}
	}
	slices.Sort(algos)
	algos = slices.Compact(algos)

	cb := func(hostname string, addr net.Addr, key ssh.PublicKey) error {
		err := check(hostPort, remote, key)
		var ke *knownhosts.KeyError
		if err == nil || !errors.As(err, &ke) {
			if err != nil {
				return fmt.Errorf("sshops: host key of %s: %w", hostPort, err)
			}
			return nil
		}
		line := knownhosts.Line([]string{knownhosts.Normalize(hostPort)}, key)
		if len(ke.Want) == 0 {
			if !auth.AcceptNewHostKey {
				return &UnknownHostError{Host: hostPort, KnownHosts: path, Fingerprint: fingerprint(key), Line: line}
			}
			if err := appendKnownHost(path, line); err != nil {
				return err
			}
			log.printf("recorded new host key %s in %q", fingerprint(key), path)
			return nil
		}
		mm := &HostKeyMismatchError{Host: hostPort, KnownHosts: path, Got: fingerprint(key)}
		for _, k := range ke.Want {
			mm.Want = append(mm.Want, fmt.Sprintf("%s (line %d)", fingerprint(k.Key), k.Line))
		}
		return mm
	}
	return cb, algos, nil
}

func appendKnownHost(path, line string) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sshops: recording host key: %w", err)
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sshops: recording host key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sshops: recording host key: %w", err)
	}
	prefix := ""
	if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n")) {
		prefix = "\n"
	}
	if _, err := f.WriteString(prefix + line + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("sshops: recording host key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sshops: recording host key: %w", err)
	}
	return nil
}

// algorithmsFor lists the host key algorithms that verify a key of the given type.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// probeKey is a public key that matches nothing, used to list the stored keys of a host.
type probeKey struct{}

func (probeKey) Type() string                        { return "cutover-probe" }
func (probeKey) Marshal() []byte                     { return []byte("\x00\x00\x00\x0dcutover-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// authMethods builds the client's authentication from Auth.
func authMethods(auth Auth) ([]ssh.AuthMethod, func(), error) {
	sock := auth.AgentSocket
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if auth.IdentityFile != "" {
		pem, err := os.ReadFile(auth.IdentityFile)
		if err != nil {
			return nil, nil, fmt.Errorf("sshops: identity file: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			// Use the agent if it holds this key.
			if sock != "" && missing.PublicKey != nil {
				if ag, closeAg, err := dialAgent(sock); err == nil {
					signers, err := ag.Signers()
					if err == nil {
						want := missing.PublicKey.Marshal()
						for _, s := range signers {
							if bytes.Equal(s.PublicKey().Marshal(), want) {
								return []ssh.AuthMethod{ssh.PublicKeys(s)}, closeAg, nil
							}
						}
					}
					closeAg()
				}
			}
			return nil, nil, fmt.Errorf("sshops: identity file %q is encrypted and no agent holds it; add it to your agent with: ssh-add %s: %w",
				auth.IdentityFile, shellQuote(auth.IdentityFile), ErrEncryptedIdentity)
		case err != nil:
			return nil, nil, fmt.Errorf("sshops: identity file %q: %w", auth.IdentityFile, err)
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, func() {}, nil
	}
	if sock == "" {
		return nil, nil, errors.New("sshops: no identity file and SSH_AUTH_SOCK is not set: start ssh-agent and ssh-add your key, or name an identity file")
	}
	ag, closeAg, err := dialAgent(sock)
	if err != nil {
		return nil, nil, err
	}
	return []ssh.AuthMethod{ssh.PublicKeysCallback(ag.Signers)}, closeAg, nil
}

func dialAgent(sock string) (agent.ExtendedAgent, func(), error) {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("sshops: ssh agent at %q: %w", sock, err)
	}
	return agent.NewClient(conn), func() { conn.Close() }, nil
}

// Dial connects to ep, verifying its host key against auth.KnownHosts. log receives the client's
// lines prefixed with "[role] ", one Write per line, from several goroutines: it must be safe for
// concurrent use.
func Dial(ctx context.Context, ep Endpoint, auth Auth, log io.Writer) (*Client, error) {
	if !ep.Addr.IsValid() {
		return nil, fmt.Errorf("sshops: %s: no address", ep.Role)
	}
	ll := newLineLog(log, ep.Role)
	timeout := auth.DialTimeout
	if timeout <= 0 {
		timeout = defaultDialTimeout
	}
	hkcb, algos, err := hostKeyCheck(ep, auth, ll)
	if err != nil {
		return nil, err
	}
	methods, closeAuth, err := authMethods(auth)
	if err != nil {
		return nil, err
	}
	var hostKey ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: ep.user(),
		Auth: methods,
		HostKeyCallback: func(h string, a net.Addr, k ssh.PublicKey) error {
			if err := hkcb(h, a, k); err != nil {
				return err
			}
			hostKey = k
			return nil
		},
		HostKeyAlgorithms: algos,
	}
	errTimeout := fmt.Errorf("no SSH handshake within %s: %w", timeout, context.DeadlineExceeded)
	dctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", ep.hostPort())
	if err != nil {
		closeAuth()
		if dctx.Err() != nil {
			err = context.Cause(dctx)
		}
		return nil, fmt.Errorf("sshops: %s: connecting to %s: %w", ep.Role, ep.hostPort(), err)
	}
	_ = nc.SetDeadline(time.Now().Add(timeout + time.Second)) // a backstop: dctx ends first
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, ep.hostPort(), cfg)
	stopped := stop()
	closeAuth()
	if err != nil {
		nc.Close()
		var uh *UnknownHostError
		var mm *HostKeyMismatchError
		if errors.As(err, &uh) {
			return nil, uh
		}
		if errors.As(err, &mm) {
			return nil, mm
		}
		if !stopped {
			return nil, fmt.Errorf("sshops: %s: ssh to %s: %w", ep.Role, ep.hostPort(), context.Cause(dctx))
		}
		return nil, fmt.Errorf("sshops: %s: ssh to %s as %q: %w", ep.Role, ep.hostPort(), ep.user(), err)
	}
	if !stopped {
		sc.Close()
		return nil, fmt.Errorf("sshops: %s: ssh to %s: %w", ep.Role, ep.hostPort(), context.Cause(dctx))
	}
	_ = nc.SetDeadline(time.Time{})
	c := &Client{ep: ep, conn: ssh.NewClient(sc, chans, reqs), hostKey: hostKey, log: ll, done: make(chan struct{})}
	go c.keepalive(timeout)
	ll.printf("connected to %s@%s (host key %s)", ep.user(), ep.hostPort(), fingerprint(hostKey))
	return c, nil
}

// keepalive sends a keepalive request every interval and closes the connection when one is not
// answered within another interval.
func (c *Client) keepalive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		res := make(chan error, 1)
		go func() {
			_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
			res <- err
		}()
		select {
		case <-c.done:
			return
		case err := <-res:
			if err != nil {
				c.log.printf("connection lost: %v", err)
				c.Close()
				return
			}
		case <-time.After(interval):
			c.log.printf("connection lost: no answer to keepalive within %s", interval)
			c.Close()
			return
		}
	}
}

// shellQuote quotes s for a POSIX shell: the project's one rule, under the
// short name the commands of this package are written with.
var shellQuote = shellquote.Quote
