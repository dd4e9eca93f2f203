package simulator

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// maxTokensBody is a chat request for model with max_tokens set.
func maxTokensBody(model, prompt string, stream bool, maxTokens int) string {
	b, _ := json.Marshal(map[string]any{
		"model":      model,
		"stream":     stream,
		"max_tokens": maxTokens,
		"messages":   []map[string]string{{"role": "user", "content": prompt}},
	})
	return string(b)
}

// TestMaxTokensCutsTheReply: a reply longer than max_tokens stops at its
// max_tokens-th word with finish_reason "length", in both forms, and is
// charged only what it kept; one that fits is whole and "stop".
func TestMaxTokensCutsTheReply(t *testing.T) {
	h := startSim(t, testOptions())
	const model = "openai/gpt-4o-mini"
	whole := `Hello from openai/gpt-4o-mini: you said "tell me a long story"`
	tests := []struct {
		name      string
		model     string
		maxTokens int
		want      string // content; "" means check only the word count
		words     int
		reason    string
	}{
		{"fits", model, 100, whole, 10, "stop"},
		{"exactly", model, 10, whole, 10, "stop"},
		{"one word short", model, 9, `Hello from openai/gpt-4o-mini: you said "tell me a long`, 9, "length"},
		{"mid-piece", model, 4, `Hello from openai/gpt-4o-mini: you`, 4, "length"},
		{"at a piece's end", model, 3, `Hello from openai/gpt-4o-mini:`, 3, "length"},
		{"one", model, 1, `Hello`, 1, "length"},
		{"into the padding", "sim/big=3000", 40, "", 40, "length"},
		{"before the padding", "sim/big=3000", 2, "Hello from", 2, "length"},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			name := tt.name
			if stream {
				name += "/stream"
			}
			t.Run(name, func(t *testing.T) {
				r := h.do(http.MethodPost, "/chat/completions", keyOK, maxTokensBody(tt.model, "tell me a long story", stream, tt.maxTokens), nil)
				if r.status != http.StatusOK || r.err != nil {
					t.Fatalf("status %d, err %v: %s", r.status, r.err, r.body)
				}
				content, reason, tokens := readReply(t, r.body, stream)
				if tt.want != "" && content != tt.want {
					t.Errorf("content %q, want %q", content, tt.want)
				}
				if n := len(strings.Fields(content)); n != tt.words {
					t.Errorf("content of %d words, want %d: %q", n, tt.words, content)
				}
				if content != strings.TrimRight(content, " ") {
					t.Errorf("content %q ends in a space", content)
				}
				if reason != tt.reason {
					t.Errorf("finish_reason %q, want %q", reason, tt.reason)
				}
				if tokens != tt.words {
					t.Errorf("usage.completion_tokens %d, want %d", tokens, tt.words)
				}
			})
		}
	}
}

// readReply is a chat reply's content, finish_reason (the usage chunk's
// must agree with the finish chunk's) and completion tokens.
func readReply(t *testing.T, body []byte, stream bool) (content, reason string, tokens int) {
	t.Helper()
	if !stream {
		var c oaCompletion
		if err := json.Unmarshal(body, &c); err != nil || len(c.Choices) != 1 || c.Usage == nil || c.Choices[0].FinishReason == nil {
			t.Fatalf("reply %s: %v", body, err)
		}
		return c.Choices[0].Message.Content, *c.Choices[0].FinishReason, c.Usage.CompletionTokens
	}
	var b strings.Builder
	for _, ev := range parseEvents(t, body) {
		if ev == "[DONE]" {
			break
		}
		var c oaCompletion
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		if len(c.Choices) == 1 {
			b.WriteString(c.Choices[0].Delta.Content)
			if f := c.Choices[0].FinishReason; f != nil {
				if reason != "" && *f != reason {
					t.Errorf("finish_reason %q, then %q", reason, *f)
				}
				reason = *f
			}
		}
		if c.Usage != nil {
			tokens = c.Usage.CompletionTokens
		}
	}
	return b.String(), reason, tokens
}

// TestFillerBytes: fillerBytes(n) holds n words of filler, ending on the
// n-th.
func TestFillerBytes(t *testing.T) {
	for n := 0; n < 100; n++ {
		b := fillerBytes(n)
		if got := fillerWords(b); got != n {
			t.Fatalf("fillerWords(fillerBytes(%d) = %d) = %d", n, b, got)
		}
		f := appendFiller(nil, b+1)
		if n > 0 && (f[b-1] == ' ' || f[b] != ' ') {
			t.Fatalf("fillerBytes(%d) = %d does not end on a word's end: %q", n, b, f)
		}
	}
}

// TestResponsesCutAtMaxOutputTokens: the Responses API tells a reply cut
// at max_output_tokens as OpenAI's does: status "incomplete" with
// incomplete_details.reason, the item "incomplete", a stream ending on
// response.incomplete; one that fits is "completed".
func TestResponsesCutAtMaxOutputTokens(t *testing.T) {
	h := startSim(t, testOptions())
	for _, tc := range []struct {
		max            int
		text, status   string
		last, itemStat string
		tokens         int
	}{
		{3, "Hello from openai/gpt-4o:", "incomplete", "response.incomplete", "incomplete", 3},
		{50, `Hello from openai/gpt-4o: you said "Say hi"`, "completed", "response.completed", "completed", 7},
	} {
		body := `{"model":"openai/gpt-4o","input":"Say hi","max_output_tokens":` + strconv.Itoa(tc.max)
		r := h.do(http.MethodPost, "/responses", keyOK, body+`}`, nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		checkResponse(t, r.body, tc.text, tc.status, tc.itemStat, tc.tokens)

		r = h.do(http.MethodPost, "/responses", keyOK, body+`,"stream":true}`, nil)
		evs := parseEvents(t, r.body)
		var text strings.Builder
		var last struct {
			Type     string          `json:"type"`
			Delta    string          `json:"delta"`
			Response json.RawMessage `json:"response"`
		}
		for _, ev := range evs {
			last.Delta = ""
			if err := json.Unmarshal([]byte(ev), &last); err != nil {
				t.Fatalf("event %q: %v", ev, err)
			}
			if last.Type == "response.output_text.delta" {
				text.WriteString(last.Delta)
			}
		}
		if last.Type != tc.last || text.String() != tc.text {
			t.Errorf("max_output_tokens %d: stream ends on %s with deltas %q; want %s, %q", tc.max, last.Type, text.String(), tc.last, tc.text)
		}
		checkResponse(t, last.Response, tc.text, tc.status, tc.itemStat, tc.tokens)
	}
}

// checkResponse checks a finished Responses API object.
func checkResponse(t *testing.T, b []byte, text, status, itemStatus string, tokens int) {
	t.Helper()
	var o struct {
		Status     string `json:"status"`
		Incomplete *struct {
			Reason string `json:"reason"`
		} `json:"incomplete_details"`
		OutputText string `json:"output_text"`
		Output     []struct {
			Status string `json:"status"`
		} `json:"output"`
		Usage struct {
			OutputTokens int `json:"output_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &o); err != nil || len(o.Output) != 1 {
		t.Fatalf("response %s: %v", b, err)
	}
	cut := o.Incomplete != nil && o.Incomplete.Reason == "max_output_tokens"
	if o.Status != status || cut != (status == "incomplete") || o.OutputText != text || o.Output[0].Status != itemStatus || o.Usage.OutputTokens != tokens {
		t.Errorf("response %s; want status %s, text %q, item %s, %d output tokens", b, status, text, itemStatus, tokens)
	}
}

// TestJSONStream: the jsonstream directive answers the plain JSON reply,
// asked for as a stream or not, labelled text/event-stream, and charges it
// as the plain reply is.
func TestJSONStream(t *testing.T) {
	h := startSim(t, testOptions())
	for _, stream := range []bool{false, true} {
		t.Run(strconv.FormatBool(stream), func(t *testing.T) {
			r := h.do(http.MethodPost, "/chat/completions", keyOK, maxTokensBody("sim/jsonstream", "hi", stream, 100), nil)
			if r.status != http.StatusOK || r.err != nil {
				t.Fatalf("status %d, err %v: %s", r.status, r.err, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type %q", ct)
			}
			var v struct {
				Object string `json:"object"`
				Usage  struct {
					Cost float64 `json:"cost"`
				} `json:"usage"`
			}
			if err := json.Unmarshal(r.body, &v); err != nil || v.Object != "chat.completion" || v.Usage.Cost <= 0 {
				t.Errorf("body %s (%v): want the plain reply with its usage", r.body, err)
			}
		})
	}
}
