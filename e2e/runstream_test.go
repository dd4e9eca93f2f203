package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/sse"
)

// rsEvent is one event of a streamed /run.
type rsEvent struct {
	Name string
	Data string
}

// rsEvents splits a streamed /run answer into its events.
func rsEvents(t testing.TB, body []byte) []rsEvent {
	t.Helper()
	sp := sse.Splitter{Max: 64 << 20}
	var out []rsEvent
	for ev, rest, ok := sp.Next(body); ok; ev, rest, ok = sp.Next(rest) {
		out = append(out, rsEvent{string(ev.Name), string(ev.Data)})
	}
	if sp.Pending() {
		t.Errorf("streamed /run ends inside an event")
	}
	if sp.Skipped > 0 {
		t.Errorf("streamed /run has %d events over 64 MiB", sp.Skipped)
	}
	return out
}

// rsUpstream answers chat completions by model: m/ok streams "Hello",
// m/fails has a request error as its first event, m/failover a key's rate
// limit on its first call and "Hello" after, m/block one delta and then
// waits for the client to leave (gone gets one value each).
func rsUpstream(t testing.TB, gone chan<- string) (*httpServer, *ptLog) {
	var failovers atomic.Int32
	up, log := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		var body struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		_ = json.Unmarshal(s.Body, &body)
		if !body.Stream {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"Hello"}}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		ptFlushed(w, sfProcessing)
		switch body.Model {
		case "m/fails":
			ptFlushed(w, sfBadRequest)
		case "m/failover":
			if failovers.Add(1) == 1 {
				ptFlushed(w, sfRateLimit)
				return
			}
			ptFlushed(w, sfOK)
		case "m/block":
			ptFlushed(w, sfOK[:strings.Index(sfOK, "\n\n")+2])
			<-r.Context().Done()
			gone <- body.Model
		default:
			ptFlushed(w, sfOK)
		}
	})
	return &httpServer{up.URL, up.Close}, log
}

// TestRunStream: a streamed /run sends each model's deltas, then its
// model_done, and at the end the whole document; a model whose first event
// is a key's fault goes on to another key, one whose first event is another
// error fails alone.
func TestRunStream(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	up, log := rsUpstream(t, nil)
	g := hdStart(t, up.URL, testKeys(4), newClock())
	res := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run",
		`{"prompt":"Say hello","models":["m/ok","m/fails","m/failover"],"stream":true}`))
	if res.Err != nil || res.Status != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %q %v: want a 200 event stream", res.Status, res.Header.Get("Content-Type"), res.Err)
	}
	events := rsEvents(t, res.Body)
	if len(events) == 0 || events[len(events)-1].Name != "done" {
		t.Fatalf("events %v: want done last", events)
	}
	content := map[int]string{}
	done := map[int]map[string]any{}
	for _, ev := range events[:len(events)-1] {
		var d map[string]any
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatalf("event %s data %q: %v", ev.Name, ev.Data, err)
		}
		i := int(d["index"].(float64))
		if _, over := done[i]; over {
			t.Fatalf("event %s of model %d after its model_done", ev.Name, i)
		}
		switch ev.Name {
		case "delta":
			content[i] += d["content"].(string)
		case "model_done":
			done[i] = d
		default:
			t.Fatalf("unknown event %q", ev.Name)
		}
	}
	if content[0] != "Hello" || content[2] != "Hello" || content[1] != "" {
		t.Errorf("deltas %v, want Hello for models 0 and 2, none for 1", content)
	}
	for i, want := range []string{"success", "error", "success"} {
		if done[i]["status"] != want || done[i]["key_id"] == nil {
			t.Errorf("model_done %d %v, want status %s with its key", i, done[i], want)
		}
	}
	if msg, _ := done[1]["error"].(string); msg != "upstream 400: context too long" {
		t.Errorf("model 1 error %q", msg)
	}
	if u, ok := done[0]["usage"].(map[string]any); !ok || u["total_tokens"] != float64(5) {
		t.Errorf("model 0 usage %v", done[0]["usage"])
	}
	var doc struct {
		Prompt      string `json:"prompt"`
		TotalModels int    `json:"total_models"`
		Successful  int    `json:"successful"`
		Failed      int    `json:"failed"`
		Responses   []struct {
			Model  string `json:"model"`
			Output string `json:"output"`
			Status string `json:"status"`
			KeyID  int    `json:"key_id"`
		} `json:"responses"`
	}
	if err := json.Unmarshal([]byte(events[len(events)-1].Data), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Prompt != "Say hello" || doc.TotalModels != 3 || doc.Successful != 2 || doc.Failed != 1 || len(doc.Responses) != 3 ||
		doc.Responses[0].Output != "Hello" || doc.Responses[2].Output != "Hello" || doc.Responses[1].Status != "error" {
		t.Errorf("done document %+v", doc)
	}
	// m/failover went on to another key: 4 upstream calls, all streamed.
	if log.len() != 4 {
		t.Errorf("%d upstream calls, want 4", log.len())
	}
	for _, s := range log.all() {
		if !strings.Contains(string(s.Body), `"stream":true`) || !strings.Contains(string(s.Body), `"include_usage":true`) {
			t.Errorf("upstream body %s: want a streamed call asking for usage", s.Body)
		}
	}
	ptIdle(t, g.gateway)
	g.Close()
	up.Close()
	goleak.VerifyNone(t, leaks)
}

// TestRunStreamClientGone: a client that leaves a streamed /run cancels
// every model's upstream call.
func TestRunStreamClientGone(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	gone := make(chan string, 4)
	up, _ := rsUpstream(t, gone)
	g := hdStart(t, up.URL, testKeys(4), newClock())
	ctx, cancel := context.WithCancel(t.Context())
	req := hdRequest(t, http.MethodPost, g.URL+"/run", `{"prompt":"hi","models":["m/block","m/block","m/block"],"stream":true}`).WithContext(ctx)
	resp, err := g.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(resp.Body)
	for range 3 {
		if ev := ptNextEvent(t, rd, "a delta of each model"); !strings.HasPrefix(ev, "event: delta\n") {
			t.Fatalf("event %q, want a delta", ev)
		}
	}
	cancel()
	resp.Body.Close()
	for range 3 {
		ptWait(t, gone, "every upstream call cancelled")
	}
	ptIdle(t, g.gateway)
	g.Close()
	up.Close()
	goleak.VerifyNone(t, leaks)
}

// TestRunMessages: "messages" stands instead of "prompt", in both forms;
// the answer's prompt is the last user message's text, and upstream gets
// the messages as they were.
func TestRunMessages(t *testing.T) {
	up, log := rsUpstream(t, nil)
	gw := startGateway(t, up.URL, testKeys(2))
	msgs := `[{"role":"system","content":"Be brief."},{"role":"user","content":"first"},{"role":"assistant","content":"ok"},` +
		`{"role":"user","content":[{"type":"text","text":"second"},{"type":"image_url","image_url":{"url":"data:x"}}]}]`
	for _, stream := range []bool{false, true} {
		body := `{"messages":` + msgs + `,"models":["m/ok"]`
		if stream {
			body += `,"stream":true`
		}
		resp, got := do(t, newRequest(t, http.MethodPost, gw.URL+"/run", []byte(body+"}")))
		if resp.StatusCode != 200 {
			t.Fatalf("stream %v: %d %s", stream, resp.StatusCode, got)
		}
		doc := got
		if stream {
			evs := rsEvents(t, got)
			doc = []byte(evs[len(evs)-1].Data)
		}
		var out struct {
			Prompt    string `json:"prompt"`
			Responses []struct {
				Output string `json:"output"`
			} `json:"responses"`
		}
		if err := json.Unmarshal(doc, &out); err != nil || out.Prompt != "second" || len(out.Responses) != 1 || out.Responses[0].Output != "Hello" {
			t.Fatalf("stream %v: answer %s (%v), want prompt \"second\" and Hello", stream, doc, err)
		}
		var sent struct {
			Messages json.RawMessage `json:"messages"`
		}
		all := log.all()
		_ = json.Unmarshal(all[len(all)-1].Body, &sent)
		if string(sent.Messages) != msgs {
			t.Fatalf("upstream messages %s, want %s", sent.Messages, msgs)
		}
	}
	for _, bad := range []string{
		`{"prompt":"a","messages":[{"role":"user","content":"b"}],"models":["m/ok"]}`,
		`{"messages":[],"models":["m/ok"]}`,
		`{"messages":"hi","models":["m/ok"]}`,
		`{"messages":[{"content":"no role"}],"models":["m/ok"]}`,
		`{"prompt":"a","models":["m/ok"],"stream":"yes"}`,
	} {
		if resp, got := do(t, newRequest(t, http.MethodPost, gw.URL+"/run", []byte(bad))); resp.StatusCode != 400 {
			t.Errorf("%s: %d %s, want 400", bad, resp.StatusCode, got)
		}
	}
}

// TestRunStreamMasksAKeySentInPieces: an upstream that streams the pool key
// a few characters at a time, as models stream text, has it masked in the
// deltas, not only in the done document: each piece alone holds no whole
// key, so the deltas are masked as one text, and joined they are the done
// document's output.
func TestRunStreamMasksAKeySentInPieces(t *testing.T) {
	keys := testKeys(1)
	key := keys[0]
	up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		text := "my key is " + s.Key + ", and " + s.Key[:12] + " is how it starts."
		for i := 0; i < len(text); i += 7 {
			piece, _ := json.Marshal(text[i:min(i+7, len(text))])
			ptFlushed(w, `data: {"choices":[{"delta":{"content":`+string(piece)+`}}]}`+"\n\n")
		}
		ptFlushed(w, "data: [DONE]\n\n")
	})
	g := hdStart(t, up.URL, keys, newClock())
	res := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run", `{"prompt":"echo","models":["m/echo"],"stream":true}`))
	if res.Err != nil || res.Status != 200 {
		t.Fatalf("%d %v: want a 200 event stream", res.Status, res.Err)
	}
	if strings.Contains(string(res.Body), key[len(key)-12:]) {
		t.Fatalf("the stream shows the key's last 12 characters:\n%s", res.Body)
	}
	events := rsEvents(t, res.Body)
	var joined strings.Builder
	for _, ev := range events {
		if ev.Name != "delta" {
			continue
		}
		var d struct{ Content string }
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatal(err)
		}
		joined.WriteString(d.Content)
	}
	masked := "sk-or-v1-…" + key[len(key)-4:]
	want := "my key is " + masked + ", and " + key[:12] + " is how it starts."
	if joined.String() != want {
		t.Fatalf("deltas joined = %q, want %q", joined.String(), want)
	}
	var doc struct {
		Responses []struct{ Output string }
	}
	if len(events) == 0 || json.Unmarshal([]byte(events[len(events)-1].Data), &doc) != nil || len(doc.Responses) != 1 || doc.Responses[0].Output != want {
		t.Fatalf("done document %+v, want the output %q", doc, want)
	}
}

// TestRunStreamLosesNoEvent: a streamed /run answers as the same request
// without "stream" does when an upstream event does not fit the usual
// bound (some providers send a whole answer as one chunk) or does not
// decode. Both used to be dropped without a word: the model came out a
// success with the text of its other events, or with none.
func TestRunStreamLosesNoEvent(t *testing.T) {
	big := strings.Repeat("x", 300<<10)
	up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		var body struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		_ = json.Unmarshal(s.Body, &body)
		text, bad := "Hello", false
		switch body.Model {
		case "m/big":
			text = big
		case "m/bad":
			bad = true
		}
		if !body.Stream {
			w.Header().Set("Content-Type", "application/json")
			if bad {
				_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"Hel`)
				return
			}
			_, _ = io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"`+text+`"}}]}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		ptFlushed(w, `data: {"choices":[{"delta":{"content":"`+text+`"}}]}`+"\n\n")
		if bad {
			ptFlushed(w, `data: {"choices":[{"delta":{"content":"lo`+"\n\n")
		}
		ptFlushed(w, `data: {"choices":[{"delta":{"content":"!"}}]}`+"\n\ndata: [DONE]\n\n")
	})
	g := hdStart(t, up.URL, testKeys(1), newClock())
	type entry struct {
		Model, Status, Output, Error string
	}
	answer := func(stream bool, model string) entry {
		t.Helper()
		body := `{"prompt":"hi","models":["` + model + `"],"stream":` + map[bool]string{true: "true", false: "false"}[stream] + `}`
		res := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run", body))
		if res.Err != nil || res.Status != http.StatusOK {
			t.Fatalf("%s stream=%v: %d %v", model, stream, res.Status, res.Err)
		}
		doc := res.Body
		if stream {
			events := rsEvents(t, res.Body)
			doc = []byte(events[len(events)-1].Data)
		}
		var d struct{ Responses []entry }
		if err := json.Unmarshal(doc, &d); err != nil || len(d.Responses) != 1 {
			t.Fatalf("%s stream=%v: %v %s", model, stream, err, doc)
		}
		return d.Responses[0]
	}
	for _, tt := range []struct {
		model  string
		status string
		output string
	}{
		{"m/big", "success", big + "!"},
		{"m/bad", "error", ""},
	} {
		got := answer(true, tt.model)
		if got.Status != tt.status || (tt.status == "success" && got.Output != tt.output) {
			t.Errorf("%s streamed: %s, %d characters of output (%.40q), error %q; want %s with %d characters",
				tt.model, got.Status, len(got.Output), got.Output, got.Error, tt.status, len(tt.output))
		}
		if plain := answer(false, tt.model); plain.Status != tt.status {
			t.Errorf("%s without stream: %s, want %s", tt.model, plain.Status, tt.status)
		}
		if tt.status == "error" && got.Error == "" {
			t.Errorf("%s streamed: no error said", tt.model)
		}
	}
}
