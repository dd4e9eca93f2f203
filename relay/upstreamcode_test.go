package relay_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/relay"
)

// TestUpstreamCodeAsJudged: an attempt is reported to the observer (and so
// to keygate_upstream_requests_total) with the status its answer was judged
// by, not the 200 its headers carried: a stream whose first event is an
// error by that error's code, a stream that ends before any data as the
// 502 it counts as, a JSON 200 that is an error object by its code, a
// client that left during the hold as StatusClientClosed. A 429 sent as a
// stream's first event (OpenRouter's way) showed as a 200 on the
// dashboard and in the 429 share alert while its key rested.
func TestUpstreamCodeAsJudged(t *testing.T) {
	for _, tt := range []struct {
		name string
		h    handler
		want []upstreamEvent
	}{
		{"plain stream", streams(nil, nil), []upstreamEvent{{1, 200}}},
		{"429 first event", streams(map[int][]string{1: {processing, keyRL}}, nil), []upstreamEvent{{1, 429}, {2, 200}}},
		{"402 first event on every key", streams(map[int][]string{1: {noCredits}, 2: {noCredits}}, nil), []upstreamEvent{{1, 402}, {2, 402}}},
		{"400 first event", streams(map[int][]string{1: {badRequest}}, nil), []upstreamEvent{{1, 400}}},
		{"closed before data", streams(map[int][]string{1: {processing, "data: {\"cho"}}, nil), []upstreamEvent{{1, 502}, {2, 200}}},
		{"JSON error in a 200", answers(map[int]answer{1: {status: 200, body: `{"error":{"code":500,"message":"provider failed"}}`}}), []upstreamEvent{{1, 500}}},
		{"JSON 429 in a 200", answers(map[int]answer{1: {status: 200, body: `{"error":{"code":429,"message":"Rate limit exceeded"}}`}}), []upstreamEvent{{1, 429}, {2, 200}}},
		{"JSON 200", answers(nil), []upstreamEvent{{1, 200}}},
		{"JSON 429 for a stream", streams(map[int][]string{1: {`{"error":{"code":429,"message":"Rate limit exceeded"}}`}}, nil), []upstreamEvent{{1, 429}, {2, 200}}},
		{"JSON answer for a stream", streams(map[int][]string{1: {`{"choices":[]}`}}, nil), []upstreamEvent{{1, 200}}},
		{"JSON error without a status in a 200", answers(map[int]answer{1: {status: 200, body: `{"error":{"code":"server_error","message":"provider failed"}}`}}), []upstreamEvent{{1, 502}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{keys: 2}, tt.h)
			resp, err := e.do(t, nil, &relay.Call{})
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			e.obs.mu.Lock()
			defer e.obs.mu.Unlock()
			equalEvents(t, "Upstream", e.obs.upstream, tt.want)
		})
	}
}

// TestUpstreamCodeClientGoneInHold: a client that leaves while its stream
// is held is reported as StatusClientClosed, as one that leaves before the
// headers is, not as the 200 upstream had sent.
func TestUpstreamCodeClientGoneInHold(t *testing.T) {
	var b *blocker
	e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) {
		streams(map[int][]string{1: {processing, block}}, b)(w, r, id)
	})
	b = newBlocker(t)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-b.arrived
		// The headers and the comment are on the wire: the call is in
		// its hold, past RoundTrip, when the client leaves.
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	if _, err := e.relay.Do(e.request(t, ctx), nil, &relay.Call{Strategy: first}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	equalEvents(t, "Upstream", e.obs.upstream, []upstreamEvent{{1, relay.StatusClientClosed}})
}
