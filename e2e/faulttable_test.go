package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ftRow is one upstream answer of the contract's fault table (Wave 2) or one
// body variant of OPENROUTER.md, and what the client and the pool should see
// when key 1 answers it. Keys 1 and 2 are account A, key 3 account B, key 4
// account C; every other answer is a 200.
type ftRow struct {
	name   string
	status int
	hdr    map[string]string
	body   string
	// free: the request names a ":free" model.
	free bool

	wantStatus int
	wantKey    string // X-Keygate-Key of the answer
	wantCalls  int
	// rest: key id → rest length from now (exact), for keys that rest.
	rest map[int]time.Duration
	// reason: key 1's rest_reason, "" when it does not rest.
	reason string
	// cooldown: keygate_key_cooldowns_total reason counted for key 1, "" none.
	cooldown string
	// retryAfter: the answer's Retry-After, "" none / not checked.
	retryAfter string
	// freeBlocked: keys whose account takes no free call after.
	freeBlocked []int
}

const (
	ftMinute = time.Minute
)

// ftGateway is keygate over up with keys (four of them): 1 and 2 of
// account A, 3 of B, 4 of C, taken in turn.
func ftGateway(t *testing.T, up string, keys []string) *gateway {
	gw := startGateway(t, up, keys, "KEY_ROTATION=round-robin", "AUTH_FAILURE_COOLDOWN=10m", "RATE_LIMIT_COOLDOWN=30s")
	for i, a := range [...]string{"user_A", "user_A", "user_B", "user_C"} {
		gw.Breakers.SetAccount(gw.Pool.Keys()[i], a)
	}
	return gw
}

// ftModel is the model row's request names: a free one or not.
func ftModel(row ftRow) string {
	if row.free {
		return "x/m:free"
	}
	return "m"
}

func ftRows(now time.Time) []ftRow {
	nextMin := now.Truncate(time.Minute).Add(time.Minute)
	midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	return []ftRow{
		{name: "401 user not found", status: 401, body: `{"error":{"message":"User not found.","code":401}}`,
			wantStatus: 200, wantKey: "2|3|4", wantCalls: 2, rest: map[int]time.Duration{1: 10 * ftMinute}, reason: "auth", cooldown: "auth"},
		{name: "401 no auth credentials", status: 401, body: `{"error":{"message":"No auth credentials found","code":401}}`,
			wantStatus: 200, wantKey: "2|3|4", wantCalls: 2, rest: map[int]time.Duration{1: 10 * ftMinute}, reason: "auth", cooldown: "auth"},
		{name: "402 key limit by source", status: 402, body: `{"error":{"code":402,"message":"Key limit exceeded","metadata":{"limit_source":"openrouter_key_limit"}}}`,
			wantStatus: 200, wantKey: "2|3|4", wantCalls: 2, rest: map[int]time.Duration{1: 10 * ftMinute}, reason: "key_limit", cooldown: "key_limit"},
		{name: "402 key cap afford 0 (settings/keys)", status: 402, body: `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 4096 tokens, but can only afford 0. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher monthly limit"}}`,
			wantStatus: 200, wantKey: "2|3|4", wantCalls: 2, rest: map[int]time.Duration{1: 10 * ftMinute}, reason: "key_limit", cooldown: "key_limit"},
		{name: "402 insufficient credits", status: 402, body: `{"error":{"code":402,"message":"Insufficient credits","metadata":{"limit_source":"openrouter_credits"}}}`,
			wantStatus: 200, wantKey: "3|4", wantCalls: 2, rest: map[int]time.Duration{1: 10 * ftMinute, 2: 10 * ftMinute}, reason: "credits", cooldown: "credits"},
		{name: "402 afford 0 (settings/credits)", status: 402, body: `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 100 tokens, but can only afford 0. To increase, visit https://openrouter.ai/settings/credits and add more credits"}}`,
			wantStatus: 200, wantKey: "3|4", wantCalls: 2, rest: map[int]time.Duration{1: 10 * ftMinute, 2: 10 * ftMinute}, reason: "credits", cooldown: "credits"},
		{name: "402 afford 0 with weight_exceeds_budget", status: 402, body: `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 100 tokens, but can only afford 0. To increase, visit https://openrouter.ai/settings/credits and add more credits","metadata":{"provider_name":null,"limit_source":"openrouter_credits","reason":"weight_exceeds_budget"}}}`,
			wantStatus: 200, wantKey: "3|4", wantCalls: 2, rest: map[int]time.Duration{1: 10 * ftMinute, 2: 10 * ftMinute}, reason: "credits", cooldown: "credits"},
		{name: "402 afford M", status: 402, body: `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 65536 tokens, but can only afford 1234. To increase, visit https://openrouter.ai/settings/credits and add more credits","metadata":{"provider_name":null,"limit_source":"openrouter_credits","reason":"weight_exceeds_budget"}},"user_id":"user_A"}`,
			wantStatus: 200, wantKey: "3|4", wantCalls: 2},
		{name: "402 in-flight budget", status: 402, hdr: map[string]string{"Retry-After": "7"}, body: `{"error":{"code":402,"message":"In-flight budget exhausted","metadata":{"limit_source":"openrouter_in_flight_budget","reason":"in_flight_budget_exhausted"}}}`,
			wantStatus: 200, wantKey: "3|4", wantCalls: 2, rest: map[int]time.Duration{1: 7 * time.Second, 2: 7 * time.Second}, reason: "in_flight_budget", cooldown: "in_flight_budget"},
		{name: "403 moderation", status: 403, body: `{"error":{"code":403,"message":"Your input was flagged for violence","metadata":{"reasons":["violence"],"flagged_input":"x"}}}`,
			wantStatus: 403, wantKey: "1", wantCalls: 1},
		{name: "408 timeout", status: 408, body: `{"error":{"code":408,"message":"Your request timed out"}}`,
			wantStatus: 408, wantKey: "1", wantCalls: 1},
		{name: "413 payload too large", status: 413, body: `{"error":{"code":413,"message":"Request payload too large"}}`,
			wantStatus: 413, wantKey: "1", wantCalls: 1},
		{name: "429 OpenRouter platform (headers)", status: 429,
			hdr:        map[string]string{"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": ms(nextMin)},
			body:       `{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"error_type":"rate_limit_exceeded"}}}`,
			wantStatus: 200, wantKey: "3|4", wantCalls: 2, rest: map[int]time.Duration{1: nextMin.Sub(now), 2: nextMin.Sub(now)}, reason: "rate_limit", cooldown: "rate_limit"},
		{name: "429 OpenRouter platform (headers echoed in body only)", status: 429,
			body:       `{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"headers":{"X-RateLimit-Limit":"20","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"` + ms(nextMin) + `"}}}}`,
			wantStatus: 200, wantKey: "3|4", wantCalls: 2, rest: map[int]time.Duration{1: nextMin.Sub(now), 2: nextMin.Sub(now)}, reason: "rate_limit", cooldown: "rate_limit"},
		{name: "429 free-models-per-min", status: 429, free: true,
			hdr:        map[string]string{"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": ms(nextMin)},
			body:       `{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min. "}}`,
			wantStatus: 200, wantKey: "3|4", wantCalls: 2, cooldown: "rate_limit", freeBlocked: []int{1, 2}},
		{name: "429 free-models-per-day", status: 429, free: true,
			hdr:        map[string]string{"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": ms(midnight)},
			body:       `{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","metadata":{"limit_source":"openrouter_free_tier_daily"}}}`,
			wantStatus: 200, wantKey: "3|4", wantCalls: 2, cooldown: "free_quota", freeBlocked: []int{1, 2}},
		{name: "429 provider upstream", status: 429, free: true, hdr: map[string]string{"Retry-After": "3"},
			body:       `{"error":{"code":429,"message":"meta-llama/llama-3.3-70b-instruct:free is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations","metadata":{"provider_name":"Venice","retry_after_seconds":3,"headers":{"Retry-After":"3"}}}}`,
			wantStatus: 429, wantKey: "1", wantCalls: 1, retryAfter: "3"},
		{name: "429 provider, hint only in metadata", status: 429,
			body:       `{"error":{"code":429,"message":"x/m is temporarily rate-limited upstream. Please retry shortly","metadata":{"provider_name":"P","retry_after_seconds":5}}}`,
			wantStatus: 429, wantKey: "1", wantCalls: 1},
		{name: "429 other upstream, Retry-After", status: 429, hdr: map[string]string{"Retry-After": "12"},
			body:       `{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}`,
			wantStatus: 200, wantKey: "2|3|4", wantCalls: 2, rest: map[int]time.Duration{1: 12 * time.Second}, reason: "rate_limit", cooldown: "rate_limit"},
		{name: "429 no markers, no hint", status: 429, body: `{"error":{"code":429,"message":"Too many requests"}}`,
			wantStatus: 200, wantKey: "2|3|4", wantCalls: 2, rest: map[int]time.Duration{1: 30 * time.Second}, reason: "rate_limit", cooldown: "rate_limit"},
		{name: "502 provider error", status: 502, body: `{"error":{"code":502,"message":"Provider returned error","metadata":{"provider_name":"P","raw":"upstream said no"}}}`,
			wantStatus: 502, wantKey: "1", wantCalls: 1},
		{name: "503 no provider", status: 503, hdr: map[string]string{"Retry-After": "4"}, body: `{"error":{"code":503,"message":"No available provider"}}`,
			wantStatus: 503, wantKey: "1", wantCalls: 1, retryAfter: "4"},
	}
}

// ftMode is how key 1 carries the row's answer.
type ftMode string

const (
	ftStatus ftMode = "status" // the row's HTTP status and body
	ftIn200  ftMode = "in200"  // a 200 JSON body holding the error object
	ftStream ftMode = "stream" // a 200 event stream whose first event is the error
)

func ftServe(mode ftMode, row ftRow, w http.ResponseWriter) {
	for k, v := range row.hdr {
		w.Header().Set(k, v)
	}
	switch mode {
	case ftStatus:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(row.status)
		_, _ = io.WriteString(w, row.body)
	case ftIn200:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		// OpenRouter's: the error object beside an empty choice.
		b := strings.TrimSuffix(row.body, "}") + `,"id":"gen-1","object":"chat.completion","choices":[{"index":0,"finish_reason":"error","message":{"role":"assistant","content":""}}]}`
		_, _ = io.WriteString(w, b)
	case ftStream:
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		b := strings.TrimSuffix(row.body, "}") + `,"id":"gen-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}`
		_, _ = io.WriteString(w, ": OPENROUTER PROCESSING\n\n")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "data: "+b+"\n\n")
	}
}

// TestFaultTable: every row through /v1/chat/completions, plain, as an
// error object in a 200, and as a held stream's first event.
func TestFaultTable(t *testing.T) {
	for _, mode := range []ftMode{ftStatus, ftIn200, ftStream} {
		for i, row := range ftRows(newClock().Now()) {
			t.Run(string(mode)+"/"+row.name, func(t *testing.T) {
				row := ftRows(newClock().Now())[i]
				ftCheck(t, mode, row)
			})
		}
	}
}

func ftCheck(t *testing.T, mode ftMode, row ftRow) {
	if mode != ftStatus && strings.Contains(row.body, `"code":"rate_limit_exceeded"`) {
		t.Skip("an error object in a 200 without an HTTP code is upstream's 502 by design")
	}
	keys := testKeys(4)
	stream := mode == ftStream
	up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		if s.Key == keys[0] {
			ftServe(mode, row, w)
			return
		}
		if stream {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, sfOK)
			return
		}
		ptOK(w, r, s)
	})
	gw := ftGateway(t, up.URL, keys)
	now := gw.Clock.Now()
	model := ftModel(row)
	body := fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, model, stream)
	req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(body))
	req.Header.Set("Content-Type", "application/json")
	resp, got := do(t, req)

	var problems []string
	bad := func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }
	wantStatus := row.wantStatus
	if resp.StatusCode != wantStatus || !strings.Contains("|"+row.wantKey+"|", "|"+resp.Header.Get("X-Keygate-Key")+"|") {
		bad("client got %d from key %s, want %d from key %s (body %.200s)", resp.StatusCode, resp.Header.Get("X-Keygate-Key"), wantStatus, row.wantKey, got)
	}
	if wantStatus != 200 && mode != ftStatus {
		// An error in a 200 reaches the client as an ordinary JSON error.
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			bad("error answer Content-Type %q", ct)
		}
		var e struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(got, &e) != nil || len(e.Error) == 0 {
			bad("error answer body %q is no error object", got)
		}
	}
	if mode == ftStatus && wantStatus == row.status && string(got) != row.body {
		bad("body %q, want upstream's as is", got)
	}
	if row.retryAfter != "" && resp.Header.Get("Retry-After") != row.retryAfter {
		bad("Retry-After %q, want %q", resp.Header.Get("Retry-After"), row.retryAfter)
	}
	if n := seen.len(); n != row.wantCalls {
		bad("%d upstream calls, want %d", n, row.wantCalls)
	}
	st := ptKeysFull(t, gw)
	for id := 1; id <= 4; id++ {
		k := st[id]
		want, rests := row.rest[id]
		switch {
		case !rests && k.CooldownUntil != nil:
			bad("key %d rests until +%v (%v), want no rest", id, k.CooldownUntil.Sub(now), deref(k.RestReason))
		case rests && (k.CooldownUntil == nil || !k.CooldownUntil.Equal(now.Add(want))):
			var d any = "none"
			if k.CooldownUntil != nil {
				d = k.CooldownUntil.Sub(now)
			}
			bad("key %d rests %v, want %v", id, d, want)
		}
	}
	if r := deref(st[1].RestReason); r != row.reason {
		bad("key 1 rest_reason %q, want %q", r, row.reason)
	}
	var blocked []int
	for id := 1; id <= 4; id++ {
		if st[id].FreeBlockedUntil != nil {
			blocked = append(blocked, id)
		}
	}
	if fmt.Sprint(blocked) != fmt.Sprint(row.freeBlocked) && !(len(blocked) == 0 && len(row.freeBlocked) == 0) {
		bad("free-blocked keys %v, want %v", blocked, row.freeBlocked)
	}
	_, mfs := mtScrape(t, gw)
	series := mtSeries(t, mfs)
	var cds []string
	for s, v := range series {
		if strings.HasPrefix(s, "keygate_key_cooldowns_total{") && v > 0 {
			cds = append(cds, s)
		}
	}
	sort.Strings(cds)
	wantCD := []string{}
	if row.cooldown != "" {
		wantCD = append(wantCD, `keygate_key_cooldowns_total{key="1",reason="`+row.cooldown+`"}`)
	}
	if fmt.Sprint(cds) != fmt.Sprint(wantCD) && !(len(cds) == 0 && len(wantCD) == 0) {
		bad("cooldowns %v, want %v", cds, wantCD)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

type ftKey struct {
	ptKeyStatus
	RestReason       *string    `json:"rest_reason"`
	FreeBlockedUntil *time.Time `json:"free_blocked_until"`
	Account          string     `json:"account"`
}

func ptKeysFull(t testing.TB, gw *gateway) map[int]ftKey {
	t.Helper()
	resp, body := do(t, newRequest(t, http.MethodGet, gw.URL+"/keys", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("GET /keys %d", resp.StatusCode)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[int]ftKey{}
	for _, raw := range doc.Keys {
		var k ftKey
		_ = json.Unmarshal(raw, &k.ptKeyStatus)
		_ = json.Unmarshal(raw, &k)
		out[k.ID] = k
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestFaultTableAccountExhausted: two keys of one account, the first
// answers an account's fault: the sibling is not tried, the client gets
// the answer (as is, or as a JSON error for a 200's), and the next request
// gets 503 keys_unavailable with Retry-After until the account is back.
func TestFaultTableAccountExhausted(t *testing.T) {
	now := newClock().Now()
	nextMin := now.Truncate(time.Minute).Add(time.Minute)
	midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	rows := []struct {
		row  ftRow
		back time.Duration
	}{
		{ftRow{name: "platform 429", status: 429, hdr: map[string]string{"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": ms(nextMin)},
			body: `{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"error_type":"rate_limit_exceeded"}}}`}, nextMin.Sub(now)},
		{ftRow{name: "free per day", status: 429, free: true, hdr: map[string]string{"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": ms(midnight)},
			body: `{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","metadata":{"limit_source":"openrouter_free_tier_daily"}}}`}, midnight.Sub(now)},
		{ftRow{name: "in-flight budget", status: 402, hdr: map[string]string{"Retry-After": "7"},
			body: `{"error":{"code":402,"message":"In-flight budget exhausted","metadata":{"limit_source":"openrouter_in_flight_budget","reason":"in_flight_budget_exhausted"}}}`}, 7 * time.Second},
		{ftRow{name: "credits", status: 402, body: `{"error":{"code":402,"message":"Insufficient credits","metadata":{"limit_source":"openrouter_credits"}}}`}, 10 * time.Minute},
	}
	for _, mode := range []ftMode{ftStatus, ftIn200, ftStream} {
		for _, tc := range rows {
			t.Run(string(mode)+"/"+tc.row.name, func(t *testing.T) {
				keys := testKeys(2)
				up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) { ftServe(mode, tc.row, w) })
				gw := startGateway(t, up.URL, keys, "KEY_ROTATION=round-robin", "AUTH_FAILURE_COOLDOWN=10m")
				for _, k := range gw.Pool.Keys() {
					gw.Breakers.SetAccount(k, "user_A")
				}
				model := ftModel(tc.row)
				body := fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, model, mode == ftStream)
				send := func() (*http.Response, []byte) {
					req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(body))
					req.Header.Set("Content-Type", "application/json")
					return do(t, req)
				}
				resp, got := send()
				if resp.StatusCode != tc.row.status || seen.len() != 1 {
					t.Errorf("first: %d after %d calls (%s), want %d after 1", resp.StatusCode, seen.len(), got, tc.row.status)
				}
				if mode == ftStatus {
					for k, v := range tc.row.hdr {
						if resp.Header.Get(k) != v {
							t.Errorf("first: %s %q, want upstream's %q", k, resp.Header.Get(k), v)
						}
					}
				} else if ra := resp.Header.Get("Retry-After"); tc.row.hdr["Retry-After"] != "" && ra != tc.row.hdr["Retry-After"] {
					t.Errorf("first: Retry-After %q, want %q", ra, tc.row.hdr["Retry-After"])
				}
				resp, got = send()
				if seen.len() != 1 {
					t.Errorf("second request reached upstream (%d calls)", seen.len())
				}
				if resp.StatusCode != 503 || !strings.Contains(string(got), "keys_unavailable") {
					t.Errorf("second: %d %s, want 503 keys_unavailable", resp.StatusCode, got)
				}
				want := strconv.Itoa(int((tc.back + time.Second - 1) / time.Second))
				if ra := resp.Header.Get("Retry-After"); ra != want {
					t.Errorf("second: Retry-After %q, want %q", ra, want)
				}
			})
		}
	}
}

// TestFaultTableRun: the rows through POST /run, plain and streamed: the
// model's entry is a success on the key the passthrough would have
// answered from, or an error naming the status, and the same keys rest.
func TestFaultTableRun(t *testing.T) {
	for _, stream := range []bool{false, true} {
		for i, row := range ftRows(newClock().Now()) {
			name := fmt.Sprintf("stream=%v/%s", stream, row.name)
			t.Run(name, func(t *testing.T) {
				row := ftRows(newClock().Now())[i]
				keys := testKeys(4)
				up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
					if s.Key == keys[0] {
						ftServe(ftStatus, row, w)
						return
					}
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, `{"id":"gen-2","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
				})
				gw := ftGateway(t, up.URL, keys)
				now := gw.Clock.Now()
				model := ftModel(row)
				body := fmt.Sprintf(`{"prompt":"hi","models":[%q],"random_key":false,"stream":%v}`, model, stream)
				req := newRequest(t, http.MethodPost, gw.URL+"/run", []byte(body))
				req.Header.Set("Content-Type", "application/json")
				resp, got := do(t, req)
				if resp.StatusCode != 200 {
					t.Fatalf("/run %d %s", resp.StatusCode, got)
				}
				doc := got
				if stream {
					i := strings.LastIndex(string(got), "event: done\ndata: ")
					if i < 0 {
						t.Fatalf("no done event in %s", got)
					}
					doc = []byte(strings.TrimSpace(string(got[i+len("event: done\ndata: "):])))
				}
				var out struct {
					Responses []struct {
						Status string `json:"status"`
						KeyID  int    `json:"key_id"`
						Error  string `json:"error"`
						Output string `json:"output"`
					} `json:"responses"`
				}
				if err := json.Unmarshal(doc, &out); err != nil || len(out.Responses) != 1 {
					t.Fatalf("/run answer %s: %v", doc, err)
				}
				r := out.Responses[0]
				if row.wantStatus == 200 {
					if r.Status != "success" || !strings.Contains("|"+row.wantKey+"|", "|"+strconv.Itoa(r.KeyID)+"|") {
						t.Errorf("entry %+v, want success on key %s", r, row.wantKey)
					}
				} else if r.Status != "error" || r.KeyID != 1 || !strings.Contains(r.Error, strconv.Itoa(row.wantStatus)) {
					t.Errorf("entry %+v, want an error from key 1 naming %d", r, row.wantStatus)
				}
				if n := seen.len(); n != row.wantCalls {
					t.Errorf("%d upstream calls, want %d", n, row.wantCalls)
				}
				st := ptKeysFull(t, gw)
				for id := 1; id <= 4; id++ {
					k := st[id]
					want, rests := row.rest[id]
					switch {
					case !rests && k.CooldownUntil != nil:
						t.Errorf("key %d rests until +%v, want no rest", id, k.CooldownUntil.Sub(now))
					case rests && (k.CooldownUntil == nil || !k.CooldownUntil.Equal(now.Add(want))):
						t.Errorf("key %d rests %v, want %v", id, k.CooldownUntil, want)
					}
				}
			})
		}
	}
}

// TestFaultTableLate: the rows as an error event after data, on a committed
// passthrough stream: passed on as is, and counted by the fault table
// (rests as the row says; nothing retried).
func TestFaultTableLate(t *testing.T) {
	first := "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n"
	for i, row := range ftRows(newClock().Now()) {
		t.Run(row.name, func(t *testing.T) {
			row := ftRows(newClock().Now())[i]
			if strings.Contains(row.body, `"code":"rate_limit_exceeded"`) {
				t.Skip("no HTTP code")
			}
			keys := testKeys(4)
			ev := "data: " + strings.TrimSuffix(row.body, "}") + `,"id":"gen-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}` + "\n\n"
			up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
				for k, v := range row.hdr {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "text/event-stream")
				_, _ = io.WriteString(w, first)
				w.(http.Flusher).Flush()
				_, _ = io.WriteString(w, ev)
			})
			gw := ftGateway(t, up.URL, keys)
			now := gw.Clock.Now()
			model := ftModel(row)
			body := fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, model)
			req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(body))
			req.Header.Set("Content-Type", "application/json")
			resp, got := do(t, req)
			if resp.StatusCode != 200 || string(got) != first+ev || seen.len() != 1 {
				t.Fatalf("client got %d %q after %d calls, want the stream as is after 1", resp.StatusCode, got, seen.len())
			}
			// Resting in the table's terms, rest lengths as the rows say.
			ptEventually(t, "late rests", func() bool {
				st := ptKeysFull(t, gw)
				for id := 1; id <= 4; id++ {
					want, rests := row.rest[id]
					k := st[id]
					if rests != (k.CooldownUntil != nil) || rests && !k.CooldownUntil.Equal(now.Add(want)) {
						return false
					}
				}
				return true
			})
			st := ptKeysFull(t, gw)
			var blocked []int
			for id := 1; id <= 4; id++ {
				if st[id].FreeBlockedUntil != nil {
					blocked = append(blocked, id)
				}
			}
			if fmt.Sprint(blocked) != fmt.Sprint(row.freeBlocked) && !(len(blocked) == 0 && len(row.freeBlocked) == 0) {
				t.Errorf("free-blocked keys %v, want %v", blocked, row.freeBlocked)
			}
		})
	}
}

// TestFaultTable401Doubles: a 401 rests AUTH_FAILURE_COOLDOWN, doubling on
// each failed trial; a 429 key rest after trials keeps its hint.
func TestFaultTable401Doubles(t *testing.T) {
	keys := testKeys(2)
	up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		if s.Key == keys[0] {
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"error":{"message":"User not found.","code":401}}`)
			return
		}
		ptOK(w, r, s)
	})
	gw := startGateway(t, up.URL, keys, "KEY_ROTATION=round-robin", "AUTH_FAILURE_COOLDOWN=1m")
	want := time.Minute
	for i := range 4 {
		for range 2 {
			do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{}`)))
		}
		k := ptKeysFull(t, gw)[1]
		if k.CooldownUntil == nil || k.CooldownUntil.Sub(gw.Clock.Now()) != want {
			t.Fatalf("round %d: key 1 rests %v, want %v", i, k.CooldownUntil, want)
		}
		gw.Clock.Advance(want + time.Millisecond)
		want *= 2
	}
}

// TestFaultTableErrorAfterKeepAlives: a 200 JSON answer whose error object
// follows keep-alive blanks (servers that keep a long non-streamed call
// alive with whitespace) is judged as the error object it is, within the
// first 512 bytes keygate peeks at. Past them the answer goes to the
// client as it comes: holding its status while blanks keep coming would
// undo what they are for, keeping the client's own timeouts at bay.
func TestFaultTableErrorAfterKeepAlives(t *testing.T) {
	for _, pad := range []int{100, 400} {
		t.Run(strconv.Itoa(pad), func(t *testing.T) {
			keys := testKeys(2)
			up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
				if s.Key == keys[0] {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(200)
					for range pad / 50 {
						_, _ = io.WriteString(w, strings.Repeat("\n", 50))
						w.(http.Flusher).Flush()
					}
					_, _ = io.WriteString(w, `{"error":{"message":"User not found.","code":401}}`)
					return
				}
				ptOK(w, r, s)
			})
			gw := startGateway(t, up.URL, keys, "KEY_ROTATION=round-robin")
			resp, got := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{"model":"m"}`)))
			if resp.StatusCode != 200 || resp.Header.Get("X-Keygate-Key") != "2" || seen.len() != 2 {
				t.Errorf("client got %d from key %s (%.80q) after %d calls, want 200 from key 2 after 2", resp.StatusCode, resp.Header.Get("X-Keygate-Key"), got, seen.len())
			}
		})
	}
}

// TestFaultTableKeepAlivesKept: an answer after keep-alive blanks reaches
// the client byte for byte.
func TestFaultTableKeepAlivesKept(t *testing.T) {
	keys := testKeys(1)
	want := strings.Repeat("\n", 3000) + `{"id":"gen-1","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}`
	up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i < len(want); i += 100 {
			_, _ = io.WriteString(w, want[i:min(i+100, len(want))])
			w.(http.Flusher).Flush()
		}
	})
	gw := startGateway(t, up.URL, keys)
	resp, got := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{"model":"m"}`)))
	if resp.StatusCode != 200 || string(got) != want {
		t.Errorf("client got %d, %d bytes, want 200 and upstream's %d bytes as is", resp.StatusCode, len(got), len(want))
	}
}
