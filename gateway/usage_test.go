package gateway

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

type tokenRecord struct {
	key               int
	model             string
	prompt, completes int
}

type fakeCounter struct {
	mu  sync.Mutex
	got []tokenRecord
}

func (f *fakeCounter) Tokens(keyID int, model string, prompt, completion int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, tokenRecord{keyID, model, prompt, completion})
}

func TestUsageTap(t *testing.T) {
	sse := "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n" +
		"data: [DONE]\n\n"
	// unended is the stream up to its usage event, without the event's
	// line end and blank line.
	unended := strings.TrimRight(sse[:strings.Index(sse, "data: [DONE]")], "\n")
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		encoding          string
		readAll           bool
		oneByte           bool
		length            int64 // -2: the body's; else unknown
		want              []tokenRecord
	}{
		{name: "json", ctype: "application/json", body: `{"id":"x","usage":{"prompt_tokens":5,"completion_tokens":2}}`, status: 200, readAll: true,
			want: []tokenRecord{{3, "m", 5, 2}}},
		{name: "json charset", ctype: "application/json; charset=utf-8", body: `{"usage":{"prompt_tokens":1,"completion_tokens":1}}`, status: 200, readAll: true,
			want: []tokenRecord{{3, "m", 1, 1}}},
		{name: "sse", ctype: "text/event-stream", body: sse, status: 200, readAll: true, want: []tokenRecord{{3, "m", 7, 3}}},
		{name: "sse byte by byte", ctype: "text/event-stream", body: sse, status: 200, readAll: true, oneByte: true, want: []tokenRecord{{3, "m", 7, 3}}},
		{name: "json labelled an event stream", ctype: "text/event-stream", body: `{"usage":{"prompt_tokens":5,"completion_tokens":2}}`, status: 200, readAll: true, want: []tokenRecord{{3, "m", 5, 2}}},
		{name: "json labelled an event stream, byte by byte after blanks", ctype: "text/event-stream", body: "\r\n\n" + `{"usage":{"prompt_tokens":5,"completion_tokens":2}}`, status: 200, readAll: true, oneByte: true, want: []tokenRecord{{3, "m", 5, 2}}},
		// The upstream billed a last event that the stream ended before its
		// blank line: its usage counts, however the line ended.
		{name: "sse usage event unended", ctype: "text/event-stream", body: unended, status: 200, readAll: true, want: []tokenRecord{{3, "m", 7, 3}}},
		{name: "sse usage event, one line end", ctype: "text/event-stream", body: unended + "\n", status: 200, readAll: true, want: []tokenRecord{{3, "m", 7, 3}}},
		{name: "sse usage event unended, CR", ctype: "text/event-stream", body: unended + "\r", status: 200, readAll: true, oneByte: true, want: []tokenRecord{{3, "m", 7, 3}}},
		{name: "sse cut in its usage event", ctype: "text/event-stream", body: sse[:strings.Index(sse, "\"total_tokens")], status: 200, readAll: true},
		{name: "no usage", ctype: "application/json", body: `{"id":"x"}`, status: 200, readAll: true},
		{name: "zero usage", ctype: "application/json", body: `{"usage":{"prompt_tokens":0,"completion_tokens":0}}`, status: 200, readAll: true},
		{name: "error status", ctype: "application/json", body: `{"usage":{"prompt_tokens":5,"completion_tokens":2}}`, status: 500, readAll: true},
		{name: "not read to the end", ctype: "application/json", body: `{"usage":{"prompt_tokens":5,"completion_tokens":2}}`, status: 200},
		// Answers are decoded before the tap (normalizeEncoding): one still
		// encoded is not decoded by it, so it holds nothing more than its cap.
		{name: "gzip left alone", ctype: "application/json", body: string(gz(`{"usage":{"prompt_tokens":5,"completion_tokens":2}}`)), status: 200, encoding: "gzip", readAll: true},
		{name: "deflate left alone", ctype: "application/json", body: string(zl(`{"usage":{"prompt_tokens":4,"completion_tokens":1}}`)), status: 200, encoding: "Deflate", readAll: true},
		{name: "broken gzip", ctype: "application/json", body: `{"usage":{"prompt_tokens":5,"completion_tokens":2}}`, status: 200, encoding: "gzip", readAll: true},
		{name: "br", ctype: "application/json", body: `{"usage":{"prompt_tokens":5,"completion_tokens":2}}`, status: 200, encoding: "br", readAll: true},
		{name: "gzip stream", ctype: "text/event-stream", body: string(gz(sse)), status: 200, encoding: "gzip", readAll: true},
		{name: "other type", ctype: "text/plain", body: `{"usage":{"prompt_tokens":5,"completion_tokens":2}}`, status: 200, readAll: true},
		// Past maxUsageScan the usage is read from the answer's tail,
		// where OpenRouter puts it, however the length is known.
		{name: "large", ctype: "application/json", body: large(`,"usage":{"prompt_tokens":5,"completion_tokens":2}}`), status: 200, readAll: true,
			want: []tokenRecord{{3, "m", 5, 2}}},
		{name: "large, length declared", ctype: "application/json", body: large(`,"usage":{"prompt_tokens":5,"completion_tokens":2}}`), length: -2, status: 200, readAll: true,
			want: []tokenRecord{{3, "m", 5, 2}}},
		{name: "large, byte by byte", ctype: "application/json", body: large(`,"usage":{"prompt_tokens":5,"completion_tokens":2}}`), status: 200, readAll: true, oneByte: true,
			want: []tokenRecord{{3, "m", 5, 2}}},
		{name: "large, usage quoted in a later string", ctype: "application/json",
			body:   large(`,"usage":{"prompt_tokens":5,"completion_tokens":2},"note":"\",\"usage\":{\"prompt_tokens\":99,\"completion_tokens\":99}}"}`),
			status: 200, readAll: true, want: []tokenRecord{{3, "m", 5, 2}}},
		{name: "large, usage only quoted in a string", ctype: "application/json",
			body:   large(`,"note":"\",\"usage\":{\"prompt_tokens\":99,\"completion_tokens\":99}}"}`),
			status: 200, readAll: true},
		{name: "large, not read to the end", ctype: "application/json", body: large(`,"usage":{"prompt_tokens":5,"completion_tokens":2}}`), status: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.oneByte {
				body = iotest.OneByteReader(body)
			}
			resp := &http.Response{StatusCode: tc.status, Header: http.Header{"Content-Type": {tc.ctype}}, Body: io.NopCloser(body), ContentLength: -1}
			if tc.length == -2 {
				resp.ContentLength = int64(len(tc.body))
			}
			if tc.encoding != "" {
				resp.Header.Set("Content-Encoding", tc.encoding)
			}
			c := &fakeCounter{}
			tapUsage(resp, c, 3, "m")
			var got []byte
			if tc.readAll {
				var err error
				if got, err = io.ReadAll(resp.Body); err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.body {
					t.Fatalf("body changed by the tap")
				}
			}
			if err := resp.Body.Close(); err != nil {
				t.Fatal(err)
			}
			if len(c.got) != len(tc.want) {
				t.Fatalf("tokens recorded %v, want %v", c.got, tc.want)
			}
			for i := range tc.want {
				if c.got[i] != tc.want[i] {
					t.Fatalf("tokens recorded %v, want %v", c.got, tc.want)
				}
			}
		})
	}
}

type fakeCostCounter struct {
	fakeCounter
	costs []float64
}

func (f *fakeCostCounter) Cost(_ int, _ string, usd float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.costs = append(f.costs, usd)
}

// TestUsageTapCost: the tap reads the counts and the cost of one usage
// object, in whatever order its fields come, and leaves out a cost that is
// not a positive number.
func TestUsageTapCost(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, body string
		tokens            []tokenRecord
		costs             []float64
	}{
		{"json", "application/json", `{"usage":{"prompt_tokens":5,"completion_tokens":2,"cost":0.0012}}`,
			[]tokenRecord{{3, "m", 5, 2}}, []float64{0.0012}},
		{"cost first, nested objects between", "application/json",
			`{"usage":{"cost":2.5e-3,"prompt_tokens_details":{"cached_tokens":1,"cost":9},"completion_tokens":4,"prompt_tokens":6}}`,
			[]tokenRecord{{3, "m", 6, 4}}, []float64{0.0025}},
		{"negative cost", "application/json", `{"usage":{"prompt_tokens":5,"completion_tokens":2,"cost":-1}}`,
			[]tokenRecord{{3, "m", 5, 2}}, nil},
		{"cost alone", "application/json", `{"usage":{"cost":0.5}}`, nil, []float64{0.5}},
		{"stream", "text/event-stream", "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n" +
			"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"cost\":0.01}}\n\ndata: [DONE]\n\n",
			[]tokenRecord{{3, "m", 7, 3}}, []float64{0.01}},
		{"responses", "application/json", `{"id":"resp_1","object":"response","status":"completed","usage":{"input_tokens":9,"output_tokens":4,"total_tokens":13,"cost":0.002}}`,
			[]tokenRecord{{3, "m", 9, 4}}, []float64{0.002}},
		// The Responses API's stream: usage is null in response.created
		// and sits under "response" in response.completed.
		{"responses stream", "text/event-stream", "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n" +
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n" +
			"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":9,\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":4,\"cost\":0.003}},\"sequence_number\":5}\n\n",
			[]tokenRecord{{3, "m", 9, 4}}, []float64{0.003}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {tc.ctype}},
				Body: io.NopCloser(strings.NewReader(tc.body)), ContentLength: -1}
			c := &fakeCostCounter{}
			tapUsage(resp, c, 3, "m")
			if _, err := io.ReadAll(resp.Body); err != nil {
				t.Fatal(err)
			}
			if err := resp.Body.Close(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.got, tc.tokens) || !slices.Equal(c.costs, tc.costs) {
				t.Fatalf("tokens %v, costs %v; want %v, %v", c.got, c.costs, tc.tokens, tc.costs)
			}
		})
	}
}

// large is a JSON answer over maxUsageScan, its content a long string,
// that ends with end.
func large(end string) string {
	return `{"id":"gen-1","choices":[{"message":{"content":"` + strings.Repeat("x", maxUsageScan) + `"}}]` + end
}

// missCounter records the answers a tap saw end without usage.
type missCounter struct {
	fakeCostCounter
	misses int
}

func (m *missCounter) NoUsage(int) { m.misses++ }

// TestUsageTapCutShort: a stream cut after its usage event (the client
// gone before [DONE], a connection lost) is counted all the same, as
// upstream charges it; an answer that ends without usage, cut before it
// or whole, is reported as such, so that the key's budget is read again.
func TestUsageTapCutShort(t *testing.T) {
	usage := "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"cost\":0.01}}\n\n"
	delta := "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
	for _, tc := range []struct {
		name, ctype, body string
		cut               bool
		tokens            []tokenRecord
		costs             []float64
		misses            int
	}{
		{"stream cut after its usage", "text/event-stream", delta + usage, true, []tokenRecord{{3, "m", 7, 3}}, []float64{0.01}, 0},
		{"stream cut before its usage", "text/event-stream", delta + delta, true, nil, nil, 1},
		{"stream cut inside its usage event", "text/event-stream", delta + usage[:len(usage)-2], true, nil, nil, 1},
		{"whole stream", "text/event-stream", delta + usage + "data: [DONE]\n\n", false, []tokenRecord{{3, "m", 7, 3}}, []float64{0.01}, 0},
		{"whole stream without usage", "text/event-stream", delta + "data: [DONE]\n\n", false, nil, nil, 1},
		{"json cut", "application/json", `{"usage":{"prompt_tokens":5,"completion_tokens":2,"cost":0.5}}`, true, nil, nil, 1},
		{"json", "application/json", `{"usage":{"prompt_tokens":5,"completion_tokens":2,"cost":0.5}}`, false, []tokenRecord{{3, "m", 5, 2}}, []float64{0.5}, 0},
		{"json labelled an event stream", "text/event-stream", "\n {\"choices\":[{\"message\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"cost\":0.5}}\n", false, []tokenRecord{{3, "m", 5, 2}}, []float64{0.5}, 0},
		{"json labelled an event stream, cut", "text/event-stream", `{"usage":{"prompt_tokens":5,"completion_tokens":2,"cost":0.5}}`, true, nil, nil, 1},
		{"json labelled an event stream, without usage", "text/event-stream", `{"choices":[]}`, false, nil, nil, 1},
		{"stream opening with a comment", "text/event-stream", ": OPENROUTER PROCESSING\n\n" + delta + usage, false, []tokenRecord{{3, "m", 7, 3}}, []float64{0.01}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.cut {
				body = io.MultiReader(body, iotest.ErrReader(io.ErrUnexpectedEOF))
			}
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {tc.ctype}}, Body: io.NopCloser(body), ContentLength: -1}
			c := &missCounter{}
			tapUsage(resp, c, 3, "m")
			if _, err := io.ReadAll(resp.Body); (err != nil) != tc.cut {
				t.Fatalf("read: %v", err)
			}
			if err := resp.Body.Close(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.got, tc.tokens) || !slices.Equal(c.costs, tc.costs) || c.misses != tc.misses {
				t.Fatalf("tokens %v, costs %v, %d misses; want %v, %v, %d", c.got, c.costs, c.misses, tc.tokens, tc.costs, tc.misses)
			}
		})
	}
}
