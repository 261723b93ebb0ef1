package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Secret is a reference to a secret value: "env:NAME" or "file:PATH". The
// value itself is read only by Resolve and never stored in the Config, so a
// Secret can be printed safely. In a config file, a relative PATH is
// relative to the config file's directory and "~/" is the home directory.
type Secret struct {
	ref string
}

// ErrInlineSecret reports a secret written into the file instead of referenced.
var ErrInlineSecret = errors.New(`secrets must not be written inline: use "env:NAME" or "file:PATH"`)

// ParseSecret checks a secret reference. It never echoes s, which might be
// the secret itself.
func ParseSecret(s string) (Secret, error) {
	kind, rest, ok := strings.Cut(s, ":")
	switch {
	case !ok || (kind != "env" && kind != "file"):
		return Secret{}, ErrInlineSecret
	case rest == "":
		return Secret{}, fmt.Errorf("%s: needs a name after %q", kind, kind+":")
	case kind == "file":
		p, err := expandHome(rest)
		if err != nil {
			return Secret{}, err
		}
		if !filepath.IsAbs(p) {
			// Load has already made a config file's paths absolute, from
			// the file's directory; never resolve against the working one.
			return Secret{}, fmt.Errorf("file: %q is a relative path", rest)
		}
		return Secret{ref: "file:" + filepath.Clean(p)}, nil
	}
	return Secret{ref: s}, nil
}

// IsZero reports whether no secret was configured.
func (s Secret) IsZero() bool { return s.ref == "" }

// String shows the reference, never the value.
func (s Secret) String() string { return s.ref }

// Resolve reads the secret. Errors name the variable or file, never the value.
func (s Secret) Resolve() (string, error) {
	kind, rest, _ := strings.Cut(s.ref, ":")
	switch kind {
	case "env":
		v, ok := os.LookupEnv(rest)
		if !ok || v == "" {
			return "", fmt.Errorf("config: secret: environment variable %q is not set", rest)
		}
		return v, nil
	case "file":
		b, err := os.ReadFile(rest)
		if err != nil {
			return "", fmt.Errorf("config: secret: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("config: secret: file %q is empty", rest)
		}
		return v, nil
	}
	return "", errors.New("config: secret: not configured")
}

// SecretEnv lists the environment variables the config names as secrets
// (every "env:NAME" in a [providers.NAME] table), sorted, each once: what
// local hooks and the [notify] command must not inherit.
func (c *Config) SecretEnv() []string {
	var names []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if name, ok := strings.CutPrefix(v, "env:"); ok && name != "" {
				names = append(names, name)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for _, p := range c.Providers {
		walk(p.values)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
