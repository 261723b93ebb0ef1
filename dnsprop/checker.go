package dnsprop

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Checker asks DNS servers what they serve. The zero value is not usable:
// Resolvers must be set wherever resolvers are waited on or discovery is
// needed. A Checker is not modified by its methods and may be used by several
// goroutines at once.
type Checker struct {
	Zone          string           // "example.org."; "" = find by SOA walk via Resolvers
	Authoritative []netip.AddrPort // nil/empty = discover: SOA -> NS names -> every A/AAAA of each NS, via Resolvers
	Resolvers     []netip.AddrPort // required for resolver checks and discovery; never defaulted from resolv.conf
	Quorum        int              // resolvers that must serve the new sets; 0 = all
	QueryTimeout  time.Duration    // per attempt; default 2s
	Retries       int              // extra attempts after a timeout or network error; default 2 (negative: 0)
	Concurrency   int              // queries in flight at once; default 16
	Clock         func() time.Time // default time.Now (tests)

	// PollInterval is how often authoritative servers are asked for their SOA
	// serial while waiting (their answers carry no countdown); a changed serial
	// makes the names be asked again at once. Also the base of the back-off
	// after an unknown answer. Default 1s.
	PollInterval time.Duration
	// AuthoritativePort is the port used for discovered authoritative
	// addresses. Default 53 (tests use other ports).
	AuthoritativePort uint16

	// after, when set (tests), replaces real waiting; it must return a channel
	// that fires after d has passed on Clock.
	after func(d time.Duration) <-chan time.Time
}

// cfg is a Checker with defaults applied.
type cfg struct {
	zone      string
	auth      []netip.AddrPort
	resolvers []netip.AddrPort
	quorum    int
	timeout   time.Duration
	retries   int
	conc      int
	clock     func() time.Time
	poll      time.Duration
	authPort  uint16
	after     func(d time.Duration) <-chan time.Time
}

func (c *Checker) config() (*cfg, error) {
	k := &cfg{
		auth: c.Authoritative, resolvers: c.Resolvers, quorum: c.Quorum,
		timeout: c.QueryTimeout, retries: c.Retries, conc: c.Concurrency,
		clock: c.Clock, poll: c.PollInterval, authPort: c.AuthoritativePort, after: c.after,
	}
	if c.Zone != "" {
		z := dns.CanonicalName(c.Zone)
		if _, ok := dns.IsDomainName(z); !ok {
			return nil, fmt.Errorf("dnsprop: invalid zone %q", c.Zone)
		}
		k.zone = z
	}
	for _, s := range append(append([]netip.AddrPort(nil), k.auth...), k.resolvers...) {
		if !s.IsValid() || s.Port() == 0 {
			return nil, fmt.Errorf("dnsprop: invalid server address %q", s.String())
		}
	}
	if k.quorum < 0 {
		return nil, fmt.Errorf("dnsprop: quorum %d is negative", k.quorum)
	}
	if k.timeout <= 0 {
		k.timeout = 2 * time.Second
	}
	if c.Retries == 0 {
		k.retries = 2
	} else if c.Retries < 0 {
		k.retries = 0
	}
	if k.conc <= 0 {
		k.conc = 16
	}
	if k.clock == nil {
		k.clock = time.Now
	}
	if k.poll <= 0 {
		k.poll = time.Second
	}
	if k.authPort == 0 {
		k.authPort = 53
	}
	if k.after == nil {
		k.after = time.After
	}
	return k, nil
}

// needResolvers reports ErrNoResolvers with what they were needed for.
func (k *cfg) needResolvers(what string) error {
	if len(k.resolvers) == 0 {
		return fmt.Errorf("%w: %s needs at least one", ErrNoResolvers, what)
	}
	return nil
}

var errEmptySets = errors.New("dnsprop: expected sets are both empty")
