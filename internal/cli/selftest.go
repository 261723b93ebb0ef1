package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/cutover-dev/cutover/config"
	"github.com/cutover-dev/cutover/internal/selftest"
	"github.com/cutover-dev/cutover/scheduler"
)

// selftestLabel is the scratch name's default, relative to the zone. It is
// a valid host name: BIND (check-names) and some APIs refuse an A record at
// a name with an underscore.
const selftestLabel = "cutover-selftest"

// cmdSelftest is `cutover dns selftest FILE [--name LABEL] [--json]`: the
// provider conformance run on the user's own account, on a scratch name
// (package selftest runs it).
func cmdSelftest(ctx context.Context, e *env, c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	label := fs.String("name", selftestLabel, "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return err
	}
	// The state dir's lock keeps a cutover run from changing the zone
	// meanwhile; the journal records the result.
	s, err := openForChange(e, pos[0], "dns selftest")
	if err != nil {
		return err
	}
	defer s.close()
	cfg := s.cfg
	name, err := selftestName(*label, cfg.DNS.Zone)
	if err != nil {
		return &usageError{err: err, hint: fmt.Sprintf("cutover dns selftest %s --name %s", cfg.File, selftestLabel)}
	}
	if typ := cfg.Provider().Type; typ == "manual" {
		return &usageError{err: fmt.Errorf("dns selftest: provider type %q changes nothing by itself: there is nothing to test", typ),
			hint: "the selftest is for the API provider types: cutover providers"}
	}
	d, err := openDNS(cfg, e.stdout)
	if err != nil {
		return err
	}
	st := &selftest.Test{Zone: d.zone, Checker: checker(cfg), Name: name, LoweredTTL: cfg.DNS.LoweredTTL, Timeout: cfg.DNS.ConvergeTimeout}
	rep, err := st.Run(ctx)
	if rep != nil {
		rep.Provider = cfg.Provider().Type
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(rep); jerr != nil {
				return errors.Join(err, jerr)
			}
		} else {
			rep.Write(e.stdout)
		}
		eng := &scheduler.Engine{Config: cfg, Journal: s.journal, Clock: scheduler.SystemClock{}, Out: e.stdout, Events: s.events}
		rec := scheduler.SelftestRecord{At: e.now(), Provider: rep.Provider, Zone: cfg.DNS.Zone, Passed: rep.Passed}
		if jerr := eng.RecordSelftest(rec); jerr != nil {
			return errors.Join(err, journalError(cfg, jerr))
		}
	}
	if err != nil {
		if errors.Is(err, selftest.ErrExists) {
			return &usageError{err: err, hint: fmt.Sprintf("cutover dns selftest %s --name %s-2", cfg.File, strings.TrimSuffix(name, "."+cfg.DNS.Zone))}
		}
		return err
	}
	return nil
}

// selftestNote tells the plan's reader to run the selftest when the
// journal holds no passed one for the configured provider and zone; "" when
// it does (and for manual, which has no API to try).
func selftestNote(cfg *config.Config) string {
	typ := cfg.Provider().Type
	if typ == "manual" {
		return ""
	}
	if j, err := scheduler.ReadJournal(cfg); err == nil && j.SelftestPassed(typ, cfg.DNS.Zone) {
		return ""
	}
	return fmt.Sprintf("the journal holds no passed selftest of provider %s on zone %s; before the window, run: cutover dns selftest %s",
		typ, cfg.DNS.Zone, cfg.File)
}

// selftestName makes label (relative to zone, or a name inside it) a fully
// qualified name strictly inside zone.
func selftestName(label, zone string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(label))
	if _, ok := dns.IsDomainName(n); !ok || n == "" || n == "." {
		return "", fmt.Errorf("dns selftest: --name %q is not a domain name", label)
	}
	if !dns.IsFqdn(n) {
		n += "." + zone
	}
	if !dns.IsSubDomain(zone, n) || n == zone {
		return "", fmt.Errorf("dns selftest: --name %q is not a name inside zone %q", label, zone)
	}
	return n, nil
}
