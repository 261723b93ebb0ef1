package cloudflare_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover-dev/cutover/providers/providertest"
)

// fakeCF speaks the Cloudflare v4 API as github.com/libdns/cloudflare uses
// it: the response envelope, record ids, pagination with result_info, and
// lookups by type, name and content.exact. Faults can be queued.
type fakeCF struct {
	t         *testing.T
	mu        sync.Mutex
	zoneID    string
	zoneName  string // without the trailing dot
	token     string
	zoneToken string
	recs      []*cfRec
	nextID    int
	faults    []fault // served first, one per request
	every     int     // when > 0: every Nth request gets a transient fault
	requests  int
	log       []string // "METHOD path?query"
	auths     []string // Authorization headers seen
	noInfo    bool     // omit result_info from listings (the library then panics)
	bodies    []string // request bodies of POST and PATCH
	at        []time.Time
}

type fault struct {
	status     int
	retryAfter string
}

type cfRec struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Content string `json:"content"`
	TTL     int    `json:"ttl"`
	Proxied bool   `json:"proxied"`
	ZoneID  string `json:"zone_id"`
}

func newFakeCF(t *testing.T, token string) (*fakeCF, *http.Client) {
	f := &fakeCF{t: t, zoneID: "023e105f4ecef8ad9ca31a8372d0c353", zoneName: "example.org", token: token}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, &http.Client{Transport: providertest.Redirect("api.cloudflare.com", srv)}
}

func (f *fakeCF) add(name, typ, content string, ttl int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addLocked(name, typ, content, ttl)
}

func (f *fakeCF) addLocked(name, typ, content string, ttl int) *cfRec {
	f.nextID++
	r := &cfRec{ID: fmt.Sprintf("%032x", 0xc0ffee0000+f.nextID), Type: typ, Name: f.abs(name), Content: content, TTL: ttl, ZoneID: f.zoneID}
	if ttl == 0 {
		r.TTL = 1
	}
	f.recs = append(f.recs, r)
	return r
}

// proxy marks the A/AAAA records of name as proxied ("orange cloud").
func (f *fakeCF) proxy(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.recs {
		if r.Name == f.abs(name) && (r.Type == "A" || r.Type == "AAAA") {
			r.Proxied = true
		}
	}
}

func (f *fakeCF) abs(name string) string {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	switch {
	case name == "@" || name == "":
		return f.zoneName
	case name == f.zoneName || strings.HasSuffix(name, "."+f.zoneName):
		return name
	}
	return name + "." + f.zoneName
}

type envelope struct {
	Result     any        `json:"result"`
	Success    bool       `json:"success"`
	Errors     []apiError `json:"errors"`
	Messages   []any      `json:"messages"`
	ResultInfo *info      `json:"result_info,omitempty"`
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type info struct {
	Page       int `json:"page"`
	PerPage    int `json:"per_page"`
	Count      int `json:"count"`
	TotalCount int `json:"total_count"`
}

func (f *fakeCF) reply(w http.ResponseWriter, status int, e envelope) {
	e.Success = status < 400 && len(e.Errors) == 0
	if e.Errors == nil {
		e.Errors = []apiError{}
	}
	e.Messages = []any{}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

func (f *fakeCF) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.at = append(f.at, time.Now())
	f.log = append(f.log, r.Method+" "+r.URL.RequestURI())
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	if r.Body != nil && (r.Method == http.MethodPost || r.Method == http.MethodPatch) {
		b, _ := io.ReadAll(r.Body)
		f.bodies = append(f.bodies, string(b))
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	if len(f.faults) > 0 || (f.every > 0 && f.requests%f.every == 0) {
		flt := fault{status: 500}
		if r.Method == http.MethodPost || r.Method == http.MethodPatch {
			// A 500 to a write may have done it: the client must not repeat
			// it (providers.RetryTransport); a 503 says it was not done.
			flt.status = 503
		}
		if len(f.faults) > 0 {
			flt, f.faults = f.faults[0], f.faults[1:]
		} else if f.requests%(2*f.every) == 0 {
			flt = fault{status: 429, retryAfter: "0"}
		}
		if flt.retryAfter != "" {
			w.Header().Set("Retry-After", flt.retryAfter)
		}
		msg := "Internal Server Error"
		if flt.status == 429 {
			msg = "Rate limited. Please wait and consider throttling your request speed"
		}
		f.reply(w, flt.status, envelope{Errors: []apiError{{Code: 10000 + flt.status, Message: msg}}})
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/client/v4")
	q := r.URL.Query()
	auth := r.Header.Get("Authorization")
	if path == "/zones" && r.Method == http.MethodGet {
		if auth != "Bearer "+f.token && (f.zoneToken == "" || auth != "Bearer "+f.zoneToken) {
			f.reply(w, 403, envelope{Errors: []apiError{{Code: 9109, Message: "Invalid access token"}}})
			return
		}
		var zones []map[string]any
		if q.Get("name") == "" || q.Get("name") == f.zoneName {
			zones = append(zones, map[string]any{"id": f.zoneID, "name": f.zoneName, "status": "active"})
		}
		f.reply(w, 200, envelope{Result: zones, ResultInfo: &info{Page: 1, PerPage: 20, Count: len(zones), TotalCount: len(zones)}})
		return
	}
	if auth != "Bearer "+f.token {
		f.reply(w, 403, envelope{Errors: []apiError{{Code: 10000, Message: "Authentication error"}}})
		return
	}
	base := "/zones/" + f.zoneID + "/dns_records"
	switch {
	case path == base && r.Method == http.MethodGet:
		var match []*cfRec
		for _, rec := range f.recs {
			if (q.Get("type") == "" || rec.Type == q.Get("type")) &&
				(q.Get("name") == "" || rec.Name == strings.ToLower(q.Get("name"))) &&
				(q.Get("content.exact") == "" || rec.Content == q.Get("content.exact")) {
				match = append(match, rec)
			}
		}
		page, per := atoi(q.Get("page"), 1), atoi(q.Get("per_page"), 100)
		if per > 5000 {
			per = 5000
		}
		lo, hi := min((page-1)*per, len(match)), min(page*per, len(match))
		e := envelope{Result: nonNil(match[lo:hi])}
		if !f.noInfo {
			e.ResultInfo = &info{Page: page, PerPage: per, Count: hi - lo, TotalCount: len(match)}
		}
		f.reply(w, 200, e)
	case path == base && r.Method == http.MethodPost:
		var in cfRec
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Type == "" || in.Content == "" {
			f.reply(w, 400, envelope{Errors: []apiError{{Code: 9000, Message: "bad request"}}})
			return
		}
		for _, rec := range f.recs {
			if rec.Name == f.abs(in.Name) && rec.Type == in.Type && rec.Content == in.Content {
				f.reply(w, 400, envelope{Errors: []apiError{{Code: 81058, Message: "An identical record already exists."}}})
				return
			}
		}
		if in.TTL != 0 && in.TTL != 1 && in.TTL < 60 {
			f.reply(w, 400, envelope{Errors: []apiError{{Code: 9021, Message: "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."}}})
			return
		}
		f.reply(w, 200, envelope{Result: f.addLocked(in.Name, in.Type, in.Content, in.TTL)})
	case strings.HasPrefix(path, base+"/") && (r.Method == http.MethodPatch || r.Method == http.MethodDelete):
		id := strings.TrimPrefix(path, base+"/")
		i := slices.IndexFunc(f.recs, func(rec *cfRec) bool { return rec.ID == id })
		if i < 0 {
			f.reply(w, 404, envelope{Errors: []apiError{{Code: 81044, Message: "Record does not exist."}}})
			return
		}
		if r.Method == http.MethodDelete {
			f.recs = slices.Delete(f.recs, i, i+1)
			f.reply(w, 200, envelope{Result: map[string]string{"id": id}})
			return
		}
		var in map[string]any
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			f.reply(w, 400, envelope{Errors: []apiError{{Code: 9000, Message: "bad request"}}})
			return
		}
		rec := f.recs[i]
		if v, ok := in["content"].(string); ok {
			rec.Content = v
		}
		if v, ok := in["name"].(string); ok {
			rec.Name = f.abs(v)
		}
		if v, ok := in["proxied"].(bool); ok {
			rec.Proxied = v
		}
		if v, ok := in["ttl"].(float64); ok {
			if v != 1 && v < 60 {
				f.reply(w, 400, envelope{Errors: []apiError{{Code: 9021, Message: "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."}}})
				return
			}
			rec.TTL = int(v)
		}
		f.reply(w, 200, envelope{Result: rec})
	default:
		f.reply(w, 404, envelope{Errors: []apiError{{Code: 7003, Message: "Could not route to " + path}}})
	}
}

func nonNil(rs []*cfRec) []*cfRec {
	if rs == nil {
		return []*cfRec{}
	}
	return rs
}

func atoi(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return n
	}
	return def
}
