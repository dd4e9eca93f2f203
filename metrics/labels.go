package metrics

// Route says which gateway endpoint served a request; it is the `route` label.
type Route uint8

// Routes, exported as "run" and "passthrough".
const (
	RouteRun Route = iota
	RoutePassthrough
	numRoutes
)

// String returns the label value, or "" for a Route outside the constants.
func (r Route) String() string {
	switch r {
	case RouteRun:
		return "run"
	case RoutePassthrough:
		return "passthrough"
	}
	return ""
}

// Reason says why a key was cooled down or a request retried; it is the
// `reason` label, kept apart because each asks something else of an
// operator: auth failures need a human, a key's spending limit waits for its
// reset, an account's credits need a top-up, rate limits and quotas heal
// themselves.
type Reason uint8

// Reasons, exported as their String values. The first two keep the
// numbers and names they had before Wave 2.
const (
	ReasonAuth           Reason = iota // "auth": 401 only (402 and 403 counted here before Wave 2; a 403 rests nothing now)
	ReasonRateLimit                    // "rate_limit": a 429 that is not a daily free-model quota
	ReasonKeyLimit                     // "key_limit": 402 of the key's own spending limit
	ReasonCredits                      // "credits": 402, the account has no credit left
	ReasonFreeQuota                    // "free_quota": 429 free-models-per-day
	ReasonInFlightBudget               // "in_flight_budget": 402 openrouter_in_flight_budget
	numReasons
)

// ReasonAfford labels retries only ("afford"): a 402 "can only afford M",
// a request too large for its account, went on to another account. Nothing
// rests for it, so no cooldown counts it.
const ReasonAfford = numReasons

// numRetryReasons is the number of keygate_retries_total reasons.
const numRetryReasons = numReasons + 1

var reasonNames = [numReasons]string{
	ReasonAuth:           "auth",
	ReasonRateLimit:      "rate_limit",
	ReasonKeyLimit:       "key_limit",
	ReasonCredits:        "credits",
	ReasonFreeQuota:      "free_quota",
	ReasonInFlightBudget: "in_flight_budget",
}

// String returns the label value, or "" for a Reason outside the constants.
func (r Reason) String() string {
	switch {
	case r == ReasonAfford:
		return "afford"
	case r >= numReasons:
		return ""
	}
	return reasonNames[r]
}

// FailoverReason says why a held stream went on to another key before any
// byte reached the client; it is the `reason` label of
// keygate_stream_failovers_total.
type FailoverReason uint8

// Failover reasons, exported as their String values.
const (
	FailoverErrorEvent       FailoverReason = iota // "error_event": the first data: event was a key or account fault
	FailoverClosedBeforeData                       // "closed_before_data": upstream ended the stream before any data: event
	FailoverReadError                              // "read_error": reading the held stream failed (timeout, reset) before any data
	numFailoverReasons
)

var failoverNames = [numFailoverReasons]string{
	FailoverErrorEvent:       "error_event",
	FailoverClosedBeforeData: "closed_before_data",
	FailoverReadError:        "read_error",
}

// String returns the label value, or "" for a FailoverReason outside the
// constants.
func (r FailoverReason) String() string {
	if r >= numFailoverReasons {
		return ""
	}
	return failoverNames[r]
}

// strategies are the `strategy` label values KeySelected accepts, in the
// order of keyMetrics.selected.
var strategies = [...]string{"random", "round-robin", "least-busy"}
