package config

import (
	"fmt"
	"testing"
)

const deactivate = "[hooks]\ndeactivate = { on = \"new\", run = \"systemctl stop postfix\" }\n"

func TestParseBridge(t *testing.T) {
	cfg, err := Parse([]byte(minimal+deactivate+"[bridge]\nports = [25, 993]\nproxy_protocol = true\nbinary = \"/opt/cutover-arm64\"\n"), "c.toml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%+v", *cfg.Bridge), "{Ports:[25 993] ProxyProtocol:true Binary:/opt/cutover-arm64 Dir:/var/lib/cutover/bridge}"; got != want {
		t.Errorf("bridge %s, want %s", got, want)
	}
	if h := cfg.Hooks.Deactivate; h == nil || h.On != OnNew || h.Run != "systemctl stop postfix" {
		t.Errorf("deactivate hook %+v", h)
	}
	cfg, err = Parse([]byte(minimal), "c.toml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bridge != nil {
		t.Errorf("no [bridge] table, but Bridge = %+v", cfg.Bridge)
	}
}

func TestParseBridgeProblems(t *testing.T) {
	// minimal is 15 lines; deactivate adds two.
	for _, tc := range []struct {
		desc, add, want string
	}{
		{desc: "no deactivate hook", add: "[bridge]\nports = [25]\n",
			want: "config: c.toml:16:2: bridge: needs [hooks] deactivate: the command that undoes activate on new, run when a failure rolls back before any connection was forwarded"},
		{desc: "no ports", add: deactivate + "[bridge]\nproxy_protocol = false\n",
			want: "config: c.toml:18:2: bridge.ports: required: the TCP ports old forwards to new, e.g. ports = [25, 143, 465, 587, 993]"},
		{desc: "empty ports", add: deactivate + "[bridge]\nports = []\n",
			want: "config: c.toml:19:1: bridge.ports: is empty: list the TCP ports old forwards to new"},
		{desc: "ports as a string", add: deactivate + "[bridge]\nports = \"25\"\n",
			want: "config: c.toml:19:1: bridge.ports: must be an array of port numbers, not a string"},
		{desc: "a bad port, a repeated one and a string", add: deactivate + "[bridge]\nports = [25, 0, 25, \"587\", 70000]\n",
			want: "config: 4 problems:\n" +
				"  c.toml:19:14: bridge.ports[1]: 0 is not a port (1 to 65535)\n" +
				"  c.toml:19:17: bridge.ports[2]: 25 is listed twice\n" +
				"  c.toml:19:21: bridge.ports[3]: must be a port number, not a string\n" +
				"  c.toml:19:28: bridge.ports[4]: 70000 is not a port (1 to 65535)"},
		{desc: "unknown key", add: deactivate + "[bridge]\nports = [25]\nport = 26\n",
			want: "config: c.toml:20:1: bridge.port: unknown key (valid here: ports, proxy_protocol, binary, dir)"},
		{desc: "relative dir", add: deactivate + "[bridge]\nports = [25]\ndir = \"bridge\"\n",
			want: `config: c.toml:20:1: bridge.dir: "bridge": want an absolute, clean path on old other than /, e.g. "/var/lib/cutover/bridge"`},
		{desc: "dir is /", add: deactivate + "[bridge]\nports = [25]\ndir = \"/\"\n",
			want: `config: c.toml:20:1: bridge.dir: "/": want an absolute, clean path on old other than /, e.g. "/var/lib/cutover/bridge"`},
		{desc: "relative binary", add: deactivate + "[bridge]\nports = [25]\nbinary = \"bin/cutover\"\n",
			want: `config: c.toml:20:1: bridge.binary: "bin/cutover" is a relative path; write it absolute (or starting with ~/)`},
		{desc: "proxy_protocol not a bool", add: deactivate + "[bridge]\nports = [25]\nproxy_protocol = \"yes\"\n",
			want: "config: c.toml:20:1: bridge.proxy_protocol: must be true or false, not a string"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Parse([]byte(minimal+tc.add), "c.toml", Options{})
			if got := errString(err); got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
