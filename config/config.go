// Package config turns a cutover TOML file into a typed, validated Config.
//
// It owns the file format: key names, defaults, and every rule that can be
// checked without touching a host or DNS. Validation collects every problem
// at once, each with the file position and the key's full name. Secrets are
// references ("env:NAME" or "file:PATH") resolved only when used, so a
// Config can be printed or journaled without leaking them.
package config

import (
	"net/netip"
	"time"
)

// Config is a validated cutover file.
type Config struct {
	File      string    // path the config was read from
	CutoverAt time.Time // when the downtime window opens (disable runs)
	StateDir  string    // journal, lock and event log live here
	OnFailure string    // OnFailureRollback or OnFailureStop

	Old, New Host
	SSH      SSH
	DNS      DNS
	// Providers holds every [providers.NAME] table; DNS.Provider names one.
	Providers map[string]*ProviderSettings
	Sync      []Sync
	Hooks     Hooks
	Notify    Notify
	Bridge    *Bridge // nil: no handover through old

	// Warnings are things that do not stop the config from being used but
	// that the user should fix (a secret file others can read), in file
	// order. Commands that load a config print them, one line each, as
	// "warning: " + w.String().
	Warnings []Problem
}

// Values of Config.OnFailure.
const (
	OnFailureRollback = "rollback"
	OnFailureStop     = "stop"
)

// Host is one end of the move.
type Host struct {
	Role     string     // "old" or "new"
	Address  netip.Addr // IPv4: SSH target and the A value
	Address6 netip.Addr // optional IPv6: the AAAA value; invalid when absent
	SSHUser  string
	SSHPort  int
}

// Values of SSH.Transfer.
const (
	TransferDirect = "direct"
	TransferAgent  = "agent"
	TransferRelay  = "relay"
)

// SSH is how cutover reaches the hosts and how data moves between them.
type SSH struct {
	IdentityFile string // empty: use the agent at SSH_AUTH_SOCK
	KnownHosts   string
	Transfer     string // TransferDirect, TransferAgent or TransferRelay
}

// DNS says which records move and how propagation is judged.
type DNS struct {
	Provider        string   // key into Config.Providers
	Zone            string   // FQDN with trailing dot, lower case
	Names           []string // FQDNs with trailing dot, lower case, inside Zone
	LoweredTTL      time.Duration
	RestoreTTLAfter time.Duration // delay after activate; meaningless when RestoreNever
	RestoreNever    bool
	Authoritative   []netip.AddrPort // empty: discover from NS
	Resolvers       []netip.AddrPort
	Quorum          int // 0 means all resolvers
	ConvergeTimeout time.Duration
}

// Values of Sync.Verify.
const (
	VerifyMetadata = "metadata"
	VerifyContent  = "content"
)

// Sync is one path copied from old to new.
type Sync struct {
	Path    string // absolute, clean; the same path on both hosts
	Initial bool   // also copied ahead of the window
	Delete  bool   // the final pass removes what is gone on old
	Owner   string // "user:" or "user:group" for chown -R on new; empty: leave owners as copied
	Verify  string // VerifyMetadata or VerifyContent
	Xattrs  bool   // copies keep ACLs and extended attributes (a call per file on both hosts)
}

// Where a hook runs.
const (
	OnLocal = "local"
	OnOld   = "old"
	OnNew   = "new"
)

// Hook is a command run at a fixed point of the cutover.
type Hook struct {
	Name    string // "prepare", "disable", "activate", "reenable", "deactivate"
	On      string // OnLocal, OnOld or OnNew
	Run     string // placeholders already filled in, shell-quoted: exactly what runs
	Timeout time.Duration
}

// Hooks are the service-specific commands. A nil hook is not configured.
type Hooks struct {
	Prepare, Disable, Activate, Reenable *Hook
	Deactivate                           *Hook // undoes Activate on new; required with [bridge]
}

// Notify runs a command on every step change.
type Notify struct {
	Command string
}

// Provider returns the settings of the provider DNS.Provider names.
func (c *Config) Provider() *ProviderSettings { return c.Providers[c.DNS.Provider] }

// Host returns the host for a role ("old" or "new").
func (c *Config) Host(role string) Host {
	if role == OnNew {
		return c.New
	}
	return c.Old
}
