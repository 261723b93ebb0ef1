package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/providers"
)

// providersHelp is the help of `cutover providers`.
const providersHelp = `Lists every DNS provider type cutover can drive: its settings (* marks a secret, given
as "env:NAME" or "file:PATH"; [key] is optional, [key=value] shows the default), the
lowest TTL it accepts, whether one change is applied atomically, and the quirks of its
library worth knowing. The README's provider table is this output.
  --json   print the same as JSON (durations in seconds)`

// cmdProviders lists the provider types; it reads nothing but the registry.
func cmdProviders(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "")
	if _, err := parse(c, fs, args, 0, 0); err != nil {
		return err
	}
	specs := providers.Specs()
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(providersJSON(specs))
	}
	writeProviders(e.stdout, specs)
	return nil
}

// writeProviders prints the provider types as a Markdown table followed by
// their quirks: readable in a terminal and pasted as is into the README.
func writeProviders(w io.Writer, specs []providers.Spec) {
	fmt.Fprintln(w, "| type | DNS host | settings | min TTL | atomic | library |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- |")
	for _, s := range specs {
		var keys []string
		for _, st := range s.Settings {
			k := st.Key
			if st.Kind == providers.SecretRef {
				k += "*"
			}
			if st.Default != "" {
				k += "=" + st.Default
			}
			if !st.Required {
				k = "[" + k + "]"
			}
			keys = append(keys, "`"+k+"`")
		}
		atomic := "no"
		if s.Atomic.OK {
			atomic = "yes"
		}
		lib := "cutover"
		if s.Library != "" {
			lib = "`" + s.Library + "`"
		}
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s | %s |\n", s.Type, s.Doc, strings.Join(keys, " "),
			config.FormatDuration(s.MinTTL), atomic, lib)
	}
	fmt.Fprintln(w, "\nQuirks:")
	for _, s := range specs {
		if len(s.Quirks) == 0 {
			continue
		}
		fmt.Fprintf(w, "- `%s`\n", s.Type)
		for _, q := range s.Quirks {
			fmt.Fprintf(w, "  - %s\n", q)
		}
	}
}

type settingJSON struct {
	Key      string `json:"key"`
	Kind     string `json:"kind"` // text, secret, duration
	Secret   bool   `json:"secret"`
	Required bool   `json:"required"`
	Default  any    `json:"default,omitempty"` // a duration's in seconds
	Doc      string `json:"doc"`
}

type providerJSON struct {
	Type          string               `json:"type"`
	Doc           string               `json:"doc"`
	Library       string               `json:"library,omitempty"`
	Settings      []settingJSON        `json:"settings"`
	MinTTL        float64              `json:"min_ttl"` // seconds
	MinTTLReason  string               `json:"min_ttl_reason"`
	RRsetSet      providers.Capability `json:"rrset_set"`
	Atomic        providers.Capability `json:"atomic"`
	Quirks        []string             `json:"quirks"`
	RetriesItself bool                 `json:"retries_itself"` // the library retries; cutover adds none
	// RetriesRateLimits: the library waits out 429s; cutover's HTTP transport sends its requests once.
	RetriesRateLimits bool `json:"retries_rate_limits"`
}

func providersJSON(specs []providers.Spec) []providerJSON {
	out := make([]providerJSON, 0, len(specs))
	for _, s := range specs {
		p := providerJSON{Type: s.Type, Doc: s.Doc, Library: s.Library, Settings: []settingJSON{},
			MinTTL: s.MinTTL.Seconds(), MinTTLReason: s.MinTTLReason, RRsetSet: s.RRsetSet, Atomic: s.Atomic, Quirks: s.Quirks,
			RetriesItself: s.RetriesItself, RetriesRateLimits: s.RetriesRateLimits}
		if p.Quirks == nil {
			p.Quirks = []string{}
		}
		for _, st := range s.Settings {
			sj := settingJSON{Key: st.Key, Kind: st.Kind.String(), Secret: st.Kind == providers.SecretRef, Required: st.Required, Doc: st.Doc}
			if st.Default != "" {
				sj.Default = st.Default
				if d, err := config.ParseDuration(st.Default); err == nil && st.Kind == providers.Duration {
					sj.Default = d.Seconds()
				}
			}
			p.Settings = append(p.Settings, sj)
		}
		out = append(out, p)
	}
	return out
}
