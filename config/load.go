package config

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/pelletier/go-toml/v2"

	"github.com/cutover-dev/cutover/internal/shellquote"
)

// Options tune Load.
type Options struct {
	// Now, when set, makes a cutover_at in the past a problem. Leave it
	// zero when resuming a run whose window has already opened.
	Now time.Time
	// CheckProvider, when set, validates each [providers.NAME] table that
	// names a type (the providers package's Check); its problems are
	// reported with the others, in file order.
	CheckProvider func(*ProviderSettings) []Problem
}

// Defaults applied when a key is absent.
const (
	DefaultSSHUser         = "root"
	DefaultSSHPort         = 22
	DefaultKnownHosts      = "~/.ssh/known_hosts"
	DefaultLoweredTTL      = 5 * time.Minute
	DefaultRestoreTTLAfter = time.Hour
	DefaultConvergeTimeout = 2 * time.Hour
	DefaultHookTimeout     = 30 * time.Minute
)

// MaxLoweredTTL is the longest dns.lowered_ttl: a lowered TTL is meant to be
// short, and a week is far below the 2^31-1 seconds DNS can carry.
const MaxLoweredTTL = 7 * 24 * time.Hour

// HookNames lists the hooks in the order they run.
var HookNames = []string{"prepare", "disable", "activate", "reenable", "deactivate"}

// MaxFileSize is the largest config file Load reads.
const MaxFileSize = 1 << 20

// Load reads and validates the file at path. A path that is not a regular
// file (a directory, a named pipe, a device), a file larger than
// MaxFileSize, or one that cannot be read is an *Error like any other
// problem; Load never blocks on a named pipe.
func Load(path string, opts Options) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path, opts)
}

// readFile reads a config file, refusing anything but a regular file of at
// most MaxFileSize bytes. It checks the type before opening and again on
// the open file, which it opens non-blocking so that a named pipe swapped
// in between cannot make it wait.
func readFile(path string) ([]byte, error) {
	refuse := func(format string, args ...any) error {
		return &Error{Problems: []Problem{{File: path, Msg: fmt.Sprintf(format, args...)}}, unusable: true}
	}
	check := func(fi os.FileInfo) error {
		switch {
		case fi.IsDir():
			return refuse("is a directory, not a config file: give the path of the TOML file")
		case !fi.Mode().IsRegular():
			return refuse("is %s, not a regular file: give the path of the TOML file", fileKind(fi.Mode()))
		case fi.Size() > MaxFileSize:
			return refuse("is %d bytes; a config file is at most %d (1 MiB)", fi.Size(), MaxFileSize)
		}
		return nil
	}
	cannotRead := func(err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return refuse("cannot be read: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, cannotRead(err)
	}
	if err := check(fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, cannotRead(err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, cannotRead(err)
	}
	if err := check(fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, cannotRead(err)
	}
	if len(data) > MaxFileSize {
		return nil, refuse("is larger than %d bytes (1 MiB), the most a config file may be", MaxFileSize)
	}
	return data, nil
}

// fileKind names a file type that is not a regular file or a directory.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "a special file"
}

// utf8BOM is the byte order mark some editors write at the top of a file.
const utf8BOM = "\ufeff"

// Parse validates data as a config file named file. On failure the error is
// an *Error holding every problem found. A UTF-8 byte order mark at the
// start is ignored; positions count from after it.
func Parse(data []byte, file string, opts Options) (*Config, error) {
	data = bytes.TrimPrefix(data, []byte(utf8BOM))
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, &Error{Problems: []Problem{{File: file, Line: line, Col: col, Msg: "not valid TOML: " + de.Error()}}}
		}
		return nil, &Error{Problems: []Problem{{File: file, Msg: "not valid TOML: " + err.Error()}}}
	}
	l := &loader{file: file, pos: keyPositions(data)}
	cfg := l.config(raw, opts)
	if opts.CheckProvider != nil && cfg != nil {
		names := slices.Sorted(maps.Keys(cfg.Providers))
		for _, name := range names {
			if ps := cfg.Providers[name]; ps.Type != "" {
				l.problems = append(l.problems, opts.CheckProvider(ps)...)
			}
		}
	}
	if len(l.problems) > 0 {
		sortProblems(l.problems)
		return nil, &Error{Problems: l.problems}
	}
	sortProblems(l.warnings)
	cfg.Warnings = l.warnings
	return cfg, nil
}

// sortProblems puts problems in file order; those with no position (a
// missing table) last.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	})
}

type loader struct {
	file     string
	pos      map[string]Pos
	problems []Problem
	warnings []Problem
}

func (l *loader) problem(key, format string, args ...any) {
	l.problems = append(l.problems, l.at(key, format, args...))
}

func (l *loader) warn(key, format string, args ...any) {
	l.warnings = append(l.warnings, l.at(key, format, args...))
}

// at builds a Problem pointing at the key, or at the closest enclosing
// table or key that is written.
func (l *loader) at(key, format string, args ...any) Problem {
	p := Problem{File: l.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	for k := key; k != ""; {
		if at, ok := l.pos[k]; ok {
			p.Line, p.Col = at.Line, at.Col
			break
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return p
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// table checks m's keys against allowed and reports the others.
func (l *loader) table(m map[string]any, prefix string, allowed ...string) {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			l.problem(join(prefix, k), "unknown key (valid here: %s)", strings.Join(allowed, ", "))
		}
	}
}

func (l *loader) sub(m map[string]any, prefix, key string, required bool) map[string]any {
	v, ok := m[key]
	if !ok {
		if required {
			l.problem(join(prefix, key), "required table [%s] is missing", join(prefix, key))
		}
		return nil
	}
	t, ok := v.(map[string]any)
	if !ok {
		l.problem(join(prefix, key), "must be a table, not %s", typeName(v))
		return nil
	}
	return t
}

func (l *loader) str(m map[string]any, prefix, key, def string) (string, bool) {
	v, ok := m[key]
	if !ok {
		return def, false
	}
	s, ok := v.(string)
	if !ok {
		l.problem(join(prefix, key), "must be a string, not %s", typeName(v))
		return def, false
	}
	return s, true
}

func (l *loader) boolean(m map[string]any, prefix, key string) bool {
	v, ok := m[key]
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		l.problem(join(prefix, key), "must be true or false, not %s", typeName(v))
	}
	return b
}

func (l *loader) oneOf(m map[string]any, prefix, key, def string, valid ...string) string {
	s, set := l.str(m, prefix, key, def)
	if set && !slices.Contains(valid, s) {
		l.problem(join(prefix, key), "%q is not one of %s", s, strings.Join(valid, ", "))
		return def
	}
	return s
}

func (l *loader) duration(m map[string]any, prefix, key string, def time.Duration) time.Duration {
	s, set := l.str(m, prefix, key, "")
	if !set {
		return def
	}
	d, err := ParseDuration(s)
	if err != nil {
		l.problem(join(prefix, key), "%v", err)
		return def
	}
	return d
}

// element is one string of an array with its full key ("dns.names[2]"),
// which stays right when an element before it was not a string.
type element struct {
	key, s string
}

// strList reads an array of strings; set reports whether the key is there.
func (l *loader) strList(m map[string]any, prefix, key string) (list []element, set bool) {
	v, ok := m[key]
	if !ok {
		return nil, false
	}
	arr, ok := v.([]any)
	if !ok {
		l.problem(join(prefix, key), "must be an array of strings, not %s", typeName(v))
		return nil, true
	}
	out := make([]element, 0, len(arr))
	for i, e := range arr {
		k := fmt.Sprintf("%s[%d]", join(prefix, key), i)
		s, ok := e.(string)
		if !ok {
			l.problem(k, "must be a string, not %s", typeName(e))
			continue
		}
		out = append(out, element{key: k, s: s})
	}
	return out, true
}

func (l *loader) path(m map[string]any, prefix, key, def string) string {
	s, _ := l.str(m, prefix, key, def)
	if s == "" {
		return ""
	}
	if hasControl(s) {
		l.problem(join(prefix, key), "%q contains a control character (a newline, a tab, ...)", s)
		return ""
	}
	p, err := expandHome(s)
	if err != nil {
		l.problem(join(prefix, key), "%v", err)
		return ""
	}
	if !filepath.IsAbs(p) {
		l.problem(join(prefix, key), "%q is a relative path; write it absolute (or starting with ~/)", s)
		return ""
	}
	return filepath.Clean(p)
}

// hasControl reports whether s holds a control character: C0 (newline,
// tab, ...), DEL or C1.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot expand %q: %w", p, err)
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}

func (l *loader) config(raw map[string]any, opts Options) *Config {
	cfg := &Config{File: l.file}
	l.table(raw, "", "cutover_at", "state_dir", "on_failure", "old", "new", "ssh", "dns", "providers", "sync", "hooks", "notify", "bridge")

	switch v := raw["cutover_at"].(type) {
	case nil:
		l.problem("cutover_at", "required: when the window opens, as a TOML datetime with offset, e.g. 2026-12-01T03:00:00Z")
	case time.Time:
		cfg.CutoverAt = v
		if !opts.Now.IsZero() && v.Before(opts.Now) {
			l.problem("cutover_at", "%s is in the past (now is %s)", v.UTC().Format(time.RFC3339), opts.Now.UTC().Format(time.RFC3339))
		}
	case toml.LocalDateTime, toml.LocalDate, toml.LocalTime:
		l.problem("cutover_at", "needs a UTC offset, e.g. 2026-12-01T03:00:00Z or 2026-12-01T04:00:00+01:00")
	case string:
		l.problem("cutover_at", "must be a TOML datetime, written without quotes, e.g. cutover_at = 2026-12-01T03:00:00Z")
	default:
		l.problem("cutover_at", "must be a TOML datetime, not %s", typeName(v))
	}

	cfg.StateDir = l.path(raw, "", "state_dir", "")
	if cfg.StateDir == "" {
		cfg.StateDir = defaultStateDir(l.file)
	}
	cfg.OnFailure = l.oneOf(raw, "", "on_failure", OnFailureRollback, OnFailureRollback, OnFailureStop)

	cfg.Old = l.host(l.sub(raw, "", "old", true), "old")
	cfg.New = l.host(l.sub(raw, "", "new", true), "new")
	if cfg.Old.Address.IsValid() && cfg.Old.Address == cfg.New.Address {
		l.problem("new.address", "is the same as old.address (%s)", cfg.Old.Address)
	}
	if cfg.Old.Address6.IsValid() && cfg.Old.Address6 == cfg.New.Address6 {
		l.problem("new.address6", "is the same as old.address6 (%s)", cfg.Old.Address6)
	}

	ssh := l.sub(raw, "", "ssh", false)
	l.table(ssh, "ssh", "identity_file", "known_hosts", "transfer")
	cfg.SSH = SSH{
		IdentityFile: l.path(ssh, "ssh", "identity_file", ""),
		KnownHosts:   l.path(ssh, "ssh", "known_hosts", DefaultKnownHosts),
		Transfer:     l.oneOf(ssh, "ssh", "transfer", TransferDirect, TransferDirect, TransferAgent, TransferRelay),
	}

	cfg.Providers = l.providers(l.sub(raw, "", "providers", true))
	cfg.DNS = l.dns(l.sub(raw, "", "dns", true), cfg)
	cfg.Sync = l.syncs(raw)
	cfg.Hooks = l.hooks(l.sub(raw, "", "hooks", false), cfg)
	cfg.Bridge = l.bridge(l.sub(raw, "", "bridge", false), cfg)

	notify := l.sub(raw, "", "notify", false)
	l.table(notify, "notify", "command")
	cfg.Notify.Command, _ = l.str(notify, "notify", "command", "")
	return cfg
}

// defaultStateDir is $XDG_STATE_HOME/cutover/STEM-HASH: the config file's
// name without its extension, then the first 8 hex digits of the SHA-256 of
// its absolute path, so that a/mail.toml and b/mail.toml never share a
// journal.
func defaultStateDir(file string) string {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		base = filepath.Join(home, ".local", "state")
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = filepath.Clean(file)
	}
	sum := sha256.Sum256([]byte(abs))
	stem := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	return filepath.Join(base, "cutover", fmt.Sprintf("%s-%x", stem, sum[:4]))
}

func (l *loader) host(m map[string]any, role string) Host {
	h := Host{Role: role, SSHUser: DefaultSSHUser, SSHPort: DefaultSSHPort}
	if m == nil {
		return h
	}
	l.table(m, role, "address", "address6", "ssh_user", "ssh_port")
	if s, set := l.str(m, role, "address", ""); !set {
		if _, present := m["address"]; !present {
			l.problem(role+".address", "required: the host's IPv4 address")
		}
	} else if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
		l.problem(role+".address", "%q is not an IPv4 address", s)
	} else if what := notAHost(a); what != "" {
		l.problem(role+".address", "%q is %s, not a host's address", s, what)
	} else {
		h.Address = a
	}
	if s, set := l.str(m, role, "address6", ""); set {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is6() || a.Is4In6() {
			l.problem(role+".address6", "%q is not an IPv6 address", s)
		} else if a.Zone() != "" {
			l.problem(role+".address6", "%q has a zone (%%%s): an AAAA record holds the address alone; write %q", s, a.Zone(), a.WithZone("").String())
		} else if what := notAHost(a); what != "" {
			l.problem(role+".address6", "%q is %s, not a host's address", s, what)
		} else {
			h.Address6 = a
		}
	}
	h.SSHUser, _ = l.str(m, role, "ssh_user", DefaultSSHUser)
	switch {
	case h.SSHUser == "":
		l.problem(role+".ssh_user", "must not be empty")
	case len(h.SSHUser) > maxUserName || !userRE.MatchString(h.SSHUser):
		l.problem(role+".ssh_user", "%q is not a user name (a-z, 0-9, \"_\", \".\" and \"-\", starting with a letter or \"_\", at most %d characters)", h.SSHUser, maxUserName)
	}
	if v, ok := m["ssh_port"]; ok {
		n, ok := v.(int64)
		if !ok || n < 1 || n > 65535 {
			l.problem(role+".ssh_port", "must be a port number from 1 to 65535")
		} else {
			h.SSHPort = int(n)
		}
	}
	return h
}

// notAHost says why a can never be a host's address (the unspecified
// address, a multicast address, the IPv4 broadcast address), or returns "".
// Loopback and private addresses are fine: tests and labs use them.
func notAHost(a netip.Addr) string {
	switch {
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsMulticast():
		return "a multicast address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	}
	return ""
}

// userPattern is a portable user name, as useradd accepts by default.
const userPattern = `[a-z_][a-z0-9_.-]*`

// maxUserName is the longest user name Linux tools accept.
const maxUserName = 32

var userRE = regexp.MustCompile(`^` + userPattern + `$`)

func (l *loader) providers(m map[string]any) map[string]*ProviderSettings {
	out := map[string]*ProviderSettings{}
	for name, v := range m {
		key := "providers." + name
		t, ok := v.(map[string]any)
		if !ok {
			l.problem(key, "must be a table, not %s", typeName(v))
			continue
		}
		typ, set := l.str(t, key, "type", "")
		if !set || typ == "" {
			l.problem(key+".type", "required: the provider type, e.g. \"cloudflare\" or \"rfc2136\"")
		}
		values := map[string]any{}
		for k, v := range t {
			if k == "type" {
				continue
			}
			if ref, ok := v.(string); ok {
				v = l.fileSecret(key+"."+k, ref)
			}
			values[k] = v
		}
		ps := NewProviderSettings(name, typ, values)
		ps.file, ps.pos = l.file, l.pos
		out[name] = ps
	}
	return out
}

// fileSecret makes the path of a "file:" reference absolute, relative to
// the config file's directory, and warns when that file can be read by
// group or others. Other strings are returned as they are. (The provider
// reads its settings later, through ProviderSettings.Secret, which knows
// nothing of the file it came from.)
func (l *loader) fileSecret(key, ref string) string {
	rest, ok := strings.CutPrefix(ref, "file:")
	if !ok || rest == "" {
		return ref
	}
	p, err := expandHome(rest)
	if err != nil {
		return ref // ParseSecret reports it
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(l.dir(), p)
		ref = "file:" + p
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o044 != 0 {
		l.warn(key, "secret file %q can be read by group or others (mode %04o); run: chmod 600 %s", p, fi.Mode().Perm(), shellquote.Quote(p))
	}
	return ref
}

// dir is the absolute directory of the config file.
func (l *loader) dir() string {
	abs, err := filepath.Abs(l.file)
	if err != nil {
		return filepath.Dir(l.file)
	}
	return filepath.Dir(abs)
}

func normalizeName(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

var labelRE = regexp.MustCompile(`^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+$`)

// maxNameLen is the longest domain name DNS carries, in the usual
// presentation form without the final dot.
const maxNameLen = 253

// checkName explains why fq (normalized by normalizeName) is not a domain
// name, or returns "". s is the name as written.
func checkName(s, fq string) string {
	switch {
	case len(fq)-1 > maxNameLen:
		return fmt.Sprintf("%q is %d characters long; DNS allows at most %d", s, len(fq)-1, maxNameLen)
	case !labelRE.MatchString(fq):
		return fmt.Sprintf("%q is not a valid domain name (labels of a-z, 0-9, \"-\" and \"_\", at most 63 characters each)", s)
	}
	return ""
}

func (l *loader) dns(m map[string]any, cfg *Config) DNS {
	d := DNS{LoweredTTL: DefaultLoweredTTL, RestoreTTLAfter: DefaultRestoreTTLAfter, ConvergeTimeout: DefaultConvergeTimeout}
	if m == nil {
		return d
	}
	l.table(m, "dns", "provider", "zone", "names", "lowered_ttl", "restore_ttl_after", "authoritative", "resolvers", "quorum", "converge_timeout")

	d.Provider, _ = l.str(m, "dns", "provider", "")
	switch {
	case d.Provider == "":
		l.problem("dns.provider", "required: the name of a [providers.NAME] table")
	case cfg.Providers[d.Provider] == nil:
		var names []string
		for n := range cfg.Providers {
			names = append(names, n)
		}
		slices.Sort(names)
		if len(names) == 0 {
			l.problem("dns.provider", "%q: there is no [providers.%s] table", d.Provider, d.Provider)
		} else {
			l.problem("dns.provider", "%q: there is no [providers.%s] table (defined: %s)", d.Provider, d.Provider, strings.Join(names, ", "))
		}
	}

	zone, _ := l.str(m, "dns", "zone", "")
	if zone == "" {
		l.problem("dns.zone", "required: the zone that holds the names, e.g. \"example.org.\"")
	} else if d.Zone = normalizeName(zone); checkName(zone, d.Zone) != "" {
		l.problem("dns.zone", "%s", checkName(zone, d.Zone))
		d.Zone = ""
	}

	names, _ := l.strList(m, "dns", "names")
	if len(names) == 0 {
		l.problem("dns.names", "required: the names whose A/AAAA records move, e.g. [\"mail.example.org.\"]")
	}
	for _, e := range names {
		key, n := e.key, e.s
		fq := normalizeName(n)
		switch {
		case checkName(n, fq) != "":
			l.problem(key, "%s", checkName(n, fq))
		case d.Zone != "" && fq != d.Zone && !strings.HasSuffix(fq, "."+d.Zone):
			l.problem(key, "%q is not inside zone %q", n, d.Zone)
		case slices.Contains(d.Names, fq):
			l.problem(key, "%q is listed twice", n)
		default:
			d.Names = append(d.Names, fq)
		}
	}

	d.LoweredTTL = l.duration(m, "dns", "lowered_ttl", DefaultLoweredTTL)
	if d.LoweredTTL < time.Second || d.LoweredTTL%time.Second != 0 {
		l.problem("dns.lowered_ttl", "must be a whole number of seconds, at least 1s")
	} else if d.LoweredTTL > MaxLoweredTTL {
		written, _ := l.str(m, "dns", "lowered_ttl", "")
		l.problem("dns.lowered_ttl", "%q is longer than %s, the most a lowered TTL may be", written, FormatDuration(MaxLoweredTTL))
	}
	if s, set := l.str(m, "dns", "restore_ttl_after", ""); set && s == "never" {
		d.RestoreNever = true
	} else if set {
		d.RestoreTTLAfter = l.duration(m, "dns", "restore_ttl_after", DefaultRestoreTTLAfter)
	}
	d.ConvergeTimeout = l.duration(m, "dns", "converge_timeout", DefaultConvergeTimeout)
	if d.ConvergeTimeout <= 0 {
		l.problem("dns.converge_timeout", "must be longer than 0s")
	}

	auth, _ := l.strList(m, "dns", "authoritative")
	d.Authoritative = l.servers(auth)
	res, set := l.strList(m, "dns", "resolvers")
	d.Resolvers = l.servers(res)
	if !set || len(res) == 0 {
		l.problem("dns.resolvers", `required: the resolvers that must see the change, e.g. ["1.1.1.1", "8.8.8.8", "9.9.9.9", "208.67.222.222"]`)
	}

	switch v := m["quorum"].(type) {
	case nil:
	case string:
		if v != "all" {
			l.problem("dns.quorum", "%q: must be \"all\" or a number of resolvers", v)
		}
	case int64:
		if v < 1 || (len(d.Resolvers) > 0 && int(v) > len(d.Resolvers)) {
			l.problem("dns.quorum", "%d: must be from 1 to the number of resolvers (%d)", v, len(d.Resolvers))
		} else {
			d.Quorum = int(v)
		}
	default:
		l.problem("dns.quorum", "must be \"all\" or a number, not %s", typeName(v))
	}
	return d
}

// ParseServer parses "host", "host:port", "v6" or "[v6]:port" with an IP
// literal host; the port defaults to 53.
func ParseServer(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IP address with an optional port (host names are not accepted here)", s)
	}
	return netip.AddrPortFrom(a.Unmap(), 53), nil
}

// servers parses a list of servers; one listed twice (also as "ip" and
// "ip:53") is a problem, since it would count twice toward a quorum.
func (l *loader) servers(list []element) []netip.AddrPort {
	var out []netip.AddrPort
	first := map[netip.AddrPort]string{} // server -> key of its first element
	for _, e := range list {
		ap, err := ParseServer(e.s)
		if err != nil {
			l.problem(e.key, "%v", err)
			continue
		}
		if k, dup := first[ap]; dup {
			l.problem(e.key, "%q is listed twice: %s is the same server (%s)", e.s, k, ap)
			continue
		}
		first[ap] = e.key
		out = append(out, ap)
	}
	return out
}

var ownerRE = regexp.MustCompile(`^` + userPattern + `[$]?:(` + userPattern + `[$]?)?$`)

func (l *loader) syncs(raw map[string]any) []Sync {
	v, ok := raw["sync"]
	if !ok {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		l.problem("sync", "must be an array of tables ([[sync]]), not %s", typeName(v))
		return nil
	}
	var out []Sync
	var keys []string // keys[i] names out[i]: "sync[N]"
	for i, e := range arr {
		prefix := fmt.Sprintf("sync[%d]", i)
		m, ok := e.(map[string]any)
		if !ok {
			l.problem(prefix, "must be a table, not %s", typeName(e))
			continue
		}
		l.table(m, prefix, "path", "initial", "delete", "owner", "verify", "xattrs")
		s := Sync{
			Initial: l.boolean(m, prefix, "initial"),
			Delete:  l.boolean(m, prefix, "delete"),
			Xattrs:  l.boolean(m, prefix, "xattrs"),
			Verify:  l.oneOf(m, prefix, "verify", VerifyMetadata, VerifyMetadata, VerifyContent),
		}
		p, _ := l.str(m, prefix, "path", "")
		switch {
		case p == "":
			l.problem(prefix+".path", "required: the absolute path to copy")
		case hasControl(p):
			l.problem(prefix+".path", "%q contains a control character (a newline, a tab, ...)", p)
		case !filepath.IsAbs(p):
			l.problem(prefix+".path", "%q is a relative path; write it absolute", p)
		case filepath.Clean(p) == "/":
			l.problem(prefix+".path", "refusing to sync the whole file system")
		default:
			s.Path = filepath.Clean(p)
		}
		s.Owner, _ = l.str(m, prefix, "owner", "")
		if s.Owner != "" && !ownerRE.MatchString(s.Owner) {
			l.problem(prefix+".owner", "%q is not \"user:\" or \"user:group\"", s.Owner)
		}
		out = append(out, s)
		keys = append(keys, prefix)
	}
	l.syncOverlaps(out, keys)
	return out
}

// syncOverlaps reports a path listed twice, and a path inside another,
// at the later of the two entries. Instead of comparing every pair, it
// looks each path's parent directories up in a map of the paths listed:
// linear in the number of entries.
func (l *loader) syncOverlaps(syncs []Sync, keys []string) {
	first := map[string]int{} // path -> index of its first entry
	for i, s := range syncs {
		if s.Path == "" {
			continue
		}
		if _, dup := first[s.Path]; dup {
			l.problem(keys[i]+".path", "%q is listed twice", s.Path)
			continue
		}
		first[s.Path] = i
	}
	for i, s := range syncs {
		if s.Path == "" || first[s.Path] != i {
			continue
		}
		for dir := filepath.Dir(s.Path); dir != "/"; dir = filepath.Dir(dir) {
			j, ok := first[dir]
			if !ok {
				continue
			}
			if j < i {
				l.problem(keys[i]+".path", "%q overlaps %q: list each directory once", s.Path, dir)
			} else {
				l.problem(keys[j]+".path", "%q overlaps %q: list each directory once", dir, s.Path)
			}
		}
	}
}

var placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)

// Placeholders lists the names a hook command may use as {name}, with their
// values as written in the config. A hook's Run holds them shell-quoted.
func Placeholders(cfg *Config) map[string]string {
	m := map[string]string{"dns.zone": cfg.DNS.Zone}
	for _, h := range []Host{cfg.Old, cfg.New} {
		m[h.Role+".address"] = addrString(h.Address)
		m[h.Role+".address6"] = addrString(h.Address6)
		m[h.Role+".ssh_user"] = h.SSHUser
		m[h.Role+".ssh_port"] = fmt.Sprint(h.SSHPort)
	}
	return m
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (l *loader) hooks(m map[string]any, cfg *Config) Hooks {
	var hs Hooks
	l.table(m, "hooks", HookNames...)
	vars := Placeholders(cfg)
	var valid []string
	for k := range vars {
		valid = append(valid, k)
	}
	slices.Sort(valid)
	for i, k := range valid {
		valid[i] = "{" + k + "}"
	}
	for _, name := range HookNames {
		prefix := "hooks." + name
		t := l.sub(m, "hooks", name, false)
		if t == nil {
			continue
		}
		l.table(t, prefix, "on", "run", "timeout")
		h := &Hook{Name: name, Timeout: DefaultHookTimeout}
		h.On, _ = l.str(t, prefix, "on", "")
		if !slices.Contains([]string{OnLocal, OnOld, OnNew}, h.On) {
			l.problem(prefix+".on", "%q: must be \"local\", \"old\" or \"new\"", h.On)
		}
		run, _ := l.str(t, prefix, "run", "")
		if strings.TrimSpace(run) == "" {
			l.problem(prefix+".run", "required: the command to run")
		}
		h.Run = placeholderRE.ReplaceAllStringFunc(run, func(ph string) string {
			v, ok := vars[strings.Trim(ph, "{}")]
			if !ok {
				l.problem(prefix+".run", "unknown placeholder %s (valid: %s)", ph, strings.Join(valid, " "))
				return ph
			}
			if v == "" {
				l.problem(prefix+".run", "placeholder %s is empty: that key is not set", ph)
			}
			return shellquote.Quote(v)
		})
		h.Timeout = l.duration(t, prefix, "timeout", DefaultHookTimeout)
		if h.Timeout <= 0 {
			l.problem(prefix+".timeout", "must be longer than 0s")
		}
		switch name {
		case "prepare":
			hs.Prepare = h
		case "disable":
			hs.Disable = h
		case "activate":
			hs.Activate = h
		case "reenable":
			hs.Reenable = h
		case "deactivate":
			hs.Deactivate = h
		}
	}
	return hs
}
