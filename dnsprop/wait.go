package dnsprop

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/miekg/dns"
)

// ttlSlack is added to the moment a cached answer expires before it is asked
// for again, so the resolver has certainly dropped it.
const ttlSlack = 50 * time.Millisecond

// minGap is the shortest time between two questions for the same server, name
// and type.
const minGap = 100 * time.Millisecond

// maxBackoff bounds the back-off after unknown answers, in PollIntervals.
const maxBackoff = 8

// WaitAuthoritative returns once every authoritative address of the zone serves
// want for all names (AA flag set) and all of them serve the same SOA serial.
// old is the set being replaced: it tells "old" from "other".
// Authoritative servers are asked for their SOA serial every PollInterval; a
// name is asked again when the server's serial changes or while it does not
// serve the new set yet.
//
// progress, if not nil, is called (from the calling goroutine) with a "change"
// event for every observation that differs from the previous one for the same
// server, name and type, a "progress" event after every round of questions and
// about once a second while waiting, and a final "summary" event.
//
// When ctx ends first it returns the last Report and a *NotConvergedError that
// wraps ctx.Err() and names what has not converged.
func (c *Checker) WaitAuthoritative(ctx context.Context, names []string, old, want Sets, progress func(Event)) (*Report, error) {
	return c.wait(ctx, names, bothTypes, old, want, progress, true, false)
}

// WaitAuthoritativeTypes is WaitAuthoritative for some record types only
// (types as in WaitTypes). want may be empty: then the names must have no
// record of those types. want.TTL, when not 0, must be the TTL served.
func (c *Checker) WaitAuthoritativeTypes(ctx context.Context, names, types []string, old, want Sets, progress func(Event)) (*Report, error) {
	return c.wait(ctx, names, types, old, want, progress, true, false)
}

// WaitResolvers returns once Quorum resolvers (all when Quorum is 0) serve want
// for all names. Polling is TTL-aware: a resolver that serves anything but the
// new set with t left on its cached answer is asked again just after t has run
// out, not on a fixed interval; an unknown answer (timeout, SERVFAIL,
// REFUSED, ...) is asked again after PollInterval, backing off up to eight
// times that. See WaitAuthoritative for progress and the ctx error.
func (c *Checker) WaitResolvers(ctx context.Context, names []string, old, want Sets, progress func(Event)) (*Report, error) {
	return c.wait(ctx, names, bothTypes, old, want, progress, false, true)
}

// Wait is WaitAuthoritative and WaitResolvers at once: it returns when both
// conditions hold at the same time.
func (c *Checker) Wait(ctx context.Context, names []string, old, want Sets, progress func(Event)) (*Report, error) {
	return c.wait(ctx, names, bothTypes, old, want, progress, true, true)
}

// WaitTypes is Wait for some record types only: types holds "A", "AAAA" or
// both, and a type not in it is not asked for at all (`cutover watch --expect
// 192.0.2.2` watches A only). want must not hold addresses of a type not
// watched.
func (c *Checker) WaitTypes(ctx context.Context, names, types []string, old, want Sets, progress func(Event)) (*Report, error) {
	return c.wait(ctx, names, types, old, want, progress, true, true)
}

var bothTypes = []string{"A", "AAAA"}

// key is one (server, name, type) being watched.
type key struct {
	srv   netip.AddrPort
	role  string
	name  string
	qtype uint16
}

// slot is what is known about one key.
type slot struct {
	obs   Observation
	seen  bool
	next  time.Time // resolvers: when to ask again
	fails int       // consecutive unknown answers
	// repeated: obs is the same answer as the one before it. expires: when
	// the TTL of the first of these same answers ran out (resolvers).
	repeated bool
	expires  time.Time
}

// soaState is the last SOA answer of one authoritative server.
type soaState struct {
	ok      bool
	serial  uint32
	err     string
	next    time.Time
	changed bool // the serial changed in the current round
}

type waiter struct {
	k                   *cfg
	names               []string
	qtypes              []uint16
	old, want           Sets
	progress            func(Event)
	cnt                 *counter
	checkAuth, checkRes bool

	zone     string
	servers  []Server
	soa      map[netip.AddrPort]*soaState
	mname    string
	primary  map[netip.AddrPort]bool
	slots    map[key]*slot
	order    []key
	lastTick time.Time
	// servesZero: resolvers seen serving a cached answer with TTL 0.
	servesZero map[netip.AddrPort]bool
}

func (c *Checker) wait(ctx context.Context, names, types []string, old, want Sets, progress func(Event), checkAuth, checkRes bool) (*Report, error) {
	k, err := c.config()
	if err != nil {
		return nil, err
	}
	if names, err = canonNames(names); err != nil {
		return nil, err
	}
	if err := uniqueServers(k); err != nil {
		return nil, err
	}
	qtypes, err := watchedTypes(types, want, checkRes)
	if err != nil {
		return nil, err
	}
	for _, a := range want.A {
		if !a.Unmap().Is4() {
			return nil, fmt.Errorf("dnsprop: expected A address %q is not IPv4", a.String())
		}
	}
	for _, a := range want.AAAA {
		if a.Is4() || a.Is4In6() {
			return nil, fmt.Errorf("dnsprop: expected AAAA address %q is not IPv6", a.String())
		}
	}
	if checkRes {
		if err := k.needResolvers("waiting on resolvers"); err != nil {
			return nil, err
		}
		if k.quorum > len(k.resolvers) {
			return nil, fmt.Errorf("dnsprop: quorum %d exceeds the %d resolvers given", k.quorum, len(k.resolvers))
		}
	}
	w := &waiter{
		k: k, names: names, qtypes: qtypes, old: old, want: want, progress: progress, cnt: &counter{},
		checkAuth: checkAuth, checkRes: checkRes,
		soa: map[netip.AddrPort]*soaState{}, slots: map[key]*slot{}, servesZero: map[netip.AddrPort]bool{},
	}
	if checkAuth {
		if w.zone, err = k.zoneOf(ctx, w.cnt, names); err == nil {
			w.servers, err = k.authServers(ctx, w.cnt, w.zone)
		}
		if err != nil {
			if ctx.Err() != nil {
				return w.done(&NotConvergedError{Report: w.report(k.clock()), Err: ctx.Err()})
			}
			return nil, err
		}
		for _, s := range w.servers {
			w.soa[s.Addr] = &soaState{}
			w.addKeys(s.Addr, RoleAuthoritative)
		}
	}
	if checkRes {
		for _, r := range k.resolvers {
			w.addKeys(r, RoleResolver)
		}
	}
	for {
		if err := w.round(ctx); err != nil {
			return w.done(&NotConvergedError{Report: w.report(k.clock()), Err: ctx.Err()})
		}
		now := k.clock()
		r := w.report(now)
		if r.Converged {
			w.emit(Event{Kind: EventSummary, Report: r})
			return r, nil
		}
		w.emit(Event{Kind: EventProgress, Report: r})
		w.lastTick = now
		for {
			now = k.clock()
			next := w.nextWake()
			tick := false
			if w.progress != nil && w.lastTick.Add(time.Second).Before(next) {
				next, tick = w.lastTick.Add(time.Second), true
			}
			if d := next.Sub(now); d > 0 {
				select {
				case <-ctx.Done():
					return w.done(&NotConvergedError{Report: w.report(k.clock()), Err: ctx.Err()})
				case <-k.after(d):
				}
			} else if ctx.Err() != nil {
				return w.done(&NotConvergedError{Report: w.report(k.clock()), Err: ctx.Err()})
			}
			if !tick {
				break
			}
			w.lastTick = k.clock()
			w.emit(Event{Kind: EventProgress, Report: w.report(w.lastTick)})
		}
	}
}

// watchedTypes checks types ("A", "AAAA", no duplicates) against want: a type
// not watched must expect nothing, and the watched ones something when
// resolvers are waited on (that records are gone is checked on authoritative
// servers only).
func watchedTypes(types []string, want Sets, checkRes bool) ([]uint16, error) {
	var out []uint16
	expectSome := false
	for _, t := range types {
		qt, ok := map[string]uint16{"A": dns.TypeA, "AAAA": dns.TypeAAAA}[t]
		if !ok || slices.Contains(out, qt) {
			return nil, fmt.Errorf("dnsprop: record types %q: want A, AAAA or both, once each", types)
		}
		out = append(out, qt)
		expectSome = expectSome || len(want.Of(t)) > 0
	}
	for _, t := range bothTypes {
		if len(want.Of(t)) > 0 && !slices.Contains(types, t) {
			return nil, fmt.Errorf("dnsprop: expected %s addresses but %s is not watched", t, t)
		}
	}
	if len(out) == 0 || (!expectSome && checkRes) {
		return nil, errEmptySets
	}
	slices.Sort(out) // A before AAAA
	return out, nil
}

// uniqueServers refuses a resolver or authoritative server given twice: it
// would count twice towards a quorum that then can never be met.
func uniqueServers(k *cfg) error {
	for _, l := range []struct {
		role    string
		servers []netip.AddrPort
	}{{RoleResolver, k.resolvers}, {RoleAuthoritative, k.auth}} {
		for i, s := range l.servers {
			if j := slices.Index(l.servers, s); j < i {
				return fmt.Errorf("dnsprop: %s %s given twice (%s and %s)", l.role, serverString(s), ordinal(j+1), ordinal(i+1))
			}
		}
	}
	return nil
}

// ordinal is 1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, 21st, ...
func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

// done emits the summary of a wait that ended without convergence.
func (w *waiter) done(e *NotConvergedError) (*Report, error) {
	w.emit(Event{Kind: EventSummary, Report: e.Report})
	return e.Report, e
}

func (w *waiter) emit(ev Event) {
	if w.progress != nil {
		w.progress(ev)
	}
}

func (w *waiter) addKeys(srv netip.AddrPort, role string) {
	for _, n := range w.names {
		for _, t := range w.qtypes {
			k := key{srv: srv, role: role, name: n, qtype: t}
			w.slots[k] = &slot{}
			w.order = append(w.order, k)
		}
	}
}

// nextWake is the earliest moment something is due.
func (w *waiter) nextWake() time.Time {
	var next time.Time
	take := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, s := range w.soa {
		take(s.next)
	}
	for _, k := range w.order {
		if k.role == RoleResolver {
			take(w.slots[k].next)
		}
	}
	return next
}

// round asks everything that is due: the SOA of due authoritative servers,
// then their names (new serial, not yet new, or never asked), and every
// resolver question whose time has come.
func (w *waiter) round(ctx context.Context) error {
	k := w.k
	now := k.clock()
	var dueSOA []netip.AddrPort
	for _, s := range w.servers {
		if st := w.soa[s.Addr]; !now.Before(st.next) {
			dueSOA = append(dueSOA, s.Addr)
		}
	}
	if len(dueSOA) > 0 {
		ans := make([]answer, len(dueSOA))
		err := forEach(ctx, len(dueSOA), k.conc, func(i int) error {
			a, err := query(ctx, w.cnt, dueSOA[i], w.zone, dns.TypeSOA, true, k.timeout, k.retries)
			ans[i] = a
			return err
		})
		if err != nil {
			return err
		}
		at := k.clock()
		for i, srv := range dueSOA {
			st, a := w.soa[srv], ans[i]
			if a.err == "" && (!a.exists || a.soa == nil) {
				a.err = "no SOA record for the zone"
			}
			st.next = at.Add(k.poll)
			if a.err != "" {
				st.ok, st.err, st.changed = false, a.err, false
				continue
			}
			st.changed = !st.ok || st.serial != a.soa.Serial
			st.ok, st.serial, st.err = true, a.soa.Serial, ""
			if w.mname == "" {
				w.mname = dns.CanonicalName(a.soa.Ns)
			}
		}
		if w.primary == nil && w.mname != "" {
			w.primary = k.primaries(ctx, w.cnt, w.zone, w.mname, w.servers)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	var jobs []key
	for _, kk := range w.order {
		s := w.slots[kk]
		if kk.role == RoleAuthoritative {
			if !slices.Contains(dueSOA, kk.srv) {
				continue
			}
			if !s.seen || w.soa[kk.srv].changed || s.obs.State != StateNew {
				jobs = append(jobs, kk)
			}
			continue
		}
		if !now.Before(s.next) {
			jobs = append(jobs, kk)
		}
	}
	type result struct {
		a        answer
		sent, at time.Time
	}
	res := make([]result, len(jobs))
	err := forEach(ctx, len(jobs), k.conc, func(i int) error {
		j := jobs[i]
		sent := k.clock()
		a, err := query(ctx, w.cnt, j.srv, j.name, j.qtype, j.role == RoleAuthoritative, k.timeout, k.retries)
		res[i] = result{a: a, sent: sent, at: k.clock()}
		return err
	})
	if err != nil {
		return err
	}
	for i, j := range jobs {
		w.apply(j, res[i].a, res[i].sent, res[i].at)
	}
	return nil
}

// apply records one answer, emits a change event when it differs from the
// previous one, and schedules the next question for resolvers.
func (w *waiter) apply(kk key, a answer, sent, at time.Time) {
	s := w.slots[kk]
	t := typeName(kk.qtype)
	o := Observation{Server: kk.srv, Role: kk.role, Name: kk.name, Type: t, Want: normSet(w.want.Of(t)), At: at}
	if kk.role == RoleAuthoritative {
		if st := w.soa[kk.srv]; st.ok {
			o.Serial = st.serial
		}
	}
	if a.err != "" {
		o.State, o.Err = StateUnknown, a.err
	} else {
		o.Addrs, o.TTL = a.addrs, a.ttl
		o.State = classify(a.addrs, w.old.Of(t), w.want.Of(t))
		if kk.role == RoleAuthoritative && w.want.TTL > 0 && len(a.addrs) > 0 {
			o.WantTTL = w.want.TTL
			if o.State == StateNew && a.ttl != w.want.TTL {
				o.State = StateOther
			}
		}
	}
	changed := !s.seen || s.obs.State != o.State || !slices.Equal(s.obs.Addrs, o.Addrs) || s.obs.TTL != o.TTL && o.WantTTL > 0 ||
		s.obs.Err != o.Err || s.obs.Serial != o.Serial
	s.obs, s.seen, s.repeated = o, true, !changed
	if changed {
		s.expires = sent.Truncate(time.Second).Add(o.TTL)
	}
	if kk.role == RoleResolver {
		s.next = w.nextAsk(s, kk, a, sent, at)
	}
	if changed {
		obs := o
		w.emit(Event{Kind: EventChange, Obs: &obs})
	}
}

// nextAsk is when a resolver is asked again. Resolvers count TTLs in whole
// seconds of their own clock, so an answer with t seconds left expires t
// seconds after the start of the second it was sent in. Some resolvers
// (Unbound, BIND) still serve the cached answer with TTL 0 during the second
// after that: an answer with TTL 0 is asked again at the start of the next
// second, and once a resolver has been seen doing this its later expiries are
// awaited one second longer, saving a question per expiry.
func (w *waiter) nextAsk(s *slot, kk key, a answer, sent, at time.Time) time.Time {
	if a.err != "" {
		s.fails++
		return at.Add(w.k.poll * time.Duration(min(1<<(s.fails-1), maxBackoff)))
	}
	s.fails = 0
	base := sent.Truncate(time.Second)
	var next time.Time
	if a.ttl <= 0 {
		w.servesZero[kk.srv] = true
		next = base.Add(time.Second + ttlSlack)
	} else {
		next = base.Add(a.ttl + ttlSlack)
		if w.servesZero[kk.srv] {
			next = next.Add(time.Second)
		}
	}
	if next.Before(at.Add(minGap)) {
		next = at.Add(minGap)
	}
	return next
}

// report is the state at now.
func (w *waiter) report(now time.Time) *Report {
	r := &Report{At: now, Queries: w.cnt.snapshot()}
	for _, t := range w.qtypes {
		r.Types = append(r.Types, typeName(t))
	}
	allSeen := len(w.order) > 0
	authOK := true
	allStable := true // every answer that is not new is stable
	top, haveTop := w.topSerial()
	good := map[netip.AddrPort]bool{}
	for _, kk := range w.order {
		s := w.slots[kk]
		if !s.seen {
			allSeen = false
			continue
		}
		o := s.obs
		if o.State != StateNew && o.State != StateUnknown && s.repeated {
			if kk.role == RoleResolver {
				o.Stable = o.TTL > 0 && !o.At.Before(s.expires)
			} else {
				st := w.soa[kk.srv]
				o.Stable = haveTop && st.ok && st.serial == top
			}
		}
		r.Observations = append(r.Observations, o)
		if o.State != StateNew {
			allStable = allStable && o.Stable
			r.Lagging = append(r.Lagging, o.describe(now))
		}
		if kk.role == RoleAuthoritative {
			authOK = authOK && o.State == StateNew
			continue
		}
		if _, ok := good[kk.srv]; !ok {
			good[kk.srv] = true
		}
		if o.State != StateNew {
			good[kk.srv] = false
			if o.State != StateUnknown && !o.Stable {
				r.ETA = max(r.ETA, o.TTLLeft(now))
			}
		}
	}
	if w.checkAuth {
		lines := w.serialLagging(top, haveTop)
		if len(lines) > 0 {
			authOK, allStable = false, false
			r.Lagging = append(lines, r.Lagging...)
		}
	}
	resOK := true
	if w.checkRes {
		n := 0
		for _, ok := range good {
			if ok {
				n++
			}
		}
		need := w.k.quorum
		if need == 0 {
			need = len(w.k.resolvers)
		}
		resOK = n >= need
	}
	r.Converged = allSeen && authOK && resOK
	r.StableButWrong = !r.Converged && allSeen && allStable
	return r
}

// topSerial is the newest SOA serial any authoritative server serves.
func (w *waiter) topSerial() (top uint32, have bool) {
	for _, s := range w.servers {
		if st := w.soa[s.Addr]; st.ok && (!have || serialLess(top, st.serial)) {
			top, have = st.serial, true
		}
	}
	return top, have
}

// serialLagging names every authoritative server that does not serve top,
// the newest SOA serial seen, or whose SOA is unknown.
func (w *waiter) serialLagging(top uint32, have bool) []string {
	ref := ""
	if have {
		for _, s := range w.servers {
			st := w.soa[s.Addr]
			switch {
			case !st.ok || st.serial != top:
			case w.primary[s.Addr]:
				ref = "primary"
			case ref == "":
				ref = serverString(s.Addr)
			}
		}
	}
	var out []string
	for _, s := range w.servers {
		st := w.soa[s.Addr]
		switch {
		case st.err != "":
			out = append(out, fmt.Sprintf("%s %s SOA unknown (%s)", serverString(s.Addr), w.zone, st.err))
		case st.ok && st.serial != top:
			role := "server"
			if w.primary[s.Addr] {
				role = "primary"
			} else if len(w.primary) > 0 {
				role = "secondary"
			}
			out = append(out, fmt.Sprintf("%s %s serves serial %d, %s %d", role, serverString(s.Addr), st.serial, ref, top))
		}
	}
	return out
}
