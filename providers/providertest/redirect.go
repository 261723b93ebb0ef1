package providertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
)

// Redirect is a RoundTripper that sends requests addressed to host (a
// provider's API, whose base URL the libraries keep constant) to the fake
// srv, and refuses any other destination, so a test never leaves the machine.
func Redirect(host string, srv *httptest.Server) http.RoundTripper {
	u, err := url.Parse(srv.URL)
	if err != nil {
		panic(err)
	}
	return redirect{host: host, to: u, rt: srv.Client().Transport}
}

type redirect struct {
	host string
	to   *url.URL
	rt   http.RoundTripper
}

func (r redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != r.host || req.URL.Scheme != "https" {
		return nil, fmt.Errorf("test: request to %s, not to %s", req.URL, r.host)
	}
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = r.to.Scheme, r.to.Host
	return r.rt.RoundTrip(req)
}
