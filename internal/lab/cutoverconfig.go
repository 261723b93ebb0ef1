package lab

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Migration describes the lab's chatmail-style migration from the pair's
// old host to its new one, with the DNS lab's primary as the rfc2136
// provider: what the end-to-end test and the downtime benchmark hand to
// `cutover run`.
type Migration struct {
	Net        *Net
	Pair       *Pair
	DNS        *DNSLab
	CutoverAt  time.Time
	StateDir   string
	Zone, Name string     // "example.org.", "mail.example.org."
	Old6, New6 netip.Addr // the AAAA values of old and new
	LoweredTTL time.Duration
	SecretEnv  string // the environment variable holding the TSIG secret
	SecretFile string // or, when SecretEnv is empty, the file holding it
	// Relay: the hooks configure (prepare, on new), stop and start the real relay (relay-ctl,
	// InstallRelay with ByHook on new) instead of the stand-in service (labmail-ctl).
	Relay bool
	// Bridge: a handover through old ([bridge]) of these ports, with the deactivate hook; the
	// forwarder's dir is /tmp/forwarder (the hosts' private /tmp).
	Bridge []uint16
}

// Config returns the cutover config file: the four chatmail paths, the
// labmail-ctl or relay-ctl hooks, both authoritative servers and both caches named (no
// test may fall back to /etc/resolv.conf).
func (m Migration) Config() string {
	n := m.Net
	var b strings.Builder
	fmt.Fprintf(&b, "cutover_at = %s\nstate_dir = %q\non_failure = \"rollback\"\n\n", m.CutoverAt.UTC().Format(time.RFC3339), m.StateDir)
	for _, h := range []struct {
		name     string
		ip       netip.Addr
		address6 netip.Addr
	}{{"old", n.IP(10), m.Old6}, {"new", n.IP(20), m.New6}} {
		fmt.Fprintf(&b, "[%s]\naddress = %q\n", h.name, h.ip)
		if h.address6.IsValid() {
			fmt.Fprintf(&b, "address6 = %q\n", h.address6)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "[ssh]\nidentity_file = %q\nknown_hosts = %q\ntransfer = \"direct\"\n\n", m.Pair.Identity.KeyFile, m.Pair.KnownHosts)
	fmt.Fprintf(&b, "[dns]\nprovider = \"lab\"\nzone = %q\nnames = [%q]\nlowered_ttl = \"%ds\"\nrestore_ttl_after = \"2s\"\n", m.Zone, m.Name, int(m.LoweredTTL/time.Second))
	fmt.Fprintf(&b, "authoritative = [%q, %q]\nresolvers = [%q, %q]\nquorum = \"all\"\nconverge_timeout = \"60s\"\n\n", n.IP(31), n.IP(32), n.IP(41), n.IP(42))
	secret := "env:" + m.SecretEnv
	if m.SecretEnv == "" {
		secret = "file:" + m.SecretFile
	}
	fmt.Fprintf(&b, "[providers.lab]\ntype = \"rfc2136\"\nserver = \"%s:53\"\nkey_name = %q\nkey_alg = %q\nkey = %q\n\n", n.IP(31), m.DNS.Key.Name, m.DNS.Key.Algorithm, secret)
	start, stop, timeout := "labmail-ctl enable", "labmail-ctl disable", "30s"
	if m.Relay {
		// relay-ctl stop drains Postfix (up to 10 s) and waits for each daemon's processes to
		// go (up to 30 s each): on a loaded machine it passed 30 s.
		start, stop, timeout = "relay-ctl start", "relay-ctl stop", "2m"
	}
	b.WriteString(`[[sync]]
path = "/home/vmail/mail"
initial = true
delete = true
owner = "vmail:"

[[sync]]
path = "/var/lib/acme"
owner = "root:"

[[sync]]
path = "/etc/dkimkeys"
owner = "opendkim:"
verify = "content"

[[sync]]
path = "/var/spool/postfix"

`)
	b.WriteString("[hooks]\n")
	if m.Relay {
		fmt.Fprintf(&b, "prepare  = { on = \"new\", run = \"relay-ctl prepare\", timeout = %q }\n", timeout)
	}
	fmt.Fprintf(&b, "disable  = { on = \"old\", run = %q, timeout = %q }\n", stop, timeout)
	fmt.Fprintf(&b, "activate = { on = \"new\", run = %q, timeout = %q }\n", start, timeout)
	fmt.Fprintf(&b, "reenable = { on = \"old\", run = %q, timeout = %q }\n", start, timeout)
	if len(m.Bridge) > 0 {
		fmt.Fprintf(&b, "deactivate = { on = \"new\", run = %q, timeout = %q }\n", stop, timeout)
		ports := make([]string, len(m.Bridge))
		for i, p := range m.Bridge {
			ports[i] = fmt.Sprint(p)
		}
		fmt.Fprintf(&b, "\n[bridge]\nports = [%s]\ndir = \"/tmp/forwarder\"\n", strings.Join(ports, ", "))
	}
	return b.String()
}
