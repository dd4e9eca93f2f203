package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/silence"
)

// watchedBody is an upstream response body that cancels its attempt when
// upstream falls silent for longer than the timeout, and that ends the key's
// in-flight count when closed.
type watchedBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	// watch cancels the attempt (Expire) when upstream stays silent;
	// entry is the attempt on it.
	watch  *silence.Watch
	entry  silence.Entry
	pool   *keyring.Pool
	key    *keyring.Key
	closed atomic.Bool
	// lease is the attempt's key and breaker trial, settled by the relay
	// once the answer is judged.
	lease Lease
	// head holds what judge read ahead of the client: it is read first.
	// peek is head's pooled buffer, headErr the error the read ahead met.
	head    []byte
	peek    *[]byte
	headErr error
	// reqBody reads the attempt's request body, kept here to save it an
	// allocation.
	reqBody bytes.Reader
	// rl is the relay, for the stream's late faults; client and blind are
	// the call's (Call.Client, Call.Blind), which bound them as settle
	// bounds the faults of the answer's head.
	rl     *Relay
	client string
	blind  bool
	// hold is what the stream hold saw; errBody the JSON error answer of
	// an error first event.
	hold    holdOutcome
	errBody []byte
	// done: the body ends with head (an answer rewritten by the relay).
	done bool
	// resent: Go's transport has sent the attempt again once already.
	// (Beside done, in its padding: a field of its own after sent made
	// every attempt's allocation 32 bytes larger, the next size class.)
	resent bool
	// sent is when the attempt went out: plain HTTP's GetBody lets Go's
	// transport send it again only soon after (staleWindow).
	sent time.Time
	// cut is the read error that broke the answer's body off while judge
	// read it ahead of the client (named by readErr), nil when none did:
	// nothing of it reached the client, and the call fails with it.
	cut error
}

// requestBody is an attempt's request body, read from memory. It is
// io.NopCloser over a *bytes.Reader, the form net/http knows to be in
// memory: the transport then writes the request's headers and body in one
// write, where for a reader of its own it sends the headers ahead on their
// own (a write system call, and a packet, more on every call).
func requestBody(r *bytes.Reader) io.ReadCloser { return io.NopCloser(r) }

// Expire implements silence.Expirer: upstream was silent too long.
func (b *watchedBody) Expire() { b.cancel(ErrUpstreamTimeout) }

// Read reads from upstream and restarts the silence watch on progress.
func (b *watchedBody) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		if len(b.head) == 0 {
			b.releasePeek()
			if b.headErr != nil {
				err := b.headErr
				b.headErr = nil
				return n, err
			}
		}
		return n, nil
	}
	if b.headErr != nil {
		err := b.headErr
		b.headErr = nil
		return 0, err
	}
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		b.watch.Touch(&b.entry)
	}
	if err != nil {
		err = b.readErr(err)
	}
	return n, err
}

// readErr names a read error whose cause is upstream's silence.
func (b *watchedBody) readErr(err error) error {
	if err != io.EOF && errors.Is(context.Cause(b.ctx), ErrUpstreamTimeout) {
		return fmt.Errorf("%w: %w", ErrUpstreamTimeout, err)
	}
	return err
}

// Close closes the upstream body once and releases the key.
func (b *watchedBody) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.watch.Remove(&b.entry)
	b.head = nil
	b.releasePeek()
	err := b.rc.Close()
	b.cancel(context.Canceled)
	b.pool.End(b.key)
	return err
}

func (b *watchedBody) releasePeek() {
	if b.peek != nil {
		peekBuffers.Put(b.peek)
		b.peek = nil
	}
}
