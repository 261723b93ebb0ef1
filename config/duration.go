package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// maxDays is the longest duration in whole days that time.Duration holds
// (about 292 years).
const maxDays = math.MaxInt64 / int64(24*time.Hour)

// goDurationRE is the syntax time.ParseDuration accepts, without a sign: a
// string that matches it but does not parse is too long, not malformed.
var goDurationRE = regexp.MustCompile(`^(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+$`)

// ParseDuration accepts Go durations ("90s", "5m", "1h30m") and whole days
// ("2d"). A sign ("+1d", "-5m") and a duration too long for time.Duration
// (more than 106751 days) are refused.
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a duration (examples: \"90s\", \"5m\", \"1h30m\", \"2d\")", s)
	tooLong := fmt.Errorf("%q is too long (at most %dd)", s, maxDays)
	if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		return 0, bad
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange), err == nil && n > maxDays:
			return 0, tooLong
		case err != nil:
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil && goDurationRE.MatchString(s):
		return 0, tooLong
	case err != nil:
		return 0, bad
	}
	return d, nil
}

// FormatDuration prints d the way the config file writes it: "5m",
// "1h30m", "2d", "45s". Sub-second parts are dropped.
func FormatDuration(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	h, m, s := int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if s > 0 {
		fmt.Fprintf(&b, "%ds", s)
	}
	return b.String()
}
