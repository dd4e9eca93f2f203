package e2e

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/app"
)

func TestRunAnswersInOrderOfModels(t *testing.T) {
	keys := testKeys(4)
	up := newChatUpstream(t, keys)
	models := []string{"a/slowest", "b/slow", "c/quick", "d/instant"}
	up.set(func(u *chatUpstream) { // finishing order is the reverse of the request order
		u.modelDelay["a/slowest"] = 150 * time.Millisecond
		u.modelDelay["b/slow"] = 100 * time.Millisecond
		u.modelDelay["c/quick"] = 50 * time.Millisecond
	})
	gw := startGateway(t, up.Base(), keys)
	params := map[string]any{
		"temperature": 0.25, "max_tokens": 7,
		"model": "evil/override", "messages": []any{map[string]any{"role": "system", "content": "pwned"}}, "stream": true,
	}
	out := runOK(t, gw, "Say hi", models, map[string]any{"params": params})

	if out.Successful != 4 || out.Failed != 0 || out.KeyRotation != "random" {
		t.Fatalf("successful %d failed %d key_rotation %q; want 4, 0, random", out.Successful, out.Failed, out.KeyRotation)
	}
	for i, e := range out.Responses {
		if want := "reply from " + models[i] + " to Say hi"; e.Output != want || e.Status != "success" || e.Error != "" {
			t.Errorf("responses[%d] = %+v; want output %q, status success", i, e, want)
		}
		wantUsage := runUsage{PromptTokens: 9, CompletionTokens: len(models[i]), TotalTokens: 9 + len(models[i])}
		if e.Usage == nil || *e.Usage != wantUsage {
			t.Errorf("responses[%d].usage = %+v, want %+v", i, e.Usage, wantUsage)
		}
		if seen := up.KeysOf(models[i]); e.KeyID == nil || len(seen) != 1 || seen[0] != *e.KeyID {
			t.Errorf("responses[%d].key_id = %v, upstream saw keys %v", i, e.KeyID, seen)
		}
	}
	calls := up.Calls()
	if len(calls) != 4 {
		t.Fatalf("upstream got %d calls, want 4", len(calls))
	}
	for _, c := range calls {
		b := c.Body
		wantMsgs := []any{map[string]any{"role": "user", "content": "Say hi"}}
		if b["stream"] != false || !reflect.DeepEqual(b["messages"], wantMsgs) || !slices.Contains(models, b["model"].(string)) {
			t.Errorf("upstream body %v: params overrode the gateway's model, messages or stream", b)
		}
		if b["temperature"] != 0.25 || b["max_tokens"] != 7.0 {
			t.Errorf("upstream body %v: params not merged", b)
		}
	}
}

// The upstream holds every call until all four have arrived: sequential
// calls would never get there and time out as errors. This is the test of
// /run's concurrency; how long a run takes is a benchmark's business, and the
// duration fields' format is checked by runOK on every answer.
func TestRunCallsModelsConcurrently(t *testing.T) {
	keys := testKeys(4)
	up := newChatUpstream(t, keys)
	up.set(func(u *chatUpstream) { u.barrier = 4 })
	gw := startGateway(t, up.Base(), keys, "UPSTREAM_TIMEOUT=20s")
	out := runOK(t, gw, "together", []string{"m/1", "m/2", "m/3", "m/4"}, nil)
	if out.Successful != 4 {
		t.Fatalf("successful %d, want 4: the calls were not all in flight at once: %+v", out.Successful, out.Responses)
	}
}

func TestRunRandomGivesDistinctKeys(t *testing.T) {
	keys := testKeys(4)
	up := newChatUpstream(t, keys)
	gw := startGateway(t, up.Base(), keys, "KEY_ROTATION=round-robin")
	random := map[string]any{"random_key": true}

	for i := 0; i < 20; i++ { // random keys would collide in 9 runs out of 10
		out := runOK(t, gw, "p", []string{"m/a", "m/b", "m/c", "m/d"}, random)
		if out.KeyRotation != "random" {
			t.Fatalf("key_rotation %q, want random (random_key true)", out.KeyRotation)
		}
		if ids := entryKeys(t, out); len(distinct(ids)) != 4 {
			t.Fatalf("run %d: key ids %v, want 4 distinct", i, ids)
		}
	}
	// More models than keys: every key is used, none left idle.
	out := runOK(t, gw, "p", []string{"m/a", "m/a", "m/b", "m/c", "m/d", "m/e"}, random)
	if ids := entryKeys(t, out); len(distinct(ids)) != 4 {
		t.Fatalf("6 models on 4 keys got keys %v, want all 4 used", ids)
	}
	// A key out of rotation is left out; the others stay distinct.
	up.set(func(u *chatUpstream) { u.keyStatus[2] = http.StatusUnauthorized })
	runOK(t, gw, "p", []string{"m/a", "m/b", "m/c", "m/d"}, map[string]any{"random_key": false})
	for i := 0; i < 10; i++ {
		out := runOK(t, gw, "p", []string{"m/a", "m/b", "m/c"}, random)
		ids := entryKeys(t, out)
		if len(distinct(ids)) != 3 || slices.Contains(ids, 2) || out.Successful != 3 {
			t.Fatalf("key 2 resting: got keys %v (successful %d), want 1, 3, 4 once each", ids, out.Successful)
		}
	}
}

// A key noted as unable to afford a call is not leased to one of /run's
// models: it would be given back at the call and another picked without
// the other models' keys in mind, so that two models shared a key while
// another was free (and the console named a key never called).
func TestRunRandomDistinctPastAnAffordNote(t *testing.T) {
	keys := testKeys(4)
	up := newChatUpstream(t, keys)
	up.set(func(u *chatUpstream) {
		u.keyStatus[2] = http.StatusUnauthorized
		u.keyStatus[3] = http.StatusPaymentRequired
		u.keyBody[3] = `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. ` +
			`You requested up to 4000 tokens, but can only afford 812.","metadata":{"limit_source":"openrouter_credits","reason":"weight_exceeds_budget"}}}`
	})
	gw := startGateway(t, up.Base(), keys, "BUDGET_POLL_INTERVAL=0")
	big := map[string]any{"params": map[string]any{"max_tokens": 4000}}
	// Round-robin over four models: key 2 rests (401), key 3 is noted
	// as affording about 812 tokens; both calls go on to other keys.
	big["random_key"] = false
	runOK(t, gw, "p", []string{"m/a", "m/b", "m/c", "m/d"}, big)
	if ids := up.KeyIDs(); !slices.Contains(ids, 2) || !slices.Contains(ids, 3) {
		t.Fatalf("the first run's calls went out on keys %v; want 2 and 3 among them", ids)
	}
	_, mfs := mtScrape(t, gw)
	if got := mtSeries(t, mfs); got[`keygate_retries_total{reason="afford"}`] < 1 || got[`keygate_retries_total{reason="rate_limit"}`] != 0 {
		t.Fatalf("retries afford %v, rate_limit %v; want the 402's retry counted as afford, none as rate_limit",
			got[`keygate_retries_total{reason="afford"}`], got[`keygate_retries_total{reason="rate_limit"}`])
	}

	big["random_key"] = true
	before := len(up.Calls())
	for i := 0; i < 12; i++ { // the old lease and pick again collided in half the runs
		out := runOK(t, gw, "p", []string{"m/a", "m/b"}, big)
		if ids := entryKeys(t, out); len(distinct(ids)) != 2 || slices.Contains(ids, 2) || slices.Contains(ids, 3) {
			t.Fatalf("run %d: key ids %v; want keys 1 and 4, one each", i, ids)
		}
	}
	if got := up.KeyIDs()[before:]; slices.Contains(got, 3) || len(got) != 24 {
		t.Fatalf("calls after the note went out on keys %v; want 24, none on key 3", got)
	}
	if n := strings.Count(gw.Logs.String(), "Using API Key #3"); n != 1 {
		t.Errorf("the console named key 3 first for %d calls; want one (the first run's)", n)
	}
}

func TestRunRoundRobinSequence(t *testing.T) {
	for _, tc := range []struct {
		env, name string
		extra     map[string]any
	}{
		{"KEY_ROTATION=random", "random_key false", map[string]any{"random_key": false}},
		{"KEY_ROTATION=round-robin", "KEY_ROTATION default", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := testKeys(3)
			up := newChatUpstream(t, keys)
			gw := startGateway(t, up.Base(), keys, tc.env)
			var got []int
			for _, n := range []int{2, 2, 1, 3, 2} {
				models := make([]string, n)
				for i := range models {
					models[i] = "m/" + strconv.Itoa(i)
				}
				out := runOK(t, gw, "p", models, tc.extra)
				if out.KeyRotation != "round-robin" {
					t.Fatalf("key_rotation %q, want round-robin", out.KeyRotation)
				}
				got = append(got, entryKeys(t, out)...)
			}
			want := []int{1, 2, 3, 1, 2, 3, 1, 2, 3, 1}
			if !slices.Equal(got, want) {
				t.Fatalf("key sequence %v, want %v", got, want)
			}
		})
	}
}

func TestRunKeyRotationFollowsSetting(t *testing.T) {
	for _, tc := range []struct {
		env, body, want string
	}{
		{"", `{"prompt":"p","models":["m/a"]}`, "random"},
		{"KEY_ROTATION=least-busy", `{"prompt":"p","models":["m/a"]}`, "least-busy"},
		{"KEY_ROTATION=least-busy", `{"prompt":"p","models":["m/a"],"random_key":null}`, "least-busy"},
		{"KEY_ROTATION=least-busy", `{"prompt":"p","models":["m/a"],"random_key":false}`, "round-robin"},
		{"KEY_ROTATION=round-robin", `{"prompt":"p","models":["m/a"],"random_key":true}`, "random"},
	} {
		t.Run(tc.env+" "+tc.body, func(t *testing.T) {
			keys := testKeys(2)
			up := newChatUpstream(t, keys)
			env := []string{}
			if tc.env != "" {
				env = append(env, tc.env)
			}
			gw := startGateway(t, up.Base(), keys, env...)
			resp, body := postRun(t, gw, []byte(tc.body))
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"key_rotation":"`+tc.want+`"`) {
				t.Fatalf("status %d body %s; want key_rotation %s", resp.StatusCode, body, tc.want)
			}
		})
	}
}

func TestRunFailingModelIsolated(t *testing.T) {
	keys := testKeys(3)
	up := newChatUpstream(t, keys)
	up.set(func(u *chatUpstream) {
		u.modelStatus["x/broken"] = http.StatusNotFound
		u.modelStatus["x/crash"] = http.StatusInternalServerError
		u.modelStatus["x/overloaded"] = http.StatusServiceUnavailable
		u.hang["x/silent"] = true
		u.drop["x/dropped"] = true
	})
	gw := startGateway(t, up.Base(), keys, "UPSTREAM_TIMEOUT=300ms")
	models := []string{"ok/first", "x/broken", "x/crash", "x/silent", "x/overloaded", "x/dropped", "ok/last"}
	out := runOK(t, gw, "p", models, nil)

	if out.Successful != 2 || out.Failed != 5 {
		t.Fatalf("successful %d failed %d, want 2 and 5: %+v", out.Successful, out.Failed, out.Responses)
	}
	wantErr := map[string]string{
		"x/broken":     "^upstream 404: model not found$",
		"x/crash":      "^upstream 500: internal failure$",
		"x/overloaded": "^upstream 503: internal failure$",
		"x/silent":     "^upstream timeout$",
		"x/dropped":    "^upstream request failed: .+",
	}
	for i, e := range out.Responses {
		pattern, failing := wantErr[e.Model]
		if !failing {
			if e.Status != "success" || e.Output != "reply from "+e.Model+" to p" {
				t.Errorf("responses[%d] = %+v: a healthy model was affected", i, e)
			}
			continue
		}
		if e.Status != "error" || e.Output != "" || !matches(pattern, e.Error) || e.KeyID == nil {
			t.Errorf("responses[%d] = %+v; want status error, empty output, error matching %s, a key_id", i, e, pattern)
		}
		sent := up.KeysOf(e.Model)
		if e.Model == "x/dropped" && len(sent) == 2 && sent[0] == sent[1] {
			// A connection dropped at once is sent again, once, on the
			// same key: it may have been a keep-alive one upstream had
			// just closed, which Go's transport may send again within
			// relay.staleWindow.
			sent = sent[:1]
		}
		if n := len(sent); n != 1 {
			t.Errorf("%s was sent %d times: not the key's fault, must not be retried", e.Model, n)
		}
	}
	if n := gw.Pool.CountAvailable(gw.Clock.Now().UnixNano()); n != 3 {
		t.Fatalf("%d keys in rotation after model failures, want all 3", n)
	}
}

func TestRunRetriesKeyFaultOnAnotherKey(t *testing.T) {
	for _, status := range []int{401, 402, 429} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			keys := testKeys(2)
			up := newChatUpstream(t, keys)
			up.set(func(u *chatUpstream) { u.keyStatus[1] = status })
			gw := startGateway(t, up.Base(), keys, "KEY_ROTATION=round-robin")

			out := runOK(t, gw, "p", []string{"m/a"}, nil)
			e := out.Responses[0]
			if e.Status != "success" || e.KeyID == nil || *e.KeyID != 2 {
				t.Fatalf("entry %+v, want success on key 2", e)
			}
			if got := up.KeyIDs(); !slices.Equal(got, []int{1, 2}) {
				t.Fatalf("upstream saw keys %v, want [1 2]", got)
			}
			if st := gw.Breakers.For(gw.Pool.ByID(1)).State().String(); st != "open" {
				t.Fatalf("key 1 breaker %s after %d, want open", st, status)
			}
			runOK(t, gw, "p", []string{"m/b", "m/c"}, nil)
			if got := up.KeysOf("m/b"); !slices.Equal(got, []int{2}) || !slices.Equal(up.KeysOf("m/c"), []int{2}) {
				t.Fatalf("resting key 1 used again: upstream saw %v", up.KeyIDs())
			}
		})
	}
}

func TestRunKeyFaultsUntilNoKeyIsLeft(t *testing.T) {
	keys := testKeys(3)
	up := newChatUpstream(t, keys)
	up.set(func(u *chatUpstream) { u.keyStatus[1], u.keyStatus[2] = 401, 429 })
	gw := startGateway(t, up.Base(), keys, "KEY_ROTATION=round-robin")

	// Which healthy key a retry takes is the strategy's business; what is
	// fixed: the answer comes from key 3, no key is tried twice, and after
	// two calls both faulty keys rest.
	for _, model := range []string{"m/a", "m/b"} {
		out := runOK(t, gw, "p", []string{model}, nil)
		tried := up.KeysOf(model)
		if e := out.Responses[0]; e.Status != "success" || *e.KeyID != 3 || len(distinct(tried)) != len(tried) || tried[len(tried)-1] != 3 {
			t.Fatalf("%s: entry %+v, keys tried %v; want success on key 3, each key once", model, e, tried)
		}
	}
	for id, want := range map[int]string{1: "open", 2: "open", 3: "closed"} {
		if st := gw.Breakers.For(gw.Pool.ByID(id)).State().String(); st != want {
			t.Fatalf("key %d breaker %s, want %s", id, st, want)
		}
	}
	runOK(t, gw, "p", []string{"m/rested"}, nil)
	if got := up.KeysOf("m/rested"); !slices.Equal(got, []int{3}) {
		t.Fatalf("with keys 1 and 2 resting, upstream saw keys %v, want [3]", got)
	}

	up.set(func(u *chatUpstream) { u.keyStatus[3] = 401 })
	out := runOK(t, gw, "p", []string{"m/last"}, nil)
	e := out.Responses[0]
	if e.Status != "error" || e.KeyID == nil || *e.KeyID != 3 || !strings.HasPrefix(e.Error, "upstream 401: ") {
		t.Fatalf("last key failing: entry %+v, want error upstream 401 on key 3", e)
	}
	for _, k := range keys {
		if strings.Contains(e.Error, k) {
			t.Fatalf("entry error %q holds a raw key", e.Error)
		}
	}

	before := len(up.Calls())
	out = runOK(t, gw, "p", []string{"m/c", "m/d"}, nil)
	for i, e := range out.Responses {
		if e.Status != "error" || e.KeyID != nil || !strings.Contains(e.Error, "no API key available") {
			t.Errorf("no key left: responses[%d] = %+v, want an error saying no key is available, key_id null", i, e)
		}
	}
	if out.Failed != 2 || len(up.Calls()) != before {
		t.Fatalf("failed %d, upstream calls %d → %d; want 2 failed and no call", out.Failed, before, len(up.Calls()))
	}
}

func entryKeys(t testing.TB, out runReply) []int {
	t.Helper()
	ids := make([]int, len(out.Responses))
	for i, e := range out.Responses {
		if e.KeyID == nil {
			t.Fatalf("responses[%d] has no key_id: %+v", i, e)
		}
		ids[i] = *e.KeyID
	}
	return ids
}

func distinct(ids []int) map[int]bool {
	m := map[int]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func matches(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// TestRunRandomUsesInjectedSource checks that random_key draws from the
// app's random source, as KEY_ROTATION=random does: a source that always
// answers n-1 takes the last key still free for each model in turn.
func TestRunRandomUsesInjectedSource(t *testing.T) {
	keys := testKeys(4)
	up := newChatUpstream(t, keys)
	clk := newClock()
	last := func(n int) int { return n - 1 }
	a, _ := newApp(t, up.Base(), keys, app.Options{Now: clk.Now, Rand: last}, "KEY_ROTATION=round-robin")
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	gw := &gateway{App: a, URL: srv.URL, Clock: clk, srv: srv}
	for i := 0; i < 3; i++ {
		out := runOK(t, gw, "p", []string{"m/a", "m/b", "m/c"}, map[string]any{"random_key": true})
		if ids := entryKeys(t, out); !slices.Equal(ids, []int{4, 3, 2}) {
			t.Fatalf("run %d: keys %v, want [4 3 2] from a source that always draws the last", i, ids)
		}
	}
}
