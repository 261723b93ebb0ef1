package cloudflare

import "net/http"

// SetTransport replaces the HTTP transport the factory uses and returns a
// function that restores it.
func SetTransport(rt http.RoundTripper) (restore func()) {
	old := transport
	transport = rt
	return func() { transport = old }
}
