// Package providers owns cutover's DNS provider layer: the registry that maps a
// [providers.NAME] table to a libdns client, the capabilities of each provider
// type (as data, with reasons), and the record operations the scheduler and the
// `cutover dns` commands run — Snapshot, LowerTTL, Swap, RestoreTTL and Revert —
// written once over the libdns interfaces, with their precondition checks and
// idempotence, instead of once per provider.
//
// Provider types live in subpackages (providers/cloudflare, providers/rfc2136,
// ...) and register themselves in init; providers/all imports every one of them.
package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"

	"github.com/cutover-dev/cutover/config"
)

// Env is what a provider may use besides its settings.
type Env struct {
	Out           io.Writer        // where the manual provider prints instructions
	Authoritative []netip.AddrPort // from [dns] authoritative (may be empty: discover via Resolvers)
	Resolvers     []netip.AddrPort // from [dns] resolvers (never default to anything else)
	Zone          string

	// WaitAuthoritative, when set, is how the manual provider waits until
	// every authoritative server serves what the operator was asked to set
	// (the CLI wires it to dnsprop). When nil, the manual provider polls
	// Authoritative itself, comparing addresses and TTLs.
	WaitAuthoritative WaitFunc

	check bool // set by Check: factories stop before resolving secrets
}

// WaitFunc waits until every authoritative server of the zone serves each
// Expect (whole RRsets; an empty Addrs means the RRset must not exist). It
// returns nil once they all do, or an error (wrapping ctx.Err() on timeout).
type WaitFunc func(ctx context.Context, want []Expect) error

// Expect is one RRset an operation expects the zone to serve.
type Expect struct {
	Name  string       // FQDN with trailing dot
	Type  string       // "A" or "AAAA"
	Addrs []netip.Addr // empty: no such RRset
	TTL   time.Duration
}

// Client is what every provider gives: read the zone, replace RRsets, delete
// records. SetRecords must follow the libdns contract (whole RRsets replaced);
// providers whose library does not are wrapped until it does.
type Client interface {
	libdns.RecordGetter
	libdns.RecordSetter
	libdns.RecordDeleter
}

// NameReader is an optional ability for clients that cannot list a whole zone
// (the manual provider reads the authoritative servers name by name). Zone
// uses it instead of GetRecords when the client has it.
type NameReader interface {
	GetNameRecords(ctx context.Context, zone string, names []string) ([]libdns.Record, error)
}

// Factory builds a client from one [providers.NAME] table. It reads every
// setting through the accessors, then calls Ready before resolving secrets or
// touching the network.
type Factory func(s *config.ProviderSettings, env Env) (Client, error)

// Capability says whether a provider can do something, and why not.
type Capability struct {
	OK     bool
	Reason string
}

// Capabilities describes a provider type.
type Capabilities struct {
	MinTTL       time.Duration
	MinTTLReason string
	RRsetSet     Capability // SetRecords replaces whole RRsets (after our work-arounds)
	Atomic       Capability // one SetRecords call is applied all at once
}

var (
	regMu    sync.RWMutex
	registry = map[string]entry{}
)

type entry struct {
	f    Factory
	caps Capabilities
}

// Register makes a provider type available. It panics on an empty name, a nil
// factory or a duplicate type: those are programming errors.
func Register(typ string, f Factory, caps Capabilities) {
	regMu.Lock()
	defer regMu.Unlock()
	if typ == "" || f == nil {
		panic("providers: Register needs a type name and a factory")
	}
	if _, dup := registry[typ]; dup {
		panic(fmt.Sprintf("providers: Register called twice for type %q", typ))
	}
	registry[typ] = entry{f, caps}
}

// Types lists the registered provider types, sorted.
func Types() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	ts := make([]string, 0, len(registry))
	for t := range registry {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// ErrUnknownType is wrapped by Lookup for a type nobody registered.
var ErrUnknownType = errors.New("unknown type")

// Lookup returns the factory and capabilities of a provider type.
func Lookup(typ string) (Factory, Capabilities, error) {
	regMu.RLock()
	e, ok := registry[typ]
	regMu.RUnlock()
	if !ok {
		return nil, Capabilities{}, fmt.Errorf("providers: %w %q (valid: %s)", ErrUnknownType, typ, strings.Join(Types(), ", "))
	}
	return e.f, e.caps, nil
}

// errChecking is returned by Ready when the factory runs under Check.
var errChecking = errors.New("providers: settings checked")

// SettingError is a problem with one setting found by a factory itself (for
// example a server address that does not parse). Key is the setting's key.
type SettingError struct {
	Key, Msg string
}

func (e *SettingError) Error() string { return e.Key + ": " + e.Msg }

// Ready is called by every factory once it has read all its settings and
// before it resolves secrets or touches the network. It returns every problem
// at once (the accessors' problems, unknown keys, and the factory's own
// errs) as a *config.Error; under Check it stops the factory there.
func Ready(s *config.ProviderSettings, env Env, errs ...error) error {
	ps := s.Problems()
	for _, err := range errs {
		if err == nil {
			continue
		}
		var se *SettingError
		if errors.As(err, &se) {
			ps = append(ps, config.Problem{Key: "providers." + s.Name + "." + se.Key, Msg: se.Msg})
			continue
		}
		ps = append(ps, config.Problem{Key: "providers." + s.Name, Msg: err.Error()})
	}
	if len(ps) > 0 {
		return &config.Error{Problems: ps}
	}
	if env.check {
		return errChecking
	}
	return nil
}

// Check validates a settings table without network access and without
// resolving secrets (used by `cutover validate`): it returns every problem
// (unknown type, missing keys, inline secrets, unknown keys) at once.
func Check(s *config.ProviderSettings) []config.Problem {
	f, _, err := Lookup(s.Type)
	if err != nil {
		return []config.Problem{{Key: "providers." + s.Name + ".type", Msg: strings.TrimPrefix(err.Error(), "providers: ")}}
	}
	_, err = f(s, Env{check: true})
	var ce *config.Error
	switch {
	case err == nil, errors.Is(err, errChecking):
		return s.Problems()
	case errors.As(err, &ce):
		return ce.Problems
	}
	return []config.Problem{{Key: "providers." + s.Name, Msg: err.Error()}}
}

// Open builds the provider's client (resolving its secrets) and returns the
// Zone the operations run on. env.Zone is required.
func Open(s *config.ProviderSettings, env Env) (*Zone, error) {
	f, caps, err := Lookup(s.Type)
	if err != nil {
		return nil, err
	}
	if env.Zone == "" {
		return nil, errors.New("providers: open: no zone given")
	}
	env.check = false
	c, err := f(s, env)
	if err != nil {
		return nil, err
	}
	return NewZone(c, env.Zone, caps), nil
}
