package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// chatUpstream is an OpenAI-style chat-completion server for the /run tests.
// Every call is recorded; keys (by id) and models can be told to misbehave.
// A model's reply is "reply from <model> to <prompt>", so a test can tell
// which answer went where.
type chatUpstream struct {
	*httptest.Server
	keys []string // raw keys; a key's id is its index + 1

	mu          sync.Mutex
	calls       []chatCall
	keyStatus   map[int]int              // key id → status it answers
	keyBody     map[int]string           // key id → the body of its keyStatus answer, when not the default
	modelStatus map[string]int           // model → error status it answers
	modelDelay  map[string]time.Duration // model → delay before the answer
	hang        map[string]bool          // model → never answers
	drop        map[string]bool          // model → connection closed, no answer
	barrier     int                      // > 0: each call waits until this many arrived
	arrived     int
	allArrived  chan struct{}
}

// chatCall is one request the upstream received.
type chatCall struct {
	KeyID int
	Model string
	Body  map[string]any
}

// newChatUpstream starts an upstream that knows keys (ids 1..n). Its base
// URL, as OPENROUTER_BASE_URL, is URL + "/api/v1".
func newChatUpstream(t testing.TB, keys []string) *chatUpstream {
	t.Helper()
	u := &chatUpstream{
		keys:        keys,
		keyStatus:   map[int]int{},
		keyBody:     map[int]string{},
		modelStatus: map[string]int{},
		modelDelay:  map[string]time.Duration{},
		hang:        map[string]bool{},
		drop:        map[string]bool{},
		allArrived:  make(chan struct{}),
	}
	u.Server = httptest.NewServer(u)
	t.Cleanup(u.Close)
	return u
}

// Base is the upstream's OPENROUTER_BASE_URL.
func (u *chatUpstream) Base() string { return u.URL + "/api/v1" }

// set changes the upstream's behaviour under its lock.
func (u *chatUpstream) set(f func(u *chatUpstream)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f(u)
}

// Calls returns a copy of the calls received so far.
func (u *chatUpstream) Calls() []chatCall {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]chatCall(nil), u.calls...)
}

// KeyIDs lists the key of every call received so far, in arrival order.
func (u *chatUpstream) KeyIDs() []int {
	var ids []int
	for _, c := range u.Calls() {
		ids = append(ids, c.KeyID)
	}
	return ids
}

// KeysOf lists the keys that model was called with, in arrival order.
func (u *chatUpstream) KeysOf(model string) []int {
	var ids []int
	for _, c := range u.Calls() {
		if c.Model == model {
			ids = append(ids, c.KeyID)
		}
	}
	return ids
}

func (u *chatUpstream) keyID(auth string) int {
	for i, k := range u.keys {
		if auth == "Bearer "+k {
			return i + 1
		}
	}
	return 0
}

func (u *chatUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/chat/completions" {
		chatError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		chatError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return
	}
	model, _ := body["model"].(string)
	id := u.keyID(r.Header.Get("Authorization"))

	u.mu.Lock()
	u.calls = append(u.calls, chatCall{KeyID: id, Model: model, Body: body})
	keyStatus, keyBody, modelStatus, delay := u.keyStatus[id], u.keyBody[id], u.modelStatus[model], u.modelDelay[model]
	hang, drop, barrier := u.hang[model], u.drop[model], u.barrier
	if barrier > 0 {
		u.arrived++
		if u.arrived == barrier {
			close(u.allArrived)
		}
	}
	allArrived := u.allArrived
	u.mu.Unlock()

	switch {
	case id == 0:
		chatError(w, http.StatusUnauthorized, "unknown key")
		return
	case keyStatus != 0 && keyBody != "":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(keyStatus)
		_, _ = io.WriteString(w, keyBody)
		return
	case keyStatus != 0:
		// The message carries the raw key: the gateway must redact it.
		chatError(w, keyStatus, fmt.Sprintf("key %s refused (%d)", u.keys[id-1], keyStatus))
		return
	}
	if barrier > 0 {
		select {
		case <-allArrived:
		case <-time.After(5 * time.Second):
			chatError(w, http.StatusInternalServerError, "barrier timeout: the calls were not concurrent")
			return
		case <-r.Context().Done():
			return
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case hang:
		<-r.Context().Done()
		return
	case drop:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case modelStatus == http.StatusNotFound:
		chatError(w, modelStatus, "model not found")
		return
	case modelStatus != 0:
		chatError(w, modelStatus, "internal failure")
		return
	}
	prompt := ""
	if msgs, ok := body["messages"].([]any); ok && len(msgs) > 0 {
		if m, ok := msgs[0].(map[string]any); ok {
			prompt, _ = m["content"].(string)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id":     "gen-1",
		"object": "chat.completion",
		"model":  model,
		"choices": []any{map[string]any{
			"index":         0,
			"finish_reason": "stop",
			"message":       map[string]any{"role": "assistant", "content": "reply from " + model + " to " + prompt},
		}},
		"usage": map[string]int{"prompt_tokens": 9, "completion_tokens": len(model), "total_tokens": 9 + len(model)},
	})
}

func chatError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "code": code}})
}

var (
	durationRE      = regexp.MustCompile(`^\d+\.\d{2}$`)
	totalDurationRE = regexp.MustCompile(`^\d+\.\d{2}s$`)
	finishReasonRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// runReply is POST /run's answer.
type runReply struct {
	Prompt        string     `json:"prompt"`
	TotalDuration string     `json:"total_duration"`
	TotalModels   int        `json:"total_models"`
	Successful    int        `json:"successful"`
	Failed        int        `json:"failed"`
	KeyRotation   string     `json:"key_rotation"`
	Responses     []runEntry `json:"responses"`
}

type runEntry struct {
	Model    string    `json:"model"`
	Output   string    `json:"output"`
	Status   string    `json:"status"`
	Duration string    `json:"duration"`
	KeyID    *int      `json:"key_id"`
	Usage    *runUsage `json:"usage"`
	Error    string    `json:"error"`
	// FinishReason is why a successful answer ended ("stop", "length").
	FinishReason string `json:"finish_reason"`
}

type runUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// runBody encodes a /run request.
func runBody(t testing.TB, prompt string, models []string, extra map[string]any) []byte {
	t.Helper()
	m := map[string]any{"prompt": prompt, "models": models}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postRun sends body to POST /run.
func postRun(t testing.TB, gw *gateway, body []byte) (*http.Response, []byte) {
	t.Helper()
	req := newRequest(t, http.MethodPost, gw.URL+"/run", body)
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

// runOK posts a /run request that must succeed as a whole, checks the
// answer against the contract's shape and returns it decoded.
func runOK(t testing.TB, gw *gateway, prompt string, models []string, extra map[string]any) runReply {
	t.Helper()
	resp, body := postRun(t, gw, runBody(t, prompt, models, extra))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /run: status %d, body %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q", ct)
	}
	checkRunShape(t, body)
	var out runReply
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	if out.Prompt != prompt || out.TotalModels != len(models) || len(out.Responses) != len(models) {
		t.Fatalf("prompt %q total_models %d responses %d; want %q, %d, %d",
			out.Prompt, out.TotalModels, len(out.Responses), prompt, len(models), len(models))
	}
	if out.Successful+out.Failed != out.TotalModels {
		t.Fatalf("successful %d + failed %d != total_models %d", out.Successful, out.Failed, out.TotalModels)
	}
	ok := 0
	for i, e := range out.Responses {
		if e.Model != models[i] {
			t.Fatalf("responses[%d].model = %q, want %q (order of models)", i, e.Model, models[i])
		}
		if e.Status == "success" {
			ok++
		}
	}
	if ok != out.Successful {
		t.Fatalf("successful = %d, but %d entries say success", out.Successful, ok)
	}
	return out
}

// checkRunShape checks the exact field sets and formats of a /run answer.
func checkRunShape(t testing.TB, body []byte) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, body)
	}
	wantTop := "key_rotation,prompt,responses,successful,total_duration,total_models,failed"
	if got := sortedKeys(top); got != sortedList(wantTop) {
		t.Fatalf("top-level fields %s, want %s", got, sortedList(wantTop))
	}
	var total string
	_ = json.Unmarshal(top["total_duration"], &total)
	if !totalDurationRE.MatchString(total) {
		t.Fatalf("total_duration %q, want seconds with two decimals and an s", total)
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(top["responses"], &entries); err != nil {
		t.Fatalf("responses: %v", err)
	}
	for i, e := range entries {
		var status, dur string
		_ = json.Unmarshal(e["status"], &status)
		_ = json.Unmarshal(e["duration"], &dur)
		want := "duration,key_id,model,output,status,usage"
		switch status {
		case "success":
			// finish_reason is there when upstream said why the answer ended.
			if raw, ok := e["finish_reason"]; ok {
				var fr string
				if err := json.Unmarshal(raw, &fr); err != nil || !finishReasonRE.MatchString(fr) {
					t.Fatalf("responses[%d].finish_reason %s, want a short token such as \"stop\"", i, raw)
				}
				want = "duration,finish_reason,key_id,model,output,status,usage"
			}
		case "error":
			want = "duration,error,key_id,model,output,status"
			if _, ok := e["usage"]; ok {
				want += ",usage"
			}
		default:
			t.Fatalf("responses[%d].status %q, want success or error", i, status)
		}
		if got := sortedKeys(e); got != sortedList(want) {
			t.Fatalf("responses[%d] (%s) fields %s, want %s", i, status, got, sortedList(want))
		}
		if !durationRE.MatchString(dur) {
			t.Fatalf("responses[%d].duration %q, want seconds with two decimals", i, dur)
		}
	}
}

func sortedKeys(m map[string]json.RawMessage) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func sortedList(csv string) string {
	ks := strings.Split(csv, ",")
	sort.Strings(ks)
	return strings.Join(ks, ",")
}
