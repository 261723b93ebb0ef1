package providers

import (
	"errors"
	"fmt"
	"time"

	"github.com/cutover-dev/cutover/config"
)

// Kind is how a setting's value is written in a [providers.NAME] table.
type Kind int

const (
	// Text is a plain string.
	Text Kind = iota
	// SecretRef is a secret reference ("env:NAME" or "file:PATH"), resolved
	// only when the client is built; an inline secret is an error.
	SecretRef
	// Duration is a positive duration such as "30s" or "1h".
	Duration
)

func (k Kind) String() string {
	switch k {
	case SecretRef:
		return "secret"
	case Duration:
		return "duration"
	}
	return "text"
}

// Setting declares one key of a provider type's table.
type Setting struct {
	Key      string
	Kind     Kind
	Required bool
	Default  string // used when the key is absent; for Duration a duration string
	Doc      string // what the value is, in a few words
	// Check, when set, validates a Text value (not called for the default).
	Check func(v string) error
}

// Spec declares a provider type: its settings, what it can do (with
// reasons), the quirks of its library that an operator should know, and how
// to build its client. The registry validates settings, resolves secrets,
// applies the guard and lists types (`cutover providers`) from it.
type Spec struct {
	Type     string
	Doc      string // the DNS host and the library, e.g. "deSEC (github.com/libdns/desec)"
	Library  string // the Go module that talks to the host, with its version; empty for cutover's own
	Settings []Setting
	Capabilities
	Quirks []string // what the library or the host does that is worth knowing, one sentence each
	// RetriesItself says that the library (or cutover's wrapper of it)
	// already retries rate limits and network failures: the registry adds
	// no retries of its own (see Retry), and the installed RetryTransport
	// sends the library's requests once.
	RetriesItself bool
	// RetriesRateLimits says that the library waits out rate limits (429)
	// itself: the installed RetryTransport sends its requests once, so the
	// two do not multiply; the registry still repeats a failed call.
	RetriesRateLimits bool
	// Retry is the registry's retry for this type; nil means DefaultRetry,
	// which counts on the RetryTransport under an HTTP library.
	Retry *Retry
	New   Factory
}

func (s Spec) valid() error {
	switch {
	case s.Type == "" || s.New == nil:
		return errors.New("a spec needs a type and a factory")
	case s.MinTTL <= 0 || s.MinTTLReason == "" || s.RRsetSet.Reason == "" || s.Atomic.Reason == "":
		return fmt.Errorf("type %q: capabilities need a minimum TTL and reasons", s.Type)
	case !s.RRsetSet.OK:
		return fmt.Errorf("type %q: SetRecords must replace whole RRsets (the operations need it)", s.Type)
	}
	seen := map[string]bool{"type": true}
	for _, st := range s.Settings {
		if seen[st.Key] || st.Key == "" {
			return fmt.Errorf("type %q: setting %q declared twice or empty", s.Type, st.Key)
		}
		seen[st.Key] = true
		if st.Kind == Duration && st.Default != "" {
			if d, err := config.ParseDuration(st.Default); err != nil || d <= 0 {
				return fmt.Errorf("type %q: setting %q: bad default %q", s.Type, st.Key, st.Default)
			}
		}
	}
	return nil
}

// Values are the settings a factory builds its client from: text as
// written (or its default), secrets resolved, durations parsed.
type Values struct {
	m    map[string]string
	d    map[string]time.Duration
	refs map[string]string
}

// String returns a Text setting or a resolved secret ("" when unset).
func (v Values) String(key string) string { return v.m[key] }

// Ref returns where a secret setting came from ("env:NAME", "file:PATH"),
// for messages that must not show the secret itself.
func (v Values) Ref(key string) string { return v.refs[key] }

// Duration returns a Duration setting (its default when unset).
func (v Values) Duration(key string) time.Duration { return v.d[key] }

// read checks s against the declared settings and returns the values (text
// and durations; secrets unresolved, separately) and every problem, each at
// its position in the file.
func (spec Spec) read(s *config.ProviderSettings) (Values, map[string]config.Secret, []config.Problem) {
	v := Values{m: map[string]string{}, d: map[string]time.Duration{}, refs: map[string]string{}}
	secrets := map[string]config.Secret{}
	for _, st := range spec.Settings {
		switch st.Kind {
		case Text:
			val := s.String(st.Key, st.Required)
			if !s.Has(st.Key) {
				val = st.Default
			} else if st.Check != nil && val != "" {
				if err := st.Check(val); err != nil {
					s.Invalid(st.Key, "%v", err)
				}
			}
			v.m[st.Key] = val
		case SecretRef:
			if sec := s.Secret(st.Key, st.Required); !sec.IsZero() {
				secrets[st.Key] = sec
				v.refs[st.Key] = sec.String()
			}
		case Duration:
			var def time.Duration
			if st.Default != "" {
				def, _ = config.ParseDuration(st.Default)
			}
			d := s.Duration(st.Key, def)
			if st.Required && !s.Has(st.Key) {
				s.Invalid(st.Key, "required: a duration such as \"30s\"")
			}
			v.d[st.Key] = d
		}
	}
	return v, secrets, s.Problems()
}
