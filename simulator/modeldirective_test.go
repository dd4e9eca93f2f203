package simulator

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestModelDirectivesEveryEndpoint: a "sim/<directives>" model name asks
// for the same faults as the HeaderFault header, on every inference
// endpoint, streamed or not.
func TestModelDirectivesEveryEndpoint(t *testing.T) {
	t.Parallel()
	opts := testOptions()
	opts.Latency, opts.LatencySpread, opts.ChunkDelay = 0, 0, 0
	h := startSim(t, opts)

	body := func(path, model string, stream bool) string {
		switch path {
		case "/responses":
			return fmt.Sprintf(`{"model":%q,"input":"hi","stream":%v}`, model, stream)
		case "/embeddings":
			return fmt.Sprintf(`{"model":%q,"input":"hi"}`, model)
		}
		return chatBody(model, "hi", stream)
	}
	// errorCode is the code of an in-band error: a body's error.code, or a
	// stream's "error" event (Responses) or error chunk (chat).
	errorCode := func(t *testing.T, r reply, stream bool) string {
		t.Helper()
		datas := []string{string(r.body)}
		if stream {
			datas = parseEvents(t, r.body)
		}
		for _, d := range datas {
			var e struct {
				Type  string          `json:"type"`
				Code  json.RawMessage `json:"code"`
				Error *struct {
					Code json.RawMessage `json:"code"`
				} `json:"error"`
			}
			if json.Unmarshal([]byte(d), &e) != nil {
				continue
			}
			switch {
			case e.Type == "error":
				return strings.Trim(string(e.Code), `"`)
			case e.Error != nil:
				return strings.Trim(string(e.Error.Code), `"`)
			}
		}
		return ""
	}
	deltas := func(t *testing.T, r reply) int {
		n := 0
		for _, d := range parseEvents(t, r.body) {
			if strings.Contains(d, `"response.output_text.delta"`) || strings.Contains(d, `"delta":{"content"`) {
				n++
			}
		}
		return n
	}

	tests := []struct {
		name, path, directives string
		stream                 bool
		status                 int
		inband                 string // the in-band error's code, "" for none
		deltas                 int    // content events before it, on a stream
		has                    string // in the body
	}{
		{"responses status", "/responses", "status=503", false, 503, "", 0, ""},
		{"responses in-band", "/responses", "inband=402", false, 200, "402", 0, ""},
		{"responses stream error after 2", "/responses", "errorafter=2,inband=401", true, 200, "401", 2, ""},
		{"responses provider 429", "/responses", "provider429", false, 429, "429", 0, `"provider_name"`},
		{"responses unknown directive", "/responses", "nosuch", false, 400, "400", 0, "nosuch"},
		{"embeddings status", "/embeddings", "status=502", false, 502, "", 0, ""},
		{"embeddings unknown directive", "/embeddings", "nosuch", false, 400, "400", 0, "nosuch"},
		{"chat stream error after 2", "/chat/completions", "errorafter=2,inband=401", true, 200, "401", 2, ""},
	}
	for _, tt := range tests {
		for _, how := range []string{"model", "header"} {
			t.Run(tt.name+" by "+how, func(t *testing.T) {
				model, hdr := "sim/"+tt.directives, map[string]string(nil)
				if how == "header" {
					model, hdr = "openai/gpt-4o", map[string]string{HeaderFault: tt.directives}
				}
				r := h.do("POST", tt.path, keyOK, body(tt.path, model, tt.stream), hdr)
				if r.err != nil {
					t.Fatalf("reading body: %v", r.err)
				}
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
				}
				if tt.inband != "" {
					if got := errorCode(t, r, tt.stream); got != tt.inband {
						t.Errorf("error code %q, want %q: %s", got, tt.inband, r.body)
					}
				}
				if tt.stream {
					if got := deltas(t, r); got != tt.deltas {
						t.Errorf("%d content events before the error, want %d: %s", got, tt.deltas, r.body)
					}
				}
				if !strings.Contains(string(r.body), tt.has) {
					t.Errorf("body lacks %s: %s", tt.has, r.body)
				}
			})
		}
	}
}
