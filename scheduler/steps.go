// Package scheduler owns the cutover's timeline and its execution: the fixed
// list of steps, Plan (a pure function from config, observed DNS facts and
// the current time to an ordered, timed plan), the engine that runs a plan
// step by step, the durable journal that makes a run resumable, rollback,
// and the event log. It talks to DNS providers, propagation checks and the
// hosts only through small interfaces it declares itself.
package scheduler

// StepName names one step of a cutover.
type StepName string

// The steps, in the order they run. The window opens with Disable.
const (
	Preflight          StepName = "preflight"
	LowerTTL           StepName = "lower-ttl"
	InitialSync        StepName = "initial-sync"
	Prepare            StepName = "prepare"
	Disable            StepName = "disable"
	FinalSync          StepName = "final-sync"
	Verify             StepName = "verify"
	Fixup              StepName = "fixup"
	SwapDNS            StepName = "swap-dns"
	AwaitAuthoritative StepName = "await-authoritative"
	AwaitResolvers     StepName = "await-resolvers"
	Activate           StepName = "activate"
	RestoreTTL         StepName = "restore-ttl"
)

// StepInfo is what is known about a step independent of any config.
type StepInfo struct {
	Name StepName
	// Idempotent steps are rerun after an interruption; the others (hooks)
	// stop and ask, because running a service command twice may not be safe.
	Idempotent bool
	Summary    string
}

// Steps is the cutover, in order. It reads like chatmail's migration guide.
var Steps = []StepInfo{
	{Preflight, true, "check both hosts and DNS; snapshot the records"},
	{LowerTTL, true, "lower the TTL of the A/AAAA records ahead of the window"},
	{InitialSync, true, "copy the large data ahead of the window"},
	{Prepare, false, "configure the new host, still inactive"},
	{Disable, false, "stop the service on the old host: the window opens"},
	{FinalSync, true, "copy everything again (the delta), with deletions"},
	{Verify, true, "compare both hosts' copies"},
	{Fixup, true, "fix and check ownership on the new host"},
	{SwapDNS, true, "point A/AAAA at the new host"},
	{AwaitAuthoritative, true, "wait until every authoritative server serves the new records"},
	{AwaitResolvers, true, "wait until the resolvers serve the new records"},
	{Activate, false, "start the service on the new host: the window closes"},
	{RestoreTTL, true, "put the original TTL back"},
}

// Info returns the StepInfo for name, and whether it is a step.
func Info(name StepName) (StepInfo, bool) {
	for _, s := range Steps {
		if s.Name == name {
			return s, true
		}
	}
	return StepInfo{}, false
}

// StepNames lists every step name in order (for messages).
func StepNames() []string {
	out := make([]string, len(Steps))
	for i, s := range Steps {
		out[i] = string(s.Name)
	}
	return out
}
