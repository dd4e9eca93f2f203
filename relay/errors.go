package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
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
}

func (e *NoKeyError) Error() string {
	if e.Disabled {
		return "no API key available (every key is disabled by an admin)"
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

// staleWindow is how soon after it went out a call's failure can only be
// a connection upstream had closed: no model answers, or bills, in it.
const staleWindow = 50 * time.Millisecond

// staleConnection reports whether err, after elapsed, is the sign of a
// keep-alive connection upstream closed while idle: the connection
// reset, or ended before any answer (Go's transport says "server closed
// idle connection", or EOF), within staleWindow of the call going out.
func staleConnection(err error, elapsed time.Duration) bool {
	if elapsed >= staleWindow || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "server closed idle connection")
}
