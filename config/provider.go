package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// ProviderSettings is one [providers.NAME] table. Its keys other than "type"
// belong to the provider, which reads them through the typed accessors
// below; each accessor records a Problem instead of failing, so a provider
// reports every missing or malformed setting at once.
type ProviderSettings struct {
	Name string // NAME in [providers.NAME]
	Type string // the provider type, e.g. "cloudflare"

	values   map[string]any
	used     map[string]bool
	file     string
	pos      map[string]Pos
	problems []Problem
}

// NewProviderSettings builds settings from plain values, for tests and for
// callers that do not read a file.
func NewProviderSettings(name, typ string, values map[string]any) *ProviderSettings {
	return &ProviderSettings{Name: name, Type: typ, values: values, used: map[string]bool{}}
}

func (s *ProviderSettings) key(k string) string { return "providers." + s.Name + "." + k }

func (s *ProviderSettings) problem(k, format string, args ...any) {
	s.problems = append(s.problems, s.At(k, fmt.Sprintf(format, args...)))
}

// At returns a problem with the setting key (or "type"), placed where the
// key is written, else at the table's header.
func (s *ProviderSettings) At(key, msg string) Problem {
	p := Problem{File: s.file, Key: s.key(key), Msg: msg}
	if at, ok := s.pos[p.Key]; ok {
		p.Line, p.Col = at.Line, at.Col
	} else if at, ok := s.pos["providers."+s.Name]; ok {
		p.Line, p.Col = at.Line, at.Col
	}
	return p
}

// Invalid records a problem with the value of key found by the caller (a
// provider's own check), at the key's position; Problems returns it.
func (s *ProviderSettings) Invalid(key, format string, args ...any) { s.problem(key, format, args...) }

// Has reports whether key is set.
func (s *ProviderSettings) Has(key string) bool { _, ok := s.values[key]; return ok }

// String reads a plain string. A missing required key is a problem.
func (s *ProviderSettings) String(key string, required bool) string {
	s.used[key] = true
	v, ok := s.values[key]
	if !ok {
		if required {
			s.problem(key, "required")
		}
		return ""
	}
	str, ok := v.(string)
	if !ok {
		s.problem(key, "must be a string, not %s", typeName(v))
		return ""
	}
	if required && str == "" {
		s.problem(key, "must not be empty")
	}
	return str
}

// Secret reads a secret reference ("env:NAME" or "file:PATH").
func (s *ProviderSettings) Secret(key string, required bool) Secret {
	s.used[key] = true
	v, ok := s.values[key]
	if !ok {
		if required {
			s.problem(key, `required: a secret reference such as "env:NAME" or "file:PATH"`)
		}
		return Secret{}
	}
	str, ok := v.(string)
	if !ok {
		s.problem(key, "must be a string, not %s", typeName(v))
		return Secret{}
	}
	sec, err := ParseSecret(str)
	if err != nil {
		s.problem(key, "%v", err)
	}
	return sec
}

// Duration reads a positive duration such as "30s"; def is returned when
// unset or malformed.
func (s *ProviderSettings) Duration(key string, def time.Duration) time.Duration {
	s.used[key] = true
	v, ok := s.values[key]
	if !ok {
		return def
	}
	str, ok := v.(string)
	if !ok {
		s.problem(key, "must be a duration string such as \"30s\", not %s", typeName(v))
		return def
	}
	d, err := ParseDuration(str)
	if err != nil {
		s.problem(key, "%v", err)
		return def
	}
	if d <= 0 {
		s.problem(key, "must be positive")
		return def
	}
	return d
}

// Problems returns what the accessors found, plus every key that no
// accessor read (an unknown key for this provider type).
func (s *ProviderSettings) Problems() []Problem {
	out := slices.Clone(s.problems)
	var unknown []string
	for k := range s.values {
		if !s.used[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		out = append(out, s.At(k, fmt.Sprintf("unknown key for provider type %q", s.Type)))
	}
	return out
}

// Err returns the problems as an error, or nil.
func (s *ProviderSettings) Err() error {
	if ps := s.Problems(); len(ps) > 0 {
		return &Error{Problems: ps}
	}
	return nil
}

// Keys lists the keys set in the table, sorted (for messages).
func (s *ProviderSettings) Keys() []string {
	var ks []string
	for k := range s.values {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a datetime"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", v), "toml.")
}
