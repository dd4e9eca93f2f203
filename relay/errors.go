package relay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keygate/keygate/keyring"
)

// NoKeyError means no key was available for a call.
type NoKeyError struct {
	// RetryAfter is the time until the first resting key is back.
	RetryAfter time.Duration
	// Disabled: every key is disabled by hand, so none comes back by
	// itself and there is no time to retry after.
	Disabled bool
	// FreeQuota: keys are in rotation, but the call is for a free model
	// and every account they belong to has its free-model requests used
	// up; RetryAfter is until the first account's block ends.
	FreeQuota bool
}

func (e *NoKeyError) Error() string {
	if e.Disabled {
		return "no API key available (every key is disabled by an admin)"
	}
	if e.FreeQuota {
		return fmt.Sprintf("no API key available for a free model: the free-model requests of every account are used up (first back in %s)", e.RetryAfter.Round(time.Second))
	}
	if e.RetryAfter <= 0 {
		// No key rests, yet none was let through: each one back from a
		// rest is busy with its single trial call.
		return "no API key available (each key back from a rest is busy with its trial call)"
	}
	return fmt.Sprintf("no API key available (first back in %s)", e.RetryAfter.Round(time.Second))
}

// AttemptError is a transport failure on one key's attempt.
type AttemptError struct {
	Key *keyring.Key
	Err error
}

func (e *AttemptError) Error() string { return fmt.Sprintf("upstream (key %d): %v", e.Key.ID, e.Err) }
func (e *AttemptError) Unwrap() error { return e.Err }

// classifyTransportError names why a round trip failed: the client left
// (context.Canceled), upstream fell silent (ErrUpstreamTimeout), or else
// the error as the transport gave it.
func classifyTransportError(ctx, parent context.Context, err error) error {
	if parent.Err() != nil {
		return fmt.Errorf("%w: %w", context.Canceled, err)
	}
	if errors.Is(context.Cause(ctx), ErrUpstreamTimeout) {
		return ErrUpstreamTimeout
	}
	return err
}

// staleWindow is how long after a call went out on plain HTTP Go's
// transport may send it again on a fresh connection (attempt): a failure
// that soon, before any byte of an answer, on a keep-alive connection, is
// one upstream had closed as idle; no model answers, or bills, in it.
const staleWindow = 50 * time.Millisecond

// errNotResent ends a call Go's transport would have sent again past
// staleWindow: it may have been processed.
var errNotResent = errors.New("upstream connection lost before any answer; not sent again, as upstream may have processed it")

// markResendable marks h's request as one Go's transport may send again
// on a fresh connection (its idempotency rule), unless the client's own
// key says so already. A header without a value is not sent.
func markResendable(h http.Header) {
	if _, ok := h["Idempotency-Key"]; ok {
		return
	}
	if _, ok := h["X-Idempotency-Key"]; !ok {
		h["X-Idempotency-Key"] = nil
	}
}
