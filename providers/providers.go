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
	// (the CLI wires it to WaitWith over its dnsprop Checker). When nil, the
	// manual provider uses WaitWith over Authoritative, Resolvers and Zone.
	WaitAuthoritative WaitFunc

	// Retry, when set, replaces the registry's retry for this provider (tests).
	Retry *Retry
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
// (the manual provider reads the authoritative servers name by name) or that
// check the names they are asked about (cloudflare refuses proxied names).
// Zone uses it instead of GetRecords when the client has it.
type NameReader interface {
	GetNameRecords(ctx context.Context, zone string, names []string) ([]libdns.Record, error)
}

// Factory builds a client from settings that the registry has already
// checked against the type's Spec, with every secret resolved. It may still
// fail (a secret that is not what the library needs, an Env it cannot use).
type Factory func(v Values, env Env) (Client, error)

// Capability says whether a provider can do something, and why not.
type Capability struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason"`
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
	registry = map[string]Spec{}
)

// Register makes a provider type available. It panics on a spec without a
// type, a factory or reasons, on a setting declared twice, and on a duplicate
// type: those are programming errors.
func Register(spec Spec) {
	regMu.Lock()
	defer regMu.Unlock()
	if err := spec.valid(); err != nil {
		panic("providers: Register: " + err.Error())
	}
	if _, dup := registry[spec.Type]; dup {
		panic(fmt.Sprintf("providers: Register called twice for type %q", spec.Type))
	}
	registry[spec.Type] = spec
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

// Specs returns the spec of every registered type, sorted by type.
func Specs() []Spec {
	var out []Spec
	for _, t := range Types() {
		s, _ := SpecOf(t)
		out = append(out, s)
	}
	return out
}

// ErrUnknownType is wrapped by Lookup for a type nobody registered.
var ErrUnknownType = errors.New("unknown type")

// SpecOf returns the spec of a provider type.
func SpecOf(typ string) (Spec, error) {
	regMu.RLock()
	s, ok := registry[typ]
	regMu.RUnlock()
	if !ok {
		return Spec{}, fmt.Errorf("providers: %w %q (valid: %s)", ErrUnknownType, typ, strings.Join(Types(), ", "))
	}
	return s, nil
}

// Lookup returns the factory and capabilities of a provider type.
func Lookup(typ string) (Factory, Capabilities, error) {
	s, err := SpecOf(typ)
	if err != nil {
		return nil, Capabilities{}, err
	}
	return s.New, s.Capabilities, nil
}

// Check validates a settings table against its type's declared settings,
// without network access and without resolving secrets (used by `cutover
// validate`): it returns every problem (unknown type, missing keys, inline
// secrets, malformed values, unknown keys) at once, each with its position
// when the settings came from a file.
func Check(s *config.ProviderSettings) []config.Problem {
	spec, err := SpecOf(s.Type)
	if err != nil {
		return []config.Problem{s.At("type", strings.TrimPrefix(err.Error(), "providers: "))}
	}
	_, _, ps := spec.read(s)
	return ps
}

// Open checks the settings, resolves their secrets, builds the provider's
// client behind the registry's guard (errors prefixed with the type, panics
// in the library turned into errors, secrets never in an error), retrying
// transient failures unless the library does so itself, and returns the Zone
// the operations run on. env.Zone is required.
func Open(s *config.ProviderSettings, env Env) (*Zone, error) {
	spec, err := SpecOf(s.Type)
	if err != nil {
		return nil, err
	}
	if env.Zone == "" {
		return nil, errors.New("providers: open: no zone given")
	}
	v, secrets, ps := spec.read(s)
	if len(ps) > 0 {
		return nil, &config.Error{Problems: ps}
	}
	var resolved []string
	for _, st := range spec.Settings {
		sec, ok := secrets[st.Key]
		if !ok {
			continue
		}
		val, err := sec.Resolve()
		if err != nil {
			return nil, err
		}
		v.m[st.Key] = val
		resolved = append(resolved, val)
	}
	c, err := guardOpen(spec.Type, func() (Client, error) { return spec.New(v, env) })
	if err != nil {
		return nil, redact(err, resolved)
	}
	if spec.RetriesItself || spec.RetriesRateLimits {
		c = sendOnceClient(c)
	}
	if _, reads := c.(NameReader); !spec.RetriesItself && !reads {
		r := DefaultRetry
		if spec.Retry != nil {
			r = *spec.Retry
		}
		if env.Retry != nil {
			r = *env.Retry
		}
		c = WithRetry(c, r)
	}
	return NewZone(Guard(spec.Type, c, resolved...), env.Zone, spec.Capabilities), nil
}
