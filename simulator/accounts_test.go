package simulator

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// orError is OpenRouter's error body, as far as the tests read it.
type orError struct {
	Error struct {
		Code     int    `json:"code"`
		Message  string `json:"message"`
		Metadata struct {
			LimitSource string            `json:"limit_source"`
			Reason      string            `json:"reason"`
			Headers     map[string]string `json:"headers"`
		} `json:"metadata"`
	} `json:"error"`
	UserID string `json:"user_id"`
}

func decodeError(t *testing.T, r reply) orError {
	t.Helper()
	var e orError
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code != r.status {
		t.Fatalf("error body of a %d: %v: %s", r.status, err, r.body)
	}
	return e
}

// costOf reads usage.cost of a non-streamed answer.
func costOf(t *testing.T, r reply) float64 {
	t.Helper()
	var v struct {
		Usage struct {
			Cost *float64 `json:"cost"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || v.Usage.Cost == nil {
		t.Fatalf("no usage.cost: %v: %s", err, r.body)
	}
	return *v.Usage.Cost
}

func capped(model string, maxTokens int) string {
	return fmt.Sprintf(`{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":"Say hi"}]}`, model, maxTokens)
}

// gpt-4o answers `Hello from openai/gpt-4o: you said "Say hi"`: 2 prompt
// tokens, 7 completion tokens.
const (
	gpt4oCost  = 2*0.0000025 + 7*0.00001 // 0.000075
	gpt4oModel = "openai/gpt-4o"
)

func TestKeyCapResets(t *testing.T) {
	t.Parallel()
	// Tuesday 2025-03-04 23:59:30 UTC: the next day is a Wednesday, the
	// next Monday is 03-10, the next month starts 04-01.
	start := time.Date(2025, 3, 4, 23, 59, 30, 0, time.UTC)
	tests := []struct {
		reset     string
		stillOut  time.Time // a later instant still in the same period
		freshAt   time.Time // the first instant of the next period
		neverBack bool
	}{
		{"daily", start.Add(20 * time.Second), time.Date(2025, 3, 5, 0, 0, 0, 0, time.UTC), false},
		{"weekly", time.Date(2025, 3, 9, 23, 59, 59, 0, time.UTC), time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC), false},
		{"monthly", time.Date(2025, 3, 31, 23, 59, 59, 0, time.UTC), time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC), false},
		{"", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), true},
	}
	for _, tt := range tests {
		t.Run("reset="+tt.reset, func(t *testing.T) {
			t.Parallel()
			clk := &testClock{t: start}
			h := startSim(t, Options{Now: clk.Now, Accounts: []Account{{ID: "user_a", Balance: 10, Purchased: 10,
				Keys: []KeySpec{{Secret: "k", Limit: 3 * gpt4oCost, LimitReset: tt.reset}}}}})
			// 3 answers fit the cap exactly when max_tokens is 7.
			for i := range 3 {
				if r := h.do("POST", "/chat/completions", "k", capped(gpt4oModel, 7), nil); r.status != 200 {
					t.Fatalf("answer %d: %d %s", i, r.status, r.body)
				}
			}
			refused := func(when string) {
				t.Helper()
				r := h.do("POST", "/chat/completions", "k", capped(gpt4oModel, 7), nil)
				if r.status != 402 {
					t.Fatalf("%s: status %d, want 402: %s", when, r.status, r.body)
				}
				e := decodeError(t, r)
				if e.Error.Metadata.LimitSource != "openrouter_key_limit" || !strings.Contains(e.Error.Message, "settings/keys") ||
					!strings.Contains(e.Error.Message, "can only afford 0") || e.UserID != "user_a" {
					t.Errorf("%s: %s", when, r.body)
				}
			}
			refused("cap spent")
			clk.set(tt.stillOut)
			refused("same period")
			if got := h.s.Spent("k"); math.Abs(got-3*gpt4oCost) > 1e-12 {
				t.Errorf("Spent %v, want %v", got, 3*gpt4oCost)
			}
			clk.set(tt.freshAt)
			if tt.neverBack {
				refused("a cap that never resets")
				return
			}
			if r := h.do("POST", "/chat/completions", "k", capped(gpt4oModel, 7), nil); r.status != 200 {
				t.Fatalf("next period: %d %s", r.status, r.body)
			}
			ki, _ := h.s.KeyInfo("k")
			if math.Abs(ki.Usage-4*gpt4oCost) > 1e-12 || *ki.LimitRemaining > 2*gpt4oCost+1e-12 {
				t.Errorf("after the reset: %+v", ki)
			}
		})
	}
}

func TestPreAuthorisation(t *testing.T) {
	t.Parallel()
	const balance = 0.009 // gpt-4o-mini: 150 + 600 nano-USD a token
	tests := []struct {
		name        string
		balance     float64
		limit       float64
		maxTokens   int // 0: the model's default, 16384
		status      int
		source      string
		reason      string
		afford      string // "can only afford <afford>"
		asked       string
		freeAllowed bool
	}{
		{"fits", balance, 0, 100, 200, "", "", "", "", true},
		{"default max output too big for the balance", balance, 0, 0, 402, "openrouter_credits", "weight_exceeds_budget", "14999", "16384", true},
		{"too big for the cap", balance, 0.001, 0, 402, "openrouter_key_limit", "key_limit_exceeded", "1665", "16384", true},
		{"cap above the balance: the balance binds", balance, 5, 20000, 402, "openrouter_credits", "weight_exceeds_budget", "14999", "20000", true},
		{"nothing left", 0.0000001, 0, 10, 402, "openrouter_credits", "insufficient_credits", "0", "10", true},
		{"negative balance refuses free models too", -0.5, 0, 10, 402, "openrouter_credits", "insufficient_credits", "0", "10", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startSim(t, Options{Now: func() time.Time { return fixedNow }, Accounts: []Account{{ID: "user_b", Balance: tt.balance,
				Keys: []KeySpec{{Secret: "k", Limit: tt.limit}, {Secret: "k2"}}}}})
			body := chatBody("openai/gpt-4o-mini", "hi", false)
			if tt.maxTokens > 0 {
				body = `{"model":"openai/gpt-4o-mini","max_tokens":` + strconv.Itoa(tt.maxTokens) + `,"messages":[{"role":"user","content":"hi"}]}`
			}
			r := h.do("POST", "/chat/completions", "k", body, nil)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			free := h.chat("k2", "qwen/qwen3-coder:free", "hi", false, nil)
			if (free.status == 200) != tt.freeAllowed {
				t.Errorf("free model: %d %s", free.status, free.body)
			}
			if tt.status == 200 {
				if got, ki := costOf(t, r), must(h.s.KeyInfo("k")); math.Abs(ki.Balance-(tt.balance-got)) > 1e-12 {
					t.Errorf("balance %v after a %v answer from %v", ki.Balance, got, tt.balance)
				}
				return
			}
			e := decodeError(t, r)
			want := "You requested up to " + tt.asked + " tokens, but can only afford " + tt.afford + "."
			if e.Error.Metadata.LimitSource != tt.source || e.Error.Metadata.Reason != tt.reason || !strings.Contains(e.Error.Message, want) || e.UserID != "user_b" {
				t.Errorf("got %s\nwant source %s, reason %s, %q", r.body, tt.source, tt.reason, want)
			}
			if h.s.Spent("k") != 0 {
				t.Errorf("a refused request was charged %v", h.s.Spent("k"))
			}
		})
	}
}

// TestKeyCapRefusals: a key's cap refuses a prompt that costs more than
// the cap has left with the key-cap message of its own ("Prompt tokens
// limit exceeded: P > Q", Q the prompt tokens the rest pays for), while a
// small request still passes; a spent cap refuses free models too.
func TestKeyCapRefusals(t *testing.T) {
	t.Parallel()
	// gpt-4o-mini's prompt costs 150 nano-USD a token: 0.0001 USD pays 666.
	h := startSim(t, Options{Now: func() time.Time { return fixedNow }, Accounts: []Account{{ID: "user_c", Balance: 10, Purchased: 10,
		Keys: []KeySpec{{Secret: "k", Limit: 0.0001}, {Secret: "spent", Limit: 0.001, Usage: 0.001}}}}})
	r := h.chat("k", "openai/gpt-4o-mini", strings.Repeat("word ", 3000), false, nil)
	e := decodeError(t, r)
	if r.status != 402 || !regexp.MustCompile(`^Prompt tokens limit exceeded: 300\d > 666\. `).MatchString(e.Error.Message) ||
		e.Error.Metadata.LimitSource != "openrouter_key_limit" {
		t.Fatalf("large prompt on a small cap: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/chat/completions", "k", `{"model":"openai/gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, nil); r.status != 200 {
		t.Fatalf("small request on the same key: %d %s", r.status, r.body)
	}
	r = h.chat("spent", "qwen/qwen3-coder:free", "hi", false, nil)
	e = decodeError(t, r)
	if r.status != 402 || !strings.Contains(e.Error.Message, "but can only afford 0.") || e.Error.Metadata.LimitSource != "openrouter_key_limit" {
		t.Fatalf("free model on a spent cap: %d %s", r.status, r.body)
	}
	if h.s.Spent("k") == 0 || h.s.Spent("spent") != 0 {
		t.Errorf("spent: k %v (want the small request's cost), spent %v", h.s.Spent("k"), h.s.Spent("spent"))
	}
}

func must[T any](v T, ok bool) T {
	if !ok {
		panic("not found")
	}
	return v
}

func TestFreeModelQuotas(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 4, 23, 58, 10, 0, time.UTC)
	nextMinute := time.Date(2025, 3, 4, 23, 59, 0, 0, time.UTC)
	midnight := time.Date(2025, 3, 5, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		purchased float64
		usedToday int
		ok        int // answers before the 429
		perDay    bool
		limit     int
		reset     time.Time
		msg       string
	}{
		{"20 a minute", 0, 0, 20, false, 20, nextMinute, "Rate limit exceeded: free-models-per-min. "},
		{"50 a day", 0, 45, 5, true, 50, midnight, "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day"},
		{"1000 a day after buying 10 credits", 10, 995, 5, true, 1000, midnight, "Rate limit exceeded: free-models-per-day-high-balance. "},
		{"1000 a day from 9 credits bought", 9, 995, 5, true, 1000, midnight, "Rate limit exceeded: free-models-per-day-high-balance. "},
		{"50 a day below 9 credits", 8.99, 45, 5, true, 50, midnight, "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := &testClock{t: at}
			h := startSim(t, Options{Now: clk.Now, Accounts: []Account{{ID: "user_f", Purchased: tt.purchased, FreeUsedToday: tt.usedToday,
				Keys: []KeySpec{{Secret: "k1"}, {Secret: "k2"}}}}})
			models := []string{"qwen/qwen3-coder:free", "deepseek/deepseek-chat-v3-0324:free", "any/model:free"}
			// Counted across keys and free models alike.
			for i := range tt.ok {
				key := []string{"k1", "k2"}[i%2]
				if r := h.chat(key, models[i%3], "hi", false, nil); r.status != 200 || costOf(t, r) != 0 {
					t.Fatalf("free request %d: %d %s", i, r.status, r.body)
				}
			}
			if r := h.chat("k1", gpt4oModel, "hi", false, nil); r.status != 402 {
				// The account has no credit: paid models are refused, and
				// do not count against the free quota.
				t.Fatalf("paid model without credit: %d %s", r.status, r.body)
			}
			r := h.chat("k2", models[0], "hi", false, nil)
			if r.status != 429 {
				t.Fatalf("status %d, want 429: %s", r.status, r.body)
			}
			e := decodeError(t, r)
			reset := strconv.FormatInt(tt.reset.UnixMilli(), 10)
			wantHdr := map[string]string{"X-RateLimit-Limit": strconv.Itoa(tt.limit), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
			for k, v := range wantHdr {
				if r.header.Get(k) != v || e.Error.Metadata.Headers[k] != v {
					t.Errorf("%s: header %q, in body %q, want %q", k, r.header.Get(k), e.Error.Metadata.Headers[k], v)
				}
			}
			if r.header.Get("Retry-After") != "" || e.Error.Message != tt.msg || e.UserID != "user_f" {
				t.Errorf("body %s, Retry-After %q", r.body, r.header.Get("Retry-After"))
			}
			if wantSrc := map[bool]string{true: "openrouter_free_tier_daily"}[tt.perDay]; e.Error.Metadata.LimitSource != wantSrc {
				t.Errorf("limit_source %q, want %q", e.Error.Metadata.LimitSource, wantSrc)
			}
			var key struct {
				Data struct {
					Free freeModelDaily `json:"free_model_daily_requests"`
				} `json:"data"`
			}
			if err := json.Unmarshal(h.do("GET", "/key", "k1", "", nil).body, &key); err != nil ||
				key.Data.Free.Limit != map[bool]int{false: 50, true: 1000}[tt.purchased >= 9] ||
				key.Data.Free.Used != tt.usedToday+tt.ok || key.Data.Free.Remaining != key.Data.Free.Limit-key.Data.Free.Used {
				t.Errorf("free_model_daily_requests %+v (%v)", key.Data.Free, err)
			}
			clk.set(tt.reset)
			if r := h.chat("k1", models[0], "hi", false, nil); r.status != 200 {
				t.Errorf("after the reset: %d %s", r.status, r.body)
			}
		})
	}
}

// TestChargingIsExact runs paid answers on two keys of one account
// concurrently, streamed and not, and checks that the usage.cost of the
// answers adds up to what the simulator charged, per key and per account,
// and that a cap is never overspent.
func TestChargingIsExact(t *testing.T) {
	t.Parallel()
	h := startSim(t, Options{Now: func() time.Time { return fixedNow }, Accounts: []Account{{ID: "user_c", Balance: 1,
		Keys: []KeySpec{{Secret: "a", Limit: 20 * gpt4oCost}, {Secret: "b"}}}}})
	const workers, each = 8, 10
	var mu sync.Mutex
	reported := map[string]float64{}
	refused := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			key := []string{"a", "b"}[w%2]
			for i := range each {
				stream := i%2 == 0
				r := h.do("POST", "/chat/completions", key, strings.Replace(capped(gpt4oModel, 7), `"max_tokens"`, `"stream":`+strconv.FormatBool(stream)+`,"max_tokens"`, 1), nil)
				var cost float64
				switch {
				case r.status == 402:
					mu.Lock()
					refused++
					mu.Unlock()
					continue
				case r.status != 200:
					t.Errorf("status %d: %s", r.status, r.body)
					return
				case stream:
					cost = streamCost(t, r.body)
				default:
					cost = costOf(t, r)
				}
				mu.Lock()
				reported[key] += cost
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, k := range []string{"a", "b"} {
		if got := h.s.Spent(k); math.Abs(got-reported[k]) > 1e-9 {
			t.Errorf("key %s: charged %v, answers report %v", k, got, reported[k])
		}
	}
	if got := h.s.Spent("a"); got > 20*gpt4oCost+1e-12 || refused != workers/2*each-20 {
		t.Errorf("capped key spent %v of %v; %d refused", got, 20*gpt4oCost, refused)
	}
	ki := must(h.s.KeyInfo("b"))
	if math.Abs(ki.Balance-(1-reported["a"]-reported["b"])) > 1e-9 || math.Abs(ki.Spent-reported["a"]-reported["b"]) > 1e-9 {
		t.Errorf("account after %v + %v: %+v", reported["a"], reported["b"], ki)
	}
}

// streamCost is usage.cost of the last chunk of a stream.
func streamCost(t *testing.T, body []byte) float64 {
	t.Helper()
	evs := parseEvents(t, body)
	if len(evs) < 2 || evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("stream %q", body)
	}
	var last struct {
		Usage struct {
			Cost *float64 `json:"cost"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(evs[len(evs)-2]), &last); err != nil || last.Usage.Cost == nil {
		t.Fatalf("last chunk %q: %v", evs[len(evs)-2], err)
	}
	return *last.Usage.Cost
}

func TestAddCredits(t *testing.T) {
	t.Parallel()
	h := startSim(t, Options{Now: func() time.Time { return fixedNow }, Accounts: []Account{{ID: "user_t", Keys: []KeySpec{{Secret: "k"}}}}})
	if r := h.do("POST", "/chat/completions", "k", capped(gpt4oModel, 7), nil); r.status != 402 {
		t.Fatalf("without credit: %d %s", r.status, r.body)
	}
	if ki := must(h.s.KeyInfo("k")); ki.FreeLimit != 50 {
		t.Errorf("free tier: %+v", ki)
	}
	if h.s.AddCredits("user_nobody", 1) || !h.s.AddCredits("user_t", 10) {
		t.Fatal("AddCredits found the wrong accounts")
	}
	if r := h.do("POST", "/chat/completions", "k", capped(gpt4oModel, 7), nil); r.status != 200 {
		t.Fatalf("after buying credits: %d %s", r.status, r.body)
	}
	checkShape(t, "key", h.do("GET", "/key", "k", "", nil).body, shape{
		"data.is_free_tier": "=false", "data.free_model_daily_requests.limit": "=1000", "data.usage": "=0.000075",
	})
}

// TestGenerationHeader: completions, plain and streamed, name their
// generation in X-Generation-Id, the id their body carries.
func TestGenerationHeader(t *testing.T) {
	t.Parallel()
	h := startSim(t, Options{Now: func() time.Time { return fixedNow }, Accounts: []Account{{ID: "user_g", Balance: 10, Keys: []KeySpec{{Secret: "k"}}}}})
	for _, stream := range []bool{false, true} {
		r := h.chat("k", "openai/gpt-4o-mini", "hi", stream, nil)
		id := r.header.Get("X-Generation-Id")
		if r.status != 200 || !strings.HasPrefix(id, "gen-") || !strings.Contains(string(r.body), `"id":"`+id+`"`) {
			t.Errorf("stream %v: status %d, X-Generation-Id %q, body %.200s", stream, r.status, id, r.body)
		}
	}
}
