package relay_test

import (
	"bytes"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
)

// answer is what one key's upstream says.
type answer struct {
	status int
	header map[string]string
	body   string
}

func answers(by map[int]answer) handler {
	return func(w http.ResponseWriter, r *http.Request, id int) {
		a, ok := by[id]
		if !ok {
			a = answer{status: 200, body: `{"ok":` + strconv.Itoa(id) + `}`}
		}
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		w.Write([]byte(a.body))
	}
}

const (
	moderation  = `{"error":{"code":403,"message":"Your input was flagged for violence","metadata":{"reasons":["violence"],"flagged_input":"…"}}}`
	providerRL  = `{"error":{"code":429,"message":"x/m:free is temporarily rate-limited upstream. Please retry shortly","metadata":{"provider_name":"P","retry_after_seconds":3}}}`
	freePerMin  = `{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min. "}}`
	freePerDay  = `{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","metadata":{"limit_source":"openrouter_free_tier_daily"}}}`
	afford      = `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 65536 tokens, but can only afford 812.","metadata":{"limit_source":"openrouter_credits","reason":"weight_exceeds_budget"}},"user_id":"user_A"}`
	userUnknown = `{"error":{"message":"User not found.","code":401}}`
)

// TestFaultScopes: each row of the fault table, through the relay: who
// rests, and where the request goes next.
func TestFaultScopes(t *testing.T) {
	inAMinute := strconv.FormatInt(epoch.Truncate(time.Minute).Add(time.Minute).UnixMilli(), 10)
	tests := []struct {
		name      string
		first     answer
		free      bool
		wantKey   int   // key whose answer the client gets
		wantHits  []int // upstream calls by key
		resting   []int // keys out of rotation after
		freeBlock []int // keys whose account takes no free-model call after
	}{
		{"403 moderation: returned, nobody rests", answer{403, nil, moderation}, false, 1, []int{1, 0, 0, 0}, nil, nil},
		{"provider 429: returned, nobody rests", answer{429, map[string]string{"Retry-After": "3"}, providerRL}, false, 1, []int{1, 0, 0, 0}, nil, nil},
		{"account 429 per minute, free models: free calls of the account stop, paid ones go on",
			answer{429, map[string]string{"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": inAMinute}, freePerMin},
			true, 3, []int{1, 0, 1, 0}, nil, []int{1, 2}},
		{"account 429, another platform limit: the account rests, another account answers",
			answer{429, map[string]string{"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": inAMinute}, `{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"error_type":"rate_limit_exceeded"}}}`},
			false, 3, []int{1, 0, 1, 0}, []int{1, 2}, nil},
		{"account 429 per day: free calls of the account stop, paid ones go on",
			answer{429, map[string]string{"X-RateLimit-Reset": inAMinute}, freePerDay}, true, 3, []int{1, 0, 1, 0}, nil, []int{1, 2}},
		{"402 afford M: another account, nobody rests", answer{402, nil, afford}, false, 3, []int{1, 0, 1, 0}, nil, nil},
		{"200 with an error object: as its code says", answer{200, nil, `{"id":"gen-1","error":{"code":429,"message":"Rate limit exceeded: free-models-per-min."}}`},
			true, 3, []int{1, 0, 1, 0}, nil, []int{1, 2}},
		{"401 without confirmer: the key rests", answer{401, nil, userUnknown}, false, 2, []int{1, 1, 0, 0}, []int{1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{keys: 4}, answers(map[int]answer{1: tt.first}))
			// Keys 1 and 2 share account A; 3 and 4 have one each.
			e.set.SetAccount(e.key(1), "user_A")
			e.set.SetAccount(e.key(2), "user_A")
			e.set.SetAccount(e.key(3), "user_B")
			c := relay.Call{Free: tt.free, Client: "c1"}
			resp, err := e.do(t, nil, &c)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			body := readAll(t, resp)
			if c.Key.ID != tt.wantKey {
				t.Errorf("answer from key %d (%d %s), want key %d", c.Key.ID, resp.StatusCode, body, tt.wantKey)
			}
			if c.Key.ID == 1 && body != tt.first.body {
				t.Errorf("body %q, want upstream's as is", body)
			}
			equalEvents(t, "hits", e.hitsByKey(), tt.wantHits)
			now := e.clock.ns.Load()
			var resting, blocked []int
			var ex keyring.Exclude
			e.set.FreeBlocked(&ex, now)
			for _, k := range e.pool.Keys() {
				if !e.pool.Available(k, now) {
					resting = append(resting, k.ID)
				}
				if ex.Has(k.Slot()) {
					blocked = append(blocked, k.ID)
				}
			}
			equalEvents(t, "resting", resting, tt.resting)
			equalEvents(t, "free-blocked", blocked, tt.freeBlock)
		})
	}
}

// TestFreeCallsSkipBlockedAccount: once an account's free requests are used
// up, free-model calls go elsewhere at once, paid calls still use it.
func TestFreeCallsSkipBlockedAccount(t *testing.T) {
	e := newEnv(t, envOptions{keys: 2}, answers(nil))
	e.set.SetAccount(e.key(1), "user_A")
	e.set.BlockFree(e.key(1), epoch.Add(time.Hour))
	for _, tt := range []struct {
		free bool
		want int
	}{{true, 2}, {false, 1}} {
		c := relay.Call{Free: tt.free}
		resp, err := e.do(t, nil, &c)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if c.Key.ID != tt.want {
			t.Errorf("free=%v went to key %d, want %d", tt.free, c.Key.ID, tt.want)
		}
	}
	e.clock.Add(time.Hour)
	c := relay.Call{Free: true}
	resp, err := e.do(t, nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if c.Key.ID != 1 {
		t.Errorf("after the block ended free call went to key %d, want 1", c.Key.ID)
	}
}

// TestBlindCallsTeachNothing: a 401 or 429 of a non-inference path rests no
// key; another key may answer it.
func TestBlindCallsTeachNothing(t *testing.T) {
	for _, st := range []int{401, 402, 429} {
		e := newEnv(t, envOptions{keys: 2}, answers(map[int]answer{1: {st, nil, `{"error":{"code":` + strconv.Itoa(st) + `}}`}}))
		c := relay.Call{Blind: true, Client: "c1"}
		resp, err := e.do(t, nil, &c)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode != 200 || c.Tried.Len() != 2 {
			t.Errorf("%d: got %d after %d tries, want key 2's 200", st, resp.StatusCode, c.Tried.Len())
		}
		if !e.pool.Available(e.key(1), e.clock.ns.Load()) {
			t.Errorf("%d on a blind call rested the key", st)
		}
		if n := spared(e); n != 1 {
			t.Errorf("%d: %d verdicts spared, want the one that rested nothing", st, n)
		}
	}
}

// TestOneClientRestsABoundedShare: a client whose requests keep meeting
// 429s rests at most its share of the pool per window; then the answers
// come back as they are and nobody else rests. Another client still may.
func TestOneClientRestsABoundedShare(t *testing.T) {
	rl := answer{429, map[string]string{"Retry-After": "30"}, `{"error":{"message":"slow down","code":"rate_limit_exceeded"}}`}
	e := newEnv(t, envOptions{keys: 4, share: 0.5}, answers(map[int]answer{1: rl, 2: rl, 3: rl, 4: rl}))
	for i := 0; i < 3; i++ {
		c := relay.Call{Client: "attacker"}
		resp, err := e.do(t, nil, &c)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	if n := e.pool.CountAvailable(e.clock.ns.Load()); n != 2 {
		t.Fatalf("%d keys available after the attacker, want 2 (half the pool)", n)
	}
	// Each 429 after its share (one per call: the answer goes back as it
	// is) rested nothing, and is not counted as a key's failure.
	if n := spared(e); n != 3 {
		t.Errorf("%d verdicts spared, want 3", n)
	}
	c := relay.Call{Client: "other"}
	resp, err := e.do(t, nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if n := e.pool.CountAvailable(e.clock.ns.Load()); n != 0 {
		t.Fatalf("%d keys available after another client's 429s, want 0", n)
	}
	e.clock.Add(time.Minute)
	c = relay.Call{Client: "attacker"}
	if resp, err = e.do(t, nil, &c); err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
}

// confirmer records the faults it is asked to confirm.
type confirmer struct {
	mu       sync.Mutex
	asked    []int
	verdicts []fault.Verdict // as asked
	polled   []int
}

func (c *confirmer) Confirm(k *keyring.Key, v fault.Verdict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, k.ID)
	c.verdicts = append(c.verdicts, v)
}

func (c *confirmer) PollNow(k *keyring.Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.polled = append(c.polled, k.ID)
}

// TestLongRestsWaitForConfirmation: a 401 holds the key for a few seconds
// only and asks for its GET /key; a 429 rests at once and asks for a
// poll; a 402 "can only afford M" rests nothing and asks for a poll.
func TestLongRestsWaitForConfirmation(t *testing.T) {
	cf := &confirmer{}
	e := newEnv(t, envOptions{keys: 4, confirmer: cf}, answers(map[int]answer{
		1: {401, nil, userUnknown},
		2: {429, map[string]string{"Retry-After": "20"}, `{"error":{"message":"slow"}}`},
		3: {402, nil, `{"error":{"code":402,"message":"You requested up to 4000 tokens, but can only afford 812."}}`},
	}))
	c := relay.Call{}
	resp, err := e.do(t, nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if c.Key.ID != 4 {
		t.Fatalf("answer from key %d, want 4", c.Key.ID)
	}
	equalEvents(t, "confirm asked", cf.asked, []int{1})
	equalEvents(t, "polled", cf.polled, []int{2, 3})
	if !e.pool.Available(e.key(3), e.clock.ns.Load()) {
		t.Fatal("a 402 can only afford M rested key 3")
	}
	r, _, until := e.set.Rest(e.key(1))
	if r != fault.Auth || until.Sub(e.clock.Now()) != 5*time.Second {
		t.Fatalf("key 1 held for %v (%v), want 5s for auth", until.Sub(e.clock.Now()), r)
	}
	if s := e.set.For(e.key(1)).State(); s != breaker.Open {
		t.Fatalf("key 1 %v while held", s)
	}
	e.clock.Add(5 * time.Second)
	if !e.pool.Available(e.key(1), e.clock.ns.Load()) {
		t.Fatal("key 1 still out after its hold, unconfirmed")
	}
}

// TestBlind401AsksGetKey: a 401 on a non-inference path holds nothing but
// asks the key's GET /key, whose answer alone may rest it.
func TestBlind401AsksGetKey(t *testing.T) {
	cf := &confirmer{}
	e := newEnv(t, envOptions{keys: 2, confirmer: cf}, answers(map[int]answer{1: {401, nil, userUnknown}}))
	c := relay.Call{Blind: true, Client: "c1"}
	resp, err := e.do(t, nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	equalEvents(t, "confirm asked", cf.asked, []int{1})
	if !e.pool.Available(e.key(1), e.clock.ns.Load()) {
		t.Fatal("a blind 401 held the key")
	}
	// Spared: the confirmation rests the key on GET /key's own 401
	// only, not when GET /key cannot tell.
	if !cf.verdicts[0].Spared {
		t.Error("a blind 401 asked GET /key as a fault that stands when it cannot tell")
	}
}

// TestLateBlind401AsksGetKeySpared: a 401 error event inside a blind
// call's committed stream (a stored response replayed) is asked of GET
// /key as the head's is: spared, so that only GET /key's 401 rests.
func TestLateBlind401AsksGetKeySpared(t *testing.T) {
	cf := &confirmer{}
	e := newEnv(t, envOptions{keys: 2, confirmer: cf}, streams(nil, nil))
	c := relay.Call{Blind: true, Client: "c1"}
	resp, err := e.do(t, nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	l := relay.LateOf(resp)
	readAll(t, resp)
	l.Event([]byte(`{"error":{"code":401,"message":"User not found."}}`))
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if len(cf.verdicts) != 1 || !cf.verdicts[0].Spared || cf.verdicts[0].Reason != fault.Auth {
		t.Fatalf("confirmations asked %+v, want one spared auth fault", cf.verdicts)
	}
	if !e.pool.Available(e.key(c.Key.ID), e.clock.ns.Load()) {
		t.Fatal("a late blind 401 held the key")
	}
}

// TestAffordNoteSendsLargeCallsElsewhere: after a key's cap said it can
// only afford 5000 tokens, calls that may ask for more go to other keys
// first, smaller ones may still use it, and when no other key is left the
// key is tried anyway.
func TestAffordNoteSendsLargeCallsElsewhere(t *testing.T) {
	capped := `{"error":{"code":402,"message":"You requested up to 16384 tokens, but can only afford 5000. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher limit","metadata":{"limit_source":"openrouter_key_limit"}}}`
	e := newEnv(t, envOptions{keys: 2}, answers(map[int]answer{1: {402, nil, capped}}))
	c := relay.Call{}
	resp, err := e.do(t, nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if c.Key.ID != 2 || !e.pool.Available(e.key(1), e.clock.ns.Load()) {
		t.Fatalf("first call answered by key %d; key 1 must stay in rotation", c.Key.ID)
	}
	for _, tt := range []struct {
		maxTokens int
		want      []int // keys tried
	}{{0, []int{2}}, {10000, []int{2}}, {100, []int{1, 2}}} { // this upstream refuses key 1 whatever the size
		before := e.hitsByKey()
		c := relay.Call{MaxTokens: tt.maxTokens}
		resp, err := e.do(t, nil, &c)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		after := e.hitsByKey()
		var tried []int
		for i := range after {
			if after[i] > before[i] {
				tried = append(tried, i+1)
			}
		}
		equalEvents(t, "keys tried for max_tokens "+strconv.Itoa(tt.maxTokens), tried, tt.want)
	}
	e.rest(t, 2, 401, 0)
	c = relay.Call{MaxTokens: 10000}
	if resp, err = e.do(t, nil, &c); err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if c.Key.ID != 1 {
		t.Fatalf("with key 2 resting the call went to key %d, want key 1 tried anyway", c.Key.ID)
	}
}

// TestAffordNoteYieldsToABusyTrial: a key noted as unable to afford a
// call is left out only while another key can take the call. A key back
// from a rest is in rotation, but while its one trial call is out it
// takes no other: the noted key is tried then, rather than the call
// failing with no key at all.
func TestAffordNoteYieldsToABusyTrial(t *testing.T) {
	capped := `{"error":{"code":402,"message":"You requested up to 16384 tokens, but can only afford 5000. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher limit","metadata":{"limit_source":"openrouter_key_limit"}}}`
	var calls atomic.Int32
	e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) {
		w.Header().Set("Content-Type", "application/json")
		if id == 1 && calls.Add(1) == 1 {
			w.WriteHeader(http.StatusPaymentRequired)
			_, _ = w.Write([]byte(capped))
			return
		}
		_, _ = w.Write([]byte(`{"choices":[]}`))
	})
	c := relay.Call{}
	resp, err := e.do(t, nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp) // key 1 noted at 5000 tokens; key 2 answered
	e.rest(t, 2, http.StatusTooManyRequests, time.Second)
	e.clock.Add(2 * time.Second)
	var ex keyring.Exclude
	ex.Add(e.key(1).Slot())
	trial, err := e.relay.Acquire(first, &ex)
	if err != nil || trial.Key.ID != 2 {
		t.Fatalf("key 2's trial: %v", err)
	}
	defer e.relay.Release(trial)
	c = relay.Call{MaxTokens: 10000}
	resp, err = e.do(t, nil, &c)
	if err != nil {
		t.Fatalf("with key 2's trial out: %v; want the call on key 1", err)
	}
	readAll(t, resp)
	if c.Key.ID != 1 {
		t.Fatalf("answered by key %d, want 1", c.Key.ID)
	}
}

// TestLargeRequestRestsNoAccount: a 402 "can only afford 0" to a request
// whose prompt is large may be the prompt's doing, which a client controls:
// the call goes on to another account and nothing rests; the same answer
// to a small request rests the account.
func TestLargeRequestRestsNoAccount(t *testing.T) {
	broke := `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 100 tokens, but can only afford 0.","metadata":{"limit_source":"openrouter_credits"}}}`
	for _, tt := range []struct {
		name    string
		body    []byte
		resting []int
	}{
		{"large request: nobody rests", bytes.Repeat([]byte("a "), fault.LargeRequest/2+1), nil},
		{"small request: the account rests", []byte(`{"model":"m","messages":[]}`), []int{1, 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{keys: 3}, answers(map[int]answer{1: {402, nil, broke}}))
			e.set.SetAccount(e.key(1), "user_A")
			e.set.SetAccount(e.key(2), "user_A")
			e.set.SetAccount(e.key(3), "user_B")
			c := relay.Call{Client: "c1"}
			resp, err := e.do(t, tt.body, &c)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if c.Key.ID != 3 {
				t.Fatalf("answer from key %d, want key 3 of the other account", c.Key.ID)
			}
			var resting []int
			for id := 1; id <= 3; id++ {
				if !e.pool.Available(e.key(id), e.clock.ns.Load()) {
					resting = append(resting, id)
				}
			}
			equalEvents(t, "resting", resting, tt.resting)
		})
	}
}
